"""The guarantee section (from a ledger) and the threshold checks."""

from __future__ import annotations

import math

import pytest

import synthhealth as sh
from synthhealth.privacy import LedgerEntry, PrivacyBudget, PrivacyLedger
from synthhealth.report.guarantee import guarantee_section, max_tpr, posterior_bound
from synthhealth.report.model import Check, Metric
from synthhealth.report.verdict import DEFAULT_THRESHOLDS, Threshold, judge, load_thresholds, overall


def _ledger(seeded: bool = False) -> PrivacyLedger:
    led = PrivacyLedger(PrivacyBudget(2.0, 1e-6))
    fit = led.begin_fit("AIM", rho=0.02)
    led.charge(LedgerEntry("discrete_gaussian", "marginal(age, sex)", 1.0, 10.0, 0.005, fit, "opendp 0.16", seeded,
                           secure=not seeded))
    led.charge(LedgerEntry("discrete_gaussian", "marginal(age)", 1.0, 10.0, 0.005, fit, "opendp 0.16", seeded,
                           secure=not seeded))
    return led


def test_posterior_bound_by_hand() -> None:
    assert posterior_bound(0.5, 1.0) == pytest.approx(math.e / (math.e + 1))
    assert posterior_bound(0.01, 0.0) == pytest.approx(0.01)
    assert posterior_bound(0.5, 1.0, 0.01) == pytest.approx(math.e / (math.e + 1) + 0.01)
    assert posterior_bound(0.3, 1000.0) == 1.0
    with pytest.raises(ValueError, match="prior"):
        posterior_bound(1.5, 1.0)


def test_max_tpr_by_hand() -> None:
    assert max_tpr(0.01, 1.0, 0.0) == pytest.approx(math.e * 0.01)
    # large FPR: the second branch of the trade-off curve binds
    assert max_tpr(0.5, 1.0, 0.0) == pytest.approx(1 - 0.5 / math.e)
    assert max_tpr(0.01, 0.0, 0.0) == pytest.approx(0.01)


def test_guarantee_section_states_nist_items(core_schema: sh.PatientSchema) -> None:
    led = _ledger()
    sec, info = guarantee_section(led, core_schema, generator="AIM")
    facts = dict(sec.facts)
    assert facts["Unit of privacy"].startswith("patient")
    assert "add or remove" in facts["Neighbouring datasets"]
    assert float(facts["ε spent (all fits on this ledger)"]) == pytest.approx(led.total().epsilon, rel=1e-3)
    assert core_schema.hash[:16] in facts["Assumed public"]
    assert "opendp 0.16" in facts["Noise samplers"]
    assert "Canonne" in facts["Accounting"]
    assert info["epsilon"] == pytest.approx(led.total().epsilon)
    assert info["mechanisms"][0]["count"] == 2 and info["mechanisms"][0]["rho"] == pytest.approx(0.01)
    m = {x.key: x for x in sec.metrics}
    assert m["guarantee.epsilon"].value == pytest.approx(led.total().epsilon)
    assert not any(x.real_data for x in sec.metrics)
    assert "NOT FOR RELEASE" not in sec.intro


def test_guarantee_section_seeded_and_missing(core_schema: sh.PatientSchema) -> None:
    sec, info = guarantee_section(_ledger(seeded=True), core_schema)
    assert info["seeded"] and "NOT FOR RELEASE" in sec.intro
    sec, info = guarantee_section(None, core_schema)
    assert info["has_guarantee"] is False and "NO formal privacy guarantee" in sec.intro


