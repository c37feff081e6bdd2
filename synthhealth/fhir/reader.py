"""Streaming FHIR R4 reader: Bundles and Bulk-Data NDJSON, grouped by patient.

Hot path: plain dicts parsed with orjson. ``strict=True`` validates every resource
with ``fhir.resources.R4B`` (about 40x slower) and reports errors with file,
line/entry and resource id.

Memory: NDJSON is read line by line; each Bundle file is parsed whole, one file at a
time. The reader keeps an index of patient references (a few strings per patient)
and, when grouping NDJSON by patient, the byte offsets of each patient's lines.
"""

from __future__ import annotations

import json
import json.decoder
import json.scanner
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import numpy as np
import orjson

from .._validation import check_bool, check_choice
from ..exceptions import FHIRFormatError, InvalidParameterError
from .files import InputFile, discover, open_binary
from .resource_types import PATIENT_LINK_FIELDS, R4_RESOURCE_TYPES
from .validate import validate_resource

__all__ = ["Location", "ResourceItem", "PatientRecord", "ReadStats", "FHIRReader", "read", "normalize_reference"]

_MAX_EXAMPLES = 20


@dataclass(frozen=True)
class Location:
    """Where a resource was read: file, and line (NDJSON) or entry index (Bundle)."""

    file: str
    line: int | None = None
    entry: int | None = None

    def error(self, message: str, resource: dict[str, Any] | None = None) -> FHIRFormatError:
        """A :class:`FHIRFormatError` at this location."""
        return FHIRFormatError(message, file=self.file, line=self.line, entry=self.entry,
                               resource_id=_resource_label(resource))

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.entry is not None:
            parts.append(f"entry[{self.entry}]")
        return ", ".join(parts)


def _resource_label(resource: dict[str, Any] | None) -> str | None:
    if not isinstance(resource, dict):
        return None
    rtype = resource.get("resourceType")
    rid = resource.get("id")
    if isinstance(rtype, str) and rtype in R4_RESOURCE_TYPES:
        return f"{rtype}/{rid}" if isinstance(rid, str) and len(rid) <= 64 else rtype
    return None


@dataclass(slots=True)
class ResourceItem:
    """A resource as streamed by :meth:`FHIRReader.resources`.

    Attributes
    ----------
    resource : dict
        The parsed resource.
    patient : str or None
        Canonical key of the patient it belongs to (``Patient/<id>``), ``None`` for
        resources not linked to a patient (Organization, Practitioner, ...).
    location : Location
    """

    resource: dict[str, Any]
    patient: str | None
    location: Location


@dataclass
class PatientRecord:
    """One patient and all of their resources.

    Attributes
    ----------
    key : str
        Canonical key, ``Patient/<id>``.
    patient : dict
        The Patient resource.
    resources : dict of str to list of dict
        The patient's other resources, by resource type, in input order.
    """

    key: str
    patient: dict[str, Any]
    resources: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __getitem__(self, resource_type: str) -> list[dict[str, Any]]:
        return self.resources.get(resource_type, [])

    def __len__(self) -> int:
        return 1 + sum(len(v) for v in self.resources.values())

    def iter_items(self) -> Iterator[ResourceItem]:
        """The patient's resources as :class:`ResourceItem` (Patient first)."""
        loc = Location("<record>")
        yield ResourceItem(self.patient, self.key, loc)
        for items in self.resources.values():
            for r in items:
                yield ResourceItem(r, self.key, loc)


