"""The recall target: measured on the collection's own vectors, kept as it grows."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tiervec
from tiervec.errors import InvalidRecallTarget, InvalidSearchOptions
from tiervec.search import SearchOptions
from tiervec.search.recall import RecallTarget, exact_top, recall_of
from tiervec.store.codes import CodeSource

DIM = 64


def clustered(n: int, seed: int, centers: int = 40) -> np.ndarray:
    """Unit vectors around a fixed set of centres: the more of them, the denser the space
    near each query (more candidates needed for the same recall)."""
    rng = np.random.default_rng(1000)
    c = rng.normal(size=(centers, DIM))
    rng = np.random.default_rng(seed)
    x = c[rng.integers(0, centers, n)] + 0.7 * rng.normal(size=(n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def add(col: tiervec.Collection, x: np.ndarray, start: int) -> None:
    col.add([{"id": f"v{start + i}"} for i in range(len(x))], vectors=x)


def real_recall(col: tiervec.Collection, queries: np.ndarray, vectors: np.ndarray,
                **options: object) -> float:
    """Recall@10 of ``queries`` (not stored) against exact search over ``vectors``."""
    exact = exact_top(CodeSource([vectors]), queries, 10)[1]
    found = col.search_vectors(queries, 10, **options)
    rows = np.vectorize(lambda s: int(s[1:]) if s else -1)(found.ids)
    return recall_of(rows, exact, 10)


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.01, 2, float("nan"), float("inf"), True, "0.9"])
def test_a_target_outside_0_1_is_a_clear_error(tmp_path, bad):
    with pytest.raises(InvalidRecallTarget, match=r"fraction in \(0, 1\]"):
        tiervec.create(tmp_path / "c", model=None, dim=DIM, recall_target=bad)
    assert not (tmp_path / "c").exists()
    col = tiervec.create(tmp_path / "d", model=None, dim=DIM, recall_target=1)
    assert col.recall_target == RecallTarget(1.0)
    with pytest.raises(InvalidRecallTarget):
        col.set_recall_target(bad)
    assert col.recall_target == RecallTarget(1.0)  # unchanged
    with pytest.raises(InvalidSearchOptions, match="effort"):
        SearchOptions(effort=0)
    col.close()


def test_the_setting_rises_as_the_collection_grows_and_recall_holds(tmp_path):
    col = tiervec.create(tmp_path / "c", model=None, dim=DIM)  # default chain, target 0.95
    queries = clustered(100, seed=99)
    stored = np.empty((0, DIM), np.float32)
    settings = []
    for step, n in enumerate((1_000, 4_000, 16_000, 48_000)):
        x = clustered(n, seed=step)
        add(col, x, len(stored))
        stored = np.concatenate([stored, x])
        measure = col.wait_for_recall(timeout=120)  # measured in the background
        assert measure is not None and measure.rows == len(stored)
        assert measure.met and measure.recall >= RecallTarget().needed(measure.margin)
        settings.append(measure.oversample)
        # queries that are not stored vectors: the target holds for them too
        assert real_recall(col, queries, stored) >= 0.95
    assert settings == sorted(settings) and settings[-1] > settings[0], settings
    # a per-request setting wins over the measured one, and explain says what runs
    low = real_recall(col, queries, stored, oversample=1)
    assert low < 0.95
    assert col.explain().oversample == settings[-1]
    assert col.explain(options=SearchOptions(oversample=1)).oversample == 1
    assert col.explain().recall == col.recall().recall
    stats = col.stats().recall
    assert stats["oversample"] == settings[-1] and stats["rows"] == len(stored)
    assert stats["measured_at"] and stats["seconds"] > 0
    col.close()


def test_readers_see_the_measurement_and_a_lost_one_is_measured_again(tmp_path):
    col = tiervec.create(tmp_path / "c", model=None, dim=DIM)
    add(col, clustered(3_000, seed=1), 0)
    measured = col.measure_recall()
    assert measured is not None and measured.queries == 200
    reader = tiervec.open(tmp_path / "c", read_only=True)
    assert reader.recall() == measured
    assert reader.stats().recall["oversample"] == measured.oversample
    col.close()
    (tmp_path / "c" / "recall.json").unlink()
    col = tiervec.open(tmp_path / "c")  # outgrown or missing: measured in the background
    assert col.wait_for_recall(timeout=60) is not None
    col.close()
    (tmp_path / "c" / "recall.json").write_text("{not json")
    col = tiervec.open(tmp_path / "c")
    assert col.wait_for_recall(timeout=60) is not None  # unreadable: measured again
    assert json.loads((tmp_path / "c" / "recall.json").read_text())["rows"] == 3_000
    col.close()
    reader.close()


def test_no_target_keeps_the_chain_as_written(tmp_path):
    col = tiervec.create(tmp_path / "c", model=None, dim=DIM, recall_target=None,
                         tiers="binary*2 -> float32@disk")
    add(col, clustered(3_000, seed=2), 0)
    assert col.measure_recall() is None and col.recall() is None
    assert col.stats().recall is None and col.explain().recall is None
    col.set_recall_target(0.9)
    assert col.wait_for_recall(timeout=60) is not None
    assert col.stats().recall["target"] == 0.9
    col.set_recall_target(None)
    assert col.recall() is None
    col.close()


def test_a_chain_that_cannot_reach_the_target_says_so(tmp_path):
    col = tiervec.create(tmp_path / "c", model=None, dim=DIM, tiers="binary")
    add(col, clustered(3_000, seed=3), 0)
    measure = col.measure_recall()
    assert measure is not None and not measure.met
    assert measure.oversample is None and measure.effort is None  # nothing to tune
    assert measure.recall < 0.95
    col.close()


def test_an_ann_first_tier_tunes_its_effort(tmp_path):
    col = tiervec.create(tmp_path / "c", model=None, dim=DIM,
                         tiers="binary@ivf*4 -> float32@disk")
    x = clustered(20_000, seed=4)
    add(col, x, 0)
    measure = col.measure_recall()
    assert measure is not None and measure.met
    assert measure.effort is not None and measure.oversample is not None
    assert {p.effort for p in measure.points} >= {1}
    assert real_recall(col, clustered(100, seed=98), x) >= 0.95
    assert col.explain().effort == measure.effort
    col.close()


def test_a_deleted_document_never_counts_as_a_neighbour(tmp_path):
    col = tiervec.create(tmp_path / "c", model=None, dim=DIM)
    x = clustered(3_000, seed=5)
    add(col, x, 0)
    col.delete([f"v{i}" for i in range(0, 3_000, 3)])
    measure = col.measure_recall()
    assert measure is not None and measure.met
    col.compact()
    again = col.wait_for_recall(timeout=60)  # compaction: measured again
    assert again is not None and again.rows == 2_000
    col.close()


def test_the_queries_searched_become_the_measurement_queries(tmp_path):
    col = tiervec.create(tmp_path / "c", model=None, dim=DIM)
    x = clustered(5_000, seed=6)
    add(col, x, 0)
    first = col.measure_recall()
    assert first is not None and first.source == "synthetic"
    # far-off queries (a workload unlike the data): measured on them once 100 were seen
    far = clustered(150, seed=7, centers=3) + 0.5 * clustered(150, seed=8)
    col.search_vectors(far[:60], 10)
    assert col.recall().source == "synthetic"
    col.search_vectors(far[60:], 10)  # the 100th query seen: measured again, on them
    again = col.wait_for_recall(timeout=60)
    assert again is not None and again.source == "seen"
    col.close()
    kept = np.load(tmp_path / "c" / "queries.npy")
    assert kept.shape == (150, DIM)  # the sample outlives the process
    col = tiervec.open(tmp_path / "c")
    assert col._recall.query_sample().seen == 150
    col.close()


def test_the_query_sample_is_uniform_and_bounded():
    from tiervec.search.recall import QuerySample

    sample = QuerySample(2, size=100)
    for start in range(0, 10_000, 250):
        sample.offer(np.column_stack([np.arange(start, start + 250), np.zeros(250)]))
    kept = sample.snapshot()[:, 0]
    assert sample.seen == 10_000 and len(kept) == 100 and len(set(kept)) == 100
    assert 2_500 < kept.mean() < 7_500  # not only the first or the last queries


def test_a_disk_tier_takes_no_ram_as_a_searched_collection_grows(tmp_path):
    """Segments added after the pipeline was built are read from their files, as the first
    ones are (an ingest while searching or measuring kept every new float32 vector in RAM)."""
    col = tiervec.create(tmp_path / "c", model=None, dim=DIM)
    add(col, clustered(500, seed=9), 0)
    col.search_vectors(clustered(2, seed=10), 5)  # the pipeline is built
    for step in range(1, 4):
        add(col, clustered(500, seed=9 + step), 500 * step)
    pipeline = col.pipeline()
    assert len(pipeline.tiers[-1].source.arrays) == 4
    assert all(isinstance(a, np.memmap) for a in pipeline.tiers[-1].source.arrays)
    assert all(isinstance(a, np.memmap) for a in pipeline.first.full.arrays)
    col.close()
