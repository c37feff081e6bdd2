"""pgm engine: estimating a graphical model from (noisy) marginals."""

from __future__ import annotations

import numpy as np
import pytest

from synthhealth.exceptions import InvalidParameterError
from synthhealth.generators.pgm import (
    Domain,
    Factor,
    FitProgress,
    Measurement,
    estimate,
    estimate_total,
    measurement_loss,
)

DOM = Domain(("a", "b", "c", "d", "e"), (3, 4, 2, 5, 3))
N = 1000.0


def _joint(rng: np.random.Generator, domain: Domain = DOM, concentration: float = 2.0) -> Factor:
    """A strictly positive distribution over the whole domain (not Markov on any sparse graph)."""
    p = rng.dirichlet(np.full(domain.size(), concentration)).reshape(domain.shape)
    return Factor(domain.attrs, p)


def _chain_joint(rng: np.random.Generator, concentration: float = 0.3) -> Factor:
    """A distribution that is Markov on the chain a - b - c - d - e, with many small cells."""
    joint = Factor(("a",), rng.dirichlet(np.ones(3)))
    for x, y in zip(DOM.attrs, DOM.attrs[1:], strict=False):
        (nx,), (ny,) = DOM.shape_of((x,)), DOM.shape_of((y,))
        joint = joint * Factor((x, y), rng.dirichlet(np.full(ny, concentration), size=nx))
    return joint.transpose(DOM.attrs)


def _measure(joint: Factor, cliques, sigma: float, rng: np.random.Generator | None = None) -> list[Measurement]:
    out = []
    for c in cliques:
        y = N * joint.project(c).values
        if rng is not None:
            y = y + rng.normal(0.0, sigma, size=y.shape)
        out.append(Measurement(tuple(c), y, sigma))
    return out


