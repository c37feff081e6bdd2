"""Bias, coverage and model-collapse metrics of the report, checked on hand-computed small examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist

import synthhealth as sh
from synthhealth.exceptions import InvalidParameterError
from synthhealth.report.bias import (
    _generation_stats,
    _l1_cdist,
    age_bands,
    collapse,
    coverage,
    rare_categories,
    subgroup_gaps,
)
from synthhealth.report.data import ReportData
from synthhealth.report.model import Metric


def _schema(attrs: list[dict]) -> sh.PatientSchema:
    return sh.load_schema({"synthhealth_schema": 1, "name": "t", "version": "1", "reference_date": "2020-01-01",
                           "attributes": attrs})


def _by_key(metrics: list[Metric]) -> dict[str, Metric]:
    return {m.key: m for m in metrics}


# ---------------------------------------------------------------- age bands
def test_age_bands_follow_public_bins() -> None:
    t = sh.datasets.load_flchain().head(50)
    d = ReportData.from_tables(sh.load_schema("flchain"), t, t, t)
    band, labels = age_bands(d, "age")  # lower bound 50: cuts 65 and 75
    assert labels == ["<65", "65–74", "75+", "<missing>"]
    # bins [50,55) [55,60) [60,65) | [65,70) [70,75) | [75,80) ... [100,110] | missing
    assert band.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2, 3]
    core = sh.load_schema("core-patient")
    dc = ReportData.__new__(ReportData)
    dc.schema = core
    dc.__post_init__()
    band, labels = age_bands(dc, "age")  # 5-year bins from 0, cuts 18, 45, 65: the 18 cut lands on the edge 20
    assert labels == ["<20", "20–44", "45–64", "65+", "<missing>"]
    assert band[3] == 0 and band[4] == 1 and band[9] == 2 and band[13] == 3


# ---------------------------------------------------------------- subgroups
SUB = [
    {"name": "sex", "type": "categorical", "categories": ["F", "M"], "missing": False},
    {"name": "age", "type": "numeric", "bounds": [20, 100], "bins": [20, 45, 65, 100], "missing": False},
    {"name": "c", "type": "categorical", "categories": ["u", "v"], "missing": False},
    {"name": "dead", "type": "boolean", "role": "outcome", "missing": False},
]


def _rows(sex: str, age: float, c: list[str], dead: list[bool]) -> pd.DataFrame:
    return pd.DataFrame({"sex": sex, "age": age, "c": c, "dead": dead})


def test_subgroup_gaps_hand_example() -> None:
    real = pd.concat([
        _rows("F", 30, ["u"] * 40, [True] * 10 + [False] * 30),           # F, <45: 40 rows, 25% dead
        _rows("M", 70, ["u"] * 20 + ["v"] * 20, [True] * 20 + [False] * 20),  # M, 65+: 40 rows
        _rows("M", 30, ["u"] * 5, [False] * 5),                             # M, <45: 5 rows: listed, not judged
    ])
    syn = pd.concat([
        _rows("F", 30, ["u"] * 15 + ["v"] * 15, [True] * 15 + [False] * 15),  # F, <45: 30 rows, 50% dead
        _rows("M", 70, ["u"] * 25 + ["v"] * 25, [True] * 25 + [False] * 25),  # M, 65+: 50 rows, same as real
        _rows("M", 30, ["v"] * 5, [True] * 5),
    ])
    metrics, figures = subgroup_gaps(ReportData.from_tables(_schema(SUB), real, real, syn))
    m = _by_key(metrics)
    rows = {r["subgroup"]: r for r in m["bias.subgroup.worst_tvd"].details["subgroups"]}
    # F, <45: c goes from all-u to half-v (TVD .5), dead from 25% to 50% (TVD .25): mean over the 2 others
    assert rows["F, <45"]["tvd"] == pytest.approx((0.5 + 0.25) / 2)
    assert rows["M, 65+"]["tvd"] == pytest.approx(0.0)
    assert rows["M, <45"]["judged"] is False and rows["M, <45"]["tvd"] == pytest.approx(1.0)
    assert m["bias.subgroup.worst_tvd"].value == pytest.approx(0.375)
    assert m["bias.subgroup.worst_tvd"].details["worst"] == "sex × age: F, <45"
    assert "F, <45" in m["bias.subgroup.worst_tvd"].description
    # shares: F,<45 40/85 real vs 30/85 synthetic; M,65+ 40/85 vs 50/85 -> 10/85 both; the first is reported
    assert m["bias.subgroup.max_share_gap"].value == pytest.approx(10 / 85)
    assert m["bias.subgroup.max_outcome_gap"].value == pytest.approx(0.25)
    assert m["bias.subgroup.max_outcome_gap"].details["worst"] == "sex × age: F, <45"
    assert rows["F, <45"]["outcome_real"] == pytest.approx(0.25)
    assert all(x.real_data for x in metrics)
    assert [f.key for f in figures] == ["bias.subgroup.shares", "bias.subgroup.tvd"]
    assert figures[0].data["categories"] == ["sex × age: F, <45", "sex × age: M, 65+"]  # judged only


def test_subgroup_absent_in_synthetic_and_no_demographics() -> None:
    real = pd.concat([_rows("F", 30, ["u"] * 30, [False] * 30), _rows("M", 70, ["v"] * 30, [True] * 30)])
    syn = _rows("M", 70, ["v"] * 30, [True] * 30)
    m = _by_key(subgroup_gaps(ReportData.from_tables(_schema(SUB), real, real, syn))[0])
    assert m["bias.subgroup.worst_tvd"].value == 1.0  # F, <45 has 30 real rows and none synthetic
    assert m["bias.subgroup.max_share_gap"].value == pytest.approx(0.5)
    schema = _schema([{"name": "c", "type": "categorical", "categories": ["u", "v"]}])
    t = pd.DataFrame({"c": ["u", "v"] * 20})
    metrics, figures = subgroup_gaps(ReportData.from_tables(schema, t, t, t))
    assert figures == [] and all(x.value is None and "sex" in x.details["reason"] for x in metrics)


def test_subgroup_race_family() -> None:
    schema = _schema([{"name": "race", "type": "categorical", "categories": ["a", "b"], "missing": False},
                      {"name": "c", "type": "categorical", "categories": ["u", "v"], "missing": False}])
    real = pd.DataFrame({"race": ["a"] * 30 + ["b"] * 30, "c": ["u"] * 30 + ["v"] * 30})
    syn = pd.DataFrame({"race": ["a"] * 45 + ["b"] * 15, "c": ["u"] * 60})
    m = _by_key(subgroup_gaps(ReportData.from_tables(schema, real, real, syn))[0])
    assert m["bias.subgroup.max_share_gap"].value == pytest.approx(0.25)
    assert m["bias.subgroup.worst_tvd"].details["worst"] == "race: b"  # c: all v in real, all u in synthetic
    assert m["bias.subgroup.worst_tvd"].value == pytest.approx(1.0)
    assert "bias.subgroup.max_outcome_gap" not in m  # no outcome declared


# ---------------------------------------------------------------- rare categories
def test_rare_categories_hand_example() -> None:
    schema = _schema([{"name": "a", "type": "categorical", "categories": ["x", "y", "z", "w"], "missing": False},
                      {"name": "b", "type": "boolean", "missing": False},
                      {"name": "n", "type": "numeric", "bounds": [0, 10], "bins": [0, 5, 10]}])
    real = pd.DataFrame({"a": ["x"] * 150 + ["y"] * 49 + ["z"],
                         "b": [True] + [False] * 199,
                         "n": [np.nan] + [1.0] * 100 + [6.0] * 99})  # one missing: never a rare state
    syn = pd.DataFrame({"a": ["x"] * 150 + ["y"] * 50,
                        "b": [True] * 4 + [False] * 196,
                        "n": [1.0] * 100 + [6.0] * 100})
    metrics, figures = rare_categories(ReportData.from_tables(schema, real, real, syn))
    m = _by_key(metrics)
    # rare (0 < p < 1%): a=z (0.5%, lost) and b=true (0.5% -> 2%): retention ½, errors 1 and 3
    assert m["bias.rare.retention"].details["n_rare"] == 2
    assert m["bias.rare.retention"].value == pytest.approx(0.5)
    assert m["bias.rare.relative_error"].value == pytest.approx(2.0)
    assert m["bias.rare.retention"].details["lost"] == ["a=z"]
    assert figures[0].data["categories"] == ["a=z", "b=true"]
    none = _by_key(rare_categories(ReportData.from_tables(schema, real, real, syn), threshold=0.001)[0])
    assert none["bias.rare.retention"].value is None and "reason" in none["bias.rare.retention"].details
    with pytest.raises(InvalidParameterError, match="threshold"):
        rare_categories(ReportData.from_tables(schema, real, real, syn), threshold=0.0)


# ---------------------------------------------------------------- coverage
def test_l1_cdist_matches_scipy() -> None:
    t = sh.datasets.load_flchain().sample(300, random_state=0)
    d = ReportData.from_tables(sh.load_schema("flchain"), t, t, t.sample(200, random_state=1))
    a, b = d.embedding("holdout"), d.embedding("synthetic")
    np.testing.assert_allclose(_l1_cdist(a, b), cdist(a, b, "cityblock"), atol=1e-9)


def test_coverage_hand_example() -> None:
    schema = _schema([{"name": "n", "type": "numeric", "bounds": [0, 100], "bins": [0, 50, 100], "missing": False}])
    real = pd.DataFrame({"n": [0.0, 10, 20, 30, 100]})
    syn = pd.DataFrame({"n": [21.0]})
    m = _by_key(coverage(ReportData.from_tables(schema, real, real, syn), k=1, random_state=0)[0])
    # radii (k = 1): 0.1 for 0, 10, 20, 30 and 0.7 for 100; 21 is within 0.01 of 20 and 0.09 of 30 only
    assert m["bias.coverage"].value == pytest.approx(2 / 5)
    assert m["bias.density"].value == pytest.approx(2.0)
    assert m["bias.precision"].value == pytest.approx(1.0)


def test_coverage_closed_balls_on_discrete_data() -> None:
    schema = _schema([{"name": "c", "type": "categorical", "categories": ["u", "v", "w"], "missing": False}])
    real = pd.DataFrame({"c": ["u"] * 10 + ["v"] * 10})  # every record has 9 exact duplicates: radius 0
    d = ReportData.from_tables(schema, real, real, pd.DataFrame({"c": ["u"] * 20}))
    m = _by_key(coverage(d, k=5, random_state=0)[0])
    assert m["bias.coverage"].value == pytest.approx(0.5)  # the u records are covered (distance 0 ≤ radius 0)
    assert m["bias.precision"].value == 1.0
    assert m["bias.density"].value == pytest.approx(10 * 20 / (5 * 20))  # each synthetic u lies in 10 balls
    assert m["bias.coverage"].details["median_radius"] == 0.0


def test_coverage_identical_and_collapsed() -> None:
    t = sh.datasets.load_flchain().sample(600, random_state=0)
    schema = sh.load_schema("flchain")
    same = _by_key(coverage(ReportData.from_tables(schema, t, t, t), random_state=0)[0])
    assert same["bias.coverage"].value == 1.0 and same["bias.precision"].value == 1.0
    one = pd.concat([t.iloc[[0]]] * 600)
    low = _by_key(coverage(ReportData.from_tables(schema, t, t, one), random_state=0)[0])
    assert low["bias.coverage"].value < 0.05
    sub = _by_key(coverage(ReportData.from_tables(schema, t, t, t), max_rows=100, random_state=0)[0])
    assert sub["bias.coverage"].details["n_real"] == 100 and sub["bias.coverage"].details["subsampled"] is True
    with pytest.raises(InvalidParameterError, match="'k'"):
        coverage(ReportData.from_tables(schema, t, t, t), k=100, max_rows=50)


# ---------------------------------------------------------------- collapse
def test_generation_stats_hand_example() -> None:
    codes = np.array([[0, 1], [0, 1], [1, 0], [1, 0]])
    real = np.array([[0, 0], [1, 1], [0, 1], [2, 1]])
    st = _generation_stats(codes, real, (3, 2), rare=[(0, 2, 0.25)])
    assert st["distinct_share"] == 0.5
    # attribute 0: (½, ½, 0) over 3 states -> log 2 / log 3; attribute 1: (½, ½) -> 1
    assert st["entropy"] == pytest.approx((np.log(2) / np.log(3) + 1) / 2)
    assert st["rare_retention"] == 0.0
    # TVD attribute 0: (½, ¼, ¼) vs (½, ½, 0) = ¼; attribute 1: (¼, ¾) vs (½, ½) = ¼
    assert st["tvd1"] == pytest.approx(0.25)


def test_collapse_bootstrap_loses_diversity() -> None:
    t = sh.datasets.load_flchain().sample(1000, random_state=0)
    d = ReportData.from_tables(sh.load_schema("flchain"), t, t, t)

    def boot(table: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        return table.sample(len(table), replace=True, random_state=rng)

    metrics, figures = collapse(d, boot, generations=3, random_state=0)
    m = _by_key(metrics)
    dist = m["bias.collapse.distinct_share"]
    traj = dist.details["trajectory"]
    assert len(traj) == 4 and traj[0] == dist.details["generation_0"]
    assert all(b < a for a, b in zip(traj, traj[1:], strict=False))  # every bootstrap generation loses rows
    assert all(0 < v <= 1 for v in m["bias.collapse.entropy"].details["trajectory"])
    assert m["bias.collapse.tvd1"].details["generation_0"] == 0.0 and m["bias.collapse.tvd1"].value > 0
    assert figures[0].kind == "lines" and figures[0].data["series"]["distinct records / n"]["x"] == [0, 1, 2, 3]

    def same(table: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        return table

    flat = _by_key(collapse(d, same, generations=2, random_state=0)[0])
    assert flat["bias.collapse.distinct_share"].details["change"] == 0.0
    with pytest.raises(InvalidParameterError, match="fit_sample"):
        collapse(d, lambda table, rng: None, generations=1)
    with pytest.raises(InvalidParameterError, match="generations"):
        collapse(d, same, generations=0)


def test_rejects_non_reportdata() -> None:
    for f in (subgroup_gaps, rare_categories, coverage):
        with pytest.raises(InvalidParameterError, match="ReportData"):
            f(pd.DataFrame())
