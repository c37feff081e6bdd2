"""Checks that structural validators leave out: reference integrity, id uniqueness, required bindings.

:func:`check_references` reads a folder of FHIR output (Bundles or Bulk NDJSON, as written by
:func:`synthhealth.fhir.write` or anyone else) and checks that every ``reference`` in every
resource, nested ones included (``encounter``, ``reasonReference``, extensions...), resolves to
a resource of the output, and that no resource id is used twice.

:func:`check_bindings` checks the codes of one resource against the *required* value sets of
FHIR R4 (``Patient.gender``, the ``status`` elements, ``Bundle.type``, ...), which
``fhir.resources`` does not enforce (it accepts ``gender: "blue"``).

Messages name the file, position, resource and element; they never echo a value.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..exceptions import FHIRFormatError
from .files import discover, open_binary
from .resource_types import R4_RESOURCE_TYPES

__all__ = ["check_references", "ReferenceReport", "check_bindings", "REQUIRED_BINDINGS"]

_MAX_EXAMPLES = 20


@dataclass
class ReferenceReport:
    """Result of :func:`check_references` (counts and locations, no values).

    Attributes
    ----------
    path : str
        What was checked.
    files, resources, references : int
        Files read, resources seen (Bundles excluded) and references checked.
    problems : dict of str to int
        Problems by kind: ``unresolved reference``, ``reference to another Bundle``,
        ``external reference``, ``conditional reference``, ``unresolved contained reference``,
        ``duplicate id``, ``duplicate fullUrl``, ``resource without id``.
    examples : list of str
        The first problems, each with file, position, resource and element path.
    """

    path: str
    files: int = 0
    resources: int = 0
    references: int = 0
    problems: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every reference resolves and every id is unique."""
        return not self.problems

    @property
    def n_problems(self) -> int:
        """Problems of every kind together."""
        return sum(self.problems.values())

    def add(self, kind: str, where: str) -> None:
        """Count one problem, and keep it as an example while fewer than 20 are kept.

        Parameters
        ----------
        kind : str
            The kind of problem (one of the kinds listed under ``problems``).
        where : str
            Its location: file, position, resource and element path (never a value).

        Returns
        -------
        None
            ``problems[kind]`` is incremented; ``"<where>: <kind>"`` is appended to ``examples``.

        Examples
        --------
        >>> rep = ReferenceReport("out/")
        >>> rep.add("unresolved reference", "out/a.ndjson:3 Observation/o1 subject")
        >>> rep.ok, rep.n_problems, rep.examples
        (False, 1, ['out/a.ndjson:3 Observation/o1 subject: unresolved reference'])
        """
        self.problems[kind] += 1
        if len(self.examples) < _MAX_EXAMPLES:
            self.examples.append(f"{where}: {kind}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {"path": self.path, "files": self.files, "resources": self.resources, "references": self.references,
                "ok": self.ok, "problems": dict(self.problems), "examples": list(self.examples)}

    def summary(self) -> str:
        """One line, plus one per kind of problem."""
        head = (f"reference integrity: {self.references:,} references in {self.resources:,} resources "
                f"({self.files} files)")
        if self.ok:
            return head + ": every reference resolves, every id is unique"
        lines = [f"  {k}: {v:,}" for k, v in sorted(self.problems.items(), key=lambda kv: -kv[1])]
        return head + f": {self.n_problems:,} problems\n" + "\n".join(lines)


def _label(res: dict[str, Any]) -> str:
    rtype = res.get("resourceType")
    rid = res.get("id")
    if isinstance(rtype, str) and rtype in R4_RESOURCE_TYPES:
        return f"{rtype}/{rid}" if isinstance(rid, str) and len(rid) <= 64 else rtype
    return "resource"


