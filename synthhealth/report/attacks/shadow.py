"""Shadow-model membership inference against the most exposed records (TAPAS-style, Houssiau et al. 2022).

Threat model (a strong, worst-case attacker): the attacker knows the generator (it can run it),
has real data from the same population (the holdout) and targets one specific patient record.
It simulates the release many times on datasets drawn from the population, with the target
inserted or not, learns what the synthetic output looks like in each case, and then looks at the
real release. Targets are the *most isolated* training records (largest Gower distance to any
other training record): outliers are the records most at risk, and the average-case attacks
(DCR, density) can miss them.

Features of a synthetic dataset relative to the target (in the spirit of TAPAS's query-based
features): for every attribute and every pair of attributes, the number of synthetic rows
matching the target's (binned) value(s); the number matching on all attributes, on all but one
and on all but two; the distance from the target to its closest synthetic record and the number
of synthetic rows within L1 (Gower × attributes) radii 0, 0.5, 1 and 2. Counts are rescaled to
the shadow datasets' size and log-transformed; each target's features are standardised with
its own training runs, then one logistic regression is fitted on the training runs of all targets.

No training data is given to the generator: the shadow runs use holdout records and the target
records only, so the attack spends no privacy budget of the training data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ..._validation import check_positive_int, check_random_state
from ...exceptions import InvalidParameterError
from ...transform.table import check_table
from ..data import ReportData
from ..model import Figure, Metric
from .distance import _check_common, nearest_distances
from .stats import _downsample_roc, bootstrap_ci, roc_auc, roc_curve

__all__ = ["shadow_attack", "isolated_records"]

THREAT_MODEL = ("Attack (shadow models, TAPAS-style): a worst-case attacker who can run the generator, has real "
                "data from the same population and targets one specific, unusual training patient simulates the "
                "release many times with and without that patient and learns to tell the two apart.")
_RADII = (0.0, 0.5, 1.0, 2.0)
_MAX_CANDIDATES = 5000
_TEST_SHARE = 0.3
_C = 0.1  # strong L2 regularisation: few runs, many features
_DCR_SCALE = 0.25  # a quarter of one attribute (Gower × attributes)


def isolated_records(embedding: np.ndarray, n: int, *, random_state: Any = None,
                     max_candidates: int = _MAX_CANDIDATES) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``n`` rows farthest (L1) from any other row, and those distances.

    Candidates are at most ``max_candidates`` random rows; distances are to *all* rows.

    Examples
    --------
    >>> e = np.array([[0.0], [0.1], [0.15], [5.0], [2.0]])
    >>> idx, dist = isolated_records(e, 2, random_state=0)
    >>> idx.tolist(), dist.tolist()
    ([3, 4], [3.0, 1.85])
    """
    n = check_positive_int(n, "n", "isolated_records")
    rows = len(embedding)
    if rows < max(n, 2):
        raise InvalidParameterError(
            f"isolated_records needs at least max(n, 2) = {max(n, 2)} rows. Got {rows} instead.")
    rng = check_random_state(random_state)
    cand = rng.permutation(rows)[:max_candidates]
    iso = nearest_distances(embedding[cand], embedding, k=2)[:, 1]  # [:, 0] is the record itself
    order = np.argsort(-iso, kind="stable")[:n]
    return cand[order], iso[order]


def _features(codes: np.ndarray, emb: np.ndarray, t_codes: np.ndarray, t_emb: np.ndarray, n_scale: int) -> np.ndarray:
    """Feature vector of one synthetic dataset relative to one target (see the module docstring)."""
    n, d = codes.shape
    scale = n_scale / max(n, 1)
    match = (codes == t_codes[None, :]).astype(np.float64)
    pair = match.T @ match  # diagonal: single attributes, off-diagonal: pairs
    iu = np.triu_indices(d)
    n_match = match.sum(axis=1)
    near = np.array([(n_match >= d - k).sum() for k in (0, 1, 2)], dtype=float)
    dist = np.abs(emb - t_emb[None, :]).sum(axis=1) if n else np.zeros(0)
    within = np.array([(dist <= r + 1e-9).sum() for r in _RADII], dtype=float)
    dcr = float(dist.min()) if n else float(d)
    counts = np.concatenate([pair[iu], near, within]) * scale
    return np.concatenate([np.log1p(counts), [dcr]])


