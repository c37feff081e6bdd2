"""The privacy-utility sweep: cost stated up front, budget refused before data access, one row per epsilon."""

from __future__ import annotations

import math

import pandas as pd
import pytest

import synthhealth as sh
from synthhealth.privacy.accounting import cdp_epsilon


@pytest.fixture(scope="module")
def split() -> tuple[sh.PatientSchema, pd.DataFrame, pd.DataFrame]:
    t = sh.datasets.load_flchain().sample(1200, random_state=2).reset_index(drop=True)
    return sh.load_schema("flchain"), t.iloc[:800].reset_index(drop=True), t.iloc[800:].reset_index(drop=True)


def test_sweep_cost_is_zcdp_composition_or_basic() -> None:
    c = sh.sweep_cost([1.0, 0.5, 2.0], generator="aim", delta=1e-6)
    rho = sum(sh.PrivacyBudget(e, 1e-6).rho for e in (0.5, 1.0, 2.0))
    assert c.epsilon_sum == 3.5 and c.rho == pytest.approx(rho)
    assert c.epsilon == pytest.approx(cdp_epsilon(rho, 1e-6)) and c.epsilon < 3.5
    d = sh.sweep_cost([1.0, 2.0], generator="dpvae", delta=1e-6)
    assert (d.epsilon, d.delta) == (3.0, 2e-6)
    with pytest.raises(sh.InvalidParameterError, match="'epsilons'"):
        sh.sweep_cost([1.0, -1.0])
    with pytest.raises(sh.InvalidParameterError, match="'generator'"):
        sh.sweep_cost([1.0], generator="gan")


def test_sweep_rows_ledger_and_trend(split) -> None:
    schema, train, hold = split
    res = sh.sweep(train, hold, schema=schema, generator="mst", epsilons=[0.1, 10.0], random_state=0, progress=False)
    t = res.table
    assert list(t["epsilon"]) == [0.1, 10.0]
    assert list(t.columns) == ["epsilon", "spent_epsilon", "fit_s", "tvd1", "tvd2", "tstr_auroc", "trtr_auroc",
                               "dcr_auc"]
    assert t["spent_epsilon"].tolist() == pytest.approx([0.1, 10.0], rel=1e-6)
    assert t["tvd2"].iloc[1] < t["tvd2"].iloc[0]  # 100x the budget: clearly better fidelity
    total = res.ledger.total()
    assert total.rho == pytest.approx(res.cost.rho) and total.epsilon == pytest.approx(res.cost.epsilon)
    assert len(res.ledger.fits) == 2
    assert 0 < res.references["tvd2"] < t["tvd2"].iloc[0]
    fig = res.plot()
    assert len(fig.axes) == 2


def test_sweep_refuses_before_touching_data_when_the_ledger_is_short(split, tmp_path) -> None:
    schema, train, hold = split
    path = tmp_path / "ledger.json"
    led = sh.PrivacyLedger.open(path, sh.PrivacyBudget(1.0, 1e-6))
    with pytest.raises(sh.BudgetExceededError, match="No data was accessed"):
        sh.sweep(train, hold, schema=schema, epsilons=[0.5, 1.0], ledger=path, progress=False)
    assert sh.PrivacyLedger.load(path).fits == [] and led.fits == []
    res = sh.sweep(train, hold, schema=schema, epsilons=[0.25, 0.5], ledger=path, random_state=1, progress=False)
    reloaded = sh.PrivacyLedger.load(path)
    assert len(reloaded.fits) == 2 and math.isclose(reloaded.total().rho, res.cost.rho, rel_tol=1e-9)


def test_split_is_a_seeded_partition() -> None:
    t = sh.datasets.load_flchain().head(100).reset_index(drop=True)
    t["row"] = range(100)
    train, hold = sh.split(t, 0.3, random_state=4)
    assert (len(train), len(hold)) == (70, 30)
    assert sorted(train["row"].tolist() + hold["row"].tolist()) == list(range(100))
    again, _ = sh.split(t, 0.3, random_state=4)
    assert again["row"].tolist() == train["row"].tolist()
    with pytest.raises(sh.InvalidParameterError, match="'holdout_frac' parameter must be in \\(0, 1\\). Got 1.2"):
        sh.split(t, 1.2)
    with pytest.raises(sh.InvalidParameterError, match="empty side"):
        sh.split(t.head(1), 0.5)


def test_ledger_remaining_epsilon() -> None:
    led = sh.PrivacyLedger(sh.PrivacyBudget(2.0, 1e-6))
    assert led.remaining_epsilon() == pytest.approx(2.0)
    fit = led.begin_fit("x", rho=sh.PrivacyBudget(1.0, 1e-6).rho)
    from synthhealth.privacy import LedgerEntry
    led.charge(LedgerEntry("discrete_gaussian", "marginal(a)", 1.0, 1.0, sh.PrivacyBudget(1.0, 1e-6).rho, fit, "x", True))
    left = led.remaining_epsilon()
    assert 0 < left < 2.0 and left > 1.0  # zCDP composition leaves more than the plain difference


def test_sweep_cost_validates_delta() -> None:
    with pytest.raises(sh.InvalidParameterError, match="'delta' parameter must be a float in \\(0, 1\\)"):
        sh.sweep_cost([1.0], generator="dpvae", delta=0.0)
