"""Model upgrades without re-indexing: maps between two models' spaces (fitted, measured,
chosen), and collections that change their model in place."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

import tiervec
from tiervec.corpus import Document
from tiervec.encode import load_encoder
from tiervec.encode.bridge import (
    Direction,
    MapKind,
    SpaceMap,
    agreement,
    choose_map,
    ensemble,
    fit_map,
    needed_sample,
)
from tiervec.errors import InvalidUpgrade, ModelNotFound, UpgradeInProgress


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return q


# -- maps between spaces ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(MapKind))
def test_a_rotated_space_is_mapped_back_exactly(kind):
    rng = np.random.default_rng(0)
    x = unit(rng.normal(size=(400, 32)))
    r = rotation(rng, 32)
    y = unit(x @ r)
    m = fit_map(x, y, kind, Direction.TO_CURRENT)
    np.testing.assert_allclose(m.apply(x), y, atol=2e-3)
    assert m.normalize and m.source_dim == m.target_dim == 32


def test_procrustes_between_unequal_dimensions_keeps_angles():
    rng = np.random.default_rng(1)
    x = unit(rng.normal(size=(500, 16)))
    embed = np.linalg.qr(rng.normal(size=(48, 16)))[0].T  # 16 -> 48, orthonormal rows
    y = unit(x @ embed)
    m = fit_map(x, y, MapKind.PROCRUSTES, Direction.TO_NEW)
    assert m.matrix.shape == (16, 48)
    np.testing.assert_allclose(m.apply(x), y, atol=2e-3)
    back = fit_map(y, x, MapKind.PROCRUSTES, Direction.TO_CURRENT)
    np.testing.assert_allclose(back.apply(y), x, atol=2e-3)


def test_least_squares_learns_a_bias_and_unnormalised_targets():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 8))
    w, b = rng.normal(size=(8, 5)), rng.normal(size=5)
    y = x @ w + b
    m = fit_map(x, y, "lstsq", "to-new", ridge=1e-9)
    assert not m.normalize
    np.testing.assert_allclose(m.apply(x), y, atol=1e-3)


def test_a_map_is_saved_whole_and_read_back(tmp_path):
    rng = np.random.default_rng(3)
    m = fit_map(rng.normal(size=(100, 6)), unit(rng.normal(size=(100, 4))), "lstsq",
                "to-current")
    m.save(tmp_path / "map.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["map.npz"]
    back = SpaceMap.load(tmp_path / "map.npz")
    assert (back.kind, back.direction, back.normalize) == (m.kind, m.direction, m.normalize)
    np.testing.assert_array_equal(back.matrix, m.matrix)
    with pytest.raises(InvalidUpgrade, match="reads vectors of 6 dimensions"):
        back.apply(np.zeros((2, 4)))


def test_a_residual_network_learns_what_a_rotation_misses_and_is_saved_whole(tmp_path):
    rng = np.random.default_rng(6)
    x = unit(rng.normal(size=(3000, 16)))
    bend = rng.normal(size=(16, 16))
    y = unit(x @ rotation(rng, 16) + 0.5 * np.tanh(3 * x @ bend))  # not linear
    fit, held = slice(0, 2500), slice(2500, None)
    errors = {}
    for kind in (MapKind.PROCRUSTES, MapKind.MLP):
        m = fit_map(x[fit], y[fit], kind, Direction.TO_NEW)
        errors[kind] = float(np.mean(np.sum((m.apply(x[held]) - y[held]) ** 2, axis=1)))
    assert errors[MapKind.MLP] < 0.5 * errors[MapKind.PROCRUSTES]
    m.save(tmp_path / "mlp.npz")
    back = SpaceMap.load(tmp_path / "mlp.npz")
    assert back.kind is MapKind.MLP and back.residual is not None
    np.testing.assert_array_equal(back.apply(x[held]), m.apply(x[held]))


def test_every_kind_is_reported_and_the_kind_asked_kept():
    rng = np.random.default_rng(7)
    x = unit(rng.normal(size=(600, 16)))
    y = unit(x @ rotation(rng, 16) + 0.05 * rng.normal(size=(600, 16)))
    choice = choose_map(x, y, among=(MapKind.LSTSQ,))
    assert choice.chosen.kind is MapKind.LSTSQ
    assert {(c["kind"], c["direction"]) for c in choice.candidates} == {
        (k.value, d.value) for k in MapKind for d in Direction}


def test_too_few_texts_say_how_many_are_needed():
    rng = np.random.default_rng(4)
    assert needed_sample(384, 768) == 962 and needed_sample(384, 384) == 482
    with pytest.raises(InvalidUpgrade, match=r"at least 962 texts encoded by both models; 500"):
        choose_map(unit(rng.normal(size=(500, 384))), unit(rng.normal(size=(500, 768))))
    with pytest.raises(InvalidUpgrade, match="more texts than dimensions"):
        fit_map(rng.normal(size=(10, 16)), rng.normal(size=(10, 16)), "lstsq", "to-new")


def test_agreement_counts_the_ideal_neighbours_found():
    rng = np.random.default_rng(5)
    x = unit(rng.normal(size=(60, 8)))
    assert agreement(x, x, x, x) == 1.0
    assert agreement(x, x, x, unit(rng.normal(size=(60, 8)))) < 0.5


def test_the_chosen_map_agrees_best_and_beats_the_current_model():
    """The new model sees a structure the current one only half sees: every fitted map is
    measured on held-out texts, the best is kept, and it agrees with the new model more than
    the current model alone does."""
    rng = np.random.default_rng(6)
    topics = unit(rng.normal(size=(40, 24)))
    labels = rng.integers(0, 40, 1500)
    new = unit(topics[labels] + 0.4 * rng.normal(size=(1500, 24)))
    current = unit(new @ rotation(rng, 24)[:, :20] + 0.5 * rng.normal(size=(1500, 20)))
    choice = choose_map(current, new)
    scores = [c["agreement"] for c in choice.candidates]
    assert len(choice.candidates) == 6 and max(scores) == pytest.approx(
        next(c["agreement"] for c in choice.candidates
             if (c["kind"], c["direction"]) == (choice.chosen.kind, choice.chosen.direction)))
    assert max(scores) > choice.current_alone
    assert choice.report()["held_out"] == 300 and choice.sample == 1500


# -- collections changing model ---------------------------------------------------------------
# The mechanics run downwards (all-MiniLM-L6-v2 -> paraphrase-MiniLM-L3-v2, the faster model to
# encode with); bench/upgrade.py measures the quality of real upgrades.
CURRENT, NEW = "all-MiniLM-L6-v2", "paraphrase-MiniLM-L3-v2"
DOCS, BATCH = 600, 100


@pytest.fixture(scope="module")
def scifact_docs(scifact_head):
    return scifact_head(DOCS)


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory, scifact_docs):
    """A collection of SciFact's first 600 documents encoded by MiniLM-L6, in 6 segments."""
    folder = tmp_path_factory.mktemp("upgrade") / "base"
    with tiervec.create(folder, model=CURRENT, tiers="int8*4 -> float32@disk",
                        recall_target=None) as col:
        for lo in range(0, DOCS, BATCH):
            col.add(scifact_docs[lo:lo + BATCH])
    return folder


