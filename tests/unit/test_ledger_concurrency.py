"""Shared ledgers under concurrency (reservations, stale reservations, errors mid-fit) and
saved files without timing side channels (issue 14, items 6 and 7)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import synthhealth as sh
from synthhealth.privacy import LedgerEntry, PrivacyBudget, PrivacyLedger

from ..tinytable import tiny_schema_doc, tiny_table

SCHEMA = tiny_schema_doc("concurrency")
RHO_07 = PrivacyBudget(0.7, 1e-6).rho  # two of these do not fit in epsilon = 1


@pytest.fixture(scope="module")
def schema() -> sh.PatientSchema:
    return sh.load_schema(SCHEMA)


@pytest.fixture(scope="module")
def table(schema: sh.PatientSchema) -> pd.DataFrame:
    return tiny_table(schema, 80)


def entry(fit: str, rho: float, target: str = "marginal(a)") -> LedgerEntry:
    return LedgerEntry("discrete_gaussian", target, 1.0, 10.0, rho, fit, "opendp test", False)


def _fit(gen: sh.BaseGenerator, table: pd.DataFrame, schema: sh.PatientSchema, **kw) -> sh.BaseGenerator:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sh.InsecureRandomnessWarning)
        return gen.fit(table, schema=schema, **kw)


# ------------------------------------------------------------------ reservations
def test_a_running_fit_reserves_its_planned_cost(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    a = PrivacyLedger.open(path, PrivacyBudget(1.0, 1e-6))
    fa = a.begin_fit("mst", rho=RHO_07)
    assert 2 * RHO_07 > a.budget.rho
    b = PrivacyLedger.open(path)  # another process's view of the same file
    with pytest.raises(sh.BudgetExceededError, match="No data was accessed") as err:
        b.begin_fit("aim", rho=RHO_07)
    assert fa in str(err.value) and "running fit" in str(err.value)
    assert [f["fit_id"] for f in PrivacyLedger.load(path).fits] == [fa]  # the refused fit left no trace
    (r,) = b.reservations()
    assert (r.fit_id, r.state, r.accounting) == (fa, "live", "zcdp") and r.rho == pytest.approx(RHO_07)
    tot = b.total()
    assert tot.rho == 0 and tot.n_entries == 0  # not privacy loss yet ...
    assert tot.n_reserved == 1 and tot.reserved_rho == pytest.approx(RHO_07)  # ... but counted by the check
    assert tot.committed_epsilon == pytest.approx(0.7) and "1 running fit reserves" in str(tot)
    assert b.remaining_rho() == pytest.approx(a.budget.rho - RHO_07)
    # charging shrinks the reservation by as much: the committed total does not move
    a.charge(entry(fa, RHO_07 / 4))
    b = PrivacyLedger.load(path)
    assert b.total().reserved_rho == pytest.approx(0.75 * RHO_07)
    assert b.remaining_rho() == pytest.approx(a.budget.rho - RHO_07)
    # the end of the fit releases what it did not charge
    a.end_fit(fa)
    b = PrivacyLedger.load(path)
    assert b.reservations() == [] and b.total().n_reserved == 0 and b.total().committed_epsilon is None
    assert b.remaining_rho() == pytest.approx(a.budget.rho - RHO_07 / 4)
    fb = b.begin_fit("aim", rho=RHO_07)
    b.end_fit(fb, "failed")  # a failed fit releases its reservation too
    assert b.reservations() == []


def test_approx_dp_fits_reserve_epsilon_and_delta() -> None:
    led = PrivacyLedger(PrivacyBudget(2.0, 1e-5))
    f = led.begin_fit("dpvae", rho=0.0, epsilon=1.5, delta=5e-6, accounting="approx_dp")
    with pytest.raises(sh.BudgetExceededError, match="spent or reserved"):
        led.begin_fit("dpvae", rho=0.0, epsilon=1.0, delta=4e-6, accounting="approx_dp")
    with pytest.raises(sh.BudgetExceededError):
        led.begin_fit("aim", rho=PrivacyBudget(1.0, 5e-6).rho)
    led.charge(LedgerEntry("dp_sgd", "vae", 1.0, 1.0, 0.0, f, "opacus", False, accounting="approx_dp",
                           epsilon=1.0, delta=5e-6))
    (r,) = led.reservations()
    assert r.epsilon == pytest.approx(0.5) and r.delta == 0.0
    led.end_fit(f)
    led.begin_fit("dpvae", rho=0.0, epsilon=0.9, delta=4e-6, accounting="approx_dp")


def test_errors_inside_charge_say_what_was_already_spent(tmp_path: Path) -> None:
    led = PrivacyLedger.open(tmp_path / "ledger.json", PrivacyBudget(1.0, 1e-6))
    fit = led.begin_fit("mst", rho=0.01)
    for i in range(3):
        led.charge(entry(fit, 0.003, f"marginal({i})"))
    with pytest.raises(sh.BudgetExceededError, match="more than it planned") as err:
        led.charge(entry(fit, 0.002))
    text = str(err.value)
    assert "No data was accessed" not in text and "ALREADY SPENT" in text and "in 3 measurements" in text
    spent = led.total(fit)
    assert f"epsilon={spent.epsilon:.4g}" in text and f"rho={spent.rho:.6g}" in text
    # a fit that charged nothing yet says so
    led.end_fit(fit)
    other = led.begin_fit("mst", rho=0.001)
    with pytest.raises(sh.BudgetExceededError, match="charged nothing yet: no data was accessed"):
        led.charge(entry(other, 0.002))


def test_budget_error_inside_charge_after_a_forced_clear(tmp_path: Path) -> None:
    """The ledger-wide check in charge() still guards a fit whose reservation was cleared by hand."""
    path = tmp_path / "ledger.json"
    a = PrivacyLedger.open(path, PrivacyBudget(1.0, 1e-6))
    fa = a.begin_fit("mst", rho=RHO_07)
    a.charge(entry(fa, 0.001))
    doc = json.loads(path.read_text())
    doc["fits"][0]["owner"] = {"pid": 1, "host": "elsewhere.example"}  # as if it ran on another machine
    path.write_text(json.dumps(doc))
    b = PrivacyLedger.load(path)
    (r,) = b.reservations()
    assert r.state == "unknown" and "another host" in r.reason
    assert b.clear_stale() == []  # unknown is not stale: never cleared implicitly
    assert [c.fit_id for c in b.clear_stale([fa])] == [fa]  # the explicit, vouched clear
    fb = b.begin_fit("aim", rho=RHO_07)
    b.charge(entry(fb, RHO_07))
    with pytest.raises(sh.BudgetExceededError, match="privacy budget exceeded") as err:
        a.charge(entry(fa, RHO_07 - 0.0011))  # within its plan, beyond the budget
    text = str(err.value)
    assert "No data was accessed" not in text and "ALREADY SPENT" in text and "in 1 measurement," in text
    assert PrivacyLedger.load(path).fits[0]["status"] == "abandoned"


def test_clear_stale_refuses_running_or_unknown_fits() -> None:
    led = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
    fit = led.begin_fit("mst", rho=0.01)
    with pytest.raises(sh.InvalidParameterError, match="still running"):
        led.clear_stale([fit])
    with pytest.raises(sh.InvalidParameterError, match="holds no reservation"):
        led.clear_stale(["nope"])
    assert led.clear_stale() == [] and led.fits[0]["status"] == "running"


def test_a_reused_pid_is_not_mistaken_for_the_fit() -> None:
    led = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
    fit = led.begin_fit("mst", rho=0.01)
    owner = led.fits[0]["owner"]
    assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
    if "process_start" not in owner:
        pytest.skip("no /proc on this platform")
    owner["process_start"] += 1  # the pid is alive, but it is another process now
    (r,) = led.stale_reservations()
    assert r.fit_id == fit and "another process" in r.reason
    owner["process_start"] -= 1
    assert led.reservations()[0].state == "live"
    if "boot_id" in owner:  # the same pid and start time, but before a restart of the machine
        owner["boot_id"] = "before-a-restart"
        (r,) = led.stale_reservations()
        assert "restarted" in r.reason


_CRASH = """
import os, sys
from synthhealth.privacy import LedgerEntry, PrivacyLedger
led = PrivacyLedger.open(sys.argv[1])
fit = led.begin_fit("mst", rho=float(sys.argv[2]))
led.charge(LedgerEntry("discrete_gaussian", "marginal(a)", 1.0, 10.0, float(sys.argv[2]) / 2, fit, "opendp", False))
print(fit, flush=True)
os._exit(9)  # killed mid-fit: no end_fit
"""


def _crashed_fit(path: Path, rho: float) -> str:
    out = subprocess.run([sys.executable, "-c", _CRASH, str(path), repr(rho)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 9, out.stderr
    return out.stdout.strip()


def test_stale_reservation_of_a_dead_process(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    PrivacyLedger.open(path, PrivacyBudget(1.0, 1e-6))
    dead = _crashed_fit(path, RHO_07)
    led = PrivacyLedger.load(path)
    (r,) = led.stale_reservations()
    assert r.fit_id == dead and r.state == "stale" and "is gone" in r.reason
    assert r.rho == pytest.approx(RHO_07 / 2)  # what it planned and never charged
    tot = led.total()
    assert tot.n_stale == 1 and "STALE" in str(tot) and "clear-stale" in str(tot)
    # conservative: the stale reservation counts as spent until it is cleared
    with pytest.raises(sh.BudgetExceededError, match="STALE") as err:
        led.begin_fit("aim", rho=RHO_07)
    assert "No data was accessed" in str(err.value)
    (c,) = led.clear_stale()
    assert c.fit_id == dead
    reloaded = PrivacyLedger.load(path)
    assert reloaded.fits[0]["status"] == "abandoned" and reloaded.fits[0]["cleared_reason"] == r.reason
    assert reloaded.reservations() == [] and reloaded.total().rho == pytest.approx(RHO_07 / 2)  # entries stay
    reloaded.begin_fit("aim", rho=RHO_07)  # now it fits: rho(0.7) + rho(0.7) / 2 < rho(1)


def test_ledgers_of_older_releases_still_load(tmp_path: Path) -> None:
    """A file written before reservations (and before `secure`): its running fit has no owner."""
    doc = PrivacyLedger(PrivacyBudget(1.0, 1e-6)).to_dict()
    doc["fits"] = [{"fit_id": "old0", "generator": "mst", "accounting": "zcdp", "planned_rho": 0.01,
                    "epsilon": 1.0, "delta": 1e-6, "schema_hash": None, "seeded": False,
                    "started": "2025-01-01T10:00:00+00:00", "finished": None, "status": "running", "versions": {}}]
    e = {"mechanism": "discrete_gaussian", "target": "marginal(a)", "sensitivity": 1.0, "scale": 10.0,
         "rho": 0.004, "fit_id": "old0", "library": "opendp 0.12", "seeded": False, "accounting": "zcdp",
         "epsilon": 0.0, "delta": 0.0, "time": "2025-01-01T10:00:01+00:00"}
    doc["entries"] = [e]
    for key in ("n_reserved", "n_stale", "reserved_rho", "reserved_epsilon", "reserved_delta",
                "committed_epsilon", "committed_delta"):
        doc["spent"].pop(key)
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    led = PrivacyLedger.load(path)
    assert led.entries[0].secure  # the conservative reading of `secure` is unchanged
    (r,) = led.reservations()
    assert r.state == "unknown" and "older release" in r.reason and r.rho == pytest.approx(0.006)
    assert led.clear_stale() == [] and [c.fit_id for c in led.clear_stale(["old0"])] == ["old0"]


# ---------------------------------------------------------- two real processes
def _fit_in_process(path: str, barrier, started, release, results) -> None:  # pragma: no cover - child
    schema = sh.load_schema(SCHEMA)
    rng = np.random.default_rng(os.getpid())
    df = pd.DataFrame({"a": rng.choice(["x", "y", "z"], 80), "b": rng.integers(0, 2, 80).astype(bool)},
                      index=pd.Index([f"p{i}" for i in range(80)], name="patient_id"))
    table = sh.read_table(df, schema)
    inner = sh.MST._fit

    def held(self, *args, **kwargs):  # past begin_fit: say so, then wait until the parent lets go
        started.set()
        release.wait(120)
        return inner(self, *args, **kwargs)

    sh.MST._fit = held
    barrier.wait(120)
    try:
        gen = _fit(sh.MST(epsilon=0.7, random_state=None), table, schema, ledger=path)
        results.put(("ok", gen.fit_id_, gen.ledger_.total(gen.fit_id_).epsilon))
    except sh.BudgetExceededError as exc:
        results.put(("refused", str(exc), None))
    except BaseException as exc:
        results.put(("error", f"{type(exc).__name__}: {exc}", None))


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_two_processes_one_ledger_exactly_one_fit_proceeds(tmp_path: Path) -> None:
    """Two real fits of epsilon 0.7 start together against one ledger of epsilon 1. The first
    past begin_fit is held until the other has been answered, so the second cannot rely on the
    first one's charges: only the reservation can stop it, before it touches data."""
    path = tmp_path / "ledger.json"
    PrivacyLedger.open(path, PrivacyBudget(1.0, 1e-6))
    ctx = mp.get_context("fork")
    barrier, started, release, results = ctx.Barrier(2), ctx.Event(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_fit_in_process, args=(str(path), barrier, started, release, results))
             for _ in range(2)]
    for p in procs:
        p.start()
    try:
        first = results.get(timeout=180)  # the loser answers while the winner is held inside its fit
        assert started.wait(120)  # the winner is inside its fit, held there
        assert first[0] == "refused", first
        assert "No data was accessed" in first[1] and "running fit" in first[1]
        release.set()
        second = results.get(timeout=180)
    finally:
        release.set()
        for p in procs:
            p.join(60)
    assert second[0] == "ok", second
    assert second[2] <= 0.7 + 1e-9
    led = PrivacyLedger.load(path)
    assert [(f["fit_id"], f["status"]) for f in led.fits] == [(second[1], "done")]
    assert {e.fit_id for e in led.entries} == {second[1]} and led.reservations() == []
    assert led.total().epsilon <= 1.0 + 1e-9


