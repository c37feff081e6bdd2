"""One person, several Patient resources: refused by flatten, or merged on request, and counted (issue 14.4)."""

from __future__ import annotations

from typing import Any

import pytest

import synthhealth as sh
from synthhealth.schema import schema_from_dict

from ..fhirfactory import bundle, condition, encounter, observation, patient

SCHEMA = schema_from_dict({
    "synthhealth_schema": 1, "name": "ident", "version": "1", "reference_date": "2020-01-01",
    "attributes": [
        {"name": "sex", "type": "categorical", "categories": ["female", "male"],
         "fhir": {"resource": "Patient", "path": "gender"}},
        {"name": "htn", "type": "boolean", "missing": False,
         "fhir": {"resource": "Condition", "codes": ["sct|38341003"]}},
        {"name": "htn_onset", "type": "numeric", "bounds": [0, 100], "bins": [0, 50, 100],
         "fhir": {"resource": "Condition", "codes": ["sct|38341003"], "aggregate": "age_at_first"}},
        {"name": "visits", "type": "count", "cap": 3, "missing": False, "fhir": {"resource": "Encounter"}},
        {"name": "height_last", "type": "numeric", "unit": "cm", "bounds": [40, 230], "bins": [40, 150, 230],
         "fhir": {"resource": "Observation", "codes": ["loinc|8302-2"], "aggregate": "last"}},
        {"name": "height_mean", "type": "numeric", "unit": "cm", "bounds": [40, 230], "bins": [40, 150, 230],
         "fhir": {"resource": "Observation", "codes": ["loinc|8302-2"], "aggregate": "mean"}},
    ],
})
MRN = "http://hospital.example.org/mrn"


def mrn(value: str, system: str = MRN) -> list[dict[str, Any]]:
    return [{"system": system, "value": value}]


def person_in_two_exports(**second: Any) -> dict[str, Any]:
    """Patient a (hospital 1) and b (hospital 2) are the same person; c is somebody else."""
    a = [patient("a", identifier=mrn("SECRET-123")), encounter("e1", "Patient/a", "2018-01-01"),
         encounter("e2", "Patient/a", "2018-02-01"), observation("o1", "Patient/a", "8302-2", 160.0, "cm", "2015-01-01"),
         condition("c1", "Patient/a", "38341003", "2010-06-15")]
    b = [patient("b", gender=None, **second), encounter("e3", "Patient/b", "2019-01-01"),
         encounter("e4", "Patient/b", "2019-02-01"), observation("o2", "Patient/b", "8302-2", 170.0, "cm", "2019-01-01")]
    c = [patient("c", gender="male", identifier=mrn("SECRET-999")), encounter("e5", "Patient/c", "2019-03-01")]
    return {"a.json": bundle(a), "b.json": bundle(b), "c.json": bundle(c)}


def test_shared_identifier_refused_with_location_and_no_value(fhir_files) -> None:  # type: ignore[no-untyped-def]
    folder = fhir_files(person_in_two_exports(identifier=mrn("SECRET-123")))
    for on_error in ("raise", "skip"):
        with pytest.raises(sh.FHIRFormatError) as info:
            sh.flatten(folder, SCHEMA, on_error=on_error)
        err = info.value
        assert err.resource_id == "Patient/b"
        assert f"Patient/b shares an identifier (system {MRN}) with Patient/a" in str(err)
        assert "duplicate_patients='merge'" in str(err) and "SECRET" not in str(err)


def test_shared_identifier_merged_on_request(fhir_files) -> None:  # type: ignore[no-untyped-def]
    folder = fhir_files(person_in_two_exports(identifier=mrn("SECRET-123")))
    t = sh.flatten(folder, SCHEMA, duplicate_patients="merge")
    assert list(t.index) == ["a", "c"] and t.index.is_unique
    a = t.loc["a"]
    assert a["sex"] == "female"                 # the first Patient's demographics
    assert a["visits"] == 3                     # 4 encounters pooled, then capped at 3: one bounded row
    assert bool(a["htn"]) and a["htn_onset"] == 60.0
    assert a["height_last"] == 170.0 and a["height_mean"] == pytest.approx(165.0)
    rep = sh.report_of(t)
    assert rep is not None and rep.n_patients == 2
    assert rep.identities == {"shared_identifier": 1, "linked": 0, "merged": 1, "groups": 1}
    assert rep.attributes["visits"].capped == 1
    assert "1 people had several Patient resources (1 sharing an identifier, 0 joined by Patient.link): 1 merged" \
        in rep.summary()
    assert t.attrs["synthhealth"]["patient_ids"] == "checked"


