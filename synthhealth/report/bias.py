"""Bias, diversity and model-collapse metrics of the report.

Every function takes a :class:`~synthhealth.report.data.ReportData` and returns ``(metrics, figures)``.
"Real" is the **holdout** table. All metrics compare with real data (``real_data=True``).
Definitions and suggested thresholds: ``docs/report/utility.md``.

Functions
---------
subgroup_gaps     Sex × age band (and race / ethnicity) subgroups: share, within-group TVD, outcome rate.
rare_categories   Retention and relative error of rare states (real prevalence below a threshold).
coverage          k-NN coverage, density and precision (Naeem et al. 2020) on the Gower embedding.
collapse          Recursive-generation stress test ("model collapse", Shumailov et al. 2024).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from .._validation import check_positive_int, check_random_state
from ..exceptions import InvalidParameterError
from .data import ReportData, numeric_range
from .model import Figure, Metric
from .utility import _attr, _boolean_target, _check_data, _check_fraction, _freqs, one_way_tvds, wilson_interval

__all__ = ["subgroup_gaps", "rare_categories", "coverage", "collapse", "age_bands"]

_MAX_BARS = 40
_REAL = "real (holdout)"
_SYN = "synthetic"


# ============================================================================ subgroups
def _find(data: ReportData, patterns: tuple[str, ...], types: tuple[str, ...]) -> str | None:
    """First attribute of one of ``types`` whose name matches the patterns (tried in order)."""
    for pat in patterns:
        for a in data.schema.attributes:
            if a.type in types and re.search(pat, a.name, flags=re.IGNORECASE):
                return a.name
    return None


def age_bands(data: ReportData, name: str) -> tuple[np.ndarray, list[str]]:
    """Merge an age attribute's public bins into a few bands.

    Cut points depend on the attribute's public lower bound ``lo``: ``lo < 18``: 18, 45, 65;
    ``18 ≤ lo < 45``: 45, 65; ``lo ≥ 45``: 65, 75. A bin goes to the band of its left edge, so a band
    starts at the first bin edge at or above its cut point and the labels show those actual edges (with
    5-year bins from 0: <20, 20–44, 45–64, 65+). The missing state is its own band.

    Returns
    -------
    band : ndarray of int
        Band index of each code of the attribute (missing state last).
    labels : list of str
        Band labels (``"<missing>"`` last when the attribute has a missing state).
    """
    a = _attr(data, name)
    lo = numeric_range(a)[0]
    cuts = (18.0, 45.0, 65.0) if lo < 18 else (45.0, 65.0) if lo < 45 else (65.0, 75.0)
    if a.bins is not None:
        left = np.asarray(a.bins[:-1], dtype=float)
    else:  # a count without bins: each value is a state
        assert a.cap is not None
        left = np.arange(a.cap + 1, dtype=float)
    raw = np.searchsorted(np.asarray(cuts), left, side="right")
    used = np.unique(raw)
    band = np.searchsorted(used, raw)
    starts = [float(left[raw == u].min()) for u in used]  # labels from the real bin edges of each band
    labels = []
    for b, lo_b in enumerate(starts):
        hi_b = starts[b + 1] if b + 1 < len(starts) else math.inf
        if b == 0 and len(starts) > 1:
            labels.append(f"<{hi_b:g}")
        elif math.isinf(hi_b):
            labels.append(f"{lo_b:g}+")
        elif float(hi_b).is_integer() and float(lo_b).is_integer():
            labels.append(f"{lo_b:g}–{hi_b - 1:g}")
        else:
            labels.append(f"[{lo_b:g}, {hi_b:g})")
    n_states = data.sizes[data.names.index(name)]
    if n_states > len(left):
        band = np.r_[band, len(used)]
        labels.append("<missing>")
    return band.astype(np.int64), labels


def _families(data: ReportData) -> list[tuple[str, list[str], np.ndarray, np.ndarray, list[str], np.ndarray]]:
    """Subgroup families: (family, defining attributes, group index real, group index synthetic, labels,
    group index of the training rows (for the real-vs-real floor))."""
    real, syn, tr = data.codes("holdout"), data.codes("synthetic"), data.codes("train")
    sex = _find(data, (r"^(sex|gender)$", r"sex|gender"), ("categorical",))
    age = _find(data, (r"^age$", r"^age(_|$)"), ("numeric", "count"))
    fams = []
    if sex or age:
        parts = []
        if sex:
            j = data.names.index(sex)
            parts.append((np.arange(data.sizes[j]), data.labels(sex), j))
        if age:
            j = data.names.index(age)
            band, lab = age_bands(data, age)
            parts.append((band, lab, j))
        sizes = [len(lab) for _, lab, _ in parts]

        def gidx(c: np.ndarray) -> np.ndarray:
            g = np.zeros(len(c), dtype=np.int64)
            for (m, _lab, j), s in zip(parts, sizes, strict=True):
                g = g * s + m[c[:, j]]
            return g

        labels = [", ".join(t) for t in _product([lab for _, lab, _ in parts])]
        fams.append((" × ".join(n for n in (sex, age) if n), [n for n in (sex, age) if n], gidx(real), gidx(syn),
                     labels, gidx(tr)))
    for pat in (r"race", r"ethnic"):
        name = _find(data, (pat,), ("categorical",))
        if name and name not in (sex,):
            j = data.names.index(name)
            fams.append((name, [name], real[:, j].copy(), syn[:, j].copy(), data.labels(name), tr[:, j].copy()))
    return fams


def _product(lists: list[list[str]]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [()]
    for lab in lists:
        out = [o + (x,) for o in out for x in lab]
    return out


def subgroup_gaps(data: ReportData, *, min_real: int = 20) -> tuple[list[Metric], list[Figure]]:
    """Representation and fidelity of demographic subgroups (sex × age band; race; ethnicity).

    Subgroups: the levels of a categorical attribute named like ``sex``/``gender`` crossed with the
    age bands of :func:`age_bands` (numeric attribute named ``age``), and separately each level of a
    categorical attribute named like ``race`` and of one named like ``ethnic``. Per subgroup g:
    real (holdout) and synthetic shares n_g/n, the mean 1-way TVD of the other attributes within g, and
    the outcome rate (share True among non-missing) in real vs synthetic. Subgroups with fewer than
    ``min_real`` real rows are listed but not judged; a judged subgroup absent from the synthetic
    data gets TVD 1.

    Returns
    -------
    metrics : list of Metric
        ``bias.subgroup.worst_tvd``, ``bias.subgroup.max_share_gap`` and, with a boolean outcome,
        ``bias.subgroup.max_outcome_gap`` (values ``None`` with a reason when no subgroup can be formed
        or none has ``min_real`` real rows).
    figures : list of Figure
        ``bias.subgroup.shares`` and ``bias.subgroup.tvd`` (bars, at most 40 judged subgroups each).

    Examples
    --------
    >>> import synthhealth as sh
    >>> from synthhealth.report.data import ReportData
    >>> t = sh.datasets.load_flchain().head(400)
    >>> d = ReportData.from_tables(sh.load_schema("flchain"), t, t, t)
    >>> m, _ = subgroup_gaps(d)
    >>> m[0].key, m[0].value
    ('bias.subgroup.worst_tvd', 0.0)
    """
    _check_data(data, "subgroup_gaps")
    min_real = check_positive_int(min_real, "min_real", "subgroup_gaps")
    real, syn = data.codes("holdout"), data.codes("synthetic")
    n_r, n_s = len(real), len(syn)
    outcome = data.outcome if data.outcome and _attr(data, data.outcome).type == "boolean" else None
    keys = ["bias.subgroup.worst_tvd", "bias.subgroup.max_share_gap"] + (
        ["bias.subgroup.max_outcome_gap"] if outcome else [])
    fams = _families(data)
    rows: list[dict[str, Any]] = []
    train = data.codes("train")
    for fam, defining, g_r, g_s, labels, g_t in fams:
        n_g = len(labels)
        cnt_r = np.bincount(g_r, minlength=n_g)
        cnt_s = np.bincount(g_s, minlength=n_g)
        cnt_t = np.bincount(g_t, minlength=n_g)
        others = [j for j, nm in enumerate(data.names) if nm not in defining]
        tv = np.zeros(n_g)
        tv_t = np.zeros(n_g)  # the real-vs-real floor: training vs holdout patients of the same subgroup
        for j in others:
            s = data.sizes[j]
            jr = np.bincount(g_r * s + real[:, j], minlength=n_g * s).reshape(n_g, s)
            js = np.bincount(g_s * s + syn[:, j], minlength=n_g * s).reshape(n_g, s)
            jt = np.bincount(g_t * s + train[:, j], minlength=n_g * s).reshape(n_g, s)
            pr = jr / np.maximum(cnt_r, 1)[:, None]
            ps = js / np.maximum(cnt_s, 1)[:, None]
            pt = jt / np.maximum(cnt_t, 1)[:, None]
            tv += 0.5 * np.abs(pr - ps).sum(axis=1)
            tv_t += 0.5 * np.abs(pr - pt).sum(axis=1)
        tv /= max(len(others), 1)
        tv_t /= max(len(others), 1)
        rate_r = rate_s = None
        if outcome and outcome not in defining:
            yr, orr = _boolean_target(data, "holdout", outcome)
            ys, oss = _boolean_target(data, "synthetic", outcome)
            den_r = np.bincount(g_r[orr], minlength=n_g)
            den_s = np.bincount(g_s[oss], minlength=n_g)
            with np.errstate(invalid="ignore", divide="ignore"):
                rate_r = np.bincount(g_r[orr], weights=yr[orr].astype(float), minlength=n_g) / den_r
                rate_s = np.bincount(g_s[oss], weights=ys[oss].astype(float), minlength=n_g) / den_s
        for g in range(n_g):
            if cnt_r[g] == 0 and cnt_s[g] == 0:
                continue
            judged = bool(cnt_r[g] >= min_real)
            absent = bool(cnt_s[g] == 0)
            row: dict[str, Any] = {
                "family": fam, "subgroup": labels[g], "n_real": int(cnt_r[g]), "n_synthetic": int(cnt_s[g]),
                "share_real": float(cnt_r[g] / n_r), "share_synthetic": float(cnt_s[g] / n_s),
                "share_gap": float(cnt_s[g] / n_s - cnt_r[g] / n_r),
                "tvd": None if cnt_r[g] == 0 or not others else 1.0 if absent else float(tv[g]), "judged": judged,
                "tvd_floor": None if cnt_r[g] == 0 or cnt_t[g] == 0 or not others else float(tv_t[g]),
                "n_train": int(cnt_t[g]),
                "absent_in_synthetic": absent}
            if rate_r is not None and rate_s is not None:
                r_, s_ = float(rate_r[g]), float(rate_s[g])
                row["outcome_real"] = r_ if math.isfinite(r_) else None
                row["outcome_synthetic"] = s_ if math.isfinite(s_) else None
                row["outcome_gap"] = s_ - r_ if math.isfinite(r_) and math.isfinite(s_) else None
            rows.append(row)
    judged = [r for r in rows if r["judged"]]
    if not judged:
        why = ("no attribute named like sex/gender, age, race or ethnicity" if not fams
               else f"no subgroup has at least {min_real} real rows")
        return [Metric(k, k, None, "minimize", (0.0, 1.0), 0.0, real_data=True,
                       details={"reason": why, "subgroups": rows}) for k in keys], []

    def label(r: dict[str, Any]) -> str:
        return f"{r['family']}: {r['subgroup']}"

    common = {"subgroups": rows, "min_real": min_real, "families": [f[0] for f in fams]}
    # the worst-served subgroup: the largest excess over the real-vs-real floor (a perfect generator's level)
    w_tv = max((r for r in judged if r["tvd"] is not None), key=lambda r: r["tvd"] - (r["tvd_floor"] or 0.0),
               default=None)
    w_sh = max(judged, key=lambda r: abs(r["share_gap"]))
    metrics = [
        Metric("bias.subgroup.worst_tvd", "Worst subgroup fidelity (mean 1-way TVD within subgroup)",
               None if w_tv is None else w_tv["tvd"], "minimize", (0.0, 1.0),
               None if w_tv is None else w_tv["tvd_floor"],
               description=("Within each demographic subgroup, how different the synthetic patients' attributes are "
                            "from the real ones (average share of misplaced probability per attribute), compared "
                            "with the same distance between the training and the holdout patients of that subgroup "
                            "(the reference: what a perfect generator scores at this size). "
                            + (f"The worst subgroup is {label(w_tv)}." if w_tv else "")),
               formula="TVD_g = mean_{j ∉ defining(g)} ½ Σ_s |p_real(j=s | g) − p_syn(j=s | g)|; the subgroup with "
                       "the largest TVD_g − floor_g over judged subgroups, floor_g = the same with training rows "
                       "in place of synthetic ones",
               real_data=True, details={**common, "worst": None if w_tv is None else label(w_tv)}),
        Metric("bias.subgroup.max_share_gap", "Largest subgroup share gap", abs(w_sh["share_gap"]), "minimize",
               (0.0, 1.0), 0.0,
               description=f"Largest difference between the share of the synthetic and of the real population in "
                           f"one subgroup: {label(w_sh)} ({w_sh['share_real']:.1%} real vs "
                           f"{w_sh['share_synthetic']:.1%} synthetic).",
               formula="max_g |n_syn,g / n_syn − n_real,g / n_real|", real_data=True,
               details={**common, "worst": label(w_sh)}),
    ]
    if outcome:
        with_gap = [r for r in judged if r.get("outcome_gap") is not None]
        w_o = max(with_gap, key=lambda r: abs(r["outcome_gap"]), default=None)
        metrics.append(Metric(
            "bias.subgroup.max_outcome_gap", f"Largest subgroup gap in the rate of '{outcome}'",
            None if w_o is None else abs(w_o["outcome_gap"]), "minimize", (0.0, 1.0), 0.0,
            description=(f"Largest difference between the real and the synthetic rate of '{outcome}' within one "
                         "subgroup" + (f": {label(w_o)} ({w_o['outcome_real']:.1%} real vs "
                                       f"{w_o['outcome_synthetic']:.1%} synthetic)." if w_o else ".")),
            formula="max_g |P_syn(outcome | g) − P_real(outcome | g)| over judged subgroups present in both",
            real_data=True,
            details={**common, "worst": None if w_o is None else label(w_o),
                     **({} if w_o else {"reason": "no judged subgroup has the outcome in both tables"})}))
    shown = judged[:_MAX_BARS]
    figs = [
        Figure("bias.subgroup.shares", "Share of the population in each subgroup", "bars",
               {"categories": [label(r) for r in shown],
                "series": {_REAL: [r["share_real"] for r in shown], _SYN: [r["share_synthetic"] for r in shown]},
                "errors": {_REAL: [list(wilson_interval(r["n_real"], n_r)) for r in shown]}},
               caption=f"Subgroups with at least {min_real} real rows; whiskers: 95% Wilson intervals of the real "
                       "shares.", real_data=True),
        Figure("bias.subgroup.tvd", "Fidelity within each subgroup (mean 1-way TVD)", "bars",
               {"categories": [label(r) for r in shown],
                "series": {"TVD": [r["tvd"] if r["tvd"] is not None else 0.0 for r in shown]},
                "floor": {"label": "real vs real (noise floor)", "values": [r.get("tvd_floor") for r in shown]}},
               caption="Lower is better; 1 = the subgroup is absent from the synthetic data. The dashed mark is the "
                       "subgroup's sampling-noise floor (training vs holdout patients of the same subgroup).",
               real_data=True),
    ]
    return metrics, figs


# ============================================================================ rare categories
def _rare_states(data: ReportData, threshold: float) -> list[tuple[int, int, float]]:
    """(attribute index, state, real frequency) of non-missing states with real frequency in (0, threshold)."""
    real = data.codes("holdout")
    out = []
    for j, a in enumerate(data.schema.attributes):
        p = _freqs(real[:, j], data.sizes[j])
        n_states = data.sizes[j] - (1 if a.missing else 0)
        for s in range(n_states):
            if 0 < p[s] < threshold:
                out.append((j, s, float(p[s])))
    return out


def _retention(rare: list[tuple[int, int, float]], codes: np.ndarray, sizes: tuple[int, ...]
               ) -> tuple[float, float, list[float]]:
    """Share of rare states present in ``codes``, mean relative frequency error, and the frequencies."""
    freqs = {j: _freqs(codes[:, j], sizes[j]) for j in {j for j, _, _ in rare}}
    q = [float(freqs[j][s]) for j, s, _ in rare]
    kept = float(np.mean([v > 0 for v in q]))
    rel = float(np.mean([abs(v - p) / p for v, (_, _, p) in zip(q, rare, strict=True)]))
    return kept, rel, q


def rare_categories(data: ReportData, threshold: float = 0.01) -> tuple[list[Metric], list[Figure]]:
    """Rare states: are they kept, and with the right frequency?

    Rare states are the non-missing states (categories, boolean values, public bins, count values)
    whose real (holdout) frequency is in (0, ``threshold``).

    Returns
    -------
    metrics : list of Metric
        ``bias.rare.retention`` (share of rare states that occur in the synthetic data) and
        ``bias.rare.relative_error`` (mean |q − p| / p). ``None`` with a reason when no state is rare.
    figures : list of Figure
        ``bias.rare.states`` (bars: real vs synthetic frequency, rarest 40).

    Examples
    --------
    >>> import synthhealth as sh
    >>> from synthhealth.report.data import ReportData
    >>> t = sh.datasets.load_flchain().head(400)
    >>> d = ReportData.from_tables(sh.load_schema("flchain"), t, t, t)
    >>> [m.value for m in rare_categories(d)[0]]
    [1.0, 0.0]
    """
    _check_data(data, "rare_categories")
    threshold = _check_fraction(threshold, "threshold", "rare_categories")
    rare = _rare_states(data, threshold)
    if not rare:
        n_h = len(data.holdout)
        why = (f"with {n_h} holdout patients no state can have a real frequency below {threshold:g} (one patient "
               f"is already {1 / n_h:.1%}); rare states cannot be measured at this size" if 1 / n_h >= threshold
               else f"no state has a real frequency below {threshold:g}")
        details = {"reason": why, "threshold": threshold, "not_judged": why}
        return [Metric("bias.rare.retention", "Rare-state retention", None, "maximize", (0.0, 1.0), 1.0,
                       real_data=True, details=details),
                Metric("bias.rare.relative_error", "Rare-state relative frequency error", None, "minimize",
                       (0.0, math.inf), 0.0, real_data=True, details=details)], []
    kept, rel, q = _retention(rare, data.codes("synthetic"), data.sizes)
    states = [{"attribute": data.names[j], "state": data.labels(data.names[j])[s], "real": p, "synthetic": v}
              for (j, s, p), v in zip(rare, q, strict=True)]
    states.sort(key=lambda r: r["real"])
    lost = [f"{r['attribute']}={r['state']}" for r in states if r["synthetic"] == 0]
    details = {"threshold": threshold, "n_rare": len(rare), "states": states[:200], "lost": lost[:200]}
    metrics = [
        Metric("bias.rare.retention", "Rare-state retention", kept, "maximize", (0.0, 1.0), 1.0,
               description=f"Of the {len(rare)} categories that are rare among real patients (under "
                           f"{threshold:.0%}), the share that still occurs in the synthetic data. Rare categories "
                           "are the first to disappear from noisy or collapsed generators.",
               formula=f"mean over states with 0 < p_real < {threshold:g} of 1[p_syn > 0]", real_data=True,
               details=details),
        Metric("bias.rare.relative_error", "Rare-state relative frequency error", rel, "minimize", (0.0, math.inf),
               0.0,
               description="Average relative error of the frequency of rare categories (0.5 = off by half of the "
                           "real frequency; 1 = missing entirely or doubled).",
               formula=f"mean over states with 0 < p_real < {threshold:g} of |p_syn − p_real| / p_real",
               real_data=True, details=details),
    ]
    shown = states[:_MAX_BARS]
    n_h = len(data.holdout)
    fig = Figure("bias.rare.states", "Frequency of rare categories", "bars",
                 {"categories": [f"{r['attribute']}={r['state']}" for r in shown],
                  "series": {_REAL: [r["real"] for r in shown], _SYN: [r["synthetic"] for r in shown]},
                  "errors": {_REAL: [list(wilson_interval(int(round(r["real"] * n_h)), n_h)) for r in shown]}},
                 caption=f"States with a real frequency below {threshold:g}, rarest first; whiskers: 95% Wilson "
                         "intervals of the real frequencies.", real_data=True)
    return metrics, [fig]


# ============================================================================ coverage (Naeem et al. 2020)
def _l1_cdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact L1 distances between rows, fast for the Gower embedding.

    Columns whose values are all in {0, v} (one-hot blocks, missing indicators) contribute
    Σ (a + b − 2ab / v), done as one matrix product; the other (numeric) columns are summed directly.
    """
    both = np.vstack([a, b])
    vmax = both.max(axis=0)
    binary = np.all((both == 0) | (both == vmax), axis=0) & (vmax > 0)
    out = np.zeros((len(a), len(b)))
    if binary.any():
        ab, bb, v = a[:, binary], b[:, binary], vmax[binary]
        out += ab.sum(axis=1)[:, None] + bb.sum(axis=1)[None, :] - 2.0 * (ab / v) @ bb.T
    for c in np.flatnonzero(~binary & (vmax > 0)):
        out += np.abs(a[:, c, None] - b[None, :, c])
    return np.maximum(out, 0.0)


