"""Load and validate a patient schema from YAML (or a dict), reporting every problem."""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..exceptions import SchemaError, SchemaProblem
from .codes import Code
from .model import (
    AGGREGATES,
    ATTRIBUTE_TYPES,
    EVENT_RESOURCES,
    PATIENT_PATHS,
    SCHEMA_FORMAT_VERSION,
    VALUE_AGGREGATES,
    Attribute,
    Category,
    FHIRSource,
    PatientSchema,
    Period,
)

__all__ = ["load_schema", "schema_from_dict", "schema_path", "bundled_schemas"]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOP_KEYS = {"synthhealth_schema", "name", "version", "description", "reference_date", "value_sets", "attributes",
             "patient_id"}
_ATTR_KEYS = {
    "name", "type", "description", "fhir", "column", "role", "missing", "categories", "other", "bounds",
    "bins", "unit", "integer", "out_of_bounds", "cap", "true_values", "false_values",
}
_FHIR_KEYS = {"resource", "path", "codes", "value_set", "aggregate", "period", "component", "unit",
              "encounter_class", "age_at"}
_TYPE_KEYS = {
    "categorical": {"categories", "other"},
    "numeric": {"bounds", "bins", "unit", "integer", "out_of_bounds"},
    "count": {"cap", "bins"},
    "boolean": {"true_values", "false_values"},
}
_ROLES = ("feature", "outcome", "time", "event")


class _Problems:
    def __init__(self) -> None:
        self.items: list[SchemaProblem] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(SchemaProblem(path, message))


def _fmt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _as_date(value: Any, path: str, probs: _Problems) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    probs.add(path, f"must be a date written YYYY-MM-DD, got {_fmt(value)}")
    return None


def _as_number(value: Any, path: str, probs: _Problems) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        probs.add(path, f"must be a number, got {_fmt(value)}")
        return None
    if math.isnan(value):
        probs.add(path, "must be a number, got NaN")
        return None
    return float(value)


def _as_str_list(value: Any, path: str, probs: _Problems) -> tuple[str, ...] | None:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list):
        probs.add(path, f"must be a list of strings, got {_fmt(value)}")
        return None
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            probs.add(f"{path}[{i}]", f"must be a string, got {_fmt(v)}")
        else:
            out.append(str(v))
    return tuple(out)


def _parse_code(value: Any, path: str, probs: _Problems) -> Code | None:
    try:
        if isinstance(value, str):
            return Code.parse(value)
        if isinstance(value, Mapping):
            unknown = set(value) - {"system", "code", "display"}
            if unknown:
                probs.add(path, f"unknown key(s) {sorted(unknown)} (allowed: system, code, display)")
            code = value.get("code")
            display = value.get("display")
            if display is not None and not isinstance(display, str):
                probs.add(f"{path}.display", f"must be a string, got {_fmt(display)}")
                display = None
            if not isinstance(code, (str, int)) or isinstance(code, bool):
                probs.add(f"{path}.code", f"must be a string, got {_fmt(code)}")
                return None
            code = str(code)
            if "system" in value:
                system = value["system"]
                if not isinstance(system, str) or not system:
                    probs.add(f"{path}.system", f"must be a non-empty string, got {_fmt(system)}")
                    return None
                return Code.parse(f"{system}|{code}", display)
            return Code.parse(code, display)
    except ValueError as exc:
        probs.add(path, str(exc))
        return None
    probs.add(path, f"must be 'SYSTEM|CODE' or a mapping with system, code, display; got {_fmt(value)}")
    return None


def _parse_codes(value: Any, path: str, probs: _Problems) -> tuple[Code, ...]:
    if not isinstance(value, list) or not value:
        probs.add(path, f"must be a non-empty list of codes, got {_fmt(value)}")
        return ()
    codes = []
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(value):
        code = _parse_code(item, f"{path}[{i}]", probs)
        if code is None:
            continue
        if code.key in seen:
            probs.add(f"{path}[{i}]", f"duplicate code {code}")
            continue
        seen.add(code.key)
        codes.append(code)
    return tuple(codes)


def _parse_period(value: Any, path: str, probs: _Problems) -> Period | None:
    if not isinstance(value, Mapping):
        probs.add(path, f"must be a mapping with 'start' and/or 'end', got {_fmt(value)}")
        return None
    unknown = set(value) - {"start", "end"}
    if unknown:
        probs.add(path, f"unknown key(s) {sorted(unknown)} (allowed: start, end)")
    start = _as_date(value["start"], f"{path}.start", probs) if value.get("start") is not None else None
    end = _as_date(value["end"], f"{path}.end", probs) if value.get("end") is not None else None
    if start and end and start >= end:
        probs.add(path, f"start {start} must be before end {end}")
    return Period(start, end)


