"""Fusion stages, the calibrated relevance cut-off, and tuning on labelled queries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tiervec
from test_lexical import texts, vectors
from tiervec.errors import CalibrationMissing
from tiervec.eval.queries import QuerySet
from tiervec.plan.tune import cutoff_report, fit_calibrations, fusion_grid, tune_fusion
from tiervec.search import Candidates, FusionConfig, Query, SearchMode
from tiervec.search.cutoff import RelevanceModel
from tiervec.search.stages import ReciprocalRankFusion, ScoreFusion


def cands(rows, scores):
    return Candidates(np.array(scores, dtype=np.float32), np.array(rows, dtype=np.int64))


def test_minmax_and_dbsf_normalise_each_list():
    a = cands([[1, 2, 3]], [[10.0, 5.0, 0.0]])
    np.testing.assert_allclose(ScoreFusion("minmax", [1.0]).normalised(a), [[1.0, 0.5, 0.0]])
    z = ScoreFusion("dbsf", [1.0]).normalised(a)
    assert z[0, 0] > z[0, 1] > z[0, 2] >= 0 and z[0, 1] == pytest.approx(0.5)
    lone = cands([[7, -1]], [[3.0, -np.inf]])
    np.testing.assert_allclose(ScoreFusion("minmax", [1.0]).normalised(lone), [[1.0, 0.0]])
    fused = ScoreFusion("minmax", [0.5, 0.5]).fuse([a, cands([[3, 4]], [[2.0, 1.0]])], 4)
    # 3: 0 + 0.5; 1: 0.5 + 0; 2: 0.25; 4: 0
    assert set(fused.rows[0, :2]) == {1, 3} and list(fused.rows[0, 2:]) == [2, 4]
    np.testing.assert_allclose(fused.scores[0], [0.5, 0.5, 0.25, 0.0])


def test_weighted_rrf():
    a, b = cands([[1, 2]], [[0.9, 0.8]]), cands([[2, 1]], [[5.0, 4.0]])
    fused = ReciprocalRankFusion(c=10, weights=[0.8, 0.2]).fuse([a, b], 2)
    assert list(fused.rows[0]) == [1, 2]
    assert fused.scores[0, 0] == pytest.approx(0.8 / 11 + 0.2 / 12)


def synthetic_scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Score lists where each query has its own offset: raw scores do not compare across
    queries, positions within a list do."""
    rng = np.random.default_rng(seed)
    offset = rng.uniform(0, 5, size=(n, 1))
    relevant = rng.random((n, 50)) < np.linspace(0.8, 0.0, 50)
    scores = offset + np.where(relevant, 1.0, 0.0) + rng.normal(0, 0.3, (n, 50))
    order = np.argsort(-scores, axis=1)
    return np.take_along_axis(scores, order, 1), np.take_along_axis(relevant, order, 1)


def test_relevance_model_is_calibrated_and_monotone():
    scores, relevant = synthetic_scores(400, 0)
    model = RelevanceModel.fit(scores, relevant, "dense", depth=50)
    test_scores, test_relevant = synthetic_scores(400, 1)
    p = model.probabilities(test_scores)
    assert np.all(np.diff(p, axis=1) <= 1e-12)  # a cut keeps a prefix of each list
    for lo in (0.1, 0.5, 0.8):  # probabilities mean what they say (within a few points)
        inside = (p >= lo) & (p < lo + 0.1)
        if inside.sum() > 200:
            assert abs(test_relevant[inside].mean() - p[inside].mean()) < 0.08
    again = RelevanceModel.from_dict(model.to_dict())
    np.testing.assert_allclose(again.probabilities(test_scores), p)
    padded = test_scores.copy()
    padded[:, 30:] = -np.inf
    assert np.all(model.probabilities(padded)[:, 30:] == 0)
    with pytest.raises(tiervec.errors.PlanError, match="both"):
        RelevanceModel.fit(scores, np.ones_like(relevant), "dense")


