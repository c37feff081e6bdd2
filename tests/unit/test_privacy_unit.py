"""The privacy unit enforced (issue 14.4): one row per patient, checked on the ids or attested by the caller."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import synthhealth as sh
from synthhealth.privacy import PrivacyBudget, PrivacyLedger
from synthhealth.report.guarantee import guarantee_section

SCHEMA = sh.load_schema({
    "synthhealth_schema": 1, "name": "unit", "version": "1", "reference_date": "2020-01-01", "patient_id": "mrn",
    "attributes": [{"name": "a", "type": "categorical", "categories": ["x", "y", "z"], "missing": False},
                   {"name": "b", "type": "boolean", "missing": False}],
})


def rows(n: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"mrn": [f"m{i}" for i in range(n)], "a": rng.choice(["x", "y", "z"], n),
                         "b": rng.integers(0, 2, n).astype(bool)})


GENERATORS = [
    lambda: sh.MST(epsilon=1.0, random_state=0),
    lambda: sh.AIM(epsilon=1.0, random_state=0),
    lambda: sh.DPVAE(epsilon=1.0, epochs=1, batch_size=32, hidden_sizes=(8,), latent_size=2, accountant="rdp",
                     device="cpu", random_state=0),
]


@pytest.mark.parametrize("make", GENERATORS, ids=["mst", "aim", "dpvae"])
def test_fit_refuses_duplicated_ids_before_any_measurement(make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    t = sh.read_table(rows(), SCHEMA)
    twice = pd.concat([t, t.iloc[:5]])  # five patients with two rows each
    path = tmp_path / "ledger.json"
    gen = make()
    with pytest.warns(sh.InsecureRandomnessWarning), pytest.raises(sh.DuplicatePatientIdError) as info:
        gen.fit(twice, schema=SCHEMA, ledger=path)
    assert "patient id index 'patient_id': 5 ids appear on more than one row (10 rows)" in str(info.value)
    assert "m0" not in str(info.value)
    doc = json.loads(path.read_text())
    assert [f["status"] for f in doc["fits"]] == ["failed"] and doc["entries"] == []
    # the same, from the schema's declared id column of a table fitted directly
    raw = pd.concat([rows(), rows().iloc[:3]], ignore_index=True)
    with pytest.warns(sh.InsecureRandomnessWarning), pytest.raises(sh.DuplicatePatientIdError, match="column 'mrn': 3 ids"):
        make().fit(raw, schema=SCHEMA)
    # the caller's statement does not override ids that show duplicates
    with pytest.warns(sh.InsecureRandomnessWarning), pytest.raises(sh.DuplicatePatientIdError):
        make().fit(twice, schema=SCHEMA, one_row_per_patient=True)


def test_fit_records_checked_ids(tmp_path: Path) -> None:
    with pytest.warns(sh.InsecureRandomnessWarning):
        gen = sh.MST(epsilon=1.0, random_state=0).fit(sh.read_table(rows(), SCHEMA), schema=SCHEMA)
    assert gen.patient_ids_ == "checked" and gen.ledger_.fits[0]["patient_ids"] == "checked"
    with pytest.warns(sh.InsecureRandomnessWarning):
        direct = sh.MST(epsilon=1.0, random_state=0).fit(rows(), schema=SCHEMA)  # the declared column
    assert direct.patient_ids_ == "checked"
    back = sh.load_model(gen.save(tmp_path / "m"))
    assert back.patient_ids_ == "checked"
    sec, info = guarantee_section(gen.ledger_, SCHEMA)
    facts = dict(sec.facts)
    assert facts["One row per patient"].startswith("checked")
    assert info["fits"][0]["patient_ids"] == "checked" and "NOTE" not in sec.intro


def test_fit_without_ids_needs_the_callers_statement(tmp_path: Path) -> None:
    no_ids = rows().drop(columns=["mrn"])
    with pytest.warns(sh.InsecureRandomnessWarning), pytest.raises(sh.PatientIdError, match="one_row_per_patient=True to MST.fit"):
        sh.MST(epsilon=1.0, random_state=0).fit(no_ids, schema=SCHEMA)
    with pytest.warns(sh.InsecureRandomnessWarning):
        gen = sh.MST(epsilon=1.0, random_state=0).fit(no_ids, schema=SCHEMA, one_row_per_patient=True)
    assert gen.patient_ids_ == "attested"
    doc = json.loads((gen.save(tmp_path / "m") / "model.json").read_text())
    assert doc["patient_ids"] == "attested" and doc["ledger"]["fits"][0]["patient_ids"] == "attested"
    # a table read with the statement carries it into fit
    attested = sh.read_table(no_ids, SCHEMA, one_row_per_patient=True)
    with pytest.warns(sh.InsecureRandomnessWarning):
        again = sh.MST(epsilon=1.0, random_state=0).fit(attested, schema=SCHEMA)
    assert again.ledger_.fits[0]["patient_ids"] == "attested"
    with pytest.raises(sh.InvalidParameterError, match="'one_row_per_patient' parameter of MST.fit"):
        sh.MST(epsilon=1.0).fit(no_ids, schema=SCHEMA, one_row_per_patient=1)  # type: ignore[arg-type]
    # the report's guarantee section says that the guarantee rests on the statement
    sec, info = guarantee_section(gen.ledger_, SCHEMA)
    facts = dict(sec.facts)
    assert facts["One row per patient"].startswith("ATTESTED BY THE CALLER, NOT CHECKED for 1 of 1 fits")
    assert "rests on the caller's statement" in sec.intro and info["fits"][0]["patient_ids"] == "attested"


def test_ledger_records_the_basis(tmp_path: Path) -> None:
    led = PrivacyLedger.open(tmp_path / "l.json", PrivacyBudget(1.0, 1e-6))
    fit = led.begin_fit("example", rho=0.01)
    led.record_patient_ids(fit, "checked")
    assert json.loads((tmp_path / "l.json").read_text())["fits"][0]["patient_ids"] == "checked"
    with pytest.raises(sh.InvalidParameterError, match="'basis' parameter of record_patient_ids"):
        led.record_patient_ids(fit, "trusted")
    with pytest.raises(sh.AccountingError):
        led.record_patient_ids("nope", "checked")


def test_split_keeps_ids_and_sweep_takes_the_statement() -> None:
    t = sh.read_table(rows(200), SCHEMA)
    train, hold = sh.split(t, 0.25, random_state=0)
    assert train.index.name == "patient_id" and not set(train.index) & set(hold.index)
    assert train.attrs["synthhealth"]["patient_ids"] == "checked"
    no_ids = rows(200).drop(columns=["mrn"])
    with pytest.raises(sh.PatientIdError):
        sh.sweep(no_ids.iloc[:150], no_ids.iloc[150:], schema=SCHEMA, epsilons=[1.0], random_state=0,
                 progress=False)
    res = sh.sweep(no_ids.iloc[:150], no_ids.iloc[150:], schema=SCHEMA, epsilons=[1.0], random_state=0,
                   progress=False, one_row_per_patient=True)
    assert [f["patient_ids"] for f in res.ledger.fits] == ["attested"]


def test_cli_refuses_duplicated_ids_and_takes_the_statement(tmp_path: Path) -> None:
    import yaml
    from click.testing import CliRunner

    from synthhealth.cli import main

    schema_file = tmp_path / "s.yaml"
    schema_file.write_text(yaml.safe_dump(SCHEMA.to_dict()), encoding="utf-8")
    dup = pd.concat([rows(), rows().iloc[:4]], ignore_index=True)
    dup["mrn"] = [f"secret-{i % 80}" for i in range(len(dup))]
    dup.to_csv(tmp_path / "dup.csv", index=False)
    run = CliRunner().invoke
    base = ["fit", "-s", str(schema_file), "-g", "mst", "-e", "1", "--seed", "1", "-q"]
    res = run(main, [*base, "-d", str(tmp_path / "dup.csv"), "-o", str(tmp_path / "m1")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "error: the table does not show one row per patient" in res.output
    assert "patient id column 'mrn': 4 ids appear on more than one row (8 rows)" in res.output
    assert "secret" not in res.output
    res = run(main, ["split", "-s", str(schema_file), "-d", str(tmp_path / "dup.csv"), "--train-out",
                     str(tmp_path / "tr.csv"), "--holdout-out", str(tmp_path / "ho.csv"), "-q"])
    assert res.exit_code == 2 and "4 ids appear on more than one row" in res.output
    rows().drop(columns=["mrn"]).to_csv(tmp_path / "no_ids.csv", index=False)
    res = run(main, [*base, "-d", str(tmp_path / "no_ids.csv"), "-o", str(tmp_path / "m2")])
    assert res.exit_code == 2 and "one_row_per_patient=True" in res.output
    res = run(main, [*base, "-d", str(tmp_path / "no_ids.csv"), "-o", str(tmp_path / "m3"), "--one-row-per-patient"])
    assert res.exit_code == 0, res.output
    assert sh.load_model(tmp_path / "m3").ledger_.fits[0]["patient_ids"] == "attested"
    # split keeps the ids; the training side is fitted on checked ids
    rows().to_csv(tmp_path / "ok.csv", index=False)
    res = run(main, ["split", "-s", str(schema_file), "-d", str(tmp_path / "ok.csv"), "--train-out",
                     str(tmp_path / "tr.csv"), "--holdout-out", str(tmp_path / "ho.csv"), "-q"])
    assert res.exit_code == 0, res.output
    assert pd.read_csv(tmp_path / "tr.csv")["patient_id"].str.startswith("m").all()
    res = run(main, [*base, "-d", str(tmp_path / "tr.csv"), "-o", str(tmp_path / "m4")])
    assert res.exit_code == 0, res.output
    assert sh.load_model(tmp_path / "m4").ledger_.fits[0]["patient_ids"] == "checked"


def test_cli_flatten_merges_on_request(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from synthhealth.cli import main

    from ..fhirfactory import bundle, patient, write_json

    ident = [{"system": "http://hospital.example.org/mrn", "value": "SECRET-1"}]
    write_json(tmp_path / "in" / "a.json", bundle([patient("a", identifier=ident)]))
    write_json(tmp_path / "in" / "b.json", bundle([patient("b", identifier=ident)]))
    args = ["flatten", "-s", "core-patient", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "t.csv"), "-q"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and "Patient/b shares an identifier" in res.output and "SECRET" not in res.output
    assert not (tmp_path / "t.csv").exists()
    res = CliRunner().invoke(main, [*args, "--identifier-system", "http://other.example.org/mrn"])
    assert res.exit_code == 0, res.output
    assert pd.read_csv(tmp_path / "t.csv")["patient_id"].tolist() == ["a", "b"]
    res = CliRunner().invoke(main, [*args, "--merge-duplicate-patients", "--overwrite"])
    assert res.exit_code == 0, res.output
    assert "1 people had several Patient resources" in res.output
    assert pd.read_csv(tmp_path / "t.csv")["patient_id"].tolist() == ["a"]
