"""The writer on a hand-made schema using what core-patient does not: every event resource, counts of
all events, type-filtered encounters, an observation flag beside its value, marital status, birth sex."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
import yaml

import synthhealth as sh
from synthhealth.fhir import check_bindings, check_references, validate_resource

SCHEMA = sh.load_schema(yaml.safe_load("""
synthhealth_schema: 1
name: generic
version: "1"
reference_date: 2022-01-01
attributes:
  - {name: sex, type: categorical, categories: [female, male], fhir: {resource: Patient, path: gender}}
  - {name: age, type: numeric, bounds: [0, 100], bins: {width: 10}, integer: true,
     fhir: {resource: Patient, path: age}}
  - name: marital
    type: categorical
    categories: [{label: married, codes: ["v3-maritalstatus|M"]}, {label: never, values: [S]}]
    fhir: {resource: Patient, path: marital_status}
  - {name: birth_sex, type: categorical, categories: [F, M], fhir: {resource: Patient, path: birth_sex}}
  - {name: flu, type: boolean, missing: false, fhir: {resource: Immunization, codes: ["cvx|140"]}}
  - {name: n_vaccines, type: count, cap: 5, missing: false, fhir: {resource: Immunization}}
  - {name: latex, type: boolean, missing: false, fhir: {resource: AllergyIntolerance, codes: ["sct|300916003"]}}
  - {name: n_allergies, type: count, cap: 3, missing: false, fhir: {resource: AllergyIntolerance}}
  - {name: a1c_tested, type: boolean, missing: false, fhir: {resource: Observation, codes: ["loinc|4548-4"]}}
  - {name: a1c_last, type: numeric, unit: "%", bounds: [3, 20], bins: [3, 5.7, 6.5, 20],
     fhir: {resource: Observation, codes: ["loinc|4548-4"], aggregate: last}}
  - {name: a1c_first, type: numeric, unit: "%", bounds: [3, 20], bins: [3, 5.7, 6.5, 20],
     fhir: {resource: Observation, codes: ["loinc|4548-4"], aggregate: first}}
  - {name: n_checkups_2021, type: count, cap: 10, missing: false,
     fhir: {resource: Encounter, codes: ["sct|185349003"], period: {start: 2021-01-01, end: 2022-01-01}}}
  - {name: n_visits, type: count, cap: 20, missing: false, fhir: {resource: Encounter}}
  - {name: n_procedures, type: count, cap: 5, missing: false, fhir: {resource: Procedure}}
  - {name: colonoscopy, type: boolean, missing: false, fhir: {resource: Procedure, codes: ["sct|73761001"]}}
  - {name: n_conditions, type: count, cap: 4, missing: false, fhir: {resource: Condition}}
  - {name: htn, type: boolean, missing: false, fhir: {resource: Condition, codes: ["sct|38341003"]}}
  - {name: htn_last_age, type: numeric, bounds: [0, 100], bins: {width: 10},
     fhir: {resource: Condition, codes: ["sct|38341003"], aggregate: age_at_last}}
