"""The JSON bodies of the HTTP API (request and response schemas; OpenAPI is made from these).

Checks that need the collection (dimension, filter fields, ids already there) are the
library's own, made when the request reaches it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from tiervec.encode.base import DEFAULT_MODEL
from tiervec.search.spec import DEFAULT_CHAIN
from tiervec.serve.config import NAME

Strict = ConfigDict(extra="forbid", strict=True)


def _whole(value: Any) -> Any:
    """``10.0`` as ``10``: JSON has one number type, and JSON Schema's integer is any number
    without a fraction; anything else is left for the strict check to refuse."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


#: An integer field of a request: whole-number floats (``10.0``) accepted.
Int = Annotated[int, BeforeValidator(_whole)]
#: A filter: the string form (``'year >= 2020 and lang == "en"'``) or the dict form.
FilterIn = Annotated[str | dict[str, Any] | None, Field(
    description="Only documents whose metadata match: a string such as "
    "'year >= 2020 and lang == \"en\"' or an object such as {\"year\": {\"$gte\": 2020}}.")]


class BinaryVectors(BaseModel):
    """Vectors as the base64 text of their little-endian float32 bytes, row after row."""

    model_config = Strict
    base64: str
    shape: Annotated[list[Annotated[Int, Field(ge=0)]], Field(min_length=2, max_length=2)]
    dtype: Literal["float32"] = "float32"


VectorsIn = list[list[float]] | BinaryVectors


class ChunkingIn(BaseModel):
    """How a new collection cuts documents into chunks of the model's tokens."""

    model_config = Strict
    method: Literal["late", "naive"] = Field("late", description="late: the model reads the "
                                             "whole document, each chunk is pooled; naive: "
                                             "each chunk is read alone.")
    tokens: Annotated[Int, Field(ge=8, le=8192)] = 128
    overlap: Annotated[Int, Field(ge=0, le=8191)] = 16
    sentences: bool = False
    window: Annotated[Int, Field(ge=16, le=8192)] | None = None
    aggregate: Literal["max", "top3", "sum"] = "max"


class MultiVectorIn(BaseModel):
    """A new multi-vector collection: token vectors kept, MUVERA FDEs searched by the chain,
    MaxSim re-ranking the top ``candidates``."""

    model_config = Strict
    reps: Annotated[Int, Field(ge=1, le=64)] = 20
    k_sim: Annotated[Int, Field(ge=1, le=6)] = 4
    dim_proj: Annotated[Int, Field(ge=1, le=32)] = 16
    final_dim: Annotated[Int, Field(ge=1, le=65_536)] | None = None
    token_codec: Literal["int8", "binary"] | None = "int8"
    candidates: Annotated[Int, Field(ge=1, le=10_000)] = 100


class CreateCollection(BaseModel):
    model_config = Strict
    name: str = Field(description="1-64 letters, digits, '_' or '-', starting with a letter or "
                      "digit; unique regardless of case.", examples=["scifact"],
                      json_schema_extra={"pattern": NAME.pattern, "maxLength": 64})
    model: str | None = Field(DEFAULT_MODEL, description="Embedding model; null for a "
                              "vectors-only collection (then give dim).")
    dim: Annotated[Int, Field(ge=1)] | None = None
    tiers: str = Field(DEFAULT_CHAIN, description="The tier chain, e.g. "
                       "'binary*4 -> float32@disk'.")
    fields: dict[str, str] = Field(default_factory=dict, description="Metadata field types, "
                                   "e.g. {\"year\": \"int\", \"tags\": \"list[str]\"}.")
    indexes: list[str] = Field(default_factory=list, description="Fields to index in SQLite.")
    lexical: bool | None = Field(None, description="Keep a BM25 index for lexical and hybrid "
                                 "search (default: yes when the collection has a model).")
    chunking: ChunkingIn | None = Field(None, description="Cut documents into chunks, a "
                                        "vector each (default: a vector per document).")
    multivector: MultiVectorIn | None = Field(None, description="Keep every token's vector "
                                              "(MUVERA + MaxSim search).")
    recall_target: Annotated[float, Field(gt=0, le=1)] | None = Field(
        0.95, description="Recall@10 against exact search kept as the collection grows: the "
        "cheapest oversampling (and ANN effort) meeting it is measured on the collection's own "
        "vectors; null keeps none (the chain's oversampling as written).")


class DocumentIn(BaseModel):
    model_config = Strict
    id: Annotated[str, Field(min_length=1, max_length=512)]
    text: str = ""
    title: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


class WriteDocuments(BaseModel):
    """Documents to add (POST) or upsert (PUT). Without ``vectors`` the server encodes the
    texts with the collection's model; with them (one per document) nothing is encoded."""

    model_config = Strict
    documents: list[DocumentIn]
    vectors: VectorsIn | None = None


class IdsIn(BaseModel):
    model_config = Strict
    ids: list[str]