def _items(source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], report: ReferenceReport
           ) -> Iterator[tuple[dict[str, Any], str, int, str | None]]:
    """Yield (resource, location text, bundle number or -1, fullUrl) for every resource."""
    bundle_no = 0
    for f in discover(source):
        report.files += 1
        name = str(f.path)
        if f.kind == "ndjson":
            with open_binary(f.path) as fh:
                for lineno, raw in enumerate(fh, 1):
                    if not raw.strip():
                        continue
                    try:
                        res = orjson.loads(raw)
                    except orjson.JSONDecodeError as exc:
                        raise FHIRFormatError(f"invalid JSON at column {exc.colno}: {exc.msg}", file=name,
                                              line=lineno) from None
                    if isinstance(res, dict):
                        yield res, f"{name}, line {lineno}", -1, None
            continue
        with open_binary(f.path) as fh:
            data = fh.read()
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise FHIRFormatError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                                  file=name) from None
        if not isinstance(doc, dict):
            continue
        if doc.get("resourceType") != "Bundle":
            yield doc, name, -1, None
            continue
        bundle_no += 1
        for i, entry in enumerate(doc.get("entry") or ()):
            if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
                yield entry["resource"], f"{name}, entry[{i}]", bundle_no, url


def _references(obj: Any, path: str) -> Iterator[tuple[str, str]]:
    """Yield (element path, reference string) of every Reference under ``obj``."""
    if isinstance(obj, dict):
        ref = obj.get("reference")
        if isinstance(ref, str):
            yield path, ref
        for k, v in obj.items():
            if k == "reference" or k == "contained" or not isinstance(v, (dict, list)):
                continue
            yield from _references(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _references(v, f"{path}[{i}]")


def _relative(ref: str) -> str | None:
    """``Type/id`` of a relative or absolute RESTful reference (``_history`` dropped), else None."""
    parts = ref.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] in R4_RESOURCE_TYPES and parts[-1]:
        return f"{parts[-2]}/{parts[-1]}"
    return None


