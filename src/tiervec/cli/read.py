"""The ``tiervec`` commands that read: index (a corpus into a collection), search, info."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from tiervec.cli._app import (
    ModelOpt,
    RecallOpt,
    StrictOpt,
    TiersOpt,
    _run,
    app,
    console,
    describe_recall,
    describe_upgrade,
    err_console,
    index_with_progress,
    warn_truncated,
)
from tiervec.cli.distribute import open_searchable

log = logging.getLogger(__name__)


@app.command()
def index(
    corpus: Annotated[Path, typer.Argument(help="BEIR folder, .jsonl(.gz), .csv or .parquet.")],
    collection: Annotated[Path, typer.Option("--collection", "-c", help="Collection folder.")],
    model: ModelOpt = None,
    tiers: TiersOpt = None,
    strict: StrictOpt = False,
    lexical: Annotated[bool, typer.Option(
        "--lexical/--no-lexical", help="Keep a BM25 index of titles and texts (lexical and "
        "hybrid search) in a new collection.")] = True,
    recall_target: RecallOpt = None,
    chunking: Annotated[str | None, typer.Option(
        "--chunking", help="Cut long documents into chunks of the model's tokens, a vector "
        "each: 'late' (the model reads the whole document, then each chunk is pooled) or "
        "'naive' (each chunk read alone). Default: none (a vector per document; the model "
        "reads its first max_length tokens).", show_default=False)] = None,
    chunk_tokens: Annotated[int, typer.Option(
        "--chunk-tokens", help="Word pieces per chunk (at most the model's window).")] = 128,
    overlap: Annotated[int, typer.Option(
        "--overlap", help="Word pieces consecutive chunks share (below --chunk-tokens).")] = 16,
    sentences: Annotated[bool, typer.Option(
        "--sentences", help="End chunks at sentence boundaries where one is near.")] = False,
    window: Annotated[int | None, typer.Option(
        "--window", help="Late chunking: tokens the model reads at once (default its "
        "max_length; at most its position table).", show_default=False)] = None,
    aggregate: Annotated[str, typer.Option(
        "--aggregate", help="A document's score from its chunks': max, top3 or sum.")] = "max",
    multivector: Annotated[bool, typer.Option(
        "--multivector", help="Keep every token's vector; search MUVERA FDEs (compressed by "
        "--tiers) and re-rank by exact MaxSim over the tokens.")] = False,
    fde: Annotated[str, typer.Option(
        "--fde", help="MUVERA: repetitions x SimHash bits x projection dims.")] = "20x4x16",
    candidates: Annotated[int, typer.Option(
        "--candidates", help="Multi-vector: FDE candidates MaxSim re-ranks.", min=1)] = 100,
    token_codec: Annotated[str, typer.Option(
        "--token-codec", help="Multi-vector: a compressed copy of every token: int8, binary "
        "or none.")] = "int8",
    ray: Annotated[bool, typer.Option(
        "--ray", help="Distributed ingest on Ray into a sharded collection (Ray Data reads "
        "the corpus, an actor pool encodes it, each shard writes its documents).")] = False,
    address: Annotated[str | None, typer.Option(
        "--address", help="--ray: the cluster (auto, HOST:6379, ray://HOST:10001); default "
        "RAY_ADDRESS or a local cluster.", show_default=False)] = None,
    shards: Annotated[int | None, typer.Option(
        "--shards", help="--ray: shards of a new sharded collection (default 2).", min=1,
        show_default=False)] = None,
    encoders: Annotated[int, typer.Option(
        "--encoders", help="--ray: encoding actors, each holding the model.", min=1)] = 1,
    gpus: Annotated[float, typer.Option(
        "--gpus", help="--ray: GPUs per encoding actor (0: CPU actors).", min=0)] = 0,
    vectors_column: Annotated[str | None, typer.Option(
        "--vectors-column", help="--ray: a column of precomputed vectors (no model runs).",
        show_default=False)] = None,
    verbose: Annotated[bool, typer.Option(
        "--verbose", help="--ray: show Ray Data's own progress bars and logs too.")] = False,
) -> None:
    """Encode a corpus into a collection (documents already in it are skipped).

    Documents with neither title nor text are skipped with one warning (--strict: an error).
    An interrupted run resumes where it stopped. Without --chunking, documents longer than
    the model reads are embedded by their start only (a warning counts them).

    Example: tiervec index ../shared/data/long/qmsum --collection qmsum.tv --chunking late

    On Ray: tiervec index corpus/ --collection big.tv --ray --shards 4 --encoders 2
    """

    def go() -> None:
        from tiervec.corpus import corpus_file
        from tiervec.encode.chunking import ChunkingConfig
        from tiervec.ingest import IndexOptions, open_or_create

        options = IndexOptions(
            model=model, tiers=tiers, lexical=lexical, recall_target=recall_target,
            chunking=None if chunking is None else ChunkingConfig(
                method=chunking, tokens=chunk_tokens, overlap=overlap,  # type: ignore[arg-type]
                sentences=sentences, window=window, aggregate=aggregate),  # type: ignore[arg-type]
            multivector=_multivector_config(fde, candidates, token_codec) if multivector else None)
        if ray or shards is not None or address is not None:
            from tiervec.cli.distribute import index_on_ray

            index_on_ray(corpus, collection, options, address=address, shards=shards,
                         encoders=encoders, gpus=gpus, vectors_column=vectors_column,
                         verbose=verbose)
            return
        corpus_file(corpus)  # a missing corpus fails before a collection is created
        col, _ = open_or_create(collection, options)
        with col:
            stats = index_with_progress(col, corpus, strict)
            rows = f", {col.stats().rows:,} chunks" if col.chunking else ""
            console.print(
                f"[green]{collection}[/]: {len(col):,} documents{rows} ({stats.added:,} "
                f"added, {stats.skipped:,} already there); tiers [bold]{col.chain}[/], "
                f"{col.chain.ram_bytes_per_vector(col.dim)} RAM bytes/vector"
            )
            if col.truncated:
                warn_truncated(col.truncated, getattr(col.encoder, "max_length", "?"))

    _run(go)


@app.command()
def search(
    collection: Annotated[Path, typer.Argument(help="Collection folder.")],
    query: Annotated[str, typer.Argument(help="Query text.")],
    k: Annotated[int, typer.Option("-k", help="Number of results.", min=1)] = 10,
    filter_: Annotated[str | None, typer.Option(
        "--filter", "-f", help="Only documents whose metadata match, e.g. 'year >= 2020 and "
        "lang in [\"en\", \"fr\"]' (`tiervec info` lists the fields).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    mode: Annotated[str, typer.Option(
        "--mode", help="dense (the tier chain), lexical (BM25), hybrid (both, fused) or "
        "multivector (FDE candidates re-ranked by MaxSim; a multi-vector collection's dense).")
    ] = "dense",
    hybrid: Annotated[bool, typer.Option("--hybrid", help="Same as --mode hybrid.")] = False,
    lexical: Annotated[bool, typer.Option("--lexical", help="Same as --mode lexical.")] = False,
    fusion: Annotated[str | None, typer.Option(
        "--fusion", help="Hybrid fusion: rrf, minmax or dbsf (default: the collection's, "
        "see `tiervec tune`).")] = None,
    weight: Annotated[float | None, typer.Option(
        "--weight", help="Hybrid: the dense side's weight in [0, 1] (with --fusion), scaled "
        "by the share of the documents' text the model read unless the collection's fusion "
        "has coverage off.")] = None,
    min_relevance: Annotated[float | None, typer.Option(
        "--min-relevance", help="Only results whose calibrated probability of relevance is at "
        "least this (fit one with `tiervec tune --apply`).")] = None,
) -> None:
    """Search a collection with a text query and print the top results.

    A filter keeps the documents whose metadata match: == != < <= > >=,
    in [...], not in [...], contains, exists, joined by and, or, not and ( ).
    tiervec --verbose search ... logs how many documents match and the strategy.

    Example: tiervec search my-col "solar panels" -k 5 --filter 'year >= 2020' --hybrid
    """

    def go() -> None:
        from tiervec.hits import to_hits

        chosen = "hybrid" if hybrid else "lexical" if lexical else mode
        with open_searchable(collection, read_only=True) as col:
            if filter_ is not None and log.isEnabledFor(logging.INFO):
                plan = col.explain(filter_)
                log.info("filter %r matches %d documents (%.1f%%); strategy: %s", filter_,
                         plan.matches, 100 * plan.share, plan.strategy)
            options = _fusion_options(col, fusion, weight)
            found = col.search(query, k=k, filter=filter_, mode=chosen, fusion=options,
                               min_relevance=min_relevance)
            hits = [h.to_dict() for h in to_hits(col, found)[0]]
        if as_json:
            console.print_json(json.dumps({"query": query, "filter": filter_, "results": hits}))
            return
        title = query if filter_ is None else f"{query}  (filter: {filter_})"
        table = Table(title=escape(title), title_justify="left")
        for name, kw in (("#", {"justify": "right"}), ("id", {}), ("score", {"justify": "right"}),
                         ("document", {"overflow": "fold", "ratio": 1})):
            table.add_column(name, **kw)  # type: ignore[arg-type]
        for hit in hits:
            title = f"[bold]{escape(hit['title'])}[/] " if hit["title"] else ""
            span = hit.get("span")
            text = hit["text"] if span is None else "…" + hit["text"][span[0]:span[1]] + "…"
            snippet = title + escape(_clip(text, 160 if span is None else 320))
            table.add_row(str(hit["rank"]), escape(hit["id"]), f"{hit['score']:.4f}", snippet)
        console.print(table)

    _run(go)


@app.command()
def docs(
    collection: Annotated[Path, typer.Argument(help="Collection folder.")],
    filter_: Annotated[str | None, typer.Option(
        "--filter", "-f", help="Only documents whose metadata match, e.g. 'year >= 2020'.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000,
                                       help="Documents per page.")] = 20,
    cursor: Annotated[str | None, typer.Option(
        "--cursor", help="Start after this id (the cursor a page printed).")] = None,
) -> None:
    """List a collection's documents in id order, one JSON object a line, a page at a time.

    The next page's cursor goes to standard error (none after the last page).

    Example: tiervec docs my-col --filter 'year >= 2020' -n 100 > page.jsonl
    """

    def go() -> None:
        import sys

        from tiervec.wire import document_to_dict

        with open_searchable(collection, read_only=True) as col:
            page = col.scroll(filter_, limit=limit, cursor=cursor)
        for doc in page.documents:
            sys.stdout.write(json.dumps(document_to_dict(doc), ensure_ascii=False) + "\n")
        if page.cursor is not None:
            err_console.print(f"next page: --cursor {escape(repr(page.cursor))}",
                              highlight=False)

    _run(go)


def _multivector_config(fde: str, candidates: int, token_codec: str) -> Any:
    """The ``MultiVectorConfig`` of ``--fde RxBxD``, ``--candidates`` and ``--token-codec``."""
    from tiervec.encode.muvera import MultiVectorConfig, MuveraConfig

    parts = fde.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise typer.BadParameter(f"{fde!r} is not REPSxBITSxDIMS (e.g. 20x4x16)",
                                 param_hint="--fde")
    reps, bits, dims = map(int, parts)
    return MultiVectorConfig(muvera=MuveraConfig(reps=reps, k_sim=bits, dim_proj=dims),
                             candidates=candidates,
                             token_codec=None if token_codec == "none" else token_codec)


def _fusion_options(col: Any, method: str | None, weight: float | None) -> Any:
    """The fusion ``--fusion``/``--weight`` ask for, over the collection's default."""
    if method is None and weight is None:
        return None
    from tiervec.search import FusionConfig

    changes = {"method": method, "weight": weight}
    return FusionConfig.from_dict({**col.fusion.to_dict(),
                                   **{k: v for k, v in changes.items() if v is not None}})


