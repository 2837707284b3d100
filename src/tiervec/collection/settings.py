"""What a new collection is made with, as one value: the options of
:meth:`tiervec.Collection.create` but the encoder (a live object, not a setting). A sharded
collection creates each shard from one, so its options cannot drift from one collection's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tiervec.encode import DEFAULT_MODEL, Encoder, EncoderConfig
from tiervec.encode.chunking import ChunkingConfig
from tiervec.encode.models import Backend, backend_of
from tiervec.encode.muvera import MultiVectorConfig
from tiervec.lexical import LexicalConfig
from tiervec.search import Chain
from tiervec.search.recall import DEFAULT_TARGET, RecallTarget
from tiervec.search.spec import DEFAULT_CHAIN
from tiervec.store import opening
from tiervec.store.locks import WriterLock
from tiervec.store.manifest import Manifest


@dataclass(frozen=True, kw_only=True)
class CollectionSettings:
    """A new collection's options (:meth:`tiervec.Collection.create` takes them by name)."""

    #: A packaged model's name, a local model folder or an EncoderConfig; ``None`` makes a
    #: vectors-only collection (``dim`` required).
    model: str | EncoderConfig | None = DEFAULT_MODEL
    #: The vectors' dimension: a vectors-only collection's; otherwise the model's.
    dim: int | None = None
    #: The chain spec, such as ``"binary*4 -> float32@disk"``.
    tiers: str | Chain = DEFAULT_CHAIN
    #: Metadata field types (``{"year": "int", "tags": "list[str]"}``); undeclared fields get
    #: the type of their first value.
    fields: Mapping[str, Any] | None = None
    #: The fields to index in SQLite.
    indexes: Sequence[str] = ()
    #: A BM25 index of the titles and texts for lexical and hybrid search: ``True`` or a
    #: LexicalConfig, ``False`` for none; by default collections whose model reads texts have
    #: one, vectors-only and image ones do not.
    lexical: bool | LexicalConfig | None = None
    #: Cut each document into chunks of the model's word pieces, a vector per chunk
    #: (``"late"``, ``"naive"`` or a ChunkingConfig); searches still return documents, each
    #: with its best chunk's span as evidence.
    chunking: ChunkingConfig | str | None = None
    #: Keep every document's token vectors (``True`` or a MultiVectorConfig): its MUVERA FDE
    #: is the vector the chain compresses and searches, and MaxSim over the tokens re-ranks
    #: the candidates.
    multivector: MultiVectorConfig | bool | None = None
    #: The recall@10 against exact search the collection keeps as it grows (a fraction in
    #: (0, 1], or a RecallTarget; ``None``: the chain's oversampling as written): the chain is
    #: measured on the collection's own vectors and the cheapest setting that meets it is used.
    recall_target: float | RecallTarget | None = DEFAULT_TARGET

    @property
    def encoder_config(self) -> EncoderConfig | None:
        model = self.model
        return EncoderConfig(model=model) if isinstance(model, str) else model

    def _has_text(self) -> bool:
        """Whether documents are texts a lexical index can read (a model, not an image one)."""
        config = self.encoder_config
        return config is not None and backend_of(config.model) is not Backend.CLIP

    def options(self) -> dict[str, Any]:
        """The settings as :meth:`tiervec.Collection.create`'s keyword arguments."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def new_folder(self, path: Path, encoder: Encoder | None
                   ) -> tuple[Manifest, Encoder | None, WriterLock]:
        """Make ``path`` a new, empty collection folder with these settings: its first
        manifest, the encoder (``encoder``, or loaded to learn the model's dimension) and the
        writer lock, taken."""
        chain = Chain.parse(self.tiers)
        lexical = self._has_text() if self.lexical is None else self.lexical
        chunking = ChunkingConfig(method=self.chunking) if isinstance(  # type: ignore[arg-type]
            self.chunking, str) else self.chunking
        target = self.recall_target
        if target is not None and not isinstance(target, RecallTarget):
            target = RecallTarget(target=target)
        return opening.new_folder(
            path, model=self.model, dim=self.dim, chain=str(chain),
            codec_names=[t.codec for t in chain.tiers], encoder=encoder, fields=self.fields,
            indexes=self.indexes, lexical=LexicalConfig() if lexical is True else (lexical or None),
            chunking=chunking,
            multivector=MultiVectorConfig() if self.multivector is True else (
                self.multivector or None),
            search={"recall_target": None if target is None else target.to_dict()})
