"""Run the hybrid-search peers (LanceDB, Milvus Lite) on given texts and precomputed vectors.

A helper of ``bench/hybrid.py``: it runs in the peers' own virtual environment (``bench/.peers``,
see ``bench/peers-requirements.txt``) and never imports tiervec. Usage::

    bench/.peers/bin/python bench/_hybrid_peers.py INPUT_DIR OUTPUT_JSON [--k 100]
        [--only lancedb,milvus]

INPUT_DIR holds ``corpus.jsonl`` (``{"id", "title", "text"}`` per line) in the row order of
``doc_vectors.npy`` (float32, L2-normalised), and ``queries.jsonl`` (``{"id", "text"}``) in the
row order of ``query_vectors.npy``. Each peer indexes ``title + " " + text`` as one text field
plus the vector, in a fresh temporary folder, then answers every query with one call per query
(a loop, as a user would) in each of its modes:

- LanceDB: ``fts`` (its native full-text index), ``vector`` (flat, exact: no ANN index, dot
  product) and ``hybrid`` (both, fused by its ``RRFReranker``);
- Milvus Lite: ``bm25`` (a BM25 function into a sparse inverted index), ``dense`` (FLAT index,
  inner product), ``hybrid`` (``hybrid_search`` with ``RRFRanker(60)``) and
  ``hybrid-weighted`` (``WeightedRanker(0.5, 0.5)``).

OUTPUT_JSON gets ``{"peers": {name: {"version", "index_s", "settings", "modes": {mode: {"ids",
"scores", "qps", "warmup_s", "settings"}}}}}, "k", "query_ids"}``: ``ids`` and ``scores`` are
lists (one per query, best first, up to k) of what the peer returned, ``qps`` is queries per
second over the whole loop (every mode first answers one warm-up query, timed as ``warmup_s``),
``index_s`` the seconds to build the table or collection and its indexes. A mode that fails
records ``{"error": message, "settings"}`` instead. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# The stop words of Lucene's (and Tantivy's) English analyzer: LanceDB's built-in English list
# and Milvus's ``_english_``. Milvus Lite has no built-in list, so it is given this one.
ENGLISH_STOP_WORDS = (
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with"
).split()

PEERS = ("lancedb", "milvus")

Search = Callable[[str, np.ndarray], tuple[list[str], list[float]]]


@dataclass
class Data:
    """The input: document ids, texts and vectors; query ids, texts and vectors."""

    doc_ids: list[str]
    doc_texts: list[str]
    doc_vectors: np.ndarray
    query_ids: list[str]
    query_texts: list[str]
    query_vectors: np.ndarray


def log(message: str) -> None:
    """A progress line on stderr."""
    print(message, file=sys.stderr, flush=True)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of ``path``, one per non-empty line."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_input(folder: Path) -> Data:
    """The input folder's corpus, queries and vectors, checked against each other."""
    docs = read_jsonl(folder / "corpus.jsonl")
    queries = read_jsonl(folder / "queries.jsonl")
    doc_vectors = np.ascontiguousarray(np.load(folder / "doc_vectors.npy"), dtype=np.float32)
    query_vectors = np.ascontiguousarray(np.load(folder / "query_vectors.npy"), dtype=np.float32)
    if doc_vectors.shape[0] != len(docs) or query_vectors.shape[0] != len(queries):
        sys.exit(f"row counts differ: {len(docs)} documents, {doc_vectors.shape[0]} vectors; "
                 f"{len(queries)} queries, {query_vectors.shape[0]} vectors")
    if doc_vectors.shape[1] != query_vectors.shape[1]:
        sys.exit(f"dimensions differ: {doc_vectors.shape[1]} and {query_vectors.shape[1]}")
    return Data(
        doc_ids=[str(d["id"]) for d in docs],
        doc_texts=[f"{d.get('title') or ''} {d.get('text') or ''}".strip() for d in docs],
        doc_vectors=doc_vectors,
        query_ids=[str(q["id"]) for q in queries],
        query_texts=[str(q["text"]) for q in queries],
        query_vectors=query_vectors,
    )


