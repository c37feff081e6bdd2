"""Small FHIR resource builders for tests (synthetic values only)."""

from __future__ import annotations

import gzip
import lzma
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson


# ---------------------------------------------------------------- FHIR builders
def patient(pid: str, *, gender: str | None = "female", birth: str | None = "1950-06-15", **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Patient", "id": pid}
    if gender is not None:
        res["gender"] = gender
    if birth is not None:
        res["birthDate"] = birth
    res.update(extra)
    return res


def condition(rid: str, subject: str, code: str, onset: str | None = "2010-01-01",
              system: str = "http://snomed.info/sct", **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Condition", "id": rid, "subject": {"reference": subject},
                           "code": {"coding": [{"system": system, "code": code}]}}
    if onset is not None:
        res["onsetDateTime"] = onset
    res.update(extra)
    return res


def observation(rid: str, subject: str, loinc: str, value: Any, unit: str | None, when: str | None = "2019-05-01",
                **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Observation", "id": rid, "status": "final", "subject": {"reference": subject},
                           "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]}}
    if when is not None:
        res["effectiveDateTime"] = when
    if value is not None:
        q: dict[str, Any] = {"value": value}
        if unit is not None:
            q.update({"unit": unit, "system": "http://unitsofmeasure.org", "code": unit})
        res["valueQuantity"] = q
    res.update(extra)
    return res


def encounter(rid: str, subject: str, start: str, cls: str = "AMB", **extra: Any) -> dict[str, Any]:
    res = {"resourceType": "Encounter", "id": rid, "status": "finished", "subject": {"reference": subject},
           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": cls},
           "period": {"start": start, "end": start}}
    res.update(extra)
    return res


def medication(rid: str, subject: str, rxnorm: str, authored: str = "2018-01-01") -> dict[str, Any]:
    return {"resourceType": "MedicationRequest", "id": rid, "status": "active", "intent": "order",
            "subject": {"reference": subject}, "authoredOn": authored,
            "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                      "code": rxnorm}]}}


def bundle(resources: Iterable[dict[str, Any]], *, urn: bool = True) -> dict[str, Any]:
    entries = []
    for r in resources:
        e: dict[str, Any] = {"resource": r}
        if urn and "id" in r:
            e["fullUrl"] = f"urn:uuid:{r['id']}"
        entries.append(e)
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _open(path: Path) -> Any:
    if path.name.endswith(".gz"):
        return gzip.open(path, "wb")
    if path.name.endswith(".xz"):
        return lzma.open(path, "wb")
    return open(path, "wb")


def write_json(path: Path, doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open(path) as fh:
        fh.write(orjson.dumps(doc))
    return path


def write_ndjson(path: Path, resources: Iterable[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open(path) as fh:
        for r in resources:
            fh.write((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n")
    return path
