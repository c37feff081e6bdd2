"""The release report certifies only what it checked (issue 15.4).

It is produced only when the synthetic table is a model's output (provenance: generator, schema
hash, fit id) whose fit is in the given ledger, the fit was not seeded and used secure samplers,
and the internal review of the same files has a privacy verdict that is not a fail. Both reports
carry a sha256 manifest of the files they describe.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

import synthhealth as sh
from synthhealth.exceptions import SynthHealthError
from synthhealth.privacy import PrivacyBudget, PrivacyLedger
from synthhealth.report.provenance import (
    InternalReviewFailedError,
    NotModelOutputError,
    ReleaseRefusedError,
    SeededFitError,
    UnrelatedLedgerError,
    file_provenance,
    table_provenance,
    verify_manifest,
)
from synthhealth.report.verdict import Threshold

KW = {"progress": False, "n_boot": 20, "n_attacks": 100, "random_state": 0}


@pytest.fixture(scope="module")
def flchain() -> tuple[sh.PatientSchema, pd.DataFrame, pd.DataFrame]:
    schema = sh.load_schema("flchain")
    t = sh.read_table(sh.datasets.load_flchain(), schema).sample(1200, random_state=3)
    return schema, t.iloc[:800], t.iloc[800:]


def _fit(schema, train, seeded: bool = False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sh.MST(epsilon=1.0, random_state=0 if seeded else None).fit(train, schema=schema, progress=False)


@pytest.fixture(scope="module")
def secure(flchain):
    schema, train, holdout = flchain
    gen = _fit(schema, train)
    return gen, gen.sample(800)


def test_a_checked_model_output_is_released(flchain, secure, tmp_path: Path) -> None:
    schema, train, holdout = flchain
    gen, syn = secure
    path = sh.write_table(syn, tmp_path / "syn.parquet")
    rep = sh.Report.build(real=train, holdout=holdout, synthetic=syn, model=gen, files={"synthetic table": path},
                          reviewer="Dr. R. Viewer", **KW)
    assert rep.doc["summary"]["verdicts"]["privacy"] != "fail"
    assert rep.release_refusals() == []
    written = rep.save(tmp_path / "out", release=True, formats=("json", "html"))
    assert written["json"].name == "report-release.json"
    doc = json.loads(written["json"].read_text(encoding="utf-8"))
    # no traffic light: it states the guarantee and cites the internal review
    assert doc["summary"]["verdict"] == "n/a" and doc["summary"]["release"] is True
    assert doc["summary"]["headline"].startswith("Differential privacy at the patient level, ε = 1")
    review = {k: v for k, v in next(s for s in doc["sections"] if s["key"] == "review")["facts"]}
    assert review["Internal review id"] == rep.doc["meta"]["report_id"]
    assert review["Reviewer"] == "Dr. R. Viewer"
    assert review["Privacy verdict of the internal review"] == rep.doc["summary"]["verdicts"]["privacy"].upper()
    assert "Fitness-for-use verdict of the internal review" in review
    # the manifest: the synthetic file's sha256, in both reports, and checkable
    (entry,) = doc["meta"]["manifest"]
    assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert rep.doc["meta"]["manifest"] == doc["meta"]["manifest"]
    assert verify_manifest(doc["meta"]["manifest"]) == []
    path.write_bytes(path.read_bytes() + b"x")
    assert verify_manifest(doc["meta"]["manifest"]) == [f"{path}: changed since the report was built"]
    html = written["html"].read_text(encoding="utf-8")
    assert entry["sha256"] in html and "Internal review" in html


def test_provenance_survives_parquet_not_csv(secure, tmp_path: Path) -> None:
    gen, syn = secure
    prov = table_provenance(syn)
    assert prov == {"kind": "synthetic", "generator": gen.name, "schema_hash": gen.schema_.hash,
                    "fit_id": gen.fit_id_, "seeded": False}
    assert file_provenance(sh.write_table(syn, tmp_path / "s.parquet")) == prov
    assert table_provenance(pd.read_parquet(tmp_path / "s.parquet")) == prov
    assert file_provenance(sh.write_table(syn, tmp_path / "s.csv")) is None


def test_refuses_a_table_that_is_not_a_models_output(flchain, secure) -> None:
    schema, train, holdout = flchain
    gen, _ = secure
    # the case: the real training table passed as "synthetic"
    rep = sh.Report.build(real=train, holdout=holdout, synthetic=train, model=gen, **KW)
    with pytest.raises(NotModelOutputError, match="not a model's output") as info:
        rep.to_dict(release=True)
    assert isinstance(info.value, ReleaseRefusedError) and isinstance(info.value, SynthHealthError)
    codes = [c for c, _ in info.value.reasons]
    assert codes[0] == "not_model_output" and "internal_review_failed" in codes  # attack AUC 1.0 as well


def test_refuses_an_unrelated_ledger(flchain, secure, tmp_path: Path) -> None:
    schema, train, holdout = flchain
    _, syn = secure
    empty = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
    rep = sh.Report.build(real=train, holdout=holdout, synthetic=syn, schema=schema, ledger=empty, **KW)
    assert rep.doc["meta"]["fit"]["found"] is False
    # the internal review says so too: its "ε = 0" is that of another ledger
    checks = {c["metric"]: c for c in rep.checks}
    assert checks["guarantee.ledger"]["verdict"] == "fail" and rep.doc["summary"]["verdicts"]["privacy"] == "fail"
    with pytest.raises(UnrelatedLedgerError, match="does not hold fit"):
        rep.save(tmp_path, release=True)
    assert not (tmp_path / "report-release.json").exists()
    # and no ledger at all
    rep = sh.Report.build(real=train, holdout=holdout, synthetic=syn, schema=schema, **KW)
    with pytest.raises(UnrelatedLedgerError, match="No privacy ledger"):
        rep.to_dict(release=True)


def test_refuses_a_seeded_fit(flchain, tmp_path: Path) -> None:
    schema, train, holdout = flchain
    gen = _fit(schema, train, seeded=True)
    rep = sh.Report.build(real=train, holdout=holdout, synthetic=gen.sample(800, random_state=0), model=gen, **KW)
    with pytest.raises(SeededFitError, match="seeded"):
        rep.to_dict(release=True)
    # a preview may be written, marked as such, under another name
    written = rep.save(tmp_path, release=True, preview=True, formats=("json",))
    assert written["json"].name == "report-preview.json"
    doc = json.loads(written["json"].read_text(encoding="utf-8"))
    assert doc["meta"]["preview"] is True and doc["meta"]["notices"][0].startswith("PREVIEW, NOT A RELEASE")
    assert doc["summary"]["headline"].startswith("PREVIEW: not certified for release")


def test_refuses_when_the_internal_privacy_verdict_failed(flchain, secure) -> None:
    schema, train, holdout = flchain
    gen, syn = secure
    strict = {"attacks.dcr.auc": Threshold(0.0, 0.0)}  # a reviewer's threshold that every attack fails
    rep = sh.Report.build(real=train, holdout=holdout, synthetic=syn, model=gen, thresholds=strict, **KW)
    assert rep.doc["summary"]["verdicts"]["privacy"] == "fail"
    with pytest.raises(InternalReviewFailedError, match="privacy verdict is FAIL"):
        rep.to_dict(release=True)


def test_poor_utility_does_not_block_the_release(flchain, secure) -> None:
    schema, train, holdout = flchain
    gen, syn = secure
    harsh = {"utility.tvd1.mean": Threshold(0.0, 0.0, measure="gap")}
    rep = sh.Report.build(real=train, holdout=holdout, synthetic=syn, model=gen, thresholds=harsh, **KW)
    assert rep.doc["summary"]["verdicts"]["utility"] == "fail"
    assert "poor utility is not a privacy risk" in rep.headline
    if rep.doc["summary"]["verdicts"]["privacy"] != "fail":
        rep.to_dict(release=True)  # not refused on utility grounds
