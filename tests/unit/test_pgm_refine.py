"""Refinement of a sample towards the model's low-order marginals (local search on single values)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from synthhealth.exceptions import InvalidParameterError
from synthhealth.generators.pgm import Domain, Measurement, estimate
from synthhealth.generators.pgm import model as model_module
from synthhealth.generators.pgm.refine import refine_sample, target_counts


def _counts(codes: np.ndarray, cols: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    dims = tuple(shape[c] for c in cols)
    flat = np.ravel_multi_index(tuple(codes[:, c] for c in cols), dims)
    return np.bincount(flat, minlength=int(np.prod(dims))).reshape(dims)


def _distance(codes, targets, shape) -> float:
    return float(sum(np.abs(_counts(codes, cols, shape) - t).sum() for cols, t in targets))


def test_identical_rows_do_not_all_pile_into_the_same_cell() -> None:
    # ten identical rows all have the same best move (a: 0 -> 1); only five may make it, or the
    # distance would not drop (all ten moving just swaps the excess to the other cell)
    codes = np.zeros((10, 2), dtype=np.int64)
    target = np.array([[5.0, 0.0], [5.0, 0.0]])
    res = refine_sample(codes, (2, 2), [((0, 1), target)], np.random.default_rng(0), max_sweeps=1)
    assert res.distances == [10.0, 0.0]
    assert res.moves == 5
    np.testing.assert_array_equal(_counts(res.codes, (0, 1), (2, 2)), target)
    assert np.all(codes == 0)  # the input is not modified


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_distance_never_increases_and_drops_a_lot(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (4, 3, 6, 2, 5)
    n = 3000
    codes = np.column_stack([rng.integers(0, k, size=n) for k in shape])
    # targets: the pairs and one triple of a *different* random distribution over the 5 columns
    p = rng.dirichlet(np.full(int(np.prod(shape)), 0.3)).reshape(shape)
    targets = []
    for cols in [*itertools.combinations(range(5), 2), (0, 2, 4)]:
        axes = tuple(k for k in range(5) if k not in cols)
        targets.append((cols, n * p.sum(axis=axes)))
    res = refine_sample(codes, shape, targets, np.random.default_rng(seed + 10))
    assert res.distances[0] == pytest.approx(_distance(codes, targets, shape))
    assert res.distances[-1] == pytest.approx(_distance(res.codes, targets, shape))
    assert all(b <= a + 1e-9 for a, b in zip(res.distances, res.distances[1:], strict=False))
    assert res.distances[-1] < 0.5 * res.distances[0]
    assert res.moves > 0
    assert res.codes.min() >= 0 and np.all(res.codes < np.array(shape))


def test_refine_is_reproducible_and_skips_empty_input() -> None:
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 3, size=(200, 3))
    targets = [((0, 1), np.full((3, 3), 200 / 9)), ((1, 2), np.full((3, 3), 200 / 9))]
    a = refine_sample(codes, (3, 3, 3), targets, np.random.default_rng(5))
    b = refine_sample(codes, (3, 3, 3), targets, np.random.default_rng(5))
    np.testing.assert_array_equal(a.codes, b.codes)
    empty = refine_sample(np.zeros((0, 3), dtype=np.int64), (3, 3, 3), targets, np.random.default_rng(0))
    assert empty.codes.shape == (0, 3) and empty.moves == 0
    untouched = refine_sample(codes, (3, 3, 3), [], np.random.default_rng(0))
    np.testing.assert_array_equal(untouched.codes, codes)


def test_target_counts_scale_a_probability_table() -> None:
    np.testing.assert_allclose(target_counts(10, np.array([1.0, 3.0])), [2.5, 7.5])
    np.testing.assert_allclose(target_counts(4, np.zeros(4)), [1.0, 1.0, 1.0, 1.0])


def _chain_model():
    rng = np.random.default_rng(0)
    dom = Domain(("a", "b", "c", "d"), (3, 4, 5, 2))
    ab = rng.dirichlet(np.ones(12)).reshape(3, 4) * 5000
    bc = rng.dirichlet(np.ones(20)).reshape(4, 5) * 5000
    cd = rng.dirichlet(np.ones(10)).reshape(5, 2) * 5000
    ms = [Measurement(("a", "b"), ab, 1.0), Measurement(("b", "c"), bc, 1.0), Measurement(("c", "d"), cd, 1.0)]
    return estimate(dom, ms, iters=300)


def test_model_refine_brings_every_pair_closer_to_the_model() -> None:
    model = _chain_model()
    attrs = model.domain.attrs
    n = 2000
    codes = model.sample(n, np.random.default_rng(1))  # independent rows: plenty of sampling noise

    def pair_tvd(x: np.ndarray) -> float:
        out = []
        for i, j in itertools.combinations(range(4), 2):
            p = model.probabilities((attrs[i], attrs[j]))
            out.append(0.5 * np.abs(_counts(x, (i, j), model.domain.shape) / n - p).sum())
        return float(np.mean(out))

    res = model.refine(codes, np.random.default_rng(2))
    assert pair_tvd(res.codes) < 0.6 * pair_tvd(codes)
    with pytest.raises(InvalidParameterError, match="'codes' parameter of GraphicalModel.refine"):
        model.refine(codes[:, :3], np.random.default_rng(0))


def test_sample_refines_only_up_to_the_row_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _chain_model()
    plain = model.sample(300, np.random.default_rng(4), stratified=True)
    refined = model.sample(300, np.random.default_rng(4), stratified=True, refine=True)
    assert not np.array_equal(plain, refined)
    monkeypatch.setattr(model_module, "REFINE_MAX_WORK", 299 * model._refine_work_per_row())
    skipped = model.sample(300, np.random.default_rng(4), stratified=True, refine=True)
    np.testing.assert_array_equal(plain, skipped)


def test_no_row_is_moved_into_a_cell_the_model_rules_out() -> None:
    # ten rows in state 0, wanted: 6 in state 0 and 0.4 in state 1. Under L1 alone, moving one row
    # to state 1 pays (-1 + 0.2); but a target below half a row means "should not exist": no move
    codes = np.zeros((10, 1), dtype=np.int64)
    res = refine_sample(codes, (2,), [((0,), np.array([6.0, 0.4]))], np.random.default_rng(0))
    assert res.moves == 0 and np.all(res.codes == 0)
    allowed = refine_sample(codes, (2,), [((0,), np.array([6.0, 0.6]))], np.random.default_rng(0))
    assert allowed.moves == 1 and allowed.codes[:, 0].sum() == 1
