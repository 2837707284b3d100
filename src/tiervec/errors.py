"""Errors raised by tiervec.

Every error says what was received, what was expected and how to fix it. Each one also
inherits the built-in exception a caller would naturally catch::

    TiervecError
    ├── CorpusError(ValueError)
    │   ├── CorpusNotFound(FileNotFoundError)
    │   └── MalformedCorpus
    │       └── EmptyDocument
    ├── DuplicateIds(ValueError)
    ├── InvalidText(ValueError)               (a lone surrogate in a string; an empty query)
    ├── InvalidVectors(ValueError)
    │   └── DimensionMismatch
    ├── InvalidTierSpec(ValueError)
    │   └── UnknownCodec(KeyError)
    ├── ModelNotFound(LookupError)
    ├── CollectionError(ValueError)
    │   ├── NotACollection
    │   ├── CollectionNotFound(LookupError)
    │   ├── CollectionExists
    │   ├── CollectionMismatch
    │   ├── UnsupportedFormatVersion
    │   ├── CollectionLocked
    │   ├── ReadOnlyLocation(PermissionError)
    │   ├── LexicalIndexMissing(LookupError)  (lexical/hybrid search without a lexical index)
    │   ├── TokenVectorsMissing(LookupError)  (multi-vector search without token vectors)
    │   ├── CalibrationMissing(LookupError)   (min_relevance without a fitted calibration)
    │   └── ShardedUnsupported                (what a sharded collection cannot do yet)
    ├── FilterError(ValueError)
    │   ├── FilterSyntaxError
    │   ├── UnknownField(KeyError)
    │   ├── FilterTooComplex                  (more conditions in one chain than SQLite takes)
    │   └── FieldTypeError(TypeError)
    │       └── TooManyFields                 (a collection's metadata fields over the limit)
    ├── DocumentNotFound(LookupError)
    ├── EncoderRequired(RuntimeError)
    ├── MissingDependency(ImportError)
    ├── PlanError(ValueError)
    │   ├── BudgetTooSmall
    │   └── PlanNotFound(LookupError)
    ├── InvalidSearchOptions(ValueError)      (a fusion weight, depth or min_relevance out of range)
    ├── InvalidChunking(ValueError)           (chunk size, overlap or chunking method out of range)
    ├── InvalidMultiVector(ValueError)        (MUVERA or token-vector options out of range)
    ├── InvalidUpgrade(ValueError)            (a model upgrade asked wrongly: same model, too
    │   │                                      few texts for the map, a second upgrade...)
    │   └── UpgradeInProgress                 (another upgrade, or a switch before the backfill)
    ├── InvalidRequest(ValueError)            (the HTTP API: a request of the wrong shape)
    │   └── LimitExceeded                     (a request over one of the server's limits)
    ├── InsecureServer(ValueError)            (server settings that would open it by mistake)
    ├── Unauthorized(PermissionError)         (no or a wrong API key)
    │   └── Forbidden                         (a read-only key asked to write)
    ├── ServerError(RuntimeError)             (the client: the server failed or is unreachable)
    │   └── ServerUnavailable(ConnectionError)
    └── ClusterError(RuntimeError)            (Ray: a sharded collection's cluster)
        ├── ClusterUnavailable(ConnectionError)  (no Ray cluster at the address given)
        └── ShardUnavailable(ConnectionError)    (a shard's actor is down and stays down)

Over HTTP an error travels as ``{"error": {"code": <class name>, "message": ...}}``;
:class:`tiervec.Client` raises the same class again.
"""

from __future__ import annotations


class TiervecError(Exception):
    """Base class of every error tiervec raises on purpose."""


class CorpusError(TiervecError, ValueError):
    """A corpus, query or relevance file cannot be read."""


class CorpusNotFound(CorpusError, FileNotFoundError):
    """A corpus or dataset file or folder does not exist."""


class MalformedCorpus(CorpusError):
    """A corpus file exists but a record in it is not valid."""


class EmptyDocument(MalformedCorpus):
    """A document has neither title nor text (corpus readers skip such records unless
    strict); ``doc_id`` names it."""

    def __init__(self, message: str, doc_id: str = "") -> None:
        super().__init__(message)
        self.doc_id = doc_id


class DuplicateIds(TiervecError, ValueError):
    """Document ids repeat within a batch, or already exist in the collection."""


class InvalidText(TiervecError, ValueError):
    """A string (an id, a text, a metadata key or value, a query) is not valid Unicode: it
    holds a lone UTF-16 surrogate (``\\ud800``-``\\udfff``), which no database or model takes;
    or a query text is empty."""


class InvalidVectors(TiervecError, ValueError):
    """Vectors are not a finite 2-d float array."""


class DimensionMismatch(InvalidVectors):
    """Vectors have another dimension than the collection or codec expects."""


class InvalidTierSpec(TiervecError, ValueError):
    """A tier chain spec string or config cannot be parsed."""