@dataclass
class ReadStats:
    """Counts gathered while reading (no patient data)."""

    files: int = 0
    bytes_read: int = 0
    resources: Counter[str] = field(default_factory=Counter)
    patients: int = 0
    not_linked: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_examples: list[str] = field(default_factory=list)

    @property
    def n_resources(self) -> int:
        """Resources read (skipped ones excluded)."""
        return sum(self.resources.values())

    @property
    def n_skipped(self) -> int:
        """Resources or files skipped because of errors (``on_error="skip"``)."""
        return sum(self.skipped.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary."""
        return {
            "files": self.files,
            "bytes_read": self.bytes_read,
            "patients": self.patients,
            "resources": dict(self.resources),
            "not_linked_to_a_patient": self.not_linked,
            "skipped": dict(self.skipped),
            "skipped_examples": list(self.skipped_examples),
        }


def normalize_reference(ref: str) -> str | None:
    """Turn a reference into the key the patient index uses, or ``None`` if not a patient.

    Handles ``urn:uuid:...``, relative ``Patient/x``, absolute ``https://.../Patient/x``
    (with or without ``_history``), and conditional ``Patient?identifier=system|value``.

    Examples
    --------
    >>> normalize_reference("https://h.org/fhir/Patient/7/_history/2")
    'Patient/7'
    >>> normalize_reference("Patient?identifier=http://h.org/mrn|123")
    'identifier:http://h.org/mrn|123'
    >>> normalize_reference("Group/1") is None
    True
    """
    if ref.startswith("urn:"):
        return ref
    if ref.startswith("#"):
        return None
    if "?" in ref:
        head, query = ref.split("?", 1)
        if head.rsplit("/", 1)[-1] != "Patient":
            return None
        ident = parse_qs(query).get("identifier")
        return f"identifier:{unquote(ident[0])}" if ident else f"conditional:{query}"
    parts = ref.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1]:
        return f"Patient/{parts[-1]}"
    return None


def _patient_key(patient: dict[str, Any], full_url: str | None, loc: Location) -> str:
    rid = patient.get("id")
    if isinstance(rid, str) and rid:
        return f"Patient/{rid}"
    if full_url:
        return normalize_reference(full_url) or full_url
    return f"Patient#{loc}"


def _identifier_aliases(patient: dict[str, Any]) -> set[str]:
    out = set()
    for ident in patient.get("identifier") or ():
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            system = ident.get("system") if isinstance(ident.get("system"), str) else ""
            out.add(f"identifier:{system}|{ident['value']}")
            out.add(f"identifier:{ident['value']}")
    return out


class _PatientIndex:
    """Aliases (Patient/id, fullUrl) → canonical patient key; identifiers indexed on demand.

    Literal references (``Patient/x``, ``urn:uuid:...``, absolute URLs) need one or two strings
    per patient. Conditional and logical references by identifier are rare, so the identifier
    index is only built (by one extra scan of the Patient resources) the first time one appears.
    """

    def __init__(self, scan_identifiers: Any = None) -> None:
        self.alias: dict[str, str | None] = {}
        self._scan = scan_identifiers
        self._ident: dict[str, str | None] | None = None

    def add(self, patient: dict[str, Any], full_url: str | None, loc: Location) -> str:
        key = _patient_key(patient, full_url, loc)
        if self.alias.get(key) == key:
            raise loc.error("duplicate Patient: this patient id appears twice in the input", patient)
        self.alias[key] = key
        if full_url and full_url != key:
            prev = self.alias.get(full_url, key)
            self.alias[full_url] = key if prev == key else None
        return key

    def _identifiers(self) -> dict[str, str | None]:
        if self._ident is None:
            ident: dict[str, str | None] = {}
            for key, aliases in (self._scan() if self._scan is not None else ()):
                for a in aliases:
                    prev = ident.get(a, key)
                    # an identifier shared by two patients is ambiguous
                    ident[a] = key if prev == key else None
            self._ident = ident
        return self._ident

    def resolve(self, ref_key: str) -> str | None:
        if ref_key.startswith("identifier:"):
            key = self._identifiers().get(ref_key)
            # only patients already read count: the rest are resolved at the end of the input
            return key if key is not None and self.alias.get(key) == key else None
        return self.alias.get(ref_key)

    def ambiguous(self, ref_key: str) -> bool:
        if ref_key.startswith("identifier:"):
            ident = self._identifiers()
            return ref_key in ident and ident[ref_key] is None
        return ref_key in self.alias and self.alias[ref_key] is None


# ------------------------------------------------------------------ duplicate keys
# orjson keeps the last value of a repeated key, silently: {"resourceType": "Patient",
# "resourceType": "Observation"} would read as an Observation. Every key is followed by one ':'
# outside strings, and the strings keep their colons in orjson's dump of what it parsed; a document
# with a repeated key loses that key's ':' (and those of its dropped value) in the dump. Counting
# one byte in both costs a fraction of the parse; only a document with more colons than its dump
# is parsed again (slowly) to name the key and the line. (A colon written as the escape \u003a
# in the input is the only way to hide one.)
_NAME = re.compile(r"_?[a-z][A-Za-z0-9]{0,63}")  # FHIR element names: camelCase, '_' for primitive extensions
_TYPE_NAME = re.compile(r"[A-Z][A-Za-z]{0,39}")


class _RepeatedKey(Exception):
    def __init__(self, key: str, line: int) -> None:
        super().__init__(key, line)
        self.key, self.line = key, line


def _find_repeated_key(raw: bytes) -> tuple[str, int] | None:
    """(key as shown, 1-based line of the object holding it) of the first repeated key, or None."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    decoder = json.JSONDecoder()

    def parse_object(s_and_end: tuple[str, int], strict: bool, scan_once: Any, object_hook: Any,
                     object_pairs_hook: Any, memo: Any = None) -> tuple[dict[str, Any], int]:
        s, start = s_and_end
        pairs, end = json.decoder.JSONObject(s_and_end, strict, scan_once, None, list, memo)  # type: ignore[attr-defined]
        seen: set[str] = set()
        for k, _v in pairs:
            if k in seen:
                # an element name is shown; anything else might be data
                shown = repr(k) if _NAME.fullmatch(k) else "(a key that is not an element name)"
                raise _RepeatedKey(shown, s.count("\n", 0, start) + 1)
            seen.add(k)
        return dict(pairs), end

    decoder.parse_object = parse_object  # type: ignore[assignment]
    decoder.scan_once = json.scanner.py_make_scanner(decoder)
    try:
        decoder.decode(text)
    except _RepeatedKey as rep:
        return rep.key, rep.line
    except (ValueError, RecursionError):
        return None
    return None


def _repeated_key(raw: bytes, doc: Any) -> tuple[str, int] | None:
    """The repeated key of a parsed document and its line, or None (the fast count first)."""
    if not isinstance(doc, (dict, list)):
        return None
    try:
        if raw.count(b":") <= orjson.dumps(doc).count(b":"):
            return None
    except (TypeError, orjson.JSONEncodeError):  # pragma: no cover - what orjson parsed, it dumps
        pass
    return _find_repeated_key(raw)


def _ref_kind(link: str) -> str:
    return link.split(":", 1)[0] if ":" in link else "relative"


def _link_key(resource: dict[str, Any], loc: Location) -> str | None:
    """The normalized patient reference of a resource (``None``: not linked to a patient)."""
    for fld in PATIENT_LINK_FIELDS:
        val = resource.get(fld)
        if val is None:
            continue
        if isinstance(val, list):  # e.g. Consent.patient is 0..1 but some exporters use lists
            val = val[0] if val else None
            if val is None:
                continue
        if not isinstance(val, dict):
            raise loc.error(f"{resource.get('resourceType')}.{fld} must be a Reference object, got {type(val).__name__}",
                            resource)
        ref = val.get("reference")
        if isinstance(ref, str) and ref:
            key = normalize_reference(ref)
            if key is not None:
                return key
            # a reference to something else (Group, Location, contained): not a patient link
            return None
        ident = val.get("identifier")
        if isinstance(ident, dict) and isinstance(ident.get("value"), str) and val.get("type", "Patient") == "Patient":
            system = ident.get("system") if isinstance(ident.get("system"), str) else ""
            return f"identifier:{system}|{ident['value']}" if system else f"identifier:{ident['value']}"
        if ref is not None and not isinstance(ref, str):
            raise loc.error(f"{resource.get('resourceType')}.{fld}.reference must be a string", resource)
    return None


class FHIRReader:
    """Streaming reader over FHIR R4 Bundles and Bulk-Data NDJSON.

    Iterate it to get one :class:`PatientRecord` per patient, or call
    :meth:`resources` to stream resources (with their patient key) in one pass, which
    is what :func:`synthhealth.flatten` does.

    Parameters
    ----------
    source : path, glob or list of them
        Files (``.json``, ``.ndjson``, each optionally ``.gz``/``.xz``), folders or globs.
    strict : bool, default False
        Validate every resource with ``fhir.resources.R4B``.
    on_error : {"raise", "skip"}, default "raise"
        Stop at the first bad resource, or skip and count bad resources (see
        :attr:`stats`).
    progress : bool, default False
        Show a progress bar over the input bytes.

    Examples
    --------
    >>> import synthhealth as sh
    >>> reader = sh.fhir.read(sh.datasets.demo_fhir_path())
    >>> first = next(iter(reader))
    >>> first.patient["resourceType"]
    'Patient'
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        strict: bool = False,
        on_error: str = "raise",
        progress: bool = False,
    ) -> None:
        self.strict = check_bool(strict, "strict", "read")
        self.on_error = check_choice(on_error, "on_error", ("raise", "skip"), "read")
        self.progress = check_bool(progress, "progress", "read")
        self.files: list[InputFile] = discover(source)
        self.stats = ReadStats()
        self._index = _PatientIndex(self._scan_identifiers)

    # ------------------------------------------------------------------ helpers
    @property
    def total_bytes(self) -> int:
        """Total size of the input files on disk."""
        return sum(f.size for f in self.files)

    def _ordered_files(self) -> list[InputFile]:
        # Patient NDJSON files first so every later reference can be resolved at once.
        def rank(f: InputFile) -> int:
            if f.kind == "ndjson" and f.resource_type == "Patient":
                return 0
            if f.kind == "bundle":
                return 1
            return 2

        return sorted(self.files, key=lambda f: (rank(f), str(f.path)))

    def _fail(self, err: FHIRFormatError, reason: str) -> None:
        if self.on_error == "raise":
            raise err
        self.stats.skipped[reason] += 1
        if len(self.stats.skipped_examples) < _MAX_EXAMPLES:
            self.stats.skipped_examples.append(str(err))

    def _reset(self) -> None:
        self.stats = ReadStats()
        self._index = _PatientIndex(self._scan_identifiers)

    def _scan_identifiers(self) -> Iterator[tuple[str, set[str]]]:
        """(patient key, identifier aliases) of every Patient in the input (errors ignored here:
        the main pass reports them)."""
        for f in self._ordered_files():
            try:
                if f.kind == "ndjson":
                    with open_binary(f.path) as fh:
                        for lineno, raw in enumerate(fh, start=1):
                            if b'"Patient"' not in raw:
                                continue
                            try:
                                res = orjson.loads(raw)
                            except orjson.JSONDecodeError:
                                continue
                            if isinstance(res, dict) and res.get("resourceType") == "Patient":
                                loc = Location(str(f.path), line=lineno)
                                yield _patient_key(res, None, loc), _identifier_aliases(res)
                else:
                    with open_binary(f.path) as fh:
                        doc = orjson.loads(fh.read())
                    if isinstance(doc, dict) and doc.get("resourceType") == "Patient":
                        yield _patient_key(doc, None, Location(str(f.path))), _identifier_aliases(doc)
                    elif isinstance(doc, dict) and isinstance(doc.get("entry"), list):
                        for i, e in enumerate(doc["entry"]):
                            res = e.get("resource") if isinstance(e, dict) else None
                            if isinstance(res, dict) and res.get("resourceType") == "Patient":
                                url = e.get("fullUrl") if isinstance(e.get("fullUrl"), str) else None
                                yield (_patient_key(res, url, Location(str(f.path), entry=i)),
                                       _identifier_aliases(res))
            except (OSError, EOFError, ValueError):
                continue

    def _progress_bar(self) -> Any:
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.total_bytes, unit="B", unit_scale=True, desc="reading FHIR", leave=False)

    def _check_resource(self, res: Any, loc: Location, what: str) -> bool:
        """Structural checks shared by both layouts; returns False if skipped."""
        if not isinstance(res, dict):
            self._fail(loc.error(f"{what} must be a JSON object, got {type(res).__name__}"), "not an object")
            return False
        rtype = res.get("resourceType")
        if rtype is None:
            self._fail(loc.error(f"{what} has no 'resourceType'"), "no resourceType")
            return False
        if not isinstance(rtype, str) or rtype not in R4_RESOURCE_TYPES:
            # a type-like name is shown (a typo, an R5 type); anything else might be data
            shown = repr(rtype) if isinstance(rtype, str) and _TYPE_NAME.fullmatch(rtype) else \
                f"(a {type(rtype).__name__} that is not a resource type name)"
            self._fail(loc.error(f"unknown resource type {shown} (not a FHIR R4 resource)"), "unknown resourceType")
            return False
        if self.strict:
            problems = validate_resource(res)
            if problems:
                more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
                self._fail(loc.error("invalid resource: " + "; ".join(problems[:3]) + more, res), "invalid resource")
                return False
        return True

    def _parse_error(self, exc: orjson.JSONDecodeError, loc: Location) -> FHIRFormatError:
        where = f"line {exc.lineno}, column {exc.colno}" if loc.line is None else f"column {exc.colno}"
        hint = " (truncated file?)" if "EOF" in exc.msg or "end of" in exc.msg.lower() else ""
        return loc.error(f"invalid JSON at {where}: {exc.msg}{hint}")

    # ------------------------------------------------------------ raw iteration
    def _bundle_entries(self, f: InputFile) -> Iterator[tuple[dict[str, Any], str | None, Location]]:
        """Yield (resource, fullUrl, location) of one Bundle file (or single-resource file)."""
        fname = str(f.path)
        try:
            with open_binary(f.path) as fh:
                data = fh.read()
        except (OSError, EOFError, ValueError) as exc:  # corrupt compression
            self._fail(FHIRFormatError(f"cannot read file: {type(exc).__name__}", file=fname), "unreadable file")
            return
        self.stats.bytes_read += len(data)
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            if _looks_like_ndjson(data):
                self._fail(FHIRFormatError(
                    f"invalid JSON at line {exc.lineno}: the file holds one JSON document per line, which is Bulk "
                    "NDJSON; name it .ndjson (a .json file holds one Bundle or resource)", file=fname), "NDJSON in a "
                    ".json file")
            else:
                self._fail(self._parse_error(exc, Location(fname)), "invalid JSON")
            return
        repeated = _repeated_key(data, doc)
        if repeated is not None:
            self._fail(FHIRFormatError(
                f"the key {repeated[0]} appears twice in one object (JSON parsers keep only one of the values, so the "
                "resource would be misread)", file=fname, line=repeated[1]), "duplicate JSON key")
            return
        del data
        top = Location(fname)
        if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
            # a file holding a single resource
            if self._check_resource(doc, top, "the document"):
                yield doc, None, top
            return
        entries = doc.get("entry", [])
        if not isinstance(entries, list):
            self._fail(top.error("Bundle.entry must be a list"), "malformed Bundle")
            return
        for i, entry in enumerate(entries):
            loc = Location(fname, entry=i)
            if not isinstance(entry, dict):
                self._fail(loc.error(f"Bundle entry must be a JSON object, got {type(entry).__name__}"), "malformed entry")
                continue
            res = entry.get("resource")
            if res is None:
                continue  # e.g. a DELETE request entry: nothing to read
            if not self._check_resource(res, loc, "entry.resource"):
                continue
            if res["resourceType"] == "Bundle":
                self._fail(loc.error("entry.resource is a Bundle: Bundles inside a Bundle are not read (give each "
                                     "Bundle its own file)", res), "nested Bundle")
                continue
            full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
            yield res, full_url, loc

    def _ndjson_lines(self, f: InputFile) -> Iterator[tuple[dict[str, Any], Location, int, int]]:
        """Yield (resource, location, offset, length) for each line of an NDJSON file."""
        fname = str(f.path)
        offset = 0
        with open_binary(f.path) as fh:
            lines = iter(fh)
            lineno = 0
            while True:
                try:
                    raw = next(lines)
                except StopIteration:
                    break
                except (OSError, EOFError, ValueError) as exc:  # corrupt or truncated compression
                    self._fail(FHIRFormatError(
                        f"cannot read file: {type(exc).__name__} after line {lineno} (truncated or corrupt compression?)",
                        file=fname), "unreadable file")
                    return
                lineno += 1
                n = len(raw)
                self.stats.bytes_read += n
                start = offset
                offset += n
                if not raw.strip():
                    continue
                loc = Location(fname, line=lineno)
                try:
                    res = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    if lineno == 1 and raw.lstrip().startswith(b"{") and not raw.rstrip().endswith(b"}"):
                        self._fail(loc.error(
                            f"invalid JSON at column {exc.colno}: a JSON document spread over several lines (a "
                            "Bundle or pretty-printed resource?); NDJSON holds one resource per line, Bundles go in "
                            ".json files"), "invalid JSON")
                    else:
                        self._fail(self._parse_error(exc, loc), "invalid JSON")
                    continue
                repeated = _repeated_key(raw, res)
                if repeated is not None:
                    self._fail(loc.error(
                        f"the key {repeated[0]} appears twice in one object (JSON parsers keep only one of the "
                        "values, so the resource would be misread)"), "duplicate JSON key")
                    continue
                if not self._check_resource(res, loc, "line"):
                    continue
                if res["resourceType"] == "Bundle":
                    self._fail(loc.error("the line holds a Bundle: Bulk NDJSON holds one resource per line (put "
                                         "Bundles in .json files)", res), "Bundle in NDJSON")
                    continue
                yield res, loc, start, n

    # --------------------------------------------------------------- streaming
    def _linked(self, res: dict[str, Any], loc: Location) -> tuple[str | None, str | None]:
        """Return (link_key, error_reason) for a non-Patient resource."""
        try:
            return _link_key(res, loc), None
        except FHIRFormatError as err:
            self._fail(err, "malformed reference")
            return None, "malformed"

    def resources(self) -> Iterator[ResourceItem]:
        """Stream every resource once, with the key of its patient.

        Patient NDJSON files are read first; within a Bundle, Patients are indexed
        before the other entries. A resource whose patient has not been seen yet is
        held back until the end of the input, then resolved or reported.

        Yields
        ------
        ResourceItem

        Raises
        ------
        FHIRFormatError
            At the first bad resource (``on_error="raise"``), including a reference to
            a patient that never appears in the input.
        """
        self._reset()
        bar = self._progress_bar()
        deferred: list[tuple[dict[str, Any], str, Location]] = []
        try:
            for f in self._ordered_files():
                self.stats.files += 1
                if f.kind == "bundle":
                    yield from self._stream_bundle(f, deferred)
                else:
                    yield from self._stream_ndjson(f, deferred)
                if bar is not None:
                    bar.update(f.size)
            yield from self._resolve_deferred(deferred)
        finally:
            if bar is not None:
                bar.close()

    def _emit(self, res: dict[str, Any], link: str | None, loc: Location,
              deferred: list[tuple[dict[str, Any], str, Location]]) -> ResourceItem | None:
        """The item to yield now, or None (deferred until its patient is seen, or skipped)."""
        if link is None:
            self.stats.not_linked += 1
            self.stats.resources[res["resourceType"]] += 1
            return ResourceItem(res, None, loc)
        key = self._index.resolve(link)
        if key is None:
            if self._index.ambiguous(link):
                self._fail(loc.error("patient reference is ambiguous (an identifier shared by several patients)", res),
                           "ambiguous reference")
                return None
            deferred.append((res, link, loc))
            return None
        self.stats.resources[res["resourceType"]] += 1
        return ResourceItem(res, key, loc)

    def _add_patient(self, res: dict[str, Any], full_url: str | None, loc: Location) -> str | None:
        try:
            key = self._index.add(res, full_url, loc)
        except FHIRFormatError as err:
            self._fail(err, "duplicate patient")
            return None
        self.stats.patients += 1
        self.stats.resources["Patient"] += 1
        return key

    def _stream_bundle(self, f: InputFile, deferred: list[tuple[dict[str, Any], str, Location]]) -> Iterator[ResourceItem]:
        entries = list(self._bundle_entries(f))
        non_patient_urls = {u for r, u, _ in entries if u and r.get("resourceType") != "Patient"}
        for res, url, loc in entries:
            if res["resourceType"] == "Patient":
                key = self._add_patient(res, url, loc)
                if key is not None:
                    yield ResourceItem(res, key, loc)
        for res, _url, loc in entries:
            if res["resourceType"] == "Patient":
                continue
            link, err = self._linked(res, loc)
            if err:
                continue
            if link is not None and link in non_patient_urls:
                link = None  # subject points at a Group/Device/... in this Bundle
            item = self._emit(res, link, loc, deferred)
            if item is not None:
                yield item

    def _stream_ndjson(self, f: InputFile, deferred: list[tuple[dict[str, Any], str, Location]]) -> Iterator[ResourceItem]:
        for res, loc, _off, _n in self._ndjson_lines(f):
            if res["resourceType"] == "Patient":
                key = self._add_patient(res, None, loc)
                if key is not None:
                    yield ResourceItem(res, key, loc)
                continue
            link, err = self._linked(res, loc)
            if err:
                continue
            item = self._emit(res, link, loc, deferred)
            if item is not None:
                yield item

    def _resolve_deferred(self, deferred: list[tuple[dict[str, Any], str, Location]]) -> Iterator[ResourceItem]:
        for res, link, loc in deferred:
            key = self._index.resolve(link)
            if key is None:
                self._fail(loc.error(
                    f"references a patient that never appears in the input ({_ref_kind(link)} reference)", res),
                    "unknown patient")
                continue
            self.stats.resources[res["resourceType"]] += 1
            yield ResourceItem(res, key, loc)
        deferred.clear()

    # ---------------------------------------------------------------- grouping
    def __iter__(self) -> Iterator[PatientRecord]:
        """Yield one :class:`PatientRecord` per patient.

        Bundles: each patient's resources must be in the same Bundle as the Patient
        (the layout of Synthea, ``$everything`` and IPS documents). NDJSON: resources
        are indexed by byte offset in a first pass, then read back one patient at a
        time (compressed files are decompressed to a temporary folder for that).
        """
        kinds = {f.kind for f in self.files}
        if kinds == {"bundle"}:
            return self._iter_bundle_groups()
        if kinds == {"ndjson"}:
            return self._iter_ndjson_groups()
        raise InvalidParameterError(
            "Grouping by patient needs inputs of one layout: Bundles or NDJSON, not both. "
            "Read them separately, or use flatten(), which streams mixed inputs."
        )

    def _iter_bundle_groups(self) -> Iterator[PatientRecord]:
        self._reset()
        bar = self._progress_bar()
        deferred: list[tuple[dict[str, Any], str, Location]] = []
        try:
            for f in sorted(self.files, key=lambda x: str(x.path)):
                self.stats.files += 1
                records: dict[str, PatientRecord] = {}
                for item in self._stream_bundle(f, deferred):
                    if item.patient is None:
                        continue
                    if item.resource["resourceType"] == "Patient":
                        records[item.patient] = PatientRecord(item.patient, item.resource)
                    elif item.patient in records:
                        records[item.patient].resources.setdefault(item.resource["resourceType"], []).append(item.resource)
                    else:
                        self._fail(item.location.error(
                            "resource belongs to a patient of another Bundle; grouping needs each patient's resources "
                            "in the Patient's Bundle (flatten() handles this layout)", item.resource), "split patient")
                yield from records.values()
                if bar is not None:
                    bar.update(f.size)
            for item in self._resolve_deferred(deferred):
                self._fail(item.location.error(
                    "resource belongs to a patient of another Bundle; grouping needs each patient's resources "
                    "in the Patient's Bundle (flatten() handles this layout)", item.resource), "split patient")
        finally:
            if bar is not None:
                bar.close()

    def _iter_ndjson_groups(self) -> Iterator[PatientRecord]:
        self._reset()
        bar = self._progress_bar()
        tmpdir = tempfile.mkdtemp(prefix="synthhealth-ndjson-")
        try:
            patients: list[tuple[str, dict[str, Any]]] = []
            pidx: dict[str, int] = {}
            cols: dict[str, list[int]] = {"p": [], "f": [], "o": [], "n": []}
            readable: list[Path] = []
            deferred: list[tuple[dict[str, Any], str, Location]] = []
            pending: list[tuple[str, Location, str | None, str, int, int, int]] = []
            for f in self._ordered_files():
                self.stats.files += 1
                if f.resource_type == "Patient":
                    for item in self._stream_ndjson(f, deferred):
                        if item.resource["resourceType"] == "Patient":
                            pidx[item.patient] = len(patients)  # type: ignore[index]
                            patients.append((item.patient, item.resource))  # type: ignore[arg-type]
                    if bar is not None:
                        bar.update(f.size)
                    continue
                compressed = f.path.name.lower().endswith((".gz", ".xz"))
                copy_path = Path(tmpdir) / f"{len(readable)}.ndjson" if compressed else f.path
                file_id = len(readable)
                readable.append(copy_path)
                for res, loc, off, n in self._ndjson_lines(f):
                    if res["resourceType"] == "Patient":
                        key = self._add_patient(res, None, loc)
                        if key is not None:
                            pidx[key] = len(patients)
                            patients.append((key, res))
                        continue
                    link, err = self._linked(res, loc)
                    if err:
                        continue
                    if link is None:
                        self.stats.not_linked += 1
                        self.stats.resources[res["resourceType"]] += 1
                        continue
                    key = self._index.resolve(link)
                    if key is None:
                        # the Patient may be in a later file: resolve after the first pass
                        pending.append((link, loc, _resource_label(res), res["resourceType"], file_id, off, n))
                        continue
                    self.stats.resources[res["resourceType"]] += 1
                    cols["p"].append(pidx[key])
                    cols["f"].append(file_id)
                    cols["o"].append(off)
                    cols["n"].append(n)
                if compressed:
                    # the copy must hold the same bytes at the same offsets: decompress it whole
                    with open_binary(f.path) as src, open(copy_path, "wb") as dst:
                        try:
                            shutil.copyfileobj(src, dst, 1 << 20)
                        except (OSError, EOFError, ValueError):
                            pass  # truncated: reported (or skipped) by the first pass; the lines before it are copied
                if bar is not None:
                    bar.update(f.size)
            for link, loc, label, rtype, file_id, off, n in pending:
                key = self._index.resolve(link)
                if key is None:
                    self._fail(FHIRFormatError(
                        f"references a patient that never appears in the input ({_ref_kind(link)} reference)",
                        file=loc.file, line=loc.line, resource_id=label), "unknown patient")
                    continue
                self.stats.resources[rtype] += 1
                cols["p"].append(pidx[key])
                cols["f"].append(file_id)
                cols["o"].append(off)
                cols["n"].append(n)
            p = np.asarray(cols["p"], dtype=np.int64)
            order = np.argsort(p, kind="stable")
            p_sorted = p[order]
            fid = np.asarray(cols["f"], dtype=np.int64)[order]
            off_a = np.asarray(cols["o"], dtype=np.int64)[order]
            len_a = np.asarray(cols["n"], dtype=np.int64)[order]
            del cols, p
            bounds = np.searchsorted(p_sorted, np.arange(len(patients) + 1))
            handles = [open(path, "rb") for path in readable]
            try:
                for i, (key, pres) in enumerate(patients):
                    rec = PatientRecord(key, pres)
                    lo, hi = bounds[i], bounds[i + 1]
                    for j in range(lo, hi):
                        fh = handles[fid[j]]
                        fh.seek(int(off_a[j]))
                        res = orjson.loads(fh.read(int(len_a[j])))
                        rec.resources.setdefault(res["resourceType"], []).append(res)
                    yield rec
            finally:
                for h in handles:
                    h.close()
        finally:
            if bar is not None:
                bar.close()
            shutil.rmtree(tmpdir, ignore_errors=True)


def _looks_like_ndjson(data: bytes) -> bool:
    """Whether a document that failed to parse is several JSON objects, one per line."""
    lines = [ln for ln in data.strip().split(b"\n", 2)[:2] if ln.strip()]
    if len(lines) < 2:
        return False
    try:
        return all(isinstance(orjson.loads(ln), dict) for ln in lines)
    except orjson.JSONDecodeError:
        return False


def read(
    source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    strict: bool = False,
    on_error: str = "raise",
    progress: bool = False,
) -> FHIRReader:
    """Open FHIR R4 input for streaming (nothing is read until you iterate).

    Parameters
    ----------
    source : path, glob or list of them
        Bundles (``.json``, ``.json.gz``, ``.json.xz``) and/or Bulk-Data NDJSON
        (``.ndjson``, ``.ndjson.gz``, ``.ndjson.xz``): files, folders or globs.
    strict : bool, default False
        Validate every resource with ``fhir.resources.R4B``.
    on_error : {"raise", "skip"}, default "raise"
        Stop at the first bad resource, or skip and count them in ``reader.stats``.
    progress : bool, default False
        Show a progress bar.

    Returns
    -------
    FHIRReader
        Iterate for :class:`PatientRecord` objects; pass to :func:`synthhealth.flatten`.

    Examples
    --------
    >>> import synthhealth as sh
    >>> reader = sh.fhir.read(sh.datasets.demo_fhir_path())
    >>> n = sum(1 for _ in reader)
    >>> n == reader.stats.patients
    True
    """
    return FHIRReader(source, strict=strict, on_error=on_error, progress=progress)