def _parse_fhir(
    raw: Any, atype: str, path: str, value_sets: dict[str, tuple[Code, ...]], probs: _Problems
) -> FHIRSource | None:
    if not isinstance(raw, Mapping):
        probs.add(path, f"must be a mapping with at least 'resource', got {_fmt(raw)}")
        return None
    unknown = set(raw) - _FHIR_KEYS
    if unknown:
        probs.add(path, f"unknown key(s) {sorted(unknown)} (allowed: {', '.join(sorted(_FHIR_KEYS))})")
    resource = raw.get("resource")
    known_resources = ("Patient", *EVENT_RESOURCES)
    if resource not in known_resources:
        probs.add(f"{path}.resource", f"unknown resource {_fmt(resource)} (expected one of {', '.join(known_resources)})")
        return None
    fpath = raw.get("path")
    codes: tuple[Code, ...] = ()
    if "codes" in raw and "value_set" in raw:
        probs.add(path, "give either 'codes' or 'value_set', not both")
    if "codes" in raw:
        codes = _parse_codes(raw["codes"], f"{path}.codes", probs)
    elif "value_set" in raw:
        vs = raw["value_set"]
        if vs not in value_sets:
            probs.add(f"{path}.value_set", f"unknown value set {_fmt(vs)} (declared: {', '.join(sorted(value_sets)) or 'none'})")
        else:
            codes = value_sets[vs]
    period = _parse_period(raw["period"], f"{path}.period", probs) if raw.get("period") is not None else None
    unit = raw.get("unit")
    if unit is not None and not isinstance(unit, str):
        probs.add(f"{path}.unit", f"must be a UCUM code string, got {_fmt(unit)}")
        unit = None
    component = _parse_code(raw["component"], f"{path}.component", probs) if raw.get("component") is not None else None
    classes: tuple[str, ...] = ()
    if raw.get("encounter_class") is not None:
        classes = _as_str_list(raw["encounter_class"], f"{path}.encounter_class", probs) or ()
        if resource != "Encounter":
            probs.add(f"{path}.encounter_class", "only applies to resource Encounter")
    age_at = raw.get("age_at", "reference_date")
    if age_at not in ("reference_date", "end_of_followup"):
        probs.add(f"{path}.age_at", f"must be 'reference_date' or 'end_of_followup', got {_fmt(age_at)}")

    aggregate = raw.get("aggregate")
    if resource == "Patient":
        if fpath not in PATIENT_PATHS:
            probs.add(f"{path}.path", f"unknown FHIR path {_fmt(fpath)} for Patient (expected one of {', '.join(PATIENT_PATHS)})")
        elif atype not in PATIENT_PATHS[fpath]:
            probs.add(f"{path}.path", f"Patient path {fpath!r} gives a {PATIENT_PATHS[fpath][0]} attribute, not {atype}")
        for key in ("codes", "value_set", "aggregate", "period", "component", "unit"):
            if key in raw:
                probs.add(f"{path}.{key}", "does not apply to resource Patient")
        if "age_at" in raw and fpath != "age":
            probs.add(f"{path}.age_at", "only applies to path 'age'")
    else:
        if fpath is not None:
            probs.add(f"{path}.path", f"unknown FHIR path {_fmt(fpath)} for {resource}: events are selected with "
                                      f"'codes' and summarised with 'aggregate'")
        if aggregate is None:
            aggregate = {"boolean": "any", "count": "count"}.get(atype)
            if aggregate is None:
                probs.add(f"{path}.aggregate", f"is required for a {atype} attribute from {resource} "
                                               f"(one of {', '.join(k for k, v in AGGREGATES.items() if atype in v)})")
        if aggregate is not None:
            if aggregate not in AGGREGATES:
                probs.add(f"{path}.aggregate", f"unknown aggregate {_fmt(aggregate)} (expected one of {', '.join(AGGREGATES)})")
            elif atype not in AGGREGATES[aggregate]:
                probs.add(f"{path}.aggregate", f"aggregate {aggregate!r} cannot feed a {atype} attribute "
                                               f"(it gives {' or '.join(AGGREGATES[aggregate])})")
            elif aggregate in VALUE_AGGREGATES and resource != "Observation":
                probs.add(f"{path}.aggregate", f"aggregate {aggregate!r} reads Observation.value[x]; "
                                               f"it does not apply to {resource}")
        if aggregate in VALUE_AGGREGATES and not codes:
            probs.add(f"{path}.codes", "an Observation value needs the code(s) of the observation")
        if (component is not None or unit is not None) and resource != "Observation":
            probs.add(path, "'component' and 'unit' only apply to resource Observation")
        if "age_at" in raw:
            probs.add(f"{path}.age_at", "only applies to Patient path 'age'")
    return FHIRSource(
        resource=resource, path=fpath, codes=codes, aggregate=aggregate, period=period,
        component=component, unit=unit, encounter_classes=classes, age_at=age_at,
    )


