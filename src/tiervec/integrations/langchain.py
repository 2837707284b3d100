"""tiervec as a LangChain vector store, over a local collection or a served one.

::

    from tiervec.integrations.langchain import TiervecVectorStore

    store = TiervecVectorStore(tiervec.open("papers"))                 # the collection's model
    store = TiervecVectorStore.from_texts(texts, embeddings, path="notes")  # LangChain's model
    store = TiervecVectorStore(tiervec.Client(url).open("papers"))     # a served collection
    store.similarity_search("solar panels", k=4, filter="year >= 2020")
    retriever = store.as_retriever()

With ``embedding`` given, LangChain's model embeds the texts and queries and the collection
stores those vectors (``model=None``, its dimension); without it, the collection encodes with
its own model. Filters are tiervec's (a dict or a string, over the metadata); ids are the
documents' ids (new ones are UUIDs); adding an id that is there replaces the document.
Passes ``langchain-tests``' standard ``VectorStoreIntegrationTests``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tiervec import errors

try:
    from langchain_core.documents import Document as LCDocument
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore
except ImportError as exc:  # the langchain extra
    raise errors.MissingDependency(f"the LangChain adapter needs langchain-core ({exc}); "
                                   "install it with: pip install 'tiervec[langchain]'") from exc

from tiervec.corpus import Document


class TiervecVectorStore(VectorStore):
    """A LangChain ``VectorStore`` over a tiervec collection (local, sharded or served)."""

    def __init__(self, collection: Any, embedding: Embeddings | None = None) -> None:
        self.collection = collection
        self._embedding = embedding

    @property
    def embeddings(self) -> Embeddings | None:
        return self._embedding

    # -- writes ---------------------------------------------------------------------------------
    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                  ids: list[str] | None = None, **kwargs: Any) -> list[str]:
        """Add (or, for ids already there, replace) texts; their ids."""
        texts = list(texts)
        given = list(ids) if ids is not None else [None] * len(texts)
        if len(given) != len(texts) or (metadatas is not None and len(metadatas) != len(texts)):
            raise errors.InvalidRequest(f"{len(texts)} texts, {len(given)} ids and "
                                        f"{len(metadatas or [])} metadatas: give one per text")
        out = [str(i) if i else str(uuid.uuid4()) for i in given]
        docs = [Document(id=i, text=t, metadata=dict((metadatas or [{}] * len(texts))[n] or {}))
                for n, (i, t) in enumerate(zip(out, texts, strict=True))]
        vectors = None
        if self._embedding is not None and texts:
            vectors = np.asarray(self._embedding.embed_documents(texts), np.float32)
        if docs:
            self.collection.upsert(docs, vectors=vectors)
        return out

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete by id (unknown ids are no error); ``None`` deletes nothing."""
        if ids:
            self.collection.delete([str(i) for i in ids])
        return True

    # -- reads ----------------------------------------------------------------------------------
    def get_by_ids(self, ids: Sequence[str], /) -> list[LCDocument]:
        found = self.collection.get([str(i) for i in ids]) if ids else []
        return [_to_langchain(d) for d in found if d is not None]

    def similarity_search(self, query: str, k: int = 4, filter: Any = None,
                          **kwargs: Any) -> list[LCDocument]:
        return [d for d, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_with_score(self, query: str, k: int = 4, filter: Any = None,
                                     **kwargs: Any) -> list[tuple[LCDocument, float]]:
        """Documents and their scores (inner products of unit vectors: cosine similarity)."""
        if self._embedding is not None:
            return self._by_vector(self._embedding.embed_query(query), k, filter)
        return self._hits(self.collection.search(query, k, filter=filter))

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4,
                                    filter: Any = None, **kwargs: Any) -> list[LCDocument]:
        return [d for d, _ in self._by_vector(embedding, k, filter)]

    def _by_vector(self, embedding: Sequence[float], k: int,
                   filter: Any) -> list[tuple[LCDocument, float]]:
        vector = np.asarray(embedding, np.float32)
        norm = float(np.linalg.norm(vector))
        if norm > 0:
            vector = vector / norm  # the stored vectors are unit vectors
        return self._hits(self.collection.search_vectors(vector, k, filter=filter))

    def _hits(self, found: Any) -> list[tuple[LCDocument, float]]:
        ids = [str(i) for i in found.ids[0] if i != ""]
        docs = self.collection.get(ids) if ids else []
        return [(_to_langchain(d), float(s)) for d, s in zip(docs, found.scores[0], strict=False)
                if d is not None]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return lambda score: (1.0 + score) / 2.0  # cosine similarity to [0, 1]

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings | None = None,
                   metadatas: list[dict] | None = None, *, ids: list[str] | None = None,
                   path: str | Path | None = None, collection: Any = None,
                   **kwargs: Any) -> TiervecVectorStore:
        """A store over ``collection`` (or a new one in ``path``: vectors of ``embedding``'s
        dimension, ``kwargs`` as :func:`tiervec.create`'s) holding ``texts``."""
        if collection is None:
            import tiervec

            if path is None:
                raise errors.InvalidRequest("from_texts needs path= (a folder for the new "
                                            "collection) or collection=")
            if embedding is not None:
                dim = len(embedding.embed_query("dimension"))
                kwargs = {"model": None, "dim": dim, **kwargs}
            collection = tiervec.create(path, **kwargs)
        store = cls(collection, embedding)
        store.add_texts(texts, metadatas, ids=ids)
        return store


def _to_langchain(doc: Document) -> LCDocument:
    text = f"{doc.title} {doc.text}".strip() if doc.title else doc.text
    return LCDocument(id=doc.id, page_content=text, metadata=dict(doc.metadata))
