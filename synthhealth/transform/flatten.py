"""Flatten FHIR resources into one row per patient, bounding every contribution.

This is where the privacy unit is made: whatever a patient's history holds, it
becomes exactly one row whose every value lies in the schema's public domain
(counts capped, numbers clipped or mapped to missing, unknown codes mapped to the
declared ``other`` category or to missing). Every such mapping is counted and
reported; nothing is dropped silently.

Flattening streams resources once and keeps a small accumulator per patient and
attribute, so it works for Bundles and Bulk NDJSON alike, whatever the order of the
resources.
"""

from __future__ import annotations

import gc
import os
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from .._validation import check_bool, check_choice
from ..exceptions import FHIRFormatError, InvalidParameterError
from ..fhir.reader import FHIRReader, Location, PatientRecord, ResourceItem, normalize_reference, read
from ..schema.model import EVENT_RESOURCES, Attribute, PatientSchema

__all__ = ["flatten", "FlattenReport", "AttributeCounts", "report_of"]

_US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
_EXT_RACE = _US_CORE + "us-core-race"
_EXT_ETHNICITY = _US_CORE + "us-core-ethnicity"
_EXT_BIRTHSEX = _US_CORE + "us-core-birthsex"

#: Date element of each event resource, in order of preference.
_EVENT_DATES: dict[str, tuple[tuple[str, str | None], ...]] = {
    "Condition": (("onsetDateTime", None), ("onsetPeriod", "start"), ("recordedDate", None)),
    "Observation": (("effectiveDateTime", None), ("effectivePeriod", "start"), ("effectiveInstant", None), ("issued", None)),
    "Encounter": (("period", "start"),),
    "MedicationRequest": (("authoredOn", None),),
    "Procedure": (("performedDateTime", None), ("performedPeriod", "start")),
    "Immunization": (("occurrenceDateTime", None), ("recorded", None)),
    "AllergyIntolerance": (("onsetDateTime", None), ("recordedDate", None)),
}

_EXCLUDED_STATUS = {"entered-in-error"}
#: statuses meaning the event did not (or not yet) happen
_EXCLUDED_EXTRA: dict[str, set[str]] = {
    "Observation": {"cancelled"},
    "Encounter": {"cancelled", "planned"},
    "Procedure": {"not-done"},
    "Immunization": {"not-done"},
    "MedicationRequest": {"cancelled", "draft"},
}
_EXCLUDED_VERIFICATION = {"refuted", "entered-in-error"}


@dataclass
class AttributeCounts:
    """How often values of one attribute were bounded or mapped (no values recorded)."""

    missing: int = 0
    out_of_domain: int = 0
    clipped: int = 0
    capped: int = 0
    unit_mismatch: int = 0
    bad_value: int = 0

    def any(self) -> bool:
        """Whether anything other than missing values was counted.

        Returns
        -------
        bool
            ``True`` when a value was mapped out of the domain, clipped, capped, skipped for its unit,
            or skipped as malformed.

        Examples
        --------
        >>> AttributeCounts(missing=3).any(), AttributeCounts(clipped=1).any()
        (False, True)
        """
        return bool(self.out_of_domain or self.clipped or self.capped or self.unit_mismatch or self.bad_value)


