"""The planner: measuring settings, choosing with confidence, budgets, bad input, the CLI."""

from __future__ import annotations

import json

import pytest

import tiervec
from conftest import make_unit_vectors
from test_cli import run, write_beir
from tiervec import Document
from tiervec.errors import BudgetTooSmall, PlanError
from tiervec.plan import (
    PlanConfig,
    QuerySet,
    Setting,
    candidate_chains,
    choose,
    labelled_queries,
    make_plan,
    parse_count,
    parse_size,
)
from tiervec.plan.frontier import mark_pareto
from tiervec.search import Chain

DIM = 32
CHAINS = ("float32", "int8", "binary*4 -> float32@disk", "binary*2 -> float32@disk",
          "bin2*4 -> float32@disk", "hamming*2 -> float32@disk")


def setting(tiers, ram, quality, se=0.0, reads=0, qps=1000.0):
    return Setting(tiers=tiers, ram_bytes_per_vector=ram, disk_bytes_per_vector=0,
                   disk_reads_per_query=reads, quality=quality, quality_se=se,
                   recall_at_k_vs_exact=quality, ndcg_at_k=None, qps=qps)


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plan") / "col"
    col = tiervec.create(folder, model=None, dim=DIM, tiers="binary*4 -> float32@disk")
    x = make_unit_vectors(3000, DIM, seed=1)
    col.add([Document(id=f"d{i}", text=f"doc {i}") for i in range(len(x))], vectors=x)
    col.close()
    return folder


@pytest.fixture(scope="module")
def queries():
    q = make_unit_vectors(200, DIM, seed=2)
    return QuerySet("synthetic", [f"q{i}" for i in range(200)], q)


# -- sizes and counts --
@pytest.mark.parametrize(("text", "value"), [("4GiB", 4 * 2**30), ("512MiB", 512 * 2**20),
                                             ("2GB", 2 * 10**9), ("1000", 1000),
                                             ("1.5e3", 1500), (" 3 kb ", 3000)])
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize(("text", "value"), [("50M", 50 * 10**6), ("1.5B", 1_500_000_000),
                                             ("100k", 100_000), ("7", 7)])
def test_parse_count(text, value):
    assert parse_count(text) == value


@pytest.mark.parametrize("text", ["4 apples", "GiB", "-3GB", ""])
def test_parse_size_rejects_nonsense_with_an_example(text):
    with pytest.raises(PlanError) as info:
        parse_size(text)
    assert "4GiB" in str(info.value)


@pytest.mark.parametrize("kwargs", [{"min_quality": 0}, {"min_quality": 1.5},
                                    {"ram_budget": -1}, {"for_vectors": 0}])
def test_config_rejects_impossible_targets(kwargs):
    with pytest.raises(PlanError):
        PlanConfig(**kwargs)


# -- choosing --
def test_choose_takes_the_cheapest_setting_that_clears_the_target_with_confidence():
    settings = [setting("a", 48, 0.999, 0.001), setting("b", 16, 0.992, 0.005),
                setting("c", 24, 0.997, 0.002), setting("d", 384, 1.0)]
    best, why = choose(settings, PlanConfig(min_quality=0.99), None)
    # b measures 99.2% but only 98.4% with confidence: c is the cheapest sure one
    assert best is not None and best.tiers == "c"
    assert "c is the cheapest" in why and "b" in why


def test_choose_breaks_ties_by_reads_then_quality():
    settings = [setting("x*10", 48, 0.999, reads=100), setting("x*4", 48, 0.995, reads=40)]
    best, _ = choose(settings, PlanConfig(min_quality=0.99), None)
    assert best is not None and best.tiers == "x*4"


def test_choose_honours_the_latency_target():
    settings = [setting("slow", 16, 1.0, qps=10), setting("fast", 48, 1.0, qps=10_000)]
    best, _ = choose(settings, PlanConfig(max_latency_ms=1.0), None)
    assert best is not None and best.tiers == "fast"
    none, why = choose(settings, PlanConfig(max_latency_ms=0.001), None)
    assert none is None and "latency" in why


def test_choose_says_when_nothing_meets_the_quality():
    best, why = choose([setting("a", 16, 0.9, 0.01)], PlanConfig(min_quality=0.99), 20.0)
    assert best is None
    assert "best is a at 90.00%" in why and "Raise the RAM budget" in why


def test_pareto_marks_the_settings_nothing_beats():
    marked = mark_pareto([setting("a", 16, 0.95), setting("b", 48, 0.99),
                          setting("c", 48, 0.97), setting("d", 384, 0.99)])
    assert [s.pareto for s in marked] == [True, True, False, False]


def test_candidate_chains_parse_and_respect_the_read_limit():
    for spec in candidate_chains(384, k=10, max_reads=40):
        chain = Chain.parse(spec)
        assert chain.disk_reads_per_query(10) <= 40
    assert "pca128+binary*4 -> float32@disk" in candidate_chains(384, 10, 40)
    assert any("lbin" in s for s in candidate_chains(384, learned=True))