@pytest.fixture
def folder(base_folder, tmp_path):
    target = tmp_path / "col"
    shutil.copytree(base_folder, target)
    return target


@pytest.fixture(scope="module")
def new_encoder():
    return load_encoder(NEW)


def own_text_found(col, docs) -> float:
    """Share of ``docs`` found first by their own text."""
    found = col.search([d.embedding_text() for d in docs], k=1)
    return float(np.mean([f == d.id for f, d in zip(found.ids[:, 0], docs, strict=True)]))


def test_a_mapped_upgrade_answers_with_the_new_model_at_once(folder, scifact_docs, new_encoder):
    with tiervec.open(folder) as col:
        status = col.upgrade(NEW, sample=500, direction="to-current")
        assert (status.state, status.current, status.target) == ("mapped", CURRENT, NEW)
        assert status.map["direction"] == "to-current" and status.map["sample"] == 500
        assert col.model == CURRENT and col.dim == 384  # the stored space is unchanged
        assert col.encoder.model_id == NEW
        q = col.encode_queries(["vitamin D"])  # both models' query vectors, added
        mapped = SpaceMap.load(folder / "upgrade" / "map-to-current-e6.npz")
        both = ensemble(mapped.apply(new_encoder.encode_queries(["vitamin D"])),
                        load_encoder(CURRENT).encode_queries(["vitamin D"]))
        np.testing.assert_allclose(q, both, atol=1e-5)
        assert own_text_found(col, scifact_docs[:50]) > 0.9
        col.add([Document(id="new", text="Zebrafish regenerate heart tissue after injury.")])
        assert col.search("zebrafish heart regeneration", k=1).ids[0, 0] == "new"
        assert col.stats().upgrade["state"] == "mapped"
        with pytest.raises(UpgradeInProgress, match="under way"):
            col.upgrade("e5-small")
    with tiervec.open(folder, read_only=True) as reader:  # the state is the manifest's
        assert reader.encoder.model_id == NEW and reader.stats().upgrade["target"] == NEW