def test_threshold_judges_both_directions_and_gap() -> None:
    lo = Threshold(0.6, 0.7)
    assert [lo.judge(v) for v in (0.5, 0.6, 0.65, 0.71, None, math.nan)] == ["pass", "pass", "warn", "fail", "n/a",
                                                                               "n/a"]
    hi = Threshold(0.8, 0.5, better="higher")
    assert [hi.judge(v) for v in (0.9, 0.6, 0.4)] == ["pass", "warn", "fail"]
    gap = Threshold(0.05, 0.1, measure="gap")
    assert gap.judge(0.70, reference=0.74) == "pass"
    assert gap.judge(0.66, reference=0.74) == "warn"
    assert gap.judge(0.60, reference=0.74) == "fail"
    assert gap.judge(0.60, reference=None) == "n/a"
    with pytest.raises(sh.InvalidParameterError, match="pass_at"):
        Threshold(0.7, 0.6)


def test_judge_uses_patterns_user_first_and_claimed_epsilon() -> None:
    ms = [Metric("attacks.dcr.auc", "DCR AUC", 0.65, "target", reference=0.5),
          Metric("attacks.dcr.epsilon_lower_bound", "ε lower bound", 1.4, "minimize"),
          Metric("utility.unjudged", "x", 0.3, "minimize")]
    checks = {c.metric: c for c in judge(ms, claimed_epsilon=1.0)}
    assert checks["attacks.dcr.auc"].verdict == "warn"
    assert checks["attacks.dcr.epsilon_lower_bound"].verdict == "fail"  # a bound above the claim: accounting broken
    assert "utility.unjudged" not in checks
    checks = {c.metric: c for c in judge(ms, {"attacks.*.auc": Threshold(0.7, 0.8)}, claimed_epsilon=2.0)}
    assert checks["attacks.dcr.auc"].verdict == "pass"
    assert checks["attacks.dcr.epsilon_lower_bound"].verdict == "pass"
    assert "attacks.dcr.epsilon_lower_bound" not in {c.metric for c in judge(ms)}  # no claim: nothing to compare


def test_overall_is_the_worst() -> None:
    mk = [Check("a", "a", 1.0, "", v) for v in ("pass", "warn", "n/a")]
    assert overall(mk) == "warn"
    assert overall(mk + [Check("b", "b", 1.0, "", "fail")]) == "fail"
    assert overall([]) == "n/a"


def test_load_thresholds_validates() -> None:
    th = load_thresholds({"utility.tvd1.mean": {"pass_at": 0.1, "warn_at": 0.2}})
    assert th["utility.tvd1.mean"].judge(0.15) == "warn"
    with pytest.raises(sh.InvalidParameterError, match="pass_at"):
        load_thresholds({"x": {"warn_at": 1}})
    with pytest.raises(sh.InvalidParameterError, match="unknown keys"):
        load_thresholds({"x": {"pass_at": 1, "warn_at": 2, "colour": "red"}})
    assert all(isinstance(v, Threshold) for v in DEFAULT_THRESHOLDS.values())


def test_ci_basis_needs_the_whole_interval() -> None:
    th = Threshold(0.1, 0.1, basis="ci")
    assert th.judge(0.02, ci=(0.0, 0.05)) == "pass"
    assert th.judge(0.08, ci=(0.0, 0.3)) == "warn"      # too wide to tell
    assert th.judge(0.4, ci=(0.3, 0.5)) == "fail"
    assert th.judge(0.4) == "fail"                      # no CI: the value
    gap = Threshold(0.1, 0.2, measure="gap", basis="ci")
    assert gap.judge(0.5, 0.5, (0.47, 0.53)) == "pass"
    assert gap.judge(0.55, 0.5, (0.35, 0.75)) == "warn"  # covers chance, but also a strong attack
    assert gap.judge(0.95, 0.5, (0.9, 1.0)) == "fail"
    assert gap.judge(0.05, 0.5, (0.0, 0.1)) == "fail"    # an inverted attack is an attack too
    assert "whole 95% CI" in gap.rule()
    with pytest.raises(sh.InvalidParameterError, match="'basis'"):
        Threshold(0.1, 0.2, basis="median")  # type: ignore[arg-type]


def test_load_thresholds_rejects_text_numbers() -> None:
    with pytest.raises(sh.InvalidParameterError, match="needs numbers"):
        load_thresholds({"x": {"pass_at": "low", "warn_at": 1}})
