"""check_references and check_bindings catch what structural validators miss; the writer's date rules."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import synthhealth as sh
from synthhealth.fhir import check_bindings, check_references
from synthhealth.fhir.write import _age, _anniv, _birth_window, _minus, _pick

from ..fhirfactory import bundle, condition, encounter, observation, patient


def test_clean_ndjson_and_bundles(fhir_files: Any) -> None:
    enc = encounter("e1", "Patient/p1", "2019-01-01")
    obs = dict(observation("o1", "Patient/p1", "8302-2", 170.0, "cm"), encounter={"reference": "Encounter/e1"})
    nd = fhir_files({"Patient.ndjson": [patient("p1")], "Encounter.ndjson": [enc], "Observation.ndjson": [obs]}, "nd")
    rep = check_references(nd)
    assert rep.ok and rep.resources == 3 and rep.references == 3 and rep.files == 3
    assert rep.summary().endswith("every reference resolves, every id is unique")
    b = bundle([patient("p2"), condition("c1", "urn:uuid:p2", "38341003")])
    rep = check_references(fhir_files({"b.json": b}, "bd"))
    assert rep.ok and rep.references == 1


def test_every_kind_of_problem_is_found(fhir_files: Any) -> None:
    obs = observation("o1", "Patient/p1", "8302-2", 170.0, "cm")
    obs["encounter"] = {"reference": "Encounter/missing"}
    obs["hasMember"] = [{"reference": "https://elsewhere.example/fhir/Observation/9"}]
    obs["performer"] = [{"reference": "Practitioner?identifier=x|1"}]
    obs["specimen"] = {"reference": "#spec"}
    nested = observation("o2", "Patient/p1", "8302-2", 1.0, "cm")
    nested["extension"] = [{"url": "http://example.org/x", "valueReference": {"reference": "Condition/nope"}}]
    dup = observation("o2", "Patient/p1", "8302-2", 2.0, "cm")
    b1 = bundle([patient("p9"), condition("c1", "urn:uuid:p9", "38341003")])
    b2 = bundle([condition("c2", "urn:uuid:p9", "38341003"), condition("c3", "urn:uuid:zzz", "38341003")])
    b2["entry"].append({"fullUrl": "urn:uuid:c2", "resource": condition("c4", "urn:uuid:c2", "1")})
    folder = fhir_files({"Patient.ndjson": [patient("p1")], "Observation.ndjson": [obs, nested, dup],
                         "b1.json": b1, "b2.json": b2})
    rep = check_references(folder)
    assert not rep.ok
    assert dict(rep.problems) == {
        "unresolved reference": 3,  # Encounter/missing, Condition/nope (in an extension), urn:uuid:zzz
        "external reference": 1,
        "conditional reference": 1,
        "unresolved contained reference": 1,
        "duplicate id": 1,
        "reference to another Bundle": 1,
        "duplicate fullUrl": 1,
    }
    text = "\n".join(rep.examples)
    assert "Observation.ndjson, line 1, Observation/o1, Observation.encounter: unresolved reference" in text
    assert "Observation/o2, Observation.extension[0].valueReference: unresolved reference" in text
    assert "b2.json, entry[0], Condition/c2, Condition.subject: reference to another Bundle" in text
    assert "missing" not in text and "elsewhere" not in text  # no reference values echoed
    assert rep.to_dict()["ok"] is False and "9 problems" in rep.summary()


def test_written_output_tampered_with(core_schema: sh.PatientSchema, tmp_path: Path) -> None:
    import pandas as pd

    row = {a.name: (False if a.type == "boolean" else 2 if a.type == "count" else None) for a in core_schema}
    row.update(sex="female", age=50.0, bmi=22.0)
    out = tmp_path / "o"
    sh.fhir.write(pd.DataFrame([row, row]), core_schema, out, random_state=1)
    assert check_references(out).ok
    lines = (out / "Encounter.ndjson").read_bytes().splitlines(keepends=True)
    (out / "Encounter.ndjson").write_bytes(b"".join(lines[1:]) + lines[-1])  # one lost, one twice
    rep = check_references(out)
    assert rep.problems["duplicate id"] == 1 and rep.problems["unresolved reference"] >= 1


def test_bindings_catch_what_the_models_accept() -> None:
    assert sh.fhir.validate_resource({"resourceType": "Patient", "gender": "blue"}) == []  # fhir.resources accepts it
    assert check_bindings({"resourceType": "Patient", "gender": "blue"}) == [
        "Patient.gender: not a code of the required value set"]
    assert check_bindings({"resourceType": "Observation", "status": "done", "code": {},
                           "component": [{"valueQuantity": {"value": 1, "comparator": "~"}}]}) == [
        "Observation.status: not a code of the required value set",
        "Observation.component[0].valueQuantity.comparator: not a code of the required value set"]
    cond = {"resourceType": "Condition", "clinicalStatus": {"coding": [{"code": "active"}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                               "code": "sure"}]}}
    assert check_bindings(cond) == ["Condition.clinicalStatus: no coding from the required code system",
                                    "Condition.verificationStatus: not a code of the required value set"]
    assert check_bindings({"resourceType": "Bundle", "type": "pile", "entry": [{"request": {"method": "SEND"}}]}) == [
        "Bundle.type: not a code of the required value set",
        "Bundle.entry[0].request.method: not a code of the required value set"]
    assert check_bindings({"resourceType": "MedicationRequest", "status": "active", "intent": "wish"}) == [
        "MedicationRequest.intent: not a code of the required value set"]
    assert check_bindings({"resourceType": "Encounter", "status": "finished"}) == []
    assert check_bindings({"resourceType": "Basic"}) == []


# --------------------------------------------------------------------------------- dates
def test_birth_window_matches_flatten_age_rule() -> None:
    """Every birth date in _birth_window(age, at) gives that completed age at `at`, and the days
    just outside do not (leap days included)."""
    days = [date(2021, 4, 1), date(2020, 2, 29), date(2021, 2, 28), date(2020, 3, 1), date(2019, 12, 31)]
    for at in days:
        t = at.toordinal()
        for age in (0, 1, 3, 4, 17, 60, 110):
            lo, hi = _birth_window(age, t)
            assert all(_age(b, t) == age for b in (lo, lo + 1, hi - 2, hi - 1)), (at, age)
            assert _age(lo - 1, t) == age + 1 and (_age(hi, t) == age - 1 or hi > t)


def test_anniversary_starts_the_age_year() -> None:
    rng = np.random.default_rng(0)
    for _ in range(2000):
        b = date(1900, 1, 1).toordinal() + int(rng.integers(0, 40000))
        k = int(rng.integers(0, 100))
        start, end = _anniv(b, k), _anniv(b, k + 1)
        assert _age(b, start) == k and _age(b, start - 1) == k - 1 and _age(b, end - 1) == k
    leap = date(2000, 2, 29).toordinal()
    assert date.fromordinal(_anniv(leap, 1)) == date(2001, 3, 1)
    assert _age(leap, date(2001, 2, 28).toordinal()) == 0


def test_interval_sets() -> None:
    s = _minus([(0, 10), (20, 30)], 5, 25)
    assert s == [(0, 5), (25, 30)]
    import random

    r = random.Random(0)
    picks = {_pick(s, r) for _ in range(2000)}
    assert picks == set(range(0, 5)) | set(range(25, 30))


@pytest.mark.parametrize("age_at", ["reference_date", "end_of_followup"])
def test_age_rules_of_a_small_schema(tmp_path: Path, age_at: str) -> None:
    """Both age rules, birth year, a windowed count and age at last event, on a hand-made schema."""
    import pandas as pd

    schema = sh.load_schema({
        "synthhealth_schema": 1, "name": "t", "version": "1", "reference_date": "2020-02-29",
        "value_sets": {"htn": ["sct|38341003"]},
        "attributes": [
            {"name": "age", "type": "numeric", "bounds": [0, 100], "bins": {"width": 1}, "integer": True,
             "fhir": {"resource": "Patient", "path": "age", "age_at": age_at}},
            {"name": "born", "type": "numeric", "bounds": [1900, 2020], "bins": {"width": 1}, "integer": True,
             "fhir": {"resource": "Patient", "path": "birth_year"}},
            {"name": "dead", "type": "boolean", "missing": False, "fhir": {"resource": "Patient", "path": "deceased"}},
            {"name": "death_age", "type": "numeric", "bounds": [0, 100], "bins": {"width": 1}, "integer": True,
             "fhir": {"resource": "Patient", "path": "age_at_death"}},
            {"name": "htn_last", "type": "numeric", "bounds": [0, 100], "bins": {"width": 1},
             "fhir": {"resource": "Condition", "value_set": "htn", "aggregate": "age_at_last"}},
            {"name": "visits_2019", "type": "count", "cap": 9, "missing": False,
             "fhir": {"resource": "Encounter", "period": {"start": "2019-01-01", "end": "2020-01-01"}}},
            {"name": "sbp_first", "type": "numeric", "unit": "mm[Hg]", "bounds": [60, 250], "bins": [60, 120, 140, 250],
             "fhir": {"resource": "Observation", "codes": ["loinc|85354-9"], "component": "loinc|8480-6",
                      "aggregate": "first"}},
            {"name": "sbp_mean", "type": "numeric", "unit": "mm[Hg]", "bounds": [60, 250], "bins": [60, 120, 140, 250],
             "fhir": {"resource": "Observation", "codes": ["loinc|85354-9"], "component": "loinc|8480-6",
                      "aggregate": "mean"}},
            {"name": "sbp_max", "type": "numeric", "unit": "mm[Hg]", "bounds": [60, 250], "bins": [60, 120, 140, 250],
             "fhir": {"resource": "Observation", "codes": ["loinc|85354-9"], "component": "loinc|8480-6",
                      "aggregate": "max"}},
        ]})
    rows = []
    for age in (0, 1, 4, 35, 80):
        born = 2019 - age  # born after 28 February of that year
        rows.append({"age": age, "born": born, "dead": False, "death_age": None, "htn_last": None,
                     "visits_2019": 0 if age == 0 else 3, "sbp_first": 110.0, "sbp_mean": 125.0, "sbp_max": 150.0})
    rows.append({"age": 70, "born": 1949, "dead": True, "death_age": 70, "htn_last": 65.0, "visits_2019": 2,
                 "sbp_first": None, "sbp_mean": None, "sbp_max": None})
    table = pd.DataFrame(rows)
    rep = sh.fhir.write(table, schema, tmp_path / "o", random_state=3)
    back = sh.flatten(tmp_path / "o", schema)
    assert rep.mismatches == {}
    for col in ("age", "born", "death_age", "htn_last", "visits_2019"):
        assert back[col].tolist() == pytest.approx(table[col].astype(float).tolist(), nan_ok=True), col
    assert back["sbp_first"].tolist()[:5] == [110.0] * 5 and max(back["sbp_max"].tolist()[:5]) == 150.0
    assert all(120 <= v < 140 for v in back["sbp_mean"].tolist()[:5])
    assert back["dead"].tolist() == [False] * 5 + [True]
