"""synthhealth.fhir.write: round trip with flatten, validity, integrity, no leakage, bad input, determinism."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

import synthhealth as sh
from synthhealth.fhir import check_bindings, check_references, validate_resource
from synthhealth.fhir.write import MANIFEST_NAME, SYNTHETIC_TAG

REF = date(2021, 4, 1)


# ------------------------------------------------------------------------------ helpers
def bin_of(a: sh.Attribute, v: float) -> int:
    edges = np.asarray(a.bins, dtype=float)
    return min(int(np.searchsorted(edges, v, side="right")) - 1, len(edges) - 2)


def differences(schema: sh.PatientSchema, want: pd.DataFrame, got: pd.DataFrame) -> dict[str, int]:
    """Rows that differ, per attribute: exact for categoricals, flags and counts; same bin for numerics."""
    assert len(want) == len(got)
    out: dict[str, int] = {}
    for a in schema:
        x = want[a.name].reset_index(drop=True).astype(object)
        y = got[a.name].reset_index(drop=True).astype(object)
        n = 0
        for u, v in zip(x, y, strict=True):
            mu, mv = pd.isna(u), pd.isna(v)
            if mu or mv:
                n += mu != mv
            elif a.type == "numeric":
                n += bin_of(a, float(u)) != bin_of(a, float(v))
            else:
                n += u != v
        if n:
            out[a.name] = n
    return out


def resources(folder: Path) -> Iterator[dict[str, Any]]:
    """Every resource of an output folder (Bundle entries unpacked)."""
    for f in sorted(folder.iterdir()):
        if f.name.endswith(".ndjson"):
            for line in f.read_bytes().splitlines():
                yield orjson.loads(line)
        elif f.name.endswith(".json") and not f.name.startswith("."):
            for e in orjson.loads(f.read_bytes())["entry"]:
                yield e["resource"]


def strings_of(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from strings_of(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from strings_of(v)


def base_row(schema: sh.PatientSchema) -> dict[str, Any]:
    """A minimal valid row: flags false, counts zero, everything else missing."""
    return {a.name: (False if a.type == "boolean" else 0 if a.type == "count" else None) for a in schema}


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def demo(core_schema: sh.PatientSchema) -> dict[str, Any]:
    """The demo patients flattened (their values stand in for a synthetic table), and the
    identifying data of the real input: distinctive strings (ids, identifiers, telecom, street
    lines) and identity fields (full names, postal codes, birth dates)."""
    real: dict[str, set[Any]] = {"strings": set(), "names": set(), "postal": set(), "births": set()}

    def records() -> Iterator[Any]:
        for rec in sh.fhir.read(sh.datasets.demo_fhir_path()):
            p = rec.patient
            real["strings"].add(p["id"])
            real["births"].add(p.get("birthDate"))
            for n in p.get("name") or ():
                real["names"].add((tuple(n.get("given") or ()), n.get("family")))
            for i in p.get("identifier") or ():
                real["strings"].add(i["value"])
            for t in p.get("telecom") or ():
                real["strings"].add(t["value"])
            for ad in p.get("address") or ():
                real["strings"].update(ad.get("line") or ())
                real["postal"].add(ad.get("postalCode"))
            yield rec

    table = sh.flatten(records(), core_schema)
    table.attrs.clear()  # stands in for a generator's output (a flattened table warns: see below)
    return {"table": table, "real": real}


@pytest.fixture(scope="module")
def written(demo: dict[str, Any], core_schema: sh.PatientSchema, tmp_path_factory: pytest.TempPathFactory
            ) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("written")
    nd = sh.fhir.write(demo["table"], core_schema, base / "nd", random_state=7, source="urn:synthhealth:test-model")
    bd = sh.fhir.write(demo["table"], core_schema, base / "bd", format="bundle", patients_per_bundle=7,
                       random_state=7, source="urn:synthhealth:test-model")
    return {"nd": base / "nd", "bd": base / "bd", "nd_report": nd, "bd_report": bd}


@pytest.fixture(scope="module")
def all_resources(written: dict[str, Any]) -> list[dict[str, Any]]:
    return list(resources(written["nd"]))


# ------------------------------------------------------------------------------ round trip
def test_round_trip_ndjson(demo: dict[str, Any], written: dict[str, Any], core_schema: sh.PatientSchema) -> None:
    back = sh.flatten(written["nd"], core_schema)
    assert differences(core_schema, demo["table"], back) == {}
    report = written["nd_report"]
    assert report.mismatches == {} and report.inconsistent_patients == 0
    assert report.n_patients == 150 and report.resources["Patient"] == 150
    assert sh.report_of(back).summary().endswith("no value was outside its declared domain")  # type: ignore[union-attr]


@pytest.mark.parametrize("bundle_type", ["transaction", "collection"])
def test_round_trip_bundles(demo: dict[str, Any], core_schema: sh.PatientSchema, tmp_path: Path,
                            bundle_type: str) -> None:
    table = demo["table"].iloc[:40]
    rep = sh.fhir.write(table, core_schema, tmp_path / "b", format="bundle", bundle_type=bundle_type,
                        patients_per_bundle=6, random_state=3)
    assert rep.files == [f"bundle-{i:06d}.json" for i in range(1, 8)]  # 40 patients, 6 per Bundle
    docs = [orjson.loads((tmp_path / "b" / f).read_bytes()) for f in rep.files]
    assert {d["type"] for d in docs} == {bundle_type}
    entries = [e for d in docs for e in d["entry"]]
    assert all(e["fullUrl"] == "urn:uuid:" + e["resource"]["id"] for e in entries)
    assert all(("request" in e) == (bundle_type == "transaction") for e in entries)
    refs = [r for e in entries for r in re.findall(r'"reference":"([^"]+)"', orjson.dumps(e["resource"]).decode())]
    assert refs and all(r.startswith("urn:uuid:") for r in refs)
    assert differences(core_schema, table, sh.flatten(tmp_path / "b", core_schema)) == {}


def test_demo_table_exercises_every_attribute_kind(demo: dict[str, Any], core_schema: sh.PatientSchema) -> None:
    """The round trip above covers every kind of attribute of core-patient, with both states of each flag."""
    table = demo["table"]
    kinds = set()
    for a in core_schema:
        src = a.fhir
        assert src is not None
        kinds.add((a.type, src.resource, src.path or src.aggregate, src.component is not None,
                   bool(src.encounter_classes)))
        col = table[a.name]
        assert col.notna().any(), a.name
        if a.type == "boolean":
            assert set(col.dropna()) == {True, False}, a.name
        if a.type == "count":
            assert col.max() > 0, a.name
    assert len(kinds) == 18
    assert (table["n_encounters_5y"] == 40).any()  # a capped count
    assert table["age_at_death"].notna().sum() > 10


def test_random_consistent_tables_round_trip_exactly(core_schema: sh.PatientSchema, tmp_path: Path) -> None:
    table = random_table(core_schema, 300, seed=1)
    rep = sh.fhir.write(table, core_schema, tmp_path / "o", random_state=11)
    assert rep.mismatches == {}
    assert differences(core_schema, table, sh.flatten(tmp_path / "o", core_schema)) == {}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3, 4])
def test_random_consistent_tables_round_trip_exactly_large(core_schema: sh.PatientSchema, tmp_path: Path,
                                                            seed: int) -> None:
    table = random_table(core_schema, 3000, seed=seed)
    rep = sh.fhir.write(table, core_schema, tmp_path / "o", random_state=seed, format="bundle",
                        patients_per_bundle=50)
    assert rep.mismatches == {}
    assert differences(core_schema, table, sh.flatten(tmp_path / "o", core_schema)) == {}
    assert check_references(tmp_path / "o").ok


def test_edge_rows_round_trip(core_schema: sh.PatientSchema, tmp_path: Path) -> None:
    rows = []
    b = base_row(core_schema)
    # a flag without its onset age: a Condition without onset date
    rows.append({**b, "sex": "female", "age": 60.0, "hypertension": True})
    # age 0, values on bin edges and bounds, counts at their caps
    rows.append({**b, "sex": "male", "age": 0.0, "bmi": 70.0, "height": 40.0, "weight": 2.0, "hba1c": 6.5,
                 "creatinine": 0.1, "egfr": 0.0, "n_encounters_5y": 40, "n_inpatient_5y": 5, "n_emergency_5y": 5,
                 "n_medication_requests_5y": 60, "statin": True})
    # died at 0, the oldest age, deceased without a known death age
    rows.append({**b, "sex": "unknown", "age": 0.0, "deceased": True, "age_at_death": 0.0, "n_encounters_5y": 3})
    rows.append({**b, "sex": "other", "age": 110.0, "deceased": True, "age_at_death": 110.0, "diabetes": True,
                 "diabetes_onset_age": 110.0, "smoking_status": "current"})
    rows.append({**b, "sex": "female", "age": 75.0, "deceased": True})
    # no age at all (no birthDate): events still dated, nothing derived from a birth
    rows.append({**b, "race": "asian", "ethnicity": "hispanic_or_latino", "ldl": 190.0, "opioid": True,
                 "n_medication_requests_5y": 2})
    # a child born inside the 5-year window with a medication flag but no request in the window
    rows.append({**b, "sex": "male", "age": 2.0, "antihypertensive": True, "colonoscopy": True})
    # dead before the window opens, with nothing in it
    rows.append({**b, "sex": "female", "age": 30.0, "deceased": True, "age_at_death": 30.0, "asthma": True})
    table = pd.DataFrame(rows)
    rep = sh.fhir.write(table, core_schema, tmp_path / "o", random_state=5)
    assert rep.mismatches == {}
    back = sh.flatten(tmp_path / "o", core_schema)
    assert differences(core_schema, table, back) == {}
    pats = {p["id"]: p for p in resources(tmp_path / "o") if p["resourceType"] == "Patient"}
    ordered = list(pats.values())
    assert "deceasedBoolean" in ordered[4] and "birthDate" not in ordered[5]
    conds = [r for r in resources(tmp_path / "o") if r["resourceType"] == "Condition"]
    assert any("onsetDateTime" not in c for c in conds)  # row 0: flag without onset
    meds = [r for r in resources(tmp_path / "o") if r["resourceType"] == "MedicationRequest"
            and r["subject"]["reference"] == "Patient/" + ordered[6]["id"]]
    assert len(meds) == 1 and "authoredOn" not in meds[0]  # no date outside the window exists in its lifetime


def test_onset_at_the_current_age(core_schema: sh.PatientSchema, tmp_path: Path) -> None:
    """Born on the reference date's anniversary, a patient has no day of their current age before it:
    births must leave room for an onset at the current age (1 row in 365 would fail otherwise)."""
    b = base_row(core_schema)
    rows = [{**b, "sex": "female", "age": float(k % 7), "hypertension": True, "hypertension_onset_age": float(k % 7)}
            for k in range(1500)]
    rows += [{**b, "sex": "male", "age": 40.0, "deceased": True, "age_at_death": 40.0, "diabetes": True,
              "diabetes_onset_age": 40.0}] * 300
    table = pd.DataFrame(rows)
    rep = sh.fhir.write(table, core_schema, tmp_path / "o", random_state=9)
    assert rep.mismatches == {}
    assert differences(core_schema, table, sh.flatten(tmp_path / "o", core_schema)) == {}


def test_inconsistent_rows_are_written_closest_and_reported(core_schema: sh.PatientSchema, tmp_path: Path) -> None:
    b = base_row(core_schema)
    rows = [
        {**b, "sex": "female", "age": 50.0, "n_encounters_5y": 1, "n_inpatient_5y": 2, "n_emergency_5y": 1},
        {**b, "sex": "male", "age": 50.0, "deceased": False, "age_at_death": 40.0},
        {**b, "sex": "male", "age": 50.0, "hypertension": False, "hypertension_onset_age": 30.0},
        {**b, "sex": "female", "age": 10.0, "diabetes": True, "diabetes_onset_age": 50.0},
        {**b, "sex": "female", "age": 60.0, "deceased": True, "age_at_death": 80.0},
        {**b, "sex": "female", "age": 60.0},  # consistent
    ]
    table = pd.DataFrame(rows)
    rep = sh.fhir.write(table, core_schema, tmp_path / "o", random_state=5)
    back = sh.flatten(tmp_path / "o", core_schema)
    diff = differences(core_schema, table, back)
    assert rep.mismatches == diff == {"n_encounters_5y": 1, "age_at_death": 2, "hypertension_onset_age": 1,
                                      "diabetes_onset_age": 1}
    assert rep.inconsistent_patients == 5
    assert back["n_inpatient_5y"].tolist()[0] == 2 and back["n_encounters_5y"].tolist()[0] == 3  # classes kept
    assert back["hypertension"].tolist()[2] is False or not back["hypertension"].tolist()[2]  # the flag wins
    assert back["age"].tolist()[4] == 60  # age wins over the age at death
    text = rep.summary()
    assert "5 rows are inconsistent in themselves" in text and "n_encounters_5y: 1" in text


def test_the_report_counts_exactly_what_flatten_gives_back(demo: dict[str, Any], core_schema: sh.PatientSchema,
                                                           tmp_path: Path) -> None:
    """Columns drawn independently (a product of marginals): most rows are inconsistent somewhere.
    The writer's in-memory flatten must count exactly the differences the real flatten finds, and
    only attributes that depend on others may differ."""
    rng = np.random.default_rng(0)
    src = demo["table"]
    table = pd.DataFrame({c: src[c].to_numpy(dtype=object)[rng.integers(0, len(src), 600)] for c in src.columns})
    table = table.astype({c: src[c].dtype for c in src.columns})
    rep = sh.fhir.write(table, core_schema, tmp_path / "o", random_state=1)
    diff = differences(core_schema, table, sh.flatten(tmp_path / "o", core_schema))
    assert rep.mismatches == diff
    assert set(diff) == {"age_at_death", "hypertension_onset_age", "diabetes_onset_age", "n_encounters_5y"}
    assert rep.inconsistent_patients > 200


# ----------------------------------------------------------------------------- validity
def _shapes(res: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One resource per distinct structure (type + set of element paths)."""
    seen: dict[Any, dict[str, Any]] = {}

    def paths(o: Any, p: str = "") -> Iterator[str]:
        if isinstance(o, dict):
            for k, v in o.items():
                yield from paths(v, f"{p}.{k}")
        elif isinstance(o, list):
            for v in o:
                yield from paths(v, p + "[]")
        else:
            yield p

    for r in res:
        seen.setdefault((r["resourceType"], frozenset(paths(r))), r)
    return list(seen.values())


