"""fastembed's MUVERA (run in the peers' environment by bench/multivector.py): FDEs of the
same token vectors with the same parameters, their build time, and the top candidates of exact
FDE search for each query."""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
from fastembed import __version__
from fastembed.postprocess import Muvera


def main() -> None:
    args = json.loads(sys.argv[1])
    folder = Path(args["folder"])
    doc_tokens = np.load(folder / "doc_tokens.npy", mmap_mode="r")
    doc_ptr = np.load(folder / "doc_ptr.npy")
    query_tokens = np.load(folder / "query_tokens.npy")
    query_ptr = np.load(folder / "query_ptr.npy")
    muvera = Muvera(dim=doc_tokens.shape[1], k_sim=args["k_sim"], dim_proj=args["dim_proj"],
                    r_reps=args["reps"], random_seed=42)
    start = time.perf_counter()
    docs = np.stack([muvera.process_document(np.asarray(doc_tokens[a:b], np.float32))
                     for a, b in itertools.pairwise(doc_ptr)])
    build = time.perf_counter() - start
    queries = np.stack([muvera.process_query(query_tokens[a:b])
                        for a, b in itertools.pairwise(query_ptr)])
    scores = queries @ docs.T
    deepest = max(args["candidates"])
    top = np.argpartition(-scores, deepest, axis=1)[:, :deepest]
    order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
    np.save(folder / "candidates.npy", np.take_along_axis(top, order, axis=1))
    (folder / "result.json").write_text(json.dumps({"version": __version__,
                                                    "build_seconds": build}))


if __name__ == "__main__":
    main()
