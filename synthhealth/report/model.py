"""The report's value objects: metrics, figures and checks (a metric registry in the spirit of SDMetrics).

Every number in a report is a :class:`Metric`: it declares its goal (higher or lower is better),
its range, its reference value (chance, baseline or perfect), a plain-language description and a
formula, and whether it is a *statistic of the real data* (then a ``--release`` report omits it).
Plots are :class:`Figure` objects holding only the numbers to draw; the renderers turn them into
images. A :class:`Check` compares one metric with a documented, configurable threshold and gives
a traffic-light verdict.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["Metric", "Figure", "Check", "Section", "Verdict", "jsonable"]

Goal = Literal["maximize", "minimize", "target"]
Verdict = Literal["pass", "warn", "fail", "n/a"]
SectionName = Literal["guarantee", "attacks", "utility", "bias"]


def jsonable(x: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays to Python, NaN/inf to ``None``, tuples to lists."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a core dependency
        np = None  # type: ignore[assignment]
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if np is not None and isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if np is not None and isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


@dataclass(frozen=True)
class Metric:
    """One measured quantity of the report.

    Parameters
    ----------
    key : str
        Stable dotted identifier, e.g. ``"attacks.dcr.auc"``; thresholds refer to it.
    name : str
        Short human title.
    value : float or None
        The measured value (``None`` when it could not be computed; ``details["reason"]`` says why).
    goal : {"maximize", "minimize", "target"}
        Which direction is better (``"target"``: closer to ``reference`` is better).
    range : (float, float)
        Possible values (``math.inf`` allowed).
    reference : float or None
        The value of a perfect/no-risk result (e.g. 0.5 for an attack's AUC: chance).
    ci : (float, float) or None
        A 95% confidence interval when the metric has one.
    unit : str
    description : str
        Plain language: what it means for the reader.
    formula : str
        How it is computed (plain text / LaTeX-light).
    real_data : bool
        True when the value is a statistic of the real (training or holdout) data: omitted from a
        ``--release`` report.
    details : dict
        Anything else worth keeping (per-attribute values, sample sizes, the reason for ``None``).
    """

    key: str
    name: str
    value: float | None
    goal: Goal
    range: tuple[float, float] = (0.0, 1.0)
    reference: float | None = None
    ci: tuple[float, float] | None = None
    unit: str = ""
    description: str = ""
    formula: str = ""
    real_data: bool = True
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return jsonable(asdict(self))


@dataclass(frozen=True)
class Figure:
    """Numbers for one plot; rendering is the renderer's job.

    ``kind`` and the keys expected in ``data``:

    - ``"bars"``: ``categories`` (list of str), ``series`` (dict name → list of float, same length); optional
      ``errors`` (dict name → list of ``[lo, hi]`` or None: 95% intervals) and ``floor`` (``{"label", "values"}``:
      a sampling-noise floor per category, drawn as a dashed mark).
    - ``"heatmap"``: ``rows``, ``cols`` (lists of str), ``values`` (rows × cols, None = blank), ``vmin``, ``vmax``.
    - ``"lines"``: ``series`` (dict name → {"x": [...], "y": [...]}), optional ``xlabel``, ``ylabel``, ``step`` (bool),
      ``diagonal`` (bool: draw y = x, e.g. for ROC curves), ``logx`` (bool), ``window`` ([x0, x1]: shaded, with
      ``window_label``), ``marks`` (list of ``{"x", "label"}``: vertical lines), ``at_risk`` (``{"times", "series":
      name → counts}``: a numbers-at-risk table under the axes).
    - ``"heatmaps"``: ``rows``, ``cols``, ``panels`` (dict name → rows × cols matrix), ``vmin``, ``vmax``,
      ``label``: heat maps side by side on one colour scale.
    - ``"hist"``: ``edges`` (list of float), ``series`` (dict name → list of counts/densities).
    """

    key: str
    title: str
    kind: Literal["bars", "heatmap", "lines", "hist", "heatmaps"]
    data: dict[str, Any]
    caption: str = ""
    real_data: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return jsonable(asdict(self))


@dataclass(frozen=True)
class Check:
    """A metric judged against a threshold."""

    metric: str
    name: str
    value: float | None
    rule: str          # human-readable threshold, e.g. "≤ 0.60 (warn above 0.55)"
    verdict: Verdict
    why: str = ""      # plain-language meaning of the verdict

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return jsonable(asdict(self))


@dataclass
class Section:
    """A titled part of the report: text, metrics and figures."""

    key: SectionName | str
    title: str
    intro: str = ""
    metrics: list[Metric] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)  # (label, value) rows, e.g. the guarantee

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {"key": self.key, "title": self.title, "intro": self.intro,
                "metrics": [m.to_dict() for m in self.metrics], "figures": [f.to_dict() for f in self.figures],
                "notes": list(self.notes), "facts": [list(f) for f in self.facts]}
