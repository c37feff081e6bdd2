"""pgm engine: the fitted model's marginals, samples and saved state."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from synthhealth.exceptions import InvalidParameterError
from synthhealth.generators.pgm import Domain, Factor, GraphicalModel, Measurement, build_junction_tree, estimate

DOM = Domain(("a", "b", "c", "d", "e", "f"), (3, 4, 2, 5, 3, 2))
# a triangle (a, b, c), then a chain c - d - e, and f hanging off b: several cliques and separators
CLIQUES = [("a", "b"), ("b", "c"), ("a", "c"), ("c", "d"), ("d", "e"), ("b", "f")]


def _fitted(seed: int = 0, sigma: float = 3.0) -> GraphicalModel:
    rng = np.random.default_rng(seed)
    ms = []
    for c in CLIQUES:
        shape = DOM.shape_of(c)
        counts = rng.dirichlet(np.full(int(np.prod(shape)), 0.7)).reshape(shape) * 2000.0
        ms.append(Measurement(c, counts + rng.normal(0.0, sigma, size=shape), sigma))
    return estimate(DOM, ms, iters=300)


def _brute_force_joint(model: GraphicalModel) -> Factor:
    """exp(sum of potentials) over the whole domain, normalised: no junction tree involved."""
    dom = model.domain
    log_joint = Factor(dom.attrs, np.zeros(dom.shape))
    for clique, pot in zip(model.cliques, model.potentials, strict=True):
        log_joint = log_joint + Factor(clique, pot)
    values = log_joint.transpose(dom.attrs).values
    p = np.exp(values - values.max())
    return Factor(dom.attrs, p / p.sum())


@pytest.fixture(scope="module")
def model() -> GraphicalModel:
    return _fitted()


def test_marginals_match_the_brute_force_joint(model: GraphicalModel) -> None:
    assert len(model.cliques) >= 4
    joint = _brute_force_joint(model)
    queries = [("a",), ("c", "a"), ("a", "e"), ("e", "f", "a"), ("f", "d"), ("b", "e", "d", "a"), DOM.attrs, ()]
    for q in queries:
        np.testing.assert_allclose(model.marginal(q), model.total * joint.project(q).values, rtol=1e-9, atol=1e-9)
    assert model.probabilities(("d", "b")).sum() == pytest.approx(1.0)
    with pytest.raises(InvalidParameterError, match="must not repeat"):
        model.marginal(("a", "a"))


def test_marginals_on_random_junction_trees() -> None:
    rng = np.random.default_rng(1)
    dom = Domain(tuple("pqrstu"), (2, 3, 2, 3, 2, 2))
    for _ in range(10):
        cliques = [tuple(rng.choice(dom.attrs, size=int(rng.integers(1, 4)), replace=False)) for _ in range(4)]
        tree = build_junction_tree(dom, cliques)
        potentials = [rng.normal(0.0, 2.0, size=dom.shape_of(c)) for c in tree.cliques]
        model = GraphicalModel(tree, potentials, total=10.0)
        joint = _brute_force_joint(model)
        for k in (1, 2, 3):
            for q in itertools.combinations(dom.attrs[::-1], k):
                np.testing.assert_allclose(model.probabilities(q), joint.project(q).values, rtol=1e-9, atol=1e-12)


def test_state_round_trip_without_pickle(model: GraphicalModel, tmp_path: Path) -> None:
    meta, arrays = model.to_state()
    (tmp_path / "model.json").write_text(json.dumps(meta))
    np.savez(tmp_path / "model.npz", **arrays)
    with np.load(tmp_path / "model.npz", allow_pickle=False) as npz:
        again = GraphicalModel.from_state(json.loads((tmp_path / "model.json").read_text()), dict(npz))
    assert again.cliques == model.cliques and again.total == model.total and again.fit_info == model.fit_info
    for q in [("a", "b"), ("e", "f"), DOM.attrs]:
        np.testing.assert_array_equal(again.marginal(q), model.marginal(q))
    rows, rows_again = model.sample(500, np.random.default_rng(4)), again.sample(500, np.random.default_rng(4))
    np.testing.assert_array_equal(rows_again, rows)


def test_from_state_rejects_bad_input(model: GraphicalModel) -> None:
    meta, arrays = model.to_state()
    with pytest.raises(InvalidParameterError, match="must describe a"):
        GraphicalModel.from_state({**meta, "format": "other"}, arrays)
    with pytest.raises(InvalidParameterError, match="version 99"):
        GraphicalModel.from_state({**meta, "version": 99}, arrays)
    with pytest.raises(InvalidParameterError, match="lacks 'potential_0'"):
        GraphicalModel.from_state(meta, {k: v for k, v in arrays.items() if k != "potential_0"})
    with pytest.raises(InvalidParameterError, match="finite floats of shape"):
        GraphicalModel.from_state(meta, {**arrays, "potential_0": np.zeros(3)})
    with pytest.raises(InvalidParameterError, match="running intersection|exactly one root"):
        GraphicalModel.from_state({**meta, "parents": [-1] * len(meta["parents"])}, arrays)


def test_samples_match_the_model_marginals(model: GraphicalModel) -> None:
    n = 200_000
    rows = model.sample(n, np.random.default_rng(123))
    assert rows.shape == (n, len(DOM)) and rows.dtype == np.int64
    assert (rows >= 0).all() and (rows < np.array(DOM.shape)).all()
    queries = list(model.cliques) + [("a", "e"), ("f", "d"), ("e",)]
    for q in queries:
        idx = [DOM.index(a) for a in q]
        counts = np.bincount(np.ravel_multi_index(rows[:, idx].T, DOM.shape_of(q)), minlength=DOM.size(q))
        p = model.probabilities(q).ravel()
        se = np.sqrt(p * (1 - p) / n)
        assert np.all(np.abs(counts / n - p) <= 5 * se + 1e-12), q


def _conditional_independence_pvalue(rows: np.ndarray, x: int, y: int, given: int, shape: tuple) -> float:
    """Pearson chi-square test of x independent of y within each stratum of ``given``."""
    chi2 = 0.0
    dof = 0
    for g in range(shape[given]):
        sub = rows[rows[:, given] == g]
        table = np.zeros((shape[x], shape[y]))
        np.add.at(table, (sub[:, x], sub[:, y]), 1)
        table = table[table.sum(1) > 0][:, table.sum(0) > 0]
        if min(table.shape) < 2:
            continue
        expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
        chi2 += float(((table - expected) ** 2 / expected).sum())
        dof += (table.shape[0] - 1) * (table.shape[1] - 1)
    return float(stats.chi2.sf(chi2, dof))


def test_samples_have_no_spurious_dependence() -> None:
    # b is the parent of a, c and d (a star): a, c, d are independent given b. A sampler that
    # groups rows by parent value without shuffling (mbi 1.1's "round") correlates them.
    dom = Domain(("a", "b", "c", "d"), (4, 3, 5, 4))
    rng = np.random.default_rng(9)
    ms = [Measurement(c, rng.dirichlet(np.ones(dom.size(c))).reshape(dom.shape_of(c)) * 1e4, 1e-2)
          for c in [("a", "b"), ("b", "c"), ("b", "d")]]
    ms[1] = Measurement(("b", "c"), ms[1].values / ms[1].values.sum(1, keepdims=True) * ms[0].values.sum(0)[:, None],
                        1e-2)
    ms[2] = Measurement(("b", "d"), ms[2].values / ms[2].values.sum(1, keepdims=True) * ms[0].values.sum(0)[:, None],
                        1e-2)
    star = estimate(dom, ms, iters=500)
    assert sorted(star.cliques) == [("a", "b"), ("b", "c"), ("b", "d")]
    pvalues = []
    for seed in range(3):
        rows = star.sample(30_000, np.random.default_rng(seed))
        for x, y in itertools.combinations([0, 2, 3], 2):
            pvalues.append(_conditional_independence_pvalue(rows, x, y, 1, dom.shape))
    assert min(pvalues) > 1e-4, pvalues
    # and the test has power: a real dependence (a with b) is found
    rows = star.sample(30_000, np.random.default_rng(0))
    assert _conditional_independence_pvalue(rows, 0, 1, 2, dom.shape) < 1e-6


def test_sampling_is_seeded_and_validated(model: GraphicalModel) -> None:
    a = model.sample(1000, np.random.default_rng(7))
    b = model.sample(1000, np.random.default_rng(7))
    c = model.sample(1000, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert model.sample(0, np.random.default_rng(0)).shape == (0, len(DOM))
    with pytest.raises(InvalidParameterError, match="'n' parameter of GraphicalModel.sample"):
        model.sample(-1, np.random.default_rng(0))
    with pytest.raises(InvalidParameterError, match="'rng' parameter of GraphicalModel.sample"):
        model.sample(3, 42)  # type: ignore[arg-type]


def test_columns_follow_domain_order_not_clique_order() -> None:
    dom = Domain(("z", "y", "x"), (2, 3, 4))
    y = np.zeros((4, 3))
    y[3, 2] = 100.0  # all mass on x = 3, y = 2
    model = estimate(dom, [Measurement(("x", "y"), y, 1e-3), Measurement(("z",), np.array([0.0, 100.0]), 1e-3)],
                     iters=3000)
    rows = model.sample(50, np.random.default_rng(0))
    assert (rows == np.array([1, 2, 3])).all()