def test_backfill_moves_to_the_new_space_segment_by_segment(folder, scifact_docs, new_encoder):
    with tiervec.open(folder) as col:
        col.upgrade(NEW, sample=500, direction="to-current")
        status = col.backfill(max_segments=2)  # the switch, then two segments re-encoded
        assert status.state == "backfilling" and status.pending_segments == 4
        assert col.model == NEW and status.backfilled == pytest.approx(2 / 6)
        assert own_text_found(col, scifact_docs[:50]) > 0.9
        steps: list[int] = []
        status = col.backfill(progress=steps.append)
        # the rows of the sample the maps were fitted on are not encoded again
        assert status.state == "none" and col.stats().upgrade is None and 0 < sum(steps) < 100
        assert not list((folder / "upgrade").iterdir())  # the maps went with the upgrade
        stored = np.concatenate([np.asarray(a) for a in col.vectors().arrays])
        texts = [d.embedding_text() for d in scifact_docs]
        np.testing.assert_allclose(stored, new_encoder.encode_documents(texts), atol=1e-4)
        assert own_text_found(col, scifact_docs[:50]) > 0.9
    with tiervec.open(folder) as col:
        assert col.model == NEW and len(col) == DOCS and col.stats().upgrade is None


def test_documents_written_while_mapped_keep_the_new_models_vectors(folder, scifact_docs,
                                                                     new_encoder):
    """A write while an upgrade maps stores the mapped vectors and keeps the new model's own:
    the switch takes them, so the backfill does not encode those documents again."""
    extra = [Document(id=f"x{i}", text=f"Note {i} on zebrafish heart regeneration.")
             for i in range(40)]
    with tiervec.open(folder) as col:
        col.upgrade(NEW, sample=500, direction="to-current")
        col.add(extra)
        col.add([Document(id="given", text="given vectors")], vectors=np.eye(1, 384))
        natives = sorted(p.name for p in (folder / "upgrade").glob("native-*"))
        assert len(natives) == 1  # the encoded write's; given vectors have no new-model twin
    (folder / "upgrade" / "native-s999999.npy").write_bytes(b"a killed write's")
    with tiervec.open(folder) as col:  # a writer removes what no committed segment names
        assert sorted(p.name for p in (folder / "upgrade").glob("native-*")) == natives
        status = col.backfill(max_segments=0)  # the switch alone
        assert status.state == "backfilling" and status.pending_segments == 7  # of 8
        assert not list((folder / "upgrade").glob("native-*"))
        segment = col._manifest.segments[6]
        stored = np.load(folder / "segments" / segment.name / "vectors.npy")
        np.testing.assert_allclose(stored, new_encoder.encode_documents(
            [d.embedding_text() for d in extra]), atol=1e-4)
        assert col.search("zebrafish heart regeneration note 3", k=1).ids[0, 0].startswith("x")
        assert col.backfill().state == "none" and len(col) == DOCS + 41