def _parse_categories(raw: Any, path: str, probs: _Problems) -> tuple[Category, ...]:
    if not isinstance(raw, list) or not raw:
        probs.add(path, f"must be a non-empty list of categories, got {_fmt(raw)}")
        return ()
    cats: list[Category] = []
    labels: set[str] = set()
    matched: dict[str, str] = {}
    for i, item in enumerate(raw):
        p = f"{path}[{i}]"
        if isinstance(item, (str, int, float)) and not isinstance(item, bool):
            cat = Category(str(item), (), (str(item),))
        elif isinstance(item, Mapping):
            unknown = set(item) - {"label", "codes", "values"}
            if unknown:
                probs.add(p, f"unknown key(s) {sorted(unknown)} (allowed: label, codes, values)")
            label = item.get("label")
            if not isinstance(label, (str, int)) or isinstance(label, bool) or str(label) == "":
                probs.add(f"{p}.label", f"must be a non-empty string, got {_fmt(label)}")
                continue
            label = str(label)
            codes = _parse_codes(item["codes"], f"{p}.codes", probs) if "codes" in item else ()
            values = _as_str_list(item["values"], f"{p}.values", probs) if "values" in item else None
            cat = Category(label, codes, values if values is not None else (label,))
        else:
            probs.add(p, f"must be a string or a mapping with 'label', got {_fmt(item)}")
            continue
        if cat.label in labels:
            probs.add(p, f"duplicate category label {cat.label!r}")
            continue
        labels.add(cat.label)
        for key in [*cat.values, *(str(c) for c in cat.codes)]:
            if key in matched and matched[key] != cat.label:
                probs.add(p, f"value {key!r} already maps to category {matched[key]!r}")
            matched[key] = cat.label
        cats.append(cat)
    return tuple(cats)


def _parse_bins(raw: Any, bounds: tuple[float, float] | None, path: str, probs: _Problems) -> tuple[float, ...] | None:
    if isinstance(raw, Mapping):
        unknown = set(raw) - {"width", "count"}
        if unknown or len(raw) != 1:
            probs.add(path, "must be a list of edges, or a mapping with exactly one of 'width', 'count'")
            return None
        if bounds is None:
            probs.add(path, "'width'/'count' bins need 'bounds'")
            return None
        lo, hi = bounds
        if "width" in raw:
            w = _as_number(raw["width"], f"{path}.width", probs)
            if w is None:
                return None
            if w <= 0:
                probs.add(f"{path}.width", f"must be > 0, got {w:g}")
                return None
            n = math.ceil((hi - lo) / w - 1e-9)
            if n > 10_000:
                probs.add(f"{path}.width", f"gives {n} bins (at most 10000)")
                return None
            edges = [lo + k * w for k in range(n)] + [hi]
            return tuple(float(e) for e in edges)
        k = raw["count"]
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 10_000:
            probs.add(f"{path}.count", f"must be an int in [1, 10000], got {_fmt(k)}")
            return None
        return tuple(lo + (hi - lo) * j / k for j in range(k)) + (hi,)
    if not isinstance(raw, list) or len(raw) < 2:
        probs.add(path, f"must be a list of at least 2 edges, got {_fmt(raw)}")
        return None
    edges = []
    for i, e in enumerate(raw):
        v = _as_number(e, f"{path}[{i}]", probs)
        if v is None:
            return None
        if math.isinf(v):
            probs.add(f"{path}[{i}]", "edges must be finite: declare 'bounds' and let the last edge equal the upper bound")
            return None
        edges.append(v)
    for i in range(1, len(edges)):
        if edges[i] <= edges[i - 1]:
            probs.add(path, f"edges must increase strictly: edge {i} ({edges[i]:g}) <= edge {i - 1} ({edges[i - 1]:g})")
            return None
    if bounds is not None and (edges[0] != bounds[0] or edges[-1] != bounds[1]):
        probs.add(path, f"first and last edges ({edges[0]:g}, {edges[-1]:g}) must equal bounds ({bounds[0]:g}, {bounds[1]:g})")
    return tuple(edges)