@dataclass
class FlattenReport:
    """What flattening did: rows made, and per attribute what was bounded or mapped.

    Attributes
    ----------
    schema_name, schema_hash : str
    n_patients : int
    attributes : dict of str to AttributeCounts
    read_stats : dict
        :meth:`synthhealth.fhir.ReadStats.to_dict` of the reader (skipped resources etc.).
    identities : dict
        FHIR input only: Patient resources found to be the same person (the privacy unit is the
        person): ``shared_identifier`` (Patients sharing an identifier system + value with an
        earlier one), ``linked`` (Patients joined by ``Patient.link``), ``merged`` (Patient rows
        merged into another with ``duplicate_patients="merge"``) and ``groups`` (people with
        several Patient resources).
    malformed : dict of str to int
        FHIR input with ``on_error="skip"``: malformed values skipped, by what was wrong (e.g.
        ``"Condition.status must be a string, got list"``: the resource was skipped; a malformed
        ``Patient.birthDate`` leaves the ages missing). The message names the element and the
        JSON type, never the value.
    after_reference_date : dict of str to int
        Events (by resource type) that matched an attribute but were not counted because they are
        dated on or after the schema's reference date (where every attribute's window ends), such
        as a far-future ``9999-12-31``.
    """

    schema_name: str
    schema_hash: str
    n_patients: int = 0
    attributes: dict[str, AttributeCounts] = field(default_factory=dict)
    read_stats: dict[str, Any] = field(default_factory=dict)
    identities: dict[str, int] = field(default_factory=dict)
    malformed: dict[str, int] = field(default_factory=dict)
    after_reference_date: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form.

        Returns
        -------
        dict
            ``schema_name``, ``schema_hash``, ``n_patients``, ``attributes`` (the counts of each
            attribute as a dict) and ``read_stats``.

        Examples
        --------
        >>> FlattenReport("t", "abc", 2, {"age": AttributeCounts(clipped=1)}).to_dict()["attributes"]["age"]["clipped"]
        1
        """
        return {
            "schema_name": self.schema_name,
            "schema_hash": self.schema_hash,
            "n_patients": self.n_patients,
            "attributes": {k: vars(v).copy() for k, v in self.attributes.items()},
            "read_stats": self.read_stats,
            "identities": dict(self.identities),
            "malformed": dict(self.malformed),
            "after_reference_date": dict(self.after_reference_date),
        }

    def summary(self) -> str:
        """Plain-text summary of out-of-domain values, clipping and capping.

        Returns
        -------
        str
            A head line (patients, attributes, skipped resources), then one line per attribute
            whose values were bounded or mapped (counts only, never values).

        Examples
        --------
        >>> print(FlattenReport("t", "abc", 2, {"age": AttributeCounts(clipped=1)}).summary())
        2 patients, 1 attributes
        values bounded or mapped to the declared domain:
          age: 1 clipped to bounds
        """
        lines = []
        for name, c in self.attributes.items():
            parts = []
            if c.out_of_domain:
                parts.append(f"{c.out_of_domain} out of domain -> other/missing")
            if c.clipped:
                parts.append(f"{c.clipped} clipped to bounds")
            if c.capped:
                parts.append(f"{c.capped} capped")
            if c.unit_mismatch:
                parts.append(f"{c.unit_mismatch} observations with another unit ignored")
            if c.bad_value:
                parts.append(f"{c.bad_value} malformed values skipped")
            if parts:
                lines.append(f"  {name}: " + "; ".join(parts))
        skipped = self.read_stats.get("skipped") or {}
        head = f"{self.n_patients} patients, {len(self.attributes)} attributes"
        if skipped:
            head += f"; skipped resources: {sum(skipped.values())} ({', '.join(f'{k}: {v}' for k, v in skipped.items())})"
        if self.malformed:
            head += (f"; malformed values skipped: {sum(self.malformed.values())} ("
                     + ", ".join(f"{k}: {v}" for k, v in sorted(self.malformed.items())) + ")")
        if self.after_reference_date:
            head += (f"; events dated on or after the reference date, not counted: "
                     f"{sum(self.after_reference_date.values())} ("
                     + ", ".join(f"{k}: {v}" for k, v in sorted(self.after_reference_date.items())) + ")")
        ident = self.identities
        if ident.get("groups"):
            head += (f"; {ident['groups']} people had several Patient resources ({ident.get('shared_identifier', 0)} "
                     f"sharing an identifier, {ident.get('linked', 0)} joined by Patient.link): "
                     f"{ident.get('merged', 0)} merged into one row each")
        if not lines:
            return head + "\nno value was outside its declared domain"
        return head + "\nvalues bounded or mapped to the declared domain:\n" + "\n".join(lines)


# --------------------------------------------------------------------------- dates
class _Malformed(Exception):
    """A value the flattener reads has the wrong JSON type or is not a valid date (never holds the value)."""

    def __init__(self, element: str, problem: str) -> None:
        super().__init__(f"{element} {problem}")
        self.message = f"{element} {problem}"


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def _day(text: Any) -> str | None:
    """ISO date prefix ``YYYY-MM-DD`` of a FHIR date/dateTime (partial dates padded)."""
    if not isinstance(text, str) or len(text) < 4:
        return None
    if len(text) >= 10:
        return text[:10]
    if len(text) == 7:
        return text + "-01"
    return text[:4] + "-01-01"


def _valid_day(text: Any, element: str) -> str:
    """``YYYY-MM-DD`` of a FHIR date/dateTime (``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD``, then ``T...``), or raise."""
    if not isinstance(text, str):
        raise _Malformed(element, f"must be a date string, got {_kind(text)}")
    n = len(text)
    if n == 4:
        day = text + "-01-01"
    elif n == 7:
        day = text + "-01"
    elif n == 10 or (n > 10 and text[10] == "T"):
        day = text[:10]
    else:
        raise _Malformed(element, "is not a valid date (a FHIR date is YYYY, YYYY-MM, YYYY-MM-DD or a dateTime)")
    if day[4] != "-" or day[7] != "-" or not day[:4].isdigit():
        raise _Malformed(element, "is not a valid date (a FHIR date is YYYY, YYYY-MM, YYYY-MM-DD or a dateTime)")
    try:
        date.fromisoformat(day)
    except ValueError:
        raise _Malformed(element, "is not a valid date (month or day out of range)") from None
    return day


def _to_date(day: str | None) -> date | None:
    if day is None:
        return None
    try:
        return date.fromisoformat(day)
    except ValueError:
        return None


def _years_between(birth: date, at: date) -> int:
    years = at.year - birth.year
    if (at.month, at.day) < (birth.month, birth.day):
        years -= 1
    return years


def _event_time(res: dict[str, Any], rtype: str) -> tuple[str | None, str]:
    """(date/dateTime, element name) of an event; raises :class:`_Malformed` for a value of the wrong type."""
    for name, sub in _EVENT_DATES.get(rtype, ()):
        val = res.get(name)
        if val is None:
            continue
        if sub is not None:
            if not isinstance(val, dict):
                raise _Malformed(f"{rtype}.{name}", f"must be a Period object, got {_kind(val)}")
            val = val.get(sub)
            if val is None:
                continue
            name = f"{name}.{sub}"
        if not isinstance(val, str):
            raise _Malformed(f"{rtype}.{name}", f"must be a date string, got {_kind(val)}")
        return val, f"{rtype}.{name}"
    return None, ""


def _codings(cc: Any, element: str = "CodeableConcept") -> Iterator[tuple[Any, Any]]:
    """(system, code) of a CodeableConcept (or a list of them); raises :class:`_Malformed` on a wrong type."""
    if cc is None:
        return
    if isinstance(cc, list):
        for item in cc:
            yield from _codings(item, element)
        return
    if not isinstance(cc, dict):
        raise _Malformed(element, f"must be a CodeableConcept object, got {_kind(cc)}")
    coding = cc.get("coding")
    if coding is None:
        return
    if not isinstance(coding, list):
        raise _Malformed(f"{element}.coding", f"must be a list, got {_kind(coding)}")
    for c in coding:
        if not isinstance(c, dict):
            raise _Malformed(f"{element}.coding[]", f"must be a Coding object, got {_kind(c)}")
        system, code = c.get("system"), c.get("code")
        if system is not None and not isinstance(system, str):
            raise _Malformed(f"{element}.coding[].system", f"must be a string, got {_kind(system)}")
        if code is not None and not isinstance(code, str):
            raise _Malformed(f"{element}.coding[].code", f"must be a string, got {_kind(code)}")
        yield (system, code)


def _excluded(res: dict[str, Any], rtype: str) -> bool:
    status = res.get("status")
    if status is not None and not isinstance(status, str):
        raise _Malformed(f"{rtype}.status", f"must be a string, got {_kind(status)}")
    if status in _EXCLUDED_STATUS or status in _EXCLUDED_EXTRA.get(rtype, ()):
        return True
    if rtype in ("Condition", "AllergyIntolerance"):
        for _s, code in _codings(res.get("verificationStatus"), f"{rtype}.verificationStatus"):
            if code in _EXCLUDED_VERIFICATION:
                return True
    return False


# ------------------------------------------------------------------ per attribute
class _Matcher:
    """Compiled event attribute."""

    __slots__ = ("idx", "attr", "agg", "start", "end", "classes", "component", "unit", "explicit_period",
                 "cat_by_code", "needs_time")

    def __init__(self, idx: int, attr: Attribute, reference_date: date) -> None:
        src = attr.fhir
        assert src is not None
        self.idx = idx
        self.attr = attr
        self.agg = src.aggregate
        self.explicit_period = src.period is not None
        if src.period is not None:
            self.start = src.period.start.isoformat() if src.period.start else None
            # a period without an end stops at the reference date, like the default window
            self.end = (src.period.end or reference_date).isoformat()
        else:
            self.start, self.end = None, reference_date.isoformat()
        self.classes = frozenset(src.encounter_classes)
        self.component = src.component.key if src.component else None
        self.unit = src.unit or attr.unit
        self.cat_by_code = {c.key: cat.label for cat in attr.categories for c in cat.codes}
        self.needs_time = self.agg in ("first", "last", "age_at_first", "age_at_last")


class _Flattener:
    def __init__(self, schema: PatientSchema, on_error: str, duplicate_patients: str = "raise",
                 identifier_systems: frozenset[str] | None = None) -> None:
        if not schema.is_fhir:
            missing = [a.name for a in schema.attributes if a.fhir is None]
            shown = ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else "")
            raise InvalidParameterError(
                f"The 'schema' parameter of flatten must give every attribute a 'fhir' source; "
                f"{len(missing)} attribute(s) have none: {shown}. Use read_table() for plain tables."
            )
        self.schema = schema
        self.on_error = on_error
        self.duplicate_patients = duplicate_patients
        self.identifier_systems = identifier_systems
        # identities: a 64-bit hash of each Patient identifier (system + value), its row and system
        # (16 bytes per identifier, no strings kept); Patient.link targets (rare) by row
        self.id_hash = array("q")
        self.id_row = array("q")
        self.id_sys = array("q")
        self.systems: dict[str, int] = {}
        self.links: list[tuple[int, str]] = []
        self.identities: dict[str, int] = {"shared_identifier": 0, "linked": 0, "merged": 0, "groups": 0}
        self.ref = schema.reference_date
        self.attrs = schema.attributes
        self.counts = {a.name: AttributeCounts() for a in self.attrs}
        self.patient_attrs = [(i, a) for i, a in enumerate(self.attrs) if a.fhir and a.fhir.resource == "Patient"]
        self.by_code: dict[str, dict[tuple[str, str], list[_Matcher]]] = {}
        self.unfiltered: dict[str, list[_Matcher]] = {}
        for i, a in enumerate(self.attrs):
            src = a.fhir
            if src is None or src.resource == "Patient":
                continue
            m = _Matcher(i, a, self.ref)
            if src.codes:
                table = self.by_code.setdefault(src.resource, {})
                for c in src.codes:
                    table.setdefault(c.key, []).append(m)
            else:
                self.unfiltered.setdefault(src.resource, []).append(m)
        self.code_element = EVENT_RESOURCES
        self._labels_index: dict[int, dict[str, int]] = {}
        self._birth_counts = _FanOut([self.counts[a.name] for a in self.attrs if a.fhir is not None and (
            a.fhir.path in ("age", "birth_year", "age_at_death") or a.fhir.aggregate in ("age_at_first", "age_at_last"))])
        self._death_counts = self._path_counts("deceased", "age_at_death", "age")
        self._gender_counts = self._path_counts("gender")
        self._extension_counts = self._path_counts("race", "ethnicity", "birth_sex")
        self._marital_counts = self._path_counts("marital_status")
        self._identity_counts = _FanOut([])
        self.malformed: dict[str, int] = {}
        self.after_reference: dict[str, int] = {}
        self.ref_iso = self.ref.isoformat()
        # columnar state: a few bytes per patient and attribute (no per-patient Python objects)
        self.index: dict[str, int] = {}
        self.keys: list[str] = []
        self.pcols: dict[int, list[Any]] = {i: [] for i, _ in self.patient_attrs}
        self.births = array("l")  # date ordinals, 0 = unknown
        self.state: dict[int, Any] = {}
        for i, a in enumerate(self.attrs):
            agg = a.fhir.aggregate if a.fhir is not None and a.fhir.resource != "Patient" else None
            if agg == "any":
                self.state[i] = _Grow(np.bool_, False)
            elif agg == "count":
                self.state[i] = _Grow(np.int32, 0)
            elif agg in ("age_at_first", "age_at_last"):
                self.state[i] = {}
            elif agg is not None:
                self.state[i] = _Dense(agg)
            if a.type == "categorical" and agg is not None:
                self._labels_index[i] = {label: k for k, label in enumerate(a.labels)}

    def _path_counts(self, *paths: str) -> _FanOut:
        return _FanOut([self.counts[a.name] for _i, a in self.patient_attrs
                        if a.fhir is not None and a.fhir.path in paths])

    # ----------------------------------------------------------------- feeding
    def _row(self, key: str) -> int:
        row = self.index.get(key)
        if row is None:
            row = len(self.keys)
            self.index[key] = row
            self.keys.append(key)
            for col in self.pcols.values():
                col.append(None)
            self.births.append(0)
        return row

    def feed(self, item: ResourceItem) -> None:
        key = item.patient
        if key is None:
            return
        res = item.resource
        rtype = res["resourceType"]
        if rtype == "Patient":
            self._patient(key, res, item.location)
            return
        by_code = self.by_code.get(rtype)
        unfiltered = self.unfiltered.get(rtype)
        if by_code is None and unfiltered is None:
            return
        matched: list[_Matcher] = list(unfiltered) if unfiltered else []
        try:
            if by_code:
                seen: set[int] = set()
                for ck in _codings(res.get(self.code_element[rtype]), f"{rtype}.{self.code_element[rtype]}"):
                    for m in by_code.get(ck, ()):  # type: ignore[call-overload]
                        if m.idx not in seen:
                            seen.add(m.idx)
                            matched.append(m)
            if not matched or _excluded(res, rtype):
                return
            when, element = _event_time(res, rtype)
            day = None if when is None else _valid_day(when, element)
            if rtype == "Encounter" and any(m.classes for m in matched):
                cls = res.get("class")
                if cls is not None and not isinstance(cls, dict):
                    raise _Malformed("Encounter.class", f"must be a Coding object, got {_kind(cls)}")
                if isinstance(cls, dict) and cls.get("code") is not None and not isinstance(cls.get("code"), str):
                    raise _Malformed("Encounter.class.code", f"must be a string, got {_kind(cls.get('code'))}")
        except _Malformed as bad:  # nothing of this resource was counted yet
            self._skip(item.location, res, bad.message)
            return
        if day is not None and day >= self.ref_iso and all(m.end is not None and day >= m.end for m in matched):
            self.after_reference[rtype] = self.after_reference.get(rtype, 0) + 1
        row = self._row(key)
        for m in matched:
            if day is None:
                if m.explicit_period or m.needs_time:
                    continue
            else:
                if m.end is not None and day >= m.end:
                    continue
                if m.start is not None and day < m.start:
                    continue
            if m.classes:
                cls = res.get("class")
                code = cls.get("code") if isinstance(cls, dict) else None
                if code not in m.classes:
                    continue
            agg = m.agg
            st = self.state[m.idx]
            if agg == "any":
                st.set(row, True)
            elif agg == "count":
                st.add(row, 1)
            elif agg in ("age_at_first", "age_at_last"):
                at = _to_date(day)
                if at is None:
                    continue
                o = at.toordinal()
                prev = st.get(row)
                if prev is None or (o < prev if agg == "age_at_first" else o > prev):
                    st[row] = o
            else:
                value = self._observation_value(res, m, item.location)
                if value is None:
                    continue
                if value is _OutOfDomain:
                    value = _OOD_CODE
                elif isinstance(value, str):
                    value = float(self._labels_index[m.idx][value])
                st.update(row, value, _time_key(when) if when is not None else 0)

    def _observation_value(self, res: dict[str, Any], m: _Matcher, loc: Location) -> Any:
        holder: dict[str, Any] | None = res
        counts = self.counts[m.attr.name]
        if m.component is not None:
            holder = None
            comps = res.get("component")
            if comps is not None and not isinstance(comps, list):
                return self._bad(loc, res, f"Observation.component must be a list, got {_kind(comps)}", counts)
            try:
                for comp in comps or ():
                    if not isinstance(comp, dict):
                        return self._bad(loc, res, f"Observation.component[] must be an object, got {_kind(comp)}",
                                         counts)
                    if any(ck == m.component for ck in _codings(comp.get("code"), "Observation.component[].code")):
                        holder = comp
                        break
            except _Malformed as bad:
                return self._bad(loc, res, bad.message, counts)
            if holder is None:
                return None
        assert holder is not None
        if m.attr.type == "categorical":
            cc = holder.get("valueCodeableConcept")
            if cc is None:
                return None
            if not isinstance(cc, dict):
                return self._bad(loc, res, f"Observation.valueCodeableConcept must be an object, got {_kind(cc)}",
                                 counts)
            try:
                for ck in _codings(cc, "Observation.valueCodeableConcept"):
                    label = m.cat_by_code.get(ck)  # type: ignore[arg-type]
                    if label is not None:
                        return label
            except _Malformed as bad:
                return self._bad(loc, res, bad.message, counts)
            return _OutOfDomain
        q = holder.get("valueQuantity")
        if q is None:
            v = holder.get("valueInteger")
            if v is None:
                return None
            if isinstance(v, bool) or not isinstance(v, int):
                return self._bad(loc, res, f"Observation.valueInteger must be an integer, got {type(v).__name__}", counts)
            return float(v)
        if not isinstance(q, dict):
            return self._bad(loc, res, f"Observation.valueQuantity must be an object, got {type(q).__name__}", counts)
        v = q.get("value")
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return self._bad(loc, res, f"Observation.valueQuantity.value must be a number, got {type(v).__name__}",
                             counts)
        if m.unit is not None:
            unit = q.get("code") if q.get("code") is not None else q.get("unit")
            if unit != m.unit:
                counts.unit_mismatch += 1
                return None
        return float(v)

    def _bad(self, loc: Location, res: dict[str, Any], message: str, counts: Any) -> None:
        """A malformed value: a located error, or (``on_error="skip"``) skipped and counted."""
        if self.on_error == "raise":
            raise loc.error(message, res)
        counts.bad_value += 1
        self.malformed[message] = self.malformed.get(message, 0) + 1
        return None

    def _skip(self, loc: Location, res: dict[str, Any], message: str) -> None:
        """A malformed event resource: a located error, or skipped whole and counted."""
        if self.on_error == "raise":
            raise loc.error(message + " (the resource cannot be read)", res)
        self.malformed[message] = self.malformed.get(message, 0) + 1

    # ----------------------------------------------------------------- patients
    def _patient(self, key: str, res: dict[str, Any], loc: Location) -> None:
        birth = None
        if res.get("birthDate") is not None:
            try:
                birth = _to_date(_valid_day(res["birthDate"], "Patient.birthDate"))
            except _Malformed as bad:
                self._bad(loc, res, bad.message, self._birth_counts)
        death: date | None = None
        dead_by_ref: bool | None = False
        deceased_dt, deceased_bool = res.get("deceasedDateTime"), res.get("deceasedBoolean")
        if deceased_dt is not None:
            try:
                death = _to_date(_valid_day(deceased_dt, "Patient.deceasedDateTime"))
            except _Malformed as bad:
                self._bad(loc, res, bad.message, self._death_counts)
                dead_by_ref = None  # unknown, never "alive"
        if deceased_bool is not None and not isinstance(deceased_bool, bool):
            self._bad(loc, res, f"Patient.deceasedBoolean must be a boolean, got {_kind(deceased_bool)}",
                      self._death_counts)
            dead_by_ref = None
        if death is not None:
            dead_by_ref = death < self.ref
        elif deceased_bool is True and dead_by_ref is not None:
            dead_by_ref = True
        gender = res.get("gender")
        if gender is not None and not isinstance(gender, str):
            self._bad(loc, res, f"Patient.gender must be a string, got {_kind(gender)}", self._gender_counts)
            gender = None
        extensions = res.get("extension")
        if extensions is not None and not isinstance(extensions, list):
            self._bad(loc, res, f"Patient.extension must be a list, got {_kind(extensions)}", self._extension_counts)
            extensions = None
        elif extensions:
            for ext in extensions:
                if not isinstance(ext, dict):
                    self._bad(loc, res, f"Patient.extension[] must be an object, got {_kind(ext)}",
                              self._extension_counts)
                    extensions = [e for e in extensions if isinstance(e, dict)]
                    break
        marital = res.get("maritalStatus")
        if marital is not None:
            try:
                for _ in _codings(marital, "Patient.maritalStatus"):
                    pass
            except _Malformed as bad:
                self._bad(loc, res, bad.message, self._marital_counts)
                marital = None
        r = self._row(key)
        self._identity(r, res, loc)
        self.births[r] = birth.toordinal() if birth is not None else 0
        row: dict[int, Any] = {}
        for i, a in self.patient_attrs:
            path = a.fhir.path  # type: ignore[union-attr]
            if path == "gender":
                row[i] = self._category(a, gender)
            elif path == "age":
                at = self.ref
                if a.fhir.age_at == "end_of_followup":  # type: ignore[union-attr]
                    if dead_by_ref is None:
                        row[i] = None
                        continue
                    if death is not None and death < self.ref:
                        at = death
                row[i] = None if birth is None else float(_years_between(birth, at))
            elif path == "birth_year":
                row[i] = None if birth is None else float(birth.year)
            elif path == "deceased":
                row[i] = dead_by_ref
            elif path == "age_at_death":
                row[i] = float(_years_between(birth, death)) if (birth and death and dead_by_ref) else None
            elif path in ("race", "ethnicity"):
                url = _EXT_RACE if path == "race" else _EXT_ETHNICITY
                row[i] = self._omb(a, extensions, url, loc, res)
            elif path == "birth_sex":
                val = None
                for ext in extensions or ():
                    if ext.get("url") == _EXT_BIRTHSEX:
                        val = ext.get("valueCode")
                        if val is not None and not isinstance(val, str):
                            self._bad(loc, res, f"Patient.extension[birthsex].valueCode must be a string, got "
                                      f"{_kind(val)}", self.counts[a.name])
                            val = None
                row[i] = self._category(a, val)
            elif path == "marital_status":
                row[i] = self._coded_category(a, marital)
        for i, v in row.items():
            self.pcols[i][r] = v

    def _identity(self, row: int, res: dict[str, Any], loc: Location) -> None:
        """Note the Patient's identifiers (system + value) and links, to find one person read twice."""
        idents = res.get("identifier")
        if idents is not None and not isinstance(idents, list):
            self._bad(loc, res, f"Patient.identifier must be a list, got {_kind(idents)}", self._identity_counts)
            idents = None
        for ident in idents or ():
            if not isinstance(ident, dict):
                self._bad(loc, res, f"Patient.identifier[] must be an object, got {_kind(ident)}", self._identity_counts)
                continue
            system, value = ident.get("system"), ident.get("value")
            if (system is not None and not isinstance(system, str)) or (value is not None and not isinstance(value, str)):
                self._bad(loc, res, "Patient.identifier[].system and .value must be strings", self._identity_counts)
                continue
            if isinstance(system, str) and system and isinstance(value, str) and value:
                if self.identifier_systems is not None and system not in self.identifier_systems:
                    continue
                code = self.systems.setdefault(system, len(self.systems))
                self.id_hash.append(hash((system, value)))
                self.id_row.append(row)
                self.id_sys.append(code)
        links = res.get("link")
        if links is not None and not isinstance(links, list):
            self._bad(loc, res, f"Patient.link must be a list, got {_kind(links)}", self._identity_counts)
            links = None
        for link in links or ():
            other = link.get("other") if isinstance(link, dict) else None
            if not isinstance(link, dict) or (other is not None and not isinstance(other, dict)):
                self._bad(loc, res, "Patient.link[] and its 'other' must be objects", self._identity_counts)
                continue
            ref = other.get("reference") if isinstance(other, dict) else None
            target = normalize_reference(ref) if isinstance(ref, str) and ref else None
            if target is not None and target.startswith(("Patient/", "urn:")):
                self.links.append((row, target))

    def _same_people(self) -> list[tuple[int, int, str]]:
        """Pairs (earlier row, later row, why) of Patient rows that are one person."""
        pairs: list[tuple[int, int, str]] = []
        if len(self.id_hash):
            h = np.frombuffer(self.id_hash, dtype=np.int64)
            rows = np.frombuffer(self.id_row, dtype=np.int64)
            sys_ = np.frombuffer(self.id_sys, dtype=np.int64)
            order = np.lexsort((rows, h))
            hs, rs = h[order], rows[order]
            same = np.flatnonzero((hs[1:] == hs[:-1]) & (rs[1:] != rs[:-1]))
            names = {v: k for k, v in self.systems.items()}
            for k in same:
                # the first row of the run of equal hashes is the earliest Patient with that identifier
                start = k
                while start > 0 and hs[start - 1] == hs[k]:
                    start -= 1
                pairs.append((int(rs[start]), int(rs[k + 1]),
                              f"shares an identifier (system {names[int(sys_[order[k + 1]])]}) with"))
        for row, target in self.links:
            other = self.index.get(target)
            if other is not None and other != row:
                pairs.append((min(row, other), max(row, other), "is joined by Patient.link to"))
        return pairs

    def _resolve_identities(self) -> np.ndarray | None:
        """Refuse (or merge) Patient rows that are one person; the rows to keep, or None for all."""
        pairs = self._same_people()
        if not pairs:
            return None
        n = len(self.keys)
        parent = list(range(n))

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        why_of: dict[int, str] = {}
        for a, b, why in pairs:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)  # the earliest Patient read is the group's row
            why_of.setdefault(b, why)
        later = sorted(why_of)
        self.identities["shared_identifier"] = sum(1 for r in later if why_of[r].startswith("shares"))
        self.identities["linked"] = sum(1 for r in later if why_of[r].startswith("is joined"))
        if self.duplicate_patients == "raise":
            a, b, why = min(pairs, key=lambda p: (p[1], p[0]))
            n_people = len({find(r) for r in later})
            raise FHIRFormatError(
                f"{self.keys[b]} {why} {self.keys[a]}: they are one person, who would count as several patients "
                f"(the privacy unit is the person). {len(later)} Patient resources of {n_people} people repeat an "
                "earlier Patient. Fix the export, or pass duplicate_patients='merge' (CLI: --merge-duplicate-patients) "
                "to merge each person's resources into one row (or identifier_systems=[...] if that system's values "
                "are not unique per person).", resource_id=self.keys[b])
        roots = np.array([find(r) for r in range(n)], dtype=np.int64)
        keep = np.flatnonzero(roots == np.arange(n))
        self.identities["merged"] = int(n - len(keep))
        self.identities["groups"] = int(len({int(roots[r]) for r in later}))
        self._merge(roots)
        return keep

    def _merge(self, roots: np.ndarray) -> None:
        """Fold each merged row's state into its group's row (before bounding, so caps still bound the person)."""
        moved = [(int(r), int(roots[r])) for r in np.flatnonzero(roots != np.arange(len(roots)))]
        for r, root in moved:
            if not self.births[root] and self.births[r]:
                self.births[root] = self.births[r]
            for col in self.pcols.values():
                if col[root] is None and col[r] is not None:
                    col[root] = col[r]
        for i, a in enumerate(self.attrs):
            st = self.state.get(i)
            if st is None:
                continue
            agg = a.fhir.aggregate if a.fhir is not None else None
            for r, root in moved:
                if isinstance(st, _Grow):
                    st._ensure(max(r, root))
                    if agg == "any":
                        st.arr[root] = st.arr[root] or st.arr[r]
                    else:
                        st.arr[root] += st.arr[r]
                elif isinstance(st, dict):
                    o = st.pop(r, None)
                    if o is not None:
                        prev = st.get(root)
                        st[root] = o if prev is None else (min(prev, o) if agg == "age_at_first" else max(prev, o))
                else:
                    st.merge(root, r)

    def _category(self, a: Attribute, value: Any) -> Any:
        if value is None:
            return None
        for cat in a.categories:
            if str(value) in cat.values:
                return cat.label
        return _OutOfDomain

    def _coded_category(self, a: Attribute, cc: Any) -> Any:
        if cc is None:
            return None
        keys = list(_codings(cc, f"Patient.{a.fhir.path if a.fhir else a.name}"))
        for cat in a.categories:
            codes = {c.key for c in cat.codes}
            for system, code in keys:
                if (system, code) in codes or (code is not None and str(code) in cat.values):
                    return cat.label
        return _OutOfDomain

    def _omb(self, a: Attribute, extensions: list[Any] | None, url: str, loc: Location, res: dict[str, Any]) -> Any:
        for ext in extensions or ():
            if ext.get("url") != url:
                continue
            subs = ext.get("extension")
            if subs is not None and not isinstance(subs, list):
                return self._bad(loc, res, f"Patient.extension[{url.rsplit('-', 1)[-1]}].extension must be a list, got "
                                 f"{_kind(subs)}", self.counts[a.name])
            codings = []
            for sub in subs or ():
                if isinstance(sub, dict) and sub.get("url") == "ombCategory":
                    coding = sub.get("valueCoding")
                    if not isinstance(coding, dict):
                        return self._bad(loc, res, f"Patient.extension[{url.rsplit('-', 1)[-1]}].ombCategory."
                                         f"valueCoding must be a Coding object, got {_kind(coding)}", self.counts[a.name])
                    codings.append(coding)
            if not codings:
                return None
            try:
                return self._coded_category(a, {"coding": codings})
            except _Malformed as bad:
                return self._bad(loc, res, bad.message.replace("CodeableConcept",
                                                               f"Patient.extension[{url.rsplit('-', 1)[-1]}]"),
                                 self.counts[a.name])
        return None

    # --------------------------------------------------------------- finishing
    def finish(self) -> tuple[pd.DataFrame, dict[str, AttributeCounts]]:
        keep = self._resolve_identities()
        n = len(self.keys)
        columns: dict[str, Any] = {}
        for i, a in enumerate(self.attrs):
            raw = self._raw(i, a, n)
            if keep is not None:
                raw = [raw[r] for r in keep]
            columns[a.name] = self._column(a, raw)
        keys = self.keys if keep is None else [self.keys[r] for r in keep]
        index = pd.Index([k.split("/", 1)[1] if k.startswith("Patient/") else k for k in keys],
                         name="patient_id", dtype="object")
        df = pd.DataFrame(columns, index=index)
        return df, self.counts

    def _raw(self, i: int, a: Attribute, n: int) -> list[Any]:
        src = a.fhir
        assert src is not None
        if src.resource == "Patient":
            return self.pcols[i]
        st = self.state[i]
        agg = src.aggregate
        if agg == "any":
            return st.values(n).tolist()
        if agg == "count":
            return st.values(n).tolist()
        if agg in ("age_at_first", "age_at_last"):
            out: list[Any] = [None] * n
            for r, o in st.items():
                b = self.births[r]
                if b:
                    out[r] = float(_years_between(date.fromordinal(b), date.fromordinal(o)))
            return out
        vals = st.values(n)
        if a.type == "categorical":
            labels = a.labels
            return [None if np.isnan(v) else (_OutOfDomain if v == _OOD_CODE else labels[int(v)]) for v in vals]
        return [None if np.isnan(v) else float(v) for v in vals]

    def _column(self, a: Attribute, raw: list[Any]) -> Any:
        c = self.counts[a.name]
        if a.type == "categorical":
            out = []
            for v in raw:
                if v is _OutOfDomain or (v is None and not a.missing and a.other is not None):
                    # out of domain, or absent where the schema has no missing state: the 'other' category
                    c.out_of_domain += 1
                    v = a.other
                if v is None:
                    c.missing += 1
                out.append(v)
            return pd.Categorical(out, categories=list(a.labels))
        if a.type == "boolean":
            arr = pd.array(raw, dtype="boolean")
            c.missing += int(arr.isna().sum())
            return arr
        if a.type == "count":
            assert a.cap is not None
            vals = []
            for v in raw:
                if v is not None and v > a.cap:
                    c.capped += 1
                    v = a.cap
                vals.append(v)
            arr = pd.array(vals, dtype="Int64")
            c.missing += int(arr.isna().sum())
            return arr
        # numeric
        assert a.bounds is not None
        lo, hi = a.bounds
        vals_f = np.array([np.nan if v is None else v for v in raw], dtype=float)
        below = vals_f < lo
        above = vals_f > hi
        n_out = int(below.sum() + above.sum())
        if n_out:
            if a.out_of_bounds == "clip":
                c.clipped += n_out
                vals_f = np.clip(vals_f, lo, hi)
            else:
                c.out_of_domain += n_out
                vals_f[below | above] = np.nan
        if a.integer:
            vals_f = np.round(vals_f)
        c.missing += int(np.isnan(vals_f).sum())
        return vals_f


