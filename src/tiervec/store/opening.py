"""Making a new collection folder and reopening an existing one (checks, lock, clean-up)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tiervec.codecs import make_codec
from tiervec.encode import Encoder, EncoderConfig, load_encoder
from tiervec.encode.base import TokenEncoder
from tiervec.encode.chunking import ChunkingConfig, fit_chunking
from tiervec.encode.muvera import MultiVectorConfig
from tiervec.errors import (
    CollectionError,
    CollectionMismatch,
    InvalidChunking,
    InvalidMultiVector,
    NotACollection,
)
from tiervec.lexical import LexicalConfig
from tiervec.store.docstore import DB, DocStore
from tiervec.store.fields import declared_fields, fields_to_manifest
from tiervec.store.layout import SHARDED, CollectionFiles
from tiervec.store.locks import WriterLock
from tiervec.store.manifest import Manifest


def new_folder(
    path: Path,
    *,
    model: str | EncoderConfig | None,
    dim: int | None,
    chain: str,
    codec_names: Sequence[str],
    encoder: Encoder | None,
    fields: Mapping[str, Any] | None,
    indexes: Sequence[str],
    lexical: LexicalConfig | None = None,
    chunking: ChunkingConfig | None = None,
    multivector: MultiVectorConfig | None = None,
    search: Mapping[str, Any] | None = None,
) -> tuple[Manifest, Encoder | None, WriterLock]:
    """Check the options, write an empty collection in ``path`` and hold its writer lock;
    returns its manifest, its encoder (loaded unless given) and the lock. ``chain`` is a
    canonical chain spec and ``codec_names`` its tiers' codecs; ``lexical``: the lexical
    index's config (``None``: no lexical index); ``chunking``: how documents are cut into
    chunks (``None``: a vector per document); ``multivector``: keep token vectors, the FDEs
    being the collection's vectors; ``search``: search settings (the recall target)."""
    declared = declared_fields(fields, indexes)
    if multivector is not None and (model is None or chunking is not None):
        raise InvalidMultiVector(
            "a multi-vector collection needs a model (it embeds every token) and takes no "
            "chunking (its token vectors already cover whole documents)")
    if chunking is not None and model is None:
        raise InvalidChunking(
            "a collection without a model cannot cut documents into chunks (it embeds "
            "nothing); give it a model, or add one vector per document without chunking")
    CollectionFiles(path).check_new_folder()
    config = EncoderConfig(model=model) if isinstance(model, str) else model
    if config is not None:
        encoder = encoder or load_encoder(config)
        if dim is not None and dim != encoder.dim:
            raise CollectionMismatch(
                f"dim={dim} was given but model {config.model!r} makes {encoder.dim}-d "
                "vectors; drop dim (it is taken from the model)"
            )
        dim = encoder.dim
        if chunking is not None:
            if not isinstance(encoder, TokenEncoder):
                raise InvalidChunking(
                    f"the encoder of {config.model!r} exposes no word pieces, so it cannot cut "
                    "documents into chunks; use a sentence-transformers model")
            chunking = fit_chunking(chunking, encoder)
        token_dim, dim = dim, dim if multivector is None else multivector.muvera.dim
    elif dim is None or dim <= 0:
        raise CollectionError(
            "a collection without a model needs dim=<vector dimension>; or pass model=..."
        )
    for name in codec_names:
        make_codec(name, dim)
    manifest = Manifest(
        dim=int(dim), chain=chain, encoder=config.to_dict() if config else None,
        fields=fields_to_manifest(declared),
        lexical=None if lexical is None else {"key": "lex-0", "config": lexical.to_dict()},
        chunking=None if chunking is None else chunking.to_dict(),
        multivector=None if multivector is None else {"config": multivector.to_dict(),
                                                      "token_dim": token_dim},
        search=dict(search or {}),
    )
    CollectionFiles(path).make_dirs()
    lock = WriterLock(path)
    try:
        docs = DocStore(path / DB, next_row=0)
        for f in declared.values():
            if f.indexed:
                docs.create_index(f)
        docs.close()
        manifest.write(path)
    except BaseException:
        lock.release()
        raise
    return manifest, encoder, lock


def existing_folder(path: Path, read_only: bool) -> tuple[Manifest, WriterLock | None]:
    """The manifest of the collection in ``path``; a writer also gets the writer lock, and what
    an interrupted write left behind is removed first."""
    if not path.is_dir():
        raise NotACollection(
            f"{str(path)!r} does not exist or is not a folder; create a collection with "
            "tiervec.create() or `tiervec index`"
        )
    if (path / SHARDED).is_file():
        raise NotACollection(
            f"{str(path)!r} holds a sharded collection, not a single one; open it with "
            "tiervec.open_sharded() (on Ray), or open one of its shard folders")
    manifest = Manifest.read(path)
    if read_only:
        return manifest, None
    lock = WriterLock(path)
    try:
        CollectionFiles(path).remove_leftovers(manifest)
    except BaseException:
        lock.release()
        raise
    return manifest, lock
