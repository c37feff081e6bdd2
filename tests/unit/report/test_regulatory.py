"""The regulatory appendix (issue 15.5) and the "next steps" box (issue 15.6), in the JSON document,
the HTML and the PDF, generated from the report's own data."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

import synthhealth as sh
from synthhealth.report.regulatory import REGULATORY_GROUPS, next_steps, regulatory_section
from synthhealth.report.render import render_html, render_pdf


@pytest.fixture(scope="module")
def report() -> sh.Report:
    schema = sh.load_schema("flchain")
    t = sh.read_table(sh.datasets.load_flchain(), schema).sample(900, random_state=5)
    train, holdout = t.iloc[:600], t.iloc[600:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gen = sh.MST(epsilon=1.0).fit(train, schema=schema, progress=False)
    syn = gen.sample(600)
    return sh.Report.build(real=train, holdout=holdout, synthetic=syn, model=gen, progress=False, n_boot=20,
                           n_attacks=100, random_state=0, reviewer="A. Reviewer")


def _appendix(doc: dict) -> dict:
    return next(s for s in doc["sections"] if s["key"] == "regulatory")


def _rows(sec: dict, group: str) -> dict[str, str]:
    return {r[0]: r[1] for r in next(g for g in sec["groups"] if g["key"] == group)["rows"]}


def test_internal_appendix_json_fields(report: sh.Report) -> None:
    doc = report.to_dict()
    sec = _appendix(doc)
    assert [g["key"] for g in sec["groups"]] == list(REGULATORY_GROUPS)
    data = sec["data"]
    nist = data["nist"]
    assert nist["unit"] == "patient" and nist["trust_model"] == "central" and nist["curator_trusted"] is True
    assert nist["epsilon"] == pytest.approx(doc["meta"]["privacy"]["epsilon"])
    assert nist["dp_variant"] == ["zcdp"]
    assert nist["secure_samplers"] is True and nist["seeded"] is False
    assert nist["one_row_per_patient"] == ["checked"]
    assert nist["fits_on_ledger"] == 1
    assert nist["audits"]["tests"] == "tests/audit/e2e"
    # the measured WP29 criteria come from the attack metrics of this report
    m = report.metrics()
    so = {x["metric"]: x["value"] for x in data["wp29"]["singling_out"]["measured"]}
    assert so and all(v == m[k]["value"] for k, v in so.items())
    assert data["wp29"]["linkability"]["measured"][0]["value"] == m["attacks.linkability.risk"]["value"]
    assert data["hipaa"]["determination"] is False and len(data["hipaa"]["expert_must_check"]) >= 4
    assert data["edpb"]["model_is_release"] is True
    nist_rows = _rows(sec, "nist")
    assert "Checking the claim" in nist_rows["Implementation correctness"]
    assert "empirical ε lower bound" in nist_rows["Implementation correctness"]
    assert "central" in nist_rows["Trust model"]
    att = _rows(sec, "attestations")
    assert "CHECKED" in att["One Patient record is one person"]
    assert "ATTESTED BY THE SIGNER" in att["The schema is public"]
    signers = sec["signoff"]["signers"]
    assert len(signers) >= 2 and {"name", "role", "date", "signature"} <= set(signers[0])
    assert any(s["name"] == "A. Reviewer" for s in signers)


def test_release_appendix_states_the_guarantee_not_the_measurements(report: sh.Report) -> None:
    doc = report.to_dict(release=True)
    sec = _appendix(doc)
    wp = _rows(sec, "wp29")
    assert all("bounded by the guarantee" in v for v in wp.values())
    assert all("measured" not in x for x in sec["data"]["wp29"].values())
    assert sec["data"]["nist"]["empirical_epsilon_lower_bounds"] is None
    assert report.doc["meta"]["report_id"] in _rows(sec, "nist")["Implementation correctness"]
    # no statistic of the real data: the attack values of the internal report appear nowhere
    text = json.dumps(sec)
    for key in ("attacks.linkability.risk", "attacks.inference.risk"):
        assert key not in text
    assert "next_steps" not in doc["summary"]


def test_appendix_follows_the_ledger() -> None:
    base = {"meta": {"schema": {"name": "s", "version": "1", "hash": "ab"}, "privacy": {
        "has_guarantee": True, "epsilon": 3.0, "delta": 1e-6, "seeded": False, "secure": False,
        "n_insecure_entries": 2, "mechanisms": [], "fits": [
            {"fit_id": "f1", "generator": "aim", "epsilon": 1.0, "accounting": "zcdp", "patient_ids": "attested"},
            {"fit_id": "f2", "generator": "dpvae", "epsilon": 2.0, "accounting": "approx_dp",
             "patient_ids": "attested"}]}, "provenance": {"fit_id": "f2"}, "fit": {"found": True, "epsilon": 2.0}},
        "summary": {"checks": []}, "sections": []}
    sec = regulatory_section(base)
    nist = _rows(sec, "nist")
    assert "NOT SECURE: 2 measurement(s)" in nist["Security of the samplers"]
    assert "ATTESTED" in nist["One row per patient"]
    assert "2 fit(s)" in nist["Accounting across releases"] and "f1" in nist["Accounting across releases"]
    assert "PRV" in nist["DP variant and accountant"] and "zCDP" in nist["DP variant and accountant"]
    assert "the fit that produced this data: ε = 2" in nist["Privacy parameters"]
    assert "ATTESTED BY THE CALLER" in _rows(sec, "attestations")["One Patient record is one person"]


def test_next_steps_keyed_to_each_failure() -> None:
    doc = {"meta": {"schema": {"name": "flchain"}, "generator": "MST", "n_train": 100,
                    "privacy": {"epsilon": 1.0}},
           "summary": {"checks": [
               {"metric": "utility.tvd2.mean", "name": "2-way", "verdict": "fail"},
               {"metric": "bias.rare.retention", "name": "rare", "verdict": "warn"},
               {"metric": "guarantee.seeded", "name": "seeded", "verdict": "fail"},
               {"metric": "attacks.dcr.auc", "name": "auc", "verdict": "fail"},
               {"metric": "utility.tvd1.mean", "name": "1-way", "verdict": "pass"}]},
           "sections": [{"key": "utility", "metrics": [{"key": "utility.tvd2.mean", "details": {
               "worst_pairs": [{"pair": ["age", "kappa"], "tvd": 0.3}]}}]}]}
    steps = next_steps(doc)
    assert [s["metric"] for s in steps] == ["utility.tvd2.mean", "bias.rare.retention", "guarantee.seeded",
                                            "attacks.dcr.auc"]
    cmds = {s["metric"]: [x["command"] for x in s["steps"] if x["command"]] for s in steps}
    texts = {s["metric"]: " ".join(x["text"] for x in s["steps"]) for s in steps}
    assert any("-w age,kappa" in c for c in cmds["utility.tvd2.mean"])          # a workload for the worst pair
    assert any(c.startswith("synthhealth fit") and "-g aim" in c for c in cmds["utility.tvd2.mean"])  # MST vs AIM
    assert any(c.startswith("synthhealth sweep") for c in cmds["utility.tvd2.mean"])  # a larger ε, by a sweep
    assert any("synthhealth schema check" in c for c in cmds["utility.tvd2.mean"])  # fewer attributes
    assert "More patients (100 were used)" in texts["bias.rare.retention"]
    assert "without --seed" in texts["guarantee.seeded"]
    assert "Do not release" in texts["attacks.dcr.auc"]
    # every command names a real CLI command
    from synthhealth.cli import main
    names = set(main.commands)
    for cs in cmds.values():
        for c in cs:
            assert c.split()[0] == "synthhealth" and c.split()[1] in names, c


def test_report_has_next_steps_for_its_failures(report: sh.Report) -> None:
    doc = report.to_dict()
    bad = [c["metric"] for c in doc["summary"]["checks"] if c["verdict"] in ("fail", "warn")]
    assert [s["metric"] for s in doc["summary"]["next_steps"]] == bad


def test_appendix_and_next_steps_rendered(report: sh.Report, tmp_path: Path) -> None:
    doc = report.to_dict()
    page = render_html(doc)
    assert 'id="sec-regulatory"' in page and "NIST SP 800-226" in page and "WP29 Opinion 05/2014" in page
    assert "HIPAA" in page and "EDPB Opinion 28/2024" in page and "signoff-table" in page
    if doc["summary"]["next_steps"]:
        assert 'id="next-steps"' in page and "synthhealth " in page
    rel = render_html(report.to_dict(release=True))
    assert 'id="sec-regulatory"' in rel and "bounded by the guarantee" in rel
    out = render_pdf(doc, tmp_path / "r.pdf")
    assert out.read_bytes()[:4] == b"%PDF"


def test_pdf_running_header_is_not_cut() -> None:
    from synthhealth.report.build import INTERNAL_NOTICE
    from synthhealth.report.render.pdf import _header_lines

    lines = _header_lines(INTERNAL_NOTICE)
    assert " ".join(lines) == INTERNAL_NOTICE
    assert len(lines) >= 2
    long = _header_lines("NOT FOR RELEASE " * 60)
    assert long[-1].endswith("…") and len(long) <= 3


def test_old_document_without_appendix_still_renders() -> None:
    doc = {"format": "synthhealth-report", "format_version": 1, "meta": {}, "summary": {"checks": []},
           "sections": [{"key": "x", "title": "X", "groups": [{"key": "g", "title": "G", "rows": [["a", "b"]]}]}]}
    assert "<h3>G</h3>" in render_html(doc)


def test_appendix_without_a_ledger() -> None:
    schema = sh.load_schema("flchain")
    t = sh.read_table(sh.datasets.load_flchain(), schema).sample(300, random_state=1)
    rep = sh.Report.build(real=t.iloc[:150], holdout=t.iloc[150:], synthetic=t.iloc[:150], schema=schema,
                          progress=False, n_boot=10, n_attacks=50, random_state=0)
    sec = _appendix(rep.to_dict())
    nist = _rows(sec, "nist")
    assert nist["Privacy parameters"] == "no ledger: no guarantee is known"
    assert "not accounted" in nist["Accounting across releases"]
    assert "do not share the model" in _rows(sec, "edpb")["What covers the model"]
    assert "no guarantee is known" in _rows(sec, "wp29")["Singling out"] or "measured" in _rows(sec, "wp29")[
        "Singling out"]
    steps = {s["metric"]: s["steps"] for s in rep.to_dict()["summary"]["next_steps"]}
    assert "No ledger was given" in steps["guarantee.epsilon"][0]["text"]  # no ledger: a failed check, a remedy
    assert "--ledger ledger.json" in steps["guarantee.epsilon"][0]["command"]