def check_references(source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> ReferenceReport:
    """Check that every reference in a FHIR output resolves inside it, and that ids are unique.

    Parameters
    ----------
    source : path, glob or list of them
        A folder (searched recursively; dot-files such as the export manifest are skipped),
        files or globs of Bundles (``.json``) and/or Bulk NDJSON (``.ndjson``), optionally
        ``.gz``/``.xz``.

    Returns
    -------
    ReferenceReport
        ``report.ok`` is True when every reference resolves and every id is unique.

    Notes
    -----
    - ``urn:uuid:``/``urn:oid:`` references must match the ``fullUrl`` of an entry of the
      same Bundle (that is how a transaction is resolved); a match in another Bundle is
      reported as ``reference to another Bundle``.
    - ``Type/id`` references (relative, or absolute with ``_history``) must match a resource
      of that type and id anywhere in the output; absolute URLs that match an entry's
      ``fullUrl`` resolve too, others are ``external reference``.
    - ``#id`` must match a contained resource; ``Type?search`` (conditional) references
      cannot be resolved offline and are reported.
    - Memory grows with the number of resource ids (one pass collects them, a second pass
      checks the references).

    Examples
    --------
    >>> import tempfile, pandas as pd, synthhealth as sh
    >>> schema = sh.load_schema("core-patient")
    >>> row = {a.name: (False if a.type == "boolean" else 2 if a.type == "count" else None) for a in schema}
    >>> out = tempfile.mkdtemp()
    >>> _ = sh.fhir.write(pd.DataFrame([row]), schema, out, random_state=0, overwrite=True)
    >>> sh.fhir.check_references(out).ok
    True
    """
    report = ReferenceReport(path=str(source) if isinstance(source, (str, os.PathLike)) else "<several>")
    ids: set[str] = set()
    full_urls: dict[str, int] = {}
    bundle_urls: dict[int, set[str]] = {}
    for res, where, bundle, url in _items(source, report):
        rtype = res.get("resourceType")
        rid = res.get("id")
        if isinstance(rtype, str) and isinstance(rid, str) and rid:
            key = f"{rtype}/{rid}"
            if key in ids:
                report.add("duplicate id", f"{where}, {_label(res)}")
            ids.add(key)
        elif url is None:
            report.add("resource without id", f"{where}, {_label(res)}")
        if url is not None:
            if url in bundle_urls.setdefault(bundle, set()):
                report.add("duplicate fullUrl", f"{where}, {_label(res)}")
            bundle_urls[bundle].add(url)
            full_urls.setdefault(url, bundle)
    report.files = 0
    for res, where, bundle, _url in _items(source, report):
        report.resources += 1
        rtype = res.get("resourceType") if isinstance(res.get("resourceType"), str) else "resource"
        contained = {c.get("id") for c in res.get("contained") or () if isinstance(c, dict)}
        local = bundle_urls.get(bundle, set())
        for path, ref in _references(res, str(rtype)):
            report.references += 1
            loc = f"{where}, {_label(res)}, {path}"
            if ref.startswith("#"):
                if ref[1:] not in contained:
                    report.add("unresolved contained reference", loc)
            elif ref.startswith("urn:"):
                if ref in local:
                    continue
                report.add("reference to another Bundle" if ref in full_urls else "unresolved reference", loc)
            elif "?" in ref:
                report.add("conditional reference", loc)
            elif ref in local:
                continue
            else:
                rel = _relative(ref)
                if rel is not None and rel in ids and "://" not in ref:
                    continue
                if "://" in ref:
                    report.add("external reference", loc)
                else:
                    report.add("unresolved reference", loc)
    return report


# --------------------------------------------------------------------------- bindings
_ADMIN_GENDER = frozenset({"male", "female", "other", "unknown"})
_OBS_STATUS = frozenset({"registered", "preliminary", "final", "amended", "corrected", "cancelled",
                         "entered-in-error", "unknown"})
_ENC_STATUS = frozenset({"planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled",
                         "entered-in-error", "unknown"})
_MR_STATUS = frozenset({"active", "on-hold", "cancelled", "completed", "entered-in-error", "stopped", "draft",
                        "unknown"})
_MR_INTENT = frozenset({"proposal", "plan", "order", "original-order", "reflex-order", "filler-order",
                        "instance-order", "option"})
_PRIORITY = frozenset({"routine", "urgent", "asap", "stat"})
_EVENT_STATUS = frozenset({"preparation", "in-progress", "not-done", "on-hold", "stopped", "completed",
                           "entered-in-error", "unknown"})
_IMM_STATUS = frozenset({"completed", "entered-in-error", "not-done"})
_COND_CLINICAL = ("http://terminology.hl7.org/CodeSystem/condition-clinical",
                  frozenset({"active", "recurrence", "relapse", "inactive", "remission", "resolved"}))
_COND_VERIFICATION = ("http://terminology.hl7.org/CodeSystem/condition-ver-status",
                      frozenset({"unconfirmed", "provisional", "differential", "confirmed", "refuted",
                                 "entered-in-error"}))
_AI_CLINICAL = ("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                frozenset({"active", "inactive", "resolved"}))
_AI_VERIFICATION = ("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                    frozenset({"unconfirmed", "confirmed", "refuted", "entered-in-error"}))
_BUNDLE_TYPE = frozenset({"document", "message", "transaction", "transaction-response", "batch", "batch-response",
                          "history", "searchset", "collection"})
_HTTP_VERB = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"})
_COMPARATOR = frozenset({"<", "<=", ">=", ">"})
_NAME_USE = frozenset({"usual", "official", "temp", "nickname", "anonymous", "old", "maiden"})
_CP_SYSTEM = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})
_CP_USE = frozenset({"home", "work", "temp", "old", "mobile"})
_ADDR_USE = frozenset({"home", "work", "temp", "old", "billing"})
_ADDR_TYPE = frozenset({"postal", "physical", "both"})
_ID_USE = frozenset({"usual", "official", "temp", "secondary", "old"})

#: Required bindings checked by :func:`check_bindings`: resource type -> (element path, allowed
#: codes) for ``code`` elements, or (path, (system, allowed codes)) for CodeableConcepts, where
#: only codings of that system are checked and at least one must be present. ``[]`` walks a list.
REQUIRED_BINDINGS: dict[str, tuple[tuple[str, Any], ...]] = {
    "Patient": (("gender", _ADMIN_GENDER), ("name[].use", _NAME_USE), ("telecom[].system", _CP_SYSTEM),
                ("telecom[].use", _CP_USE), ("address[].use", _ADDR_USE), ("address[].type", _ADDR_TYPE),
                ("identifier[].use", _ID_USE)),
    "Observation": (("status", _OBS_STATUS), ("valueQuantity.comparator", _COMPARATOR),
                    ("component[].valueQuantity.comparator", _COMPARATOR)),
    "Condition": (("clinicalStatus", _COND_CLINICAL), ("verificationStatus", _COND_VERIFICATION)),
    "Encounter": (("status", _ENC_STATUS),),
    "MedicationRequest": (("status", _MR_STATUS), ("intent", _MR_INTENT), ("priority", _PRIORITY)),
    "Procedure": (("status", _EVENT_STATUS),),
    "Immunization": (("status", _IMM_STATUS),),
    "AllergyIntolerance": (("clinicalStatus", _AI_CLINICAL), ("verificationStatus", _AI_VERIFICATION),
                           ("type", frozenset({"allergy", "intolerance"})),
                           ("category[]", frozenset({"food", "medication", "environment", "biologic"})),
                           ("criticality", frozenset({"low", "high", "unable-to-assess"}))),
    "Bundle": (("type", _BUNDLE_TYPE), ("entry[].request.method", _HTTP_VERB)),
}


def _walk(obj: Any, parts: list[str], path: str) -> Iterator[tuple[str, Any]]:
    if not parts:
        yield path, obj
        return
    head, rest = parts[0], parts[1:]
    many = head.endswith("[]")
    name = head[:-2] if many else head
    if not isinstance(obj, dict) or name not in obj:
        return
    val = obj[name]
    if many and name:
        if isinstance(val, list):
            for i, v in enumerate(val):
                yield from _walk(v, rest, f"{path}.{name}[{i}]")
        return
    yield from _walk(val, rest, f"{path}.{name}")


def check_bindings(resource: dict[str, Any]) -> list[str]:
    """Check a resource's codes against FHIR R4's required value sets (see :data:`REQUIRED_BINDINGS`).

    Parameters
    ----------
    resource : dict
        A parsed resource (a Bundle's entries are not checked; pass them one by one).

    Returns
    -------
    list of str
        One ``element.path: problem`` line per bad code; empty when every code is allowed.
        Values are never echoed.

    Examples
    --------
    >>> check_bindings({"resourceType": "Patient", "gender": "female"})
    []
    >>> check_bindings({"resourceType": "Patient", "gender": "blue"})
    ['Patient.gender: not a code of the required value set']
    """
    rtype = resource.get("resourceType")
    out: list[str] = []
    for path, allowed in REQUIRED_BINDINGS.get(str(rtype), ()):
        for where, value in _walk(resource, path.replace("[].", "[] ").replace(".", " ").split(), str(rtype)):
            if isinstance(allowed, tuple):
                system, codes = allowed
                codings = [c for c in (value.get("coding") or ()) if isinstance(c, dict)] \
                    if isinstance(value, dict) else []
                mine = [c for c in codings if c.get("system") == system]
                if not mine:
                    out.append(f"{where}: no coding from the required code system")
                elif any(c.get("code") not in codes for c in mine):
                    out.append(f"{where}: not a code of the required value set")
            elif not isinstance(value, str) or value not in allowed:
                out.append(f"{where}: not a code of the required value set")
    return out
