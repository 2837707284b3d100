"""Encoding throughput: tiervec's encoder beside bare sentence-transformers ``encode``.

Same model object (all-MiniLM-L6-v2), same texts (SciFact documents, title + text), same batch
size, normalised output; runs alternate (ABBA) and the best of each side is compared.

    python bench/encode.py [--docs 1000] [--rounds 3]

Writes bench/results/encode.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import console, markdown_table, print_table, shared_data, write_json
from tiervec.corpus import read_corpus
from tiervec.encode import EncoderConfig, load_encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    texts = [d.embedding_text() for d, _ in zip(read_corpus(shared_data() / "beir" / "scifact"),
                                                 range(args.docs), strict=False)]
    config = EncoderConfig()
    encoder = load_encoder(config)
    model = encoder.model  # the very same SentenceTransformer object, used bare

    def bare() -> np.ndarray:
        return model.encode(texts, batch_size=config.batch_size, normalize_embeddings=True,
                            convert_to_numpy=True, show_progress_bar=False)

    def ours() -> np.ndarray:
        return encoder.encode_documents(texts)

    bare()  # warm-up
    times: dict[str, list[float]] = {"sentence-transformers encode": [], "tiervec": []}
    outputs = {}
    pair = [("sentence-transformers encode", bare), ("tiervec", ours)]
    for i in range(args.rounds):  # ABBA order: neither side always runs first
        for name, fn in pair if i % 2 == 0 else pair[::-1]:
            start = time.perf_counter()
            outputs[name] = fn()
            times[name].append(time.perf_counter() - start)
    max_diff = float(np.abs(outputs["tiervec"] - outputs["sentence-transformers encode"]).max())
    rows = []
    for name, ts in times.items():
        best = min(ts)
        rows.append({"encoder": name, "docs": len(texts), "seconds": best,
                     "docs_per_s": len(texts) / best})
    ratio = rows[1]["docs_per_s"] / rows[0]["docs_per_s"]
    columns = ("encoder", "docs", "best seconds", "docs/s")
    table = [(r["encoder"], r["docs"], round(r["seconds"], 2), r["docs_per_s"]) for r in rows]
    print_table(f"Encoding {len(texts)} SciFact documents (MiniLM-L6-v2, batch "
                f"{config.batch_size}); tiervec / bare = {ratio:.3f}", columns, table)
    console.print(markdown_table(columns, table), soft_wrap=True)
    console.print(f"largest difference between the two outputs: {max_diff:.2e}")
    write_json("encode", {"rows": rows, "ratio": ratio, "max_abs_difference": max_diff})


if __name__ == "__main__":
    main()
