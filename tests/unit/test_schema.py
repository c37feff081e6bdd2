"""Schema loading: valid documents load, every problem is reported with its path."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import pytest

import synthhealth as sh
from synthhealth.schema import Code, resolve_system, schema_from_dict


def doc(*attributes: dict[str, Any], **top: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"synthhealth_schema": 1, "name": "t", "version": "1", "reference_date": "2020-01-01",
                         "attributes": list(attributes)}
    d.update(top)
    return d


AGE = {"name": "age", "type": "numeric", "bounds": [0, 100], "bins": {"width": 10},
       "fhir": {"resource": "Patient", "path": "age"}}
SEX = {"name": "sex", "type": "categorical", "categories": ["female", "male"], "fhir": {"resource": "Patient", "path": "gender"}}


def problems(d: dict[str, Any]) -> list[str]:
    with pytest.raises(sh.SchemaError) as info:
        schema_from_dict(d)
    return [str(p) for p in info.value.problems]


def test_bundled_schemas_load(core_schema: sh.PatientSchema, flchain_schema: sh.PatientSchema) -> None:
    assert set(sh.bundled_schemas()) >= {"core-patient", "flchain"}
    assert core_schema.is_fhir and not flchain_schema.is_fhir
    assert core_schema.reference_date == date(2021, 4, 1)
    conds = [a for a in core_schema if a.fhir and a.fhir.resource == "Condition" and a.type == "boolean"]
    labs = [a for a in core_schema if a.fhir and a.fhir.resource == "Observation"]
    assert len(conds) >= 15 and len(labs) >= 8
    assert {"n_encounters_5y", "n_medication_requests_5y"} <= set(core_schema.names)


def test_core_patient_codes_occur_in_synthea(core_schema: sh.PatientSchema, synthea_dir: Path) -> None:
    """Every SNOMED/LOINC/RxNorm code list of core-patient has at least one code seen in the Synthea data."""
    import lzma

    import orjson

    seen: set[tuple[str, str]] = set()
    for f in sorted(synthea_dir.glob("*.json.xz"))[:300]:
        for e in orjson.loads(lzma.open(f).read())["entry"]:
            r = e["resource"]
            for key in ("code", "medicationCodeableConcept", "type"):
                cc = r.get(key)
                for c in (cc if isinstance(cc, list) else [cc]):
                    if isinstance(c, dict):
                        seen.update((x.get("system"), x.get("code")) for x in c.get("coding", []))
    for a in core_schema:
        if a.fhir is None or not a.fhir.codes:
            continue
        synthea_codes = [c.key for c in a.fhir.codes if "icd-10" not in c.system]
        assert any(k in seen for k in synthea_codes), a.name


def test_width_bins_and_defaults() -> None:
    s = schema_from_dict(doc(AGE, SEX))
    assert s["age"].bins == tuple(float(x) for x in range(0, 101, 10))
    assert s["age"].n_bins() == 11  # 10 bins + missing
    assert s["sex"].n_bins() == 3
    assert s["sex"].fhir is not None and s["sex"].fhir.path == "gender"
    assert s.domain_size() == 33


def test_hash_is_stable_and_sensitive() -> None:
    a = schema_from_dict(doc(AGE, SEX))
    b = schema_from_dict(doc(AGE, SEX))
    changed = copy.deepcopy(AGE)
    changed["bounds"] = [0, 110]
    changed["bins"] = {"width": 10}
    c = schema_from_dict(doc(changed, SEX))
    assert a.hash == b.hash != c.hash
    assert len(a.hash) == 64


def test_bounds_lower_above_upper_reports_path() -> None:
    bad = dict(AGE, bounds=[120, 20])
    assert problems(doc(SEX, bad)) == ["attributes[1].bounds: lower 120 > upper 20"]


def test_every_problem_collected_with_paths() -> None:
    d = doc(
        {"name": "x", "type": "colour"},
        dict(AGE, bins=[0, 50, 40, 100]),
        {"name": "sex", "type": "categorical", "categories": ["a", "a"], "other": "zzz"},
        {"name": "n", "type": "count"},
        {"name": "bad name", "type": "boolean"},
        reference_date="2020-13-01",
    )
    got = problems(d)
    assert "reference_date: must be a date written YYYY-MM-DD, got '2020-13-01'" in got
    assert "attributes[0].type: unknown attribute type 'colour' (expected one of categorical, numeric, count, boolean)" in got
    assert "attributes[1].bins: edges must increase strictly: edge 2 (40) <= edge 1 (50)" in got
    assert "attributes[2].categories[1]: duplicate category label 'a'" in got
    assert "attributes[2].other: 'zzz' is not one of the categories" in got
    assert "attributes[3].cap: a count needs 'cap', an int >= 1, got None" in got
    assert any(p.startswith("attributes[4].name: must be an identifier") for p in got)
    assert len(got) == 7


def test_error_message_lists_problems_and_source(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("synthhealth_schema: 1\nname: t\nversion: '1'\nreference_date: 2020-01-01\n"
                 "attributes:\n  - {name: a, type: numeric, bounds: [5, 1], bins: [1, 5]}\n")
    with pytest.raises(sh.SchemaError) as info:
        sh.load_schema(f)
    msg = str(info.value)
    assert msg.startswith(f"1 problem in schema in {f}:")
    assert "attributes[0].bounds: lower 5 > upper 1" in msg
    assert isinstance(info.value, ValueError)


def test_unknown_fhir_path_and_resource() -> None:
    d = doc(
        {"name": "a", "type": "categorical", "categories": ["x"], "fhir": {"resource": "Patient", "path": "eyeColour"}},
        {"name": "b", "type": "boolean", "fhir": {"resource": "Spaceship", "codes": ["sct|1"]}},
        {"name": "c", "type": "boolean", "fhir": {"resource": "Condition", "path": "code.coding", "codes": ["sct|1"]}},
    )
    got = problems(d)
    assert got[0].startswith("attributes[0].fhir.path: unknown FHIR path 'eyeColour' for Patient (expected one of gender, age")
    assert got[1].startswith("attributes[1].fhir.resource: unknown resource 'Spaceship'")
    assert got[2].startswith("attributes[2].fhir.path: unknown FHIR path 'code.coding' for Condition")


def test_type_and_aggregate_compatibility() -> None:
    d = doc(
        {"name": "a", "type": "boolean", "fhir": {"resource": "Patient", "path": "age"}},
        {"name": "b", "type": "numeric", "bounds": [0, 1], "bins": [0, 1],
         "fhir": {"resource": "Condition", "codes": ["sct|1"], "aggregate": "count"}},
        {"name": "c", "type": "numeric", "bounds": [0, 1], "bins": [0, 1],
         "fhir": {"resource": "Condition", "codes": ["sct|1"], "aggregate": "mean"}},
        {"name": "d", "type": "numeric", "bounds": [0, 1], "bins": [0, 1], "fhir": {"resource": "Observation"}},
        {"name": "e", "type": "numeric", "bounds": [0, 1], "bins": [0, 1], "missing": False,
         "fhir": {"resource": "Observation", "codes": ["loinc|1-1"], "aggregate": "last"}},
    )
    got = problems(d)
    assert "attributes[0].fhir.path: Patient path 'age' gives a numeric attribute, not boolean" in got
    assert "attributes[1].fhir.aggregate: aggregate 'count' cannot feed a numeric attribute (it gives count)" in got
    assert "attributes[2].fhir.aggregate: aggregate 'mean' reads Observation.value[x]; it does not apply to Condition" in got
    assert any(p.startswith("attributes[3].fhir.aggregate: is required for a numeric attribute from Observation") for p in got)
    assert "attributes[4].missing: must be true: this FHIR source can be absent for a patient (or declare an 'other' category)" in got


def test_codes_value_sets_and_aliases() -> None:
    d = doc({"name": "dm", "type": "boolean", "fhir": {"resource": "Condition", "value_set": "dm"}},
            value_sets={"dm": ["sct|44054006", {"system": "icd10cm", "code": "E11.9", "display": "Type 2 DM"}]})
    s = schema_from_dict(d)
    codes = s["dm"].fhir.codes  # type: ignore[union-attr]
    assert codes[0] == Code("http://snomed.info/sct", "44054006")
    assert codes[1].system == "http://hl7.org/fhir/sid/icd-10-cm" and codes[1].display == "Type 2 DM"
    assert resolve_system("LOINC") == "http://loinc.org"
    got = problems(doc({"name": "dm", "type": "boolean", "fhir": {"resource": "Condition", "value_set": "nope"}},
                       value_sets={"dm": ["44054006", "sct|1", "sct|1"]}))
    assert "value_sets.dm[0]: code '44054006' has no system: write 'SYSTEM|CODE', e.g. 'sct|44054006'" in got
    assert "value_sets.dm[2]: duplicate code http://snomed.info/sct|1" in got
    assert "attributes[0].fhir.value_set: unknown value set 'nope' (declared: dm)" in got


def test_keys_of_other_types_and_unknown_keys_rejected() -> None:
    got = problems(doc({"name": "a", "type": "boolean", "bounds": [0, 1], "colour": "red"}))
    assert "attributes[0]: unknown key(s) ['colour']" in got
    assert "attributes[0].bounds: does not apply to a boolean attribute" in got


def test_bins_must_match_bounds_and_be_finite() -> None:
    got = problems(doc(dict(AGE, bins=[0, 50, 90])))
    assert got == ["attributes[0].bins: first and last edges (0, 90) must equal bounds (0, 100)"]
    got = problems(doc(dict(AGE, bins=[0, 50, float("inf")])))
    assert got[0].startswith("attributes[0].bins[2]: edges must be finite")


def test_format_version_and_required_keys() -> None:
    got = problems({"synthhealth_schema": 2, "attributes": []})
    assert "synthhealth_schema: must be 1 (the format version this release reads), got 2" in got
    assert "name: must be a non-empty string, got None" in got
    assert any(p.startswith("reference_date: is required") for p in got)
    assert "attributes: must be a non-empty list" in got


def test_invalid_yaml_reports_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("name: [unclosed\n")
    with pytest.raises(sh.SchemaError) as info:
        sh.load_schema(f)
    assert info.value.problems[0].path.startswith("line ")
    assert "invalid YAML" in info.value.problems[0].message


def test_missing_file_and_unknown_bundled_name() -> None:
    with pytest.raises(FileNotFoundError, match="bundled schemas: core-patient, flchain"):
        sh.load_schema("no-such-schema")


def test_period_and_encounter_class() -> None:
    s = schema_from_dict(doc({"name": "n", "type": "count", "cap": 3, "fhir": {
        "resource": "Encounter", "encounter_class": ["IMP"], "period": {"start": "2019-01-01", "end": "2020-01-01"}}}))
    src = s["n"].fhir
    assert src is not None and src.aggregate == "count" and src.encounter_classes == ("IMP",)
    assert src.period is not None and src.period.contains(date(2019, 6, 1)) and not src.period.contains(date(2020, 1, 1))
    got = problems(doc({"name": "n", "type": "count", "cap": 3, "fhir": {
        "resource": "Condition", "encounter_class": ["IMP"], "period": {"start": "2020-01-01", "end": "2019-01-01"}}}))
    assert "attributes[0].fhir.period: start 2020-01-01 must be before end 2019-01-01" in got
    assert "attributes[0].fhir.encounter_class: only applies to resource Encounter" in got
