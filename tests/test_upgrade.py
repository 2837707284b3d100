"""Model upgrades without re-indexing: maps between two models' spaces (fitted, measured,
chosen), and collections that change their model in place."""

from __future__ import annotations

import numpy as np
import pytest

from tiervec.encode.bridge import (
    Direction,
    MapKind,
    SpaceMap,
    agreement,
    choose_map,
    fit_map,
    needed_sample,
)
from tiervec.errors import InvalidUpgrade


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
    assert len(choice.candidates) == 4 and max(scores) == pytest.approx(
        next(c["agreement"] for c in choice.candidates
             if (c["kind"], c["direction"]) == (choice.chosen.kind, choice.chosen.direction)))
    assert max(scores) > choice.current_alone
    assert choice.report()["held_out"] == 300 and choice.sample == 1500