_OOD_CODE = -2.0


def _time_key(when: str) -> int:
    """Sortable integer YYYYMMDDhhmmss of a FHIR date/dateTime (time zone ignored, partial parts = 0)."""
    digits = [when[0:4], when[5:7], when[8:10], when[11:13], when[14:16], when[17:19]]
    text = "".join(d if len(d) == 2 or (k == 0 and len(d) == 4) else "00" for k, d in enumerate(digits))
    try:
        return int(text)
    except ValueError:
        return 0


class _Grow:
    """A numpy array indexed by patient row that grows by doubling (flags and counts)."""

    __slots__ = ("arr", "fill")

    def __init__(self, dtype: Any, fill: Any) -> None:
        self.fill = fill
        self.arr = np.full(1024, fill, dtype=dtype)

    def _ensure(self, row: int) -> None:
        size = len(self.arr)
        if row < size:
            return
        while size <= row:
            size *= 2
        arr = np.full(size, self.fill, dtype=self.arr.dtype)
        arr[: len(self.arr)] = self.arr
        self.arr = arr

    def set(self, row: int, value: Any) -> None:
        self._ensure(row)
        self.arr[row] = value

    def add(self, row: int, value: int) -> None:
        self._ensure(row)
        self.arr[row] += value

    def values(self, n: int) -> np.ndarray:
        self._ensure(n - 1) if n else None
        return self.arr[:n]


