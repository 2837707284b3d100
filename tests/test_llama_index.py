"""The LlamaIndex adapter: an index built over a tiervec collection (local and served), its
retriever, metadata filters, node ids, BM25 and hybrid queries, deleting a source document,
and reopening the collection."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import Document as LIDocument
from llama_index.core import Settings, StorageContext, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

import tiervec
from tiervec.integrations.llama_index import TiervecVectorStore

DIM = 8
TEXTS = ["Solar panels turn sunlight into electricity", "Vitamin D and multiple sclerosis",
         "Exercise improves insulin sensitivity", "Wind turbines and the power grid"]


def _nodes() -> list[TextNode]:
    vectors = np.random.default_rng(0).standard_normal((len(TEXTS), DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [TextNode(id_=f"n{i}", text=text, embedding=vectors[i].tolist(),
                     metadata={"year": 2000 + i, "topic": "energy" if i in (0, 3) else "health"})
            for i, text in enumerate(TEXTS)]


@pytest.fixture(params=["local", "served"])
def collection(request, tmp_path):
    if request.param == "local":
        col = tiervec.create(tmp_path / "li", model=None, dim=DIM, lexical=True)
        yield col
        col.close()
        return
    from live_server import LiveServer

    with LiveServer(tmp_path / "data") as live, tiervec.Client(live.url) as client:
        yield client.create("li", model=None, dim=DIM, lexical=True)


def test_nodes_stored_queried_filtered_and_deleted(collection):
    store = TiervecVectorStore(collection)
    nodes = _nodes()
    assert store.add(nodes) == ["n0", "n1", "n2", "n3"]
    result = store.query(VectorStoreQuery(query_embedding=nodes[2].embedding,
                                          similarity_top_k=2))
    assert result.ids[0] == "n2" and result.nodes[0].get_content() == TEXTS[2]
    assert result.nodes[0].metadata == {"year": 2002, "topic": "health"}
    energy = MetadataFilters(filters=[MetadataFilter(key="topic", value="energy")])
    only = store.query(VectorStoreQuery(query_embedding=nodes[2].embedding,
                                        similarity_top_k=4, filters=energy))
    assert sorted(only.ids) == ["n0", "n3"]
    recent = MetadataFilters(filters=[MetadataFilter(key="year", value=2002,
                                                     operator=FilterOperator.GTE)])
    assert sorted(store.query(VectorStoreQuery(query_embedding=nodes[0].embedding,
                                               similarity_top_k=4, filters=recent)).ids) == \
        ["n2", "n3"]
    some = store.query(VectorStoreQuery(query_embedding=nodes[0].embedding,
                                        similarity_top_k=4, node_ids=["n1", "n3"]))
    assert sorted(some.ids) == ["n1", "n3"]
    bm25 = store.query(VectorStoreQuery(query_str="insulin exercise", similarity_top_k=1,
                                        mode=VectorStoreQueryMode.TEXT_SEARCH))
    assert bm25.ids == ["n2"]
    hybrid = store.query(VectorStoreQuery(query_str="wind power", similarity_top_k=2,
                                          query_embedding=nodes[3].embedding,
                                          mode=VectorStoreQueryMode.HYBRID))
    assert hybrid.ids[0] == "n3"
    assert [n.node_id for n in store.get_nodes(["n3", "zz", "n0"])] == ["n3", "n0"]


def test_an_index_over_a_collection_retrieves_deletes_and_reopens(tmp_path):
    Settings.embed_model = MockEmbedding(embed_dim=DIM)
    col = tiervec.create(tmp_path / "idx", model=None, dim=DIM, lexical=True)
    store = TiervecVectorStore(col)
    documents = [LIDocument(text=t, doc_id=f"doc{i}", metadata={"n": i})
                 for i, t in enumerate(TEXTS)]
    index = VectorStoreIndex.from_documents(
        documents, storage_context=StorageContext.from_defaults(vector_store=store))
    found = index.as_retriever(similarity_top_k=4).retrieve("anything")
    assert len(found) == 4 and {f.node.ref_doc_id for f in found} == {f"doc{i}" for i in
                                                                      range(4)}
    index.delete_ref_doc("doc1")
    assert len(col) == 3
    col.close()
    with tiervec.open(tmp_path / "idx") as again:
        index = VectorStoreIndex.from_vector_store(TiervecVectorStore(again))
        texts = {f.node.get_content() for f in index.as_retriever(similarity_top_k=4)
                 .retrieve("anything")}
        assert texts == {TEXTS[0], TEXTS[2], TEXTS[3]}