def run_modes(peer: str, modes: dict[str, tuple[Search, str]], data: Data) -> dict[str, Any]:
    """Every query through each mode's search, one call per query.

    Each mode first answers one warm-up query (its seconds kept as ``warmup_s``: a peer may
    build an index, or load one, on its first search), all modes before any is timed, so each
    loop runs in the same state. A mode that fails records its error and the others go on."""
    results: dict[str, dict[str, Any]] = {}
    for mode, (search, settings) in modes.items():
        start = time.perf_counter()
        try:
            search(data.query_texts[0], data.query_vectors[0])
        except Exception as e:
            results[mode] = failed(f"{peer} {mode}", e, settings)
            continue
        results[mode] = {"warmup_s": time.perf_counter() - start, "settings": settings}
        log(f"  {peer} {mode}: warm-up query in {results[mode]['warmup_s']:.3f} s")
    for mode, (search, _) in modes.items():
        if "error" in results[mode]:
            continue
        all_ids, all_scores = [], []
        try:
            start = time.perf_counter()
            for text, vector in zip(data.query_texts, data.query_vectors, strict=True):
                ids, scores = search(text, vector)
                all_ids.append(ids)
                all_scores.append(scores)
            seconds = time.perf_counter() - start
        except Exception as e:
            results[mode] = failed(f"{peer} {mode}", e, results[mode]["settings"])
            continue
        qps = len(data.query_ids) / seconds
        results[mode].update(ids=all_ids, scores=all_scores, qps=qps)
        log(f"  {peer} {mode}: {len(all_ids)} queries, {qps:,.1f} queries/s")
    return results


def failed(what: str, error: Exception, settings: str) -> dict[str, Any]:
    """The record of a mode that does not work, its traceback on stderr."""
    log(f"  {what} failed: {type(error).__name__}: {error}")
    traceback.print_exc(file=sys.stderr)
    return {"error": f"{type(error).__name__}: {error}", "settings": settings}


# -- LanceDB ------------------------------------------------------------------------------------

def run_lancedb(data: Data, k: int, folder: Path) -> dict[str, Any]:
    """LanceDB's full-text, exact vector and hybrid (RRF) search over a table in ``folder``."""
    # Lance warns on every search that selects no score column (hybrid's own sub-searches do).
    os.environ.setdefault("LANCEDB_LOG", "warn,lance::dataset::scanner=error")
    import lancedb
    import pyarrow as pa
    from lancedb.index import FTS
    from lancedb.rerankers import RRFReranker

    fts = {"base_tokenizer": "simple", "language": "English", "lower_case": True, "stem": True,
           "remove_stop_words": True, "ascii_folding": True, "with_position": False}
    dim = data.doc_vectors.shape[1]
    table_data = pa.table({
        "id": pa.array(data.doc_ids, pa.string()),
        "text": pa.array(data.doc_texts, pa.string()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(data.doc_vectors.ravel()), dim),
    })
    log(f"lancedb {lancedb.__version__}: indexing {len(data.doc_ids):,} documents")
    start = time.perf_counter()
    db = lancedb.connect(str(folder / "lancedb"))
    table = db.create_table("docs", table_data)
    table.create_index("text", config=FTS(**fts))  # the native (not Tantivy) FTS index
    index_s = time.perf_counter() - start
    log(f"lancedb: indexed in {index_s:.2f} s")

    fts_settings = "native FTS index on title+text (" + ", ".join(
        f"{key}={value}" for key, value in fts.items()) + "), BM25; score: _score (higher better)"
    vector_settings = ("flat exact search (no vector index), distance_type=dot; "
                       "score: _distance = 1 - dot (lower better)")
    hybrid_settings = ("query_type=hybrid: the vector search above (distance_type=dot) and the "
                       "FTS above, each limited to k, fused by RRFReranker(K=60); "
                       "score: _relevance_score (higher better)")
    reranker = RRFReranker(K=60)

    def column_lists(result: pa.Table, score: str) -> tuple[list[str], list[float]]:
        return result["id"].to_pylist(), [float(s) for s in result[score].to_pylist()]

    def search_fts(text: str, vector: np.ndarray) -> tuple[list[str], list[float]]:
        query = table.search(text, query_type="fts").select(["id", "_score"]).limit(k)
        return column_lists(query.to_arrow(), "_score")

    def search_vector(text: str, vector: np.ndarray) -> tuple[list[str], list[float]]:
        query = (table.search(vector, query_type="vector", vector_column_name="vector")
                 .distance_type("dot").select(["id", "_distance"]).limit(k))
        return column_lists(query.to_arrow(), "_distance")

    def search_hybrid(text: str, vector: np.ndarray) -> tuple[list[str], list[float]]:
        query = (table.search(query_type="hybrid", vector_column_name="vector")
                 .vector(vector).text(text).distance_type("dot").rerank(reranker)
                 .select(["id"]).limit(k))
        return column_lists(query.to_arrow(), "_relevance_score")

    modes = run_modes("lancedb", {
        "fts": (search_fts, fts_settings),
        "vector": (search_vector, vector_settings),
        "hybrid": (search_hybrid, hybrid_settings),
    }, data)
    return {
        "version": lancedb.__version__,
        "index_s": index_s,
        "settings": "lancedb.connect(local folder), one table (id, text, vector), "
                    "create_index('text', config=FTS(...)), no vector index",
        "modes": modes,
    }


