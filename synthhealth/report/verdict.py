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

__all__ = ["Threshold", "DEFAULT_THRESHOLDS", "judge", "overall", "load_thresholds"]


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
    measure : {"value", "gap"}, default "value"
        ``"gap"`` judges ``|value − reference|`` (lower is better) instead of the value.
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
    measure: Literal["value", "gap"] = "value"
    why: str = ""
    basis: Literal["value", "ci"] = "value"

    def __post_init__(self) -> None:
        if self.better not in ("lower", "higher"):
            raise InvalidParameterError(f"The 'better' parameter of Threshold must be 'lower' or 'higher'. "
                                        f"Got {self.better!r} instead.")
        if self.basis not in ("value", "ci"):
            raise InvalidParameterError(f"The 'basis' parameter of Threshold must be 'value' or 'ci'. "
                                        f"Got {self.basis!r} instead.")
        if self.measure not in ("value", "gap"):
            raise InvalidParameterError(f"The 'measure' parameter of Threshold must be 'value' or 'gap'. "
                                        f"Got {self.measure!r} instead.")
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
        op = "≤" if self.better == "lower" or self.measure == "gap" else "≥"
        what = "|value − reference| " if self.measure == "gap" else ""
        if self.pass_at == self.warn_at:
            worse = ">" if op == "≤" else "<"
            text = f"{what}{op} {self.pass_at:g} pass, {worse} {self.pass_at:g} fail"
            return text + (" (whole 95% CI; warn when it straddles)" if self.basis == "ci" else "")
        ci = " (whole 95% CI)" if self.basis == "ci" else ""
        return f"{what}{op} {self.pass_at:g} pass, {op} {self.warn_at:g} warn{ci}"

    def _one(self, x: float) -> Verdict:
        if self.better == "lower" or self.measure == "gap":
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
        if self.measure == "gap" and reference is None:
            return "n/a"
        if self.basis == "ci" and ci is not None and all(c is not None and math.isfinite(c) for c in ci):
            lo, hi = float(min(ci)), float(max(ci))
            if self.measure == "gap":
                assert reference is not None
                far = max(abs(lo - reference), abs(hi - reference))
                near = 0.0 if lo <= reference <= hi else min(abs(lo - reference), abs(hi - reference))
                worst, best = far, near
            elif self.better == "lower":
                worst, best = hi, lo
            else:
                worst, best = lo, hi
            v_worst, v_best = self._one(worst), self._one(best)
            if v_worst == v_best:
                return v_worst
            return "fail" if v_best == "fail" else "warn" if v_worst != "pass" else "pass"
        x = abs(value - reference) if self.measure == "gap" and reference is not None else value
        return self._one(x)


_AUC = "An AUC of 0.5 means the attacker does no better than a coin toss; 1.0 means members are always recognised."

DEFAULT_THRESHOLDS: dict[str, Threshold] = {
    "guarantee.epsilon": Threshold(2.0, 8.0, why="ε ≤ 2 is a strong guarantee; above 8 the proven protection is weak."),
    "attacks.*.auc": Threshold(0.1, 0.2, measure="gap", basis="ci", why=_AUC),
    "attacks.*.tpr_at_fpr_1pct": Threshold(0.02, 0.05, basis="ci",
                                           why="Share of members caught when only 1% of non-members are wrongly "
                                               "accused (guessing: 1%)."),
    "attacks.dcr.share_closer_to_train": Threshold(0.05, 0.1, measure="gap", basis="ci",
                                                   why="Share of synthetic records closer to a training record than "
                                                       "to a holdout record; 0.5 = no memorisation."),
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
    "utility.tstr.auroc": Threshold(0.03, 0.07, measure="gap",
                                    why="AUROC of a model trained on synthetic data, compared with one trained on "
                                        "real data (both tested on real holdout data)."),
    "utility.survival.km_max_gap": Threshold(0.05, 0.1, why="Largest gap between real and synthetic survival curves."),
    "utility.pmse_ratio": Threshold(10.0, 100.0, why="How easily a classifier tells synthetic from real, relative "
                                                     "to chance (1 = indistinguishable)."),
    "bias.rare.retention": Threshold(0.9, 0.7, better="higher", why="Share of rare categories (< 1% of patients) "
                                                                    "that the synthetic data keeps."),
    "bias.subgroup.worst_tvd": Threshold(0.15, 0.3, why="Fidelity of the worst-served subgroup (sex × age band)."),
    "bias.coverage": Threshold(0.7, 0.4, better="higher", why="Share of real patients with a synthetic look-alike "
                                                              "nearby (diversity)."),
}
"""Default thresholds, in order: the first matching pattern judges a metric. See ``docs/report.md``."""

PRIVACY_PREFIXES = ("guarantee.", "attacks.")
"""Which checks are about privacy (the rest are utility/bias)."""


def _match(key: str, thresholds: Mapping[str, Threshold]) -> Threshold | None:
    for pattern, th in thresholds.items():
        if fnmatch.fnmatchcase(key, pattern):
            return th
    return None


def judge(metrics: Iterable[Metric], thresholds: Mapping[str, Threshold] | None = None, *,
          claimed_epsilon: float | None = None) -> list[Check]:
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
        are not judged.

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
        th = _match(m.key, merged)
        if th is None:
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
        unknown = set(spec) - {"pass_at", "warn_at", "better", "measure", "why", "basis"}
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