def labelled(col: tiervec.Collection, n: int, seed: int, name: str) -> QuerySet:
    """Queries made from stored documents: a few of each one's words, its vector plus noise;
    the document (and those sharing its first words) judged relevant."""
    rng = np.random.default_rng(seed)
    ids = col.sample_ids(n, seed=seed)
    docs = col.get(ids)
    stored = {i: v for i, v in zip(col.ids_at(np.arange(len(col))),
                                   col.vectors().take(np.arange(len(col))), strict=True)}
    query_texts, query_vectors, qrels = [], [], {}
    for i, doc in zip(ids, docs, strict=True):
        words = doc.text.split()
        query_texts.append(" ".join(rng.choice(words, size=min(3, len(words)))) if words else "")
        v = stored[i] + rng.normal(0, 0.35, size=len(stored[i]))
        query_vectors.append(v / np.linalg.norm(v))
        qrels[f"q-{i}"] = {i: 1}
    return QuerySet(name, list(qrels), np.array(query_vectors, dtype=np.float32), qrels,
                    query_texts)


@pytest.fixture
def tuned(tmp_path: Path):
    col = tiervec.create(tmp_path / "col", model=None, dim=8, tiers="float32", lexical=True)
    n = 400
    col.add([{"id": f"d{i}", "text": t} for i, t in enumerate(texts(n, seed=4))],
            vectors=vectors(n, seed=4))
    yield col, labelled(col, 150, 1, "tune"), labelled(col, 150, 2, "verify")
    col.close()


def test_tune_fusion_verifies_on_held_out_queries(tuned):
    col, tune, verify = tuned
    grid = fusion_grid(depths=(20, 50))
    result = tune_fusion(col, tune, verify, grid=grid)
    assert len(result.trials) == len(grid)
    assert result.trials[0].quality == max(t.quality for t in result.trials)
    assert set(result.verified) == {"dense", "lexical", "hybrid default", "hybrid tuned"}
    # the in-memory fusion of the grid equals a real hybrid search with that fusion
    best = result.best
    real = col.run(Query(texts=tuple(tune.texts), vectors=tune.vectors, k=10, mode="hybrid",
                         options=tiervec.search.SearchOptions(fusion=best)))
    from tiervec.eval import judge

    quality = judge(tune, real.ids, real.scores, ["ndcg@10"])["ndcg@10"].mean()
    assert quality == pytest.approx(result.trials[0].quality, abs=1e-6)
    assert result.to_dict()["best"] == best.to_dict()


def test_min_relevance_cuts_each_list_to_a_prefix(tuned, tmp_path):
    col, tune, verify = tuned
    fusion = FusionConfig(method="minmax", weight=0.5)
    with pytest.raises(CalibrationMissing, match="tiervec tune"):
        col.search_vectors(verify.vectors[:3], min_relevance=0.5)
    modes = {SearchMode.DENSE: None, SearchMode.LEXICAL: None, SearchMode.HYBRID: fusion}
    models = fit_calibrations(col, tune, modes, depth=50)
    col.set_search_defaults(fusion=fusion, calibrations=models)
    plain = col.search_vectors(verify.vectors, k=10)
    for threshold in (0.0, 0.3, 0.9, 1.0):
        cut = col.search_vectors(verify.vectors, k=10, min_relevance=threshold)
        for got, full in zip(cut.ids, plain.ids, strict=True):
            kept = [i for i in got if i]
            assert kept == list(full[: len(kept)])
            assert all(i == "" for i in got[len(kept):])
    assert (col.search_vectors(verify.vectors, k=10, min_relevance=1.0).ids == "").all()
    hybrid = col.run(Query(texts=tuple(verify.texts[:5]), vectors=verify.vectors[:5], k=10,
                           mode="hybrid", min_relevance=0.2))
    assert hybrid.ids.shape == (5, 10)
    with pytest.raises(CalibrationMissing, match="fusion"):
        col.search(verify.texts[0], mode="hybrid", min_relevance=0.2,
                   fusion={"method": "rrf"})
    curves = cutoff_report(col, verify, models["dense"], SearchMode.DENSE)
    assert [c.name for c in curves] == ["calibrated", "raw score", "top-k"]
    assert all(0 <= p <= 1 for c in curves for p in c.precision)
    from tiervec.plan.plot import plot_cutoff

    assert plot_cutoff({"dense": curves}, tmp_path / "cutoff.png").stat().st_size > 1000
    path = col.path
    col.close()
    again = tiervec.open(path, read_only=True)
    assert again.fusion == fusion and again.fusion_tuned
    assert again.calibration("lexical") is not None
    again.close()