class _Dense:
    """first/last/min/max/mean state of one attribute: float arrays indexed by patient row."""

    __slots__ = ("agg", "val", "aux")

    def __init__(self, agg: str) -> None:
        self.agg = agg
        self.val = np.full(1024, np.nan)
        # first/last: time key of the kept value; mean: number of values
        self.aux = np.zeros(1024, dtype=np.int64)

    def _grow(self, row: int) -> None:
        size = len(self.val)
        while size <= row:
            size *= 2
        val = np.full(size, np.nan)
        val[: len(self.val)] = self.val
        aux = np.zeros(size, dtype=np.int64)
        aux[: len(self.aux)] = self.aux
        self.val, self.aux = val, aux

    def update(self, row: int, value: float, tkey: int) -> None:
        if row >= len(self.val):
            self._grow(row)
        prev = self.val[row]
        agg = self.agg
        empty = prev != prev  # NaN
        if agg == "last":
            if empty or tkey >= self.aux[row]:
                self.val[row] = value
                self.aux[row] = tkey
        elif agg == "first":
            if empty or tkey < self.aux[row]:
                self.val[row] = value
                self.aux[row] = tkey
        elif agg == "min":
            if empty or value < prev:
                self.val[row] = value
        elif agg == "max":
            if empty or value > prev:
                self.val[row] = value
        else:  # mean: running sum and count
            self.val[row] = value if empty else prev + value
            self.aux[row] += 1

    def merge(self, root: int, row: int) -> None:
        """Fold ``row``'s value into ``root``'s (one person read as two Patients)."""
        top = max(root, row)
        if top >= len(self.val):
            self._grow(top)
        v = self.val[row]
        if v != v:  # nothing at row
            return
        if self.agg == "mean":
            prev = self.val[root]
            self.val[root] = v if prev != prev else prev + v
            self.aux[root] += self.aux[row]
        else:
            self.update(root, float(v), int(self.aux[row]))
        self.val[row] = np.nan

    def values(self, n: int) -> np.ndarray:
        if n > len(self.val):
            self._grow(n - 1)
        v = self.val[:n].copy()
        if self.agg == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                v = v / np.where(self.aux[:n] > 0, self.aux[:n], 1)
        return v