class UnknownCodec(InvalidTierSpec, KeyError):
    """A codec name is not one tiervec knows."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ModelNotFound(TiervecError, LookupError):
    """An embedding model is neither an installed package nor a local folder."""


class CollectionError(TiervecError, ValueError):
    """A collection folder cannot be used as asked."""


class NotACollection(CollectionError):
    """A folder exists but does not hold a tiervec collection."""


class CollectionMismatch(CollectionError):
    """A collection exists but was built with other settings (model, dimension...)."""


class UnsupportedFormatVersion(CollectionError):
    """A collection was written by a newer tiervec than this one."""


class EncoderRequired(TiervecError, RuntimeError):
    """Text was given to a collection that has no embedding model."""


class MissingDependency(TiervecError, ImportError):
    """An optional dependency is not installed."""


class PlanError(TiervecError, ValueError):
    """A plan cannot be made as asked (queries, labels, vectors)."""


class BudgetTooSmall(PlanError):
    """No setting fits the RAM budget; the message names the smallest achievable."""


class PlanNotFound(PlanError, LookupError):
    """No plan has been run on the collection (``tiervec plan`` keeps its results there)."""


class CollectionLocked(CollectionError):
    """Another process holds the collection's writer lock."""


class ReadOnlyLocation(CollectionError, PermissionError):
    """The collection folder cannot be written (read-only file system or permissions)."""


class FilterError(TiervecError, ValueError):
    """A metadata filter or a metadata value cannot be used as given."""


class FilterSyntaxError(FilterError):
    """A filter string is malformed; ``position`` is the offset of the problem in ``text``."""

    def __init__(self, message: str, text: str = "", position: int = 0) -> None:
        self.text = text
        self.position = position
        if text:
            message = f"{message} at position {position}:\n  {text}\n  {' ' * position}^"
        super().__init__(message)


class UnknownField(FilterError, KeyError):
    """A filter names a metadata field the collection does not have."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class FieldTypeError(FilterError, TypeError):
    """A metadata value or filter operand has the wrong type for its field."""


class TooManyFields(FieldTypeError):
    """A write would give the collection more metadata fields than it may have
    (:data:`tiervec.filters.schema.MAX_FIELDS`)."""


class FilterTooComplex(FilterError):
    """A filter chains or nests more conditions than SQLite evaluates in one expression."""


class CollectionNotFound(CollectionError, LookupError):
    """No collection of that name is served (or exists in the data directory)."""


class CollectionExists(CollectionError):
    """A collection of that name already exists."""


class DocumentNotFound(TiervecError, LookupError):
    """No document with that id is in the collection."""


class InvalidRequest(TiervecError, ValueError):
    """An HTTP request is malformed or has fields of the wrong type."""


class LimitExceeded(InvalidRequest):
    """A request exceeds one of the server's limits (body size, documents, text length...)."""


class InsecureServer(TiervecError, ValueError):
    """Server settings that would open it to anyone by mistake: an empty API key, a read key
    equal to the read-write one, a non-loopback address without a key (unless insecure)."""


class Unauthorized(TiervecError, PermissionError):
    """The request has no API key, or a wrong one."""


class Forbidden(Unauthorized):
    """The API key given may read but not write."""


class ServerError(TiervecError, RuntimeError):
    """The server failed to answer a request (a bug there: its log says more)."""


class ServerUnavailable(ServerError, ConnectionError):
    """The server cannot be reached (not started, wrong address, or restarting)."""


class LexicalIndexMissing(CollectionError, LookupError):
    """A lexical or hybrid search on a collection built without a lexical index."""


class CalibrationMissing(CollectionError, LookupError):
    """``min_relevance`` was asked of a search mode whose relevance was never fitted."""


class InvalidSearchOptions(TiervecError, ValueError):
    """A search option (mode, fusion, weight, depth, min_relevance) is out of range."""


class InvalidChunking(TiervecError, ValueError):
    """A chunking option (method, chunk size, overlap, window) is out of range, or chunking
    was asked of a collection that cannot chunk (no model, vectors given)."""


class InvalidMultiVector(TiervecError, ValueError):
    """A multi-vector option (MUVERA partitions, projections, repetitions, re-ranking depth,
    token codec) is out of range, or multi-vector storage was asked of a collection that
    cannot have it (no model, chunked, vectors given)."""


class InvalidUpgrade(TiervecError, ValueError):
    """A model upgrade cannot be done as asked: an upgrade to the model the collection already
    has, a collection without a model, a sample too small for the map between the spaces."""


class UpgradeInProgress(InvalidUpgrade):
    """A collection is already being upgraded (or is not, where a step needs it to be)."""


class TokenVectorsMissing(CollectionError, LookupError):
    """A multi-vector search on a collection built without token vectors."""


class ShardedUnsupported(CollectionError):
    """A sharded collection was asked for what only a single collection does (yet)."""


class ClusterError(TiervecError, RuntimeError):
    """A sharded collection's Ray cluster failed to do what was asked."""


class ClusterUnavailable(ClusterError, ConnectionError):
    """No Ray cluster answers at the address given."""


class ShardUnavailable(ClusterError, ConnectionError):
    """A shard's actor died and was not restarted in time, so its documents cannot be read.

    ``shards`` names the shards that did not answer."""

    def __init__(self, message: str, shards: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.shards = shards

    def __reduce__(self) -> tuple[object, ...]:
        return type(self), (str(self), self.shards)


class InvalidRecallTarget(TiervecError, ValueError):
    """A recall target outside (0, 1], or its k outside [1, 1000]."""
