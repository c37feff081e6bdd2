"""Release checks: every judged metric against a documented, configurable threshold.

A :class:`Threshold` says, for the metrics whose key matches a pattern (``fnmatch`` style,
e.g. ``"attacks.*.auc"``), which values pass, which only warn, and which fail. Values can be
judged as they are, or as their distance to the metric's reference value (e.g. TSTR AUROC
against train-on-real). The defaults (:data:`DEFAULT_THRESHOLDS`) are documented in
``docs/report.md``; users override any of them with ``thresholds={pattern: Threshold(...)}``
or a YAML file on the command line.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..exceptions import InvalidParameterError
from .model import Check, Metric, Verdict

__all__ = ["Threshold", "DEFAULT_THRESHOLDS", "judge", "overall", "load_thresholds", "max_auc", "max_share"]


@dataclass(frozen=True)
class Threshold:
    """How to judge a metric.

    Parameters
    ----------
    pass_at, warn_at : float
        With ``better="lower"``: pass when value ≤ ``pass_at``, warn when ≤ ``warn_at``, else fail.
        With ``better="higher"``: pass when value ≥ ``pass_at``, warn when ≥ ``warn_at``, else fail.
    better : {"lower", "higher"}, default "lower"
        Which direction is better for the value (ignored with ``measure="gap"``, where a smaller
        gap is always better).
    measure : {"value", "gap", "shortfall"}, default "value"
        ``"gap"`` judges ``|value − reference|`` (lower is better) instead of the value;
        ``"shortfall"`` judges ``max(reference − value, 0)``, one-sided: a value above its
        reference is never worse (e.g. a model trained on synthetic data beating one trained on
        real data); ``"excess"`` judges ``max(value − reference, 0)`` (e.g. a distance beyond its
        real-vs-real floor).
    why : str, default ""
        Plain-language meaning, shown beside the verdict.
    basis : {"value", "ci"}, default "value"
        ``"ci"`` judges the metric's 95% confidence interval when it has one: pass only when the
        whole interval passes, fail only when the whole interval fails, warn when the interval is
        too wide to tell (small data must not pass, or fail, by chance). Without a CI the value is
        judged.

    Raises
    ------
    InvalidParameterError
        If ``better``, ``measure`` or ``basis`` is not one of its choices, or ``pass_at`` is on the
        wrong side of ``warn_at`` for ``better``.

    Examples
    --------
    >>> th = Threshold(0.6, 0.7, why="attack AUC")
    >>> th.judge(0.55), th.judge(0.65), th.judge(0.9)
    ('pass', 'warn', 'fail')
    """

    pass_at: float
    warn_at: float
    better: Literal["lower", "higher"] = "lower"
    measure: Literal["value", "gap", "shortfall", "excess"] = "value"
    why: str = ""
    basis: Literal["value", "ci"] = "value"

    def __post_init__(self) -> None:
        if self.better not in ("lower", "higher"):
            raise InvalidParameterError(f"The 'better' parameter of Threshold must be 'lower' or 'higher'. "
                                        f"Got {self.better!r} instead.")
        if self.basis not in ("value", "ci"):
            raise InvalidParameterError(f"The 'basis' parameter of Threshold must be 'value' or 'ci'. "
                                        f"Got {self.basis!r} instead.")
        if self.measure not in ("value", "gap", "shortfall", "excess"):
            raise InvalidParameterError(f"The 'measure' parameter of Threshold must be 'value', 'gap', "
                                        f"'shortfall' or 'excess'. Got {self.measure!r} instead.")
        ordered = self.pass_at <= self.warn_at if self.better == "lower" else self.pass_at >= self.warn_at
        if not ordered:
            raise InvalidParameterError(
                f"Threshold needs pass_at {'≤' if self.better == 'lower' else '≥'} warn_at for better={self.better!r}. "
                f"Got pass_at={self.pass_at}, warn_at={self.warn_at} instead.")

    def rule(self) -> str:
        """Human-readable form, e.g. ``"≤ 0.6 pass, ≤ 0.7 warn"``.

        Returns
        -------
        str
            The rule as shown in the report's checks.

        Examples
        --------
        >>> Threshold(0.9, 0.7, better="higher").rule()
        '≥ 0.9 pass, ≥ 0.7 warn'
        >>> Threshold(0.1, 0.2, measure="gap", basis="ci").rule()
        '|value − reference| ≤ 0.1 pass, ≤ 0.2 warn (whole 95% CI)'
        """
        op = "≤" if self.better == "lower" or self.measure in ("gap", "shortfall", "excess") else "≥"
        what = {"gap": "|value − reference| ", "shortfall": "(reference − value) ",
                "excess": "(value − reference) "}.get(self.measure, "")
        if self.pass_at == self.warn_at:
            worse = ">" if op == "≤" else "<"
            text = f"{what}{op} {self.pass_at:g} pass, {worse} {self.pass_at:g} fail"
            return text + (" (whole 95% CI; warn when it straddles)" if self.basis == "ci" else "")
        ci = " (whole 95% CI)" if self.basis == "ci" else ""
        return f"{what}{op} {self.pass_at:g} pass, {op} {self.warn_at:g} warn{ci}"

    def _one(self, x: float) -> Verdict:
        if self.better == "lower" or self.measure in ("gap", "shortfall", "excess"):
            return "pass" if x <= self.pass_at else "warn" if x <= self.warn_at else "fail"
        return "pass" if x >= self.pass_at else "warn" if x >= self.warn_at else "fail"

    def judge(self, value: float | None, reference: float | None = None,
              ci: tuple[float, float] | None = None) -> Verdict:
        """Verdict for one value (``"n/a"`` when it is missing); with ``basis="ci"``, for its CI.

        Parameters
        ----------
        value : float or None
            The metric's value.
        reference : float, optional
            The metric's reference value; required with ``measure="gap"`` (else ``"n/a"``).
        ci : (float, float), optional
            The metric's 95% confidence interval; used with ``basis="ci"`` when both ends are finite.

        Returns
        -------
        {"pass", "warn", "fail", "n/a"}
            ``"n/a"`` when ``value`` is missing or not finite, or a gap has no reference. With a CI:
            ``"pass"`` only when the whole interval passes, ``"fail"`` only when the whole interval
            fails, ``"warn"`` otherwise.

        Examples
        --------
        >>> th = Threshold(0.1, 0.2, measure="gap", basis="ci")
        >>> th.judge(0.55, reference=0.5)
        'pass'
        >>> th.judge(0.55, reference=0.5, ci=(0.52, 0.75))
        'warn'
        >>> th.judge(None)
        'n/a'
        """
        if value is None or not math.isfinite(value):
            return "n/a"
        if self.measure in ("gap", "shortfall", "excess") and reference is None:
            return "n/a"
        if self.basis == "ci" and ci is not None and all(c is not None and math.isfinite(c) for c in ci):
            lo, hi = float(min(ci)), float(max(ci))
            if self.measure == "gap":
                assert reference is not None
                far = max(abs(lo - reference), abs(hi - reference))
                near = 0.0 if lo <= reference <= hi else min(abs(lo - reference), abs(hi - reference))
                worst, best = far, near
            elif self.measure == "shortfall":
                assert reference is not None
                worst, best = max(reference - lo, 0.0), max(reference - hi, 0.0)
            elif self.measure == "excess":
                assert reference is not None
                worst, best = max(hi - reference, 0.0), max(lo - reference, 0.0)
            elif self.better == "lower":
                worst, best = hi, lo
            else:
                worst, best = lo, hi
            v_worst, v_best = self._one(worst), self._one(best)
            if v_worst == v_best:
                return v_worst
            return "fail" if v_best == "fail" else "warn" if v_worst != "pass" else "pass"
        if self.measure == "gap" and reference is not None:
            return self._one(abs(value - reference))
        if self.measure == "shortfall" and reference is not None:
            return self._one(max(reference - value, 0.0))
        if self.measure == "excess" and reference is not None:
            return self._one(max(value - reference, 0.0))
        return self._one(value)


_AUC = "An AUC of 0.5 means the attacker does no better than a coin toss; 1.0 means members are always recognised."

DEFAULT_THRESHOLDS: dict[str, Threshold] = {
    "guarantee.epsilon": Threshold(2.0, 8.0, why="ε ≤ 2 is a strong guarantee; above 8 the proven protection is weak."),
    "attacks.*.auc": Threshold(0.6, 0.7, basis="ci", why=_AUC + " One-sided: an AUC below 0.5 is not a risk."),
    "attacks.singling_out.*.risk": Threshold(0.1, 0.1, basis="ci", why="Excess success of singling out a patient "
                                                                       "over what the population alone allows "
                                                                       "(0 = none)."),
    "attacks.linkability.risk": Threshold(0.1, 0.1, basis="ci", why="Excess success of linking two partial records "
                                                                    "of a patient (0 = none)."),
    "attacks.inference.*risk": Threshold(0.1, 0.1, basis="ci", why="Excess success of inferring a secret attribute "
                                                                   "of a patient (0 = none)."),
    "utility.tvd1.mean": Threshold(0.05, 0.1, measure="gap",
                                   why="Mean distance between real and synthetic single-attribute distributions, "
                                       "beyond the distance between two real samples (train vs holdout)."),
    "utility.tvd2.mean": Threshold(0.1, 0.15, measure="gap",
                                   why="Mean distance between real and synthetic two-attribute distributions, "
                                       "beyond the distance between two real samples (train vs holdout)."),
    "utility.tstr.auroc": Threshold(0.03, 0.07, measure="shortfall", basis="ci",
                                    why="AUROC of a model trained on synthetic data, compared with one trained on "
                                        "real data (both tested on real holdout data). One-sided: doing better than "
                                        "train-on-real is not a failure."),
    "utility.survival.km_max_gap": Threshold(0.05, 0.1, why="Largest gap between real and synthetic survival curves."),
    "utility.pmse_ratio": Threshold(10.0, 100.0, why="How easily a classifier tells synthetic from real, relative "
                                                     "to chance (1 = indistinguishable)."),
    "bias.rare.retention": Threshold(0.9, 0.7, better="higher", why="Share of rare categories (< 1% of patients) "
                                                                    "that the synthetic data keeps."),
    "bias.subgroup.worst_tvd": Threshold(0.1, 0.2, measure="excess", why="Fidelity of the worst-served demographic subgroup (sex × "
                                                        "age band, race, ethnicity: whichever the schema has), beyond the "
                                                        "real-vs-real floor of that subgroup (training vs holdout)."),
    "bias.coverage": Threshold(0.7, 0.4, better="higher", why="Share of real patients with a synthetic look-alike "
                                                              "nearby (diversity)."),
}
"""Default thresholds, in order: the first matching pattern judges a metric. See ``docs/report.md``."""

PRIVACY_PREFIXES = ("guarantee.", "attacks.")
"""Which checks are about privacy (the rest are utility/bias)."""

INFERENCE_IMPLIED_RATE = 0.9
"""An inference risk is not judged when the control attack already succeeds this often."""

SHARE_FAIL_P, SHARE_WARN_P, SHARE_FAIL_EXCESS = 0.01, 0.05, 0.05
"""The closer-to-train share fails when its one-sided permutation p-value is below ``SHARE_FAIL_P`` and
it exceeds the null centre by more than ``SHARE_FAIL_EXCESS``; it warns when p < ``SHARE_WARN_P``."""


def _judge_tpr(m: Metric, epsilon: float | None, delta: float | None) -> Check:
    """TPR at a low FPR against the DP trade-off curve, with exact bounds; n/a when the FPR cannot be measured."""
    from .guarantee import max_tpr

    d = m.details or {}
    f = float(d.get("fpr", m.reference or 0.01))
    pct = f"{100 * f:g}%"
    n0 = d.get("n_nonmembers")
    eps = 0.0 if epsilon is None else float(epsilon)
    dl = 0.0 if delta is None else float(delta)
    curve = (f"e^ε·FPR_hi + δ with ε = {eps:.3g}" if epsilon is not None
             else "FPR_hi (chance: no guarantee is known)")
    rule = f"TPR 95% lower bound ≤ {curve}"
    if m.value is None or m.ci is None or "fpr_upper" not in d:
        return Check(m.key, m.name, m.value, rule, "n/a", "Not computed.")
    if not d.get("measurable", True):
        return Check(m.key, m.name, m.value, rule, "n/a",
                     f"Too few non-members ({n0}) to measure a {pct} false-alarm rate: one false alarm is already "
                     f"{100 / max(int(n0 or 1), 1):.2g}%, and with none the true rate may be up to "
                     f"{100 * float(d['fpr_upper']):.2g}% (Clopper–Pearson).")
    ceiling = max_tpr(float(d["fpr_upper"]), eps, dl)
    lo = float(min(m.ci))
    if lo > ceiling:
        name = m.name.replace("true-positive rate at", "members found at") + " beyond the guarantee"
        return Check(m.key, name, m.value, rule, "fail",
                     f"Even the lower 95% bound of the members caught ({lo:.3g}) exceeds the most any attack can "
                     f"catch at a false-alarm rate up to {float(d['fpr_upper']):.3g} ({ceiling:.3g}): members are "
                     "found more often than the guarantee allows.")
    return Check(m.key, m.name, m.value, rule, "pass",
                 f"Consistent with the guarantee: at a false-alarm rate up to {float(d['fpr_upper']):.3g} (upper "
                 f"bound) any attack may catch up to {ceiling:.3g} of members; the lower bound of this one is "
                 f"{lo:.3g}.")


def max_auc(epsilon: float, delta: float = 0.0) -> float:
    """The largest AUC any membership test can reach under (ε, δ)-DP: the area under the trade-off curve.

    For pure ε-DP it is e^ε / (1 + e^ε); δ adds at most δ.

    Examples
    --------
    >>> round(max_auc(1.0), 4)
    0.7311
    """
    e = math.exp(min(float(epsilon), 700.0))
    return min(1.0, e / (1.0 + e) + float(delta))


def _judge_with_guarantee(m: Metric, th: Threshold, epsilon: float, delta: float) -> Check:
    """An attack AUC or risk when a DP guarantee is known: fail only when the evidence exceeds what the data shows.

    Fail when the whole 95% CI is beyond the threshold's fail level (and, for an AUC, beyond the most
    that the guarantee allows); warn when the whole CI is beyond the pass level; otherwise pass: an
    interval too wide to tell is not evidence of risk, and the guarantee bounds what the sample cannot show.
    """
    if m.value is None or not math.isfinite(m.value):
        return Check(m.key, m.name, m.value, th.rule(), "n/a", th.why)
    lo = float(min(m.ci)) if m.ci is not None and all(c is not None for c in m.ci) else float(m.value)
    hi = float(max(m.ci)) if m.ci is not None and all(c is not None for c in m.ci) else float(m.value)
    is_auc = m.key.endswith(".auc")
    fail_at = th.warn_at
    if is_auc:
        ceiling = max_auc(epsilon, delta)
        rule = (f"95% CI lower bound ≤ {th.warn_at:g} or ≤ the ε = {epsilon:.3g} ceiling {ceiling:.3g} pass "
                f"(warn when it is above {th.pass_at:g})")
        fail_at = max(th.warn_at, ceiling)
    else:
        rule = f"95% CI lower bound ≤ {th.warn_at:g} pass (warn when above {th.pass_at:g})"
    if lo > fail_at:
        return Check(m.key, m.name, m.value, rule, "fail",
                     th.why + f" The whole 95% interval ({lo:.3g}–{hi:.3g}) is above {fail_at:.3g}.")
    if lo > th.pass_at and th.pass_at < th.warn_at:
        return Check(m.key, m.name, m.value, rule, "warn",
                     th.why + f" The whole 95% interval ({lo:.3g}–{hi:.3g}) is above {th.pass_at:g}.")
    note = ""
    if hi > th.pass_at:
        note = (f" The interval ({lo:.3g}–{hi:.3g}) is too wide at this sample size to rule out a risk above "
                f"{th.pass_at:g}; the differential-privacy guarantee (ε = {epsilon:.3g}) bounds what the sample "
                "cannot show.")
    return Check(m.key, m.name, m.value, rule, "pass", th.why + note)


def max_share(epsilon: float, delta: float = 0.0) -> float:
    """The largest expected closer-to-train share under (ε, δ)-DP with add/remove neighbours.

    Relabelling one real record from holdout to training is a substitution (two add/remove steps),
    so each record's share of nearest-neighbour weight can grow at most by e^(2ε): the share is at
    most e^(2ε) / (1 + e^(2ε)) (+ δ terms).

    Examples
    --------
    >>> round(max_share(1.0), 3)
    0.881
    """
    e = math.exp(min(2.0 * float(epsilon), 700.0))
    return min(1.0, e / (1.0 + e) + 2.0 * float(delta))


def _judge_share(m: Metric, epsilon: float | None = None, delta: float | None = None) -> Check:
    """The closer-to-train share against its permutation null, one-sided (and against the guarantee's ceiling)."""
    d = m.details or {}
    ceiling = max_share(epsilon, delta or 0.0) if epsilon is not None else None
    rule = (f"one-sided permutation test: fail when p < {SHARE_FAIL_P:g} and the share exceeds the null by > "
            f"{SHARE_FAIL_EXCESS:g}" + (f" and the whole interval exceeds the ε = {epsilon:.3g} ceiling "
                                        f"{ceiling:.3g}" if ceiling is not None else "")
            + f"; warn when p < {SHARE_WARN_P:g}")
    p = d.get("p_value")
    if m.value is None or p is None:
        return Check(m.key, m.name, m.value, rule, "n/a", str(d.get("reason", "Not computed.")))
    centre = float(d.get("null_centre", 0.5))
    excess = float(d.get("test_share", m.value)) - centre
    lo = float(min(m.ci)) if m.ci is not None else float(m.value)
    beyond = ceiling is None or lo > ceiling
    if p < SHARE_FAIL_P and excess > SHARE_FAIL_EXCESS and beyond:
        v: Verdict = "fail"
        why = (f"Synthetic records sit closer to training patients than chance allows (p = {p:.2g}, "
               f"{excess:+.3g} over the null)" + (f", beyond what ε = {epsilon:.3g} allows ({ceiling:.3g})"
                                                  if ceiling is not None else "") + ": a sign of memorisation.")
    elif p < SHARE_FAIL_P and excess > SHARE_FAIL_EXCESS:
        v, why = "warn", (f"Synthetic records sit measurably closer to training patients than chance (p = {p:.2g}, "
                          f"{excess:+.3g} over the null), within what ε = {epsilon:.3g} allows.")
    elif p < SHARE_WARN_P and excess > 0:
        v, why = "warn", f"Slightly more synthetic records closer to training than expected (p = {p:.2g})."
    else:
        v, why = "pass", (f"Consistent with no memorisation (one-sided p = {p:.2g}; the null, from permuting the "
                          "training/holdout labels of the real records, is centred at "
                          f"{centre:.3g}). A share below 0.5 is not a risk.")
    return Check(m.key, m.name, m.value, rule, v, why)


def _match(key: str, thresholds: Mapping[str, Threshold]) -> Threshold | None:
    for pattern, th in thresholds.items():
        if fnmatch.fnmatchcase(key, pattern):
            return th
    return None


def judge(metrics: Iterable[Metric], thresholds: Mapping[str, Threshold] | None = None, *,
          claimed_epsilon: float | None = None, claimed_delta: float | None = None) -> list[Check]:
    """Checks for every metric that a threshold covers (user thresholds first, then the defaults).

    The empirical ε lower bounds of the attacks are judged against the claimed ε: a lower bound
    above the claim means the accounting or the implementation is wrong (fail).

    Parameters
    ----------
    metrics : iterable of Metric
        The report's metrics.
    thresholds : mapping of pattern → Threshold, optional
        User thresholds (``fnmatch`` patterns of metric keys). They are tried before
        :data:`DEFAULT_THRESHOLDS`; the first matching pattern judges a metric.
    claimed_epsilon : float, optional
        The proven ε of the guarantee. Without it, the attacks' ``epsilon_lower_bound`` metrics
        are not judged, and true-positive rates at a low false-positive rate are judged against
        chance (ε = 0).
    claimed_delta : float, optional
        The δ of the guarantee (for the trade-off curve TPR ≤ e^ε·FPR + δ).

    Membership TPRs at a low FPR (``attacks.*.tpr_at_fpr_*``) are judged against the DP trade-off
    curve with exact bounds (``"n/a"`` when there are too few non-members to measure that FPR),
    and ``attacks.dcr.share_closer_to_train`` by its one-sided permutation test, unless a user
    threshold names them.

    Returns
    -------
    list of Check
        One check per metric that some threshold covers, in the order of ``metrics``; metrics
        that no pattern matches are not judged.

    Examples
    --------
    >>> from synthhealth.report.model import Metric
    >>> m = Metric("utility.pmse_ratio", "pMSE ratio", 3.0, "minimize", (1.0, float("inf")))
    >>> [c.verdict for c in judge([m])]
    ['pass']
    >>> judge([m], {"utility.pmse_ratio": Threshold(1.5, 2.0)})[0].verdict
    'fail'
    """
    merged: dict[str, Threshold] = dict(thresholds or {})
    for k, v in DEFAULT_THRESHOLDS.items():
        merged.setdefault(k, v)
    checks: list[Check] = []
    for m in metrics:
        if m.key.endswith(".epsilon_lower_bound") and m.key.startswith("attacks."):
            if claimed_epsilon is None:
                continue
            v = m.value
            verdict: Verdict = "n/a" if v is None else ("pass" if v <= claimed_epsilon else "fail")
            checks.append(Check(m.key, m.name, v, f"≤ claimed ε = {claimed_epsilon:.3g}", verdict,
                                "An empirical lower bound above the proven ε would mean the guarantee is wrong."))
            continue
        user = _match(m.key, thresholds or {})
        if user is None and m.key.startswith("attacks.") and fnmatch.fnmatchcase(m.key, "attacks.*.tpr_at_fpr_*"):
            checks.append(_judge_tpr(m, claimed_epsilon, claimed_delta))
            continue
        if user is None and m.key == "attacks.dcr.share_closer_to_train":
            checks.append(_judge_share(m, claimed_epsilon, claimed_delta))
            continue
        th = _match(m.key, merged)
        if th is None:
            continue
        reason = (m.details or {}).get("not_judged")
        if user is None and reason:
            checks.append(Check(m.key, m.name, m.value, th.rule(), "n/a", f"Cannot be judged at this size: {reason}."))
            continue
        if m.value is None and (m.details or {}).get("reason"):
            checks.append(Check(m.key, m.name, None, th.rule(), "n/a", f"Not computed: {m.details['reason']}."))
            continue
        ctrl = (m.details or {}).get("control") if m.key.startswith("attacks.inference") else None
        if user is None and isinstance(ctrl, dict) and (ctrl.get("rate") or 0.0) >= INFERENCE_IMPLIED_RATE:
            checks.append(Check(m.key, m.name, m.value, th.rule(), "n/a",
                                f"Cannot be judged: the control attack on unseen patients already guesses the secret "
                                f"{100 * ctrl['rate']:.0f}% of the time (the secret is implied by other attributes), "
                                "so there is no room to measure an excess."))
            continue
        if (user is None and claimed_epsilon is not None and m.key.startswith("attacks.") and th.basis == "ci"
                and th.measure == "value" and th.better == "lower"):
            checks.append(_judge_with_guarantee(m, th, float(claimed_epsilon), float(claimed_delta or 0.0)))
            continue
        checks.append(Check(m.key, m.name, m.value, th.rule(), th.judge(m.value, m.reference, m.ci), th.why))
    return checks


def overall(checks: Iterable[Check]) -> Verdict:
    """The worst verdict (fail > warn > pass); ``"n/a"`` when nothing was judged.

    Parameters
    ----------
    checks : iterable of Check
        The judged checks (from :func:`judge`); ``"n/a"`` checks do not count.

    Returns
    -------
    {"pass", "warn", "fail", "n/a"}
        The overall verdict.

    Examples
    --------
    >>> from synthhealth.report.model import Check
    >>> overall([Check("a", "A", 1.0, "", "pass"), Check("b", "B", 2.0, "", "warn")])
    'warn'
    >>> overall([])
    'n/a'
    """
    order = {"fail": 3, "warn": 2, "pass": 1}
    worst = max((order.get(c.verdict, 0) for c in checks), default=0)
    return {3: "fail", 2: "warn", 1: "pass", 0: "n/a"}[worst]  # type: ignore[return-value]


def load_thresholds(doc: Mapping[str, Any]) -> dict[str, Threshold]:
    """Thresholds from a mapping ``{pattern: {pass_at, warn_at, better?, measure?, why?}}`` (e.g. parsed YAML).

    Parameters
    ----------
    doc : mapping
        Metric pattern → mapping with ``pass_at`` and ``warn_at`` (required) and optionally
        ``better``, ``measure``, ``why`` and ``basis`` (the fields of :class:`Threshold`).

    Returns
    -------
    dict of str to Threshold
        Ready to pass as ``thresholds`` to :func:`judge` or :meth:`Report.build`.

    Raises
    ------
    InvalidParameterError
        If ``doc`` is not a mapping, an entry lacks ``pass_at`` or ``warn_at`` or has unknown keys,
        or a threshold is invalid.

    Examples
    --------
    >>> th = load_thresholds({"attacks.*.auc": {"pass_at": 0.05, "warn_at": 0.1, "measure": "gap"}})
    >>> th["attacks.*.auc"].rule()
    '|value − reference| ≤ 0.05 pass, ≤ 0.1 warn'
    """
    if not isinstance(doc, Mapping):
        raise InvalidParameterError(f"The thresholds must be a mapping of metric pattern to threshold. "
                                    f"Got {type(doc).__name__} instead.")
    out = {}
    for pattern, spec in doc.items():
        if not isinstance(spec, Mapping) or "pass_at" not in spec or "warn_at" not in spec:
            raise InvalidParameterError(f"threshold {pattern!r} must be a mapping with 'pass_at' and 'warn_at'. "
                                        f"Got {spec!r} instead.")
        unknown = set(spec) - {"pass_at", "warn_at", "better", "measure", "why", "basis"}  # measure: value/gap/shortfall
        if unknown:
            raise InvalidParameterError(f"threshold {pattern!r} has unknown keys {sorted(unknown)}; allowed: pass_at, "
                                        "warn_at, better, measure, why, basis.")
        try:
            pass_at, warn_at = float(spec["pass_at"]), float(spec["warn_at"])
        except (TypeError, ValueError):
            raise InvalidParameterError(f"threshold {pattern!r} needs numbers for 'pass_at' and 'warn_at'. "
                                        f"Got {spec['pass_at']!r} and {spec['warn_at']!r} instead.") from None
        out[str(pattern)] = Threshold(pass_at, warn_at, spec.get("better", "lower"),
                                      spec.get("measure", "value"), str(spec.get("why", "")),
                                      spec.get("basis", "value"))
    return out