class _FanOut:
    """Adds a ``bad_value`` to several attributes' counters at once."""

    def __init__(self, targets: list[AttributeCounts]) -> None:
        self.targets = targets

    @property
    def bad_value(self) -> int:
        return 0

    @bad_value.setter
    def bad_value(self, value: int) -> None:
        for t in self.targets:
            t.bad_value += 1


class _OutOfDomainType:
    def __repr__(self) -> str:
        return "<out of domain>"


_OutOfDomain: Any = _OutOfDomainType()


def _items(records: Any, on_error: str, progress: bool) -> tuple[Iterator[ResourceItem], FHIRReader | None]:
    if isinstance(records, FHIRReader):
        return records.resources(), records
    if isinstance(records, (str, os.PathLike)):
        reader = read(records, on_error=on_error, progress=progress)
        return reader.resources(), reader
    if isinstance(records, PatientRecord):
        return records.iter_items(), None
    if isinstance(records, Iterable) and not isinstance(records, (dict, bytes)):
        def gen() -> Iterator[ResourceItem]:
            for i, rec in enumerate(records):
                if not isinstance(rec, PatientRecord):
                    raise InvalidParameterError(
                        f"The 'records' parameter of flatten must hold PatientRecord objects; item {i} is a "
                        f"{type(rec).__name__}.")
                yield from rec.iter_items()
        return gen(), None
    raise InvalidParameterError(
        "The 'records' parameter of flatten must be a path, a FHIRReader (synthhealth.fhir.read) or an iterable of "
        f"PatientRecord. Got {type(records).__name__} instead."
    )


