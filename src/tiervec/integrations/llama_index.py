"""tiervec as a LlamaIndex vector store, over a local, sharded or served collection.

::

    from llama_index.core import StorageContext, VectorStoreIndex
    from tiervec.integrations.llama_index import TiervecVectorStore

    store = TiervecVectorStore(tiervec.create("notes", model=None, dim=384, lexical=True))
    index = VectorStoreIndex.from_documents(
        documents, storage_context=StorageContext.from_defaults(vector_store=store))
    index.as_retriever(similarity_top_k=5).retrieve("solar panels")

LlamaIndex embeds the nodes and the queries; the collection stores those vectors
(``model=None``, their dimension) with each node's text, its metadata (filterable by
LlamaIndex's ``MetadataFilters``, translated to tiervec filters) and what LlamaIndex needs
to make the node again. ``TEXT_SEARCH`` queries run BM25 and ``HYBRID`` ones fuse both (the
collection needs ``lexical=True``); ``delete(ref_doc_id)`` removes a source document's nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tiervec import errors

try:
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.schema import BaseNode, MetadataMode
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        FilterCondition,
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
        VectorStoreQueryResult,
    )
    from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
except ImportError as exc:  # the llama-index extra
    raise errors.MissingDependency(f"the LlamaIndex adapter needs llama-index-core ({exc}); "
                                   "install it with: pip install 'tiervec[llama-index]'") from exc

from tiervec.corpus import Document
from tiervec.search import Query, SearchMode

#: The metadata keys a node's source document id and its own id are kept under (what
#: ``delete`` and a query's ``node_ids`` filter on).
REF_DOC, NODE_ID = "ref_doc_id", "node_id"
_OPERATORS = {FilterOperator.EQ: "$eq", FilterOperator.NE: "$ne", FilterOperator.GT: "$gt",
              FilterOperator.GTE: "$gte", FilterOperator.LT: "$lt", FilterOperator.LTE: "$lte",
              FilterOperator.IN: "$in", FilterOperator.NIN: "$nin",
              FilterOperator.CONTAINS: "$contains", FilterOperator.ALL: "$all"}
_MODES = {VectorStoreQueryMode.DEFAULT: SearchMode.DENSE,
          VectorStoreQueryMode.TEXT_SEARCH: SearchMode.LEXICAL,
          VectorStoreQueryMode.HYBRID: SearchMode.HYBRID}


class TiervecVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store over a tiervec collection (local, sharded or served)."""

    stores_text: bool = True
    flat_metadata: bool = False
    _collection: Any = PrivateAttr()

    def __init__(self, collection: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._collection = collection

    @classmethod
    def class_name(cls) -> str:
        return "TiervecVectorStore"

    @property
    def client(self) -> Any:
        """The tiervec collection."""
        return self._collection

    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Store nodes (with the embeddings LlamaIndex made), replacing those whose id is
        there; their ids."""
        if not nodes:
            return []
        docs, vectors = [], []
        for node in nodes:
            metadata = node_to_metadata_dict(node, remove_text=True, flat_metadata=False)
            metadata[REF_DOC] = node.ref_doc_id or ""
            metadata[NODE_ID] = node.node_id
            docs.append(Document(id=node.node_id, text=node.get_content(MetadataMode.NONE),
                                 metadata={k: v for k, v in metadata.items() if v is not None}))
            vectors.append(node.get_embedding())
        self._collection.upsert(docs, vectors=np.asarray(vectors, np.float32))
        return [n.node_id for n in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Remove every node of the source document ``ref_doc_id``."""
        try:
            self._collection.delete_where({REF_DOC: ref_doc_id})
        except errors.UnknownField:  # nothing was ever added
            return

    def get_nodes(self, node_ids: list[str] | None = None,
                  filters: MetadataFilters | None = None) -> list[BaseNode]:
        """The stored nodes with ``node_ids`` (those that exist, in that order)."""
        if node_ids is None:
            raise errors.InvalidRequest("get_nodes needs node_ids")
        found = self._collection.get(list(node_ids)) if node_ids else []
        return [_node(d) for d in found if d is not None]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The top ``similarity_top_k`` nodes for the query embedding (``TEXT_SEARCH``: BM25
        over ``query_str``; ``HYBRID``: both, fused), restricted by ``filters`` and
        ``node_ids``."""
        mode = _MODES.get(query.mode)
        if mode is None:
            raise errors.InvalidRequest(f"tiervec runs default, text_search and hybrid "
                                        f"queries, not {query.mode.value}")
        filters = _filter(query.filters)
        if query.node_ids:
            only: dict[str, Any] = {NODE_ID: {"$in": list(query.node_ids)}}
            filters = only if filters is None else {"$and": [filters, only]}
        vectors = None if query.query_embedding is None else \
            np.asarray([query.query_embedding], np.float32)
        texts = None if query.query_str is None or not mode.needs_texts else (query.query_str,)
        found = self._collection.run(Query(
            texts=texts, vectors=vectors if mode.needs_vectors else None,
            k=query.similarity_top_k, filter=filters, mode=mode))
        ids = [str(i) for i in found.ids[0] if i != ""]
        docs = self._collection.get(ids) if ids else []
        nodes = [_node(d) for d in docs if d is not None]
        return VectorStoreQueryResult(nodes=nodes, ids=[n.node_id for n in nodes],
                                      similarities=[float(s) for s in found.scores[0][:len(
                                          nodes)]])


def _node(doc: Document) -> BaseNode:
    metadata = dict(doc.metadata)
    metadata.pop(REF_DOC, None)
    metadata.pop(NODE_ID, None)
    return metadata_dict_to_node(metadata, text=doc.text)


def _filter(filters: MetadataFilters | None) -> dict[str, Any] | None:
    """LlamaIndex's metadata filters as a tiervec filter (``None``: none)."""
    if filters is None or not filters.filters:
        return None
    parts = [_filter(f) if isinstance(f, MetadataFilters) else _one(f)
             for f in filters.filters]
    condition = filters.condition or FilterCondition.AND
    if condition is FilterCondition.NOT:
        return {"$not": {"$and": parts}}
    return {"$and" if condition is FilterCondition.AND else "$or": parts}


def _one(item: MetadataFilter) -> dict[str, Any]:
    if item.operator is FilterOperator.IS_EMPTY:
        return {item.key: {"$exists": False}}
    operator = _OPERATORS.get(item.operator)
    if operator is None:
        raise errors.InvalidRequest(f"tiervec filters have no {item.operator.value!r} "
                                    f"operator (key {item.key!r}); use ==, !=, <, <=, >, >=, "
                                    "in, nin, contains, all or is_empty")
    return {item.key: {operator: item.value}}
