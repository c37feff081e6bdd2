"""Empirical privacy auditing: a statistically valid lower bound on ε from attack outcomes.

Given the outputs of a mechanism on two neighbouring datasets D and D′ (many independent runs
each), a distinguishing test "output > t ⇒ D′" has false-positive rate FPR and true-positive
rate TPR. An (ε, δ)-DP mechanism forces TPR ≤ e^ε·FPR + δ (and symmetrically), so

    ε ≥ log((TPR − δ) / FPR).

With Clopper–Pearson 95 % bounds (lower for TPR, upper for FPR) this is a high-confidence lower
bound. The threshold is chosen on one half of the runs and evaluated on the other half, so the
search over thresholds does not inflate the bound. If the bound exceeds the claimed ε, the claim
is false (with 95 % confidence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..exceptions import InvalidParameterError

__all__ = ["clopper_pearson", "AuditResult", "epsilon_lower_bound"]


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact two-sided (1 − alpha) confidence interval of a binomial proportion.

    Examples
    --------
    >>> lo, hi = clopper_pearson(5, 100)
    >>> round(lo, 4), round(hi, 4)
    (0.0164, 0.1128)
    """
    from scipy.stats import beta

    if n <= 0 or not 0 <= k <= n:
        raise InvalidParameterError(f"clopper_pearson needs 0 <= k <= n and n > 0. Got k={k}, n={n}.")
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


@dataclass(frozen=True)
class AuditResult:
    """Outcome of an audit: the empirical lower bound and the test that achieved it."""

    epsilon_lower_bound: float
    threshold: float
    direction: str
    tpr_lower: float
    fpr_upper: float
    n_runs: int


def _bound(tp: int, fp: int, n1: int, n0: int, delta: float, alpha: float) -> tuple[float, float, float]:
    # one-sided bounds at level alpha/2 each (union bound over the two proportions)
    tpr_lo = clopper_pearson(tp, n1, alpha)[0]
    fpr_hi = clopper_pearson(fp, n0, alpha)[1]
    if tpr_lo - delta <= 0 or fpr_hi <= 0:
        return 0.0, tpr_lo, fpr_hi
    return max(0.0, math.log((tpr_lo - delta) / fpr_hi)), tpr_lo, fpr_hi


def epsilon_lower_bound(out_d: np.ndarray, out_dprime: np.ndarray, delta: float, *, alpha: float = 0.05,
                        n_thresholds: int = 200) -> AuditResult:
    """High-confidence lower bound on ε from scalar outputs on D and on D′ (one per run).

    Parameters
    ----------
    out_d, out_dprime : 1-d arrays
        A statistic of the mechanism's output for independent runs on D and on D′.
    delta : float
        The δ of the claim being audited.
    alpha : float, default 0.05
        1 − confidence.

    Returns
    -------
    AuditResult

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> r = epsilon_lower_bound(rng.normal(0, 1, 20000), rng.normal(1, 1, 20000), 1e-5)
    >>> 0 < r.epsilon_lower_bound < 3.8   # the Gaussian with sigma 1 is (3.8, 1e-5)-DP
    True
    """
    a = np.asarray(out_d, dtype=float)
    b = np.asarray(out_dprime, dtype=float)
    if a.ndim != 1 or b.ndim != 1 or len(a) < 20 or len(b) < 20:
        raise InvalidParameterError("epsilon_lower_bound needs two 1-d arrays of at least 20 runs each.")
    ha, hb = len(a) // 2, len(b) // 2
    sel_a, ev_a = a[:ha], a[ha:]
    sel_b, ev_b = b[:hb], b[hb:]
    qs = np.quantile(np.concatenate([sel_a, sel_b]), np.linspace(0.0, 1.0, n_thresholds))
    best = (-1.0, 0.0, "greater")
    for t in np.unique(qs):
        for direction in ("greater", "less"):
            if direction == "greater":
                tp, fp = int((sel_b > t).sum()), int((sel_a > t).sum())
            else:
                tp, fp = int((sel_a < t).sum()), int((sel_b < t).sum())
            # selection half: plain ratio with add-one smoothing
            score = math.log((tp + 1) / (hb + 1)) - math.log((fp + 1) / (ha + 1)) if direction == "greater" else \
                math.log((tp + 1) / (ha + 1)) - math.log((fp + 1) / (hb + 1))
            if score > best[0]:
                best = (score, float(t), direction)
    _, t, direction = best
    if direction == "greater":
        tp, fp, n1, n0 = int((ev_b > t).sum()), int((ev_a > t).sum()), len(ev_b), len(ev_a)
    else:
        tp, fp, n1, n0 = int((ev_a < t).sum()), int((ev_b < t).sum()), len(ev_a), len(ev_b)
    eps, tpr_lo, fpr_hi = _bound(tp, fp, n1, n0, delta, alpha)
    return AuditResult(eps, t, direction, tpr_lo, fpr_hi, len(a) + len(b))
