"""Statistics shared by the membership-inference attacks: ROC, AUC, TPR at low FPR, bootstrap and ε bounds.

Convention everywhere: an attack gives every candidate record a *score*, and a **higher score
means "member"** (the record was in the training data). ``members`` are the scores of records
that really were in the training data, ``nonmembers`` those of records that were not (holdout).

:func:`attack_metrics` turns the two score arrays into the report's standard set of
:class:`~synthhealth.report.model.Metric` objects (AUC, TPR at 1 % and 0.1 % FPR, an empirical
ε lower bound) and a ROC :class:`~synthhealth.report.model.Figure`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..._validation import check_random_state
from ...exceptions import InvalidParameterError
from ...privacy.audit import clopper_pearson
from ..model import Figure, Metric

__all__ = ["roc_auc", "roc_curve", "tpr_at_fpr", "tpr_at_fpr_counts", "bootstrap_ci", "empirical_epsilon", "EpsilonBound",
           "attack_metrics"]

_ROC_MAX_POINTS = 200


def _scores(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1 or len(a) == 0:
        raise InvalidParameterError(
            f"The {name!r} parameter must be a non-empty 1-d array of scores. Got shape {a.shape} instead.")
    if not np.all(np.isfinite(a)):
        raise InvalidParameterError(
            f"The {name!r} parameter must contain finite scores only. Got {int((~np.isfinite(a)).sum())} "
            "non-finite values instead.")
    return a


def roc_auc(scores_members: Any, scores_nonmembers: Any) -> float:
    """Area under the ROC curve of an attack (Mann–Whitney U statistic).

    The probability that a random member scores higher than a random non-member, ties counting
    one half: ``AUC = (#{m > n} + ½ #{m = n}) / (|M| |N|)``. 0.5 is guessing, 1 a perfect attack.

    Parameters
    ----------
    scores_members, scores_nonmembers : 1-d array-like of float
        Attack scores (higher = "member").

    Returns
    -------
    float

    Examples
    --------
    >>> roc_auc([3, 2, 1], [1, 0])  # pairs: 3>1,3>0,2>1,2>0,1=1 (½),1>0 -> 5.5 / 6
    0.9166666666666666
    """
    m = _scores(scores_members, "scores_members")
    n = _scores(scores_nonmembers, "scores_nonmembers")
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([m, n]))  # average ranks: ties count one half
    u = float(ranks[: len(m)].sum()) - len(m) * (len(m) + 1) / 2.0
    return u / (len(m) * len(n))


def _roc_counts(m: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True/false positive counts of the rule "score ≥ t" for every distinct score t (descending), from (0, 0)."""
    thresholds = np.unique(np.concatenate([m, n]))[::-1]
    ms, ns = np.sort(m), np.sort(n)
    tp = len(ms) - np.searchsorted(ms, thresholds, side="left")
    fp = len(ns) - np.searchsorted(ns, thresholds, side="left")
    return (np.concatenate([[np.inf], thresholds]), np.concatenate([[0], tp]).astype(np.int64),
            np.concatenate([[0], fp]).astype(np.int64))


def roc_curve(scores_members: Any, scores_nonmembers: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of the rules "member if score ≥ t", one point per distinct score.

    Tied scores cannot be separated by a threshold, so a group of ties is one step of the curve
    (drawn as a straight segment); the area under the polyline equals :func:`roc_auc`.

    Returns
    -------
    fpr, tpr, thresholds : arrays
        Starting at ``(0, 0)`` (threshold ``+inf``) and ending at ``(1, 1)``.

    Examples
    --------
    >>> fpr, tpr, _ = roc_curve([3, 2, 1], [1, 0])
    >>> fpr.tolist(), tpr.round(3).tolist()
    ([0.0, 0.0, 0.0, 0.5, 1.0], [0.0, 0.333, 0.667, 1.0, 1.0])
    """
    m = _scores(scores_members, "scores_members")
    n = _scores(scores_nonmembers, "scores_nonmembers")
    thr, tp, fp = _roc_counts(m, n)
    return fp / len(n), tp / len(m), thr


def tpr_at_fpr(scores_members: Any, scores_nonmembers: Any, fpr: float) -> float:
    """Largest true-positive rate of a threshold rule whose false-positive rate is at most ``fpr``.

    Only deterministic rules "member if score ≥ t" count: a group of tied scores is either all
    flagged or not at all (no randomised tie-breaking, no interpolation), so the result is the
    TPR an attacker can really achieve at that FPR. The rule that flags nobody (TPR 0, FPR 0) is
    always allowed.

    Parameters
    ----------
    scores_members, scores_nonmembers : 1-d array-like of float
    fpr : float in [0, 1]
        The largest false-positive rate tolerated.

    Returns
    -------
    float

    Examples
    --------
    >>> tpr_at_fpr([5, 4, 3, 1], [4, 2, 1, 0], 0.25)  # "≥ 3" flags 3 of 4 members and 1 of 4 non-members
    0.75
    >>> tpr_at_fpr([5, 4, 3, 1], [4, 2, 1, 0], 0.2)
    0.25
    """
    if not isinstance(fpr, (int, float, np.floating, np.integer)) or isinstance(fpr, bool) or not 0 <= fpr <= 1:
        raise InvalidParameterError(f"The 'fpr' parameter must be a float in [0, 1]. Got {fpr!r} instead.")
    m = _scores(scores_members, "scores_members")
    n = _scores(scores_nonmembers, "scores_nonmembers")
    _, tp, fp = _roc_counts(m, n)
    ok = fp <= float(fpr) * len(n) * (1 + 1e-12)  # compare counts: FP/N ≤ fpr, exact up to rounding
    return float(tp[ok].max()) / len(m)


def tpr_at_fpr_counts(scores_members: Any, scores_nonmembers: Any, fpr: float) -> tuple[int, int]:
    """Members and non-members flagged by the threshold rule of :func:`tpr_at_fpr`.

    Returns
    -------
    (true_positives, false_positives) : tuple of int
        At the rule "score ≥ t" with the most true positives among those whose false-positive
        rate is at most ``fpr`` (fewest false positives on ties).

    Examples
    --------
    >>> tpr_at_fpr_counts([5, 4, 3, 1], [4, 2, 1, 0], 0.25)
    (3, 1)
    """
    tpr = tpr_at_fpr(scores_members, scores_nonmembers, fpr)
    m = _scores(scores_members, "scores_members")
    n = _scores(scores_nonmembers, "scores_nonmembers")
    _, tp, fp = _roc_counts(m, n)
    tp_best = int(round(tpr * len(m)))
    ok = (tp == tp_best) & (fp <= float(fpr) * len(n) * (1 + 1e-12))
    return tp_best, int(fp[ok].min())


def bootstrap_ci(statistic: Callable[..., float], *arrays: Any, n_boot: int = 200, random_state: Any = None,
                 alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap confidence interval, resampling each array separately.

    Each array (e.g. the member scores and the non-member scores) is resampled with replacement
    at its own size, independently of the others, and ``statistic(*resampled)`` recomputed.

    Parameters
    ----------
    statistic : callable
        ``statistic(*arrays) -> float``.
    *arrays : 1-d array-like
    n_boot : int, default 200
        Number of bootstrap replicates.
    random_state : None, int or numpy.random.Generator
    alpha : float, default 0.05
        1 − confidence level (0.05: a 95 % interval).

    Returns
    -------
    (low, high) : tuple of float

    Examples
    --------
    >>> lo, hi = bootstrap_ci(roc_auc, [3, 2, 1, 5], [1, 0, 2], random_state=0)
    >>> 0 <= lo <= roc_auc([3, 2, 1, 5], [1, 0, 2]) <= hi <= 1
    True
    """
    if not callable(statistic):
        raise InvalidParameterError(
            f"The 'statistic' parameter must be callable. Got {type(statistic).__name__} instead.")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
        raise InvalidParameterError(f"The 'n_boot' parameter must be an int in [2, inf). Got {n_boot!r} instead.")
    if not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise InvalidParameterError(f"The 'alpha' parameter must be a float in (0, 1). Got {alpha!r} instead.")
    if not arrays:
        raise InvalidParameterError("bootstrap_ci needs at least one array to resample. Got none.")
    arrs = [np.asarray(a) for a in arrays]
    for i, a in enumerate(arrs):
        if a.ndim != 1 or len(a) == 0:
            raise InvalidParameterError(
                f"Array {i} passed to bootstrap_ci must be non-empty and 1-d. Got shape {a.shape} instead.")
    rng = check_random_state(random_state)
    stats = np.empty(int(n_boot))
    for b in range(int(n_boot)):
        stats[b] = statistic(*(a[rng.integers(0, len(a), len(a))] for a in arrs))
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


class EpsilonBound(float):
    """A float (the ε lower bound) carrying how it was obtained, in :attr:`info`."""

    info: dict[str, Any]

    def __new__(cls, value: float, info: dict[str, Any]) -> EpsilonBound:
        obj = super().__new__(cls, value)
        obj.info = info
        return obj


def _cp_log_bounds(num: np.ndarray, n_num: int, den: np.ndarray, n_den: int, delta: float,
                   alpha: float) -> np.ndarray:
    """Vectorised log((CP-lower(num/n_num) − δ) / CP-upper(den/n_den)), −inf where undefined."""
    from scipy.stats import beta

    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(num > 0, beta.ppf(alpha / 2, np.maximum(num, 1), n_num - num + 1), 0.0)
        hi = np.where(den < n_den, beta.ppf(1 - alpha / 2, den + 1, np.maximum(n_den - den, 1)), 1.0)
        out = np.log(lo - delta) - np.log(hi)
    return np.where((lo - delta > 0) & (hi > 0), out, -np.inf)


def empirical_epsilon(scores_members: Any, scores_nonmembers: Any, delta: float, alpha: float = 0.05, *,
                      n_thresholds: int = 200) -> EpsilonBound:
    """Empirical ε lower bound implied by the best threshold of an attack (Clopper–Pearson).

    An (ε, δ)-DP release forces every test "member if score ≥ t" to satisfy both
    ``TPR ≤ e^ε FPR + δ`` and ``TNR ≤ e^ε FNR + δ``, so ``ε ≥ log((TPR − δ) / FPR)`` and
    ``ε ≥ log((TNR − δ) / FNR)``. As in :func:`synthhealth.privacy.audit.epsilon_lower_bound`, the
    threshold and the inequality are chosen on the first half of each score array (the one with
    the best Clopper–Pearson bound there) and evaluated on the second half with Clopper–Pearson bounds (lower for the numerator rate, upper for the
    denominator rate, ``alpha/2`` one-sided each), so the search over thresholds does not inflate
    the bound. Pass the scores in random order (the attacks do).

    **Caveat.** A proper DP audit repeats the mechanism many times on two fixed neighbouring
    datasets. Here there is *one* release and many different target records, so the bound is a
    per-record-*average* heuristic (how distinguishable membership is for a typical target), not
    a proof that some record's ε exceeds the bound. It is meant to be compared with the claimed
    ε: a bound above the claim is a strong warning sign (a bug or a non-DP step), a bound below it
    proves nothing.

    Parameters
    ----------
    scores_members, scores_nonmembers : 1-d array-like of float
        Higher = "member"; at least 4 of each.
    delta : float in [0, 1)
        The δ of the claim.
    alpha : float, default 0.05
        1 − confidence.
    n_thresholds : int, default 200
        Quantiles of the selection half tried as thresholds.

    Returns
    -------
    EpsilonBound
        A float ≥ 0; ``.info`` holds the chosen threshold, the inequality, the Clopper–Pearson
        bounds and the evaluation sizes.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> same = empirical_epsilon(rng.normal(0, 1, 2000), rng.normal(0, 1, 2000), 1e-6)
    >>> far = empirical_epsilon(rng.normal(6, 1, 2000), rng.normal(0, 1, 2000), 1e-6)
    >>> float(same) < 0.3 < 4 < float(far)
    True
    """
    m = _scores(scores_members, "scores_members")
    n = _scores(scores_nonmembers, "scores_nonmembers")
    if not isinstance(delta, (int, float)) or isinstance(delta, bool) or not 0 <= delta < 1:
        raise InvalidParameterError(f"The 'delta' parameter must be a float in [0, 1). Got {delta!r} instead.")
    if not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise InvalidParameterError(f"The 'alpha' parameter must be a float in (0, 1). Got {alpha!r} instead.")
    if len(m) < 4 or len(n) < 4:
        raise InvalidParameterError(
            "empirical_epsilon needs at least 4 member and 4 non-member scores. "
            f"Got {len(m)} and {len(n)} instead.")
    hm, hn = len(m) // 2, len(n) // 2
    sel_m, ev_m, sel_n, ev_n = m[:hm], m[hm:], n[:hn], n[hn:]
    qs = np.unique(np.quantile(np.concatenate([sel_m, sel_n]), np.linspace(0.0, 1.0, n_thresholds)))
    sm, sn = np.sort(sel_m), np.sort(sel_n)
    tp = hm - np.searchsorted(sm, qs, side="left")  # members flagged by "score ≥ t"
    fp = hn - np.searchsorted(sn, qs, side="left")
    # choose the threshold and the inequality whose Clopper–Pearson bound is best on the selection half
    cand = {"tpr/fpr": _cp_log_bounds(tp, hm, fp, hn, delta, alpha),
            "tnr/fnr": _cp_log_bounds(hn - fp, hn, hm - tp, hm, delta, alpha)}
    rule = max(cand, key=lambda r: float(np.max(cand[r])))
    i = int(np.argmax(cand[rule]))
    best = (float(cand[rule][i]), float(qs[i]), rule)
    _, t, rule = best
    tp_e, fp_e = int((ev_m >= t).sum()), int((ev_n >= t).sum())
    n1, n0 = len(ev_m), len(ev_n)
    if rule == "tpr/fpr":
        num_lo, den_hi = clopper_pearson(tp_e, n1, alpha)[0], clopper_pearson(fp_e, n0, alpha)[1]
    else:
        num_lo, den_hi = clopper_pearson(n0 - fp_e, n0, alpha)[0], clopper_pearson(n1 - tp_e, n1, alpha)[1]
    eps = 0.0 if num_lo - delta <= 0 or den_hi <= 0 else max(0.0, math.log((num_lo - delta) / den_hi))
    info = {"threshold": t, "rule": rule, "numerator_rate_lower": num_lo, "denominator_rate_upper": den_hi,
            "n_eval_members": n1, "n_eval_nonmembers": n0, "delta": float(delta), "alpha": float(alpha)}
    return EpsilonBound(eps, info)


def _downsample_roc(fpr: np.ndarray, tpr: np.ndarray, max_points: int = _ROC_MAX_POINTS) -> tuple[list, list]:
    """At most ``max_points`` ROC points, dense both on a linear and on a logarithmic FPR scale."""
    if len(fpr) <= max_points:
        return fpr.tolist(), tpr.tolist()
    grid = np.unique(np.concatenate([np.linspace(0.0, 1.0, max_points // 2 - 1),
                                     np.logspace(-4, 0, max_points - max_points // 2 - 1)]))
    # for each grid value: the last ROC point with FPR ≤ it (the best TPR at that FPR), plus the ends
    idx = np.searchsorted(fpr, grid, side="right") - 1
    idx = np.unique(np.concatenate([[0, len(fpr) - 1], np.clip(idx, 0, len(fpr) - 1)]))[:max_points]
    return fpr[idx].tolist(), tpr[idx].tolist()


def attack_metrics(prefix: str, title: str, members: Any, nonmembers: Any, *, delta: float, random_state: Any,
                   n_boot: int = 200, description: str = "") -> tuple[list[Metric], Figure]:
    """The report's standard metrics and ROC figure for one membership-inference attack.

    Parameters
    ----------
    prefix : str
        Key prefix, e.g. ``"attacks.dcr"``.
    title : str
        Human name of the attack, e.g. ``"Distance to closest record"``.
    members, nonmembers : 1-d array-like of float
        Attack scores (higher = "member") of training records and of holdout records.
    delta : float
        δ of the privacy claim, for the ε lower bound.
    random_state : None, int or numpy.random.Generator
        Seeds the bootstrap and the random split of the ε bound.
    n_boot : int, default 200
    description : str, optional
        The attack's threat model, prepended to every metric's description.

    Returns
    -------
    metrics : list of Metric
        ``{prefix}.auc``, ``{prefix}.tpr_at_fpr_1pct``, ``{prefix}.tpr_at_fpr_0.1pct``,
        ``{prefix}.epsilon_lower_bound`` (all ``real_data=True``).
    figure : Figure
        ``{prefix}.roc``, kind ``"lines"`` (≤ 200 points, with the chance diagonal).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ms, fig = attack_metrics("attacks.x", "X", rng.normal(1, 1, 300), rng.normal(0, 1, 300),
    ...                          delta=1e-6, random_state=0)
    >>> [m.key for m in ms]
    ['attacks.x.auc', 'attacks.x.tpr_at_fpr_1pct', 'attacks.x.tpr_at_fpr_0.1pct', 'attacks.x.epsilon_lower_bound']
    >>> 0.6 < ms[0].value < 0.9, fig.key
    (True, 'attacks.x.roc')
    """
    if not isinstance(prefix, str) or not prefix:
        raise InvalidParameterError(f"The 'prefix' parameter must be a non-empty str. Got {prefix!r} instead.")
    m = _scores(members, "members")
    n = _scores(nonmembers, "nonmembers")
    rng = check_random_state(random_state)
    lead = (description.rstrip() + " ") if description else ""
    sizes = {"n_members": len(m), "n_nonmembers": len(n)}

    auc = roc_auc(m, n)
    metrics = [Metric(
        key=f"{prefix}.auc", name=f"{title}: attack AUC", value=auc, goal="target", range=(0.0, 1.0),
        reference=0.5, ci=bootstrap_ci(roc_auc, m, n, n_boot=n_boot, random_state=rng),
        description=lead + "How well the attack's score separates records that were used for training from records "
        "that were not: 0.5 means the attacker does no better than a coin flip, 1.0 means every training record is "
        "recognised. Values clearly above 0.5 mean membership leaks.",
        formula="AUC = P(score(member) > score(non-member)) + ½ P(equal)  (Mann–Whitney); 95% CI: percentile "
        "bootstrap resampling the real records (members and non-members, separately)",
        real_data=True, details=dict(sizes))]
    for label, f in (("1pct", 0.01), ("0.1pct", 0.001)):
        pct = f"{100 * f:g}%"
        tp, fp = tpr_at_fpr_counts(m, n, f)
        measurable = f * len(n) >= 1.0
        tpr_ci = clopper_pearson(tp, len(m))
        metrics.append(Metric(
            key=f"{prefix}.tpr_at_fpr_{label}", name=f"{title}: true-positive rate at {pct} false alarms",
            value=tp / len(m), goal="minimize", range=(0.0, 1.0), reference=f, ci=tpr_ci,
            description=lead + f"Share of training records flagged by the attack's best threshold that wrongly "
            f"flags at most {pct} of non-members. Guessing gives {f:g}. It is judged with exact (Clopper–Pearson) "
            "bounds against the differential-privacy trade-off curve of the fit: a DP release forces every test to "
            "TPR ≤ e^ε·FPR + δ, so only a lower bound on the TPR above that ceiling (at the upper bound on the "
            "test's real false-alarm rate) is evidence that members are found."
            + (f" With {len(n)} non-members a {pct} false-alarm rate cannot be measured (one false alarm is "
               f"already {100 / len(n):.2g}%): the value is shown but not judged." if not measurable else ""),
            formula=f"max TPR over thresholds t with FPR(score ≥ t) ≤ {f:g} (no randomised tie-breaking); CI: "
            "Clopper–Pearson on the members flagged; judged: TPR_lo > min(e^ε·FPR_hi + δ, 1 − e^(−ε)(1 − δ − FPR_hi))",
            real_data=True, details={**sizes, "fpr": f, "true_positives": tp, "false_positives": fp,
                                     "fpr_observed": fp / len(n),
                                     "fpr_upper": clopper_pearson(fp, len(n))[1], "measurable": measurable,
                                     "ci_method": "clopper-pearson"}))
    try:
        eps = empirical_epsilon(m[rng.permutation(len(m))], n[rng.permutation(len(n))], delta)
        eps_value: float | None = float(eps)
        eps_details = {**sizes, **eps.info}
    except InvalidParameterError as exc:
        if "at least 4" not in str(exc):
            raise
        eps_value, eps_details = None, {**sizes, "reason": "fewer than 4 members or non-members"}
    metrics.append(Metric(
        key=f"{prefix}.epsilon_lower_bound", name=f"{title}: empirical ε lower bound", value=eps_value,
        goal="minimize", range=(0.0, math.inf), reference=0.0,
        description=lead + "The privacy loss ε that the attack's best threshold demonstrates, with 95% confidence, "
        "for a typical record. Compare it with the claimed ε: a value above the claim signals a bug or a non-private "
        "step; a value below it does not prove privacy. It is a heuristic (one release, many target records), not "
        "a formal per-record audit.",
        formula="ε ≥ max(log((TPR_lo − δ)/FPR_hi), log((TNR_lo − δ)/FNR_hi)); threshold chosen on one half "
        "of the targets, Clopper–Pearson bounds on the other half",
        real_data=True, details=eps_details))

    fpr, tpr, _ = roc_curve(m, n)
    xs, ys = _downsample_roc(fpr, tpr)
    figure = Figure(
        key=f"{prefix}.roc", title=f"{title}: ROC curve", kind="lines",
        data={"series": {"attack": {"x": xs, "y": ys}}, "xlabel": "false-positive rate (non-members flagged)",
              "ylabel": "true-positive rate (members flagged)", "diagonal": True, "logx": False, "step": False},
        caption="Each point is one threshold of the attack's score. The diagonal is guessing; the further the "
        "curve bulges above it (especially at the far left, few false alarms) the more membership leaks.",
        real_data=True)
    return metrics, figure
