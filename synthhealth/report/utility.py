"""Utility metrics of the report: how well the synthetic table reproduces the real population.

Every function takes a :class:`~synthhealth.report.data.ReportData` and returns
``(metrics, figures)``. "Real" means the **holdout** table (real patients the generator never
saw) unless a docstring says otherwise; the real *training* table is used only as the TRTR
reference of :func:`tstr`. Every metric here compares with real data, so all carry
``real_data=True``. Definitions, reference values and suggested thresholds: ``docs/report/utility.md``.

Functions
---------
marginal_fidelity   1-way total variation distance (TVD) per attribute, KS on numeric values.
pairwise_fidelity   TVD of every 2-way marginal.
k_marginal_score    NIST CRC / SDNist k-marginal score on random k-attribute subsets.
pmse                Propensity-score mean squared error and its ratio to the null expectation.
tstr                Train on synthetic, test on real (with the train-on-real reference).
ci_overlap          Karr et al. (2006) confidence-interval overlap of logistic coefficients.
survival_curves     Kaplan-Meier curves: maximum gap and restricted mean survival time difference.
prevalence          Boolean prevalences against the real Wilson 95% interval.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse
from scipy.special import expit

from .._validation import check_positive_int, check_random_state
from ..exceptions import InvalidParameterError
from .data import ReportData, numeric_range
from .model import Figure, Metric

__all__ = [
    "marginal_fidelity",
    "pairwise_fidelity",
    "k_marginal_score",
    "pmse",
    "tstr",
    "ci_overlap",
    "survival_curves",
    "prevalence",
    "kaplan_meier",
    "wilson_interval",
    "one_way_tvds",
    "pairwise_tvd_matrix",
]

_Z95 = 1.959963984540054
_REAL = "real (holdout)"
_SYN = "synthetic"
_MAX_HEATMAP = 60
_TOP_PAIRS = 15   # worst pairs shown in the utility section
_MAX_ASSOC = 12   # attributes in the side-by-side Cramér's V matrices
_BLOCK = 20       # attributes per block of the full pair heatmap (readable labels)
_MAX_BARS = 40


# ============================================================================ shared helpers
def _check_data(data: Any, owner: str) -> ReportData:
    if not isinstance(data, ReportData):
        raise InvalidParameterError(
            f"The 'data' parameter of {owner} must be a ReportData. Got {type(data).__name__} instead.")
    return data


def _check_fraction(value: Any, name: str, owner: str, *, lo: float = 0.0, hi: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)) or not lo < float(value) <= hi:
        raise InvalidParameterError(
            f"The {name!r} parameter of {owner} must be a number in ({lo:g}, {hi:g}]. Got {value!r} instead.")
    return float(value)


def _freqs(codes: np.ndarray, size: int) -> np.ndarray:
    """Relative frequency of each state of one code column (zeros for an empty column)."""
    counts = np.bincount(codes, minlength=size).astype(np.float64)
    return counts / max(len(codes), 1)


def _tvd(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation distance ½ Σ |p − q| of two distributions on the same states."""
    return 0.5 * float(np.abs(np.asarray(p, dtype=float) - np.asarray(q, dtype=float)).sum())


def one_way_tvds(real: np.ndarray, syn: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """TVD of each attribute's 1-way marginal between two code matrices (n × d, codes < ``sizes``).

    Examples
    --------
    >>> one_way_tvds(np.array([[0, 1], [1, 1]]), np.array([[0, 0], [0, 1]]), (2, 2)).tolist()
    [0.5, 0.5]
    """
    return np.array([_tvd(_freqs(real[:, j], s), _freqs(syn[:, j], s)) for j, s in enumerate(sizes)])


def _ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov–Smirnov statistic sup_x |F_a(x) − F_b(x)| (as ``scipy.stats.ks_2samp``)."""
    a = np.sort(a)
    b = np.sort(b)
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / len(a)
    fb = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(fa - fb)))


def _values(data: ReportData, which: str, name: str) -> np.ndarray:
    col = data.table(which)[name]
    vals = col.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    return vals[~np.isnan(vals)]


def _attr(data: ReportData, name: str) -> Any:
    return data.schema.attributes[data.names.index(name)]


def _boolean_target(data: ReportData, which: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(y, observed)`` of a boolean attribute: y = True state, observed = not missing."""
    c = data.codes(which)[:, data.names.index(name)]
    return c == 1, c < 2


def _round(x: float | None, nd: int = 6) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), nd)


# ---------------------------------------------------------------- design matrices and logistic fit
def _design(fit: np.ndarray, sizes: Sequence[int], *others: np.ndarray) -> tuple[list[sparse.csr_matrix], np.ndarray]:
    """Intercept + one-hot main effects of code matrices, as sparse CSR matrices.

    The columns are decided on ``fit``: per attribute the most frequent state is the reference
    (dropped) and states absent from ``fit`` are dropped. Rows of ``others`` in a dropped state
    get the reference coding. Returns the matrices (``fit`` first) and the kept flat state indices.
    """
    sizes_a = np.asarray(sizes, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes_a)[:-1]]).astype(np.int64)
    total = int(sizes_a.sum())
    counts = np.bincount((fit + offsets).ravel(), minlength=total)
    keep = counts > 0
    for o, s in zip(offsets, sizes_a, strict=True):
        keep[o + int(np.argmax(counts[o:o + s]))] = False
    cols = np.flatnonzero(keep)
    colmap = np.full(total, -1, dtype=np.int64)
    colmap[cols] = np.arange(len(cols)) + 1
    out = []
    for c in (fit, *others):
        n = len(c)
        idx = np.hstack([np.zeros((n, 1), dtype=np.int64), colmap[c + offsets]])
        r, k = np.nonzero(idx >= 0)
        out.append(sparse.csr_matrix((np.ones(len(r)), (r, idx[r, k])), shape=(n, len(cols) + 1)))
    return out, cols


def _gram(x: sparse.csr_matrix, w: np.ndarray, dtype: type = np.float32, chunk: int = 32768) -> np.ndarray:
    """X' diag(w) X of a sparse one-hot design, by dense row chunks on one BLAS thread.

    Dense single-precision chunks are several times faster than a sparse product here, and one
    thread avoids the (large) cost of BLAS threads competing for a shared machine's cores.
    """
    from threadpoolctl import threadpool_limits

    p = x.shape[1]
    out = np.zeros((p, p))
    with threadpool_limits(limits=1, user_api="blas"):
        for i in range(0, x.shape[0], chunk):
            xc = x[i:i + chunk].toarray().astype(dtype, copy=False)
            out += (xc.T @ (xc * w[i:i + chunk, None].astype(dtype))).astype(np.float64)
    return out


def _fit_logit(x: sparse.csr_matrix, y: np.ndarray, ridge: float, *, hessian: bool = False,
               max_iter: int = 100, tol: float = 1e-7) -> tuple[np.ndarray, np.ndarray | None]:
    """Ridge-penalised logistic regression by Newton's method with step halving.

    Minimises −Σ [y η − log(1 + e^η)] + ½ λ Σ_{j≥1} β_j² (column 0 is the unpenalised intercept).
    The gradient is exact (float64); the Hessian used for the steps is accumulated in single
    precision, which only affects the path, not the optimum. With ``hessian=True`` the penalised
    Fisher information X'WX + λI at the optimum is returned in double precision (its inverse is the
    covariance used for standard errors).
    """
    n, p = x.shape
    xt = x.T.tocsr()
    pen = np.full(p, float(ridge))
    pen[0] = 0.0
    yf = y.astype(np.float64)
    beta = np.zeros(p)
    ybar = float(np.clip(yf.mean(), 1e-6, 1 - 1e-6))
    beta[0] = math.log(ybar / (1 - ybar))

    def loss(eta: np.ndarray, b: np.ndarray) -> float:
        return float(np.sum(np.logaddexp(0.0, eta) - yf * eta) + 0.5 * np.sum(pen * b * b))

    eta = x @ beta
    cur = loss(eta, beta)
    for _ in range(max_iter):
        mu = expit(eta)
        grad = xt @ (yf - mu) - pen * beta
        hess = _gram(x, mu * (1.0 - mu)) + np.diag(pen)
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        t = 1.0
        while True:
            cand = beta + t * step
            eta_c = x @ cand
            new = loss(eta_c, cand)
            if new <= cur + 1e-12 * (1 + abs(cur)) or t < 1e-10:
                break
            t *= 0.5
        beta, eta = cand, eta_c
        done = float(np.max(np.abs(t * step))) < tol * (1 + float(np.max(np.abs(beta))))
        cur = new
        if done:
            break
    if not hessian:
        return beta, None
    mu = expit(eta)
    return beta, _gram(x, mu * (1.0 - mu), dtype=np.float64) + np.diag(pen)