def test_every_resource_shape_validates_with_fhir_resources(all_resources: list[dict[str, Any]],
                                                             written: dict[str, Any]) -> None:
    shapes = _shapes(all_resources)
    assert len({r["resourceType"] for r in shapes}) == 6
    sample = shapes + all_resources[:: max(1, len(all_resources) // 300)]
    problems = [(r["resourceType"], e) for r in sample for e in validate_resource(r)]
    assert problems == []
    bundle = orjson.loads((written["bd"] / "bundle-000001.json").read_bytes())
    assert validate_resource(bundle) == []


@pytest.mark.slow
def test_every_resource_validates_with_fhir_resources(all_resources: list[dict[str, Any]],
                                                       written: dict[str, Any]) -> None:
    problems = [(r["resourceType"], e) for r in all_resources for e in validate_resource(r)]
    assert problems == []
    for f in sorted(written["bd"].glob("bundle-*.json")):
        assert validate_resource(orjson.loads(f.read_bytes())) == [], f.name


def test_fhirkit_agrees(all_resources: list[dict[str, Any]], written: dict[str, Any]) -> None:
    fhirkit = pytest.importorskip("fhirkit", reason="fhirkit-rs (independent Rust validator) is not installed")
    problems = [(r["resourceType"], str(i)) for r in all_resources for i in fhirkit.validate(r)]
    assert problems == []
    for f in sorted(written["bd"].glob("bundle-*.json")):
        assert [str(i) for i in fhirkit.validate(f.read_bytes())] == [], f.name
    # and it does catch a broken resource
    assert fhirkit.validate({"resourceType": "Observation", "code": {"text": "x"}})


def test_required_bindings(all_resources: list[dict[str, Any]], written: dict[str, Any]) -> None:
    assert [(r["resourceType"], p) for r in all_resources for p in check_bindings(r)] == []
    bundle = orjson.loads((written["bd"] / "bundle-000001.json").read_bytes())
    assert check_bindings(bundle) == []
    genders = {r.get("gender") for r in all_resources if r["resourceType"] == "Patient"}
    assert genders <= {"male", "female", "other", "unknown"}


def test_ucum_units_on_every_observation(all_resources: list[dict[str, Any]], core_schema: sh.PatientSchema) -> None:
    units = {c.code: a.unit for a in core_schema if a.fhir and a.fhir.resource == "Observation" and a.unit
             for c in [a.fhir.component or a.fhir.codes[0]]}
    n = 0
    for r in all_resources:
        if r["resourceType"] != "Observation":
            continue
        quantities = [(r["code"]["coding"][0]["code"], r["valueQuantity"])] if "valueQuantity" in r else []
        quantities += [(c["code"]["coding"][0]["code"], c["valueQuantity"]) for c in r.get("component", [])]
        assert quantities or "valueCodeableConcept" in r
        for code, q in quantities:
            assert q["system"] == "http://unitsofmeasure.org" and q["code"] == q["unit"] == units[code]
            assert isinstance(q["value"], (int, float))
            n += 1
        assert r["category"][0]["coding"][0]["code"] in ("vital-signs", "laboratory", "social-history")
    assert n > 1000


# ---------------------------------------------------------------------------- integrity
def test_references_resolve_and_ids_are_unique(written: dict[str, Any]) -> None:
    for key in ("nd", "bd"):
        rep = check_references(written[key])
        assert rep.ok, rep.summary()
        assert rep.resources == written[f"{key}_report"].n_resources
        assert rep.references > 1.4 * rep.resources  # every subject, and most encounters


def test_dates_inside_each_lifetime(all_resources: list[dict[str, Any]]) -> None:
    patients = {"Patient/" + r["id"]: r for r in all_resources if r["resourceType"] == "Patient"}
    checked = 0
    for r in all_resources:
        if r["resourceType"] == "Patient":
            continue
        p = patients[r["subject"]["reference"]]
        birth = p["birthDate"]
        end = p.get("deceasedDateTime", "9999")
        days = [v[:10] for k, v in r.items() if k in ("onsetDateTime", "recordedDate", "effectiveDateTime",
                                                      "issued", "authoredOn", "performedDateTime")]
        if r["resourceType"] == "Encounter":
            days += [r["period"]["start"], r["period"]["end"]]
        for d in days:
            assert birth <= d[:10] < REF.isoformat(), r["resourceType"]
            assert d <= end, r["resourceType"]
            checked += 1
    assert checked > 5000


def test_encounter_links_and_classes(all_resources: list[dict[str, Any]], demo: dict[str, Any]) -> None:
    enc = {"Encounter/" + r["id"]: r for r in all_resources if r["resourceType"] == "Encounter"}
    classes = {r["class"]["code"] for r in enc.values()}
    assert classes == {"AMB", "IMP", "EMER"}
    for r in all_resources:
        if "encounter" in r:
            e = enc[r["encounter"]["reference"]]
            assert e["subject"] == r["subject"]
            when = r.get("effectiveDateTime") or r.get("onsetDateTime") or r.get("authoredOn") \
                or r.get("performedDateTime")
            assert e["period"]["start"][:10] == when[:10]
    assert sum(r["class"]["code"] == "IMP" for r in enc.values()) >= int(demo["table"]["n_inpatient_5y"].sum())


# --------------------------------------------------------------------- synthetic identity
def test_no_string_of_the_real_input_in_the_output(demo: dict[str, Any], written: dict[str, Any]) -> None:
    """Nothing identifying of the real input is copied: the writer never sees it (the table holds
    values only, and its index is not written), and identities are drawn from faker's tables.
    Single given or family names can coincide by chance (Synthea and faker draw on the same
    public US name lists), so names are compared whole."""
    real = demo["real"]
    distinctive = real["strings"] | {str(i) for i in demo["table"].index}  # ids, SSNs, MRNs, phones, street lines
    assert len(distinctive) > 900 and min(len(s) for s in distinctive) >= 8
    for key in ("nd", "bd"):
        values = {s for f in written[key].iterdir() for s in strings_of(orjson.loads(f.read_bytes()))} \
            if key == "bd" else {s for r in resources(written[key]) for s in strings_of(r)}
        assert len(values) > 5000 and not values & distinctive  # no value of the output is a real one
    text = (written["nd"] / "Patient.ndjson").read_text(encoding="utf-8")
    assert [s for s in distinctive if s in text] == []  # nor part of one of the identities
    pats = [r for r in resources(written["nd"]) if r["resourceType"] == "Patient"]
    assert not {(tuple(n["given"]), n["family"]) for p in pats for n in p["name"]} & real["names"]
    assert not {a["postalCode"] for p in pats for a in p["address"]} & real["postal"]
    assert len({p["birthDate"] for p in pats} & real["births"]) < 10  # chance coincidences only


def test_identities_are_synthetic(all_resources: list[dict[str, Any]]) -> None:
    pats = [r for r in all_resources if r["resourceType"] == "Patient"]
    assert all(p["identifier"][0]["system"] == sh.fhir.IDENTIFIER_SYSTEM for p in pats)
    assert all(p["identifier"][0]["value"].startswith("SYN-") for p in pats)
    assert all(p["address"][0]["postalCode"] < "00500" for p in pats)  # never assigned by the USPS
    assert all(re.fullmatch(r"\d{3}-555-01\d\d", p["telecom"][0]["value"]) for p in pats)  # fictional numbers
    assert all(p["telecom"][1]["value"].endswith("@example.com") for p in pats)
    assert len({p["name"][0]["family"] for p in pats}) > 50


def test_synthetic_tag_and_source_on_every_resource(all_resources: list[dict[str, Any]],
                                                    written: dict[str, Any]) -> None:
    for r in all_resources:
        assert SYNTHETIC_TAG in r["meta"]["tag"]
        assert r["meta"]["source"] == "urn:synthhealth:test-model"
        assert r["meta"]["security"][0]["code"] == "HTEST"
    bundle = orjson.loads((written["bd"] / "bundle-000001.json").read_bytes())
    assert SYNTHETIC_TAG in bundle["meta"]["tag"]
    ids = [r["id"] for r in all_resources]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", i) for i in ids)


def test_manifest(written: dict[str, Any]) -> None:
    man = orjson.loads((written["nd"] / MANIFEST_NAME).read_bytes())
    report = written["nd_report"]
    assert man["transactionTime"] == "2021-04-01T00:00:00Z" and man["error"] == []
    assert {o["type"]: o["count"] for o in man["output"]} == report.resources
    assert all((written["nd"] / o["url"]).is_file() for o in man["output"])
    ext = man["extension"]["synthhealth"]
    assert ext["synthetic"] is True and ext["patients"] == 150 and ext["source"] == "urn:synthhealth:test-model"
    assert ext["schema_hash"] == report.schema_hash
    assert sorted(p.name for p in written["nd"].iterdir()) == sorted([MANIFEST_NAME, *report.files])
    assert report.to_dict()["n_resources"] == report.n_resources
    assert "Bulk NDJSON" in report.summary() and "every row flattens back to itself" in report.summary()


# ------------------------------------------------------------------------ determinism
def test_same_seed_same_bytes(demo: dict[str, Any], core_schema: sh.PatientSchema, tmp_path: Path) -> None:
    table = demo["table"].iloc[:30]
    sh.fhir.write(table, core_schema, tmp_path / "a", random_state=42)
    sh.fhir.write(table, core_schema, tmp_path / "b", random_state=np.random.default_rng(42))
    sh.fhir.write([table.iloc[:7], table.iloc[7:]], core_schema, tmp_path / "c", random_state=42)  # chunks
    sh.fhir.write(table, core_schema, tmp_path / "d", random_state=43)
    for f in (tmp_path / "a").iterdir():
        assert (tmp_path / "b" / f.name).read_bytes() == f.read_bytes()
        assert (tmp_path / "c" / f.name).read_bytes() == f.read_bytes()
    assert (tmp_path / "d" / "Patient.ndjson").read_bytes() != (tmp_path / "a" / "Patient.ndjson").read_bytes()


def test_file_inputs(demo: dict[str, Any], core_schema: sh.PatientSchema, tmp_path: Path) -> None:
    table = demo["table"].iloc[:20]
    sh.write_table(table, tmp_path / "t.parquet")
    sh.write_table(table, tmp_path / "t.csv")
    sh.fhir.write(table, core_schema, tmp_path / "a", random_state=1)
    sh.fhir.write(tmp_path / "t.parquet", core_schema, tmp_path / "b", random_state=1)
    sh.fhir.write(str(tmp_path / "t.csv"), core_schema, tmp_path / "c", random_state=1)
    for f in (tmp_path / "a").iterdir():
        assert (tmp_path / "b" / f.name).read_bytes() == f.read_bytes()
    assert differences(core_schema, table, sh.flatten(tmp_path / "c", core_schema)) == {}


def test_typed_tables_are_checked_like_read_table(demo: dict[str, Any], core_schema: sh.PatientSchema) -> None:
    """The writer's vectorised check of already-typed tables gives what read_table gives."""
    from synthhealth.fhir.write import _fast_typed

    for table in (demo["table"], random_table(core_schema, 200, seed=8)):
        fast = _fast_typed(table, core_schema)
        assert fast is not None
        slow = sh.read_table(table, core_schema, one_row_per_patient=True)  # random_table has no ids
        slow.attrs.clear()
        pd.testing.assert_frame_equal(fast, slow)
    # anything else goes to read_table, which decides and words the problems
    odd = demo["table"].astype({"sex": object})
    assert _fast_typed(odd, core_schema) is not None
    odd.iloc[0, odd.columns.get_loc("sex")] = " female "  # read_table strips it
    assert _fast_typed(odd, core_schema) is None
    assert _fast_typed(demo["table"].astype({"deceased": str}), core_schema) is None
    assert _fast_typed(demo["table"].astype({"n_inpatient_5y": float}), core_schema) is None
    assert _fast_typed(demo["table"].drop(columns=["bmi"]), core_schema) is None


def test_progress_bar(demo: dict[str, Any], core_schema: sh.PatientSchema, tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    rep = sh.fhir.write(iter([demo["table"].iloc[:4]]), core_schema, tmp_path / "o", random_state=1, progress=True)
    assert rep.n_patients == 4 and "writing FHIR" in capsys.readouterr().err


def test_a_flattened_table_warns(demo: dict[str, Any], core_schema: sh.PatientSchema, tmp_path: Path) -> None:
    table = demo["table"].iloc[:3].copy()
    table.attrs["synthhealth"] = {"kind": "flattened"}
    with pytest.warns(sh.PrivacyLeakWarning, match="REAL patients' values"):
        sh.fhir.write(table, core_schema, tmp_path / "o", random_state=1)


# ---------------------------------------------------------------------------- bad input
def test_bad_table_lists_every_problem(demo: dict[str, Any], core_schema: sh.PatientSchema, tmp_path: Path) -> None:
    table = demo["table"].iloc[:6].astype(object).drop(columns=["bmi"])
    table.iloc[1, table.columns.get_loc("sex")] = "martian"
    table.iloc[2, table.columns.get_loc("hba1c")] = 25.5
    table.iloc[3, table.columns.get_loc("n_inpatient_5y")] = 9
    table.iloc[4, table.columns.get_loc("deceased")] = None
    table.iloc[5, table.columns.get_loc("age")] = -3
    with pytest.raises(sh.DataValidationError) as info:
        sh.fhir.write(table, core_schema, tmp_path / "o", random_state=1)
    lines = info.value.violations
    assert lines == [
        "column 'sex' (sex): 1 values not among the declared categories (rows 1)",
        "column 'age' (age): 1 values outside the bounds [0, 110] (rows 5)",
        "column 'deceased' (deceased): 1 missing values, but the schema declares 'missing: false' (rows 4)",
        "column 'bmi' (bmi): missing from the table",
        "column 'hba1c' (hba1c): 1 values outside the bounds [3, 20] (rows 2)",
        "column 'n_inpatient_5y' (n_inpatient_5y): 1 counts above the cap 5 (rows 3)",
    ]
    assert "martian" not in str(info.value) and "25.5" not in str(info.value)
    assert not (tmp_path / "o").exists() and list(tmp_path.iterdir()) == []


def test_a_bad_chunk_leaves_nothing_behind(demo: dict[str, Any], core_schema: sh.PatientSchema,
                                           tmp_path: Path) -> None:
    good = demo["table"].iloc[:5]
    bad = demo["table"].iloc[5:8].copy()
    bad["bmi"] = 99.0
    with pytest.raises(sh.DataValidationError, match=r"chunk 1: column 'bmi' \(bmi\): 3 values outside the bounds"):
        sh.fhir.write(iter([good, bad]), core_schema, tmp_path / "o", random_state=1)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_not_overwritten(demo: dict[str, Any], core_schema: sh.PatientSchema,
                                            tmp_path: Path) -> None:
    table = demo["table"].iloc[:3]
    out = tmp_path / "o"
    sh.fhir.write(table, core_schema, out, random_state=1)
    before = (out / "Patient.ndjson").read_bytes()
    with pytest.raises(sh.InvalidParameterError, match="names a folder that is not empty.*Pass overwrite=True"):
        sh.fhir.write(table, core_schema, out, random_state=2)
    assert (out / "Patient.ndjson").read_bytes() == before
    sh.fhir.write(table, core_schema, out, random_state=2, overwrite=True, format="bundle")
    assert (out / "Patient.ndjson").exists() is False and (out / "bundle-000001.json").exists()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(sh.InvalidParameterError, match="without a synthhealth manifest"):
        sh.fhir.write(table, core_schema, other, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    sh.fhir.write(table, core_schema, tmp_path / "empty", random_state=1)  # an empty folder is fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "mine", "o"]  # no temporary folder left


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"format": "csv"}, "The 'format' parameter of write must be one of 'ndjson', 'bundle'. Got 'csv' instead."),
    ({"bundle_type": "batch"}, "The 'bundle_type' parameter of write must be one of 'transaction', 'collection'."),
    ({"patients_per_bundle": 0}, "The 'patients_per_bundle' parameter of write must be an int in [1, inf)."),
    ({"source": "my model"}, "The 'source' parameter of write must be a non-empty string without whitespace"),
    ({"overwrite": "yes"}, "The 'overwrite' parameter of write must be a bool."),
    ({"random_state": -1}, "The 'random_state' parameter must be None, a non-negative int"),
])
def test_bad_parameters(core_schema: sh.PatientSchema, tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    table = pd.DataFrame([base_row(core_schema)])
    with pytest.raises(sh.InvalidParameterError) as info:
        sh.fhir.write(table, core_schema, tmp_path / "o", **kwargs)
    assert str(info.value).startswith(message)
    assert not (tmp_path / "o").exists()


def test_bad_table_and_schema_types(core_schema: sh.PatientSchema, flchain_schema: sh.PatientSchema,
                                    tmp_path: Path) -> None:
    with pytest.raises(sh.InvalidParameterError, match="The 'table' parameter of write must be a pandas DataFrame"):
        sh.fhir.write(42, core_schema, tmp_path / "o")  # type: ignore[arg-type]
    with pytest.raises(sh.InvalidParameterError, match="must be a PatientSchema"):
        sh.fhir.write(pd.DataFrame(), "core-patient", tmp_path / "o")  # type: ignore[arg-type]
    with pytest.raises(sh.InvalidParameterError, match="must give every attribute a 'fhir' source; 11 attribute"):
        sh.fhir.write(pd.DataFrame(), flchain_schema, tmp_path / "o")
    (tmp_path / "f").write_text("x")
    with pytest.raises(sh.InvalidParameterError, match="must be a folder"):
        sh.fhir.write(pd.DataFrame([base_row(core_schema)]), core_schema, tmp_path / "f")


def test_gender_categories_need_a_fhir_code(tmp_path: Path) -> None:
    schema = sh.load_schema({
        "synthhealth_schema": 1, "name": "g", "version": "1", "reference_date": "2020-01-01",
        "attributes": [{"name": "sex", "type": "categorical",
                        "categories": ["F", {"label": "M", "values": ["M", "male"]}],
                        "fhir": {"resource": "Patient", "path": "gender"}}]})
    with pytest.raises(sh.InvalidParameterError,
                       match="category 'F' of attribute 'sex' .* has no value among the FHIR"):
        sh.fhir.write(pd.DataFrame({"sex": ["F"]}), schema, tmp_path / "o")


# ----------------------------------------------------------------- a random, consistent table
def random_table(schema: sh.PatientSchema, n: int, seed: int) -> pd.DataFrame:
    """Rows drawn like a generator would (values uniform inside random bins), kept consistent
    (death age = age, onset <= age, inpatient + emergency <= encounters), with edge values."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        row: dict[str, Any] = {}
        age = None if rng.random() < 0.05 else float(rng.integers(0, 111))
        dead = age is not None and rng.random() < 0.2
        for a in schema:
            src = a.fhir
            assert src is not None
            if a.type == "categorical":
                row[a.name] = None if rng.random() < 0.1 else str(rng.choice(a.labels))
            elif a.type == "boolean":
                row[a.name] = bool(rng.random() < 0.25)
            elif a.type == "count":
                row[a.name] = int(rng.integers(0, a.cap + 1)) if rng.random() < 0.7 else 0
            elif a.type == "numeric":
                if rng.random() < 0.3:
                    row[a.name] = None
                    continue
                edges = a.bins
                assert edges is not None
                k = int(rng.integers(0, len(edges) - 1))
                v = float(rng.uniform(edges[k], edges[k + 1]))
                if rng.random() < 0.1:
                    v = float(edges[k])  # a bin edge, or a bound
                if a.integer:
                    v = float(min(max(round(v), a.bounds[0]), a.bounds[1]))  # type: ignore[index]
                row[a.name] = v
        row["age"] = age
        row["deceased"] = dead
        row["age_at_death"] = age if dead and rng.random() < 0.9 else None
        for cond in ("hypertension", "diabetes"):
            onset = f"{cond}_onset_age"
            if row[cond] and age is not None and rng.random() < 0.9:
                row[onset] = float(rng.integers(0, int(age) + 1))
            else:
                row[onset] = None
        row["n_inpatient_5y"] = min(row["n_inpatient_5y"], 5)
        row["n_emergency_5y"] = min(row["n_emergency_5y"], 5)
        low = row["n_inpatient_5y"] + row["n_emergency_5y"]
        row["n_encounters_5y"] = max(row["n_encounters_5y"], low)
        rows.append(row)
    table = pd.DataFrame(rows)
    assert math.isclose(table["deceased"].mean(), 0.2, abs_tol=0.1)
    return table