def _describe(data: ReportData, table: pd.DataFrame, who: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(table, pd.DataFrame) or len(table) == 0:
        raise InvalidParameterError(
            f"The output of 'fit_sample' ({who}) must be a non-empty DataFrame. Got "
            f"{type(table).__name__} with {len(table) if hasattr(table, '__len__') else '?'} rows instead.")
    checked = check_table(table, data.schema, ids="ignore").reset_index(drop=True)  # synthetic rows
    view = ReportData(data.schema, checked, checked, checked)
    return view.codes("synthetic"), view.embedding("synthetic")


def shadow_attack(data: ReportData, fit_sample: Callable[[pd.DataFrame, np.random.Generator], pd.DataFrame], *,
                  n_targets: int = 3, n_shadows: int = 20, random_state: Any = None, delta: float = 1e-6,
                  n_boot: int = 200) -> tuple[list[Metric], list[Figure]]:
    """TAPAS-style shadow-model attack on the most isolated training records.

    For each target (the ``n_targets`` most isolated training records) and each of ``n_shadows``
    runs (half with the target, half without, in random order): draw a reference dataset of
    ``min(|train|, |holdout| − 1)`` holdout records, replace one of its rows by the target when
    "in", run ``fit_sample(reference, rng)`` and extract features of its output relative to the
    target. A logistic regression is trained on 70 % of the runs (stratified per target and
    label) and its AUC measured on the other 30 %; it is then applied to the released synthetic
    data, where every target really is a member.

    Parameters
    ----------
    data : ReportData
    fit_sample : callable
        ``fit_sample(reference, rng) -> synthetic DataFrame``: fits the generator (with the same
        settings as the release) on ``reference`` (schema-shaped, checked) and samples a synthetic
        table, preferably of the same size. Called ``n_targets × n_shadows`` times: slow for real
        generators.
    n_targets : int, default 3
    n_shadows : int, default 20
        Runs per target (at least 4).
    random_state : None, int or numpy.random.Generator
    delta : float, default 1e-6
        Unused by the metrics here (kept for a uniform signature with the other attacks).
    n_boot : int, default 200

    Returns
    -------
    metrics : list of Metric
        ``attacks.shadow.auc`` (AUC on the held-out shadow runs, bootstrap CI, reference 0.5) and
        ``attacks.shadow.release_score`` (mean membership probability the attack gives the targets
        on the real release; per-target scores in ``details``), both ``real_data=True``.
    figures : list of Figure
        ``attacks.shadow.roc`` (ROC on the held-out shadow runs).

    Examples
    --------
    >>> import synthhealth as sh
    >>> t = sh.datasets.load_flchain().iloc[:600]
    >>> d = ReportData.from_tables(sh.load_schema("flchain"), t.iloc[:200], t.iloc[200:], t.iloc[:200])
    >>> leaky = lambda ref, rng: ref.sample(frac=1.0, random_state=rng)   # "generator" that copies its input
    >>> ms, figs = shadow_attack(d, leaky, n_targets=2, n_shadows=10, random_state=0, n_boot=20)
    >>> ms[0].key, ms[0].value > 0.9
    ('attacks.shadow.auc', True)
    """
    _check_common(data, 1, delta, "shadow_attack")
    if not callable(fit_sample):
        raise InvalidParameterError(
            f"The 'fit_sample' parameter of shadow_attack must be callable. Got {type(fit_sample).__name__} instead.")
    n_targets = check_positive_int(n_targets, "n_targets", "shadow_attack")
    n_shadows = check_positive_int(n_shadows, "n_shadows", "shadow_attack")
    if n_shadows < 4:
        raise InvalidParameterError(
            f"The 'n_shadows' parameter of shadow_attack must be an int in [4, inf). Got {n_shadows!r} instead.")
    n_tr, n_ho = len(data.train), len(data.holdout)
    if n_ho < 2 or n_tr < max(n_targets, 2):
        raise InvalidParameterError(
            f"shadow_attack needs at least 2 holdout rows and max(n_targets, 2) training rows. Got {n_ho} holdout "
            f"and {n_tr} training rows instead.")
    rng = check_random_state(random_state)
    targets, isolation = isolated_records(data.embedding("train"), n_targets, random_state=rng)
    n_ref = min(n_tr, n_ho - 1)
    t_codes, t_emb = data.codes("train")[targets], data.embedding("train")[targets]

    feats: list[np.ndarray] = []
    labels: list[int] = []
    owner: list[int] = []
    for j, ti in enumerate(targets):
        lab = np.array([1] * (n_shadows // 2) + [0] * (n_shadows - n_shadows // 2))
        for y in rng.permutation(lab):
            ref = data.holdout.iloc[np.sort(rng.choice(n_ho, n_ref, replace=False))].reset_index(drop=True)
            if y == 1:
                pos = int(rng.integers(n_ref))
                ref = pd.concat([ref.iloc[:pos], data.train.iloc[[ti]], ref.iloc[pos + 1:]], ignore_index=True)
            out = fit_sample(ref, np.random.default_rng(rng.integers(2**63)))
            codes, emb = _describe(data, out, "a shadow run")
            feats.append(_features(codes, emb, t_codes[j], t_emb[j], n_ref))
            labels.append(int(y))
            owner.append(j)
    x, yv, own = np.vstack(feats), np.array(labels), np.array(owner)

    # stratified split per target and label, then per-target standardisation on the training runs
    test = np.zeros(len(yv), dtype=bool)
    for j in range(n_targets):
        for y in (0, 1):
            idx = np.flatnonzero((own == j) & (yv == y))
            k = max(1, int(round(_TEST_SHARE * len(idx))))
            test[rng.choice(idx, k, replace=False)] = True
    mu = np.vstack([x[(own == j) & ~test].mean(axis=0) for j in range(n_targets)])
    sd = np.vstack([x[(own == j) & ~test].std(axis=0) for j in range(n_targets)])
    # Noise floor: the release's background records are a different sample of the population than the shadow
    # references (which may all be nearly the whole holdout), so a count c varies between them by about
    # sqrt(c (1 − c/n)) — log1p(c) by that / (1 + c) — and the distance by a fraction of one attribute.
    c = np.expm1(mu[:, :-1])
    floor = np.sqrt(np.clip(c * (1 - c / n_ref), 0.0, None) + 0.25) / (1 + c)
    sd = np.sqrt(sd ** 2 + np.column_stack([floor, np.full(n_targets, _DCR_SCALE)]) ** 2)

    def standardise(f: np.ndarray, j: np.ndarray) -> np.ndarray:
        return (f - mu[j]) / sd[j]

    from sklearn.linear_model import LogisticRegression

    z = standardise(x, own)
    clf = LogisticRegression(C=_C, max_iter=5000).fit(z[~test], yv[~test])
    p_test = clf.predict_proba(z[test])[:, 1]
    y_test = yv[test]
    mem, non = p_test[y_test == 1], p_test[y_test == 0]
    auc = roc_auc(mem, non)
    ci = bootstrap_ci(roc_auc, mem, non, n_boot=n_boot, random_state=rng)

    s_codes, s_emb = data.codes("synthetic"), data.embedding("synthetic")
    rel = np.vstack([_features(s_codes, s_emb, t_codes[j], t_emb[j], n_ref) for j in range(n_targets)])
    release = clf.predict_proba(standardise(rel, np.arange(n_targets)))[:, 1]

    common = {"n_targets": n_targets, "n_shadows_per_target": n_shadows, "shadow_dataset_size": n_ref,
              "n_train_runs": int((~test).sum()), "n_test_runs": int(test.sum()),
              "target_isolation": [float(v) for v in isolation], "features": int(x.shape[1])}
    metrics = [
        Metric(
            key="attacks.shadow.auc", name="Shadow-model attack on outliers: AUC", value=auc, goal="target",
            range=(0.0, 1.0), reference=0.5, ci=ci,
            description=THREAT_MODEL + " How well the attacker tells 'this patient was in the data' from 'was not' "
            "on simulated releases it did not train on: 0.5 is guessing, 1.0 means the most unusual patients are "
            "exposed whenever they are in the data.",
            formula="AUC of a logistic regression on query features (matching counts on attribute pairs, distance "
            "to the closest synthetic record, counts within Gower radii) over held-out shadow runs; CI: bootstrap",
            real_data=True, details={**common, "release_scores": [float(v) for v in release]}),
        Metric(
            key="attacks.shadow.release_score", name="Shadow-model attack on the real release", value=float(
                release.mean()), goal="minimize", range=(0.0, 1.0), reference=0.5,
            description=THREAT_MODEL + " The attack's probability that each target patient was in the training data, "
            "judged from the actual synthetic data (they all were). About 0.5 or below: the release does not give "
            "them away; near 1: it does (read together with the AUC, which says how reliable the attack is).",
            formula="mean over targets of P(member | features of the released synthetic data)", real_data=True,
            details={**common, "per_target": [float(v) for v in release]}),
    ]
    fpr, tpr, _ = roc_curve(mem, non)
    xs, ys = _downsample_roc(fpr, tpr)
    fig = Figure(
        key="attacks.shadow.roc", title="Shadow-model attack on outliers: ROC curve (held-out shadow runs)",
        kind="lines", data={"series": {"attack": {"x": xs, "y": ys}}, "xlabel": "false-positive rate",
                            "ylabel": "true-positive rate", "diagonal": True, "logx": False, "step": False},
        caption=f"{int(test.sum())} held-out simulated releases ({n_targets} target patients). The diagonal is "
        "guessing.", real_data=True)
    return metrics, [fig]