def flatten(
    records: Any,
    schema: PatientSchema,
    *,
    on_error: str = "raise",
    progress: bool = False,
    duplicate_patients: str = "raise",
    identifier_systems: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Turn FHIR resources into a patient table: one row per patient, bounded by the schema.

    The privacy unit is the person: two Patient resources that share an identifier (same
    ``system`` and ``value``) or that are joined by ``Patient.link`` are one person, refused by
    default or merged into one row on request, and counted in the report (``identities``).

    Parameters
    ----------
    records : path, FHIRReader or iterable of PatientRecord
        The FHIR input: a path/glob (read with :func:`synthhealth.fhir.read`), an open
        reader, or patient records.
    schema : PatientSchema
        The public schema; every attribute needs a ``fhir`` source.
    on_error : {"raise", "skip"}, default "raise"
        Stop at the first malformed value, or skip and count it (also passed to the
        reader when ``records`` is a path). Skipped values are counted in the report's
        ``malformed`` (by element and problem) and the attributes' ``bad_value``; an event
        resource whose code, status, date or class is malformed is skipped whole. Events dated on
        or after the reference date are counted in ``after_reference_date``.
    progress : bool, default False
        Show a progress bar (when ``records`` is a path).
    duplicate_patients : {"raise", "merge"}, default "raise"
        What to do with Patients that are one person (shared identifier or ``Patient.link``):
        ``"raise"`` a :class:`FHIRFormatError` naming both resources (never the identifier's
        value), or ``"merge"`` their resources into the row of the first one read (demographics:
        the first value present; events: pooled, then capped and bounded as one patient).
    identifier_systems : iterable of str, optional
        The identifier systems that identify a person (e.g. the hospital's MRN system). Default:
        every system. Restrict it when a system's values are not unique per person, e.g. the
        random driver's licence numbers of Synthea's synthetic patients.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``patient_id``, one column per attribute: categoricals with the
        declared categories, ``boolean`` flags, ``Int64`` counts, float numerics.
        ``df.attrs["synthhealth"]`` holds the :class:`FlattenReport` as a dict: how many
        values were clipped, capped or mapped to other/missing, per attribute.

    Raises
    ------
    FHIRFormatError
        On malformed input (with file, position and resource id), unless skipped: a value of the
        wrong JSON type in any element the flattener reads, an impossible date (``2020-13-45``),
        a bad ``deceased[x]``; the reader's errors (a repeated JSON key, a Bundle on an NDJSON
        line...). When two Patients are one person, unless ``duplicate_patients="merge"``
        (whatever ``on_error``). When the input held no patients (whatever ``on_error``).
    InvalidParameterError
        If an attribute of ``schema`` has no FHIR source.

    Examples
    --------
    >>> import synthhealth as sh
    >>> schema = sh.load_schema("core-patient")
    >>> table = sh.flatten(sh.datasets.demo_fhir_path(), schema)
    >>> table.index.is_unique
    True
    """
    if not isinstance(schema, PatientSchema):
        raise InvalidParameterError(
            f"The 'schema' parameter of flatten must be a PatientSchema (see load_schema). Got {type(schema).__name__} instead.")
    check_choice(on_error, "on_error", ("raise", "skip"), "flatten")
    check_bool(progress, "progress", "flatten")
    check_choice(duplicate_patients, "duplicate_patients", ("raise", "merge"), "flatten")
    systems = None
    if identifier_systems is not None:
        items = None if isinstance(identifier_systems, str) or not isinstance(identifier_systems, Iterable) \
            else list(identifier_systems)
        if items is None or not all(isinstance(x, str) for x in items):
            raise InvalidParameterError(
                "The 'identifier_systems' parameter of flatten must be None or an iterable of system URIs (str). "
                f"Got {type(identifier_systems).__name__} instead.")
        systems = frozenset(items)
    flat = _Flattener(schema, on_error, duplicate_patients, systems)
    items, reader = _items(records, on_error, progress)
    # Parsed JSON holds no reference cycles, but millions of short-lived dicts make the cyclic
    # collector run full collections over the whole heap (30-40 % of the time in the read
    # benchmark): pause it while streaming.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for item in items:
            flat.feed(item)
    finally:
        if was_enabled:
            gc.enable()
    df, counts = flat.finish()
    if len(df) == 0:
        raise _no_patients(reader)
    report = FlattenReport(schema.name, schema.hash, len(df), counts, reader.stats.to_dict() if reader else {},
                           dict(flat.identities), dict(flat.malformed), dict(flat.after_reference))
    df.attrs["synthhealth"] = {"kind": "flattened", **report.to_dict(), "patient_ids": "checked"}
    return df


def _no_patients(reader: FHIRReader | None) -> FHIRFormatError:
    """The error for an input that held no patients (a 0-byte NDJSON file, a Bundle without entries...)."""
    if reader is None:
        return FHIRFormatError("the input held no patients: no PatientRecord was given")
    st = reader.stats
    files = [str(f.path) for f in reader.files]
    where = files[0] if len(files) == 1 else (os.path.commonpath(files) if files else None)
    what = f"{st.files} file{'s' if st.files != 1 else ''}, {st.bytes_read:,} bytes, {st.n_resources} resources"
    if st.n_skipped:
        what += f", {st.n_skipped} skipped ({', '.join(f'{k}: {v}' for k, v in st.skipped.items())})"
    return FHIRFormatError(f"the input held no patients ({what}): a table of 0 patients cannot be made (an empty "
                           "export, or a Bundle without entries?)", file=where)


def report_of(table: pd.DataFrame) -> FlattenReport | None:
    """The :class:`FlattenReport` stored on a table by :func:`flatten`, if any.

    Tables checked by :func:`synthhealth.read_table` carry one too.

    Parameters
    ----------
    table : pandas.DataFrame
        A table returned by :func:`flatten` or :func:`synthhealth.read_table`.

    Returns
    -------
    FlattenReport or None
        The counts of what was bounded or mapped, or ``None`` when the table carries no such
        report (e.g. a DataFrame built by hand, or synthetic data).

    Examples
    --------
    >>> import pandas as pd, synthhealth as sh
    >>> report_of(pd.DataFrame({"age": [61]})) is None
    True
    >>> table = sh.flatten(sh.datasets.demo_fhir_path(), sh.load_schema("core-patient"))
    >>> report_of(table).n_patients == len(table)
    True
    """
    meta = table.attrs.get("synthhealth")
    if not meta or meta.get("kind") not in ("flattened", "table"):
        return None
    attrs = {k: AttributeCounts(**v) for k, v in meta["attributes"].items()}
    return FlattenReport(meta["schema_name"], meta["schema_hash"], meta["n_patients"], attrs, meta.get("read_stats", {}),
                         meta.get("identities", {}), meta.get("malformed", {}), meta.get("after_reference_date", {}))