# ---------------------------------------------------------------- weighted ranking metrics (bootstrap)
def _rank_metrics(score: np.ndarray, y: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, ...]:
    """AUROC, average precision (AUPRC) and Brier score for each row of ``weights`` (B × n).

    With unit weights these equal ``sklearn.metrics.roc_auc_score`` (ties count ½),
    ``average_precision_score`` and ``brier_score_loss``; bootstrap resamples are count weights.
    """
    order = np.argsort(-score, kind="stable")
    s = score[order]
    yy = y[order]
    w = weights[:, order]
    pos = np.where(yy[None, :], w, 0.0)
    neg = w - pos
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    if len(starts) < len(s):  # tied scores form one threshold
        pos = np.add.reduceat(pos, starts, axis=1)
        neg = np.add.reduceat(neg, starts, axis=1)
    tp = np.cumsum(pos, axis=1)
    fp = np.cumsum(neg, axis=1)
    npos, nneg = tp[:, -1].copy(), fp[:, -1].copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        fp -= nneg[:, None]  # −(negatives scored strictly lower)
        fp -= 0.5 * neg
        auc = -np.einsum("ij,ij->i", pos, fp) / (npos * nneg)
        prec = tp / np.maximum(tp + np.cumsum(neg, axis=1), 1e-300)
        ap = np.einsum("ij,ij->i", pos, prec) / npos
        brier = (weights @ (score - y) ** 2) / weights.sum(axis=1)
    return auc, ap, brier


def _bootstrap_weights(rng: np.random.Generator, n: int, b: int) -> np.ndarray:
    idx = rng.integers(0, n, size=(b, n))
    return np.stack([np.bincount(row, minlength=n) for row in idx]).astype(np.float64)


def _single_state_auroc(c: np.ndarray, y: np.ndarray, size: int) -> float:
    """AUROC of predicting ``y`` by the outcome rate of each state of one attribute (a leak check).

    Computed on the states (score = the state's outcome rate, weights = its positive and negative
    counts), which equals the row-level AUROC and costs O(#states).
    """
    if y.all() or not y.any():
        return float("nan")
    tot = np.bincount(c, minlength=size).astype(np.float64)
    pos = np.bincount(c, weights=y.astype(np.float64), minlength=size)
    rate = pos / np.maximum(tot, 1)
    score = np.r_[rate, rate]
    lab = np.r_[np.ones(size, dtype=bool), np.zeros(size, dtype=bool)]
    return float(_rank_metrics(score, lab, np.r_[pos, tot - pos][None, :])[0][0])


def _leaks(data: ReportData, which: str, outcome: str, candidates: Sequence[str], y: np.ndarray,
           obs: np.ndarray, threshold: float | None) -> dict[str, float]:
    """Attributes that alone predict the outcome with AUROC ≥ threshold (e.g. cause of death)."""
    if threshold is None:
        return {}
    codes = data.codes(which)[obs]
    out = {}
    for name in candidates:
        j = data.names.index(name)
        auc = _single_state_auroc(codes[:, j], y[obs], data.sizes[j])
        if math.isfinite(auc) and max(auc, 1 - auc) >= threshold:
            out[name] = round(max(auc, 1 - auc), 4)
    return out


# ============================================================================ 1-way fidelity
def marginal_fidelity(data: ReportData, *, n_figures: int = 12) -> tuple[list[Metric], list[Figure]]:
    """1-way fidelity: total variation distance per attribute, KS statistic on numeric values.

    Each attribute's real (holdout) and synthetic state frequencies are compared over its public
    states (numbers by their public bins; missing is a state): TVD = ½ Σ_s |p_s − q_s|. For numeric
    and count attributes the two-sample Kolmogorov–Smirnov statistic on the (non-missing) values is
    computed too.

    Parameters
    ----------
    data : ReportData
    n_figures : int, default 12
        Number of worst attributes (by TVD) that get a bar chart of their state frequencies.

    Returns
    -------
    metrics : list of Metric
        ``utility.tvd1.mean``, ``utility.tvd1.max`` and, with numeric/count attributes,
        ``utility.ks.mean``, ``utility.ks.max``.
    figures : list of Figure
        ``utility.tvd1.by_attribute`` (bars, worst 60) and ``utility.marginal.<attribute>`` (bars)
        for the ``n_figures`` worst attributes.

    Examples
    --------
    >>> import synthhealth as sh
    >>> from synthhealth.report.data import ReportData
    >>> t = sh.datasets.load_flchain().head(200)
    >>> d = ReportData.from_tables(sh.load_schema("flchain"), t, t, t)
    >>> metrics, figures = marginal_fidelity(d)
    >>> metrics[0].key, metrics[0].value
    ('utility.tvd1.mean', 0.0)
    """
    _check_data(data, "marginal_fidelity")
    n_figures = check_positive_int(n_figures, "n_figures", "marginal_fidelity", allow_zero=True)
    real, syn = data.codes("holdout"), data.codes("synthetic")
    names, sizes = data.names, data.sizes
    tv = one_way_tvds(real, syn, sizes)
    # sampling-noise floor: two real samples (train vs holdout) differ this much by chance alone
    floor_by_attr = one_way_tvds(real, data.codes("train"), sizes)
    floor = float(floor_by_attr.mean())
    per_attr = {n: round(float(v), 6) for n, v in zip(names, tv, strict=True)}
    worst = int(np.argmax(tv))
    n_r, n_s = len(real), len(syn)
    metrics = [
        Metric("utility.tvd1.mean", "Mean 1-way TVD", float(tv.mean()), "minimize", (0.0, 1.0), floor,
               description="Average, over attributes, of the share of records that would have to change category "
                           "to make the synthetic distribution of that attribute equal to the real one. "
                           "0 means every attribute has exactly the real distribution. The reference value is the "
                           "same distance between the training and the holdout data: two real samples differ this "
                           "much by chance, so a perfect generator lands near it, not at 0.",
               formula="mean_j ½ Σ_s |p_real(j=s) − p_syn(j=s)| over public states (bins; missing is a state)",
               real_data=True,
               details={"per_attribute": per_attr, "worst_attribute": names[worst], "n_real": n_r, "n_synthetic": n_s,
                        "real_vs_real": floor}),
        Metric("utility.tvd1.max", "Worst 1-way TVD", float(tv[worst]), "minimize", (0.0, 1.0), 0.0,
               description=f"The attribute reproduced worst is '{names[worst]}': {tv[worst]:.1%} of its "
                           "probability mass sits in the wrong category.",
               formula="max_j ½ Σ_s |p_real(j=s) − p_syn(j=s)|", real_data=True,
               details={"attribute": names[worst], "per_attribute": per_attr}),
    ]
    ks: dict[str, float | None] = {}
    for name in names:
        if _attr(data, name).type in ("numeric", "count"):
            a, b = _values(data, "holdout", name), _values(data, "synthetic", name)
            ks[name] = _round(_ks_statistic(a, b)) if len(a) and len(b) else None
    ks_vals = {k: v for k, v in ks.items() if v is not None}
    if ks_vals:
        kw = max(ks_vals, key=lambda k: ks_vals[k])
        metrics += [
            Metric("utility.ks.mean", "Mean KS statistic (numeric values)", float(np.mean(list(ks_vals.values()))),
                   "minimize", (0.0, 1.0), 0.0,
                   description="Average over numeric attributes of the largest gap between the real and synthetic "
                               "cumulative distributions of the values (not binned). 0 = identical distributions.",
                   formula="mean_j sup_x |F_real,j(x) − F_syn,j(x)| (non-missing values)", real_data=True,
                   details={"per_attribute": ks}),
            Metric("utility.ks.max", "Worst KS statistic (numeric values)", float(ks_vals[kw]), "minimize",
                   (0.0, 1.0), 0.0,
                   description=f"Numeric attribute with the largest distribution gap: '{kw}'.",
                   formula="max_j sup_x |F_real,j(x) − F_syn,j(x)|", real_data=True,
                   details={"attribute": kw, "per_attribute": ks}),
        ]
    order = np.argsort(-tv, kind="stable")
    top = order[:_MAX_HEATMAP]
    figures = [Figure("utility.tvd1.by_attribute", "1-way TVD per attribute", "bars",
                      {"categories": [names[j] for j in top], "series": {"TVD": [float(tv[j]) for j in top]},
                       "floor": {"label": "real vs real (noise floor)", "values": [float(floor_by_attr[j]) for j in top]},
                       "ylabel": "TVD, real (holdout) vs synthetic"},
                      caption="Total variation distance between real (holdout) and synthetic frequencies, "
                              "worst attributes first. The dashed mark is the sampling-noise floor: the same distance "
                              "between the training and the holdout patients (a perfect generator lands near it).",
                      real_data=True)]
    for j in order[:n_figures]:
        p, q = _freqs(real[:, j], sizes[j]), _freqs(syn[:, j], sizes[j])
        figures.append(Figure(
            f"utility.marginal.{names[j]}", f"{names[j]}: real vs synthetic frequencies", "bars",
            {"categories": data.labels(names[j]), "series": {_REAL: p.tolist(), _SYN: q.tolist()},
             "errors": {_REAL: [list(wilson_interval(int(round(x * n_r)), n_r)) for x in p]} if n_r else {}},
            caption=f"State frequencies of '{names[j]}' (TVD {tv[j]:.3f}); whiskers: 95% Wilson intervals of the "
                    "real frequencies (the sampling noise of the holdout).", real_data=True))
    return metrics, figures