"""))


def consistent_rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        age = int(rng.integers(0, 101))
        flu, latex, col, htn = (bool(rng.random() < 0.4) for _ in range(4))
        tested = bool(rng.random() < 0.5)
        last = float(np.round(rng.uniform(3, 20), 1)) if tested and rng.random() < 0.8 else None
        first = float(np.round(rng.uniform(3, 20), 1)) if last is not None else None
        checkups = int(rng.integers(0, 11)) if age >= 1 else 0
        rows.append({
            "sex": str(rng.choice(["female", "male"])), "age": float(age),
            "marital": None if rng.random() < 0.3 else str(rng.choice(["married", "never"])),
            "birth_sex": str(rng.choice(["F", "M"])),
            "flu": flu, "n_vaccines": int(flu) + int(rng.integers(0, 5 - int(flu) + 1)),
            "latex": latex, "n_allergies": int(latex) + int(rng.integers(0, 3 - int(latex) + 1)),
            "a1c_tested": tested, "a1c_last": last, "a1c_first": first,
            "n_checkups_2021": checkups, "n_visits": min(20, checkups + int(rng.integers(0, 8))),
            "colonoscopy": col, "n_procedures": int(col) + int(rng.integers(0, 5 - int(col) + 1)),
            "htn": htn, "htn_last_age": float(rng.integers(0, age + 1)) if htn and rng.random() < 0.8 else None,
            "n_conditions": int(htn) + int(rng.integers(0, 4 - int(htn) + 1)),
        })
    return pd.DataFrame(rows)


def read_all(folder: Path) -> list[dict[str, Any]]:
    out = []
    for f in sorted(folder.glob("*.ndjson")):
        out += [orjson.loads(line) for line in f.read_bytes().splitlines()]
    return out


@pytest.mark.parametrize("fmt", ["ndjson", "bundle"])
def test_generic_schema_round_trips_and_validates(tmp_path: Path, fmt: str) -> None:
    table = consistent_rows(250, seed=4)
    rep = sh.fhir.write(table, SCHEMA, tmp_path / "o", format=fmt, patients_per_bundle=25, random_state=2)
    assert rep.mismatches == {}
    back = sh.flatten(tmp_path / "o", SCHEMA)
    for a in SCHEMA:
        want = table[a.name].astype(object).where(table[a.name].notna(), None).tolist()
        got = back[a.name].astype(object).where(back[a.name].notna(), None).tolist()
        assert want == got, a.name
    assert set(rep.resources) == {"Patient", "Encounter", "Condition", "Observation", "Procedure", "Immunization",
                                  "AllergyIntolerance"}
    assert check_references(tmp_path / "o").ok
    if fmt == "ndjson":
        res = read_all(tmp_path / "o")
        assert [p for r in res[::7] for p in validate_resource(r)] == []
        assert [p for r in res for p in check_bindings(r)] == []
        obs = [r for r in res if r["resourceType"] == "Observation"]
        assert any("valueQuantity" not in r for r in obs)  # a test without a result: the flag, not the value
        pats = [r for r in res if r["resourceType"] == "Patient"]
        assert {e["valueCode"] for p in pats for e in p.get("extension", [])} == {"F", "M"}
        assert {p["maritalStatus"]["coding"][0]["code"] for p in pats if "maritalStatus" in p} == {"M", "S"}
        fhirkit = pytest.importorskip("fhirkit")
        assert [str(i) for r in res for i in fhirkit.validate(r)] == []


def test_type_filters_and_undated_events(tmp_path: Path) -> None:
    """Encounters that only the total needs avoid the filtered type; and when every day of a
    newborn's life is taken by a full dated count, the rest are written without a period
    (flatten counts them for the count without a window, and nothing else)."""
    row = {a.name: (False if a.type == "boolean" else 0 if a.type == "count" else None) for a in SCHEMA}
    row.update(sex="female", age=0.0, n_visits=3)
    rep = sh.fhir.write(pd.DataFrame([row]), SCHEMA, tmp_path / "a", random_state=1)
    assert rep.mismatches == {}
    enc = [r for r in read_all(tmp_path / "a") if r["resourceType"] == "Encounter"]
    assert len(enc) == 3 and all("period" in e and e["type"][0]["coding"][0]["code"] != "185349003" for e in enc)
    schema = sh.load_schema({
        "synthhealth_schema": 1, "name": "v", "version": "1", "reference_date": "2022-01-01",
        "attributes": [
            {"name": "age", "type": "numeric", "bounds": [0, 100], "bins": {"width": 10}, "integer": True,
             "fhir": {"resource": "Patient", "path": "age"}},
            {"name": "visits", "type": "count", "cap": 9, "missing": False, "fhir": {"resource": "Encounter"}},
            {"name": "visits_2021", "type": "count", "cap": 9, "missing": False,
             "fhir": {"resource": "Encounter", "period": {"start": "2021-01-01", "end": "2022-01-01"}}}]})
    table = pd.DataFrame({"age": [0.0, 30.0], "visits": [3, 3], "visits_2021": [0, 1]})
    rep = sh.fhir.write(table, schema, tmp_path / "b", random_state=1)
    assert rep.mismatches == {}
    enc = [r for r in read_all(tmp_path / "b") if r["resourceType"] == "Encounter"]
    assert sum("period" not in e for e in enc) == 3  # the newborn's
    back = sh.flatten(tmp_path / "b", schema)
    assert back["visits"].tolist() == [3, 3] and back["visits_2021"].tolist() == [0, 1]
    assert check_references(tmp_path / "b").ok
    assert [p for r in enc for p in validate_resource(r)] == []
