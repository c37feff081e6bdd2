"""Utility metrics of the report, checked on hand-computed small examples."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

import synthhealth as sh
from synthhealth.exceptions import InvalidParameterError
from synthhealth.report.data import ReportData
from synthhealth.report.model import Figure, Metric
from synthhealth.report.utility import (
    _design,
    _fit_logit,
    _ks_statistic,
    _overlap_j,
    _rank_metrics,
    _rmst,
    _single_state_auroc,
    ci_overlap,
    k_marginal_score,
    kaplan_meier,
    marginal_fidelity,
    pairwise_fidelity,
    pairwise_tvd_matrix,
    pmse,
    prevalence,
    survival_curves,
    tstr,
    wilson_interval,
)


def _schema(attrs: list[dict]) -> sh.PatientSchema:
    return sh.load_schema({"synthhealth_schema": 1, "name": "t", "version": "1", "reference_date": "2020-01-01",
                           "attributes": attrs})


SMALL = [
    {"name": "a", "type": "categorical", "categories": ["x", "y", "z"]},
    {"name": "b", "type": "boolean"},
    {"name": "n", "type": "numeric", "bounds": [0, 20], "bins": [0, 10, 20]},
]


@pytest.fixture(scope="module")
def small() -> ReportData:
    real = pd.DataFrame({"a": ["x", "x", "y", "z"], "b": [True, True, False, False], "n": [1.0, 5.0, 15.0, np.nan]})
    syn = pd.DataFrame({"a": ["x", "y", "y", "y"], "b": [True, True, True, False], "n": [2.0, 12.0, 13.0, 3.0]})
    return ReportData.from_tables(_schema(SMALL), real, real, syn)


@pytest.fixture(scope="module")
def flchain_split() -> tuple[sh.PatientSchema, pd.DataFrame, pd.DataFrame]:
    t = sh.datasets.load_flchain()
    perm = np.random.default_rng(0).permutation(len(t))
    return sh.load_schema("flchain"), t.iloc[perm[: len(t) // 2]], t.iloc[perm[len(t) // 2:]]


def _by_key(metrics: list[Metric]) -> dict[str, Metric]:
    assert all(isinstance(m, Metric) for m in metrics)
    return {m.key: m for m in metrics}


# ---------------------------------------------------------------- 1-way
def test_marginal_fidelity_hand_example(small: ReportData) -> None:
    metrics, figures = marginal_fidelity(small)
    m = _by_key(metrics)
    # a: p = (.5, .25, .25, 0), q = (.25, .75, 0, 0) -> 0.5; b: (.5, .5) vs (.25, .75) -> 0.25;
    # n (bins [0,10), [10,20], missing): (.5, .25, .25) vs (.5, .5, 0) -> 0.25
    assert m["utility.tvd1.mean"].details["per_attribute"] == {"a": 0.5, "b": 0.25, "n": 0.25}
    assert m["utility.tvd1.mean"].value == pytest.approx(1 / 3)
    assert m["utility.tvd1.max"].value == pytest.approx(0.5)
    assert m["utility.tvd1.max"].details["attribute"] == "a"
    # KS on the values 1, 5, 15 vs 2, 3, 12, 13: at 1, F_real = 1/3 and F_syn = 0; at 13, 2/3 vs 1 -> 1/3
    assert m["utility.ks.max"].value == pytest.approx(1 / 3)
    assert all(x.real_data for x in metrics) and all(isinstance(f, Figure) for f in figures)
    keys = [f.key for f in figures]
    assert keys[0] == "utility.tvd1.by_attribute" and keys[1:] == ["utility.marginal.a", "utility.marginal.b",
                                                                   "utility.marginal.n"]
    bars = figures[1].data
    assert bars["categories"] == ["x", "y", "z", "<missing>"]
    assert bars["series"]["synthetic"] == [0.25, 0.75, 0.0, 0.0]
    assert len(marginal_fidelity(small, n_figures=1)[1]) == 2


def test_ks_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=300).round(1), rng.normal(0.2, 1, size=200).round(1)  # ties included
    assert _ks_statistic(a, b) == pytest.approx(ks_2samp(a, b).statistic)


def test_identical_tables_are_perfect(flchain_split: tuple) -> None:
    schema, tr, _ = flchain_split
    d = ReportData.from_tables(schema, tr, tr, tr)
    assert _by_key(marginal_fidelity(d)[0])["utility.tvd1.max"].value == 0.0
    assert _by_key(pairwise_fidelity(d)[0])["utility.tvd2.max"].value == 0.0
    assert _by_key(k_marginal_score(d, random_state=0)[0])["utility.kmarginal3"].value == 1000.0


# ---------------------------------------------------------------- 2-way and k-way
def test_pairwise_hand_example(small: ReportData) -> None:
    metrics, figures = pairwise_fidelity(small)
    mat = pairwise_tvd_matrix(small.codes("holdout"), small.codes("synthetic"), small.sizes)
    # (a, b): real xT .5, yF .25, zF .25; synthetic xT .25, yT .5, yF .25 -> ½ (.25 + .5 + 0 + .25) = 0.5
    assert mat[0, 1] == pytest.approx(0.5) and mat[1, 0] == pytest.approx(0.5)
    # (a, n): real x0 .5, y1 .25, z-missing .25; synthetic x0 .25, y1 .5, y0 .25 -> ½ (.25 + .25 + .25 + .25)
    assert mat[0, 2] == pytest.approx(0.5)
    # (b, n): real T0 .5, F1 .25, F-missing .25; synthetic T0 .25, T1 .5, F0 .25 -> ½ (.25+.25+.25+.5+.25)
    assert mat[1, 2] == pytest.approx(0.75)
    m = _by_key(metrics)
    assert m["utility.tvd2.mean"].value == pytest.approx((0.5 + 0.5 + 0.75) / 3)
    assert m["utility.tvd2.max"].details["pair"] == ["b", "n"]
    hm = next(f for f in figures if f.key == "utility.tvd2.heatmap")
    assert hm.kind == "heatmap" and hm.data["values"][0][0] is None and hm.data["values"][1][2] == 0.75


def _random_codes(n: int, d: int, seed: int) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = tuple(int(s) for s in rng.integers(2, 13, size=d))
    real = np.column_stack([rng.integers(0, s, n) for s in sizes])
    syn = np.column_stack([np.minimum(rng.integers(0, s, n), rng.integers(0, s, n)) for s in sizes])
    return sizes, real, syn


def test_pairwise_matches_bruteforce() -> None:
    sizes, real, syn = _random_codes(5000, 12, 1)
    mat = pairwise_tvd_matrix(real, syn, sizes)
    for i, j in [(0, 1), (3, 11), (5, 6), (11, 0)]:
        pr = pd.crosstab(real[:, i], real[:, j]).reindex(index=range(sizes[i]), columns=range(sizes[j]),
                                                         fill_value=0) / len(real)
        ps = pd.crosstab(syn[:, i], syn[:, j]).reindex(index=range(sizes[i]), columns=range(sizes[j]),
                                                       fill_value=0) / len(syn)
        assert mat[i, j] == pytest.approx(0.5 * np.abs(pr.to_numpy() - ps.to_numpy()).sum())
    assert np.isnan(np.diag(mat)).all() and np.allclose(mat, mat.T, equal_nan=True)


@pytest.mark.slow
def test_pairwise_45_attributes_100k_rows_under_10s() -> None:
    sizes, real, syn = _random_codes(100_000, 45, 2)
    t0 = time.perf_counter()
    mat = pairwise_tvd_matrix(real, syn, sizes)
    assert time.perf_counter() - t0 < 10.0
    assert np.isfinite(mat[np.triu_indices(45, 1)]).all()


def test_k_marginal_score(small: ReportData) -> None:
    # k = 3 on three attributes: the single full joint. Real rows (a,b,n): xT0 ½, yF1 ¼, zFm ¼;
    # synthetic: xT0 ¼, yT1 ½, yF0 ¼ -> ½ (.25 + .25 + .25 + .5 + .25) = .75 -> score 1000 × .25
    m = _by_key(k_marginal_score(small, k=3, random_state=0)[0])
    assert m["utility.kmarginal3.tvd"].value == pytest.approx(0.75)
    assert m["utility.kmarginal3"].value == pytest.approx(250.0)
    assert m["utility.kmarginal3"].details["all_subsets"] is True
    # k = 2: all 3 pairs (fewer than n_subsets) -> the mean 2-way TVD
    m2 = _by_key(k_marginal_score(small, k=2, random_state=0)[0])
    assert m2["utility.kmarginal2.tvd"].value == pytest.approx((0.5 + 0.5 + 0.75) / 3)
    with pytest.raises(InvalidParameterError, match="'k'"):
        k_marginal_score(small, k=4)


def test_k_marginal_seeded_subsets(flchain_split: tuple) -> None:
    schema, tr, ho = flchain_split
    d = ReportData.from_tables(schema, tr, ho, tr.sample(frac=1.0, replace=True, random_state=1))
    a = k_marginal_score(d, n_subsets=20, random_state=5)[0][0]
    b = k_marginal_score(d, n_subsets=20, random_state=5)[0][0]
    c = k_marginal_score(d, n_subsets=20, random_state=6)[0][0]
    assert a.value == b.value and a.details["n_subsets"] == 20
    assert a.details["worst_subsets"] != c.details["worst_subsets"]
    assert 0 < a.value < 1000


# ---------------------------------------------------------------- logistic machinery
def test_fit_logit_matches_sklearn_and_2x2_standard_errors() -> None:
    rng = np.random.default_rng(0)
    codes = np.column_stack([rng.integers(0, 3, 2000), rng.integers(0, 4, 2000)])
    eta = -0.5 + 0.8 * (codes[:, 0] == 1) - 1.0 * (codes[:, 1] == 2)
    y = rng.random(2000) < 1 / (1 + np.exp(-eta))
    (x,), _ = _design(codes, (3, 4))
    beta, _ = _fit_logit(x, y, ridge=1.0)
    ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=1000).fit(x.toarray()[:, 1:], y)
    np.testing.assert_allclose(beta[1:], ref.coef_.ravel(), atol=1e-5)
    assert beta[0] == pytest.approx(ref.intercept_[0], abs=1e-5)
    # one binary predictor, 2x2 table a=30 (x=0,y=0), b=10 (x=0,y=1), c=15 (x=1,y=0), d=25 (x=1,y=1):
    # log OR = log(25*30 / (10*15)), SE = sqrt(1/30 + 1/10 + 1/15 + 1/25)
    c2 = np.r_[np.zeros(40, int), np.ones(40, int)][:, None]
    y2 = np.r_[np.zeros(30), np.ones(10), np.zeros(15), np.ones(25)].astype(bool)
    (x2,), _ = _design(c2, (2,))  # reference = most frequent = state 0 (tie -> first)
    b2, h2 = _fit_logit(x2, y2, ridge=0.0, hessian=True)
    assert b2[1] == pytest.approx(math.log(25 * 30 / (10 * 15)), abs=1e-8)
    assert math.sqrt(np.linalg.inv(h2)[1, 1]) == pytest.approx(math.sqrt(1 / 30 + 1 / 10 + 1 / 15 + 1 / 25),
                                                               rel=1e-6)


def test_rank_metrics_hand_and_sklearn() -> None:
    s = np.array([0.9, 0.8, 0.8, 0.1])
    y = np.array([True, False, True, False])
    auc, ap, brier = _rank_metrics(s, y, np.ones((1, 4)))
    # pairs: .9>.8, .9>.1, .8=.8 (½), .8>.1 -> 3.5 / 4
    assert auc[0] == pytest.approx(0.875)
    # thresholds .9 (P=1, R=½), .8 (P=2/3, R=1) -> ½·1 + ½·2/3
    assert ap[0] == pytest.approx(0.5 + 1 / 3)
    assert brier[0] == pytest.approx((0.01 + 0.64 + 0.04 + 0.01) / 4)
    rng = np.random.default_rng(2)
    s = rng.integers(0, 20, 500) / 20
    y = rng.random(500) < s
    w = np.bincount(rng.integers(0, 500, 500), minlength=500).astype(float)
    a, p, b = _rank_metrics(s, y, np.vstack([np.ones(500), w]))
    assert a[0] == pytest.approx(roc_auc_score(y, s)) and p[0] == pytest.approx(average_precision_score(y, s))
    assert a[1] == pytest.approx(roc_auc_score(y, s, sample_weight=w))
    assert p[1] == pytest.approx(average_precision_score(y, s, sample_weight=w))
    assert b[1] == pytest.approx(brier_score_loss(y, s, sample_weight=w))


def test_single_state_auroc_equals_row_level() -> None:
    rng = np.random.default_rng(4)
    c = rng.integers(0, 6, 2000)
    y = rng.random(2000) < np.array([0.1, 0.2, 0.2, 0.5, 0.7, 0.0])[c]
    rate = np.bincount(c, weights=y, minlength=7) / np.maximum(np.bincount(c, minlength=7), 1)
    assert _single_state_auroc(c, y, 7) == pytest.approx(roc_auc_score(y, rate[c]))
    assert math.isnan(_single_state_auroc(c, np.zeros(2000, dtype=bool), 7))


# ---------------------------------------------------------------- pMSE
def _cat_schema(d: int, k: int) -> sh.PatientSchema:
    return _schema([{"name": f"c{j}", "type": "categorical", "categories": [f"s{i}" for i in range(k)],
                     "missing": False} for j in range(d)])


def test_pmse_hand_example() -> None:
    schema = _cat_schema(1, 2)
    real = pd.DataFrame({"c0": ["s0"] * 30 + ["s1"] * 10})
    syn = pd.DataFrame({"c0": ["s0"] * 20 + ["s1"] * 20})
    m = _by_key(pmse(ReportData.from_tables(schema, real, real, syn), random_state=0)[0])
    # saturated model: p̂ = 20/50 on s0 and 20/30 on s1, c = ½ -> (50·0.1² + 30·(1/6)²) / 80
    expected = (50 * 0.01 + 30 / 36) / 80
    assert m["utility.pmse"].value == pytest.approx(expected, rel=1e-4)
    null = 1 * 0.5 * 0.5 / 80  # k c (1 − c) / N
    assert m["utility.pmse"].reference == pytest.approx(null)
    assert m["utility.pmse_ratio"].value == pytest.approx(expected / null, rel=1e-4)
    assert m["utility.pmse"].details["n_parameters"] == 1
    assert m["utility.pmse"].details["null_snoke"] == pytest.approx(1 * 0.5 ** 2 * 0.5 / 80)  # k (1 − c)² c / N


def test_pmse_identical_null_and_separable() -> None:
    schema = _cat_schema(5, 4)
    rng = np.random.default_rng(0)
    p = np.array([0.4, 0.3, 0.2, 0.1])

    def draw(n: int) -> pd.DataFrame:
        return pd.DataFrame({f"c{j}": [f"s{i}" for i in rng.choice(4, size=n, p=p)] for j in range(5)})

    a = draw(3000)
    same = _by_key(pmse(ReportData.from_tables(schema, a, a, a), random_state=0)[0])
    assert same["utility.pmse"].value == pytest.approx(0.0, abs=1e-12)  # identical sets: p̂ = c everywhere
    # independent samples of one population: the ratio is chi-square(15)/15 (sd ≈ 0.37); mean of 8 ≈ 1 ± 0.13
    ratios = [_by_key(pmse(ReportData.from_tables(schema, a, draw(3000), draw(3000)), random_state=s)[0])
              ["utility.pmse_ratio"].value for s in range(8)]
    assert 0.65 < float(np.mean(ratios)) < 1.35
    # Snoke's null: synthetic drawn from a model fitted to the compared real rows (here: a bootstrap of them)
    snoke = []
    for s in range(8):
        real = draw(3000)
        boot = real.sample(len(real), replace=True, random_state=s)
        snoke.append(_by_key(pmse(ReportData.from_tables(schema, real, real, boot), random_state=s)[0])
                     ["utility.pmse"].details["ratio_snoke"])
    assert 0.65 < float(np.mean(snoke)) < 1.35
    sep = draw(3000)
    sep["c0"] = "s3"
    real = a.assign(c0="s0")
    m = _by_key(pmse(ReportData.from_tables(schema, real, real, sep), random_state=0)[0])
    assert m["utility.pmse"].value > 0.24 and m["utility.pmse_ratio"].value > 100


def test_pmse_subsamples(small: ReportData) -> None:
    m = _by_key(pmse(small, random_state=0, max_rows=3)[0])["utility.pmse"]
    assert m.details["subsampled"] is True and m.details["n_real"] == 3 and m.details["n_synthetic"] == 3
    assert "warning" in m.details  # several parameters for 6 rows


# ---------------------------------------------------------------- TSTR
def test_tstr_copy_of_train_equals_trtr(flchain_split: tuple) -> None:
    schema, tr, ho = flchain_split
    d = ReportData.from_tables(schema, tr, ho, tr)
    metrics, figures = tstr(d, random_state=0, n_boot=30)
    m = _by_key(metrics)
    for key in ("utility.tstr.auroc", "utility.tstr.auprc", "utility.tstr.brier", "utility.tstr.hgb.auroc"):
        assert m[key].value == pytest.approx(m[key].reference, abs=1e-9)
        assert m[key].ci[0] <= m[key].value <= m[key].ci[1]
    assert 0.7 < m["utility.tstr.auroc"].value < 0.95
    excl = m["utility.tstr.auroc"].details["excluded"]
    assert set(excl) == {"death", "futime", "chapter"}  # chapter is missing exactly when alive: a leak
    assert {f.key for f in figures} == {"utility.tstr.summary", "utility.tstr.roc"}
    assert all(len(s["x"]) == 101 for s in figures[1].data["series"].values())


def test_tstr_independent_columns_is_chance(flchain_split: tuple) -> None:
    schema, tr, ho = flchain_split
    rng = np.random.default_rng(0)
    # the attributes only: the patient id column is not data (and would shift the permutations)
    shuffled = pd.DataFrame({c: tr[c].to_numpy()[rng.permutation(len(tr))] for c in tr.columns if c != "id"})
    m = _by_key(tstr(ReportData.from_tables(schema, tr, ho, shuffled), random_state=0, n_boot=0)[0])
    assert abs(m["utility.tstr.auroc"].value - 0.5) < 0.08
    assert abs(m["utility.tstr.hgb.auroc"].value - 0.5) < 0.08
    assert m["utility.tstr.auroc"].reference > 0.75 and m["utility.tstr.auroc"].ci is None


def test_tstr_single_class_and_no_outcome(flchain_split: tuple, small: ReportData) -> None:
    schema, tr, ho = flchain_split
    alive = tr.assign(death=False)
    metrics, figures = tstr(ReportData.from_tables(schema, tr, ho, alive), random_state=0)
    assert len(metrics) == 6 and figures == []
    assert all(m.value is None and "single class" in m.details["reason"] for m in metrics)
    assert tstr(small) == ([], [])
    with pytest.raises(InvalidParameterError, match="exclude"):
        tstr(ReportData.from_tables(schema, tr, ho, tr), exclude=["nope"])


# ---------------------------------------------------------------- CI overlap
def test_overlap_formula() -> None:
    assert _overlap_j(0, 2, 1, 4) == pytest.approx((0.5 * (1 / 2 + 1 / 3), 0.5 * (1 / 2 + 1 / 3)))
    assert _overlap_j(0, 4, 1, 2) == pytest.approx((0.625, 0.625))  # nested: ½ (1/4 + 1/1)
    assert _overlap_j(0, 1, 0, 1) == pytest.approx((1.0, 1.0))
    assert _overlap_j(0, 1, 2, 3) == pytest.approx((0.0, -1.0))  # disjoint: raw ½ (−1/1 − 1/1), clipped to 0


def test_ci_overlap_identical_and_broken(flchain_split: tuple) -> None:
    schema, tr, ho = flchain_split
    same = _by_key(ci_overlap(ReportData.from_tables(schema, tr, ho, ho))[0])["utility.ci_overlap"]
    assert same.value == pytest.approx(1.0)
    assert "chapter" in same.details["excluded_leaks"] and "chapter" not in same.details["attributes"]
    assert same.details["attributes"][0] == "age" and len(same.details["attributes"]) == 4
    rng = np.random.default_rng(0)
    broken = ho.assign(death=ho["death"].to_numpy()[rng.permutation(len(ho))])  # outcome unrelated to predictors
    m = _by_key(ci_overlap(ReportData.from_tables(schema, tr, ho, broken))[0])["utility.ci_overlap"]
    assert m.value < 0.5
    rows = m.details["coefficients"]
    age = [r for r in rows if r["coefficient"].startswith("age=")]
    assert age and all(r["j"] == 0.0 or r["j_raw"] == pytest.approx(r["j"]) for r in rows)
    # recompute one J from the reported intervals
    r = rows[0]
    assert r["j"] == pytest.approx(_overlap_j(r["real"][1], r["real"][2], r["synthetic"][1], r["synthetic"][2])[0])


# ---------------------------------------------------------------- survival
def test_kaplan_meier_hand_and_sksurv() -> None:
    t, s = kaplan_meier([1, 2, 2, 3, 4, 5], [True, True, False, True, False, True])
    np.testing.assert_allclose(t, [1, 2, 3, 4, 5])
    np.testing.assert_allclose(s, [5 / 6, 2 / 3, 4 / 9, 4 / 9, 0.0])
    sksurv = pytest.importorskip("sksurv.nonparametric")
    rng = np.random.default_rng(0)
    time_ = rng.integers(1, 50, 400).astype(float)
    event = rng.random(400) < 0.6
    ours = kaplan_meier(time_, event)
    ref = sksurv.kaplan_meier_estimator(event, time_)
    np.testing.assert_allclose(ours[0], ref[0])
    np.testing.assert_allclose(ours[1], ref[1])
    # RMST of S = 1 on [0,1), ½ on [1,2), 0 after, up to 3: 1 + ½
    assert _rmst(np.array([1.0, 2.0]), np.array([0.5, 0.0]), 3.0) == pytest.approx(1.5)


def test_survival_curves_hand_example() -> None:
    schema = _schema([{"name": "t", "type": "numeric", "bounds": [0, 10], "bins": [0, 5, 10], "role": "time",
                       "missing": False},
                      {"name": "e", "type": "boolean", "role": "event", "missing": False}])
    real = pd.DataFrame({"t": [1.0, 2, 3, 4], "e": [True] * 4})
    syn = pd.DataFrame({"t": [2.0, 4, 6, 8], "e": [True] * 4})
    d = ReportData.from_tables(schema, real, real, syn)
    metrics, figures = survival_curves(d, min_at_risk=1)
    m = _by_key(metrics)
    # at t = 3: S_real = ¼, S_syn = ¾
    assert m["utility.survival.km_max_gap"].value == pytest.approx(0.5)
    assert m["utility.survival.km_max_gap"].details["at_time"] == 3.0
    # RMST up to the public bound 10 = mean time when everyone has the event: 2.5 and 5
    assert m["utility.survival.rmst_diff"].value == pytest.approx(2.5)
    assert m["utility.survival.rmst_diff"].details["rmst_real"] == pytest.approx(2.5)
    fig = figures[0]
    assert fig.kind == "lines" and fig.data["step"] is True and len(fig.data["series"]["synthetic"]["x"]) == 200
    # the unstable tail is not compared: with min_at_risk = 3 only t = 1 and 2 have 3+ at risk in both tables
    assert _by_key(survival_curves(d, min_at_risk=3)[0])["utility.survival.km_max_gap"].value == pytest.approx(0.25)
    none = _by_key(survival_curves(d)[0])["utility.survival.km_max_gap"]  # default 10 at risk: nothing to compare
    assert none.value is None and "at risk" in none.details["reason"]


def test_survival_absent_without_pair(small: ReportData) -> None:
    assert survival_curves(small) == ([], [])


# ---------------------------------------------------------------- prevalence
def test_wilson_known_values() -> None:
    lo, hi = wilson_interval(10, 100)
    assert lo == pytest.approx(0.05523, abs=1e-5) and hi == pytest.approx(0.17437, abs=1e-5)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    with pytest.raises(InvalidParameterError):
        wilson_interval(5, 3)


def test_prevalence_hand_example() -> None:
    schema = _schema([{"name": "b1", "type": "boolean"}, {"name": "b2", "type": "boolean", "role": "outcome"}])
    real = pd.DataFrame({"b1": [True] * 40 + [False] * 60, "b2": [True] * 10 + [False] * 90})
    syn = pd.DataFrame({"b1": [True] * 41 + [False] * 59, "b2": [True] * 50 + [False] * 50})
    metrics, figures = prevalence(ReportData.from_tables(schema, real, real, syn))
    m = _by_key(metrics)
    assert m["utility.prevalence.within_ci"].value == 0.5  # 0.41 in Wilson(40/100); 0.5 not in Wilson(10/100)
    rows = {r["attribute"]: r for r in m["utility.prevalence.within_ci"].details["per_attribute"]}
    assert rows["b2"]["outcome"] is True and rows["b2"]["real_ci"][1] == pytest.approx(0.17437, abs=1e-5)
    assert m["utility.prevalence.max_abs_diff"].value == pytest.approx(0.4)
    assert figures[0].data["categories"] == ["b2", "b1"]


def test_rejects_non_reportdata() -> None:
    for f in (marginal_fidelity, pairwise_fidelity, k_marginal_score, pmse, tstr, ci_overlap, survival_curves,
              prevalence):
        with pytest.raises(InvalidParameterError, match="ReportData"):
            f(pd.DataFrame())