def _describe_lexical(col: object) -> str:
    config = col.lexical_config  # type: ignore[attr-defined]
    if config is None:
        return f"none (`tiervec lexical {col.path}` builds one)"  # type: ignore[attr-defined]
    words = config.stopwords if isinstance(config.stopwords, str) or config.stopwords is None \
        else f"{len(config.stopwords)} words"
    return (f"BM25 k1={config.k1:g} b={config.b:g}, stemmer {config.stemmer}, stop words "
            f"{words}")


def _clip(text: str, width: int) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= width else text[: width - 1] + "…"


@app.command()
def info(collection: Annotated[Path, typer.Argument(help="Collection folder.")]) -> None:
    """Show what a collection holds, what its tiers cost, and the metadata fields to filter on.

    Example: tiervec info my-collection
    """

    def go() -> None:

        with open_searchable(collection, read_only=True) as col:
            chain, dim, n, fields = col.chain, col.dim, len(col), col.fields
            unreclaimed = col.stats().deleted  # deleted or replaced, not compacted yet
            table = Table(title=str(collection), title_justify="left", show_header=False)
            ram, disk = chain.ram_bytes_per_vector(dim), chain.disk_bytes_per_vector(dim)
            for key, value in (
                ("documents", f"{n:,}"), ("model", str(col.model)), ("dimension", str(dim)),
                ("tiers", str(chain)),
                ("RAM", f"{ram} B/vector = {ram * n / 2**20:,.1f} MiB "
                        f"({4 * dim / max(ram, 1):.0f}x smaller than float32)"),
                ("disk tiers", f"{disk} B/vector = {disk * n / 2**20:,.1f} MiB"),
                ("recall", describe_recall(col.stats().recall)),
                ("model upgrade", describe_upgrade(col.stats().upgrade)),
                ("disk reads", f"{chain.disk_reads_per_query(10, n)} vectors per query at k=10"
                 " (as written; the measured setting above is what runs)"),
                ("not compacted", f"{unreclaimed:,} deleted or replaced documents" + (
                    " (`tiervec compact` reclaims their space)" if unreclaimed else "")),
                ("chunking", col.chunking.describe() + f" ({col.stats().rows:,} chunks)"
                 if col.chunking else "none (a vector per document)"),
                ("multi-vector", col.multivector.describe() if col.multivector else "no"),
                ("lexical index", _describe_lexical(col)),
                ("hybrid fusion", col.fusion.describe() + (
                    " (tuned)" if col.fusion_tuned else " (default; `tiervec tune` tunes it)")),
                ("calibrated", ", ".join(m for m in ("dense", "lexical", "hybrid")
                                         if col.calibration(m) is not None) or "none"),
                ("metadata fields", str(len(fields))),
            ):
                table.add_row(key, escape(value))
            console.print(table)
            if fields:
                ftable = Table(title="metadata fields", title_justify="left")
                for name in ("field", "type", "indexed"):
                    ftable.add_column(name)
                for f in sorted(fields.values(), key=lambda f: f.name):
                    ftable.add_row(escape(f.name), f.type.value, "yes" if f.indexed else "no")
                console.print(ftable)

    _run(go)