def _parse_attribute(raw: Any, i: int, value_sets: dict[str, tuple[Code, ...]], probs: _Problems) -> Attribute | None:
    path = f"attributes[{i}]"
    if not isinstance(raw, Mapping):
        probs.add(path, f"must be a mapping, got {_fmt(raw)}")
        return None
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        probs.add(f"{path}.name", f"must be an identifier (letters, digits, underscore), got {_fmt(name)}")
        name = f"<attribute {i}>"
    path_named = f"{path}"
    atype = raw.get("type")
    if atype not in ATTRIBUTE_TYPES:
        probs.add(f"{path_named}.type", f"unknown attribute type {_fmt(atype)} (expected one of {', '.join(ATTRIBUTE_TYPES)})")
        return None
    unknown = set(raw) - _ATTR_KEYS
    if unknown:
        probs.add(path_named, f"unknown key(s) {sorted(unknown)}")
    for other_type, keys in _TYPE_KEYS.items():
        if other_type == atype:
            continue
        for key in sorted(keys & set(raw) - _TYPE_KEYS[atype]):
            probs.add(f"{path_named}.{key}", f"does not apply to a {atype} attribute")
    kw: dict[str, Any] = {"name": name, "type": atype}
    desc = raw.get("description", "")
    if not isinstance(desc, str):
        probs.add(f"{path_named}.description", "must be a string")
        desc = ""
    kw["description"] = desc
    if "column" in raw:
        if not isinstance(raw["column"], str) or not raw["column"]:
            probs.add(f"{path_named}.column", f"must be a non-empty string, got {_fmt(raw['column'])}")
        else:
            kw["column"] = raw["column"]
    role = raw.get("role", "feature")
    if role not in _ROLES:
        probs.add(f"{path_named}.role", f"must be one of {', '.join(_ROLES)}, got {_fmt(role)}")
    kw["role"] = role
    missing = raw.get("missing", True)
    if not isinstance(missing, bool):
        probs.add(f"{path_named}.missing", f"must be true or false, got {_fmt(missing)}")
        missing = True
    kw["missing"] = missing

    if atype == "categorical":
        kw["categories"] = _parse_categories(raw.get("categories"), f"{path_named}.categories", probs)
        other = raw.get("other")
        if other is not None:
            if str(other) not in {c.label for c in kw["categories"]}:
                probs.add(f"{path_named}.other", f"{_fmt(other)} is not one of the categories")
            kw["other"] = str(other)
    elif atype == "numeric":
        bounds = None
        if "bounds" not in raw:
            probs.add(path_named, "a numeric attribute needs 'bounds: [lower, upper]'")
        else:
            b = raw["bounds"]
            if not isinstance(b, list) or len(b) != 2:
                probs.add(f"{path_named}.bounds", f"must be [lower, upper], got {_fmt(b)}")
            else:
                lo = _as_number(b[0], f"{path_named}.bounds[0]", probs)
                hi = _as_number(b[1], f"{path_named}.bounds[1]", probs)
                if lo is not None and hi is not None:
                    if math.isinf(lo) or math.isinf(hi):
                        probs.add(f"{path_named}.bounds", "must be finite")
                    elif lo >= hi:
                        probs.add(f"{path_named}.bounds", f"lower {lo:g} > upper {hi:g}" if lo > hi else f"lower {lo:g} = upper {hi:g}")
                    else:
                        bounds = (lo, hi)
        kw["bounds"] = bounds
        if "bins" not in raw:
            probs.add(path_named, "a numeric attribute needs 'bins' (a list of edges or {width: w})")
        elif bounds is not None:
            kw["bins"] = _parse_bins(raw["bins"], bounds, f"{path_named}.bins", probs)
        unit = raw.get("unit")
        if unit is not None and not isinstance(unit, str):
            probs.add(f"{path_named}.unit", "must be a UCUM code string")
            unit = None
        kw["unit"] = unit
        integer = raw.get("integer", False)
        if not isinstance(integer, bool):
            probs.add(f"{path_named}.integer", "must be true or false")
            integer = False
        kw["integer"] = integer
        oob = raw.get("out_of_bounds", "clip")
        if oob not in ("clip", "missing"):
            probs.add(f"{path_named}.out_of_bounds", f"must be 'clip' or 'missing', got {_fmt(oob)}")
        kw["out_of_bounds"] = oob
    elif atype == "count":
        cap = raw.get("cap")
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            probs.add(f"{path_named}.cap", f"a count needs 'cap', an int >= 1, got {_fmt(cap)}")
            cap = None
        kw["cap"] = cap
        if "bins" in raw and cap is not None:
            bins = _parse_bins(raw["bins"], (0.0, float(cap) + 1.0), f"{path_named}.bins", probs)
            if bins is not None and any(e != int(e) for e in bins):
                probs.add(f"{path_named}.bins", "count bin edges must be integers")
            kw["bins"] = bins
    elif atype == "boolean":
        for key in ("true_values", "false_values"):
            if key in raw:
                vals = _as_str_list(raw[key], f"{path_named}.{key}", probs)
                if vals is not None:
                    kw[key] = tuple(v.lower() for v in vals)

    if "fhir" in raw:
        src = _parse_fhir(raw["fhir"], atype, f"{path_named}.fhir", value_sets, probs)
        kw["fhir"] = src
        if src is not None:
            if src.unit is not None and kw.get("unit") is not None and src.unit != kw["unit"]:
                probs.add(f"{path_named}.fhir.unit", f"{src.unit!r} differs from the attribute unit {kw['unit']!r}")
            can_be_absent = (src.resource == "Patient" and src.path != "deceased") or (
                src.resource != "Patient" and src.aggregate not in ("any", "count"))
            if can_be_absent and not missing and not kw.get("other"):
                probs.add(f"{path_named}.missing", "must be true: this FHIR source can be absent for a patient "
                                                   "(or declare an 'other' category)")
            if atype == "categorical" and src.resource == "Observation" and not all(c.codes for c in kw["categories"]):
                probs.add(f"{path_named}.categories", "categories of an Observation value need 'codes' "
                                                      "(valueCodeableConcept codings)")
    return Attribute(**kw)


