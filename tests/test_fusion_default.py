"""The default hybrid fusion (min-max, dense weight 0.4 scaled by the share of the documents
the model read), the LIMIT-style set it was chosen on, and `tiervec tune` keeping the default
when its best lost on held-out queries."""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pytest

import tiervec
from tiervec.eval import judge, load_beir
from tiervec.eval.constructed import write_attribute_set
from tiervec.eval.queries import QuerySet
from tiervec.ingest import index_corpus
from tiervec.lexical import Analyzer, LexicalConfig, LexicalIndex, TermStats
from tiervec.lexical.bm25 import TOKENS_PER_TERM
from tiervec.plan.tune import FusionTuning
from tiervec.search import FusionConfig, FusionMethod, Query, SearchMode
from tiervec.store.writes import segment_postings

WORDS = [f"{a}{b}{c}" for a in ("bra", "cle", "dro", "fen", "gol", "hum", "jip", "kor")
         for b in ("mat", "sil", "vor", "nek", "pud", "tas") for c in ("en", "ix", "op", "ur")]


def test_the_default_is_min_max_at_0_4_scaled_by_what_the_model_read():
    default = FusionConfig()
    assert (default.method, default.weight, default.coverage) == (FusionMethod.MINMAX, 0.4, True)
    assert default.for_coverage(1.0) == FusionConfig(coverage=False)  # read all: unchanged
    half = default.for_coverage(0.5)
    assert half.weight == pytest.approx(0.2 / (0.2 + 0.6)) and not half.coverage
    assert default.for_coverage(0.0).weight == 0.0
    fixed = FusionConfig(weight=0.7, coverage=False)
    assert fixed.for_coverage(0.1).weight == 0.7  # coverage off: the weight as given
    assert FusionConfig.from_dict(default.to_dict()) == default
    with pytest.raises(tiervec.errors.InvalidSearchOptions, match="coverage"):
        FusionConfig(coverage="yes")  # type: ignore[arg-type]


def test_the_read_share_comes_from_the_lengths_bm25_keeps():
    analyzer = Analyzer(LexicalConfig())
    short = "alpha beta gamma"
    long = " ".join(f"word{i}" for i in range(400))
    index = LexicalIndex(LexicalConfig(), [segment_postings(analyzer, [("", short), ("", long)])])
    window = 256
    expected_long = window / (TOKENS_PER_TERM * 400)
    assert index.read_share(window, None) == pytest.approx(1.0 + expected_long)
    assert index.read_share(window, np.array([True, False])) == pytest.approx(1.0)
    assert index.read_share(None, None) == 0.0
    stats = index.term_stats(["alpha"], None, window) + TermStats(2, 10.0, {}, 2.0)
    assert stats.read_share == pytest.approx((3.0 + expected_long) / 4)
    assert TermStats(3, 9.0).read_share == 1.0  # not counted: nothing scaled


def test_the_attribute_set_covers_every_pair_of_its_core_once(tmp_path):
    folder = write_attribute_set(tmp_path / "set", WORDS, core=8, distractors=12,
                                 attributes=5)
    corpus = {json.loads(line)["_id"]: json.loads(line)["text"]
              for line in (folder / "corpus.jsonl").read_text().splitlines()}
    assert len(corpus) == 20
    pairs = set()
    for split in ("train", "test"):
        data = load_beir(folder, split=split)
        for qid, text in data.queries.items():
            word = text.removeprefix("Who likes ").removesuffix("?")
            answers = sorted(data.qrels[qid])
            assert len(answers) == 2
            assert sorted(d for d, t in corpus.items() if word in t.split(" ", 2)[2]) == answers
            pairs.add(tuple(answers))
    assert len(pairs) == len(list(combinations(range(8), 2)))  # every pair of the core, once
    with pytest.raises(ValueError, match="distinct words"):
        write_attribute_set(tmp_path / "small", WORDS[:20])


@pytest.mark.slow
def test_the_default_hybrid_keeps_bm25s_answers_where_the_dense_model_fails(tmp_path):
    """On a LIMIT-style set BM25 finds both answers by one rare word and the dense model does
    not; the default hybrid keeps BM25's quality (RRF, the old default, lost most of it)."""
    folder = write_attribute_set(tmp_path / "set", WORDS, core=14, distractors=60,
                                 attributes=14, train_share=0.0)
    data = load_beir(folder, split="test")
    with tiervec.create(tmp_path / "col") as col:
        index_corpus(col, folder)
        texts = list(data.queries.values())
        queries = QuerySet("set", list(data.queries), col.encode_queries(texts), data.qrels,
                           texts)

        def ndcg(mode: SearchMode, fusion: FusionConfig | None = None) -> float:
            found = col.run(Query(texts=tuple(texts), vectors=queries.vectors, k=10, mode=mode,
                                  options=tiervec.SearchOptions(fusion=fusion)))
            return float(judge(queries, found.ids, found.scores, ["ndcg@10"])["ndcg@10"].mean())

        dense, lexical = ndcg(SearchMode.DENSE), ndcg(SearchMode.LEXICAL)
        assert lexical > 0.95 and dense < 0.5
        assert ndcg(SearchMode.HYBRID) >= lexical - 0.005
        assert ndcg(SearchMode.HYBRID, FusionConfig(method="rrf", weight=0.5,
                                                    coverage=False)) < lexical - 0.1


def test_tune_keeps_the_default_when_its_best_lost_on_held_out_queries():
    best = FusionConfig(method="dbsf", weight=0.8, coverage=False)
    lost = FusionTuning([], best, "tune", "verify",
                        {"hybrid default": 0.71, "hybrid tuned": 0.70})
    assert lost.lost_to_default and lost.chosen == FusionConfig()
    assert lost.to_dict()["chosen"] == FusionConfig().to_dict()
    won = FusionTuning([], best, "tune", "verify", {"hybrid default": 0.70, "hybrid tuned": 0.71})
    assert not won.lost_to_default and won.chosen == best


def test_a_fusion_kept_before_coverage_applies_its_weight_as_given():
    """Manifests and calibrations written before ``coverage`` existed keep their behaviour:
    their stored fusion has no such key and scaled nothing."""
    from tiervec.collection.defaults import SearchDefaults
    from tiervec.search.cutoff import RelevanceModel, checked_model

    old = {"method": "minmax", "weight": 0.5, "rrf_k": 60.0, "dense_depth": 100,
           "lexical_depth": 100}
    kept = SearchDefaults({"fusion": old}, "c").fusion
    assert kept.weight == 0.5 and not kept.coverage
    assert SearchDefaults({}, "c").fusion == FusionConfig()  # nothing kept: the default
    model = RelevanceModel(kind="hybrid", coef=[1.0], intercept=0.0, mean=[0.0], scale=[1.0],
                           fusion=old)
    assert checked_model(model, "hybrid", kept.to_dict(), "c") is model
    with pytest.raises(tiervec.errors.CalibrationMissing):
        checked_model(model, "hybrid", FusionConfig().to_dict(), "c")