def test_a_write_encoded_across_the_switch_is_stored_in_the_new_space(folder, new_encoder):
    """A write encoded while the upgrade maps but committed after its switch: it stores the
    new model's own vectors it kept, not vectors of the former space."""
    doc = Document(id="late", text="Zebrafish regenerate heart tissue after injury.")
    with tiervec.open(folder) as col:
        col.upgrade(NEW, sample=500, direction="to-current")
        upgrading = col.encoder
        encode = upgrading.new.encode_documents

        def encode_then_switch(texts, progress=None):
            vectors = encode(texts, progress)
            switch = threading.Thread(target=lambda: col.backfill(max_segments=0))
            switch.start()  # commits the switch while this write is between encoding and commit
            switch.join()
            return vectors

        upgrading.new.encode_documents = encode_then_switch
        try:
            col.add([doc])
        finally:
            upgrading.new.encode_documents = encode
        assert col.stats().upgrade["state"] == "backfilling"
        stored = np.asarray(col.vectors().arrays[-1])
        np.testing.assert_allclose(stored, new_encoder.encode_documents([doc.text]), atol=1e-5)
        assert col.search("zebrafish heart regeneration", k=1).ids[0, 0] == "late"


def test_an_upgrade_whose_sample_holds_every_document_ends_at_once(folder, scifact_docs,
                                                                   new_encoder):
    with tiervec.open(folder) as col:
        col.delete([d.id for d in scifact_docs[:5]])  # deleted rows are not encoded
        status = col.upgrade(NEW, sample=DOCS, direction="to-new")
        assert status.state == "none" and col.model == NEW and len(col) == DOCS - 5
        assert not list((folder / "upgrade").iterdir())
        stored = np.concatenate([np.asarray(a) for a in col.vectors().arrays])[5:]
        np.testing.assert_allclose(stored, new_encoder.encode_documents(
            [d.embedding_text() for d in scifact_docs[5:]]), atol=1e-4)


def test_an_upgrade_to_the_new_space_maps_the_stored_vectors_at_once(folder, scifact_docs):
    with tiervec.open(folder) as col:
        before = np.concatenate([np.asarray(a) for a in col.vectors().arrays])
        status = col.upgrade(NEW, sample=500, direction="to-new")
        assert status.state == "backfilling" and status.pending_segments == 6
        assert status.backfilled == 0 and col.model == NEW
        mapped = SpaceMap.load(folder / "upgrade" / "map-to-new-e6.npz")
        stored = np.concatenate([np.asarray(a) for a in col.vectors().arrays])
        # mapped whole: the sample's new vectors wait for their segment's backfill
        np.testing.assert_allclose(stored, mapped.apply(before), atol=1e-5)
        with np.load(folder / "upgrade" / "sample-e6.npz") as sample:
            assert len(sample["rows"]) == 500
        assert own_text_found(col, scifact_docs[:50]) > 0.8
        col.delete([scifact_docs[0].id])
        col.compact()  # merged rows stay pending: the backfill re-encodes them
        assert col.stats().upgrade["pending_segments"] == 1
        assert col.backfill().state == "none" and len(col) == DOCS - 1