def _begin_in_process(path: str, barrier, results) -> None:  # pragma: no cover - child
    led = PrivacyLedger.open(path)
    barrier.wait(60)
    try:
        results.put(led.begin_fit("mst", rho=RHO_07))
    except sh.BudgetExceededError:
        results.put(None)


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_simultaneous_begin_fit_in_many_processes(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    PrivacyLedger.open(path, PrivacyBudget(1.0, 1e-6))
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_begin_in_process, args=(str(path), barrier, results)) for _ in range(4)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    winners = [g for g in got if g is not None]
    assert len(winners) == 1
    led = PrivacyLedger.load(path)
    assert [f["fit_id"] for f in led.fits] == winners
    # the winner's process has exited without end_fit: its reservation is stale now
    assert [r.fit_id for r in led.stale_reservations()] == winners


# ------------------------------------------------------------ the command line
def test_cli_ledger_status_and_clear_stale(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from synthhealth.cli import main

    path = tmp_path / "ledger.json"
    PrivacyLedger.open(path, PrivacyBudget(1.0, 1e-6))
    runner = CliRunner()
    res = runner.invoke(main, ["ledger", "status", str(path)])
    assert res.exit_code == 0, res.output
    assert "reservations: none" in res.output and "remaining: epsilon=1" in res.output
    dead = _crashed_fit(path, RHO_07)
    live = PrivacyLedger.open(path)
    res = runner.invoke(main, ["ledger", "status", str(path)])
    assert res.exit_code == 0, res.output
    assert f"fit {dead} (mst) reserves" in res.output and "STALE" in res.output
    assert f"synthhealth ledger clear-stale {path}" in res.output and "1 running" in res.output
    res = runner.invoke(main, ["ledger", "clear-stale", str(path)])
    assert res.exit_code == 0, res.output
    assert f"cleared fit {dead}" in res.output
    assert PrivacyLedger.load(path).reservations() == []
    res = runner.invoke(main, ["ledger", "clear-stale", str(path)])
    assert res.exit_code == 0 and "nothing cleared" in res.output
    running = live.begin_fit("aim", rho=0.001)
    res = runner.invoke(main, ["ledger", "clear-stale", str(path), "--fit", running])
    assert res.exit_code == 2 and "still running" in res.output
    res = runner.invoke(main, ["ledger", "status", str(tmp_path / "missing.json")])
    assert res.exit_code != 0


# ----------------------------------------------------- no timing side channel
def test_saved_model_keeps_dates_only(tmp_path: Path, table: pd.DataFrame, schema: sh.PatientSchema) -> None:
    path = tmp_path / "ledger.json"
    gen = _fit(sh.MST(epsilon=0.5, random_state=0), table, schema, ledger=path)
    folder = gen.save(tmp_path / "model")
    text = (folder / "model.json").read_text()
    doc = json.loads(text)
    day = doc["fitted_at"]
    assert len(day) == 10 and day[4] == "-" and day[7] == "-"
    led = doc["ledger"]
    assert led["created"] == led["created"][:10]
    for f in led["fits"]:
        assert "owner" not in f
        assert all(f[k] is None or len(f[k]) == 10 for k in ("started", "finished"))
    assert led["entries"] and all(len(e["time"]) == 10 for e in led["entries"])
    assert '"owner"' not in text and '"host"' not in text and '"pid"' not in text
    # the ledger file itself (kept by the data holder, not shipped) keeps full times and owners
    own = json.loads(path.read_text())
    assert "T" in own["fits"][0]["started"] and own["fits"][0]["owner"]["pid"] == os.getpid()
    # the model still loads, and its ledger still accounts
    loaded = sh.load_model(folder)
    assert loaded.ledger_.total(loaded.fit_id_).epsilon == pytest.approx(gen.ledger_.total(gen.fit_id_).epsilon)
    assert len(loaded.ledger_.entries[0].time) == 10 and loaded.fitted_at_ == day


def test_report_fit_records_keep_dates_only(schema: sh.PatientSchema) -> None:
    from synthhealth.report.guarantee import guarantee_section

    led = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
    fit = led.begin_fit("mst", rho=0.01)
    led.charge(entry(fit, 0.005))
    led.end_fit(fit)
    _, info = guarantee_section(led, schema, fit_id=fit)
    (f,) = info["fits"]
    assert len(f["started"]) == 10 and len(f["finished"]) == 10 and "owner" not in f


def test_to_dict_times_is_validated() -> None:
    with pytest.raises(sh.InvalidParameterError, match="'times' parameter"):
        PrivacyLedger(PrivacyBudget(1.0, 1e-6)).to_dict(times="hour")


def test_report_names_fits_still_running(schema: sh.PatientSchema) -> None:
    from synthhealth.report.guarantee import guarantee_section

    led = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
    done = led.begin_fit("mst", rho=0.01)
    led.charge(entry(done, 0.01))
    led.end_fit(done)
    sec, _ = guarantee_section(led, schema, fit_id=done)
    assert "Fits still running on this ledger" not in dict(sec.facts)
    led.begin_fit("aim", rho=0.005)
    sec, _ = guarantee_section(led, schema, fit_id=done)
    text = dict(sec.facts)["Fits still running on this ledger"]
    assert text.startswith("1, reserving up to ε = ") and "stale" not in text