def schema_from_dict(doc: Mapping[str, Any], source: str | None = None) -> PatientSchema:
    """Validate a schema document (the parsed YAML) and build a :class:`PatientSchema`.

    Parameters
    ----------
    doc : mapping
        The schema document.
    source : str, optional
        Where it came from, for error messages.

    Returns
    -------
    PatientSchema

    Raises
    ------
    SchemaError
        With every problem found, each with its path.

    Examples
    --------
    >>> s = schema_from_dict({"synthhealth_schema": 1, "name": "t", "version": "1",
    ...     "reference_date": "2020-01-01",
    ...     "attributes": [{"name": "sex", "type": "categorical", "categories": ["F", "M"]}]})
    >>> s.names
    ['sex']
    """
    probs = _Problems()
    if not isinstance(doc, Mapping):
        raise SchemaError([SchemaProblem("", f"a schema must be a mapping, got {type(doc).__name__}")], source)
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        probs.add("", f"unknown top-level key(s) {sorted(unknown)}")
    fmt = doc.get("synthhealth_schema")
    if fmt != SCHEMA_FORMAT_VERSION:
        probs.add("synthhealth_schema", f"must be {SCHEMA_FORMAT_VERSION} (the format version this release reads), got {_fmt(fmt)}")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        probs.add("name", f"must be a non-empty string, got {_fmt(name)}")
        name = "<unnamed>"
    version = doc.get("version")
    if not isinstance(version, (str, int, float)) or isinstance(version, bool):
        probs.add("version", f"must be a string, got {_fmt(version)}")
    version = str(version)
    ref = None
    if "reference_date" not in doc:
        probs.add("reference_date", "is required (the date the table describes; ages are computed at it)")
    else:
        ref = _as_date(doc["reference_date"], "reference_date", probs)
    value_sets: dict[str, tuple[Code, ...]] = {}
    vs_raw = doc.get("value_sets", {}) or {}
    if not isinstance(vs_raw, Mapping):
        probs.add("value_sets", "must be a mapping of name to a list of codes")
    else:
        for vs_name, codes in vs_raw.items():
            value_sets[str(vs_name)] = _parse_codes(codes, f"value_sets.{vs_name}", probs)
    attrs_raw = doc.get("attributes")
    attributes: list[Attribute] = []
    if not isinstance(attrs_raw, list) or not attrs_raw:
        probs.add("attributes", "must be a non-empty list")
    else:
        seen: dict[str, int] = {}
        for i, raw in enumerate(attrs_raw):
            try:
                attr = _parse_attribute(raw, i, value_sets, probs)
            except TypeError as exc:  # e.g. a list where a name is expected ("unhashable type: 'list'")
                probs.add(f"attributes[{i}]", f"a value has the wrong type ({exc})")
                attr = None
            if attr is None:
                continue
            if attr.name in seen:
                probs.add(f"attributes[{i}].name", f"duplicate name {attr.name!r} (also attributes[{seen[attr.name]}])")
                continue
            seen[attr.name] = i
            attributes.append(attr)
        roles = [a.name for a in attributes if a.role == "time"]
        if len(roles) > 1:
            probs.add("attributes", f"at most one attribute may have role 'time', got {roles}")
    patient_id = doc.get("patient_id")
    if patient_id is not None:
        if not isinstance(patient_id, str) or not patient_id.strip():
            probs.add("patient_id", f"must be a non-empty column name, got {_fmt(patient_id)}")
            patient_id = None
        else:
            clash = [a.name for a in attributes if patient_id in (a.name, a.source_column)]
            if clash:
                probs.add("patient_id", f"column {patient_id!r} is also attribute {clash[0]!r}: the patient id is "
                                        "the privacy unit's key, never an attribute")
    if probs.items:
        raise SchemaError(probs.items, source)
    desc = doc.get("description", "")
    assert ref is not None
    return PatientSchema(
        name=name,
        version=version,
        reference_date=ref,
        attributes=tuple(attributes),
        description=desc if isinstance(desc, str) else "",
        value_sets=value_sets,
        patient_id=patient_id,
        document=_jsonable(copy.deepcopy(dict(doc))),
        source=source,
    )


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (date, datetime)):
        return obj.isoformat()
    return obj