def test_searches_and_writes_go_on_during_a_backfill(folder, scifact_docs):
    with tiervec.open(folder) as col:
        col.upgrade(NEW, sample=500, direction="to-new")
        stop, failures, answered = threading.Event(), [], []

        def search() -> None:
            while not stop.is_set():
                try:
                    found = col.search("vitamin D deficiency", k=5)
                    assert (found.ids != "").all()
                    answered.append(1)
                except Exception as exc:
                    failures.append(exc)

        thread = threading.Thread(target=search)
        thread.start()
        try:
            col.add([Document(id="during", text="Backfills run beside the writes.")])
            assert col.backfill(cpu_share=0.5).state == "none"
        finally:
            stop.set()
            thread.join()
        assert not failures and answered
        assert col.get(["during"])[0] is not None and len(col) == DOCS + 1


def test_upgrade_errors_say_what_to_do(folder, tmp_path):
    with tiervec.open(folder) as col:
        with pytest.raises(InvalidUpgrade, match="already encoded by 'all-MiniLM-L6-v2'"):
            col.upgrade("minilm")
        with pytest.raises(ModelNotFound, match="neither a known model"):
            col.upgrade("no-such-model")
        with pytest.raises(InvalidUpgrade, match="at least 482 texts"):
            col.upgrade(NEW, sample=100)
        with pytest.raises(InvalidUpgrade, match="direction must be"):
            col.upgrade(NEW, direction="sideways")
        with pytest.raises(UpgradeInProgress, match="no upgrade under way"):
            col.backfill()
        assert col.stats().upgrade is None and col.model == CURRENT
    with tiervec.create(tmp_path / "v", model=None, dim=8) as bare:
        with pytest.raises(InvalidUpgrade, match="has no model"):
            bare.upgrade(NEW)


def test_info_names_the_kept_maps_agreement_and_a_kind_that_agreed_more():
    from tiervec.cli._app import describe_upgrade

    candidates = [{"kind": "procrustes", "direction": "to-current", "agreement": 0.41},
                  {"kind": "mlp", "direction": "to-new", "agreement": 0.45}]
    upgrade = {"current": CURRENT, "target": NEW, "state": "mapped", "backfilled": 0.0,
               "pending_segments": 0,
               "map": {"kind": "procrustes", "direction": "to-current", "sample": 500,
                       "current_alone": 0.3, "candidates": candidates}}
    line = describe_upgrade(upgrade)
    assert "procrustes to-current on 500 texts: held-out agreement with the new model 0.41" in line
    assert "mlp to-new agreed more (0.45" in line
    candidates[1]["agreement"] = 0.2
    assert "agreed more" not in describe_upgrade(upgrade)


def test_the_command_line_upgrades_keeps_mapped_and_resumes(folder):
    from typer.testing import CliRunner

    from tiervec.cli import app

    def run(*args: object):
        return CliRunner().invoke(app, [str(a) for a in args])

    out = run("upgrade", folder, "--model", NEW, "--sample", 500, "--keep-mapped",
              "--direction", "to-current")
    assert out.exit_code == 0, out.output
    assert "current model alone" in out.output and "kept" in out.output
    info = run("info", folder)
    assert "all-MiniLM-L6-v2 -> paraphrase-MiniLM-L3-v2: mapped" in " ".join(
        info.output.split())
    again = run("upgrade", folder, "--model", "e5-small")
    assert again.exit_code == 1 and "under way" in again.output
    both = run("upgrade", folder, "--model", NEW, "--resume")
    assert both.exit_code != 0 and "--resume" in both.output
    done = run("upgrade", folder, "--resume", "--cpu-share", "0.8")
    assert done.exit_code == 0, done.output
    assert "upgraded to paraphrase-MiniLM-L3-v2" in done.output
    assert "model upgrade │ none" in " ".join(run("info", folder).output.split())


