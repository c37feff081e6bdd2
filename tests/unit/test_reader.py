"""Streaming FHIR reader: layouts, compression, patient references, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

import synthhealth as sh
from synthhealth.fhir import normalize_reference

from ..fhirfactory import bundle, condition, encounter, observation, patient

P1, P2 = "11111111-aaaa-4bbb-8ccc-000000000001", "11111111-aaaa-4bbb-8ccc-000000000002"


def two_patient_bundle() -> dict:
    return bundle([
        condition("c1", f"urn:uuid:{P1}", "38341003"),
        patient(P1, gender="male"),
        patient(P2),
        encounter("e1", f"urn:uuid:{P2}", "2019-01-01"),
        {"resourceType": "Organization", "id": "o1", "name": "Synthetic Org"},
    ])


@pytest.mark.parametrize("name", ["b.json", "b.json.gz", "b.json.xz"])
def test_bundle_compressions_and_grouping(fhir_files, name: str) -> None:
    folder = fhir_files({name: two_patient_bundle()})
    reader = sh.fhir.read(folder)
    records = {r.key: r for r in reader}
    assert set(records) == {f"Patient/{P1}", f"Patient/{P2}"}
    assert [c["id"] for c in records[f"Patient/{P1}"]["Condition"]] == ["c1"]
    assert [e["id"] for e in records[f"Patient/{P2}"]["Encounter"]] == ["e1"]
    assert reader.stats.patients == 2 and reader.stats.not_linked == 1
    assert reader.stats.resources == {"Patient": 2, "Condition": 1, "Encounter": 1, "Organization": 1}


@pytest.mark.parametrize("suffix", ["", ".gz", ".xz"])
def test_ndjson_grouping_by_offset_index(fhir_files, suffix: str) -> None:
    folder = fhir_files({
        f"Condition.000.ndjson{suffix}": [condition("c1", f"Patient/{P2}", "1"), condition("c2", f"Patient/{P1}", "2"),
                                          condition("c3", f"Patient/{P2}", "3")],
        f"Encounter.000.ndjson{suffix}": [encounter("e1", f"Patient/{P1}", "2019-01-01")],
        f"Patient.000.ndjson{suffix}": [patient(P1), patient(P2)],
    })
    records = list(sh.fhir.read(folder))
    assert [r.key for r in records] == [f"Patient/{P1}", f"Patient/{P2}"]
    assert [c["id"] for c in records[1]["Condition"]] == ["c1", "c3"]
    assert [c["id"] for c in records[0]["Condition"]] == ["c2"]
    assert len(records[0]) == 3 and len(records[1]) == 3


def test_streaming_resolves_patients_defined_later(fhir_files) -> None:
    # a resource whose Patient appears in a later Bundle is held back, then resolved
    folder = fhir_files({
        "a.json": bundle([observation("o1", f"urn:uuid:{P1}", "8302-2", 170, "cm")]),
        "b.json": bundle([patient(P1)]),
    })
    items = list(sh.fhir.read(folder).resources())
    assert [(i.resource["id"], i.patient) for i in items] == [(P1, f"Patient/{P1}"), ("o1", f"Patient/{P1}")]


@pytest.mark.parametrize("ref,expected", [
    ("urn:uuid:abc", "urn:uuid:abc"),
    ("Patient/123", "Patient/123"),
    ("https://fhir.example.org/r4/Patient/123", "Patient/123"),
    ("Patient/123/_history/4", "Patient/123"),
    ("Patient?identifier=http://hospital.example/mrn%7C0042", "identifier:http://hospital.example/mrn|0042"),
    ("Group/7", None),
    ("#contained", None),
])
def test_normalize_reference(ref: str, expected: str | None) -> None:
    assert normalize_reference(ref) == expected


def test_reference_styles_resolve_to_one_patient(fhir_files) -> None:
    pat = patient("p-7", identifier=[{"system": "http://hospital.example/mrn", "value": "0042"}])
    folder = fhir_files({
        "Patient.ndjson": [pat],
        "Observation.ndjson": [
            observation("o1", "Patient/p-7", "8302-2", 170, "cm"),
            observation("o2", "https://fhir.example.org/r4/Patient/p-7/_history/2", "8302-2", 171, "cm"),
            observation("o3", "Patient?identifier=http://hospital.example/mrn|0042", "8302-2", 172, "cm"),
            dict(observation("o4", "x", "8302-2", 173, "cm"),
                 subject={"identifier": {"system": "http://hospital.example/mrn", "value": "0042"}}),
        ],
    })
    items = [i for i in sh.fhir.read(folder).resources() if i.resource["resourceType"] == "Observation"]
    assert {i.patient for i in items} == {"Patient/p-7"} and len(items) == 4


def test_subject_pointing_to_group_is_not_a_patient_link(fhir_files) -> None:
    folder = fhir_files({"b.json": bundle([
        patient(P1), {"resourceType": "Group", "id": "g1", "type": "person", "actual": True},
        observation("o1", "urn:uuid:g1", "8302-2", 170, "cm"),
        observation("o2", "Group/g1", "8302-2", 170, "cm"),
    ])})
    reader = sh.fhir.read(folder)
    items = list(reader.resources())
    assert [i.patient for i in items if i.resource["resourceType"] == "Observation"] == [None, None]


def test_single_resource_json_file(fhir_files) -> None:
    folder = fhir_files({"Patient-1.json": patient("one")})
    assert [r.key for r in sh.fhir.read(folder)] == ["Patient/one"]


def test_glob_and_list_sources(fhir_files) -> None:
    folder = fhir_files({"x/a.json": bundle([patient("a")]), "y/b.json": bundle([patient("b")])})
    assert [r.key for r in sh.fhir.read(str(folder / "*" / "*.json"))] == ["Patient/a", "Patient/b"]
    assert [r.key for r in sh.fhir.read([folder / "y", folder / "x" / "a.json"])] == ["Patient/a", "Patient/b"]


def test_demo_data_bundles_and_ndjson() -> None:
    reader = sh.datasets.load_demo_fhir()
    assert sum(1 for _ in reader) == 150
    assert reader.stats.n_resources == 46543
    nd = sh.fhir.read(sh.datasets.demo_ndjson_path())
    records = list(nd)
    assert len(records) == 13 and nd.stats.resources["Condition"] == 555
    assert sum(len(r["MedicationRequest"]) for r in records) == 1745


def test_strict_mode_validates_with_fhir_resources(fhir_files) -> None:
    bad = patient("p1", birthDate="not-a-date")
    folder = fhir_files({"b.json": bundle([bad])})
    assert len(list(sh.fhir.read(folder))) == 1  # lenient: plain dicts
    with pytest.raises(sh.FHIRFormatError) as info:
        list(sh.fhir.read(folder, strict=True))
    assert str(info.value) == (f"{folder / 'b.json'}, entry[0], Patient/p1: invalid resource: "
                               "Patient.birthDate: Date value string does not match spec regex.")
    assert "not-a-date" not in str(info.value)


# ------------------------------------------------------------------ bad input
def test_truncated_json_names_file_and_position(fhir_files) -> None:
    folder = fhir_files({"t.json": b'{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Pat'})
    with pytest.raises(sh.FHIRFormatError) as info:
        list(sh.fhir.read(folder))
    msg = str(info.value)
    assert msg.startswith(f"{folder / 't.json'}: invalid JSON at line 1, column ")
    assert "(truncated file?)" in msg
    assert info.value.file == str(folder / "t.json")


def test_truncated_ndjson_line(fhir_files) -> None:
    folder = fhir_files({"Patient.ndjson": [patient("a"), b'{"resourceType": "Patient", "id": "b", "gend']})
    with pytest.raises(sh.FHIRFormatError) as info:
        list(sh.fhir.read(folder).resources())
    assert str(info.value).startswith(f"{folder / 'Patient.ndjson'}, line 2: invalid JSON at column ")
    assert info.value.line == 2


def test_truncated_xz_stream(tmp_path: Path, fhir_files) -> None:
    folder = fhir_files({"Patient.ndjson.xz": [patient(str(i)) for i in range(200)]})
    f = folder / "Patient.ndjson.xz"
    f.write_bytes(f.read_bytes()[:-40])
    with pytest.raises(sh.FHIRFormatError, match="cannot read file: EOFError"):
        list(sh.fhir.read(folder).resources())


def test_bundle_with_non_object_entry(fhir_files) -> None:
    doc = bundle([patient("a")])
    doc["entry"].append("oops")
    folder = fhir_files({"b.json": doc})
    with pytest.raises(sh.FHIRFormatError) as info:
        list(sh.fhir.read(folder).resources())
    assert str(info.value) == f"{folder / 'b.json'}, entry[1]: Bundle entry must be a JSON object, got str"
    assert info.value.entry == 1


def test_resource_without_resource_type(fhir_files) -> None:
    folder = fhir_files({"Patient.ndjson": [{"id": "x", "gender": "male"}]})
    with pytest.raises(sh.FHIRFormatError) as info:
        list(sh.fhir.read(folder).resources())
    assert str(info.value) == f"{folder / 'Patient.ndjson'}, line 1: line has no 'resourceType'"


def test_unknown_resource_type(fhir_files) -> None:
    folder = fhir_files({"b.json": bundle([patient("a"), {"resourceType": "Spaceship", "id": "s"}])})
    with pytest.raises(sh.FHIRFormatError) as info:
        list(sh.fhir.read(folder).resources())
    assert str(info.value) == f"{folder / 'b.json'}, entry[1]: unknown resource type 'Spaceship' (not a FHIR R4 resource)"


def test_reference_to_patient_that_never_appears(fhir_files) -> None:
    folder = fhir_files({"Patient.ndjson": [patient("a")],
                         "Condition.ndjson": [condition("c9", "Patient/zz-not-here", "1")]})
    with pytest.raises(sh.FHIRFormatError) as info:
        list(sh.fhir.read(folder).resources())
    msg = str(info.value)
    assert msg == (f"{folder / 'Condition.ndjson'}, line 1, Condition/c9: references a patient that never appears "
                   "in the input (relative reference)")
    assert "zz-not-here" not in msg
    with pytest.raises(sh.FHIRFormatError, match="never appears"):
        list(sh.fhir.read(folder))


def test_malformed_subject(fhir_files) -> None:
    folder = fhir_files({"b.json": bundle([patient("a"), dict(condition("c1", "x", "1"), subject="Patient/a")])})
    with pytest.raises(sh.FHIRFormatError, match=r"entry\[1\], Condition/c1: Condition.subject must be a Reference object, got str"):
        list(sh.fhir.read(folder).resources())


def test_duplicate_patient(fhir_files) -> None:
    folder = fhir_files({"a.json": bundle([patient("a")]), "b.json": bundle([patient("a")])})
    with pytest.raises(sh.FHIRFormatError, match="duplicate Patient"):
        list(sh.fhir.read(folder).resources())


def test_empty_folder_and_missing_path(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("nothing")
    with pytest.raises(sh.FHIRFormatError) as info:
        sh.fhir.read(tmp_path / "empty")
    assert str(info.value) == (f"{tmp_path / 'empty'}: folder holds no FHIR file (expected .json, .ndjson, "
                               "optionally compressed .gz/.xz)")
    with pytest.raises(FileNotFoundError, match="input path does not exist"):
        sh.fhir.read(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no file matches the pattern"):
        sh.fhir.read(str(tmp_path / "*.ndjson"))
    with pytest.raises(sh.FHIRFormatError, match="not a FHIR file"):
        sh.fhir.read(tmp_path / "empty" / "notes.txt")


def test_skip_mode_counts_and_continues(fhir_files) -> None:
    doc = bundle([patient("a"), {"resourceType": "Spaceship"}, condition("c1", "urn:uuid:a", "1")])
    doc["entry"].append(17)
    folder = fhir_files({
        "a.json": doc,
        "broken.json": b"{not json",
        "Patient.ndjson": [patient("b"), {"id": "no-type"}],
        "Condition.ndjson": [condition("c2", "Patient/b", "1"), condition("c3", "Patient/ghost", "1")],
    })
    reader = sh.fhir.read(folder, on_error="skip")
    items = list(reader.resources())
    assert sorted(i.resource["id"] for i in items) == ["a", "b", "c1", "c2"]
    assert reader.stats.skipped == {"unknown resourceType": 1, "malformed entry": 1, "invalid JSON": 1,
                                    "no resourceType": 1, "unknown patient": 1}
    assert reader.stats.n_skipped == 5 and len(reader.stats.skipped_examples) == 5


def test_bad_parameters() -> None:
    with pytest.raises(sh.InvalidParameterError, match="The 'on_error' parameter of read must be one of 'raise', 'skip'. Got 'ignore' instead."):
        sh.fhir.read(sh.datasets.demo_fhir_path(), on_error="ignore")
    with pytest.raises(sh.InvalidParameterError, match="'strict' parameter of read must be a bool"):
        sh.fhir.read(sh.datasets.demo_fhir_path(), strict="yes")  # type: ignore[arg-type]


def test_grouping_refuses_mixed_layouts(fhir_files) -> None:
    folder = fhir_files({"a.json": bundle([patient("a")]), "Patient.ndjson": [patient("b")]})
    with pytest.raises(sh.InvalidParameterError, match="Bundles or NDJSON, not both"):
        iter(sh.fhir.read(folder))
    assert len(list(sh.fhir.read(folder).resources())) == 2


def test_grouping_reports_patient_split_across_bundles(fhir_files) -> None:
    folder = fhir_files({"a.json": bundle([patient("a")]),
                         "b.json": bundle([condition("c1", "urn:uuid:a", "1")])})
    with pytest.raises(sh.FHIRFormatError, match="belongs to a patient of another Bundle"):
        list(sh.fhir.read(folder))


def test_ndjson_grouping_with_patients_in_a_later_file(fhir_files) -> None:
    # the Patient file is not named Patient.*: references are resolved after the first pass
    folder = fhir_files({"a-conditions.ndjson": [condition("c1", "Patient/p1", "1")],
                         "z-people.ndjson": [patient("p1")]})
    records = list(sh.fhir.read(folder))
    assert [r.key for r in records] == ["Patient/p1"] and len(records[0]["Condition"]) == 1


def test_logical_identifier_reference_without_system(fhir_files) -> None:
    pat = patient("p1", identifier=[{"system": "http://hospital.example/mrn", "value": "42"}])
    obs = dict(observation("o1", "x", "8302-2", 170, "cm"), subject={"identifier": {"value": "42"}})
    folder = fhir_files({"Patient.ndjson": [pat], "Observation.ndjson": [obs]})
    assert [i.patient for i in sh.fhir.read(folder).resources()] == ["Patient/p1", "Patient/p1"]
