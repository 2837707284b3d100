"""The LangChain adapter passes langchain-tests' standard vector store suite (every sync and
async test), over a local collection; and works over a served one and a collection's own
model."""

from __future__ import annotations

from collections.abc import Generator

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")

from langchain_tests.integration_tests import VectorStoreIntegrationTests

import tiervec
from tiervec.integrations.langchain import TiervecVectorStore


class TestTiervecStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, tmp_path) -> Generator[TiervecVectorStore, None, None]:  # type: ignore[override]
        embedding = self.get_embeddings()
        col = tiervec.create(tmp_path / "lc", model=None, dim=len(embedding.embed_query("x")))
        try:
            yield TiervecVectorStore(col, embedding)
        finally:
            col.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from live_server import LiveServer

    with LiveServer(tmp_path_factory.mktemp("lc") / "data") as live:
        yield live


class TestTiervecServedStandard(VectorStoreIntegrationTests):
    """The same suite over a served collection (tiervec.Client), a new one per test."""

    @pytest.fixture
    def vectorstore(self, served, request) -> Generator[TiervecVectorStore, None, None]:  # type: ignore[override]
        embedding = self.get_embeddings()
        name = f"t{abs(hash(request.node.name)) % 10**9}"
        with tiervec.Client(served.url) as client:
            col = client.create(name, model=None, dim=len(embedding.embed_query("x")))
            try:
                yield TiervecVectorStore(col, embedding)
            finally:
                client.delete(name)


def test_the_collections_own_model_and_a_filter(tmp_path):
    texts = ["Vitamin D deficiency and multiple sclerosis", "Solar panels on rooftops",
             "Insulin sensitivity improves with exercise"]
    store = TiervecVectorStore.from_texts(
        texts, metadatas=[{"year": 2001}, {"year": 2015}, {"year": 2020}], path=tmp_path / "m")
    assert store.embeddings is None and store.collection.model is not None
    found = store.similarity_search_with_score("photovoltaic roofs", k=2)
    assert found[0][0].page_content == texts[1] and found[0][1] > found[1][1]
    recent = store.similarity_search("vitamin D", k=3, filter="year >= 2010")
    assert {d.metadata["year"] for d in recent} == {2015, 2020}
    retriever = store.as_retriever(search_kwargs={"k": 1})
    assert retriever.invoke("exercise and insulin")[0].page_content == texts[2]
    store.collection.close()
