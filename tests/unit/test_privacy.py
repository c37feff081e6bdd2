"""Privacy core: accounting against independent implementations, noise, budget, ledger."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

import synthhealth as sh
from synthhealth.privacy import (
    LedgerEntry,
    NoiseSource,
    PrivacyBudget,
    PrivacyLedger,
    cdp_delta,
    cdp_epsilon,
    cdp_rho,
    exponential_rho,
    gaussian_rho,
    gaussian_sigma,
)

GRID = [(rho, delta) for rho in (1e-4, 0.005, 0.02435597, 0.125, 0.5, 2.0) for delta in (1e-5, 1e-6, 1e-9)]


def seeded(seed: int = 0) -> NoiseSource:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sh.InsecureRandomnessWarning)
        return NoiseSource(seed)


def test_fixed_known_values() -> None:
    # fixed values of the CKS 2020 conversion (computed once, also matched by OpenDP 0.16)
    assert cdp_delta(0.5, 3.0) == pytest.approx(0.005143184063862148, rel=1e-12)
    assert cdp_epsilon(0.005, 1e-6) == pytest.approx(0.42994146883694934, rel=1e-10)
    assert cdp_rho(1.0, 1e-6) == pytest.approx(0.024355970359538372, rel=1e-10)
    assert gaussian_rho(1.0, 10.0) == 0.005 and gaussian_sigma(1.0, 0.005) == pytest.approx(10.0)
    assert exponential_rho(1.0) == 0.125
    assert cdp_delta(0.0, 1.0) == 0.0 and cdp_epsilon(0.0, 1e-6) == 0.0


@pytest.mark.parametrize("rho,delta", GRID)
def test_conversion_matches_opendp(rho: float, delta: float) -> None:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    sigma = 1.0 / math.sqrt(2.0 * rho)
    meas = dp.m.make_gaussian(dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), scale=sigma)
    curve = dp.c.make_zCDP_to_approxDP(meas).map(1.0)
    assert cdp_epsilon(rho, delta) == pytest.approx(curve.epsilon(delta), rel=1e-6)


@pytest.mark.parametrize("rho,delta", GRID[::2])
def test_conversion_against_dp_accounting(rho: float, delta: float) -> None:
    import dp_accounting
    from dp_accounting import rdp

    orders = np.concatenate([np.linspace(1.001, 10, 20000), np.linspace(10, 5000, 40000)])
    acc = rdp.RdpAccountant(orders=list(orders))
    acc.compose(dp_accounting.GaussianDpEvent(noise_multiplier=1.0 / math.sqrt(2.0 * rho)))
    theirs = acc.get_epsilon(delta)
    ours = cdp_epsilon(rho, delta)
    # their optimum is over a finite grid of orders, so it can only be slightly larger than ours
    # (the 1e-6 agreement is checked against OpenDP, which optimises the order exactly)
    assert ours <= theirs * (1 + 1e-9)
    assert ours == pytest.approx(theirs, rel=1e-4)


def test_conversions_invert_and_beat_the_classic_bound() -> None:
    for rho, delta in GRID:
        eps = cdp_epsilon(rho, delta)
        assert cdp_delta(rho, eps) <= delta * (1 + 1e-9)
        assert eps <= rho + 2 * math.sqrt(rho * math.log(1 / delta)) + 1e-12
        assert cdp_rho(eps, delta) == pytest.approx(rho, rel=1e-6)
    assert cdp_epsilon(0.1, 1e-6) < cdp_epsilon(0.2, 1e-6) and cdp_epsilon(0.1, 1e-6) > cdp_epsilon(0.1, 1e-3)


def test_budget_validation() -> None:
    b = PrivacyBudget(1, 1e-6)
    assert b.epsilon == 1.0 and b.rho == pytest.approx(0.024355970359538372)
    with pytest.raises(sh.InvalidParameterError, match=r"The 'epsilon' parameter must be a float in \(0, 100\] .*Got -1 instead."):
        PrivacyBudget(-1)
    with pytest.raises(sh.InvalidParameterError, match=r"The 'delta' parameter must be a float in \(0, 1\). Got 0 instead."):
        PrivacyBudget(1.0, 0)
    with pytest.raises(sh.InvalidParameterError, match="Got nan instead"):
        PrivacyBudget(float("nan"))


def test_secure_gaussian_noise_fits_its_declared_scale() -> None:
    src = NoiseSource()
    assert not src.seeded and src.library.startswith("opendp")
    n, sigma = 40_000, 7.0
    noisy = src.gaussian(np.full(n, 100, dtype=np.int64), sigma)
    noise = noisy - 100
    assert np.all(noise == np.round(noise))  # the discrete Gaussian: integers
    # tolerances from the sampling distribution of the mean and variance (5 standard errors)
    assert abs(noise.mean()) < 5 * sigma / math.sqrt(n)
    assert abs(noise.var() - sigma**2) < 5 * sigma**2 * math.sqrt(2 / n)
    from scipy import stats

    jittered = noise + np.random.default_rng(0).uniform(-0.5, 0.5, n)  # lattice -> continuous
    assert stats.kstest(jittered, "norm", args=(0, math.sqrt(sigma**2 + 1 / 12))).pvalue > 1e-3
    assert src.gaussian_cost(sigma).rho == pytest.approx(gaussian_rho(1, sigma), rel=1e-12)


def test_seeded_noise_warns_and_reproduces() -> None:
    with pytest.warns(sh.InsecureRandomnessWarning, match="NOT FOR RELEASE"):
        a = NoiseSource(3)
    b = seeded(3)
    counts = np.arange(10)
    assert np.array_equal(a.gaussian(counts, 2.0), b.gaussian(counts, 2.0))
    assert a.gaussian_cost(2.0).rho == gaussian_rho(1, 2.0)
    with pytest.raises(sh.InvalidParameterError, match="must hold integers"):
        a.gaussian(np.array([0.5]), 1.0)


@pytest.mark.parametrize("secure", [True, False])
def test_noisy_max_cost_and_choice(secure: bool) -> None:
    src = NoiseSource() if secure else seeded()
    scale = src.noisy_max_scale(0.125, 1.0)
    assert scale == pytest.approx(2.0)
    assert src.noisy_max_cost(scale, 1.0).rho == pytest.approx(0.125, rel=1e-12)
    picks = [src.noisy_max(np.array([0.0, 0.0, 60.0, 0.0]), scale) for _ in range(20)]
    assert picks == [2] * 20


# ------------------------------------------------------------------------- ledger
def entry(fit: str, rho: float = 0.005, target: str = "marginal(age)") -> LedgerEntry:
    return LedgerEntry("discrete_gaussian", target, 1.0, 10.0, rho, fit, "opendp test", False)


def test_ledger_composes_and_refuses_overspending() -> None:
    led = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
    fit = led.begin_fit("t", rho=0.02)
    led.charge(entry(fit, 0.005))
    led.charge(entry(fit, 0.005))
    tot = led.total()
    assert tot.rho == pytest.approx(0.01) and tot.epsilon == pytest.approx(cdp_epsilon(0.01, 1e-6))
    assert tot.unit == "patient" and "add or remove one patient" in tot.neighbouring
    with pytest.raises(sh.BudgetExceededError, match="more than it planned"):
        led.charge(entry(fit, 0.011))
    with pytest.raises(sh.BudgetExceededError, match="No data was accessed"):
        led.begin_fit("t2", rho=0.02)
    assert len(led.entries) == 2


def test_ledger_file_shared_between_objects(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    a = PrivacyLedger.open(path, PrivacyBudget(1.0, 1e-6))
    b = PrivacyLedger.open(path)
    fa = a.begin_fit("a", rho=0.015)
    a.charge(entry(fa, 0.015))
    with pytest.raises(sh.BudgetExceededError):
        b.begin_fit("b", rho=0.015)  # b re-reads the file and sees a's spending
    doc = json.loads(path.read_text())
    assert doc["format"] == "synthhealth-privacy-ledger" and doc["spent"]["rho"] == pytest.approx(0.015)
    with pytest.raises(sh.InvalidParameterError, match="fixed budget"):
        PrivacyLedger.open(path, PrivacyBudget(2.0, 1e-6))
    path.write_text(json.dumps({**doc, "version": 99}))
    with pytest.raises(sh.AccountingError, match="format version 99"):
        PrivacyLedger.load(path)
    path.write_text("{oops")
    with pytest.raises(sh.AccountingError, match="cannot read the privacy ledger"):
        PrivacyLedger.load(path)


def test_approx_dp_entries_compose_conservatively() -> None:
    led = PrivacyLedger(PrivacyBudget(2.0, 1e-5))
    fit = led.begin_fit("dpsgd", rho=0.0)
    led.charge(LedgerEntry("dp_sgd", "vae weights", 1.0, 1.1, 0.0, fit, "opacus", False, accounting="approx_dp",
                           epsilon=1.0, delta=5e-6))
    tot = led.total()
    assert tot.epsilon == pytest.approx(1.0) and tot.delta == pytest.approx(5e-6)
    assert led.remaining_rho() == pytest.approx(PrivacyBudget(1.0, 5e-6).rho)


def test_approx_dp_fit_and_mixed_composition() -> None:
    led = PrivacyLedger(PrivacyBudget(3.0, 1e-5))
    z = led.begin_fit("aim", rho=0.05)
    led.charge(entry(z, 0.05))
    a = led.begin_fit("dpvae", rho=0.0, epsilon=1.0, delta=5e-6, accounting="approx_dp")
    with pytest.raises(sh.BudgetExceededError, match="more \\(epsilon, delta\\) than it planned"):
        led.charge(LedgerEntry("dp_sgd", "vae", 1.0, 1.0, 0.0, a, "opacus", False, accounting="approx_dp",
                               epsilon=1.5, delta=5e-6))
    led.charge(LedgerEntry("dp_sgd", "vae", 1.0, 1.0, 0.0, a, "opacus", False, accounting="approx_dp",
                           epsilon=1.0, delta=5e-6))
    tot = led.total()
    # the zCDP part is stated at the delta the (epsilon, delta) entries leave: 1e-5 - 5e-6
    assert tot.delta == pytest.approx(1e-5)
    assert tot.epsilon == pytest.approx(cdp_epsilon(0.05, 5e-6) + 1.0)
    with pytest.raises(sh.BudgetExceededError, match="No data was accessed"):
        led.begin_fit("dpvae", rho=0.0, epsilon=1.0, delta=4e-6, accounting="approx_dp")


def test_cdp_rho_refuses_delta_one() -> None:
    from synthhealth.privacy.accounting import cdp_rho as _cdp_rho

    with pytest.raises(sh.InvalidParameterError, match="'delta' parameter must be in \\(0, 1\\). Got 1.0"):
        _cdp_rho(1.0, 1.0)