# -- planning on a collection --
def test_plan_measures_recommends_and_verifies(collection, queries):
    plan_q, verify_q = queries.split()
    with tiervec.open(collection, read_only=True) as col:
        result = make_plan(col, plan_q, verify_q, PlanConfig(min_quality=0.9, chains=CHAINS))
    assert [s.tiers for s in result.settings] == [str(Chain.parse(c)) for c in CHAINS]
    exact = result.settings[0]
    assert exact.quality == 1.0 and exact.recall_at_k_vs_exact == 1.0
    assert result.recommended is not None
    assert result.recommended.lower_bound(1.645) >= 0.9
    # nothing cheaper in RAM clears the bar
    assert all(s.ram_bytes_per_vector >= result.recommended.ram_bytes_per_vector
               or s.lower_bound(1.645) < 0.9 for s in result.settings)
    assert result.verified is not None and result.verified.tiers == result.recommended.tiers
    data = json.loads(json.dumps(result.to_dict()))
    assert data["recommended"]["tiers"] == result.recommended.tiers
    assert len(data["settings"]) == len(CHAINS)
    assert any(s["pareto"] for s in data["settings"])


def test_budget_filters_settings_and_extrapolates_to_more_vectors(collection, queries):
    with tiervec.open(collection, read_only=True) as col:
        config = PlanConfig(min_quality=0.5, chains=CHAINS, ram_budget=parse_size("5MB"),
                            for_vectors=parse_count("1M"))
        result = make_plan(col, queries, None, config)
    assert result.budget_bytes_per_vector == 5.0
    assert all(s.ram_bytes_per_vector <= 5 for s in result.settings)


def test_budget_too_small_for_any_codec_names_the_smallest(collection, queries):
    with tiervec.open(collection, read_only=True) as col, pytest.raises(BudgetTooSmall) as info:
        make_plan(col, queries, None, PlanConfig(chains=CHAINS, ram_budget=parse_size("1MB"),
                                                 for_vectors=parse_count("10M")))
    message = str(info.value)
    assert "0.1 bytes per vector" in message
    assert "4 bytes/vector" in message  # binary of 32 dims
    assert "at least 38.1 MiB" in message


def test_labels_that_reference_unknown_ids_are_an_error(collection, tmp_path):
    from tiervec.eval.beir import BeirDataset

    data = BeirDataset(name="x", path=tmp_path, split="test", queries={"q": "text"},
                       qrels={"q": {"d1": 1, "nope": 1, "gone": 2}})
    with tiervec.open(collection, read_only=True) as col, pytest.raises(PlanError) as info:
        labelled_queries(col, data)
    assert "2 of the 3 documents judged" in str(info.value)
    assert "'gone'" in str(info.value)


def test_plan_without_full_precision_vectors_is_an_error(tmp_path, queries):
    folder = tmp_path / "col"
    col = tiervec.create(folder, model=None, dim=DIM)
    x = make_unit_vectors(100, DIM, seed=3)
    col.add([Document(id=f"d{i}", text="t") for i in range(100)], vectors=x)
    col.close()
    for path in (folder / "segments").rglob("vectors.npy"):
        path.unlink()
    with tiervec.open(folder, read_only=True) as col, pytest.raises(PlanError) as info:
        make_plan(col, queries, None, PlanConfig(chains=CHAINS))
    assert "no full-precision vectors" in str(info.value)


# -- the CLI --
def test_cli_plan_with_labels_writes_json_and_png_and_applies(tmp_path):
    beir = write_beir(tmp_path / "tiny")
    folder = tmp_path / "col"
    out = tmp_path / "out"
    result = run("plan", folder, "--dataset", beir, "--split", "test", "--min-quality", "0.5",
                 "--tiers", "float32", "--tiers", "int8", "--tiers", "binary*2 -> float32@disk",
                 "--out", out, "--apply")
    assert result.exit_code == 0, result.output
    assert "Recommended:" in result.output and "Verified on" in result.output
    data = json.loads((out / "plan.json").read_text())
    assert data["recommended"]["tiers"] == "binary*2 -> float32@disk"
    assert (out / "plan.png").read_bytes()[:4] == b"\x89PNG"
    with tiervec.open(folder, read_only=True) as col:
        assert str(col.chain) == "binary*2 -> float32@disk"
        assert len(col) == 20


def test_cli_plan_with_pseudo_queries(tmp_path):
    beir = write_beir(tmp_path / "tiny")
    folder = tmp_path / "col"
    assert run("index", beir, "--collection", folder).exit_code == 0
    result = run("plan", folder, "--tiers", "float32", "--tiers", "hamming",
                 "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "pseudo-queries" in result.output


def test_cli_plan_budget_too_small(tmp_path):
    beir = write_beir(tmp_path / "tiny")
    folder = tmp_path / "col"
    assert run("index", beir, "--collection", folder).exit_code == 0
    result = run("plan", folder, "--ram-budget", "1KB", "--for-vectors", "1M",
                 "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "below the smallest setting" in result.stderr
