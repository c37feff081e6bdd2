"""Find FHIR input files and open them with transparent decompression."""

from __future__ import annotations

import glob
import gzip
import lzma
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..exceptions import FHIRFormatError, InvalidParameterError

__all__ = ["InputFile", "discover", "open_binary", "BUNDLE_SUFFIXES", "NDJSON_SUFFIXES"]

BUNDLE_SUFFIXES = (".json", ".json.gz", ".json.xz")
NDJSON_SUFFIXES = (".ndjson", ".ndjson.gz", ".ndjson.xz")


@dataclass(frozen=True)
class InputFile:
    """One input file and its layout.

    Attributes
    ----------
    path : Path
    kind : str
        ``"bundle"`` (a JSON document: a Bundle or a single resource) or ``"ndjson"``.
    resource_type : str or None
        For Bulk-Data NDJSON files named ``<Type>.<n>.ndjson``, the type from the name.
    """

    path: Path
    kind: str
    resource_type: str | None = None

    @property
    def size(self) -> int:
        """Size on disk in bytes."""
        return self.path.stat().st_size


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(NDJSON_SUFFIXES):
        return "ndjson"
    if name.endswith(BUNDLE_SUFFIXES):
        return "bundle"
    return None


def _type_from_name(path: Path) -> str | None:
    stem = path.name.split(".")[0]
    return stem if stem[:1].isupper() and stem.isalpha() else None


def discover(source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[InputFile]:
    """List the FHIR files under ``source``.

    Parameters
    ----------
    source : path, glob pattern or list of them
        A file, a folder (searched recursively), or a glob such as ``"export/*.ndjson.gz"``.

    Returns
    -------
    list of InputFile
        Sorted by path; NDJSON files are tagged with the resource type in their name.

    Raises
    ------
    FileNotFoundError
        If a path or glob matches nothing.
    FHIRFormatError
        If the folder holds no FHIR file (``.json``, ``.ndjson``, optionally ``.gz``/``.xz``).
    """
    if isinstance(source, (str, os.PathLike)):
        sources: list[str | os.PathLike[str]] = [source]
    else:
        sources = list(source)
        if not sources:
            raise InvalidParameterError("The 'source' parameter must name at least one path. Got an empty list instead.")
    found: dict[Path, InputFile] = {}
    for src in sources:
        text = os.fspath(src)
        if any(ch in text for ch in "*?[") and not Path(text).exists():
            matches = [Path(p) for p in sorted(glob.glob(text, recursive=True))]
            if not matches:
                raise FileNotFoundError(f"no file matches the pattern {text!r}")
        else:
            p = Path(text)
            if not p.exists():
                raise FileNotFoundError(f"input path does not exist: {p}")
            matches = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
            if p.is_dir():
                matches = [q for q in matches if _kind(q) is not None and not q.name.startswith(".")]
                if not matches:
                    raise FHIRFormatError(
                        "folder holds no FHIR file (expected .json, .ndjson, optionally compressed .gz/.xz)",
                        file=str(p),
                    )
        for m in matches:
            kind = _kind(m)
            if kind is None:
                if m.is_dir():
                    continue
                raise FHIRFormatError(
                    "not a FHIR file: expected a name ending in .json, .json.gz, .json.xz, .ndjson, .ndjson.gz or .ndjson.xz",
                    file=str(m),
                )
            found[m] = InputFile(m, kind, _type_from_name(m) if kind == "ndjson" else None)
    return [found[k] for k in sorted(found)]


def open_binary(path: Path) -> IO[bytes]:
    """Open ``path`` for binary reading, decompressing ``.gz`` and ``.xz`` on the fly."""
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".xz"):
        return lzma.open(path, "rb")
    return open(path, "rb")


def iter_lines(path: Path) -> Iterator[bytes]:
    """Yield the raw lines of an (optionally compressed) file, streaming."""
    with open_binary(path) as fh:
        yield from fh
