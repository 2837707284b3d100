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