def load_schema(source: str | Path | Mapping[str, Any]) -> PatientSchema:
    """Load and validate a patient schema.

    Parameters
    ----------
    source : str, Path or mapping
        A YAML file, the name of a bundled schema (``"core-patient"``, ``"flchain"``),
        or an already parsed document.

    Returns
    -------
    PatientSchema

    Raises
    ------
    SchemaError
        Listing every problem with its path, e.g. ``attributes[3].bounds: lower 120 > upper 20``.
    FileNotFoundError
        If the file does not exist.

    Examples
    --------
    >>> import synthhealth as sh
    >>> schema = sh.load_schema("core-patient")
    >>> schema["sex"].labels
    ('female', 'male', 'other', 'unknown')
    """
    if isinstance(source, Mapping):
        return schema_from_dict(source)
    path = Path(source)
    # a bundled name wins over anything but a file of that exact name (e.g. a data folder "flchain" in the cwd)
    if isinstance(source, str) and source in bundled_schemas() and not path.is_file():
        path = schema_path(source)
    if not path.exists():
        raise FileNotFoundError(f"schema file not found: {path} (bundled schemas: {', '.join(bundled_schemas())})")
    if path.is_dir():
        raise FileNotFoundError(f"schema source {path} is a folder, not a schema YAML file "
                                f"(bundled schemas: {', '.join(bundled_schemas())})")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise SchemaError([SchemaProblem("", "not UTF-8 text (save the schema file as UTF-8)")], str(path)) from None
    except RecursionError:
        raise SchemaError([SchemaProblem("", "invalid YAML: nested too deeply")], str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SchemaError([SchemaProblem(where, f"invalid YAML: {problem}")], str(path)) from None
    return schema_from_dict(doc, source=str(path))


def bundled_schemas() -> list[str]:
    """Names of the schemas shipped with synthhealth.

    Returns
    -------
    list of str
        Sorted names, each accepted by :func:`load_schema` and :func:`schema_path`.

    Examples
    --------
    >>> "core-patient" in bundled_schemas()
    True
    """
    folder = resources.files("synthhealth") / "schemas"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def schema_path(name: str) -> Path:
    """Path of a bundled schema file (``schema_path("flchain")``).

    Parameters
    ----------
    name : str
        The name of a bundled schema (one of :func:`bundled_schemas`), without ``.yaml``.

    Returns
    -------
    Path
        The YAML file inside the installed package (a starting point for a schema of your own).

    Raises
    ------
    FileNotFoundError
        If no bundled schema has that name (the message lists the bundled ones).

    Examples
    --------
    >>> schema_path("flchain").name
    'flchain.yaml'
    """
    p = Path(str(resources.files("synthhealth") / "schemas" / f"{name}.yaml"))
    if not p.exists():
        raise FileNotFoundError(f"no bundled schema named {name!r} (bundled: {', '.join(bundled_schemas())})")
    return p
