"""Empirical privacy audits: attack the mechanisms on neighbouring datasets.

For each mechanism we run it many times on D and on D′ = D + one patient, attack the outputs with
the best threshold test, and compute a Clopper–Pearson lower bound on ε (see
``synthhealth.privacy.audit``). The correct mechanism must stay at or below its claim; deliberately
broken variants (noise scale halved, sensitivity ignored, a patient's rows not capped, selection
noise halved) must be caught: an audit that cannot catch them proves nothing.

Fast subset by default (seconds); ``pytest --full`` runs the slow, larger audits.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import pytest

import synthhealth as sh
from synthhealth.generators.pgm import Domain
from synthhealth.generators.private_data import PrivateData, marginal_counts
from synthhealth.privacy import NoiseSource, PrivacyBudget, PrivacyLedger, cdp_epsilon, gaussian_sigma
from synthhealth.privacy.audit import epsilon_lower_bound

RHO = 0.02       # claimed zCDP cost of one marginal measurement
DELTA = 1e-5
CLAIM = cdp_epsilon(RHO, DELTA)  # ≈ 0.79
SIGMA = gaussian_sigma(1.0, RHO)  # = 5
ALPHA = 0.01     # 99 % confidence: a correct mechanism fails the audit with probability < 1 %
DOMAIN = Domain(("age_bin", "diabetes"), (6, 2))
TARGET = (5, 1)  # the cell the added patient falls into


def seeded(seed: int) -> NoiseSource:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sh.InsecureRandomnessWarning)
        return NoiseSource(seed)


def neighbours(extra_rows: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """D (200 patients) and D′ = D + one patient; ``extra_rows`` > 1 simulates an uncapped patient."""
    rng = np.random.default_rng(11)
    d = np.column_stack([rng.integers(0, 6, 200), rng.integers(0, 2, 200)])
    added = np.tile(np.array([TARGET]), (extra_rows, 1))
    return d, np.vstack([d, added])


def measure_runs(codes: np.ndarray, sigma: float, runs: int, noise: NoiseSource, scale_stat: float = 1.0) -> np.ndarray:
    """``runs`` independent releases of the target cell of the (age_bin, diabetes) marginal."""
    exact = marginal_counts(codes, DOMAIN, DOMAIN.attrs)
    cell = int(exact[TARGET] * scale_stat)
    return noise.gaussian(np.full(runs, cell, dtype=np.int64), sigma)


def audit_gaussian(variant: str, runs: int, noise_d: NoiseSource, noise_dp: NoiseSource) -> float:
    sigma = SIGMA / 2 if variant == "half_noise" else SIGMA
    rows = 4 if variant == "uncapped" else 1
    d, dp = neighbours(rows)
    scale = 5.0 if variant == "sensitivity_ignored" else 1.0  # a statistic with sensitivity 5 noised as if 1
    out_d = measure_runs(d, sigma, runs, noise_d, scale)
    out_dp = measure_runs(dp, sigma, runs, noise_dp, scale)
    return epsilon_lower_bound(out_d, out_dp, DELTA, alpha=ALPHA).epsilon_lower_bound


def test_measure_uses_the_audited_blocks() -> None:
    """PrivateData.measure = exact marginal + NoiseSource.gaussian(σ), charged at gaussian_cost(σ)."""
    d, _ = neighbours()
    ledger = PrivacyLedger(PrivacyBudget(1.0, DELTA))
    fit = ledger.begin_fit("audit", rho=RHO)
    data = PrivateData(d, DOMAIN, seeded(5), ledger, fit)
    m = data.measure(DOMAIN.attrs, SIGMA)
    expected = marginal_counts(d, DOMAIN, DOMAIN.attrs) + seeded(5).rng.normal(0, SIGMA, (6, 2))
    np.testing.assert_allclose(m.values, expected)
    assert ledger.total().rho == pytest.approx(RHO) and ledger.entries[0].sensitivity == 1.0


def test_count_uses_the_audited_blocks() -> None:
    """PrivateData.count = number of rows (patients) + NoiseSource.gaussian(σ), charged at gaussian_cost(σ)."""
    d, dp = neighbours()
    assert abs(len(d) - len(dp)) == 1  # neighbours differ by one patient: the count's sensitivity is 1
    ledger = PrivacyLedger(PrivacyBudget(1.0, DELTA))
    fit = ledger.begin_fit("audit", rho=RHO)
    data = PrivateData(d, DOMAIN, seeded(5), ledger, fit)
    got = data.count(SIGMA)
    assert got == pytest.approx(len(d) + seeded(5).rng.normal(0, SIGMA, (1,))[0])
    entry = ledger.entries[0]
    assert entry.target == "count(patients)" and entry.sensitivity == 1.0 and entry.scale == SIGMA
    assert ledger.total().rho == pytest.approx(RHO)


def test_correct_gaussian_secure_sampler_within_claim() -> None:
    eps = audit_gaussian("correct", 60_000, NoiseSource(), NoiseSource())
    assert eps <= CLAIM


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_correct_gaussian_seeded_within_claim(seed: int) -> None:
    eps = audit_gaussian("correct", 400_000, seeded(seed), seeded(100 + seed))
    assert eps <= CLAIM


@pytest.mark.parametrize("variant", ["half_noise", "sensitivity_ignored", "uncapped"])
def test_broken_gaussian_variants_are_caught(variant: str) -> None:
    eps = audit_gaussian(variant, 400_000, seeded(0), seeded(1))
    assert eps > CLAIM, f"the audit failed to catch '{variant}' (lower bound {eps:.3f} <= claim {CLAIM:.3f})"


# ------------------------------------------------------------------- selection
SEL_EPS = 1.0  # pure epsilon-DP of one noisy-max selection (the ledger charges rho = epsilon^2 / 8)


def select_runs(scores: np.ndarray, scale: float, runs: int, noise: NoiseSource) -> np.ndarray:
    return np.array([noise.noisy_max(scores, scale) == 0 for _ in range(runs)], dtype=float)


def audit_selection(half: bool, runs: int, make_noise: Callable[[int], NoiseSource]) -> float:
    noise = make_noise(0)
    scale = noise.noisy_max_scale(SEL_EPS**2 / 8, 1.0)
    if half:
        scale /= 2
    # neighbouring score vectors at L-infinity distance 1 (scores need not move together)
    d_scores = np.array([-6.0, 0.0])
    dp_scores = np.array([-5.0, -1.0])
    out_d = select_runs(d_scores, scale, runs, noise)
    out_dp = select_runs(dp_scores, scale, runs, make_noise(1))
    return epsilon_lower_bound(out_d, out_dp, 0.0, alpha=ALPHA).epsilon_lower_bound


def test_selection_correct_and_broken_seeded() -> None:
    assert audit_selection(False, 60_000, seeded) <= SEL_EPS
    assert audit_selection(True, 60_000, seeded) > SEL_EPS


@pytest.mark.slow
def test_selection_secure_sampler_within_claim() -> None:
    assert audit_selection(False, 60_000, lambda s: NoiseSource()) <= SEL_EPS


@pytest.mark.slow
def test_correct_gaussian_secure_sampler_large() -> None:
    assert audit_gaussian("correct", 400_000, NoiseSource(), NoiseSource()) <= CLAIM


@pytest.mark.slow
def test_half_noise_caught_with_the_secure_sampler() -> None:
    assert audit_gaussian("half_noise", 400_000, NoiseSource(), NoiseSource()) > CLAIM


@pytest.mark.slow
def test_mst_one_way_step_end_to_end() -> None:
    """The first step of a real MST fit (all 1-way marginals), repeated on D and D′.

    The claim for the statistic is the cost of the whole step: d measurements at σ1 compose to
    ρ/3 of the fit's budget.
    """
    d, dp = neighbours()
    import pandas as pd

    schema = sh.load_schema({
        "synthhealth_schema": 1, "name": "audit", "version": "1", "reference_date": "2020-01-01",
        "attributes": [{"name": "age_bin", "type": "categorical", "categories": [str(i) for i in range(6)],
                        "missing": False},
                       {"name": "diabetes", "type": "boolean", "missing": False}]})

    def table(codes: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({"age_bin": codes[:, 0].astype(str), "diabetes": codes[:, 1].astype(bool)})

    budget = PrivacyBudget(4.0, DELTA)
    outs = []
    for codes in (d, dp):
        vals = []
        for _ in range(3000):
            ledger = PrivacyLedger(budget)
            fit = ledger.begin_fit("audit", rho=budget.rho)
            data = PrivateData(sh.transform.encode.Encoder(schema).encode(table(codes)),
                               Domain(("age_bin", "diabetes"), (6, 2)), NoiseSource(), ledger, fit)
            sigma1 = math.sqrt(2 / (2 * budget.rho / 3))
            vals.append(data.measure(("age_bin",), sigma1).values[5])
        outs.append(np.array(vals))
    claim = cdp_epsilon(budget.rho / 3, DELTA)
    assert epsilon_lower_bound(outs[0], outs[1], DELTA, alpha=ALPHA).epsilon_lower_bound <= claim