def test_patient_link_refused_or_merged(fhir_files) -> None:  # type: ignore[no-untyped-def]
    link = [{"other": {"reference": "Patient/a"}, "type": "replaced-by"}]
    folder = fhir_files(person_in_two_exports(link=link))
    with pytest.raises(sh.FHIRFormatError, match="Patient/b is joined by Patient.link to Patient/a"):
        sh.flatten(folder, SCHEMA)
    t = sh.flatten(folder, SCHEMA, duplicate_patients="merge")
    assert list(t.index) == ["a", "c"] and t.loc["a", "visits"] == 3
    assert sh.report_of(t).identities == {"shared_identifier": 0, "linked": 1, "merged": 1, "groups": 1}  # type: ignore[union-attr]


def test_a_link_to_a_patient_read_later_and_a_chain(fhir_files) -> None:  # type: ignore[no-untyped-def]
    files = person_in_two_exports(identifier=mrn("SECRET-123"))
    # c links to b (read before c) and a to c (read after a): a, b and c are one person
    files["a.json"]["entry"][0]["resource"]["link"] = [{"other": {"reference": "Patient/c"}, "type": "seealso"}]
    t = sh.flatten(fhir_files(files), SCHEMA, duplicate_patients="merge")
    assert list(t.index) == ["a"] and t.loc["a", "visits"] == 3
    assert sh.report_of(t).identities == {"shared_identifier": 1, "linked": 1, "merged": 2, "groups": 1}  # type: ignore[union-attr]


def test_not_the_same_person(fhir_files) -> None:  # type: ignore[no-untyped-def]
    # the same value in another system, an identifier without a system, a link to a patient not in the input
    files = person_in_two_exports(identifier=mrn("SECRET-123", "http://other.example.org/mrn") + [{"value": "SECRET-999"}],
                                  link=[{"other": {"reference": "Patient/elsewhere"}, "type": "seealso"}])
    t = sh.flatten(fhir_files(files), SCHEMA)
    assert list(t.index) == ["a", "b", "c"]
    assert sh.report_of(t).identities == {"shared_identifier": 0, "linked": 0, "merged": 0, "groups": 0}  # type: ignore[union-attr]
    with pytest.raises(sh.InvalidParameterError, match="'duplicate_patients' parameter of flatten"):
        sh.flatten(fhir_files(files, "x"), SCHEMA, duplicate_patients="ignore")


def test_demo_data_has_one_patient_per_person(core_schema: sh.PatientSchema) -> None:
    t = sh.flatten(sh.datasets.demo_fhir_path(), core_schema)
    assert sh.report_of(t).identities["groups"] == 0  # type: ignore[union-attr]


def test_identifier_systems_restrict_what_identifies_a_person(fhir_files) -> None:  # type: ignore[no-untyped-def]
    dl = "urn:oid:2.16.840.1.113883.4.3.25"  # e.g. Synthea's random driver's licence numbers
    files = person_in_two_exports(identifier=mrn("SECRET-123", dl))
    files["a.json"]["entry"][0]["resource"]["identifier"] += mrn("SECRET-123", dl)
    folder = fhir_files(files)
    with pytest.raises(sh.FHIRFormatError, match=f"system {dl}"):
        sh.flatten(folder, SCHEMA)
    t = sh.flatten(folder, SCHEMA, identifier_systems=[MRN])
    assert list(t.index) == ["a", "b", "c"]
    with pytest.raises(sh.InvalidParameterError, match="'identifier_systems' parameter of flatten"):
        sh.flatten(folder, SCHEMA, identifier_systems=MRN)