# -- Milvus Lite --------------------------------------------------------------------------------

# Milvus Lite 3.x refuses Milvus's ``{"type": "english"}`` analyzer (stemming, stop words): it
# has only the ``standard`` and ``jieba`` tokenizers. Its standard tokenizer lower-cases and takes
# a stop-word filter of explicit words (no ``_english_`` list), but has no stemmer.
MILVUS_FALLBACK_ANALYZER = {
    "tokenizer": "standard",
    "filter": ["lowercase", {"type": "stop", "stop_words": ENGLISH_STOP_WORDS}],
}
MILVUS_FALLBACK_NOTE = ("analyzer_params={tokenizer: standard, filter: [lowercase, stop (the "
                        "33 English stop words of Lucene, given explicitly)]}, no stemming")


def run_milvus(data: Data, k: int, folder: Path) -> dict[str, Any]:
    """Milvus Lite's BM25, dense (FLAT, IP) and hybrid search over a collection in ``folder``."""
    import pymilvus
    from pymilvus import (
        AnnSearchRequest,
        DataType,
        Function,
        FunctionType,
        MilvusClient,
        RRFRanker,
        WeightedRanker,
    )

    try:
        from importlib.metadata import version
        lite_version = version("milvus-lite")
    except Exception:  # not fatal: only reported
        lite_version = "unknown"
    dim = data.doc_vectors.shape[1]
    name = "docs"
    log(f"milvus-lite {lite_version} (pymilvus {pymilvus.__version__}): "
        f"indexing {len(data.doc_ids):,} documents")
    start = time.perf_counter()
    client = MilvusClient(str(folder / "milvus.db"))
    # Milvus's own English analyzer, if this Milvus Lite takes it; else the closest it takes.
    analyzer, analyzer_note = {"type": "english"}, "analyzer_params={type: english}"
    pymilvus_log = logging.getLogger("pymilvus")
    level = pymilvus_log.level
    pymilvus_log.setLevel(logging.CRITICAL)  # the refusal below is expected: logged briefly
    try:
        create_milvus_collection(client, name, dim, analyzer, DataType, Function, FunctionType)
    except Exception as e:
        log(f"milvus: analyzer {analyzer} refused ({e}); falling back")
        analyzer = MILVUS_FALLBACK_ANALYZER
        analyzer_note = f"{MILVUS_FALLBACK_NOTE} ({{type: english}} refused: {e})"
        if client.has_collection(name):
            client.drop_collection(name)
        create_milvus_collection(client, name, dim, analyzer, DataType, Function, FunctionType)
    finally:
        pymilvus_log.setLevel(level)
    batch = 1000
    longest = max(len(t.encode("utf-8")) for t in data.doc_texts)
    if longest > 65535:
        log(f"milvus: longest text is {longest} bytes, over the VARCHAR limit; it will fail")
    for lo in range(0, len(data.doc_ids), batch):
        client.insert(name, [
            {"id": data.doc_ids[i], "text": data.doc_texts[i],
             "dense": data.doc_vectors[i].tolist()}
            for i in range(lo, min(lo + batch, len(data.doc_ids)))
        ])
    client.flush(name)  # into an immutable segment (else each search rebuilds its BM25 index)
    client.load_collection(name)
    index_s = time.perf_counter() - start
    log(f"milvus: indexed in {index_s:.2f} s")

    bm25_param = {"metric_type": "BM25"}
    dense_param = {"metric_type": "IP"}

    def hits(result: Any) -> tuple[list[str], list[float]]:
        return [str(h["id"]) for h in result[0]], [float(h["distance"]) for h in result[0]]

    def search_bm25(text: str, vector: np.ndarray) -> tuple[list[str], list[float]]:
        return hits(client.search(name, data=[text], anns_field="sparse", limit=k,
                                  search_params=bm25_param))

    def search_dense(text: str, vector: np.ndarray) -> tuple[list[str], list[float]]:
        return hits(client.search(name, data=[vector.tolist()], anns_field="dense", limit=k,
                                  search_params=dense_param))

    def requests(text: str, vector: np.ndarray) -> list[Any]:
        return [AnnSearchRequest(data=[text], anns_field="sparse", param=bm25_param, limit=k),
                AnnSearchRequest(data=[vector.tolist()], anns_field="dense", param=dense_param,
                                 limit=k)]

    def search_hybrid(text: str, vector: np.ndarray) -> tuple[list[str], list[float]]:
        return hits(client.hybrid_search(name, requests(text, vector), RRFRanker(60), limit=k))

    def search_weighted(text: str, vector: np.ndarray) -> tuple[list[str], list[float]]:
        return hits(client.hybrid_search(name, requests(text, vector), WeightedRanker(0.5, 0.5),
                                         limit=k))

    text_note = f"text VARCHAR(65535) enable_analyzer=True, {analyzer_note}"
    modes = run_modes("milvus", {
        "bm25": (search_bm25, f"{text_note}; BM25 Function -> SPARSE_FLOAT_VECTOR, "
                              "SPARSE_INVERTED_INDEX, metric BM25 (defaults k1=1.5, b=0.75); "
                              "score: the returned distance (the negated BM25 score in Milvus "
                              "Lite)"),
        "dense": (search_dense, "FLOAT_VECTOR, FLAT index, metric IP; score: inner product"),
        "hybrid": (search_hybrid, "hybrid_search: AnnSearchRequest bm25 + dense, each limit k, "
                                  "RRFRanker(60); score: RRF score"),
        "hybrid-weighted": (search_weighted, "hybrid_search: AnnSearchRequest bm25 + dense, "
                                             "each limit k, WeightedRanker(0.5, 0.5) (its "
                                             "default score normalisation); score: weighted "
                                             "score"),
    }, data)
    client.close()
    return {
        "version": lite_version,
        "pymilvus": pymilvus.__version__,
        "index_s": index_s,
        "settings": f"MilvusClient(local .db file), one collection: id VARCHAR primary key, "
                    f"{text_note}, sparse (BM25), dense FLOAT_VECTOR({dim}); inserted in "
                    f"batches of {batch}, flushed, loaded",
        "modes": modes,
    }


