"""Statistics of the membership-inference attacks: AUC, ROC, TPR@FPR, bootstrap, empirical ε, metric set."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from synthhealth.exceptions import InvalidParameterError
from synthhealth.report.attacks.stats import (
    attack_metrics,
    bootstrap_ci,
    empirical_epsilon,
    roc_auc,
    roc_curve,
    tpr_at_fpr,
)


# ---------------------------------------------------------------------------- AUC
def test_auc_hand_computed_with_ties() -> None:
    # pairs (m, n): 3>1, 3>0, 2>1, 2>0, 1=1 (½), 1>0  ->  5.5 / 6
    assert roc_auc([3, 2, 1], [1, 0]) == pytest.approx(5.5 / 6)
    # 2>1, 2=2 (½), 2>1, 2=2 (½)  ->  3 / 4
    assert roc_auc([2, 2], [1, 2]) == pytest.approx(0.75)
    assert roc_auc([1, 1, 1], [1, 1]) == pytest.approx(0.5)
    assert roc_auc([0, 0], [1, 2]) == pytest.approx(0.0)  # higher score = member: reversed attack gives 0


def test_auc_matches_sklearn_on_tied_data() -> None:
    rng = np.random.default_rng(3)
    m, n = rng.integers(0, 5, 300), rng.integers(0, 4, 200)
    y = np.r_[np.ones(len(m)), np.zeros(len(n))]
    assert roc_auc(m, n) == pytest.approx(roc_auc_score(y, np.r_[m, n]))


def test_roc_curve_points_and_area() -> None:
    fpr, tpr, thr = roc_curve([3, 2, 1], [1, 0])
    assert fpr.tolist() == [0.0, 0.0, 0.0, 0.5, 1.0]
    assert tpr.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1, 1])
    assert thr[0] == math.inf and thr[1:].tolist() == [3, 2, 1, 0]
    rng = np.random.default_rng(0)
    m, n = rng.integers(0, 6, 100), rng.integers(0, 6, 80)
    fpr, tpr, _ = roc_curve(m, n)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(m, n))  # ties drawn as straight segments


# ---------------------------------------------------------------------------- TPR at FPR
def test_tpr_at_fpr_tiny_example() -> None:
    m, n = [5, 4, 3, 1], [4, 2, 1, 0]
    # rules "≥ t": t=5 (TP 1, FP 0), t=4 (2, 1), t=3 (3, 1), t=2 (3, 2), t=1 (4, 3), t=0 (4, 4)
    assert tpr_at_fpr(m, n, 0.0) == 0.25
    assert tpr_at_fpr(m, n, 0.2) == 0.25
    assert tpr_at_fpr(m, n, 0.25) == 0.75
    assert tpr_at_fpr(m, n, 0.5) == 0.75
    assert tpr_at_fpr(m, n, 0.75) == 1.0


def test_tpr_at_fpr_does_not_split_ties() -> None:
    # the three members tie with a non-member: flagging them costs FPR 1/4, no rule in between
    m, n = [2, 2, 2, 0], [2, 1, 1, 1]
    assert tpr_at_fpr(m, n, 0.2) == 0.0
    assert tpr_at_fpr(m, n, 0.25) == 0.75
    # FPR exactly representable from counts: 1/3 must be accepted at fpr = 1/3
    assert tpr_at_fpr([3, 0], [3, 1, 1], 1 / 3) == 0.5
    assert tpr_at_fpr([3, 0], [3, 1, 1], 0.33) == 0.0


def test_tpr_at_fpr_rejects_bad_fpr() -> None:
    with pytest.raises(InvalidParameterError, match="'fpr'"):
        tpr_at_fpr([1], [0], 1.5)
    with pytest.raises(InvalidParameterError, match="scores_members"):
        tpr_at_fpr([], [0], 0.1)


# ---------------------------------------------------------------------------- bootstrap
def test_bootstrap_ci_covers_estimate_and_is_seeded() -> None:
    rng = np.random.default_rng(1)
    m, n = rng.normal(0.5, 1, 400), rng.normal(0, 1, 300)
    est = roc_auc(m, n)
    a = bootstrap_ci(roc_auc, m, n, n_boot=200, random_state=7)
    b = bootstrap_ci(roc_auc, m, n, n_boot=200, random_state=7)
    c = bootstrap_ci(roc_auc, m, n, n_boot=200, random_state=8)
    assert a == b and a != c
    assert a[0] < est < a[1]
    # width close to the normal-theory width of the AUC (Hanley–McNeil ≈ 2·1.96·0.022)
    assert 0.06 < a[1] - a[0] < 0.12


def test_bootstrap_resamples_each_array_separately() -> None:
    # sizes are kept per array, and the spread matches the standard error of a mean
    seen: list[tuple[int, int]] = []

    def stat(a: np.ndarray, b: np.ndarray) -> float:
        seen.append((len(a), len(b)))
        return float(a.mean())

    x = np.random.default_rng(0).normal(0, 1, 400)
    lo, hi = bootstrap_ci(stat, x, np.zeros(7), n_boot=300, random_state=0)
    assert set(seen) == {(400, 7)}
    assert hi - lo == pytest.approx(2 * 1.96 / 20, rel=0.25)


# ---------------------------------------------------------------------------- empirical ε
def test_empirical_epsilon_near_zero_for_identical_distributions() -> None:
    rng = np.random.default_rng(2)
    eps = empirical_epsilon(rng.normal(0, 1, 3000), rng.normal(0, 1, 3000), 1e-6)
    assert 0.0 <= eps < 0.2


def test_empirical_epsilon_large_for_separated_distributions() -> None:
    rng = np.random.default_rng(2)
    eps = empirical_epsilon(rng.normal(8, 1, 2000), rng.normal(0, 1, 2000), 1e-6)
    # perfect separation on 1000 + 1000 evaluation scores: log(TPR_lo / FPR_hi) with FPR_hi = 1 − 0.025^(1/1000)
    best = math.log((0.025 ** (1 / 1000) - 1e-6) / (1 - 0.025 ** (1 / 1000)))
    assert best - 0.02 < eps <= best + 1e-9  # (the chosen threshold may miss one evaluation score)
    assert eps.info["rule"] in ("tpr/fpr", "tnr/fnr")


def test_empirical_epsilon_is_a_valid_lower_bound_for_randomised_response() -> None:
    # randomised response with ε = 1: member says 1 w.p. e/(1+e), non-member w.p. 1/(1+e)
    rng = np.random.default_rng(5)
    p = math.e / (1 + math.e)
    eps = empirical_epsilon(rng.random(20000) < p, rng.random(20000) < 1 - p, 0.0)
    assert 0.8 < eps <= 1.0


def test_empirical_epsilon_uses_the_complementary_inequality() -> None:
    # members always score 1; non-members half 0, half 1: TPR/FPR is only 2 (ε ≥ 0.69), but
    # TNR/FNR = 0.5 / 0 is unbounded: the bound must use it
    rng = np.random.default_rng(0)
    eps = empirical_epsilon(np.ones(2000), rng.integers(0, 2, 2000), 1e-6)
    assert eps > 3 and eps.info["rule"] == "tnr/fnr"


def test_empirical_epsilon_needs_enough_scores() -> None:
    with pytest.raises(InvalidParameterError, match="at least 4"):
        empirical_epsilon([1, 2, 3], [0, 1, 2, 3], 1e-6)
    with pytest.raises(InvalidParameterError, match="'delta'"):
        empirical_epsilon([1, 2, 3, 4], [0, 1, 2, 3], 1.0)


# ---------------------------------------------------------------------------- metric set
def test_attack_metrics_keys_references_and_figure() -> None:
    rng = np.random.default_rng(4)
    m, n = rng.normal(1, 1, 3000), rng.normal(0, 1, 3000)
    metrics, fig = attack_metrics("attacks.t", "Test", m, n, delta=1e-6, random_state=0, n_boot=50)
    by = {x.key: x for x in metrics}
    assert list(by) == ["attacks.t.auc", "attacks.t.tpr_at_fpr_1pct", "attacks.t.tpr_at_fpr_0.1pct",
                        "attacks.t.epsilon_lower_bound"]
    assert all(x.real_data for x in metrics) and fig.real_data
    auc = by["attacks.t.auc"]
    assert auc.value == pytest.approx(roc_auc(m, n)) and auc.reference == 0.5 and auc.goal == "target"
    assert auc.ci[0] < auc.value < auc.ci[1]
    assert by["attacks.t.tpr_at_fpr_1pct"].reference == 0.01
    assert by["attacks.t.tpr_at_fpr_1pct"].value == tpr_at_fpr(m, n, 0.01)
    assert by["attacks.t.tpr_at_fpr_0.1pct"].reference == 0.001
    e = by["attacks.t.epsilon_lower_bound"]
    assert e.goal == "minimize" and e.reference == 0.0 and e.range == (0.0, math.inf) and e.value > 0.3
    assert fig.key == "attacks.t.roc" and fig.kind == "lines" and fig.data["diagonal"] is True
    s = fig.data["series"]["attack"]
    assert len(s["x"]) <= 200 and len(s["x"]) == len(s["y"])
    assert (s["x"][0], s["y"][0]) == (0.0, 0.0) and (s["x"][-1], s["y"][-1]) == (1.0, 1.0)
    assert np.all(np.diff(s["x"]) >= 0) and np.all(np.diff(s["y"]) >= 0)
    # the down-sampled curve keeps the points that define TPR at 1% FPR
    fx, fy = np.array(s["x"]), np.array(s["y"])
    assert fy[fx <= 0.01].max() == pytest.approx(tpr_at_fpr(m, n, 0.01), abs=0.01)
    assert metrics[0].to_dict()["key"] == "attacks.t.auc"


def test_attack_metrics_small_samples_give_no_epsilon() -> None:
    metrics, _ = attack_metrics("attacks.t", "Test", [1.0, 2.0], [0.0, 0.5], delta=1e-6, random_state=0, n_boot=10)
    e = metrics[-1]
    assert e.value is None and "fewer than 4" in e.details["reason"]