def coverage(data: ReportData, k: int = 5, max_rows: int = 5000,
             random_state: Any = None) -> tuple[list[Metric], list[Figure]]:
    """k-NN coverage, density and precision (Naeem et al. 2020; Kynkäänniemi et al. 2019).

    On the Gower embedding (L1), each real (holdout) record X_i gets the ball of radius r_i = its
    distance to its k-th nearest other real record (closed ball: data are discrete, r_i may be 0).
    coverage = share of real records whose ball contains a synthetic record; density =
    (1 / (k M)) Σ_j #{i: Y_j in ball_i}; precision = share of synthetic records inside some ball.
    Each side is subsampled (seeded) to ``max_rows``.

    Returns
    -------
    metrics : list of Metric
        ``bias.coverage``, ``bias.density``, ``bias.precision``.
    figures : list of Figure
        None (empty list).

    Examples
    --------
    >>> import synthhealth as sh
    >>> from synthhealth.report.data import ReportData
    >>> t = sh.datasets.load_flchain().head(300)
    >>> d = ReportData.from_tables(sh.load_schema("flchain"), t, t, t)
    >>> coverage(d, random_state=0)[0][0].value
    1.0
    """
    _check_data(data, "coverage")
    k = check_positive_int(k, "k", "coverage")
    max_rows = check_positive_int(max_rows, "max_rows", "coverage")
    rng = check_random_state(random_state)
    real, syn = data.embedding("holdout"), data.embedding("synthetic")
    if len(real) > max_rows:
        real = real[np.sort(rng.choice(len(real), size=max_rows, replace=False))]
    if len(syn) > max_rows:
        syn = syn[np.sort(rng.choice(len(syn), size=max_rows, replace=False))]
    n, m = len(real), len(syn)
    if k >= n:
        raise InvalidParameterError(
            f"The 'k' parameter of coverage must be smaller than the number of real rows used ({n}). Got {k} instead.")
    covered = np.zeros(n, dtype=bool)
    in_balls = np.zeros(m)
    radii = np.empty(n)
    step = max(1, 2_000_000 // max(n, m))
    for start in range(0, n, step):
        stop = min(n, start + step)
        drr = _l1_cdist(real[start:stop], real)
        drr[np.arange(stop - start), np.arange(start, stop)] = np.inf
        r = np.partition(drr, k - 1, axis=1)[:, k - 1]
        radii[start:stop] = r
        drs = _l1_cdist(real[start:stop], syn)
        inside = drs <= (r + 1e-9)[:, None]
        covered[start:stop] = inside.any(axis=1)
        in_balls += inside.sum(axis=0)
    cov = float(covered.mean())
    dens = float(in_balls.sum() / (k * m))
    prec = float((in_balls > 0).mean())
    details = {"k": k, "n_real": n, "n_synthetic": m, "subsampled": bool(len(data.holdout) > max_rows
                                                                        or len(data.synthetic) > max_rows),
               "median_radius": float(np.median(radii)), "distance": "Gower × n_attributes (L1 on the embedding)"}
    return [
        Metric("bias.coverage", "Coverage of the real population (k-NN)", cov, "maximize", (0.0, 1.0), 1.0,
               description="Share of real patients that have a synthetic patient among their close look-alikes "
                           f"(closer than their {k}th most similar real patient). Low coverage means parts of the "
                           "real population are missing from the synthetic data (lost diversity).",
               formula="mean_i 1[∃ j: d(X_i, Y_j) ≤ NND_k(X_i)]", real_data=True, details=details),
        Metric("bias.density", "Density (k-NN)", dens, "target", (0.0, math.inf), 1.0,
               description="How many real neighbourhoods a synthetic patient falls into, relative to a real one "
                           "(about 1 expected; above 1 = synthetic records crowd the dense regions of real data).",
               formula="(1 / (k M)) Σ_j Σ_i 1[d(X_i, Y_j) ≤ NND_k(X_i)]", real_data=True, details=details),
        Metric("bias.precision", "Precision (k-NN)", prec, "maximize", (0.0, 1.0), 1.0,
               description="Share of synthetic patients that look like some real patient (fall in a real k-NN "
                           "neighbourhood); low precision = implausible records.",
               formula="mean_j 1[∃ i: d(X_i, Y_j) ≤ NND_k(X_i)]", real_data=True, details=details),
    ], []


# ============================================================================ model collapse
def _generation_stats(codes: np.ndarray, real: np.ndarray, sizes: tuple[int, ...],
                      rare: list[tuple[int, int, float]]) -> dict[str, float | None]:
    n, d = codes.shape
    rows = np.ascontiguousarray(codes).view(np.dtype((np.void, codes.dtype.itemsize * d))).ravel()
    distinct = len(np.unique(rows)) / max(n, 1)
    ent = []
    for j, s in enumerate(sizes):
        if s < 2:
            continue
        p = _freqs(codes[:, j], s)
        p = p[p > 0]
        ent.append(float(-(p * np.log(p)).sum() / math.log(s)))
    return {"distinct_share": distinct, "entropy": float(np.mean(ent)) if ent else None,
            "rare_retention": _retention(rare, codes, sizes)[0] if rare else None,
            "tvd1": float(one_way_tvds(real, codes, sizes).mean())}


def collapse(data: ReportData, fit_sample: Callable[[pd.DataFrame, np.random.Generator], pd.DataFrame], *,
             generations: int = 3, random_state: Any = None,
             threshold: float = 0.01) -> tuple[list[Metric], list[Figure]]:
    """Recursive-generation stress test ("model collapse", Shumailov et al. 2024).

    Generation 0 is the released synthetic table; generation g is ``fit_sample(table_{g−1}, rng)``:
    the same generator fitted on its own output and sampled (it touches only synthetic data, so it
    costs no privacy budget). Per generation: diversity (distinct code rows / n and mean per-attribute
    entropy normalised by log(#states)), retention of the real rare states (real frequency below
    ``threshold``, as :func:`rare_categories`) and the mean 1-way TVD against the holdout.

    Parameters
    ----------
    data : ReportData
    fit_sample : callable (DataFrame, Generator) -> DataFrame
        Fits the generator on a table in schema form and returns a sample (schema form).
    generations : int, default 3
        Number of refits K.
    random_state : None, int or Generator
        Seeds the generator passed to ``fit_sample`` (one child generator per generation).

    Returns
    -------
    metrics : list of Metric
        Last-generation values: ``bias.collapse.distinct_share``, ``bias.collapse.entropy``,
        ``bias.collapse.rare_retention``, ``bias.collapse.tvd1`` (generation-0 value, the whole
        trajectory and the change in details).
    figures : list of Figure
        ``bias.collapse.trajectory`` (lines against the generation).

    Examples
    --------
    >>> import synthhealth as sh
    >>> from synthhealth.report.data import ReportData
    >>> t = sh.datasets.load_flchain().head(300)
    >>> d = ReportData.from_tables(sh.load_schema("flchain"), t, t, t)
    >>> boot = lambda tab, rng: tab.sample(len(tab), replace=True, random_state=rng)
    >>> m, _ = collapse(d, boot, generations=2, random_state=0)
    >>> m[0].value < m[0].details["generation_0"]
    True
    """
    _check_data(data, "collapse")
    if not callable(fit_sample):
        raise InvalidParameterError(
            f"The 'fit_sample' parameter of collapse must be callable. Got {type(fit_sample).__name__} instead.")
    generations = check_positive_int(generations, "generations", "collapse")
    threshold = _check_fraction(threshold, "threshold", "collapse")
    rng = check_random_state(random_state)
    real = data.codes("holdout")
    rare = _rare_states(data, threshold)
    table = data.synthetic
    traj = [_generation_stats(data.codes("synthetic"), real, data.sizes, rare)]
    sizes_n = [len(table)]
    for g in range(1, generations + 1):
        table = fit_sample(table, rng.spawn(1)[0])
        if not isinstance(table, pd.DataFrame) or len(table) == 0:
            raise InvalidParameterError(
                f"The 'fit_sample' parameter of collapse must return a non-empty DataFrame. Generation {g} returned "
                f"{type(table).__name__} with {len(table) if hasattr(table, '__len__') else 'no'} rows instead.")
        codes = data.encoder.encode(table)
        traj.append(_generation_stats(codes, real, data.sizes, rare))
        sizes_n.append(len(table))
    gens = list(range(generations + 1))
    spec = {
        "distinct_share": ("Distinct records after recursive refits", "maximize", (0.0, 1.0), None,
                           "Share of distinct records (over public categories) after refitting the generator "
                           "on its own output {K} times. A fall from generation 0 shows diversity collapsing.",
                           "#distinct code rows / n at generation K"),
        "entropy": ("Mean normalised entropy after recursive refits", "maximize", (0.0, 1.0), None,
                    "Average spread of each attribute over its categories (1 = uniform, 0 = a single value) after "
                    "{K} refits; a fall means the distributions narrow.",
                    "mean_j H(p_j) / log(#states_j) at generation K"),
        "rare_retention": ("Rare-state retention after recursive refits", "maximize", (0.0, 1.0), 1.0,
                           "Share of the real rare categories still present after {K} refits of the generator on "
                           "its own output; rare categories vanish first when a generator collapses.",
                           "mean over real-rare states of 1[p_gen K > 0]"),
        "tvd1": ("Mean 1-way TVD after recursive refits", "minimize", (0.0, 1.0), 0.0,
                 "Average distance of each attribute's distribution from the real one after {K} refits; growth "
                 "shows errors compounding.", "mean_j ½ Σ_s |p_real − p_gen K| at generation K"),
    }
    metrics = []
    for key, (name, goal, rng_, ref, desc, formula) in spec.items():
        values = [t[key] for t in traj]
        last, first = values[-1], values[0]
        metrics.append(Metric(
            f"bias.collapse.{key}", name, last, goal, rng_, ref,  # type: ignore[arg-type]
            description=desc.format(K=generations), formula=formula, real_data=True,
            details={"generation_0": first, "trajectory": values, "generations": generations, "rows": sizes_n,
                     "change": None if last is None or first is None else last - first,
                     **({"reason": "no rare state in the real data"} if last is None else {})}))
    series = {}
    for key, label in (("distinct_share", "distinct records / n"), ("entropy", "mean normalised entropy"),
                       ("rare_retention", "rare-state retention"), ("tvd1", "mean 1-way TVD vs real")):
        if all(t[key] is not None for t in traj):
            series[label] = {"x": gens, "y": [t[key] for t in traj]}
    fig = Figure("bias.collapse.trajectory", "Recursive refits: diversity, rare states and fidelity", "lines",
                 {"series": series, "xlabel": "generation (0 = released synthetic data)", "ylabel": "value"},
                 caption="Each generation refits the generator on the previous generation's output.", real_data=True)
    return metrics, [fig]