def create_milvus_collection(client: Any, name: str, dim: int, analyzer: dict[str, Any],
                             DataType: Any, Function: Any, FunctionType: Any) -> None:
    """The collection: id, analysed text, its BM25 sparse vector and the dense vector."""
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
    schema.add_field("text", DataType.VARCHAR, max_length=65535, enable_analyzer=True,
                     analyzer_params=analyzer)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_function(Function(name="text_bm25", function_type=FunctionType.BM25,
                                 input_field_names=["text"], output_field_names=["sparse"]))
    index = client.prepare_index_params()
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    index.add_index("dense", index_type="FLAT", metric_type="IP")
    client.create_collection(name, schema=schema, index_params=index)


# -- main ---------------------------------------------------------------------------------------

RUNNERS = {"lancedb": run_lancedb, "milvus": run_milvus}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input_dir", type=Path, help="corpus.jsonl, doc_vectors.npy, "
                        "queries.jsonl, query_vectors.npy")
    parser.add_argument("output_json", type=Path)
    parser.add_argument("--k", type=int, default=100, help="results per query (100)")
    parser.add_argument("--only", default=",".join(PEERS),
                        help=f"comma-separated peers to run ({','.join(PEERS)})")
    args = parser.parse_args()
    peers = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in peers if p not in RUNNERS]
    if unknown:
        parser.error(f"unknown peers {unknown}; choose from {','.join(PEERS)}")

    data = load_input(args.input_dir)
    log(f"{len(data.doc_ids):,} documents, {len(data.query_ids):,} queries, "
        f"dim {data.doc_vectors.shape[1]}, k {args.k}")
    results: dict[str, Any] = {}
    for peer in peers:
        folder = Path(tempfile.mkdtemp(prefix=f"hybrid-peer-{peer}-"))
        try:
            results[peer] = RUNNERS[peer](data, args.k, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    output = {"k": args.k, "query_ids": data.query_ids, "peers": results}
    args.output_json.parent.mkdir(parents=True, exist_ok=True)
    args.output_json.write_text(json.dumps(output), encoding="utf-8")
    log(f"wrote {args.output_json}")


if __name__ == "__main__":
    main()
