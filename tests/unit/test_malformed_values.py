"""Every malformed value is a located error or a counted skip, never a crash or a silent change (issue 16.2)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest

import synthhealth as sh

from ..fhirfactory import bundle, condition, encounter, observation, patient
from .test_flatten import SCHEMA, bp, smoking

S = "urn:uuid:p"
HTN = "38341003"


def good() -> list[dict[str, Any]]:
    return [
        patient("p", birth="1950-06-15", maritalStatus={"coding": [{"system": "x", "code": "S"}]},
                extension=[{"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex", "valueCode": "F"}],
                identifier=[{"system": "urn:mrn", "value": "1"}]),
        condition("c1", S, HTN, "2010-01-01"),
        observation("o1", S, "8302-2", 170, "cm", "2019-05-01"),
        bp("o2", S, 130, "2019-05-01"),
        smoking("o3", S, "266919005", "2019-05-01"),
        encounter("e1", S, "2018-05-01", cls="IMP"),
    ]


def other_patient() -> list[dict[str, Any]]:
    return [patient("q"), condition("cq", "urn:uuid:q", HTN)]


def _set(index: int, path: tuple[Any, ...], value: Any) -> Callable[[list[dict[str, Any]]], None]:
    def apply(resources: list[dict[str, Any]]) -> None:
        obj: Any = resources[index]
        for p in path[:-1]:
            obj = obj[p]
        obj[path[-1]] = value
    return apply


# (mutation, the message it gives, the attribute whose value is lost or None when the whole resource is skipped)
CASES: dict[str, tuple[Callable[[list[dict[str, Any]]], None], str]] = {
    "condition_status_list": (_set(1, ("status",), ["active"]), "Condition.status must be a string, got a list"),
    "condition_status_object": (_set(1, ("status",), {"code": "x"}), "Condition.status must be a string, got an object"),
    "coding_number": (_set(1, ("code", "coding"), 5), "Condition.code.coding must be a list, got a number"),
    "coding_bool": (_set(1, ("code", "coding"), True), "Condition.code.coding must be a list, got a boolean"),
    "coding_item_string": (_set(1, ("code", "coding"), ["x"]), "Condition.code.coding[] must be a Coding object"),
    "code_number": (_set(1, ("code", "coding", 0, "code"), 38341003), "Condition.code.coding[].code must be a string"),
    "code_element_string": (_set(1, ("code",), "htn"), "Condition.code must be a CodeableConcept object, got a string"),
    "verification_number": (_set(1, ("verificationStatus",), 3),
                            "Condition.verificationStatus must be a CodeableConcept object"),
    "onset_impossible": (_set(1, ("onsetDateTime",), "2020-13-45"),
                         "Condition.onsetDateTime is not a valid date (month or day out of range)"),
    "onset_number": (_set(1, ("onsetDateTime",), 2010), "Condition.onsetDateTime must be a date string, got a number"),
    "observation_date_abcd": (_set(2, ("effectiveDateTime",), "abcd"), "Observation.effectiveDateTime is not a valid date"),
    "observation_code_list_of_numbers": (_set(2, ("code", "coding"), [1, 2]), "Observation.code.coding[] must be a "),
    "component_number": (_set(3, ("component",), 7), "Observation.component must be a list, got a number"),
    "component_item_string": (_set(3, ("component",), ["x"]), "Observation.component[] must be an object"),
    "value_cc_string": (_set(4, ("valueCodeableConcept",), "never"), "Observation.valueCodeableConcept must be an object"),
    "value_cc_coding_number": (_set(4, ("valueCodeableConcept", "coding"), 1),
                               "Observation.valueCodeableConcept.coding must be a list"),
    "quantity_string": (_set(2, ("valueQuantity",), "170 cm"), "Observation.valueQuantity must be an object"),
    "quantity_value_string": (_set(2, ("valueQuantity", "value"), "170"), "Observation.valueQuantity.value must be a number"),
    "encounter_class_list": (_set(5, ("class",), [{"code": "IMP"}]), "Encounter.class must be a Coding object, got a list"),
    "encounter_period_string": (_set(5, ("period",), "2018"), "Encounter.period must be a Period object, got a string"),
    "encounter_start_number": (_set(5, ("period", "start"), 2018), "Encounter.period.start must be a date string"),
    "extension_number": (_set(0, ("extension",), 5), "Patient.extension must be a list, got a number"),
    "extension_bool": (_set(0, ("extension",), False), "Patient.extension must be a list, got a boolean"),
    "extension_item_number": (_set(0, ("extension",), [1]), "Patient.extension[] must be an object, got a number"),
    "birthsex_code_number": (_set(0, ("extension", 0, "valueCode"), 1), "Patient.extension[birthsex].valueCode must be a string"),
    "gender_list": (_set(0, ("gender",), ["female"]), "Patient.gender must be a string, got a list"),
    "birth_impossible": (_set(0, ("birthDate",), "2020-13-45"), "Patient.birthDate is not a valid date"),
    "birth_number": (_set(0, ("birthDate",), 1950), "Patient.birthDate must be a date string, got a number"),
    "deceased_x": (_set(0, ("deceasedDateTime",), "x"), "Patient.deceasedDateTime is not a valid date"),
    "deceased_1": (_set(0, ("deceasedDateTime",), 1), "Patient.deceasedDateTime must be a date string, got a number"),
    "deceased_object": (_set(0, ("deceasedDateTime",), {}), "Patient.deceasedDateTime must be a date string, got an object"),
    "deceased_bool_string": (_set(0, ("deceasedBoolean",), "yes"), "Patient.deceasedBoolean must be a boolean"),
    "marital_coding_number": (_set(0, ("maritalStatus", "coding"), 3), "Patient.maritalStatus.coding must be a list"),
    "identifier_number": (_set(0, ("identifier",), 3), "Patient.identifier must be a list, got a number"),
    "identifier_value_number": (_set(0, ("identifier", 0, "value"), 1), "Patient.identifier[].system and .value"),
    "link_string": (_set(0, ("link",), "Patient/q"), "Patient.link must be a list, got a string"),
}


def _onset_period_string(resources: list[dict[str, Any]]) -> None:
    del resources[1]["onsetDateTime"]
    resources[1]["onsetPeriod"] = "2010"


CASES["onset_period_string"] = (_onset_period_string, "Condition.onsetPeriod must be a Period object, got a string")


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_value_is_located_error_or_counted_skip(fhir_files: Callable[..., Path], case: str) -> None:
    mutate, message = CASES[case]
    resources = copy.deepcopy(good())
    mutate(resources)
    folder = fhir_files({"a.json": bundle(resources + other_patient())})
    with pytest.raises(sh.FHIRFormatError, match=r"a\.json, entry\[\d+\], \w+/\w+: " + _re(message)) as info:
        sh.flatten(folder, SCHEMA)
    assert info.value.entry is not None and info.value.file.endswith("a.json")
    table = sh.flatten(folder, SCHEMA, on_error="skip")
    assert len(table) == 2  # the other patient is untouched
    rep = sh.report_of(table)
    assert rep is not None
    assert sum(rep.malformed.values()) >= 1 and any(message in k for k in rep.malformed), rep.malformed
    assert "malformed values skipped" in rep.summary()


def _re(text: str) -> str:
    import re

    return re.escape(text)


def test_the_good_patient_reads(fhir_files: Callable[..., Path]) -> None:
    table = sh.flatten(fhir_files({"a.json": bundle(good() + other_patient())}), SCHEMA)
    row = table.loc["p"]
    assert bool(row["htn"]) and row["height_last"] == 170 and row["sbp"] == 130 and row["smoking"] == "never"
    assert row["admissions"] == 1 and row["birth_sex"] == "F" and row["marital"] == "never"
    assert sh.report_of(table).malformed == {}  # type: ignore[union-attr]


def test_bad_deceased_is_unknown_not_alive(fhir_files: Callable[..., Path]) -> None:
    for value in ("x", 1, {}):
        res = good()
        res[0]["deceasedDateTime"] = value
        table = sh.flatten(fhir_files({"a.json": bundle(res + other_patient())}, folder=f"d{type(value).__name__}"),
                           SCHEMA, on_error="skip")
        rep = sh.report_of(table)
        assert rep is not None and rep.attributes["dead"].bad_value == 1 and rep.attributes["age_death"].bad_value == 1
        # an unreadable death is unknown (missing, counted), never silently "alive"
        assert table.loc["p", "dead"] is pd.NA and pd.isna(table.loc["p", "age"]) and pd.isna(table.loc["p", "age_death"])
        assert rep.attributes["age"].bad_value == 1 and not bool(table.loc["q", "dead"])


def test_impossible_onset_is_not_dropped_silently(fhir_files: Callable[..., Path]) -> None:
    res = good()
    res[1]["onsetDateTime"] = "2020-13-45"
    table = sh.flatten(fhir_files({"a.json": bundle(res + other_patient())}), SCHEMA, on_error="skip")
    rep = sh.report_of(table)
    assert rep is not None
    assert rep.malformed == {"Condition.onsetDateTime is not a valid date (month or day out of range)": 1}


def test_far_future_events_are_counted(fhir_files: Callable[..., Path]) -> None:
    res = good()
    res[1]["onsetDateTime"] = "9999-12-31"
    res[2]["effectiveDateTime"] = "2999-01-01"
    table = sh.flatten(fhir_files({"a.json": bundle(res + other_patient())}), SCHEMA)
    rep = sh.report_of(table)
    assert rep is not None and rep.after_reference_date == {"Condition": 1, "Observation": 1}
    assert not bool(table.loc["p", "htn"])
    assert "events dated on or after the reference date, not counted: 2" in rep.summary()
    assert sh.report_of(table).to_dict()["after_reference_date"] == {"Condition": 1, "Observation": 1}  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------ reader
def test_duplicate_key_ndjson(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "Patient.ndjson").write_bytes(
        b'{"resourceType":"Patient","id":"q","gender":"male"}\n'
        b'{"resourceType":"Patient","id":"p","resourceType":"Observation"}\n')
    with pytest.raises(sh.FHIRFormatError,
                       match=r"Patient\.ndjson, line 2: the key 'resourceType' appears twice in one object"):
        sh.flatten(folder, SCHEMA)
    table = sh.flatten(folder, SCHEMA, on_error="skip")
    assert list(table.index) == ["q"]
    assert sh.report_of(table).read_stats["skipped"] == {"duplicate JSON key": 1}  # type: ignore[union-attr]


def test_duplicate_key_in_a_pretty_bundle(tmp_path: Path) -> None:
    doc = orjson.dumps(bundle(good()), option=orjson.OPT_INDENT_2).decode()
    doc = doc.replace('"gender": "female"', '"gender": "female",\n      "gender"  :  "male"', 1)
    (tmp_path / "b.json").write_text(doc, encoding="utf-8")
    line = doc[: doc.index('"gender"')].count("\n") + 1
    with pytest.raises(sh.FHIRFormatError, match=r"b\.json, line (\d+): the key 'gender' appears twice") as info:
        sh.flatten(tmp_path / "b.json", SCHEMA)
    assert info.value.line is not None and info.value.line <= line  # the line of the object holding the key


def test_duplicate_key_that_is_not_an_element_name_is_not_shown(tmp_path: Path) -> None:
    (tmp_path / "Patient.ndjson").write_bytes(b'{"resourceType":"Patient","id":"p","Jane Doe":1,"Jane Doe":2}\n')
    with pytest.raises(sh.FHIRFormatError, match="a key that is not an element name") as info:
        sh.flatten(tmp_path, SCHEMA)
    assert "Jane" not in str(info.value)


def test_no_false_duplicate_with_quotes_and_colons_in_values(tmp_path: Path) -> None:
    res = patient("p")
    res["text"] = {"status": "generated", "div": 'a \\": b ": c "x" : "y":'}
    res["identifier"] = [{"system": "urn:oid:1.2", "value": '":":'}]
    (tmp_path / "Patient.ndjson").write_bytes(orjson.dumps(res) + b"\n")
    assert len(sh.flatten(tmp_path, SCHEMA)) == 1


def test_bundle_on_an_ndjson_line(tmp_path: Path) -> None:
    (tmp_path / "Patient.ndjson").write_bytes(orjson.dumps(bundle(good())) + b"\n")
    with pytest.raises(sh.FHIRFormatError, match=r"Patient\.ndjson, line 1, Bundle: the line holds a Bundle"):
        sh.flatten(tmp_path, SCHEMA)
    with pytest.raises(sh.FHIRFormatError, match=r"the input held no patients .*Bundle in NDJSON: 1"):
        sh.flatten(tmp_path, SCHEMA, on_error="skip")


def test_pretty_resource_in_ndjson(tmp_path: Path) -> None:
    (tmp_path / "Patient.ndjson").write_bytes(orjson.dumps(patient("p"), option=orjson.OPT_INDENT_2))
    with pytest.raises(sh.FHIRFormatError, match=r"line 1: invalid JSON at column \d+: a JSON document spread over"):
        sh.flatten(tmp_path, SCHEMA)


def test_ndjson_in_a_json_file(tmp_path: Path) -> None:
    (tmp_path / "export.json").write_bytes(b"\n".join(orjson.dumps(r) for r in good()))
    with pytest.raises(sh.FHIRFormatError, match=r"export\.json: invalid JSON at line 2: .*which is Bulk NDJSON; name it"):
        sh.flatten(tmp_path, SCHEMA)


def test_nested_bundle(tmp_path: Path) -> None:
    outer = bundle(other_patient())
    outer["entry"].append({"resource": bundle(good())})
    (tmp_path / "b.json").write_bytes(orjson.dumps(outer))
    with pytest.raises(sh.FHIRFormatError, match=r"entry\[2\], Bundle: entry.resource is a Bundle"):
        sh.flatten(tmp_path, SCHEMA)
    table = sh.flatten(tmp_path, SCHEMA, on_error="skip")
    assert list(table.index) == ["q"]


@pytest.mark.parametrize(("name", "content"), [
    ("Patient.ndjson", b""),
    ("Patient.ndjson", b"\n\n"),
    ("b.json", orjson.dumps({"resourceType": "Bundle", "type": "collection"})),
    ("b.json", orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": []})),
    ("Observation.ndjson", orjson.dumps(observation("o", "Patient/x", "8302-2", 1, "cm")) + b"\n"),
])
def test_input_without_patients(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    for on_error in ("raise", "skip") if name != "Observation.ndjson" else ("skip",):
        with pytest.raises(sh.FHIRFormatError, match="the input held no patients") as info:
            sh.flatten(tmp_path / name, SCHEMA, on_error=on_error)
        assert info.value.file == str(tmp_path / name)


def test_flatten_of_no_records() -> None:
    with pytest.raises(sh.FHIRFormatError, match="the input held no patients"):
        sh.flatten([], SCHEMA)