class DeleteIn(BaseModel):
    """Documents to delete: by ``ids``, or every one a ``filter`` matches (one of the two)."""

    model_config = Strict
    ids: list[str] | None = None
    filter: FilterIn = None


class ScrollIn(BaseModel):
    """A page of documents in id order: those ``filter`` matches after ``cursor`` (the
    ``cursor`` of the page before; none for the first)."""

    model_config = Strict
    filter: FilterIn = None
    limit: Annotated[Int, Field(ge=1, le=10_000)] = 100
    cursor: str | None = None


class MetadataUpdate(BaseModel):
    model_config = Strict
    id: Annotated[str, Field(min_length=1, max_length=512)]
    metadata: dict[str, Any]


class MetadataIn(BaseModel):
    """New metadata for documents by id: merged into theirs (a null value removes a field),
    or with ``replace`` instead of it. Nothing is encoded again."""

    model_config = Strict
    documents: list[MetadataUpdate]
    replace: bool = False


class FusionIn(BaseModel):
    """How a hybrid search fuses its dense and lexical lists (omitted fields: the
    collection's fusion, as tuned by ``tiervec tune``)."""

    model_config = Strict
    method: Literal["rrf", "minmax", "dbsf"] | None = None
    weight: Annotated[float, Field(ge=0, le=1)] | None = Field(
        None, description="The dense side's weight.")
    rrf_k: Annotated[float, Field(ge=0, le=1e6)] | None = None
    dense_depth: Annotated[Int, Field(ge=1, le=100_000)] | None = None
    lexical_depth: Annotated[Int, Field(ge=1, le=100_000)] | None = None
    coverage: bool | None = Field(
        None, description="Scale the dense weight by the share of the documents' text the "
        "model read.")


class SearchIn(BaseModel):
    """Exactly one of ``query``, ``queries``, ``vector`` and ``vectors``; lexical and hybrid
    searches take texts."""

    model_config = Strict
    query: str | None = None
    queries: list[str] | None = None
    vector: list[float] | None = None
    vectors: VectorsIn | None = None
    k: Annotated[Int, Field(ge=1)] = 10
    filter: FilterIn = None
    oversample: Annotated[Int, Field(ge=1)] | list[Annotated[Int, Field(ge=1)]] | None = Field(
        None, description="Candidates each passing tier hands on, as a multiple of k: one "
        "factor, or one per such tier (default: the collection's measured setting).")
    effort: Annotated[Int, Field(ge=1, le=1024)] | None = Field(
        None, description="An ANN first tier's nprobe / efSearch as a multiple of where it "
        "starts (default: the collection's measured setting).")
    include_documents: bool = Field(True, description="Return title, text and metadata.")
    mode: Literal["dense", "lexical", "hybrid", "multivector"] = Field(
        "dense", description="dense (the tier chain), lexical (BM25), hybrid (both fused) or "
        "multivector (FDE candidates re-ranked by MaxSim over token vectors).")
    fusion: FusionIn | None = None
    min_relevance: Annotated[float, Field(ge=0, le=1)] | None = Field(
        None, description="Only results whose calibrated probability of relevance is at "
        "least this (the collection needs a calibration: `tiervec tune --apply`).")
    tiers: str | None = Field(
        None, description="Search through another chain (e.g. 'int8*4 -> float32@disk'): "
        "its codes made in memory from the stored vectors, kept until the next write "
        "(what `tiervec eval` and `plan` over a server measure).", max_length=1000)
    aggregate: Literal["max", "top3", "sum"] | None = Field(
        None, description="A chunked collection: a document's score from its chunks'.")
    candidates: Annotated[Int, Field(ge=1, le=100_000)] | None = Field(
        None, description="A multi-vector collection: FDE candidates MaxSim re-ranks.")
    partial: bool | None = Field(
        None, description="A sharded collection: answer from the shards that are up when "
        "others stay down (the response's shards.failed names them) instead of 503 "
        "(default: the server's --partial setting).")


class FilterRequest(BaseModel):
    model_config = Strict
    filter: FilterIn = None


class ExplainIn(FilterRequest):
    """A search's filter and the per-request settings it would run with."""

    oversample: Annotated[Int, Field(ge=1)] | list[Annotated[Int, Field(ge=1)]] | None = None
    effort: Annotated[Int, Field(ge=1, le=1024)] | None = None
    tiers: str | None = Field(None, max_length=1000)


class EncodeIn(BaseModel):
    """Query texts to encode with the collection's model."""

    model_config = Strict
    texts: list[str]


class SampleIn(BaseModel):
    model_config = Strict
    n: Annotated[Int, Field(ge=0)]
    seed: Annotated[Int, Field(ge=0, le=2**63 - 1)] = 0


class SampleOut(BaseModel):
    ids: list[str]


