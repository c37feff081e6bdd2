"""Singling-out, linkability and inference risks (synthhealth.report.attacks.anonymeter)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import synthhealth as sh
from synthhealth.report.attacks.anonymeter import (
    anonymeter_risks,
    default_link_split,
    inference_risk,
    linkability_risk,
    residual_risk,
    singling_out_risk,
    wilson_rate,
)
from synthhealth.report.data import ReportData

Z = 1.959963984540054  # standard normal 97.5% quantile


def wilson_centre(k: float, n: int) -> float:
    return (k + Z * Z / 2) / (n + Z * Z)


# ------------------------------------------------------------------ flchain: leak and no leak
@pytest.fixture(scope="module")
def flchain_split() -> tuple[sh.PatientSchema, pd.DataFrame, pd.DataFrame]:
    schema = sh.load_schema("flchain")
    t = sh.datasets.load_flchain()
    p = np.random.default_rng(0).permutation(len(t))
    return schema, t.iloc[p[:3937]].reset_index(drop=True), t.iloc[p[3937:]].reset_index(drop=True)


@pytest.fixture(scope="module")
def copied(flchain_split) -> ReportData:
    schema, train, holdout = flchain_split
    return ReportData.from_tables(schema, train, holdout, train.copy())


@pytest.fixture(scope="module")
def independent(flchain_split) -> ReportData:
    schema, train, holdout = flchain_split
    rng = np.random.default_rng(5)
    syn = pd.DataFrame({c: holdout[c].to_numpy()[rng.permutation(len(holdout))] for c in holdout.columns})
    return ReportData.from_tables(schema, train, holdout, syn)


def risk_of(metrics):
    (m,) = [x for x in metrics if x.key.endswith(".risk")]
    return m


def test_copy_of_train_has_high_risks(copied: ReportData) -> None:
    so = risk_of(singling_out_risk(copied, mode="multivariate", random_state=0))
    assert so.value > 0.9 and so.ci[0] > 0.5
    assert so.details["main"]["n_success"] == so.details["main"]["n_attacks"] == 500  # copies single out
    link = risk_of(linkability_risk(copied, random_state=0))
    assert link.value > 0.8 and link.ci[0] > 0.5
    assert link.details["better_than_baseline"] is True
    inf = risk_of(inference_risk(copied, secret="flc_grp", random_state=0))
    assert inf.value > 0.9 and inf.ci[0] > 0.5
    # the default secret is flchain's outcome, 'death', which 'chapter' (missing when alive) nearly gives away:
    # the control attack also succeeds, and only the few cases it misses measure the leak
    dead = risk_of(inference_risk(copied, random_state=0))
    assert dead.details["secret"] == "death"
    assert dead.details["control"]["rate"] > 0.9
    assert dead.value > 0.3
    # ... but the judged interval (Wilson 97.5 % bounds of both rates, monotone) cannot exclude 0 with a control
    # rate this close to 1: the check says it cannot be judged (issue 15.3)
    assert 0.0 <= dead.ci[0] <= dead.value <= dead.ci[1]


def test_independent_columns_have_no_risk(independent: ReportData) -> None:
    for metrics in (singling_out_risk(independent, mode="multivariate", random_state=0),
                    linkability_risk(independent, random_state=0),
                    inference_risk(independent, random_state=0),
                    inference_risk(independent, secret="flc_grp", random_state=0)):
        m = risk_of(metrics)
        assert m.ci is not None and m.ci[0] == 0.0, (m.key, m.ci)
        assert m.value < 0.1, (m.key, m.value)
        assert abs(m.details["residual_unclipped"]) < 0.15, (m.key, m.details["residual_unclipped"])
    link = risk_of(linkability_risk(independent, random_state=0))
    if not link.details["better_than_baseline"]:
        assert "baseline" in link.details["warning"]


# ------------------------------------------------------------------ a table computed by hand
@pytest.fixture(scope="module")
def tiny_schema() -> sh.PatientSchema:
    return sh.load_schema({
        "synthhealth_schema": 1, "name": "tiny", "version": "1", "reference_date": "2020-01-01",
        "attributes": [
            {"name": "color", "type": "categorical", "categories": ["r", "g", "b"], "missing": False},
            {"name": "level", "type": "numeric", "bounds": [0, 10], "bins": [0, 5, 10], "missing": False},
            {"name": "flag", "type": "boolean", "missing": False},
        ]})


def table(rows: list[tuple[str, float, bool]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["color", "level", "flag"])


def test_univariate_singling_out_by_hand(tiny_schema: sh.PatientSchema) -> None:
    # synthetic: unique states are color r, color b and flag true (levels 1, 1, 7, 7 fill both bins twice)
    syn = table([("r", 1, True), ("g", 1, False), ("g", 7, False), ("b", 7, False)])
    train = table([("r", 2, True), ("r", 3, False), ("b", 8, False), ("g", 9, False)])   # r:2, b:1, T:1
    hold = table([("r", 2, False), ("g", 3, False), ("g", 8, False), ("g", 9, False)])   # r:1, b:0, T:0
    d = ReportData.from_tables(tiny_schema, train, hold, syn)
    risk, rate = singling_out_risk(d, mode="univariate", random_state=1)
    assert risk.key == "attacks.singling_out.univariate.risk"
    assert rate.key == "attacks.singling_out.univariate.success_rate"
    assert risk.details["n_found"] == 3
    assert risk.details["main"]["n_success"] == 2 and risk.details["main"]["n_attacks"] == 3
    assert risk.details["control"]["n_success"] == 1
    a, c = wilson_centre(2, 3), wilson_centre(1, 3)
    assert rate.value == pytest.approx(a)
    assert rate.reference == pytest.approx(c)
    assert risk.value == pytest.approx((a - c) / (1 - c))
    assert risk.value == pytest.approx(1 / (2 + Z * Z / 2))   # (1 / (3 + z^2)) / ((2 + z^2 / 2) / (3 + z^2))
    assert risk.goal == "minimize" and risk.reference == 0.0 and risk.real_data


def test_singling_out_control_of_another_size_by_hand(tiny_schema: sh.PatientSchema) -> None:
    syn = table([("r", 1, True), ("g", 1, False), ("g", 7, False), ("b", 7, False)])
    train = table([("r", 2, True), ("r", 3, False), ("b", 8, False), ("g", 9, False)])
    # 8 control records: r matched once, b twice, flag true once
    hold = table([("r", 1, False), ("g", 1, True), ("g", 2, False), ("g", 3, False),
                  ("b", 6, False), ("b", 7, False), ("g", 8, False), ("g", 9, False)])
    d = ReportData.from_tables(tiny_schema, train, hold, syn)
    risk = singling_out_risk(d, mode="univariate", random_state=1)[0]
    # expected singling outs among 4 random control records: P(1 of 1 drawn) = 4/8, P(1 of 2) = 2*C(6,3)/C(8,4)
    expected = 0.5 + 2 * math.comb(6, 3) / math.comb(8, 4) + 0.5
    assert risk.details["size_correction"]["n_control_raw"] == 2
    assert risk.details["control"]["n_success"] == pytest.approx(expected)
    a, c = wilson_centre(2, 3), wilson_centre(expected, 3)
    assert risk.value == pytest.approx((a - c) / (1 - c))


def test_no_singling_out_predicate_means_no_risk(tiny_schema: sh.PatientSchema) -> None:
    syn = table([("r", 1, True), ("r", 2, True), ("g", 7, False), ("g", 8, False)])  # every state twice
    train = table([("r", 2, True), ("b", 3, False), ("b", 8, False), ("g", 9, False)])
    d = ReportData.from_tables(tiny_schema, train, train, syn)
    risk, rate = singling_out_risk(d, mode="univariate", random_state=0)
    assert risk.value == 0.0 and risk.details["n_found"] == 0 and "reason" in risk.details
    assert rate.value is None


def test_linkability_by_hand(tiny_schema: sh.PatientSchema) -> None:
    syn = table([("r", 1, True), ("g", 6, False), ("b", 9, False)])
    # part A = color, part B = level + flag; a link when both parts' nearest synthetic record is the same
    train = table([("r", 1, True), ("g", 9, False), ("b", 6, False), ("r", 2, True)])     # links: 1st, 4th
    hold = table([("g", 6, False), ("r", 9, False), ("g", 1, True), ("b", 6, False)])     # links: 1st
    d = ReportData.from_tables(tiny_schema, train, hold, syn)
    risk, rate = linkability_risk(d, aux_cols=(["color"], ["level", "flag"]), n_attacks=10, random_state=0)
    assert risk.details["main"]["n_success"] == 2 and risk.details["main"]["n_attacks"] == 4
    assert risk.details["control"]["n_success"] == 1 and risk.details["control"]["n_attacks"] == 4
    a, c = wilson_centre(2, 4), wilson_centre(1, 4)
    assert risk.value == pytest.approx((a - c) / (1 - c))
    assert risk.details["aux_cols"] == (["color"], ["level", "flag"])
    # with 3 neighbours every pair of neighbour sets meets
    risk3 = linkability_risk(d, aux_cols=(["color"], ["level", "flag"]), n_neighbors=3, random_state=0)[0]
    assert risk3.details["main"]["n_success"] == 4 and risk3.details["baseline"]["n_success"] == 4


def test_inference_by_hand(tiny_schema: sh.PatientSchema) -> None:
    syn = table([("r", 1, True), ("g", 6, False), ("b", 9, False)])
    train = table([("r", 2, True), ("g", 5, False), ("b", 9, True), ("r", 8, False)])   # right: 1st, 2nd
    hold = table([("g", 7, False), ("r", 1, False), ("b", 2, True), ("g", 6, True)])    # right: 1st
    d = ReportData.from_tables(tiny_schema, train, hold, syn)
    risk = inference_risk(d, secret="flag", n_attacks=10, random_state=0)[0]
    assert risk.details["main"]["n_success"] == 2 and risk.details["control"]["n_success"] == 1
    a, c = wilson_centre(2, 4), wilson_centre(1, 4)
    assert risk.value == pytest.approx((a - c) / (1 - c))
    assert risk.details["aux_cols"] == ["color", "level"]
    # a number is guessed right when it falls in the same public bin: level 2 vs synthetic 1 (bin [0, 5))
    num = inference_risk(d, secret="level", aux_cols=["color"], n_attacks=10, random_state=0)[0]
    # train: r -> syn level 1, bin [0, 5) of 2: right; g -> 6, bin [5, 10] of 5: right; b -> 9: right; r -> 1 vs 8: wrong
    assert num.details["main"]["n_success"] == 3


# ------------------------------------------------------------------ statistics
def test_wilson_interval_known_values() -> None:
    c, h = wilson_rate(0, 10)
    assert c - h == pytest.approx(0.0, abs=1e-12)
    assert c + h == pytest.approx(0.27753, abs=1e-5)   # Wilson 95% interval of 0/10: [0, 0.2775]
    c, h = wilson_rate(5, 10)
    assert (c - h, c + h) == pytest.approx((0.23659, 0.76341), abs=1e-5)
    c, h = wilson_rate(81, 263)   # Wilson (1927) / Newcombe (1998) example: 0.2553 to 0.3662
    assert (c - h, c + h) == pytest.approx((0.2553, 0.3662), abs=1e-4)


def test_residual_risk_formula_and_propagation() -> None:
    risk, ci, raw = residual_risk((0.6, 0.05), (0.2, 0.04))
    assert raw == pytest.approx(0.5)
    err = math.sqrt((0.05 / 0.8) ** 2 + (0.04 * 0.4 / 0.64) ** 2)
    assert ci == pytest.approx((0.5 - err, 0.5 + err))
    risk, ci, raw = residual_risk((0.1, 0.05), (0.3, 0.05))   # negative excess: clipped to 0
    assert risk == 0.0 and raw < 0 and ci[0] == 0.0
    assert residual_risk((1.0, 0.0), (1.0, 0.0)) == (None, None, None)


# ------------------------------------------------------------------ the bundle, seeds and parameters
def test_anonymeter_risks_bundle_and_determinism(copied: ReportData) -> None:
    small = ReportData.from_tables(copied.schema, copied.train.head(800), copied.holdout.head(800),
                                   copied.train.head(800))
    m1, fig = anonymeter_risks(small, n_attacks=100, random_state=3)
    m2, _ = anonymeter_risks(small, n_attacks=100, random_state=3)
    m3, _ = anonymeter_risks(small, n_attacks=100, random_state=4)
    keys = [m.key for m in m1]
    assert keys == ["attacks.singling_out.univariate.risk", "attacks.singling_out.univariate.success_rate",
                    "attacks.singling_out.multivariate.risk", "attacks.singling_out.multivariate.success_rate",
                    "attacks.linkability.risk", "attacks.linkability.success_rate",
                    "attacks.inference.risk", "attacks.inference.success_rate"]
    assert [m.to_dict() for m in m1] == [m.to_dict() for m in m2]
    assert [m.to_dict() for m in m1] != [m.to_dict() for m in m3]
    assert all(m.real_data for m in m1)
    assert fig.key == "attacks.anonymeter.risks" and fig.kind == "bars" and fig.real_data
    assert len(fig.data["categories"]) == 4
    assert fig.data["series"]["risk"] == [m.value for m in m1 if m.key.endswith(".risk")]
    assert "Article 29" in m1[0].description


def test_default_link_split(copied: ReportData, core_schema: sh.PatientSchema) -> None:
    a, b = default_link_split(copied, random_state=0)
    assert {"age", "sex"} <= set(a) and not set(a) & set(b) and len(a) == 5 and len(b) == 6
    assert default_link_split(copied, random_state=0) == (a, b)


def test_bad_parameters(copied: ReportData) -> None:
    err = sh.InvalidParameterError
    with pytest.raises(err, match="'mode'"):
        singling_out_risk(copied, mode="bivariate")
    with pytest.raises(err, match="'n_attacks'"):
        singling_out_risk(copied, n_attacks=0)
    with pytest.raises(err, match="'n_cols'.*at most the number of attributes"):
        singling_out_risk(copied, mode="multivariate", n_cols=12)
    with pytest.raises(err, match="'data'"):
        linkability_risk(copied.train)
    with pytest.raises(err, match="'aux_cols'"):
        linkability_risk(copied, aux_cols=(["age"], ["nope"]))
    with pytest.raises(err, match="'aux_cols'"):
        linkability_risk(copied, aux_cols=(["age"],))
    with pytest.raises(err, match="'n_neighbors'"):
        linkability_risk(copied, n_neighbors=10**6)
    with pytest.raises(err, match="'secret'"):
        inference_risk(copied, secret="nope")
    with pytest.raises(err, match="'aux_cols'.*secret"):
        inference_risk(copied, secret="death", aux_cols=["age", "death"])
    with pytest.raises(err, match="'random_state'"):
        inference_risk(copied, random_state=-1)
    with pytest.raises(err, match="'n_success'"):
        wilson_rate(11, 10)
    with pytest.raises(err, match="'n_attacks'"):
        anonymeter_risks(copied, n_attacks=1.5)