def test_an_upgrade_over_http_runs_in_the_background(folder, scifact_docs):
    import time

    from fastapi.testclient import TestClient

    from tiervec.serve import create_app

    with TestClient(create_app(folder.parent)) as api:
        url = "/v1/collections/col/upgrade"
        for body, code in (({"model": CURRENT}, "InvalidUpgrade"),
                           ({"model": "no-such-model"}, "ModelNotFound"),
                           ({"model": NEW, "sample": 10}, "InvalidUpgrade"),
                           ({}, "UpgradeInProgress")):
            bad = api.post(url, json=body)
            assert bad.status_code in (400, 404, 409) and bad.json()["error"]["code"] == code
        assert api.post(url, json={"model": NEW, "sample": 2**70}).status_code == 422
        assert api.get(url).json() == {"running": False, "error": None, "upgrade": None,
                                       "model": CURRENT}
        started = api.post(url, json={"model": NEW, "sample": 500, "cpu_share": 1.0})
        assert started.status_code == 202 and started.json()["running"]
        again = api.post(url, json={"model": NEW})
        assert again.status_code == 409 and again.json()["error"]["code"] == "UpgradeInProgress"
        deadline = time.monotonic() + 600
        while api.get(url).json()["running"] and time.monotonic() < deadline:
            found = api.post("/v1/collections/col/search", json={"query": "vitamin D",
                                                                  "k": 3})
            assert found.status_code == 200  # searches answer throughout
            time.sleep(0.5)
        state = api.get(url).json()
        assert state == {"running": False, "error": None, "upgrade": None, "model": NEW}
        stats = api.get("/v1/collections/col/stats").json()
        assert stats["model"] == NEW and stats["upgrade"] is None


_BACKFILL_CHILD = """
import json, sys
import tiervec
col = tiervec.open(sys.argv[1])
while True:
    status = col.backfill(max_segments=1)
    print(json.dumps({"state": status.state, "backfilled": status.backfilled}), flush=True)
    if status.state == "none":
        break
"""


def test_a_killed_backfill_loses_nothing_and_goes_on(folder, scifact_docs):
    """kill -9 while a backfill runs (after its first commit): every document is there,
    searches work on the last committed state, and the backfill goes on from it."""
    import subprocess
    import sys

    with tiervec.open(folder) as col:
        col.upgrade(NEW, sample=500, direction="to-new")
    (folder / "upgrade" / "map-to-new-e1.npz").write_bytes(b"an earlier upgrade's, killed")
    child = subprocess.Popen([sys.executable, "-c", _BACKFILL_CHILD, str(folder)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    first = child.stdout.readline()  # one segment committed; the next one is under way
    child.kill()
    child.wait()
    assert '"backfilling"' in first
    with tiervec.open(folder) as col:
        status = col.stats().upgrade
        assert status["state"] == "backfilling" and 0 < status["backfilled"] < 1
        assert len(col) == DOCS and col.missing([d.id for d in scifact_docs]) == []
        assert own_text_found(col, scifact_docs[:50]) > 0.8
        leftovers = [p.name for p in (folder / "segments").iterdir()
                     if p.name not in {s.name for s in col._manifest.segments}]
        assert leftovers == []  # what the killed commit had written is gone
        assert sorted(p.name for p in (folder / "upgrade").iterdir()) == sorted(
            col._manifest.upgrade["maps"].values())  # type: ignore[index]
        assert col.backfill().state == "none" and col.model == NEW
        assert own_text_found(col, scifact_docs[:50]) > 0.9


def test_an_upgrade_to_another_dimension_keeps_searches_and_recall_working(folder,
                                                                           small_model):
    with tiervec.open(folder) as col:
        col.set_recall_target(0.9)
        col.search("vitamin D", k=5)  # query vectors of 384 dimensions kept for recall
        col.measure_recall()
        col.upgrade(str(small_model), sample=500, direction="to-new")
        assert col.dim == 48 and col.stats().dim == 48
        for text in ("vitamin D", "statins", "sleep apnea"):  # 48-d queries kept from now on
            assert col.search(text, k=5).ids.shape == (1, 5)
        assert col.measure_recall() is not None
        assert col.backfill().state == "none" and col.model == str(small_model)
        assert col.measure_recall().recall > 0.5  # type: ignore[union-attr]
    with tiervec.open(folder) as col:
        assert col.dim == 48 and col.search("vitamin D", k=3).ids.shape == (1, 3)
