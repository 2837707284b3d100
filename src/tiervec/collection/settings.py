"""What a new collection is made with, as one value: the options of
:meth:`tiervec.Collection.create` but the encoder (a live object, not a setting). A sharded
collection creates each shard from one, so its options cannot drift from one collection's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiervec.collection.core import Collection
from tiervec.encode import DEFAULT_MODEL, Encoder, EncoderConfig
from tiervec.encode.chunking import ChunkingConfig
from tiervec.encode.muvera import MultiVectorConfig
from tiervec.lexical import LexicalConfig
from tiervec.search import Chain
from tiervec.search.recall import DEFAULT_TARGET, RecallTarget
from tiervec.search.spec import DEFAULT_CHAIN


@dataclass(frozen=True, kw_only=True)
class CollectionSettings:
    """A new collection's model (or ``dim`` for vectors only), chain, metadata fields and
    indexes, lexical index, chunking or multi-vector encoding, and recall target (see
    :meth:`tiervec.Collection.create` for each)."""

    model: str | EncoderConfig | None = DEFAULT_MODEL
    dim: int | None = None
    tiers: str | Chain = DEFAULT_CHAIN
    fields: Mapping[str, Any] | None = None
    indexes: Sequence[str] = ()
    lexical: bool | LexicalConfig | None = None
    chunking: ChunkingConfig | str | None = None
    multivector: MultiVectorConfig | bool | None = None
    recall_target: float | RecallTarget | None = DEFAULT_TARGET

    @property
    def encoder_config(self) -> EncoderConfig | None:
        model = self.model
        return EncoderConfig(model=model) if isinstance(model, str) else model

    def create(self, path: str | Path, encoder: Encoder | None = None) -> Collection:
        """A new, empty collection in ``path`` with these settings."""
        return Collection.create(
            path, model=self.model, dim=self.dim, tiers=self.tiers, encoder=encoder,
            fields=self.fields, indexes=self.indexes, lexical=self.lexical,
            chunking=self.chunking, multivector=self.multivector,
            recall_target=self.recall_target)
