"""AIM and MST: the generator contract, accounting, saving, and no data-derived domain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import synthhealth as sh
from synthhealth.generators import pgm
from synthhealth.privacy import PrivacyBudget, PrivacyLedger
from synthhealth.schema import schema_from_dict
from synthhealth.transform.encode import Encoder

SMALL = schema_from_dict({
    "synthhealth_schema": 1, "name": "small", "version": "1", "reference_date": "2020-01-01",
    "attributes": [
        {"name": "sex", "type": "categorical", "categories": ["F", "M", "other"], "other": "other"},
        {"name": "age", "type": "numeric", "bounds": [0, 100], "bins": {"width": 20}, "integer": True},
        {"name": "dm", "type": "boolean", "missing": False},
        {"name": "visits", "type": "count", "cap": 4, "missing": False},
        {"name": "bmi", "type": "numeric", "bounds": [10, 60], "bins": [10, 18.5, 25, 30, 60]},
    ],
})


def small_table(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(0, 100, n)
    dm = rng.random(n) < 0.05 + 0.5 * (age > 60)
    bmi = np.where(rng.random(n) < 0.2, np.nan, rng.normal(27, 5, n).clip(10, 60))
    return pd.DataFrame({"sex": rng.choice(["F", "M"], n), "age": age, "dm": dm,
                         "visits": rng.integers(0, 5, n), "bmi": bmi}).rename_axis("patient_id")


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return small_table()


@pytest.mark.parametrize("cls", [sh.AIM, sh.MST])
def test_contract_and_validation(cls, table: pd.DataFrame) -> None:
    gen = cls(epsilon=-1)  # __init__ only stores
    assert gen.get_params()["epsilon"] == -1
    with pytest.raises(sh.NotFittedError, match="not fitted yet"):
        gen.sample(3)
    with pytest.raises(sh.InvalidParameterError,
                       match=rf"The 'epsilon' parameter of {cls.__name__} must be a float in \(0, 100\] .*Got -1 instead."):
        gen.fit(table, schema=SMALL)
    with pytest.raises(sh.InvalidParameterError, match="must be a PatientSchema"):
        cls().fit(table, schema="small")
    with pytest.raises(sh.InvalidParameterError, match="Invalid parameter 'epsilon_'"):
        cls().set_params(epsilon_=2)
    assert repr(cls(epsilon=2.0)).startswith(f"{cls.__name__}(epsilon=2.0")


@pytest.mark.parametrize("cls", [sh.AIM, sh.MST])
def test_fit_spends_exactly_the_budget_and_samples(cls, table: pd.DataFrame) -> None:
    gen = cls(epsilon=2.0, delta=1e-6, random_state=0).fit(table, schema=SMALL)
    spent = gen.ledger_.total()
    assert spent.rho == pytest.approx(PrivacyBudget(2.0, 1e-6).rho, rel=1e-9)
    assert spent.epsilon == pytest.approx(2.0, rel=1e-9) and spent.seeded
    assert all(e.fit_id == gen.fit_id_ for e in gen.ledger_.entries)
    assert gen.ledger_.fits[0]["status"] == "done"
    syn = gen.sample(2000, random_state=1)
    assert list(syn.columns) == SMALL.names and len(syn) == 2000
    assert abs(gen.total_ - len(table)) < 0.1 * len(table)  # noisy estimate of n
    # utility sanity on an easy signal: diabetes depends strongly on age
    old = syn["age"] > 60
    assert syn.loc[old, "dm"].mean() > syn.loc[~old, "dm"].mean() + 0.2
    assert syn["bmi"].isna().mean() == pytest.approx(0.2, abs=0.08)
    assert ((syn["visits"] >= 0) & (syn["visits"] <= 4)).all()


def test_secure_fit_uses_opendp(table: pd.DataFrame) -> None:
    gen = sh.MST(epsilon=1.0).fit(table, schema=SMALL)
    assert not gen.ledger_.seeded
    assert {e.library.split()[0] for e in gen.ledger_.entries} == {"opendp"}
    assert {e.mechanism for e in gen.ledger_.entries} == {"discrete_gaussian", "noisy_max"}


@pytest.mark.parametrize("cls", [sh.AIM, sh.MST])
def test_save_load_round_trip_without_pickle(cls, table: pd.DataFrame, tmp_path: Path) -> None:
    gen = cls(epsilon=1.0, random_state=0).fit(table, schema=SMALL)
    out = gen.save(tmp_path / "m")
    assert sorted(p.name for p in out.iterdir()) == ["arrays.npz", "model.json"]
    with np.load(out / "arrays.npz", allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)
    doc = json.loads((out / "model.json").read_text())
    assert doc["format"] == "synthhealth-model" and doc["schema_hash"] == SMALL.hash
    assert doc["ledger"]["spent"]["epsilon"] == pytest.approx(1.0)
    back = sh.load_model(out)
    assert type(back) is cls and back.schema_.hash == SMALL.hash
    pd.testing.assert_frame_equal(back.sample(50, random_state=7), gen.sample(50, random_state=7), check_like=False)
    with pytest.raises(sh.InvalidParameterError, match="not empty"):
        gen.save(out)
    doc["version"] = 99
    (out / "model.json").write_text(json.dumps(doc))
    with pytest.raises(sh.InvalidParameterError, match="model format version 99"):
        sh.load_model(out)


def test_no_data_derived_domain(tmp_path: Path) -> None:
    t = small_table(1500)
    t["age"] = t["age"].astype(float)
    t.loc[0, "sex"] = "SENTINEL-CATEGORY"  # not a declared category: mapped to 'other'
    t.loc[1, "age"] = 987.654321           # above the bounds: clipped to 100
    t.loc[2, "bmi"] = 12.3456789
    gen = sh.AIM(epsilon=1.0, random_state=0).fit(t, schema=SMALL)
    out = gen.save(tmp_path / "m")
    syn = gen.sample(5000, random_state=0)
    assert "SENTINEL-CATEGORY" not in set(syn["sex"].astype(str))
    assert syn["age"].max() <= 100 and not np.isclose(syn["bmi"], 12.3456789).any()
    for f in out.iterdir():
        blob = f.read_bytes()
        for needle in (b"SENTINEL", b"987.65", b"12.3456"):
            assert needle not in blob, (f.name, needle)
    # the model's domain is the schema's
    assert tuple(gen.model_.domain.shape) == Encoder(SMALL).shape


def test_budget_checked_before_data_is_touched(tmp_path: Path) -> None:
    class Untouchable(pd.DataFrame):
        def __getattribute__(self, name: str):  # type: ignore[no-untyped-def]
            if name in ("columns", "__getitem__", "index", "loc", "iloc", "to_numpy", "values"):
                raise AssertionError(f"data accessed ({name}) before the budget check")
            return super().__getattribute__(name)

    path = tmp_path / "ledger.json"
    sh.MST(epsilon=1.0, random_state=0).fit(small_table(500), schema=SMALL, ledger=path)
    with pytest.raises(sh.BudgetExceededError, match="No data was accessed"):
        sh.MST(epsilon=0.5, random_state=0).fit(Untouchable(small_table(10)), schema=SMALL, ledger=path)
    doc = json.loads(path.read_text())
    assert [f["status"] for f in doc["fits"]] == ["done"]


def test_shared_ledger_with_a_larger_budget(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    # zCDP composes sub-linearly: two epsilon=1 fits cost epsilon~1.45 in total, more than 1.2
    PrivacyLedger.open(path, PrivacyBudget(1.2, 1e-6))
    t = small_table(800)
    sh.MST(epsilon=1.0, random_state=0).fit(t, schema=SMALL, ledger=path)
    with pytest.raises(sh.BudgetExceededError):
        sh.MST(epsilon=1.0, random_state=1).fit(t, schema=SMALL, ledger=path)
    sh.MST(epsilon=0.4, random_state=2).fit(t, schema=SMALL, ledger=path)
    total = PrivacyLedger.load(path).total()
    assert 1.0 < total.epsilon <= 1.2 + 1e-9
    assert len({e.fit_id for e in PrivacyLedger.load(path).entries}) == 2


def test_crash_mid_fit_leaves_a_valid_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = pgm.estimate

    def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("power cut")
        return real(*args, **kwargs)

    monkeypatch.setattr("synthhealth.generators.mst.estimate", flaky)
    path = tmp_path / "ledger.json"
    with pytest.raises(RuntimeError, match="power cut"):
        sh.MST(epsilon=1.0, random_state=0).fit(small_table(500), schema=SMALL, ledger=path)
    led = PrivacyLedger.load(path)
    assert led.fits[0]["status"] == "failed"
    # the 1-way marginals and the tree selections were released before the crash: they are recorded
    assert len(led.entries) >= len(SMALL) and led.total().rho > 0


def test_aim_workload_validation(table: pd.DataFrame) -> None:
    with pytest.raises(sh.InvalidParameterError, match="not in the schema: \\['weight'\\]"):
        sh.AIM(workload=[("age", "weight")], random_state=0).fit(table, schema=SMALL)
    with pytest.raises(sh.InvalidParameterError, match="must hold tuples of attribute names; item 0 is 'age'"):
        sh.AIM(workload=["age"], random_state=0).fit(table, schema=SMALL)
    gen = sh.AIM(epsilon=1.0, workload=[("age", "dm", "sex")], random_state=0).fit(table, schema=SMALL)
    assert all(set(r) <= {"age", "dm", "sex"} for r in gen.selected_)


def test_bad_table_is_refused_with_every_problem() -> None:
    t = small_table(50).drop(columns=["bmi"])
    t["visits"] = -1
    with pytest.raises(sh.DataValidationError) as info:
        sh.MST(epsilon=1.0, random_state=0).fit(t, schema=SMALL)
    assert len(info.value.violations) == 2


def test_aim_final_pass_remeasures_the_maximal_selected_cliques(table: pd.DataFrame, tmp_path: Path) -> None:
    gen = sh.AIM(epsilon=2.0, remeasure_share=0.3, random_state=0).fit(table, schema=SMALL)
    final = gen.remeasured_
    assert final, "a small schema gets a final pass"
    assert all(len(r) > 1 for r in final)
    assert set(final) <= set(gen.selected_)
    assert not any(set(a) < set(b) for a in final for b in gen.selected_)  # maximal ones only
    assert len(set(final)) == len(final)
    # the final pass is the last len(final) measurements: same noise for all, 30 % of rho in all
    entries = [e for e in gen.ledger_.entries if e.target.startswith("marginal(")][-len(final):]
    assert [e.target for e in entries] == [f"marginal({', '.join(r)})" for r in final]
    assert len({e.scale for e in entries}) == 1
    rho = PrivacyBudget(2.0, gen.delta).rho
    assert sum(e.rho for e in entries) == pytest.approx(0.3 * rho, rel=1e-6)
    assert gen.ledger_.total().rho == pytest.approx(rho, rel=1e-9)
    back = sh.load_model(gen.save(tmp_path / "m"))
    assert back.remeasured_ == final and back.remeasure_share_ == 0.3


def test_aim_remeasure_share_default_and_validation(table: pd.DataFrame) -> None:
    off = sh.AIM(epsilon=2.0, remeasure_share=0.0, random_state=0).fit(table, schema=SMALL)
    assert off.remeasured_ == [] and off.remeasure_share_ == 0.0
    assert not any(e.target == "count(patients)" for e in off.ledger_.entries)
    # default: a noisy count (1 % of rho) decides; 3,000 patients at eps = 2 are plenty, 150 are not
    rho = PrivacyBudget(2.0, 1e-6).rho
    big = sh.AIM(epsilon=2.0, random_state=0).fit(table, schema=SMALL)
    count = [e for e in big.ledger_.entries if e.target == "count(patients)"]
    assert len(count) == 1 and count[0].rho == pytest.approx(0.01 * rho)
    assert big.remeasure_share_ == 0.5 and big.remeasured_
    assert big.ledger_.total().rho == pytest.approx(rho, rel=1e-9)
    small = sh.AIM(epsilon=2.0, random_state=0).fit(table.iloc[:150], schema=SMALL)
    assert small.remeasure_share_ == 0.0 and small.remeasured_ == []
    assert small.ledger_.total().rho == pytest.approx(rho, rel=1e-9)
    for bad in (1.0, -0.1, "0.3", True):
        with pytest.raises(sh.InvalidParameterError,
                           match=r"The 'remeasure_share' parameter of AIM must be None or a float in \[0, 1\)"):
            sh.AIM(remeasure_share=bad, random_state=0).fit(table, schema=SMALL)
