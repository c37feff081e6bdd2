"""Flattening: one row per patient, every attribute kind, bounding counted, bad values."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

import synthhealth as sh
from synthhealth.schema import schema_from_dict

from ..fhirfactory import bundle, condition, encounter, medication, observation, patient

RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
ETH = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"


def omb(url: str, code: str) -> dict[str, Any]:
    return {"url": url, "extension": [{"url": "ombCategory", "valueCoding": {
        "system": "urn:oid:2.16.840.1.113883.6.238", "code": code}}, {"url": "text", "valueString": "x"}]}


SCHEMA = schema_from_dict({
    "synthhealth_schema": 1, "name": "unit", "version": "1", "reference_date": "2020-01-01",
    "value_sets": {"htn": ["sct|38341003", "icd10cm|I10"]},
    "attributes": [
        {"name": "sex", "type": "categorical", "categories": ["female", "male", "other"], "other": "other",
         "fhir": {"resource": "Patient", "path": "gender"}},
        {"name": "age", "type": "numeric", "bounds": [0, 100], "bins": {"width": 10}, "integer": True,
         "fhir": {"resource": "Patient", "path": "age", "age_at": "end_of_followup"}},
        {"name": "age_ref", "type": "numeric", "bounds": [0, 100], "bins": {"width": 10},
         "fhir": {"resource": "Patient", "path": "age"}},
        {"name": "birth_year", "type": "numeric", "bounds": [1900, 2020], "bins": {"width": 40},
         "fhir": {"resource": "Patient", "path": "birth_year"}},
        {"name": "race", "type": "categorical", "categories": [{"label": "white", "codes": ["omb|2106-3"]},
                                                               {"label": "black", "codes": ["omb|2054-5"]}],
         "fhir": {"resource": "Patient", "path": "race"}},
        {"name": "ethnicity", "type": "categorical", "categories": [{"label": "hisp", "codes": ["omb|2135-2"]},
                                                                    {"label": "not", "codes": ["omb|2186-5"]}],
         "fhir": {"resource": "Patient", "path": "ethnicity"}},
        {"name": "birth_sex", "type": "categorical", "categories": ["F", "M"],
         "fhir": {"resource": "Patient", "path": "birth_sex"}},
        {"name": "marital", "type": "categorical",
         "categories": [{"label": "married", "codes": ["v3-maritalstatus|M"]}, {"label": "never", "values": ["S"]}],
         "fhir": {"resource": "Patient", "path": "marital_status"}},
        {"name": "dead", "type": "boolean", "missing": False, "fhir": {"resource": "Patient", "path": "deceased"}},
        {"name": "age_death", "type": "numeric", "bounds": [0, 100], "bins": [0, 50, 100],
         "fhir": {"resource": "Patient", "path": "age_at_death"}},
        {"name": "htn", "type": "boolean", "missing": False, "fhir": {"resource": "Condition", "value_set": "htn"}},
        {"name": "htn_onset", "type": "numeric", "bounds": [0, 100], "bins": [0, 50, 100],
         "fhir": {"resource": "Condition", "value_set": "htn", "aggregate": "age_at_first"}},
        {"name": "height_last", "type": "numeric", "unit": "cm", "bounds": [40, 230], "bins": [40, 150, 230],
         "fhir": {"resource": "Observation", "codes": ["loinc|8302-2"], "aggregate": "last"}},
        {"name": "height_first", "type": "numeric", "unit": "cm", "bounds": [40, 230], "bins": [40, 150, 230],
         "fhir": {"resource": "Observation", "codes": ["loinc|8302-2"], "aggregate": "first"}},
        {"name": "height_mean", "type": "numeric", "unit": "cm", "bounds": [40, 230], "bins": [40, 150, 230],
         "fhir": {"resource": "Observation", "codes": ["loinc|8302-2"], "aggregate": "mean"}},
        {"name": "glucose_max", "type": "numeric", "unit": "mg/dL", "bounds": [20, 600], "bins": [20, 100, 600],
         "out_of_bounds": "missing",
         "fhir": {"resource": "Observation", "codes": ["loinc|2339-0"], "aggregate": "max"}},
        {"name": "glucose_min", "type": "numeric", "unit": "mg/dL", "bounds": [20, 600], "bins": [20, 100, 600],
         "fhir": {"resource": "Observation", "codes": ["loinc|2339-0"], "aggregate": "min"}},
        {"name": "sbp", "type": "numeric", "unit": "mm[Hg]", "bounds": [60, 250], "bins": [60, 120, 250],
         "fhir": {"resource": "Observation", "codes": ["loinc|55284-4"], "component": "loinc|8480-6", "aggregate": "last"}},
        {"name": "smoking", "type": "categorical", "other": "unknown",
         "categories": [{"label": "never", "codes": ["sct|266919005"]}, {"label": "unknown", "codes": ["sct|266927001"]}],
         "fhir": {"resource": "Observation", "codes": ["loinc|72166-2"], "aggregate": "last"}},
        {"name": "visits", "type": "count", "cap": 3, "missing": False,
         "fhir": {"resource": "Encounter", "period": {"start": "2015-01-01", "end": "2020-01-01"}}},
        {"name": "admissions", "type": "count", "cap": 5, "missing": False,
         "fhir": {"resource": "Encounter", "encounter_class": ["IMP"]}},
        {"name": "statin", "type": "boolean", "missing": False,
         "fhir": {"resource": "MedicationRequest", "codes": ["rxnorm|316672"]}},
    ],
})


def bp(rid: str, subject: str, sbp: float, when: str) -> dict[str, Any]:
    res = observation(rid, subject, "55284-4", None, None, when)
    res["component"] = [
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
         "valueQuantity": {"value": 80, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
         "valueQuantity": {"value": sbp, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
    ]
    return res


def smoking(rid: str, subject: str, code: str, when: str) -> dict[str, Any]:
    res = observation(rid, subject, "72166-2", None, None, when)
    res["valueCodeableConcept"] = {"coding": [{"system": "http://snomed.info/sct", "code": code}]}
    return res


def alice() -> list[dict[str, Any]]:
    s = "urn:uuid:alice"
    return [
        patient("alice", gender="female", birth="1950-06-15", deceasedDateTime="2018-03-01T10:00:00Z",
                extension=[omb(RACE, "2054-5"), omb(ETH, "2186-5"),
                           {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex", "valueCode": "F"}],
                maritalStatus={"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}]}),
        condition("c1", s, "38341003", "2001-02-03"),
        condition("c2", s, "I10", "1999-12-31", system="http://hl7.org/fhir/sid/icd-10-cm"),
        observation("h1", s, "8302-2", 160.0, "cm", "2010-01-01"),
        observation("h2", s, "8302-2", 170.0, "cm", "2015-01-01T08:00:00Z"),
        observation("h3", s, "8302-2", 1.65, "m", "2016-01-01"),            # other unit: ignored, counted
        observation("h4", s, "8302-2", 999.0, "cm", "2021-01-01"),         # after reference date: ignored
        observation("g1", s, "2339-0", 90.0, "mg/dL", "2012-01-01"),
        observation("g2", s, "2339-0", 700.0, "mg/dL", "2013-01-01"),      # max -> out of bounds -> missing
        bp("bp1", s, 300.0, "2017-01-01"),                                 # clipped to 250
        smoking("s1", s, "266919005", "2010-01-01"),
        smoking("s2", s, "77176002", "2015-01-01"),                         # unknown code -> other
        encounter("e1", s, "2016-01-01"), encounter("e2", s, "2017-01-01"), encounter("e3", s, "2018-01-01"),
        encounter("e4", s, "2019-01-01"), encounter("e5", s, "2019-06-01", cls="IMP"),  # 5 visits -> cap 3
        encounter("e6", s, "2010-01-01", cls="IMP"),                        # outside the visit period
        medication("m1", s, "316672"),
    ]


def bob() -> list[dict[str, Any]]:
    s = "urn:uuid:bob"
    return [
        patient("bob", gender="male", birth="2000-01-02", deceasedDateTime="2022-01-01"),  # dies after ref date
        condition("c3", s, "38341003", "2019-01-01", verificationStatus={"coding": [{"code": "refuted"}]}),
        condition("c4", s, "38341003", "2021-01-01"),                      # after reference date
        dict(observation("h5", s, "8302-2", 180.0, "cm"), status="entered-in-error"),
        encounter("e7", s, "2019-01-01", status="cancelled"),
        medication("m2", s, "999999"),
    ]


def carol() -> list[dict[str, Any]]:
    return [patient("carol", gender="nonbinary-x", birth=None)]


@pytest.fixture
def table(fhir_files) -> pd.DataFrame:
    folder = fhir_files({"a.json": bundle(alice()), "b.json": bundle(bob() + carol())})
    return sh.flatten(sh.fhir.read(folder), SCHEMA)


def test_one_row_per_patient_with_declared_dtypes(table: pd.DataFrame) -> None:
    assert list(table.index) == ["alice", "bob", "carol"]
    assert table.index.name == "patient_id"
    assert list(table.columns) == SCHEMA.names
    assert isinstance(table["sex"].dtype, pd.CategoricalDtype)
    assert list(table["sex"].cat.categories) == ["female", "male", "other"]
    assert str(table["dead"].dtype) == "boolean" and str(table["visits"].dtype) == "Int64"
    assert table["age"].dtype == np.float64


def test_patient_attributes(table: pd.DataFrame) -> None:
    a, b, c = (table.loc[k] for k in ("alice", "bob", "carol"))
    assert a["sex"] == "female" and b["sex"] == "male" and c["sex"] == "other"  # out of domain -> other
    assert a["age"] == 67  # end of follow-up = death 2018-03-01, born 1950-06-15
    assert a["age_ref"] == 69 and b["age_ref"] == 19  # at the reference date 2020-01-01 and b["age"] == 19
    assert math.isnan(c["age"]) and math.isnan(c["birth_year"])
    assert a["birth_year"] == 1950
    assert a["race"] == "black" and pd.isna(b["race"])
    assert a["ethnicity"] == "not" and a["birth_sex"] == "F" and a["marital"] == "married"
    assert bool(a["dead"]) is True and bool(b["dead"]) is False  # bob dies after the reference date
    assert a["age_death"] == 67 and math.isnan(b["age_death"])


def test_event_attributes(table: pd.DataFrame) -> None:
    a, b = table.loc["alice"], table.loc["bob"]
    assert bool(a["htn"]) and a["htn_onset"] == 49  # ICD-10 code on 1999-12-31, the earliest
    assert not bool(b["htn"]) and math.isnan(b["htn_onset"])  # refuted, and after the reference date
    assert a["height_last"] == 170.0 and a["height_first"] == 160.0 and a["height_mean"] == 165.0
    assert math.isnan(b["height_last"])  # entered-in-error
    assert math.isnan(a["glucose_max"])  # 700 is out of bounds, declared out_of_bounds: missing
    assert a["glucose_min"] == 90.0
    assert a["sbp"] == 250.0  # clipped
    assert a["smoking"] == "unknown"  # last value has an undeclared code -> other
    assert a["visits"] == 3 and b["visits"] == 0  # capped; cancelled encounter excluded
    assert a["admissions"] == 2
    assert bool(a["statin"]) and not bool(b["statin"])


def test_report_counts_bounding(table: pd.DataFrame) -> None:
    rep = sh.report_of(table)
    assert rep is not None and rep.n_patients == 3 and rep.schema_hash == SCHEMA.hash
    c = rep.attributes
    assert c["sex"].out_of_domain == 1
    assert c["glucose_max"].out_of_domain == 1 and c["glucose_max"].missing == 3
    assert c["sbp"].clipped == 1
    assert c["visits"].capped == 1
    assert c["height_last"].unit_mismatch == 1
    assert c["smoking"].out_of_domain == 1
    assert c["age"].missing == 1
    text = rep.summary()
    assert "visits: 1 capped" in text and "sbp: 1 clipped to bounds" in text
    assert "height_last: 1 observations with another unit ignored" in text
    assert rep.read_stats["patients"] == 3


def test_order_of_resources_does_not_matter(fhir_files) -> None:
    a = sh.flatten(fhir_files({"a.json": bundle(alice())}, "x"), SCHEMA)
    b = sh.flatten(fhir_files({"a.json": bundle(list(reversed(alice())))}, "y"), SCHEMA)
    pd.testing.assert_frame_equal(a, b)


def test_ndjson_and_bundles_give_the_same_table(fhir_files) -> None:
    res = alice() + bob()
    def rel(r: dict[str, Any]) -> dict[str, Any]:
        r = dict(r)
        if "subject" in r:
            r["subject"] = {"reference": "Patient/" + r["subject"]["reference"].split(":")[-1]}
        return r
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in res:
        by_type.setdefault(f"{r['resourceType']}.ndjson", []).append(rel(r))
    nd = sh.flatten(fhir_files(by_type, "nd"), SCHEMA)
    bd = sh.flatten(fhir_files({"a.json": bundle(alice()), "b.json": bundle(bob())}, "bd"), SCHEMA)
    nd.attrs.clear()
    bd.attrs.clear()
    pd.testing.assert_frame_equal(nd, bd)


def test_patient_records_input(fhir_files) -> None:
    folder = fhir_files({"a.json": bundle(alice())})
    t = sh.flatten(list(sh.fhir.read(folder)), SCHEMA)
    assert t.loc["alice", "visits"] == 3


def test_wrong_value_type_raises_with_location(fhir_files) -> None:
    bad = observation("bad1", "urn:uuid:alice", "8302-2", "tall", "cm")
    folder = fhir_files({"a.json": bundle(alice() + [bad])})
    with pytest.raises(sh.FHIRFormatError) as info:
        sh.flatten(folder, SCHEMA)
    assert str(info.value).endswith("Observation/bad1: Observation.valueQuantity.value must be a number, got str")
    assert "entry[" in str(info.value) and "tall" not in str(info.value)
    t = sh.flatten(folder, SCHEMA, on_error="skip")
    assert sh.report_of(t).attributes["height_last"].bad_value == 1  # type: ignore[union-attr]
    assert t.loc["alice", "height_last"] == 170.0


def test_plain_table_schema_is_refused(flchain_schema: sh.PatientSchema) -> None:
    with pytest.raises(sh.InvalidParameterError, match="must give every attribute a 'fhir' source; 11 attribute"):
        sh.flatten(sh.datasets.demo_fhir_path(), flchain_schema)


def test_bad_records_parameter(core_schema: sh.PatientSchema) -> None:
    with pytest.raises(sh.InvalidParameterError, match="must be a path, a FHIRReader"):
        sh.flatten(42, core_schema)
    with pytest.raises(sh.InvalidParameterError, match="item 0 is a dict"):
        sh.flatten([{"resourceType": "Patient"}], core_schema)
    with pytest.raises(sh.InvalidParameterError, match="The 'schema' parameter of flatten must be a PatientSchema"):
        sh.flatten(sh.datasets.demo_fhir_path(), "core-patient")  # type: ignore[arg-type]


def test_demo_flatten(core_schema: sh.PatientSchema) -> None:
    t = sh.flatten(sh.datasets.demo_fhir_path(), core_schema)
    assert t.shape == (150, len(core_schema)) and t.index.is_unique
    for a in core_schema:
        col = t[a.name]
        if a.type == "numeric":
            vals = col.dropna()
            assert ((vals >= a.bounds[0]) & (vals <= a.bounds[1])).all(), a.name  # type: ignore[index]
        elif a.type == "count":
            assert col.min() >= 0 and col.max() <= a.cap, a.name
        elif a.type == "categorical":
            assert set(col.dropna()) <= set(a.labels), a.name
        if not a.missing:
            assert not col.isna().any(), a.name


def test_more_exclusions_periods_and_other_for_absent(fhir_files) -> None:
    schema = schema_from_dict({
        "synthhealth_schema": 1, "name": "x", "version": "1", "reference_date": "2020-01-01",
        "attributes": [
            {"name": "sex", "type": "categorical", "categories": ["female", "male", "unknown"], "other": "unknown",
             "missing": False, "fhir": {"resource": "Patient", "path": "gender"}},
            {"name": "age", "type": "numeric", "bounds": [0, 100], "bins": [0, 100],
             "fhir": {"resource": "Patient", "path": "age"}},
            {"name": "flu", "type": "boolean", "missing": False, "fhir": {"resource": "Immunization", "codes": ["cvx|140"]}},
            {"name": "peanut", "type": "boolean", "missing": False,
             "fhir": {"resource": "AllergyIntolerance", "codes": ["sct|91935009"]}},
            {"name": "recent", "type": "count", "cap": 9, "missing": False,
             "fhir": {"resource": "Encounter", "period": {"start": "2019-01-01"}}},
        ]})
    s = "urn:uuid:p"
    imm = {"resourceType": "Immunization", "id": "i1", "status": "not-done", "patient": {"reference": s},
           "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "140"}]},
           "occurrenceDateTime": "2015-01-01"}
    allergy = {"resourceType": "AllergyIntolerance", "id": "a1", "patient": {"reference": s},
               "verificationStatus": {"coding": [{"code": "refuted"}]}, "recordedDate": "2015-01-01",
               "code": {"coding": [{"system": "http://snomed.info/sct", "code": "91935009"}]}}
    folder = fhir_files({"a.json": bundle([
        patient("p", gender=None, birthDate="unknown-date"), imm, allergy,
        encounter("e1", s, "2019-05-01"), encounter("e2", s, "2020-05-01"), encounter("e3", s, "2019-06-01", status="planned"),
    ])})
    t = sh.flatten(folder, schema, on_error="skip")
    row = t.loc["p"]
    assert row["sex"] == "unknown" and not bool(row["flu"]) and not bool(row["peanut"])
    assert row["recent"] == 1  # 2020-05-01 is after the reference date; planned excluded
    rep = sh.report_of(t)
    assert rep is not None and rep.attributes["age"].bad_value == 1 and rep.attributes["sex"].out_of_domain == 1
    with pytest.raises(sh.FHIRFormatError, match="Patient.birthDate is not a valid date"):
        sh.flatten(folder, schema)
