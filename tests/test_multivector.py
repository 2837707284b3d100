"""Multi-vector retrieval: MUVERA FDEs against a loop over their definition, MaxSim against
brute force, multi-vector collections (token vectors stored per segment, writes, crash safety,
compaction), and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tiervec
from tiervec.corpus import Document
from tiervec.encode import load_encoder
from tiervec.encode.muvera import MultiVectorConfig, Muvera, MuveraConfig, unit_tokens
from tiervec.errors import InvalidMultiVector, TokenVectorsMissing
from tiervec.search.maxsim import brute_force, maxsim
from tiervec.store.manifest import Manifest


def token_sets(rng: np.random.Generator, n: int, dim: int, low: int = 1, high: int = 12):
    sets = [rng.normal(size=(int(rng.integers(low, high + 1)), dim)).astype(np.float32)
            for _ in range(n)]
    return unit_tokens(sets)


def chamfer(q: np.ndarray, d: np.ndarray) -> float:
    return float(sum(max(float(x @ y) for y in d) for x in q)) if len(d) else -float(len(q))


def fde_loop(muvera: Muvera, tokens: np.ndarray, document: bool) -> np.ndarray:
    """The FDE of one token set, straight from the definition, one partition at a time."""
    config = muvera.config
    parts, blocks = 2 ** config.k_sim, []
    for r in range(config.reps):
        codes = [int(sum(1 << j for j, bit in enumerate(t @ muvera.hyperplanes[r] > 0) if bit))
                 for t in tokens]
        projected = tokens @ muvera.projections[r]
        for b in range(parts):
            members = [i for i, c in enumerate(codes) if c == b]
            if members:
                block = projected[members].sum(0)
                block = block / len(members) if document else block
            elif document and config.fill_empty and len(tokens):
                hamming = [bin(c ^ b).count("1") for c in codes]
                block = projected[int(np.argmin(hamming))]
            else:
                block = np.zeros(config.dim_proj, np.float32)
            blocks.append(block)
    out = np.concatenate(blocks)
    return out if muvera.final is None else out @ muvera.final


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), k_sim=st.integers(1, 4), reps=st.integers(1, 3),
       dim_proj=st.integers(1, 6), fill=st.booleans(), final=st.sampled_from([None, 24]))
def test_fdes_equal_their_definition(seed, k_sim, reps, dim_proj, fill, final):
    rng = np.random.default_rng(seed)
    tokens, ptr = token_sets(rng, 5, 8, low=0)
    muvera = Muvera(MuveraConfig(k_sim=k_sim, reps=reps, dim_proj=dim_proj, fill_empty=fill,
                                 final_dim=final, seed=seed), 8)
    docs, queries = muvera.documents(tokens, ptr), muvera.queries(tokens, ptr)
    assert docs.shape == (5, muvera.dim) and queries.shape == (5, muvera.dim)
    for i in range(5):
        one = tokens[ptr[i]:ptr[i + 1]]
        np.testing.assert_allclose(docs[i], fde_loop(muvera, one, True), atol=1e-5)
        np.testing.assert_allclose(queries[i], fde_loop(muvera, one, False), atol=1e-5)


def test_fde_inner_products_track_chamfer_similarity():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(30, 32))
    sets = [(centres[rng.integers(0, 30, 12)] + 0.3 * rng.normal(size=(12, 32))) for _ in
            range(60)]
    tokens, ptr = unit_tokens([s.astype(np.float32) for s in sets])
    muvera = Muvera(MuveraConfig(k_sim=3, reps=30, dim_proj=16), 32)
    docs = muvera.documents(tokens, ptr)
    queries = muvera.queries(tokens[:48], ptr[:5])  # the first 4 sets as queries
    for q in range(4):
        exact = np.array([chamfer(tokens[ptr[q]:ptr[q + 1]], tokens[ptr[d]:ptr[d + 1]])
                          for d in range(60)])
        approx = docs @ queries[q]
        assert np.corrcoef(exact, approx)[0, 1] > 0.8


def test_maxsim_equals_a_loop_over_tokens():
    rng = np.random.default_rng(1)
    tokens, ptr = token_sets(rng, 40, 16, low=0)
    query = unit_tokens([rng.normal(size=(5, 16)).astype(np.float32)])[0]
    scores = brute_force(query, tokens, ptr, block=17)
    want = [chamfer(query, tokens[ptr[d]:ptr[d + 1]]) for d in range(40)]
    np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-5)
    sims = tokens @ query.T
    np.testing.assert_allclose(maxsim(sims, np.diff(ptr)), want, rtol=1e-5, atol=1e-5)


def test_options_out_of_range_say_what_to_change():
    with pytest.raises(InvalidMultiVector, match="k_sim must be a whole number in"):
        MuveraConfig(k_sim=0)
    with pytest.raises(InvalidMultiVector, match="unknown token codec 'pq'"):
        MultiVectorConfig(token_codec="pq")
    with pytest.raises(InvalidMultiVector, match="needs a token codec"):
        MultiVectorConfig(token_codec=None, rerank_from="codes")


# -- multi-vector collections -------------------------------------------------------------------
TEXTS = ["cats purr and sleep in the warm sun", "rockets burn fuel to reach a stable orbit",
         "bread rises when yeast ferments the sugar", "rivers carve deep valleys over ages",
         "violins have four strings and a bow", "glaciers move slowly down the mountains",
         "a telescope gathers light from distant galaxies", "bees make honey from nectar",
         "volcanoes erupt molten lava and ash", "chess players plan many moves ahead"]


@pytest.fixture(scope="module")
def encoder():
    return load_encoder()


def make(tmp_path: Path, encoder, name: str = "mv", **kw) -> tiervec.Collection:
    config = MultiVectorConfig(muvera=MuveraConfig(k_sim=3, reps=8, dim_proj=8), **kw)
    return tiervec.create(tmp_path / name, encoder=encoder, multivector=config,
                          tiers=kw.pop("tiers", "binary*4 -> float32@disk"))


def stored_tokens(col: tiervec.Collection) -> tuple[list[str], np.ndarray, np.ndarray]:
    store = col._reader.token_store(col._reader.snap)
    rows = col.stats().rows
    index, _ = store.ranges(np.arange(rows))
    return list(col.ids_at(np.arange(rows))), store.full.take(index), store.ptr


def test_a_multi_vector_search_is_exact_maxsim_over_its_candidates(tmp_path, encoder):
    with make(tmp_path, encoder, candidates=len(TEXTS)) as col:
        col.add([Document(id=f"t{i}", text=t) for i, t in enumerate(TEXTS)])
        assert len(col) == 10 and col.dim == 8 * 8 * 8
        queries = ["fuel for a rocket", "honey bees", "lava"]
        found = col.search(queries, k=4)
        ids, tokens, ptr = stored_tokens(col)
        q_sets = [unit_tokens([t])[0] for t in encoder.token_vectors(queries, query=True)]
        for i, q in enumerate(q_sets):
            exact = brute_force(q, tokens, ptr)
            order = np.argsort(-exact, kind="stable")[:4]
            assert found.ids[i].tolist() == [ids[j] for j in order]
            np.testing.assert_allclose(found.scores[i], exact[order], rtol=1e-5)
        assert found.ids[0, 0] == "t1" and found.ids[1, 0] == "t7"
        same = col.search(queries, k=4, mode="multivector")
        assert same.ids.tolist() == found.ids.tolist()


def test_hybrid_on_a_multi_vector_collection_fuses_maxsim_with_bm25(tmp_path, encoder):
    """``mode="hybrid"`` fuses the MaxSim list (the dense side) with BM25's through the same
    fusion stage as a single-vector collection: min-max, weights w and 1 - w."""
    with make(tmp_path, encoder, candidates=len(TEXTS)) as col:
        col.add([Document(id=f"t{i}", text=t) for i, t in enumerate(TEXTS)])
        queries = ["fuel for a rocket", "bees and honey", "slow glaciers in the mountains"]
        fusion = tiervec.FusionConfig(weight=0.3, coverage=False, dense_depth=10,
                                      lexical_depth=10)
        found = col.search(queries, k=10, mode="hybrid", fusion=fusion)
        dense = col.search(queries, k=10, mode="multivector")
        lexical = col.search(queries, k=10, mode="lexical")

        def minmax(ids, scores) -> dict[str, float]:
            kept = [(i, s) for i, s in zip(ids, scores, strict=True) if i]  # "": padding
            lo, hi = min(s for _, s in kept), max(s for _, s in kept)
            return {i: (s - lo) / (hi - lo) if hi > lo else 1.0 for i, s in kept}

        for q in range(len(queries)):
            d = minmax(dense.ids[q], dense.scores[q])
            lx = minmax(lexical.ids[q], lexical.scores[q])
            want = {i: 0.3 * d.get(i, 0.0) + 0.7 * lx.get(i, 0.0) for i in set(d) | set(lx)}
            got = [i for i in found.ids[q] if i]
            assert len(got) == len(want)
            np.testing.assert_allclose([s for s in found.scores[q] if np.isfinite(s)],
                                       [want[i] for i in got], rtol=1e-5, atol=1e-6)
            assert sorted(want.values(), reverse=True) == pytest.approx(
                [want[i] for i in got], abs=1e-6)
        assert found.ids[0, 0] == "t1" and found.ids[1, 0] == "t7"


def test_writes_keep_token_vectors_with_their_documents(tmp_path, encoder):
    with make(tmp_path, encoder, candidates=20) as col:
        col.add([Document(id=f"t{i}", text=t, metadata={"odd": i % 2})
                 for i, t in enumerate(TEXTS[:6])])
        col.add([Document(id=f"t{i}", text=t, metadata={"odd": i % 2})
                 for i, t in enumerate(TEXTS[6:], start=6)])
        col.upsert([Document(id="t1", text="a recipe for apple pie", metadata={"odd": 1})])
        col.delete(["t4"])
        assert len(col) == 9
        found = col.search(["apple pie", "strings of a violin"], k=3)
        assert found.ids[0, 0] == "t1" and "t4" not in found.ids
        odd = col.search("rockets", k=9, filter="odd == 1")
        assert set(odd.ids[0]) - {""} == {"t1", "t3", "t5", "t7", "t9"}
        before_ids, before_tokens, before_ptr = stored_tokens(col)
        col.compact()
        after_ids, after_tokens, after_ptr = stored_tokens(col)
        live = [i for i, d in enumerate(before_ids)
                if col._reader.docs.rows_of([d]) and d != "t4"]
        assert col.search(["apple pie", "strings of a violin"], k=3).ids.tolist() == \
            found.ids.tolist()
        assert len(after_ids) == 9
        for new, doc in enumerate(after_ids):  # every document kept its own tokens
            old = [i for i in live if before_ids[i] == doc][-1]
            np.testing.assert_array_equal(after_tokens[after_ptr[new]:after_ptr[new + 1]],
                                          before_tokens[before_ptr[old]:before_ptr[old + 1]])
    with tiervec.Collection.open(tmp_path / "mv", read_only=True, encoder=encoder) as again:
        assert again.search(["apple pie"], k=1).ids[0, 0] == "t1"


def test_a_crash_before_the_commit_leaves_the_tokens_as_committed(tmp_path, encoder,
                                                                  monkeypatch):
    with make(tmp_path, encoder) as col:
        col.add([Document(id=f"t{i}", text=t) for i, t in enumerate(TEXTS[:5])])
        before = col.search(["rockets"], k=5)

        def crash(self, folder):
            raise OSError("disk full")

        with monkeypatch.context() as m:
            m.setattr(Manifest, "write", crash)
            with pytest.raises(OSError, match="disk full"):
                col.add([Document(id=f"t{i}", text=t) for i, t in enumerate(TEXTS[5:], 5)])
    with tiervec.Collection.open(tmp_path / "mv", encoder=encoder) as col:
        assert len(col) == 5
        assert col.search(["rockets"], k=5).ids.tolist() == before.ids.tolist()
        segments = list((tmp_path / "mv" / "segments").iterdir())
        assert len(segments) == 1 and (segments[0] / "tokens.npy").is_file()
        col.add([Document(id=f"t{i}", text=t) for i, t in enumerate(TEXTS[5:], 5)])
        assert len(col) == 10


def test_maxsim_over_token_codes_ranks_like_float32(tmp_path, encoder):
    with make(tmp_path, encoder, "codes", candidates=10, rerank_from="codes") as col, \
            make(tmp_path, encoder, "float", candidates=10) as ref:
        docs = [Document(id=f"t{i}", text=t) for i, t in enumerate(TEXTS)]
        col.add(docs)
        ref.add(docs)
        queries = ["fuel for a rocket", "honey bees", "lava", "violin music"]
        a, b = col.search(queries, k=3), ref.search(queries, k=3)
        assert a.ids[:, 0].tolist() == b.ids[:, 0].tolist()
        np.testing.assert_allclose(a.scores, b.scores, rtol=0.05)


def test_bad_input_on_multi_vector_collections(tmp_path, encoder):
    with pytest.raises(InvalidMultiVector, match="needs a model"):
        tiervec.create(tmp_path / "v", model=None, dim=8, multivector=True)
    with pytest.raises(InvalidMultiVector, match="takes no chunking"):
        tiervec.create(tmp_path / "c", encoder=encoder, multivector=True, chunking="late")
    with tiervec.create(tmp_path / "plain", encoder=encoder) as plain:
        plain.add([Document(id="a", text="cats")])
        with pytest.raises(TokenVectorsMissing, match="--multivector"):
            plain.search("cats", mode="multivector")
    with make(tmp_path, encoder) as col:
        with pytest.raises(InvalidMultiVector, match="without vectors"):
            col.add([{"id": "a", "text": "x"}], vectors=np.ones((1, col.dim), np.float32))
        col.add([Document(id="a", text="cats purr")])
        with pytest.raises(InvalidMultiVector, match="pass texts, not vectors"):
            col.search_vectors(np.ones(col.dim, np.float32))