# ============================================================================ 2-way fidelity
def pairwise_tvd_matrix(real: np.ndarray, syn: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Symmetric d × d matrix of 2-way marginal TVDs (NaN diagonal) between two code matrices.

    For each attribute i, the joint codes with every later attribute j are offset into one index
    space and counted by a single ``bincount`` (attribute-major layout keeps the slices contiguous).

    Examples
    --------
    >>> m = pairwise_tvd_matrix(np.array([[0, 1], [1, 0]]), np.array([[0, 0], [1, 1]]), (2, 2))
    >>> float(m[0, 1]), float(m[1, 0])
    (1.0, 1.0)
    """
    d = real.shape[1]
    sz = np.asarray(sizes, dtype=np.int64)
    out = np.full((d, d), np.nan)
    cols = {"real": np.ascontiguousarray(real.T), "syn": np.ascontiguousarray(syn.T)}  # d × n
    for i in range(d - 1):
        js = np.arange(i + 1, d)
        cell = sz[i] * sz[js]
        offs = np.concatenate([[0], np.cumsum(cell)[:-1]]).astype(np.int64)
        total = int(cell.sum())
        joint = {}
        for name, c in cols.items():
            keys = c[js]  # a copy (fancy indexing)
            keys += offs[:, None]
            keys += c[i][None, :] * sz[js][:, None]
            joint[name] = np.bincount(keys.ravel(), minlength=total) / max(c.shape[1], 1)
        vals = 0.5 * np.add.reduceat(np.abs(joint["real"] - joint["syn"]), offs)
        out[i, js] = vals
        out[js, i] = vals
    return out


def pairwise_fidelity(data: ReportData) -> tuple[list[Metric], list[Figure]]:
    """2-way fidelity: TVD of every pair of attributes' joint distribution (real holdout vs synthetic).

    Returns
    -------
    metrics : list of Metric
        ``utility.tvd2.mean`` and ``utility.tvd2.max`` (the worst pair in ``details``).
    figures : list of Figure
        ``utility.tvd2.heatmap`` (at most 60 × 60 attributes: those with the largest mean pair TVD).

    Examples
    --------
    >>> import synthhealth as sh
    >>> from synthhealth.report.data import ReportData
    >>> t = sh.datasets.load_flchain().head(200)
    >>> d = ReportData.from_tables(sh.load_schema("flchain"), t, t, t)
    >>> pairwise_fidelity(d)[0][1].value
    0.0
    """
    _check_data(data, "pairwise_fidelity")
    names = data.names
    d = len(names)
    if d < 2:
        return [Metric("utility.tvd2.mean", "Mean 2-way TVD", None, "minimize", (0.0, 1.0), 0.0, real_data=True,
                       details={"reason": "the schema has fewer than two attributes"})], []
    mat = pairwise_tvd_matrix(data.codes("holdout"), data.codes("synthetic"), data.sizes)
    iu = np.triu_indices(d, 1)
    vals = mat[iu]
    # sampling-noise floor: the same distance between the two real samples (train vs holdout)
    floor_mat = pairwise_tvd_matrix(data.codes("holdout"), data.codes("train"), data.sizes)
    floor = float(floor_mat[iu].mean())
    k = int(np.argmax(vals))
    wi, wj = int(iu[0][k]), int(iu[1][k])
    order = np.argsort(-vals, kind="stable")[:20]
    worst20 = [{"pair": [names[iu[0][m]], names[iu[1][m]]], "tvd": round(float(vals[m]), 6)} for m in order]
    metrics = [
        Metric("utility.tvd2.mean", "Mean 2-way TVD", float(vals.mean()), "minimize", (0.0, 1.0), floor,
               description="Average over all pairs of attributes of how far the synthetic joint distribution of the "
                           "pair is from the real one (share of probability mass misplaced). Captures whether "
                           "relations between two variables (e.g. age and diagnosis) are kept. The reference value "
                           "is the same distance between the training and the holdout data (the sampling-noise "
                           "floor: small samples differ by chance).",
               formula="mean_{i<j} ½ Σ_{s,t} |p_real(i=s, j=t) − p_syn(i=s, j=t)|", real_data=True,
               details={"n_pairs": int(len(vals)), "worst_pairs": worst20, "real_vs_real": floor}),
        Metric("utility.tvd2.max", "Worst 2-way TVD", float(vals[k]), "minimize", (0.0, 1.0), 0.0,
               description=f"The pair of attributes reproduced worst is '{names[wi]}' × '{names[wj]}'.",
               formula="max_{i<j} ½ Σ_{s,t} |p_real(i=s, j=t) − p_syn(i=s, j=t)|", real_data=True,
               details={"pair": [names[wi], names[wj]], "worst_pairs": worst20}),
    ]
    figs: list[Figure] = []
    # the top-k worst pairs, each beside its sampling-noise floor (the same TVD between the two real samples)
    top = order[:_TOP_PAIRS]
    figs.append(Figure(
        "utility.tvd2.worst_pairs", f"The {len(top)} worst-reproduced pairs of attributes (2-way TVD)", "bars",
        {"categories": [f"{names[iu[0][m]]} × {names[iu[1][m]]}" for m in top],
         "series": {"TVD": [float(vals[m]) for m in top]},
         "floor": {"label": "real vs real (noise floor)", "values": [float(floor_mat[iu[0][m], iu[1][m]]) for m in top]},
         "ylabel": "TVD of the pair's joint distribution"},
        caption="Real (holdout) vs synthetic, worst first. The dashed mark is the sampling-noise floor of the pair "
                "(training vs holdout patients): a bar near it is as good as a second real sample. Every pair is in "
                "the appendix.", real_data=True))
    # real and synthetic association matrices (Cramér's V), side by side, for the attributes of the worst pairs
    vsel: list[int] = []
    for m in np.argsort(-vals, kind="stable"):
        for j in (int(iu[0][m]), int(iu[1][m])):
            if j not in vsel and len(vsel) < _MAX_ASSOC:
                vsel.append(j)
        if len(vsel) >= _MAX_ASSOC:
            break
    vsel = sorted(vsel)
    if len(vsel) >= 2:
        codes_h, codes_s = data.codes("holdout"), data.codes("synthetic")
        panels = {}
        for label, codes in (("real (holdout)", codes_h), ("synthetic", codes_s)):
            v = cramers_v_matrix(codes[:, vsel], [data.sizes[j] for j in vsel])
            panels[label] = [[None if math.isnan(x) else round(float(x), 4) for x in row] for row in v]
        figs.append(Figure(
            "utility.cramers_v", "Association between attributes (Cramér's V): real vs synthetic", "heatmaps",
            {"rows": [names[j] for j in vsel], "cols": [names[j] for j in vsel], "panels": panels,
             "vmin": 0.0, "vmax": 1.0, "label": "Cramér's V"},
            caption="Cramér's V of each pair (0 = independent, 1 = one determines the other), real holdout patients "
                    "on the left, synthetic on the right" + (f"; the {len(vsel)} attributes of the worst pairs"
                                                             if len(vsel) < d else "") + ".", real_data=True))
    # every pair, in readable blocks of at most _BLOCK attributes (the report puts them in an appendix)
    if d > _MAX_HEATMAP:
        sel = np.sort(np.argsort(-np.nanmean(mat, axis=1), kind="stable")[:_MAX_HEATMAP])
    else:
        sel = np.arange(d)
    vmax = max(float(np.nanmax(mat[np.ix_(sel, sel)])), 1e-9)
    blocks = [sel[i: i + _BLOCK] for i in range(0, len(sel), _BLOCK)]
    for a, ra in enumerate(blocks):
        for b, rb in enumerate(blocks):
            if b < a:
                continue
            sub = mat[np.ix_(ra, rb)]
            values = [[None if math.isnan(v) else round(float(v), 5) for v in row] for row in sub]
            key = "utility.tvd2.heatmap" if len(blocks) == 1 else f"utility.tvd2.heatmap.{a + 1}-{b + 1}"
            title = "2-way TVD of attribute pairs" + ("" if len(blocks) == 1 else f" (block {a + 1}×{b + 1})")
            figs.append(Figure(
                key, title, "heatmap",
                {"rows": [names[j] for j in ra], "cols": [names[j] for j in rb], "values": values, "vmin": 0.0,
                 "vmax": vmax},
                caption="Total variation distance of each pair's joint distribution, real (holdout) vs synthetic."
                        + (f" Attributes {a * _BLOCK + 1}–{a * _BLOCK + len(ra)} against {b * _BLOCK + 1}–"
                           f"{b * _BLOCK + len(rb)}, one colour scale for all blocks." if len(blocks) > 1 else "")
                        + (" Showing the 60 attributes with the largest mean pair TVD." if d > _MAX_HEATMAP else ""),
                real_data=True))
    return metrics, figs


def cramers_v_matrix(codes: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Symmetric matrix of Cramér's V between the columns of a code matrix (1 on the diagonal).

    V = sqrt(χ² / (n · (min(r, c) − 1))) over the states both attributes use; NaN when an attribute
    has a single state in the data.

    Examples
    --------
    >>> m = cramers_v_matrix(np.array([[0, 0], [1, 1], [0, 0], [1, 1]]), (2, 2))
    >>> float(m[0, 1])
    1.0
    """
    n, d = codes.shape
    out = np.eye(d)
    for i in range(d):
        for j in range(i + 1, d):
            tab = np.bincount(codes[:, i] * sizes[j] + codes[:, j], minlength=sizes[i] * sizes[j]
                              ).reshape(sizes[i], sizes[j]).astype(float)
            tab = tab[tab.sum(1) > 0][:, tab.sum(0) > 0]
            k = min(tab.shape) - 1
            if n == 0 or k < 1:
                v = float("nan")
            else:
                exp = tab.sum(1, keepdims=True) * tab.sum(0, keepdims=True) / n
                chi2 = float(((tab - exp) ** 2 / exp).sum())
                v = math.sqrt(min(1.0, chi2 / (n * k)))
            out[i, j] = out[j, i] = v
    return out


# ============================================================================ k-way marginals (SDNist)
def _kway_tvd(real: np.ndarray, syn: np.ndarray, sizes: Sequence[int]) -> float:
    """TVD of the joint distribution of the given columns (all states, missing included)."""
    prod = math.prod(int(s) for s in sizes)
    if prod < 2 ** 62:
        radix = np.cumprod([1] + [int(s) for s in sizes[:0:-1]])[::-1].astype(np.int64)
        kr, ks = real @ radix, syn @ radix
        if prod <= 4 * (len(kr) + len(ks)) + 1024:
            pr = np.bincount(kr, minlength=prod)
            ps = np.bincount(ks, minlength=prod)
        else:
            _, inv = np.unique(np.concatenate([kr, ks]), return_inverse=True)
            m = int(inv.max()) + 1
            pr = np.bincount(inv[:len(kr)], minlength=m)
            ps = np.bincount(inv[len(kr):], minlength=m)
    else:  # pragma: no cover - only for very large k
        _, inv = np.unique(np.vstack([real, syn]), axis=0, return_inverse=True)
        inv = inv.ravel()
        m = int(inv.max()) + 1
        pr = np.bincount(inv[:len(real)], minlength=m)
        ps = np.bincount(inv[len(real):], minlength=m)
    return _tvd(pr / len(real), ps / len(syn))


def k_marginal_score(data: ReportData, k: int = 3, n_subsets: int = 100,
                     random_state: Any = None) -> tuple[list[Metric], list[Figure]]:
    """NIST CRC / SDNist k-marginal score on random k-attribute subsets.

    For ``n_subsets`` distinct random subsets of ``k`` attributes (all subsets when there are fewer),
    the TVD of the k-way joint distribution (real holdout vs synthetic, public states, missing a state)
    is computed; score = 1000 × (1 − mean TVD) = 1000 × (2 − mean L1)/2, SDNist's scale.

    Returns
    -------
    metrics : list of Metric
        ``utility.kmarginal{k}`` (the score, 0–1000) and ``utility.kmarginal{k}.tvd`` (mean TVD).
    figures : list of Figure
        ``utility.kmarginal{k}.hist`` (histogram of the per-subset TVDs).

    Examples
    --------
    >>> import synthhealth as sh
    >>> from synthhealth.report.data import ReportData
    >>> t = sh.datasets.load_flchain().head(200)
    >>> d = ReportData.from_tables(sh.load_schema("flchain"), t, t, t)
    >>> k_marginal_score(d, random_state=0)[0][0].value
    1000.0
    """
    _check_data(data, "k_marginal_score")
    d = len(data.names)
    k = check_positive_int(k, "k", "k_marginal_score")
    if k > d:
        raise InvalidParameterError(
            f"The 'k' parameter of k_marginal_score must be an int in [1, {d}] (the number of attributes). "
            f"Got {k!r} instead.")
    n_subsets = check_positive_int(n_subsets, "n_subsets", "k_marginal_score")
    rng = check_random_state(random_state)
    n_all = math.comb(d, k)
    if n_all <= n_subsets:
        subsets = [tuple(s) for s in itertools.combinations(range(d), k)]
    else:
        seen: set[tuple[int, ...]] = set()
        subsets = []
        while len(subsets) < n_subsets:
            s = tuple(sorted(int(v) for v in rng.choice(d, size=k, replace=False)))
            if s not in seen:
                seen.add(s)
                subsets.append(s)
    real, syn = data.codes("holdout"), data.codes("synthetic")
    sizes = data.sizes
    tvds = np.array([_kway_tvd(real[:, list(s)], syn[:, list(s)], [sizes[j] for j in s]) for s in subsets])
    mean = float(tvds.mean())
    order = np.argsort(-tvds, kind="stable")[:10]
    worst = [{"attributes": [data.names[j] for j in subsets[m]], "tvd": round(float(tvds[m]), 6)} for m in order]
    details = {"k": k, "n_subsets": len(subsets), "all_subsets": n_all <= n_subsets, "worst_subsets": worst,
               "mean_tvd": mean}
    metrics = [
        Metric(f"utility.kmarginal{k}", f"{k}-marginal score (SDNist scale)", 1000.0 * (1.0 - mean), "maximize",
               (0.0, 1000.0), 1000.0,
               description=f"NIST's headline utility score: random groups of {k} attributes are tabulated in the "
                           "real and synthetic data and compared. 1000 = identical tables, 0 = nothing in common.",
               formula=f"1000 × (1 − mean over subsets of ½ Σ |p_real − p_syn|) on random {k}-attribute marginals",
               real_data=True, details=details),
        Metric(f"utility.kmarginal{k}.tvd", f"Mean {k}-way TVD", mean, "minimize", (0.0, 1.0), 0.0,
               description=f"Average share of probability mass misplaced in the joint distribution of {k} "
                           "attributes at a time.",
               formula=f"mean over {len(subsets)} subsets of ½ Σ |p_real − p_syn|", real_data=True, details=details),
    ]
    hi = max(float(tvds.max()), 1e-9)
    edges = np.linspace(0.0, hi, 21)
    counts, _ = np.histogram(tvds, bins=edges)
    fig = Figure(f"utility.kmarginal{k}.hist", f"TVD of {len(subsets)} random {k}-way marginals", "hist",
                 {"edges": edges.tolist(), "series": {"subsets": counts.tolist()}},
                 caption=f"Distribution of the TVD over the sampled {k}-attribute subsets.", real_data=True)
    return metrics, [fig]


# ============================================================================ pMSE
def pmse(data: ReportData, random_state: Any = None, *, max_rows: int = 50_000) -> tuple[list[Metric], list[Figure]]:
    """Propensity-score mean squared error (Woo et al. 2009; Snoke et al. 2018).

    Real (holdout) and synthetic rows are stacked (each side subsampled, seeded, to at most
    ``max_rows``) and a logistic regression on the one-hot codes (main effects, reference = the most
    frequent state, a ridge of 1e-4 against separation) predicts "is synthetic". With c = n_syn / N,
    pMSE = mean_i (p̂_i − c)².

    The null expectation used for the ratio is k c (1 − c) / N, k = estimable parameters besides the
    intercept (rank of the design − 1): the expectation when real and synthetic rows are *independent*
    samples of the same population, which is the situation with the holdout as the real side (a
    perfect generator reaches it). Snoke et al.'s k (1 − c)² c / N is the expectation when the
    synthetic rows are drawn from a model fitted to the *same* real rows they are compared with; it
    is smaller by the factor (1 − c) (half, for c = ½) and is reported in ``details`` as
    ``null_snoke`` / ``ratio_snoke``.

    Returns
    -------
    metrics : list of Metric
        ``utility.pmse`` (reference = the null expectation) and ``utility.pmse_ratio`` (pMSE / null;
        ≈ 1 when indistinguishable).
    figures : list of Figure
        ``utility.pmse.propensity`` (histogram of p̂ for real and synthetic rows).

    Examples
    --------
    >>> import synthhealth as sh
    >>> from synthhealth.report.data import ReportData
    >>> t = sh.datasets.load_flchain().head(200)
    >>> d = ReportData.from_tables(sh.load_schema("flchain"), t, t, t)
    >>> round(pmse(d, random_state=0)[0][0].value, 8)
    0.0
    """
    _check_data(data, "pmse")
    max_rows = check_positive_int(max_rows, "max_rows", "pmse")
    rng = check_random_state(random_state)
    real, syn = data.codes("holdout"), data.codes("synthetic")
    sub = {}
    for name, c in (("real", real), ("synthetic", syn)):
        sub[name] = c[np.sort(rng.choice(len(c), size=max_rows, replace=False))] if len(c) > max_rows else c
    r, s = sub["real"], sub["synthetic"]
    stacked = np.vstack([r, s])
    y = np.r_[np.zeros(len(r), dtype=bool), np.ones(len(s), dtype=bool)]
    (x,), _ = _design(stacked, data.sizes)
    n = len(y)
    c = len(s) / n
    beta, _h = _fit_logit(x, y, ridge=1e-4)
    p_hat = expit(x @ beta)
    value = float(np.mean((p_hat - c) ** 2))
    eig = np.linalg.eigvalsh((x.T @ x).toarray())
    rank = int(np.sum(eig > eig.max() * x.shape[1] * np.finfo(float).eps * 10))
    k = max(rank - 1, 0)
    null = k * c * (1 - c) / n  # independent samples of one population (chi-square with k df × c(1−c)/N)
    sd = math.sqrt(2 * k) * c * (1 - c) / n
    null_snoke = k * (1 - c) ** 2 * c / n  # synthetic drawn from a model fitted to these same real rows
    ratio = value / null if null > 0 else float("nan")
    details = {"n_real": int(len(r)), "n_synthetic": int(len(s)), "subsampled": bool(len(real) > max_rows
                                                                                      or len(syn) > max_rows),
               "max_rows_per_side": max_rows, "c": c, "n_parameters": k, "null_expectation": null,
               "null_sd": sd, "standardized": (value - null) / sd if sd > 0 else None,
               "null_snoke": null_snoke, "ratio_snoke": value / null_snoke if null_snoke > 0 else None,
               "model": "logistic regression, one-hot main effects, ridge 1e-4"}
    desc_sub = (f" Each side was subsampled to at most {max_rows:,} rows." if details["subsampled"] else "")
    if k > 0.1 * n:  # the chi-square approximation needs many rows per parameter
        details["warning"] = (f"{k} parameters for {n} rows: the model can nearly interpolate, the null "
                              "expectation is unreliable and the ratio should not be judged")
        details["not_judged"] = (f"{k} parameters for {n} rows (more than one per 10 rows): the classifier can "
                                 "nearly interpolate, so the null expectation of the pMSE is unreliable")
        desc_sub += " Too few rows for the number of categories: read this ratio with caution."
    metrics = [
        Metric("utility.pmse", "Propensity score MSE (pMSE)", value, "minimize", (0.0, 0.25), null,
               description="How well a simple classifier tells synthetic from real records. 0 = not at all; the "
                           "reference is the value expected by chance for two samples of the same population."
                           + desc_sub,
               formula="mean_i (p̂_i − c)², c = n_syn/N, p̂ from logistic regression on one-hot main effects",
               real_data=True, details=details),
        Metric("utility.pmse_ratio", "pMSE ratio to its null expectation", ratio, "minimize", (0.0, math.inf), 1.0,
               description="pMSE divided by what chance alone would give. About 1: a classifier cannot tell the "
                           "synthetic records from real ones; much larger: it can (e.g. 10 = ten times chance)."
                           + desc_sub,
               formula="pMSE / (k c (1 − c) / N), k = parameters besides the intercept", real_data=True,
               details=details),
    ]
    edges = np.linspace(0.0, 1.0, 26)
    fig = Figure("utility.pmse.propensity", "Propensity scores (probability of being synthetic)", "hist",
                 {"edges": edges.tolist(),
                  "series": {_REAL: np.histogram(p_hat[~y], bins=edges)[0].tolist(),
                             _SYN: np.histogram(p_hat[y], bins=edges)[0].tolist()}},
                 caption=f"Both histograms should pile up around c = {c:.2f} when the classifier cannot "
                         "distinguish the tables.", real_data=True)
    return metrics, [fig]


# ============================================================================ TSTR
def _binary_outcome(data: ReportData) -> tuple[str | None, str | None]:
    name = data.outcome
    if name is None:
        return None, "the schema declares no outcome"
    if _attr(data, name).type != "boolean":
        return None, f"the outcome {name!r} is not boolean"
    return name, None


def _roc_points(score: np.ndarray, y: np.ndarray, n_points: int = 101) -> tuple[list[float], list[float]]:
    order = np.argsort(-score, kind="stable")
    s, yy = score[order], y[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]
    tpr = np.r_[0.0, np.cumsum(yy)[last] / max(yy.sum(), 1)]
    fpr = np.r_[0.0, np.cumsum(~yy)[last] / max((~yy).sum(), 1)]
    grid = np.linspace(0.0, 1.0, n_points)
    return grid.tolist(), np.interp(grid, fpr, tpr).tolist()


def tstr(data: ReportData, random_state: Any = None, n_boot: int = 200, *, exclude: Sequence[str] = (),
         leak_auroc: float | None = 0.99, max_rows: int = 50_000) -> tuple[list[Metric], list[Figure]]:
    """Train on synthetic, test on real (TSTR), with train-on-real-test-on-real (TRTR) as the reference.

    Predicts the schema's outcome (``data.outcome``, boolean) from the other attributes' one-hot codes
    with (a) a logistic regression (Newton, ridge λ = 1) and (b) scikit-learn's
    ``HistGradientBoostingClassifier`` on the codes (native categorical splits). Each model is fitted
    once on the synthetic table (TSTR) and once on the real training table (TRTR) and evaluated on the
    holdout. Excluded features: the outcome; on survival schemas the time attribute (it leaks the
    event); ``exclude``; and any attribute that alone predicts the outcome in the real training data
    with AUROC ≥ ``leak_auroc`` (e.g. the cause of death, missing exactly when alive). 95% intervals
    are percentile bootstraps over the holdout rows (seeded, the same resamples for every model).

    Parameters
    ----------
    data : ReportData
    random_state : None, int or Generator
    n_boot : int, default 200
        Bootstrap resamples (0: no intervals).
    exclude : sequence of str
        Further attributes not to use as predictors.
    leak_auroc : float in (0.5, 1] or None, default 0.99
        Leak threshold; ``None`` keeps every attribute.
    max_rows : int, default 50,000
        Each training set and the test set are subsampled (seeded) to at most this many rows.

    Returns
    -------
    metrics : list of Metric
        Logistic regression: ``utility.tstr.auroc``, ``utility.tstr.auprc``, ``utility.tstr.brier``;
        gradient boosting: ``utility.tstr.hgb.auroc``, ``utility.tstr.hgb.auprc``, ``utility.tstr.hgb.brier``;
        ``reference`` = the TRTR value; ``ci`` = bootstrap 95% interval. Value ``None`` (with
        ``details["reason"]``) when the synthetic outcome has a single class. Empty without a boolean outcome.
    figures : list of Figure
        ``utility.tstr.summary`` (bars TSTR vs TRTR) and ``utility.tstr.roc`` (lines, 101 points per curve).

    Examples
    --------
    >>> import synthhealth as sh
    >>> from synthhealth.report.data import ReportData
    >>> t = sh.datasets.load_flchain().sample(600, random_state=0)
    >>> d = ReportData.from_tables(sh.load_schema("flchain"), t.iloc[:300], t.iloc[300:], t.iloc[:300])
    >>> m, _ = tstr(d, random_state=0, n_boot=20)
    >>> m[0].key, m[0].value == m[0].reference
    ('utility.tstr.auroc', True)
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    _check_data(data, "tstr")
    n_boot = check_positive_int(n_boot, "n_boot", "tstr", allow_zero=True)
    if leak_auroc is not None:
        leak_auroc = _check_fraction(leak_auroc, "leak_auroc", "tstr", lo=0.5)
    if isinstance(exclude, str) or not all(isinstance(e, str) and e in data.names for e in exclude):
        raise InvalidParameterError(
            f"The 'exclude' parameter of tstr must be a sequence of attribute names of the schema. Got {exclude!r} "
            "instead.")
    rng = check_random_state(random_state)
    outcome, _ = _binary_outcome(data)
    if outcome is None:
        return [], []
    dropped = {outcome: "outcome", **{e: "excluded by the caller" for e in exclude}}
    if data.survival is not None:
        dropped.setdefault(data.survival[0], "time-to-event (leaks the event)")
    y_tr, o_tr = _boolean_target(data, "train", outcome)
    cand = [n for n in data.names if n not in dropped]
    if y_tr[o_tr].any() and not y_tr[o_tr].all():
        for name, auc in _leaks(data, "train", outcome, cand, y_tr, o_tr, leak_auroc).items():
            dropped[name] = f"leaks the outcome (single-attribute AUROC {auc} on real train)"
    feats = [n for n in data.names if n not in dropped]
    fidx = [data.names.index(n) for n in feats]
    fsizes = [data.sizes[j] for j in fidx]
    y_te, o_te = _boolean_target(data, "holdout", outcome)
    y_sy, o_sy = _boolean_target(data, "synthetic", outcome)
    base = {"outcome": outcome, "features": feats, "excluded": dropped, "n_boot": n_boot,
            "n_train_synthetic": int(o_sy.sum()), "n_train_real": int(o_tr.sum()), "n_test": int(o_te.sum()),
            "prevalence_test": float(y_te[o_te].mean()) if o_te.any() else None}

    def none_metrics(why: str) -> tuple[list[Metric], list[Figure]]:
        out = []
        for mk, mname in (("", "logistic regression"), ("hgb.", "gradient boosting")):
            for stat, goal, rng_ in (("auroc", "maximize", (0.0, 1.0)), ("auprc", "maximize", (0.0, 1.0)),
                                     ("brier", "minimize", (0.0, 1.0))):
                out.append(Metric(f"utility.tstr.{mk}{stat}", f"TSTR {stat.upper()} ({mname})", None, goal,  # type: ignore[arg-type]
                                  rng_, None, real_data=True, details={**base, "reason": why}))
        return out, []

    if not feats:
        return none_metrics("no predictor is left after the exclusions")
    if not o_te.any() or y_te[o_te].all() or not y_te[o_te].any():
        return none_metrics("the outcome has a single class in the holdout data")
    if not o_sy.any() or y_sy[o_sy].all() or not y_sy[o_sy].any():
        return none_metrics("the outcome has a single class in the synthetic data: no classifier can be trained")
    max_rows = check_positive_int(max_rows, "max_rows", "tstr")

    def cap(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # a seeded subsample above max_rows: AUROC's precision is already ~1/sqrt(max_rows) there
        if len(y) <= max_rows:
            return x, y
        keep = np.sort(rng.choice(len(y), size=max_rows, replace=False))
        return x[keep], y[keep]

    test, yt = cap(data.codes("holdout")[o_te][:, fidx], y_te[o_te])
    train_sets = {"tstr": cap(data.codes("synthetic")[o_sy][:, fidx], y_sy[o_sy])}
    if y_tr[o_tr].any() and not y_tr[o_tr].all():
        train_sets["trtr"] = cap(data.codes("train")[o_tr][:, fidx], y_tr[o_tr])
    base["max_rows"] = max_rows
    hgb_seed = int(rng.integers(2 ** 31 - 1))
    cat = np.array([s <= 255 for s in fsizes])
    scores: dict[tuple[str, str], np.ndarray] = {}
    for kind, (xc, yc) in train_sets.items():
        (x_fit, x_test), _ = _design(xc, fsizes, test)
        beta, _h = _fit_logit(x_fit, yc, ridge=1.0)
        scores[("logit", kind)] = expit(x_test @ beta)
        hgb = HistGradientBoostingClassifier(categorical_features=cat if cat.any() else None,
                                             random_state=hgb_seed)
        # small trees on a few dozen features: OpenMP synchronisation dominates, one thread is faster
        # (and far faster on a shared machine) than several
        with threadpool_limits(limits=1, user_api="openmp"):
            hgb.fit(xc, yc)
            scores[("hgb", kind)] = hgb.predict_proba(test)[:, 1]
    point = {key: [float(v[0]) for v in _rank_metrics(sc, yt, np.ones((1, len(yt))))] for key, sc in scores.items()}
    boots: dict[tuple[str, str], list[list[np.ndarray]]] = {key: [[], [], []] for key in scores}
    chunk = 20
    for start in range(0, n_boot, chunk):
        w = _bootstrap_weights(rng, len(yt), min(chunk, n_boot - start))
        for key, sc in scores.items():
            for acc, v in zip(boots[key], _rank_metrics(sc, yt, w), strict=True):
                acc.append(v)
    stats = (("auroc", "AUROC", "maximize"), ("auprc", "AUPRC", "maximize"), ("brier", "Brier score", "minimize"))
    descr = {"auroc": "the probability that the model ranks a random patient with the outcome above one without it "
                      "(0.5 = coin toss, 1 = perfect)",
             "auprc": "the average precision over all recall levels (chance = the outcome's prevalence)",
             "brier": "the mean squared error of the predicted probabilities (0 = perfect; lower is better)"}
    metrics: list[Metric] = []
    for model, mk, mname in (("logit", "", "logistic regression"), ("hgb", "hgb.", "gradient boosting")):
        for s_i, (stat, label, goal) in enumerate(stats):
            val = point[(model, "tstr")][s_i]
            ref = point[(model, "trtr")][s_i] if (model, "trtr") in point else None
            ci = None
            det: dict[str, Any] = {**base, "model": mname, "trtr": ref}
            if n_boot:
                bt = np.concatenate(boots[(model, "tstr")][s_i])
                ci = (float(np.nanpercentile(bt, 2.5)), float(np.nanpercentile(bt, 97.5)))
                if ref is not None:
                    br = np.concatenate(boots[(model, "trtr")][s_i])
                    det["trtr_ci"] = [float(np.nanpercentile(br, 2.5)), float(np.nanpercentile(br, 97.5))]
                    det["difference"] = val - ref
                    det["difference_ci"] = [float(np.nanpercentile(bt - br, 2.5)),
                                            float(np.nanpercentile(bt - br, 97.5))]
            if stat == "auprc":
                det["chance"] = base["prevalence_test"]
            metrics.append(Metric(
                f"utility.tstr.{mk}{stat}", f"TSTR {label} ({mname}, outcome '{outcome}')", val, goal,  # type: ignore[arg-type]
                (0.0, 1.0), ref, ci,
                description=f"A {mname} trained only on synthetic data and tested on real patients it never saw: "
                            f"{descr[stat]}. The reference is the same model trained on the real training data.",
                formula=f"{label} on the holdout of a {mname} fitted on synthetic (TSTR); reference: fitted on "
                        "real train (TRTR); 95% CI: percentile bootstrap over holdout rows",
                real_data=True, details=det))
    cats = ["logistic AUROC", "logistic AUPRC", "boosting AUROC", "boosting AUPRC"]
    keys = [("logit", 0), ("logit", 1), ("hgb", 0), ("hgb", 1)]
    series = {"TSTR (train synthetic)": [point[(m, "tstr")][i] for m, i in keys]}
    if ("logit", "trtr") in point:
        series["TRTR (train real)"] = [point[(m, "trtr")][i] for m, i in keys]

    def _pct(key: tuple[str, str], i: int) -> list[float] | None:
        if not n_boot or key not in boots:
            return None
        b = np.concatenate(boots[key][i])
        return [float(np.nanpercentile(b, 2.5)), float(np.nanpercentile(b, 97.5))]

    errors = {"TSTR (train synthetic)": [_pct((m, "tstr"), i) for m, i in keys]}
    if ("logit", "trtr") in point:
        errors["TRTR (train real)"] = [_pct((m, "trtr"), i) for m, i in keys]
    figs = [Figure("utility.tstr.summary", f"Predicting '{outcome}' on real holdout patients", "bars",
                   {"categories": cats, "series": series, "errors": errors},
                   caption="Models trained on synthetic data (TSTR) against the same models trained on real data "
                           "(TRTR); whiskers: 95% bootstrap intervals over the holdout patients.", real_data=True)]
    roc: dict[str, Any] = {}
    for (model, kind), sc in scores.items():
        xg, yg = _roc_points(sc, yt)
        roc[f"{'logistic' if model == 'logit' else 'boosting'} {kind.upper()}"] = {"x": xg, "y": yg}
    figs.append(Figure("utility.tstr.roc", f"ROC curves for '{outcome}' on the holdout", "lines",
                       {"series": roc, "xlabel": "false positive rate", "ylabel": "true positive rate",
                        "diagonal": True}, caption="ROC curves on the real holdout.", real_data=True))
    return metrics, figs


# ============================================================================ CI overlap (Karr et al. 2006)
def _overlap_j(lo_r: float, hi_r: float, lo_s: float, hi_s: float) -> tuple[float, float]:
    """Karr et al. (2006) interval overlap: ``(J clipped at 0, raw J)``.

    J = ½ (O / (u_r − l_r) + O / (u_s − l_s)), O = min(u_r, u_s) − max(l_r, l_s). Raw J is negative
    for disjoint intervals (the further apart, the more negative); the clipped J is 0 then.
    """
    o = min(hi_r, hi_s) - max(lo_r, lo_s)
    wr, ws = hi_r - lo_r, hi_s - lo_s
    if wr <= 0 or ws <= 0:
        raise InvalidParameterError("interval widths must be positive.")
    raw = 0.5 * (o / wr + o / ws)
    return max(raw, 0.0), raw


def ci_overlap(data: ReportData, *, max_attributes: int = 4, min_share: float = 0.05,
               leak_auroc: float | None = 0.99) -> tuple[list[Metric], list[Figure]]:
    """Confidence-interval overlap of logistic-regression coefficients (Karr et al. 2006).

    The model ``outcome ~ main effects`` is fitted on the real holdout and on the synthetic table by
    Newton's method (ridge 1e-4 against separation); standard errors come from the inverse Fisher
    information. Predictors: up to ``max_attributes`` attributes (not the outcome, not the survival
    time, not leaking attributes as in :func:`tstr`), those most associated with the outcome in the
    real holdout (single-attribute AUROC). Each is "well populated": its states with a real share
    < ``min_share`` are merged into one level ``other``; the most frequent real level is the reference.
    Per coefficient, J = ½ (O/w_real + O/w_syn) with O the overlap of the two 95% intervals; J is
    clipped at 0 for disjoint intervals (raw negative values in details); a level that never occurs in
    the synthetic data gets J = 0.

    Returns
    -------
    metrics : list of Metric
        ``utility.ci_overlap`` (mean J; per-coefficient table in details). Empty without a boolean outcome.
    figures : list of Figure
        ``utility.ci_overlap.coefficients`` (bars of real vs synthetic coefficients).

    Examples
    --------
    >>> import synthhealth as sh
    >>> from synthhealth.report.data import ReportData
    >>> t = sh.datasets.load_flchain().sample(600, random_state=0)
    >>> d = ReportData.from_tables(sh.load_schema("flchain"), t, t, t)
    >>> round(ci_overlap(d)[0][0].value, 6)
    1.0
    """
    _check_data(data, "ci_overlap")
    max_attributes = check_positive_int(max_attributes, "max_attributes", "ci_overlap")
    min_share = _check_fraction(min_share, "min_share", "ci_overlap", hi=0.5)
    if leak_auroc is not None:
        leak_auroc = _check_fraction(leak_auroc, "leak_auroc", "ci_overlap", lo=0.5)
    outcome, _ = _binary_outcome(data)
    if outcome is None:
        return [], []
    y_r, o_r = _boolean_target(data, "holdout", outcome)
    y_s, o_s = _boolean_target(data, "synthetic", outcome)

    def none(why: str, **extra: Any) -> tuple[list[Metric], list[Figure]]:
        return [Metric("utility.ci_overlap", "Confidence-interval overlap of a logistic model", None, "maximize",
                       (0.0, 1.0), 1.0, real_data=True, details={"reason": why, **extra})], []

    for nm, y, o in (("holdout", y_r, o_r), ("synthetic", y_s, o_s)):
        if not o.any() or y[o].all() or not y[o].any():
            return none(f"the outcome {outcome!r} has a single class in the {nm} data")
    excl = {outcome}
    if data.survival is not None:
        excl.add(data.survival[0])
    cand = [n for n in data.names if n not in excl]
    leaks = _leaks(data, "holdout", outcome, cand, y_r, o_r, leak_auroc)
    real_c, syn_c = data.codes("holdout")[o_r], data.codes("synthetic")[o_s]
    yr, ys = y_r[o_r], y_s[o_s]
    chosen: list[tuple[float, str, np.ndarray, list[str]]] = []
    for name in cand:
        if name in leaks:
            continue
        j = data.names.index(name)
        freq = _freqs(real_c[:, j], data.sizes[j])
        big = freq >= min_share
        labels = data.labels(name)
        levels = [labels[s] for s in np.flatnonzero(big)]
        mapping = np.where(big, np.cumsum(big) - 1, len(levels))
        populated = len(levels) + int(freq[~big].sum() > 0)
        if (~big).any():
            levels.append("other")  # small states merged (a level absent in real data is dropped by _design)
        if populated < 2:
            continue
        auc = _single_state_auroc(mapping[real_c[:, j]], yr, len(levels))
        if math.isfinite(auc):
            chosen.append((max(auc, 1 - auc), name, mapping, levels))
    chosen.sort(key=lambda t: -t[0])
    chosen = chosen[:max_attributes]
    if not chosen:
        return none("no well-populated predictor attribute", excluded_leaks=leaks)
    sizes = [len(lv) for _, _, _, lv in chosen]
    mr = np.column_stack([m[real_c[:, data.names.index(n)]] for _, n, m, _ in chosen])
    ms = np.column_stack([m[syn_c[:, data.names.index(n)]] for _, n, m, _ in chosen])
    (xr, xs), cols = _design(mr, sizes, ms)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    coef_names = []
    for flat in cols:
        a = int(np.searchsorted(offsets, flat, side="right") - 1)
        coef_names.append(f"{chosen[a][1]}={chosen[a][3][flat - offsets[a]]}")
    present = np.asarray(xs[:, 1:].sum(axis=0)).ravel() > 0
    fits = {}
    for nm, x, y in (("real", xr, yr), ("synthetic", xs, ys)):
        beta, hess = _fit_logit(x, y, ridge=1e-4, hessian=True)
        assert hess is not None
        se = np.sqrt(np.clip(np.diag(np.linalg.inv(hess)), 0.0, None))
        fits[nm] = (beta[1:], se[1:])
    rows, js = [], []
    for i, cname in enumerate(coef_names):
        br, sr = fits["real"][0][i], fits["real"][1][i]
        bs, ss = fits["synthetic"][0][i], fits["synthetic"][1][i]
        lo_r, hi_r, lo_s, hi_s = br - _Z95 * sr, br + _Z95 * sr, bs - _Z95 * ss, bs + _Z95 * ss
        if present[i]:
            j_clip, j_raw = _overlap_j(lo_r, hi_r, lo_s, hi_s)
        else:
            j_clip, j_raw = 0.0, None
        js.append(j_clip)
        rows.append({"coefficient": cname, "real": [float(br), float(lo_r), float(hi_r)],
                     "synthetic": [float(bs), float(lo_s), float(hi_s)], "j": j_clip, "j_raw": j_raw,
                     "same_sign": bool(np.sign(br) == np.sign(bs)), "absent_in_synthetic": not bool(present[i])})
    value = float(np.mean(js))
    metric = Metric(
        "utility.ci_overlap", f"Confidence-interval overlap (model for '{outcome}')", value, "maximize", (0.0, 1.0),
        1.0,
        description=f"A logistic model of '{outcome}' is fitted on real and on synthetic data; for each coefficient "
                    "the share of the two 95% confidence intervals that overlaps is averaged. 1 = the synthetic data "
                    "would lead to the same conclusions, 0 = to incompatible ones.",
        formula="mean over coefficients of ½ (O/w_real + O/w_syn), O = overlap of the 95% CIs (0 if disjoint)",
        real_data=True,
        details={"attributes": [n for _, n, _, _ in chosen], "coefficients": rows, "excluded_leaks": leaks,
                 "sign_agreement": float(np.mean([r["same_sign"] for r in rows])), "min_share": min_share,
                 "n_real": int(len(yr)), "n_synthetic": int(len(ys))})
    top = rows[:_MAX_BARS]
    fig = Figure("utility.ci_overlap.coefficients", f"Logistic coefficients for '{outcome}' (log-odds)", "bars",
                 {"categories": [r["coefficient"] for r in top],
                  "series": {_REAL: [r["real"][0] for r in top], _SYN: [r["synthetic"][0] for r in top]},
                  "errors": {_REAL: [r["real"][1:] for r in top], _SYN: [r["synthetic"][1:] for r in top]}},
                 caption="Log odds ratios against each attribute's reference level, real (holdout) vs synthetic; "
                         "whiskers: the 95% confidence intervals whose overlap the metric measures.",
                 real_data=True)
    return [metric], [fig]


# ============================================================================ survival
def kaplan_meier(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier estimate of the survival function.

    Parameters
    ----------
    time : array of float
        Follow-up times.
    event : array of bool
        True when the event happened at ``time``, False when censored.

    Returns
    -------
    times : ndarray
        The distinct observed times (events and censorings), increasing.
    survival : ndarray
        S(t) = Π_{t_i ≤ t} (1 − d_i / n_i) at each of ``times`` (right-continuous steps).

    Examples
    --------
    >>> kaplan_meier([1, 2, 3], [True, False, True])
    (array([1., 2., 3.]), array([0.66666667, 0.66666667, 0.        ]))
    """
    t = np.asarray(time, dtype=np.float64)
    e = np.asarray(event, dtype=bool)
    if t.shape != e.shape or t.ndim != 1 or np.isnan(t).any():
        raise InvalidParameterError("The 'time' and 'event' parameters of kaplan_meier must be 1-d arrays of the "
                                    f"same length without missing times. Got shapes {t.shape} and {e.shape} instead.")
    uniq, inv = np.unique(t, return_inverse=True)
    total = np.bincount(inv, minlength=len(uniq))
    deaths = np.bincount(inv, weights=e.astype(np.float64), minlength=len(uniq))
    at_risk = len(t) - np.concatenate([[0], np.cumsum(total)[:-1]])
    return uniq, np.cumprod(1.0 - deaths / at_risk)


def _step_at(times: np.ndarray, surv: np.ndarray, t: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(times, t, side="right") - 1
    return np.where(idx < 0, 1.0, surv[np.maximum(idx, 0)])


def _rmst(times: np.ndarray, surv: np.ndarray, tau: float) -> float:
    """∫_0^τ S(t) dt of a KM step function (held at its last value after the last time)."""
    knots = np.concatenate([[0.0], times[(times > 0) & (times < tau)], [tau]])
    return float(np.sum(_step_at(times, surv, knots[:-1]) * np.diff(knots)))


def survival_curves(data: ReportData, *, n_points: int = 200, min_at_risk: int = 10
                    ) -> tuple[list[Metric], list[Figure]]:
    """Kaplan–Meier curves of real (holdout) and synthetic data on a survival schema.

    Metrics: the largest vertical gap between the two curves (evaluated on the union of event times,
    where the curves change, as long as both tables still have at least ``min_at_risk`` patients at
    risk: the last few survivors make a curve jump by large steps) and the difference of restricted
    mean survival times
    RMST = ∫_0^τ S(t) dt with τ the time attribute's public upper bound (declared bound or last bin
    edge); curves are held at their last value beyond the last observed time.

    Returns
    -------
    metrics : list of Metric
        ``utility.survival.km_max_gap`` and ``utility.survival.rmst_diff`` (synthetic − real, in the
        time unit; relative difference in details). Empty when ``data.survival`` is not set.
    figures : list of Figure
        ``utility.survival.km`` (step lines on ``n_points`` grid points over [0, τ]).

    Examples
    --------
    >>> import synthhealth as sh
    >>> from synthhealth.report.data import ReportData
    >>> t = sh.datasets.load_flchain().head(300)
    >>> d = ReportData.from_tables(sh.load_schema("flchain"), t, t, t)
    >>> survival_curves(d)[0][0].value
    0.0
    """
    _check_data(data, "survival_curves")
    n_points = check_positive_int(n_points, "n_points", "survival_curves")
    min_at_risk = check_positive_int(min_at_risk, "min_at_risk", "survival_curves")
    if data.survival is None:
        return [], []
    tname, ename = data.survival
    tau = numeric_range(_attr(data, tname))[1]
    unit = _attr(data, tname).unit or ""
    curves = {}
    for which in ("holdout", "synthetic"):
        tab = data.table(which)
        t = tab[tname].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        ev = tab[ename]
        ok = ~np.isnan(t) & ~ev.isna().to_numpy(dtype=bool)
        if _attr(data, ename).type == "boolean":
            e = ev.fillna(False).to_numpy(dtype=bool)
        else:  # a 0/1 count or numeric event indicator
            e = ev.astype("Float64").fillna(0).to_numpy(dtype=float) > 0
        if not ok.any():
            return [Metric("utility.survival.km_max_gap", "Kaplan–Meier maximum gap", None, "minimize", (0.0, 1.0),
                           0.0, real_data=True, details={"reason": f"no complete ({tname}, {ename}) row in {which}"})], []
        curves[which] = (*kaplan_meier(t[ok], e[ok]), t[ok][e[ok]], np.sort(t[ok]))
    (tr, sr, er, ar), (ts, ss, es, as_) = curves["holdout"], curves["synthetic"]
    grid_ev = np.union1d(er, es)
    # compare only where both curves still rest on at least `min_at_risk` patients (unstable tails excluded)
    at_risk_r = len(ar) - np.searchsorted(ar, grid_ev, side="left")
    at_risk_s = len(as_) - np.searchsorted(as_, grid_ev, side="left")
    grid_ev = grid_ev[(at_risk_r >= min_at_risk) & (at_risk_s >= min_at_risk)]
    if len(grid_ev):
        gaps = np.abs(_step_at(tr, sr, grid_ev) - _step_at(ts, ss, grid_ev))
        g = int(np.argmax(gaps))
        gap, gap_time, gap_reason = float(gaps[g]), float(grid_ev[g]), None
    else:
        gap, gap_time = None, None
        gap_reason = f"no event time with at least {min_at_risk} patients at risk in both tables"
    rm_r, rm_s = _rmst(tr, sr, tau), _rmst(ts, ss, tau)
    diff = rm_s - rm_r
    u = f" {unit}" if unit else ""
    # the gap is judged where both curves rest on enough patients; say so when the synthetic curve goes on
    # (e.g. drops to 0) past the real follow-up, where nothing was compared
    follow_up = float(ar[-1])
    beyond = float(np.mean(as_ > follow_up)) if len(as_) else 0.0
    window_warning = (f"{beyond:.0%} of synthetic patients have a {tname} beyond the real follow-up ({follow_up:g}{u}), "
                      "where the curves are not compared" if beyond >= 0.05 else None)
    metrics = [
        Metric("utility.survival.km_max_gap", "Kaplan–Meier maximum gap", gap, "minimize", (0.0, 1.0), 0.0,
               description=f"Largest difference, at any time, between the share of real and of synthetic patients "
                           f"still free of '{ename}' (e.g. 0.05 = 5 percentage points).",
               formula="max_t |S_real(t) − S_syn(t)| over the union of event times with ≥ min_at_risk at risk in "
                       "both (Kaplan–Meier)", real_data=True,
               details={"time": tname, "event": ename, "at_time": gap_time, "min_at_risk": min_at_risk,
                        "evaluated_up_to": float(grid_ev[-1]) if len(grid_ev) else None,
                        "real_follow_up": follow_up, "synthetic_beyond_follow_up": beyond,
                        **({"warning": window_warning} if window_warning else {}),
                        **({"reason": gap_reason} if gap_reason else {})}),
        Metric("utility.survival.rmst_diff", f"Difference in restricted mean survival time (to {tau:g}{u})", diff,
               "target", (-tau, tau), 0.0, unit=unit,
               description=f"Average event-free time over the first {tau:g}{u} in synthetic minus real data. "
                           "0 = the same expected survival; negative = synthetic patients die sooner.",
               formula="∫_0^τ S_syn(t) dt − ∫_0^τ S_real(t) dt, τ = public upper bound of the time attribute",
               real_data=True,
               details={"tau": tau, "rmst_real": rm_r, "rmst_synthetic": rm_s,
                        "relative_difference": diff / rm_r if rm_r > 0 else None}),
    ]
    grid = np.linspace(0.0, tau, n_points)
    risk_times = np.linspace(0.0, tau, 6)
    fig = Figure("utility.survival.km", f"Kaplan–Meier survival ({ename})", "lines",
                 {"series": {_REAL: {"x": grid.tolist(), "y": _step_at(tr, sr, grid).tolist()},
                             _SYN: {"x": grid.tolist(), "y": _step_at(ts, ss, grid).tolist()}},
                  "xlabel": f"{tname}{f' ({unit})' if unit else ''}", "ylabel": "survival probability", "step": True,
                  **({"window": [0.0, float(grid_ev[-1])],
                      "window_label": f"compared here (≥ {min_at_risk} at risk in both)"} if len(grid_ev) else {}),
                  "marks": [{"x": follow_up, "label": "end of the real follow-up"}],
                  "at_risk": {"times": risk_times.tolist(),
                              "series": {_REAL: (len(ar) - np.searchsorted(ar, risk_times, side="left")).tolist(),
                                         _SYN: (len(as_) - np.searchsorted(as_, risk_times, side="left")).tolist()}}},
                 caption="Share of patients without the event over time, real (holdout) vs synthetic. The shaded "
                         "window is where the curves are compared (both still have enough patients at risk); the "
                         "table gives the numbers at risk.", real_data=True)
    return metrics, [fig]


# ============================================================================ prevalence
def wilson_interval(successes: int, n: int, z: float = _Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion.

    Examples
    --------
    >>> [round(v, 4) for v in wilson_interval(10, 100)]
    [0.0552, 0.1744]
    """
    if n <= 0 or not 0 <= successes <= n:
        raise InvalidParameterError(
            f"The 'successes' and 'n' parameters of wilson_interval must satisfy 0 <= successes <= n, n > 0. "
            f"Got successes={successes!r}, n={n!r} instead.")
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z / den * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends (no rounding above 0 / below 1)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def prevalence(data: ReportData) -> tuple[list[Metric], list[Figure]]:
    """Prevalence of every boolean attribute (the outcome included) against the real 95% Wilson interval.

    Prevalence = share of True among non-missing values. The metric is the share of boolean
    attributes whose synthetic prevalence lies inside the real (holdout) Wilson 95% interval.

    Returns
    -------
    metrics : list of Metric
        ``utility.prevalence.within_ci`` and ``utility.prevalence.max_abs_diff``. Empty without booleans.
    figures : list of Figure
        ``utility.prevalence.bars`` (real vs synthetic, largest differences first, at most 40).

    Examples
    --------
    >>> import synthhealth as sh
    >>> from synthhealth.report.data import ReportData
    >>> t = sh.datasets.load_flchain().head(300)
    >>> d = ReportData.from_tables(sh.load_schema("flchain"), t, t, t)
    >>> prevalence(d)[0][0].value
    1.0
    """
    _check_data(data, "prevalence")
    names = [a.name for a in data.schema.attributes if a.type == "boolean"]
    rows = []
    for name in names:
        y_r, o_r = _boolean_target(data, "holdout", name)
        y_s, o_s = _boolean_target(data, "synthetic", name)
        if not o_r.any():
            continue
        x, n = int(y_r[o_r].sum()), int(o_r.sum())
        lo, hi = wilson_interval(x, n)
        p_s = float(y_s[o_s].mean()) if o_s.any() else float("nan")
        rows.append({"attribute": name, "real": x / n, "real_ci": [lo, hi], "synthetic": p_s, "n_real": n,
                     "n_synthetic": int(o_s.sum()), "inside": bool(lo <= p_s <= hi),
                     "outcome": name == data.outcome})
    if not rows:
        return [], []
    share = float(np.mean([r["inside"] for r in rows]))
    diffs = np.array([abs(r["synthetic"] - r["real"]) if math.isfinite(r["synthetic"]) else 1.0 for r in rows])
    w = int(np.argmax(diffs))
    metrics = [
        Metric("utility.prevalence.within_ci", "Prevalences within the real 95% interval", share, "maximize",
               (0.0, 1.0), 1.0,
               description="Share of yes/no attributes (conditions, medications, the outcome) whose synthetic "
                           "prevalence falls inside the 95% confidence interval of the real prevalence. With large "
                           "tables the interval is narrow, so small differences already count as outside.",
               formula="mean_j 1[p_syn,j ∈ Wilson95(p_real,j)]", real_data=True,
               details={"per_attribute": rows}),
        Metric("utility.prevalence.max_abs_diff", "Largest prevalence difference", float(diffs[w]), "minimize",
               (0.0, 1.0), 0.0,
               description=f"Largest difference in prevalence, for '{rows[w]['attribute']}' "
                           "(in proportion points, e.g. 0.02 = 2 percentage points).",
               formula="max_j |p_syn,j − p_real,j|", real_data=True, details={"attribute": rows[w]["attribute"]}),
    ]
    order = np.argsort(-diffs, kind="stable")[:_MAX_BARS]
    fig = Figure("utility.prevalence.bars", "Prevalence of yes/no attributes", "bars",
                 {"categories": [rows[i]["attribute"] for i in order],
                  "series": {_REAL: [rows[i]["real"] for i in order],
                             _SYN: [rows[i]["synthetic"] for i in order]},
                  "errors": {_REAL: [rows[i]["real_ci"] for i in order]}},
                 caption="Share of True among recorded values, largest differences first; whiskers: the real "
                         "prevalence's 95% Wilson interval.", real_data=True)
    return metrics, [fig]