class EncodeOut(BaseModel):
    vectors: dict[str, Any] = Field(description="The query vectors, in the binary form "
                                    "(base64 float32, shape).")


# -- responses ----------------------------------------------------------------------------------
class ErrorBody(BaseModel):
    code: str = Field(description="The tiervec.errors class, e.g. 'DimensionMismatch'.")
    message: str
    status: int
    position: int | None = None
    text: str | None = None
    details: list[dict[str, Any]] | None = None


class ErrorOut(BaseModel):
    error: ErrorBody


class DocumentOut(BaseModel):
    id: str
    title: str
    text: str
    metadata: dict[str, Any]


class HitOut(BaseModel):
    id: str
    score: float
    title: str | None = None
    text: str | None = None
    metadata: dict[str, Any] | None = None
    span: list[int] | None = Field(None, description="A chunked collection: the character "
                                   "range [start, end) of the best chunk in text.")


class ShardsOut(BaseModel):
    answered: list[str]
    failed: dict[str, str] = Field(description="Shards that did not answer, and why.")


class SearchOut(BaseModel):
    results: list[list[HitOut]]
    shards: ShardsOut | None = Field(None, description="A sharded collection: which shards "
                                     "answered.")
    took_ms: float


class WriteOut(BaseModel):
    added: int = 0
    replaced: int = 0
    deleted: int = 0
    missing: list[str] = Field(default_factory=list)


class GetOut(BaseModel):
    documents: list[DocumentOut | None]


class PageOut(BaseModel):
    documents: list[DocumentOut]
    cursor: str | None = Field(description="The next page's cursor; null after the last.")


class CountOut(BaseModel):
    count: int


class ExplainOut(BaseModel):
    matches: int
    share: float
    strategy: str
    recall: float | None = Field(None, description="Estimated recall@k against exact search "
                                 "of an unfiltered search at this setting (null: not measured).")
    oversample: int | None = None
    effort: int | None = None


class TierOut(BaseModel):
    spec: str
    location: str
    bytes_per_vector: int
    ram_bytes: int
    disk_bytes: int


class FieldOut(BaseModel):
    type: str
    indexed: bool


class StatsOut(BaseModel):
    documents: int
    rows: int
    deleted: int
    deleted_share: float
    segments: int
    dim: int
    model: str | None
    chain: str
    tiers: list[TierOut]
    ram_bytes: int
    disk_bytes: int
    ram_bytes_per_vector: int
    full_precision: bool
    recall: dict[str, Any] | None = Field(None, description="The recall target kept and its "
                                          "last measurement (null: no target kept).")
    shards: dict[str, str | None] | None = Field(
        None, description="A sharded collection: each shard, null when it answers, else why "
        "not (the other figures count the shards that answer).")
    upgrade: dict[str, Any] | None = Field(None, description="A model upgrade under way "
                                           "(null: none).")


class UpgradeIn(BaseModel):
    """Start a model upgrade (``model``), or go on with the backfill of one under way (no
    ``model``); it runs in the background: ``GET .../upgrade`` tells where it stands."""

    model_config = Strict
    model: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    sample: Annotated[Int, Field(ge=1, le=1_000_000)] = 5_000
    direction: Literal["auto", "to-current", "to-new"] = "auto"
    kind: Literal["procrustes", "lstsq", "mlp"] = "procrustes"
    backfill: bool = Field(True, description="Re-encode the documents after the map (false: "
                           "stay mapped until asked).")
    cpu_share: Annotated[float, Field(gt=0, le=1)] = 0.5


class UpgradeOut(BaseModel):
    running: bool = Field(description="Whether the upgrade's background work is running.")
    error: dict[str, str] | None = Field(None, description="Why the last background run "
                                         "stopped, if it failed ({code, message}).")
    upgrade: dict[str, Any] | None = Field(description="The upgrade under way (null: none).")
    model: str | None


class CollectionOut(BaseModel):
    name: str
    documents: int
    dim: int
    model: str | None
    chain: str
    fields: dict[str, FieldOut]
    has_plan: bool
    lexical: bool
    fusion: dict[str, Any]
    calibrated: list[str]
    chunking: dict[str, Any] | None = None
    multivector: dict[str, Any] | None = None


class CollectionsOut(BaseModel):
    collections: list[CollectionOut]


class HealthOut(BaseModel):
    status: str


class ReadyOut(BaseModel):
    ready: bool
    served: int = Field(description="Collections open.")
    failures: int = Field(description="Collections that could not be opened.")
    collections: list[str] | None = Field(None, description="Their names (with the API key "
                                          "only, when the server has one).")
    failed: dict[str, str] | None = Field(None, description="Why each failure could not be "
                                          "opened (with the API key only).")
    shards_down: int = Field(0, description="Shards of sharded collections that do not "
                             "answer (after trying to revive them).")
    down: dict[str, dict[str, str]] | None = Field(
        None, description="Collection -> shard -> why (with the API key only).")
