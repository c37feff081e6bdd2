"""All 615 shared Synthea patients flattened, with a handful spot-checked against the raw Bundles.

The oracle below recomputes attributes straight from each raw Bundle with deliberately plain
code (no synthhealth internals), one attribute kind at a time.
"""

from __future__ import annotations

import lzma
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest

import synthhealth as sh

REF = date(2021, 4, 1)
WINDOW = ("2016-04-01", "2021-04-01")
# sorted patient-file indices: deceased with diabetes, hypertension with HbA1c and admissions, etc.
SPOT = [1, 22, 52, 132, 134, 168, 212, 300, 555, 597]
SYNTHEA_PERSON_IDS = ("https://github.com/synthetichealth/synthea", "http://hospital.smarthealthit.org",
                      "http://hl7.org/fhir/sid/us-ssn")


@pytest.fixture(scope="module")
def synthea_table(synthea_dir: Path, core_schema: sh.PatientSchema) -> pd.DataFrame:
    reader = sh.fhir.read(synthea_dir)
    # Synthea draws driver's licence numbers at random: two of these 615 people share one, so only the
    # identifier systems that are unique per person here say who is the same person
    table = sh.flatten(reader, core_schema, identifier_systems=SYNTHEA_PERSON_IDS)
    assert reader.stats.n_resources == 191_093
    assert sh.report_of(table).identities["groups"] == 0  # type: ignore[union-attr]
    return table


def years(birth: str, at: date) -> int:
    b = date.fromisoformat(birth[:10])
    return at.year - b.year - ((at.month, at.day) < (b.month, b.day))


def oracle(path: Path) -> dict[str, Any]:
    res = [e["resource"] for e in orjson.loads(lzma.open(path).read())["entry"]]
    pat = next(r for r in res if r["resourceType"] == "Patient")
    death = pat.get("deceasedDateTime")
    dead = death is not None and date.fromisoformat(death[:10]) < REF
    end = date.fromisoformat(death[:10]) if dead else REF
    race_map = {"2106-3": "white", "2054-5": "black", "2028-9": "asian", "1002-5": "american_indian_alaska_native",
                "2131-1": "other", "2135-2": "other"}
    race = None
    for ext in pat.get("extension", []):
        if ext["url"].endswith("us-core-race"):
            race = race_map[[x for x in ext["extension"] if x["url"] == "ombCategory"][0]["valueCoding"]["code"]]

    def before_ref(when: str) -> bool:
        return when[:10] < REF.isoformat()

    htn = [r["onsetDateTime"] for r in res if r["resourceType"] == "Condition"
           and r["code"]["coding"][0]["code"] == "38341003" and before_ref(r["onsetDateTime"])]

    def obs(code: str) -> list[tuple[str, dict[str, Any]]]:
        # stable sort by time: among equal times the later one in the file counts as last
        return sorted(((r["effectiveDateTime"], r) for r in res if r["resourceType"] == "Observation"
                       and r["code"]["coding"][0]["code"] == code and before_ref(r["effectiveDateTime"])),
                      key=lambda tr: tr[0])

    bmi = [(t, r["valueQuantity"]["value"]) for t, r in obs("39156-5") if r["valueQuantity"]["code"] == "kg/m2"]
    sbp = []
    for t, r in obs("55284-4"):
        comp = [c for c in r["component"] if c["code"]["coding"][0]["code"] == "8480-6"][0]
        if comp["valueQuantity"].get("code") == "mm[Hg]":
            sbp.append((t, comp["valueQuantity"]["value"]))
    a1c = [r["valueQuantity"]["value"] for _, r in obs("4548-4")]
    smoke = [r["valueCodeableConcept"]["coding"][0]["code"] for _, r in obs("72166-2")]
    smoke_map = {"266919005": "never", "8517006": "former", "449868002": "current"}
    statin = any(r["resourceType"] == "MedicationRequest" and before_ref(r["authoredOn"])
                 and r["medicationCodeableConcept"]["coding"][0]["code"] in {"316672", "312961", "259255"} for r in res)
    enc = [r for r in res if r["resourceType"] == "Encounter" and WINDOW[0] <= r["period"]["start"][:10] < WINDOW[1]]
    return {
        "patient_id": pat["id"],
        "sex": pat["gender"],
        "age": float(max(0, min(110, years(pat["birthDate"], end)))),
        "race": race,
        "deceased": dead,
        "age_at_death": float(years(pat["birthDate"], end)) if dead else None,
        "hypertension": bool(htn),
        "hypertension_onset_age": float(years(pat["birthDate"], date.fromisoformat(min(htn)[:10]))) if htn else None,
        "bmi": min(70.0, max(10.0, bmi[-1][1])) if bmi else None,
        "systolic_bp": min(250.0, max(60.0, sbp[-1][1])) if sbp else None,
        "hba1c": max(a1c) if a1c else None,
        "smoking_status": smoke_map.get(smoke[-1], "unknown") if smoke else None,
        "statin": statin,
        "n_encounters_5y": min(40, len(enc)),
        "n_inpatient_5y": min(5, sum(1 for r in enc if r["class"]["code"] == "IMP")),
    }


def test_615_rows(synthea_table: pd.DataFrame, core_schema: sh.PatientSchema) -> None:
    assert synthea_table.shape == (615, len(core_schema))
    assert synthea_table.index.is_unique
    assert int(synthea_table["deceased"].sum()) == 124  # every death in this Synthea set predates 2021-04-01
    rep = sh.report_of(synthea_table)
    assert rep is not None and rep.read_stats["skipped"] == {}


@pytest.mark.parametrize("index", SPOT)
def test_spot_check_against_raw_bundle(synthea_table: pd.DataFrame, synthea_dir: Path, index: int) -> None:
    files = sorted(p for p in synthea_dir.glob("*.json.xz") if not p.name.startswith(("hospital", "practitioner")))
    expected = oracle(files[index])
    row = synthea_table.loc[expected.pop("patient_id")]
    for name, want in expected.items():
        got = row[name]
        if want is None:
            assert pd.isna(got), name
        elif isinstance(want, float):
            assert got == pytest.approx(want), name
        else:
            assert got == want, name


def test_spot_checks_cover_every_kind(synthea_dir: Path) -> None:
    files = sorted(p for p in synthea_dir.glob("*.json.xz") if not p.name.startswith(("hospital", "practitioner")))
    rows = [oracle(files[i]) for i in SPOT]
    assert any(r["deceased"] for r in rows) and any(not r["deceased"] for r in rows)
    assert any(r["hypertension"] for r in rows) and any(r["hba1c"] is not None for r in rows)
    assert any(r["n_inpatient_5y"] > 0 for r in rows) and any(r["statin"] for r in rows)
    assert len({r["race"] for r in rows}) >= 2
