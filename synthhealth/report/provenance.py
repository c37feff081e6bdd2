"""What the report describes, and whether the release report may certify it.

- :func:`table_provenance` reads where a synthetic table comes from: the ``synthhealth``
  provenance that :meth:`BaseGenerator.sample` puts in ``table.attrs`` (kept by Parquet files
  and by :func:`synthhealth.fhir.write`'s manifest; CSV files lose it): generator, schema hash,
  fit id, seeded.
- :func:`file_manifest` lists sha256 hashes of the files a report describes (synthetic table,
  FHIR folder, model, ledger, schema), so that a reader can check that the files on their desk
  are the ones that were judged (:func:`verify_manifest`).
- :func:`release_refusals` lists why a release report must not be produced: the synthetic data
  is not a model's output, the ledger does not hold its fit, the fit was seeded or used an
  insecure sampler, or the internal review's privacy verdict is a fail.
  :func:`check_release` raises the matching :class:`ReleaseRefusedError`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..exceptions import SynthHealthError
from ..privacy.ledger import PrivacyLedger

__all__ = ["ReleaseRefusedError", "NotModelOutputError", "UnrelatedLedgerError", "InsecureFitError",
           "SeededFitError", "InternalReviewFailedError", "table_provenance", "fhir_provenance", "file_provenance",
           "fit_record", "file_manifest", "verify_manifest", "release_refusals", "check_release"]


class ReleaseRefusedError(SynthHealthError):
    """The release report was not produced: it would certify something that was not checked.

    ``reasons`` lists every reason (``(code, sentence)`` pairs); the message is the first one.
    """

    code = "refused"

    def __init__(self, message: str, reasons: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.reasons = list(reasons or [(self.code, message)])


class NotModelOutputError(ReleaseRefusedError):
    """The synthetic table carries no provenance of a synthhealth model (or another schema's)."""

    code = "not_model_output"


class UnrelatedLedgerError(ReleaseRefusedError):
    """No ledger was given, or the given ledger does not hold the fit that produced the synthetic data."""

    code = "unrelated_ledger"


class InsecureFitError(ReleaseRefusedError):
    """The fit drew its noise from a sampler that is not cryptographically secure."""

    code = "insecure_fit"


class SeededFitError(InsecureFitError):
    """The fit's privacy noise was seeded (reproducible): the guarantee does not hold."""

    code = "seeded_fit"


class InternalReviewFailedError(ReleaseRefusedError):
    """The internal review of the same synthetic files has a failed privacy verdict (or none)."""

    code = "internal_review_failed"


_ERRORS: dict[str, type[ReleaseRefusedError]] = {
    c.code: c for c in (NotModelOutputError, UnrelatedLedgerError, InsecureFitError, SeededFitError,
                        InternalReviewFailedError)}


def table_provenance(table: Any) -> dict[str, Any] | None:
    """The synthhealth provenance of a synthetic table, or ``None`` when it has none.

    Parameters
    ----------
    table : DataFrame
        A table from :meth:`BaseGenerator.sample` (or read back from a Parquet file written by
        :func:`synthhealth.write_table`).

    Returns
    -------
    dict or None
        ``kind`` (``"synthetic"``), ``generator``, ``schema_hash``, ``fit_id`` and ``seeded``;
        ``None`` when ``table.attrs`` holds no synthhealth record of kind ``"synthetic"``.

    Examples
    --------
    >>> import pandas as pd
    >>> table_provenance(pd.DataFrame({"a": [1]})) is None
    True
    """
    if not isinstance(table, pd.DataFrame):
        return None
    rec = table.attrs.get("synthhealth")
    if not isinstance(rec, Mapping) or rec.get("kind") != "synthetic":
        return None
    return {k: rec.get(k) for k in ("kind", "generator", "schema_hash", "fit_id", "seeded")}


def fhir_provenance(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The provenance recorded in the manifest of a folder written by :func:`synthhealth.fhir.write`.

    Returns
    -------
    dict or None
        As :func:`table_provenance`; ``None`` without a manifest or a provenance record in it.
    """
    p = Path(folder) / ".manifest.json"
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    rec = ((doc.get("extension") or {}).get("synthhealth") or {}).get("provenance")
    if not isinstance(rec, Mapping) or rec.get("kind") != "synthetic":
        return None
    return {k: rec.get(k) for k in ("kind", "generator", "schema_hash", "fit_id", "seeded")}


def file_provenance(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The provenance of a synthetic file: a Parquet table's pandas attrs, or a FHIR folder's manifest.

    Returns
    -------
    dict or None
        As :func:`table_provenance`; ``None`` for CSV files (they keep no provenance) and files
        without it.
    """
    p = Path(path)
    if p.is_dir():
        return fhir_provenance(p)
    if not p.name.lower().endswith((".parquet", ".pq")):
        return None
    try:
        import pyarrow.parquet as pq

        meta = pq.read_schema(p).metadata or {}
        attrs = json.loads(meta.get(b"PANDAS_ATTRS", b"{}"))
    except (OSError, ValueError, ImportError):
        return None
    return table_provenance(_with_attrs(attrs))


def _with_attrs(attrs: Mapping[str, Any]) -> pd.DataFrame:
    df = pd.DataFrame()
    df.attrs.update(attrs)
    return df


def fit_record(ledger: PrivacyLedger | None, fit_id: str | None) -> dict[str, Any] | None:
    """What the ledger says about one fit: found, its status, generator, schema hash, cost, seeded, secure.

    Returns
    -------
    dict or None
        ``None`` without a ledger or a fit id; ``{"found": False, ...}`` when the ledger does not
        hold the fit.
    """
    if ledger is None or not fit_id:
        return None
    fit = next((f for f in ledger.fits if f.get("fit_id") == fit_id), None)
    if fit is None:
        return {"fit_id": fit_id, "found": False, "n_fits_in_ledger": len(ledger.fits)}
    total = ledger.total(fit_id)
    return {"fit_id": fit_id, "found": True, "status": fit.get("status"), "generator": fit.get("generator"),
            "schema_hash": fit.get("schema_hash"), "epsilon": total.epsilon, "delta": total.delta,
            "n_entries": total.n_entries, "seeded": bool(total.seeded or fit.get("seeded")),
            "secure": bool(getattr(total, "secure", False)) and not total.seeded}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_manifest(files: Mapping[str, str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """sha256 hashes of the files a report describes.

    Parameters
    ----------
    files : mapping of role → path
        E.g. ``{"synthetic table": "syn.parquet", "synthetic FHIR": "fhir/", "model": "model/",
        "ledger": "ledger.json", "schema": "schema.yaml"}``. A folder contributes every file in it
        (recursively, sorted; hidden files included, so a FHIR manifest is covered).

    Returns
    -------
    list of dict
        One entry per file: ``role``, ``path`` (as given, plus the file inside a folder), ``bytes``
        and ``sha256``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = p.write_text("abc")
    >>> file_manifest({"schema": p})[0]["sha256"][:12]
    'ba7816bf8f01'
    """
    out: list[dict[str, Any]] = []
    for role, raw in files.items():
        if raw is None:
            continue
        p = Path(raw)
        if p.is_dir():
            items = sorted(q for q in p.rglob("*") if q.is_file())
        elif p.is_file():
            items = [p]
        else:
            out.append({"role": str(role), "path": str(p), "bytes": None, "sha256": None, "missing": True})
            continue
        for q in items:
            out.append({"role": str(role), "path": str(q), "bytes": q.stat().st_size, "sha256": _sha256(q)})
    return out


def verify_manifest(manifest: list[dict[str, Any]]) -> list[str]:
    """The files of a manifest that are missing or changed (empty when every file matches).

    Examples
    --------
    >>> verify_manifest([])
    []
    """
    bad = []
    for e in manifest:
        p = Path(e["path"])
        if e.get("sha256") is None:
            continue
        if not p.is_file():
            bad.append(f"{e['path']}: missing")
        elif _sha256(p) != e["sha256"]:
            bad.append(f"{e['path']}: changed since the report was built")
    return bad


def release_refusals(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Why a release report must not be produced from an internal report document (empty: it may).

    The release certifies only what was checked: the synthetic table is the output of a model
    (its provenance names a fit and the schema the report used), the given ledger holds that fit,
    the fit was not seeded and drew its noise from secure samplers, and the internal review (this
    document) has a privacy verdict that is not a fail.

    Parameters
    ----------
    doc : mapping
        An internal report document (:meth:`Report.to_dict`).

    Returns
    -------
    list of (code, sentence)
        Codes: ``not_model_output``, ``unrelated_ledger``, ``seeded_fit``, ``insecure_fit``,
        ``internal_review_failed``.
    """
    meta = doc.get("meta") or {}
    reasons: list[tuple[str, str]] = []
    prov = meta.get("provenance")
    schema_hash = (meta.get("schema") or {}).get("hash")
    if not prov:
        reasons.append(("not_model_output",
                        "The synthetic table is not a model's output: it carries no synthhealth provenance (generator, "
                        "schema hash, fit id). Give the table as sampled by a synthhealth model, or read back from the "
                        "Parquet file or FHIR folder synthhealth wrote (CSV files lose the provenance)."))
    elif prov.get("schema_hash") != schema_hash:
        reasons.append(("not_model_output",
                        f"The synthetic table was produced with another schema (hash {str(prov.get('schema_hash'))[:12]}"
                        f"…) than the report's ({str(schema_hash)[:12]}…)."))
    fit = meta.get("fit")
    fit_id = (prov or {}).get("fit_id")
    if prov and not fit_id:
        reasons.append(("not_model_output", "The synthetic table's provenance names no fit."))
    elif prov:
        if not (meta.get("privacy") or {}).get("has_guarantee"):
            reasons.append(("unrelated_ledger", f"No privacy ledger was given: fit {fit_id} cannot be checked."))
        elif not fit or not fit.get("found"):
            reasons.append(("unrelated_ledger",
                            f"The given ledger does not hold fit {fit_id}, which produced the synthetic table: it is "
                            "the ledger of other data, so its ε says nothing about this release."))
        elif fit.get("schema_hash") and fit.get("schema_hash") != schema_hash:
            reasons.append(("unrelated_ledger", f"Fit {fit_id} in the ledger used another schema."))
        elif fit.get("status") not in (None, "done"):
            reasons.append(("unrelated_ledger", f"Fit {fit_id} is recorded in the ledger as {fit.get('status')!r}, "
                                                "not as a completed fit."))
    if (prov or {}).get("seeded") or (fit or {}).get("seeded") or meta.get("seeded"):
        reasons.append(("seeded_fit", "The fit's privacy noise was seeded (reproducible): anyone with the seed can "
                                      "remove it, so the differential-privacy guarantee does not hold."))
    elif fit and fit.get("found") and not fit.get("secure"):
        reasons.append(("insecure_fit", "The fit drew noise from a sampler that is not cryptographically secure "
                                        "(e.g. DPVAE(secure_mode=False) or engine='opacus')."))
    verdicts = (doc.get("summary") or {}).get("verdicts") or {}
    privacy = verdicts.get("privacy")
    if privacy is None:
        reasons.append(("internal_review_failed", "The internal review has no privacy verdict."))
    elif privacy == "fail":
        failed = [c["name"] for c in (doc.get("summary") or {}).get("checks", [])
                  if c.get("verdict") == "fail" and str(c.get("metric", "")).startswith(("guarantee.", "attacks."))]
        reasons.append(("internal_review_failed",
                        "The internal review's privacy verdict is FAIL (" + ", ".join(failed[:4])
                        + (", …" if len(failed) > 4 else "") + "): no release report may be produced."))
    return reasons


def check_release(doc: Mapping[str, Any]) -> None:
    """Raise the :class:`ReleaseRefusedError` of the first reason of :func:`release_refusals`, if any.

    Raises
    ------
    NotModelOutputError, UnrelatedLedgerError, SeededFitError, InsecureFitError, InternalReviewFailedError
        All subclasses of :class:`ReleaseRefusedError` (a :class:`SynthHealthError`); ``reasons``
        holds every reason.
    """
    reasons = release_refusals(doc)
    if reasons:
        code, first = reasons[0]
        more = f" ({len(reasons) - 1} more: " + "; ".join(r for _, r in reasons[1:]) + ")" if len(reasons) > 1 else ""
        raise _ERRORS.get(code, ReleaseRefusedError)("release report refused: " + first + more, reasons)