STRUCTURES = {
    "chain": [("a", "b"), ("b", "c"), ("c", "d"), ("d", "e")],
    "tree": [("a", "b"), ("a", "c"), ("a", "d"), ("d", "e")],
    "triangle": [("a", "b"), ("b", "c"), ("a", "c"), ("d", "e")],
    "cycle": [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d"), ("e",)],
    "reversed axes": [("b", "a"), ("c", "b", "d"), ("e", "d")],
}


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_exact_recovery_from_noiseless_marginals(name: str) -> None:
    joint = _joint(np.random.default_rng(len(name)))
    ms = _measure(joint, STRUCTURES[name], sigma=1e-3)
    model = estimate(DOM, ms, iters=2000)
    assert model.fit_info is not None and model.fit_info.converged
    assert model.total == pytest.approx(N, rel=1e-9)
    for m in ms:
        got = model.marginal(m.clique)
        assert got.shape == m.values.shape
        np.testing.assert_allclose(got, m.values, rtol=1e-6, atol=1e-6 * N / m.values.size)
    for c in STRUCTURES[name]:  # the model's cliques hold every measured clique
        assert any(set(c) <= set(k) for k in model.cliques)


def test_triangle_needs_one_three_way_clique() -> None:
    ms = _measure(_joint(np.random.default_rng(3)), STRUCTURES["triangle"], sigma=1e-3)
    assert sorted(estimate(DOM, ms, iters=10).cliques) == [("a", "b", "c"), ("d", "e")]


def test_one_way_measurements_give_independence() -> None:
    joint = _joint(np.random.default_rng(5))
    ms = _measure(joint, [(a,) for a in DOM.attrs], sigma=1e-3)
    model = estimate(DOM, ms, iters=2000)
    assert sorted(model.cliques) == [(a,) for a in DOM.attrs]
    pa, pd_, pe = (joint.project((x,)).values for x in "ade")
    np.testing.assert_allclose(model.marginal(("a", "d", "e")), N * np.einsum("i,j,k->ijk", pa, pd_, pe), rtol=1e-6)
    # unmeasured attributes get the maximum-entropy (uniform) margin
    dom2 = Domain(("a", "z"), (3, 4))
    model2 = estimate(dom2, [Measurement(("a",), np.array([10.0, 20.0, 70.0]), 1.0)])
    np.testing.assert_allclose(model2.marginal(("z",)), np.full(4, 25.0))


def test_total_is_the_inverse_variance_weighted_mean() -> None:
    ms = [
        Measurement(("a",), np.array([30.0, 30.0, 40.0]), 1.0),  # sum 100, variance 3
        Measurement(("a", "b"), np.full(12, 9.0), 2.0),  # sum 108, variance 48
    ]
    expected = (100 / 3 + 108 / 48) / (1 / 3 + 1 / 48)
    assert estimate_total(DOM, ms) == pytest.approx(expected)
    assert estimate(DOM, ms, iters=5).total == pytest.approx(expected)
    assert estimate(DOM, ms, iters=5, total=500.0).total == 500.0
    # a negative estimate (possible with extreme noise) is floored at one record
    assert estimate_total(DOM, [Measurement(("a",), np.array([-5.0, -1.0, 0.0]), 1.0)]) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noisy_fit_improves_on_measurements(seed: int) -> None:
    rng = np.random.default_rng(seed)
    joint = _chain_joint(rng)
    cliques = STRUCTURES["chain"] + [(a,) for a in DOM.attrs]
    sigma = 8.0
    ms = _measure(joint, cliques, sigma, rng)  # noisy counts, some negative: kept as they are
    assert any((m.values < 0).any() for m in ms)
    losses: list[float] = []
    model = estimate(DOM, ms, callback=lambda p: losses.append(p.loss))
    info = model.fit_info
    assert info is not None and info.loss <= info.initial_loss
    assert all(b <= a for a, b in zip(losses, losses[1:], strict=False))  # the accepted loss never increases
    assert measurement_loss(model, ms) == pytest.approx(info.loss, rel=1e-9)
    uniform = estimate(DOM, ms, iters=0)
    assert measurement_loss(uniform, ms) == pytest.approx(info.initial_loss, rel=1e-9)
    err_model = np.mean([np.abs(model.marginal(c) - N * joint.project(c).values).sum() for c in cliques])
    err_noisy = np.mean([np.abs(m.values - N * joint.project(m.clique).values).sum() for m in ms])
    assert err_model < 0.8 * err_noisy
    for c in cliques:
        assert (model.marginal(c) >= 0).all()


def test_warm_start_is_faster_and_lands_on_the_same_fit() -> None:
    # AIM-like rounds: one-way margins first, then one two-way measurement per round, each round
    # refitted from the previous model (warm) or from scratch (cold). The fourth round closes a
    # cycle, so the new junction tree has a clique that no old clique fits in.
    rounds = [("a", "b"), ("c", "d"), ("b", "c"), ("a", "d"), ("d", "e"), ("b", "e")]
    warm_iters = cold_iters = 0
    for seed in range(2):
        rng = np.random.default_rng(seed)
        joint = _chain_joint(rng)
        ms = _measure(joint, [(a,) for a in DOM.attrs], 5.0, rng)
        model = estimate(DOM, ms)
        for clique in rounds:
            ms = ms + _measure(joint, [clique], 5.0, rng)
            warm = estimate(DOM, ms, warm_start=model)
            cold = estimate(DOM, ms)
            assert warm.fit_info.converged and cold.fit_info.converged
            assert warm.fit_info.initial_loss < cold.fit_info.initial_loss
            assert warm.fit_info.loss == pytest.approx(cold.fit_info.loss, rel=1e-3)
            np.testing.assert_allclose(warm.marginal(clique), cold.marginal(clique), atol=0.1)
            warm_iters += warm.fit_info.n_iter
            cold_iters += cold.fit_info.n_iter
            model = warm
    assert warm_iters < 0.9 * cold_iters


def test_callback_can_stop_and_sees_progress() -> None:
    ms = _measure(_joint(np.random.default_rng(0)), STRUCTURES["chain"], 1.0)
    seen: list[FitProgress] = []
    model = estimate(DOM, ms, callback=lambda p: seen.append(p) or p.iteration == 3)
    assert [p.iteration for p in seen] == [1, 2, 3] and model.fit_info.n_iter == 3
    assert not model.fit_info.converged


def test_extra_cliques_join_the_model() -> None:
    ms = [Measurement(("a",), np.array([1.0, 2.0, 3.0]), 1.0)]
    model = estimate(DOM, ms, cliques=[("b", "c", "e")], iters=5)
    assert ("b", "c", "e") in model.cliques


def test_estimate_errors_name_the_parameter() -> None:
    ok = Measurement(("a",), np.ones(3), 1.0)
    with pytest.raises(InvalidParameterError, match="'sigma' parameter of Measurement must be a float in \\(0, inf\\)"):
        Measurement(("a",), np.ones(3), 0.0)
    with pytest.raises(InvalidParameterError, match="must be a non-empty array of finite numbers"):
        Measurement(("a",), np.array([1.0, np.nan]), 1.0)
    with pytest.raises(InvalidParameterError, match="must have 12 cells"):
        estimate(DOM, [Measurement(("a", "b"), np.ones(11), 1.0)])
    with pytest.raises(InvalidParameterError, match="unknown \\['zz'\\]"):
        estimate(DOM, [Measurement(("zz",), np.ones(2), 1.0)])
    with pytest.raises(InvalidParameterError, match="'total' parameter of estimate must be a float in \\(0, inf\\)"):
        estimate(DOM, [ok], total=-3.0)
    with pytest.raises(InvalidParameterError, match="'total' parameter of estimate must be given"):
        estimate(DOM, [])
    with pytest.raises(InvalidParameterError, match="'iters' parameter of estimate"):
        estimate(DOM, [ok], iters=-1)
    with pytest.raises(InvalidParameterError, match="'tol' parameter of estimate"):
        estimate(DOM, [ok], tol=float("nan"))
    other = estimate(Domain(("a",), (3,)), [ok], iters=1)
    with pytest.raises(InvalidParameterError, match="'warm_start' parameter of estimate must be a model on the same"):
        estimate(DOM, [ok], warm_start=other)


def test_large_clique_works() -> None:
    dom = Domain(("x", "y", "z"), (100, 100, 100))  # one clique of 1e6 cells
    rng = np.random.default_rng(0)
    ms = [Measurement(("x", "y"), rng.poisson(50.0, size=(100, 100)).astype(float), 2.0),
          Measurement(("y", "z"), rng.poisson(50.0, size=(100, 100)).astype(float), 2.0),
          Measurement(("x", "z"), rng.poisson(50.0, size=(100, 100)).astype(float), 2.0)]
    model = estimate(dom, ms, iters=4)
    assert model.cliques == [("x", "y", "z")]
    assert model.fit_info.loss < model.fit_info.initial_loss
    assert model.sample(1000, rng).max(axis=0).tolist() <= [99, 99, 99]
