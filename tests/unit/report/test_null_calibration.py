"""Null calibration of the attack checks (issue 15.2).

With a "generator" whose output does not depend on the members (its records come from patients
disjoint from both the members and the non-members), no attack check may fail in more than 5 % of
runs, at demo size (100 members / 50 non-members) and at flchain size; a copy of the training data
passed as synthetic must be flagged every time (attack AUC ≥ 0.9). A few runs by default; ≥ 40 per
size with ``pytest --full``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import synthhealth as sh
from synthhealth.report.attacks import anonymeter, density, distance
from synthhealth.report.data import ReportData
from synthhealth.report.verdict import judge

EPS, DELTA = 1.0, 1e-6


@pytest.fixture(scope="module")
def flchain() -> tuple[sh.PatientSchema, pd.DataFrame]:
    schema = sh.load_schema("flchain")
    return schema, sh.read_table(sh.datasets.load_flchain(), schema)


def _attack_checks(schema: sh.PatientSchema, t: pd.DataFrame, seed: int, n_tr: int, n_ho: int, *,
                   copy: bool = False, fit: bool = False) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(t))
    tr = t.iloc[idx[:n_tr]].reset_index(drop=True)
    ho = t.iloc[idx[n_tr:n_tr + n_ho]].reset_index(drop=True)
    third = t.iloc[idx[n_tr + n_ho:2 * n_tr + n_ho]].reset_index(drop=True)  # disjoint from members and holdout
    syn = tr if copy else third
    if fit:  # a DP generator (MST, ε = 1) fitted on the disjoint patients
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_on = t.iloc[idx[n_tr + n_ho:2 * n_tr + n_ho]]  # keeps the patient ids (one row per patient)
            syn = sh.MST(epsilon=EPS, random_state=seed).fit(fit_on, schema=schema, progress=False).sample(n_tr)
    d = ReportData.from_tables(schema, tr, ho, syn)
    ms = distance.dcr_attack(d, random_state=seed, n_boot=100, n_perm=199)[0]
    ms += density.density_attack(d, random_state=seed, n_boot=100)[0]
    ms += anonymeter.anonymeter_risks(d, n_attacks=200, random_state=seed)[0]
    return [m for m in ms], judge(ms, claimed_epsilon=EPS, claimed_delta=DELTA)


def _false_fail_rate(request, flchain, n_tr: int, n_ho: int, quick: int, fit: bool = False) -> float:
    schema, t = flchain
    runs = 40 if request.config.getoption("--full") else quick
    failed = []
    for seed in range(runs):
        _, checks = _attack_checks(schema, t, 1000 + seed, n_tr, n_ho, fit=fit)
        bad = [c.metric for c in checks if c.verdict == "fail"]
        if bad:
            failed.append((seed, bad))
    rate = len(failed) / runs
    print(f"null calibration {n_tr}/{n_ho}{' (MST fitted on disjoint patients)' if fit else ''}: {len(failed)} of {runs} runs failed an attack check "
          f"({100 * rate:.1f}%): {failed}")
    return rate


def test_null_generator_rarely_fails_demo_size(request, flchain) -> None:
    assert _false_fail_rate(request, flchain, 100, 50, quick=6) <= 0.05


def test_null_generator_rarely_fails_flchain_size(request, flchain) -> None:
    assert _false_fail_rate(request, flchain, 1000, 500, quick=2) <= 0.05


@pytest.mark.parametrize(("n_tr", "n_ho", "quick"), [(100, 50, 2), (1000, 500, 1)])
def test_dp_generator_fitted_on_disjoint_patients_rarely_fails(request, flchain, n_tr: int, n_ho: int,
                                                               quick: int) -> None:
    assert _false_fail_rate(request, flchain, n_tr, n_ho, quick=quick, fit=True) <= 0.05


@pytest.mark.parametrize(("n_tr", "n_ho"), [(100, 50), (1000, 500)])
def test_copy_of_training_data_is_flagged_every_time(request, flchain, n_tr: int, n_ho: int) -> None:
    schema, t = flchain
    runs = 10 if request.config.getoption("--full") else 2
    for seed in range(runs):
        ms, checks = _attack_checks(schema, t, 2000 + seed, n_tr, n_ho, copy=True)
        auc = next(m for m in ms if m.key == "attacks.dcr.auc")
        assert auc.value >= 0.9
        verdicts = {c.metric: c.verdict for c in checks}
        assert verdicts["attacks.dcr.auc"] == "fail"
        assert verdicts["attacks.dcr.share_closer_to_train"] in ("warn", "fail")


def test_partial_copying_is_caught_at_flchain_size(flchain) -> None:
    """Power, not only calibration: 10 % of the synthetic records copied from members, 1000 / 500 patients."""
    schema, t = flchain
    for seed in range(2):
        rng = np.random.default_rng(3000 + seed)
        idx = rng.permutation(len(t))
        tr = t.iloc[idx[:1000]].reset_index(drop=True)
        ho = t.iloc[idx[1000:1500]].reset_index(drop=True)
        third = t.iloc[idx[1500:2500]].reset_index(drop=True)
        syn = pd.concat([tr.iloc[:100], third.iloc[100:]], ignore_index=True)
        ms = distance.dcr_attack(ReportData.from_tables(schema, tr, ho, syn), random_state=seed, n_boot=100,
                                 n_perm=199)[0]
        verdicts = {c.metric: c.verdict for c in judge(ms, claimed_epsilon=EPS, claimed_delta=DELTA)}
        assert verdicts["attacks.dcr.tpr_at_fpr_1pct"] == "fail"
        assert verdicts["attacks.dcr.epsilon_lower_bound"] == "fail"
