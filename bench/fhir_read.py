#!/usr/bin/env python
"""Benchmark: FHIR read + flatten throughput of synthhealth, side by side with orjson and fhir.resources.

What it measures
----------------
For each data set, each of these runs in a fresh Python subprocess pinned to one core
(``taskset -c 0`` when available), so the peak RSS it reports is that measurement's own
(imports included):

``orjson parse``
    Read (and decompress) every file and ``orjson.loads`` it: the floor, no FHIR logic.
``synthhealth resources()``
    One streaming pass of ``sh.fhir.read(files).resources()`` (parsing, structural checks,
    patient linking).
``synthhealth read+flatten``
    ``sh.flatten(sh.fhir.read(files), sh.load_schema("core-patient"))``: the table, one row
    per patient.
``fhir.resources R4B``
    ``orjson.loads`` then ``get_fhir_model_class(type).model_validate(resource)`` for every
    resource (what ``read(strict=True)`` costs). About 1,200 resources/s, so on the re-keyed
    set it runs on a fixed sample of files (throughput is per resource).

Data sets
---------
``synthea-615``
    The shared Synthea R4 set (615 one-patient transaction Bundles + 2 Organization /
    Practitioner Bundles, 191,093 resources, 720 MB of pretty-printed JSON). By default the
    ``.json.xz`` originals are decompressed once into ``bench/_data/`` and read as plain
    ``.json`` so that parsing, not xz, is measured; ``--xz`` reads the originals.
``rekeyed-N``
    N patients (default 50,000) made by re-keying copies of the 615 patient Bundles: in copy
    ``k`` every UUID of the Bundle (``fullUrl``, resource ``id``, ``urn:uuid:`` references,
    the Synthea identifier) gets its third group replaced by ``4`` + ``k`` in 3 hex digits,
    so ids are unique across copies and consistent within a copy (uniqueness is checked when
    the templates are built); the other Patient identifiers (SSN, driver's license, passport)
    get ``-<k>`` appended, so no identifier is shared between copies. To keep 50,000 patients practical, only the resource types the
    core-patient schema reads are kept (Claim and ExplanationOfBenefit alone are half of the
    bytes), Bundles are written as compact JSON (re-serialised by orjson) compressed with gzip
    level 1, and the Organization / Practitioner Bundles are included once. Smaller sizes
    (``--trend``) are prefixes of the same set, to show how peak RSS evolves with patients.
    The set is deleted at the end unless ``--keep`` is given.

Usage
-----
::

    python bench/fhir_read.py                  # full run (about 20-30 minutes on 2 cores)
    python bench/fhir_read.py --quick          # smoke test, well under a minute
    python bench/fhir_read.py --patients 20000 --trend 2000 --keep --save

Run ``python bench/fhir_read.py --help`` for every option.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gzip
import json
import lzma
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_SOURCE = REPO_DIR.parent / "shared" / "data" / "fhir" / "synthea-smart-r4" / "bundles"
DATA_DIR = BENCH_DIR / "_data"
RESULTS_DIR = BENCH_DIR / "results"

#: Throughput targets from the issue.
TARGET_RESOURCES_PER_S = 25_000
TARGET_SPEEDUP = 20.0
#: Peak RSS of the largest size may exceed that of the smallest by this factor and still count as flat.
FLAT_RSS_TOLERANCE = 1.25

#: The 16 resource types of the Synthea set: their fhir.resources models are imported before timing.
SYNTHEA_TYPES = (
    "AllergyIntolerance", "Bundle", "CarePlan", "Claim", "Condition", "DiagnosticReport", "Encounter",
    "ExplanationOfBenefit", "Goal", "ImagingStudy", "Immunization", "MedicationRequest", "Observation",
    "Organization", "Patient", "Practitioner", "Procedure",
)
SHARED_PREFIXES = ("hospitalInformation", "practitionerInformation")
UUID_RE = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: Stands for the re-keyed third UUID group in a template; orjson never writes a NUL byte.
PLACEHOLDER = b"\x00\x00\x00\x00"
#: Appended to the non-UUID Patient identifier values (SSN, driver's license, passport) of a
#: template; becomes ``-<copy in 3 hex digits>``. Checked to be absent from the source.
ID_MARK = "-~~~"
MAX_COPIES = 4096  # 3 hex digits
#: Sets with at most this many resources are measured ``--repeat`` times (best kept); larger ones once.
REPEAT_MAX_RESOURCES = 2_000_000
#: A measurement whose CPU time is below this share of its wall time shared its core with other load.
CONTENDED_CPU_SHARE = 0.9
ONE_CORE_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                 "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "RAYON_NUM_THREADS")}

KIND_LABELS = {
    "orjson": "orjson parse (floor)",
    "resources": "synthhealth resources()",
    "flatten": "synthhealth read+flatten",
    "fhir_resources": "fhir.resources R4B validate",
}


def log(message: str) -> None:
    """Print a progress line to stderr (the tables go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# =============================================================================== child side
def _read_bytes(path: str) -> bytes:
    """Whole uncompressed content of ``path``, decompressing like ``synthhealth.fhir.files.open_binary``."""
    if path.endswith(".gz"):
        with gzip.open(path, "rb") as fh:
            return fh.read()
    if path.endswith(".xz"):
        with lzma.open(path, "rb") as fh:
            return fh.read()
    with open(path, "rb") as fh:
        return fh.read()


def _maxrss_mib() -> float:
    """Peak resident set size of this process so far, in MiB.

    On Linux this is ``VmHWM`` from ``/proc/self/status``: ``getrusage(RUSAGE_SELF).ru_maxrss``
    is not usable in a child started by ``subprocess``, because Linux carries the parent's
    high-water mark over fork (or vfork) and exec into the child's ``ru_maxrss``, so every
    child would report at least the parent's peak. ``VmHWM`` belongs to the address space
    made by exec, so it counts this process only. Elsewhere, ``ru_maxrss`` is used.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _prepare_orjson(spec: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    import orjson

    files: list[str] = spec["files"]

    def run() -> dict[str, Any]:
        n_res = n_bytes = 0
        for path in files:
            data = _read_bytes(path)
            n_bytes += len(data)
            doc = orjson.loads(data)
            del data
            if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
                n_res += sum(1 for e in doc.get("entry") or () if isinstance(e, dict) and e.get("resource") is not None)
            else:
                n_res += 1
            del doc
        return {"resources": n_res, "bytes": n_bytes}

    return run


def _prepare_resources(spec: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    import synthhealth as sh

    files: list[str] = spec["files"]

    def run() -> dict[str, Any]:
        reader = sh.fhir.read(files)
        items = 0
        for _item in reader.resources():
            items += 1
        st = reader.stats
        return {"resources": st.n_resources, "items": items, "bytes": st.bytes_read, "patients": st.patients,
                "skipped": st.n_skipped}

    return run


def _prepare_flatten(spec: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    import synthhealth as sh

    files: list[str] = spec["files"]
    schema = sh.load_schema(spec["schema"])

    def run() -> dict[str, Any]:
        reader = sh.fhir.read(files)
        # Synthea's driver's licence numbers are random (two of the 615 share one): who is the same person
        # is said by the identifiers unique per person
        table = sh.flatten(reader, schema, identifier_systems=("https://github.com/synthetichealth/synthea",
                                                               "http://hospital.smarthealthit.org",
                                                               "http://hl7.org/fhir/sid/us-ssn"))
        st = reader.stats
        return {"resources": st.n_resources, "bytes": st.bytes_read, "patients": st.patients,
                "skipped": st.n_skipped, "rows": len(table), "columns": table.shape[1],
                "unique_index": bool(table.index.is_unique),
                "table_mib": float(table.memory_usage(deep=True).sum()) / 2**20}

    return run


def _prepare_fhir_resources(spec: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    import orjson
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    files: list[str] = spec["files"]
    models: dict[str, Any] = {t: get_fhir_model_class(t) for t in SYNTHEA_TYPES}

    def run() -> dict[str, Any]:
        n_res = n_bytes = invalid = 0
        for path in files:
            data = _read_bytes(path)
            n_bytes += len(data)
            doc = orjson.loads(data)
            del data
            if doc.get("resourceType") == "Bundle":
                resources = [e["resource"] for e in doc.get("entry") or () if e.get("resource") is not None]
            else:
                resources = [doc]
            for res in resources:
                rtype = res["resourceType"]
                model = models.get(rtype)
                if model is None:
                    model = models[rtype] = get_fhir_model_class(rtype)
                try:
                    model.model_validate(res)
                except ValidationError:
                    invalid += 1
                n_res += 1
        return {"resources": n_res, "bytes": n_bytes, "invalid": invalid}

    return run


_PREPARE: dict[str, Callable[[dict[str, Any]], Callable[[], dict[str, Any]]]] = {
    "orjson": _prepare_orjson,
    "resources": _prepare_resources,
    "flatten": _prepare_flatten,
    "fhir_resources": _prepare_fhir_resources,
}


def child_main(spec_path: str, result_path: str) -> int:
    """Run one measurement (in a fresh process) and write its result as JSON.

    Parameters
    ----------
    spec_path : str
        JSON file with ``kind`` (a key of ``_PREPARE``), ``files`` and, for flatten, ``schema``.
    result_path : str
        Where to write the result: timings, RSS and the counts returned by the measurement.

    Returns
    -------
    int
        Process exit status.
    """
    t0 = time.perf_counter()
    spec = json.loads(Path(spec_path).read_text())
    run = _PREPARE[spec["kind"]](spec)  # imports and setup, excluded from the timing
    import_s = time.perf_counter() - t0
    base_rss = _maxrss_mib()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    out = run()
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    out.update(wall_s=wall, cpu_s=cpu, import_s=import_s, base_rss_mib=base_rss, peak_rss_mib=_maxrss_mib(),
               affinity=sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None)
    Path(result_path).write_text(json.dumps(out))
    return 0


# ============================================================================== parent side
@dataclass
class FileSet:
    """Files of one benchmark set, in order, with what each holds.

    Attributes
    ----------
    name : str
        Set name as printed (``synthea-615``, ``rekeyed-50000``).
    files : list of str
    patients : list of int
        Patients per file (1 for a patient Bundle, 0 for the Organization/Practitioner ones).
    resources : list of int
    raw_bytes : list of int
        Uncompressed JSON bytes per file.
    disk_bytes : list of int
        Bytes on disk per file.
    description : str
        What the set contains, for the report.
    """

    name: str
    files: list[str]
    patients: list[int]
    resources: list[int]
    raw_bytes: list[int]
    disk_bytes: list[int]
    description: str = ""

    @property
    def n_patients(self) -> int:
        return sum(self.patients)

    @property
    def n_resources(self) -> int:
        return sum(self.resources)

    def prefix(self, n_patients: int, name: str) -> FileSet:
        """The shared (patient-less) files plus the first ``n_patients`` patient files."""
        keep: list[int] = []
        seen = 0
        for i, p in enumerate(self.patients):
            if p == 0:
                keep.append(i)
            elif seen < n_patients:
                keep.append(i)
                seen += p
        return FileSet(name, [self.files[i] for i in keep], [self.patients[i] for i in keep],
                       [self.resources[i] for i in keep], [self.raw_bytes[i] for i in keep],
                       [self.disk_bytes[i] for i in keep], self.description)

    def patient_sample(self, n_files: int | None, name: str) -> FileSet:
        """The first ``n_files`` patient files (all when ``None``), without the shared ones."""
        idx = [i for i, p in enumerate(self.patients) if p > 0]
        if n_files is not None:
            idx = idx[:n_files]
        return FileSet(name, [self.files[i] for i in idx], [self.patients[i] for i in idx],
                       [self.resources[i] for i in idx], [self.raw_bytes[i] for i in idx],
                       [self.disk_bytes[i] for i in idx], self.description)


@dataclass
class Result:
    """One measurement as reported."""

    set_name: str
    kind: str
    files: int
    patients: int
    resources: int
    raw_bytes: int
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    base_rss_mib: float
    import_s: float
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return KIND_LABELS[self.kind]

    @property
    def resources_per_s(self) -> float:
        """Resources per CPU second of the child (the one-core rate, robust to other load)."""
        return self.resources / self.cpu_s if self.cpu_s > 0 else float("nan")

    @property
    def mb_per_s(self) -> float:
        """Uncompressed JSON MB per CPU second."""
        return self.raw_bytes / 1e6 / self.cpu_s if self.cpu_s > 0 else float("nan")

    @property
    def resources_per_wall_s(self) -> float:
        """Resources per second of wall time."""
        return self.resources / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def contended(self) -> bool:
        """Whether the child got less than :data:`CONTENDED_CPU_SHARE` of its core (other load)."""
        return self.cpu_s < CONTENDED_CPU_SHARE * self.wall_s


#: CPU the measurements are pinned to (``--cpu``).
PIN_CPU = 0


def _one_core_prefix(pin: bool) -> list[str]:
    if pin and shutil.which("taskset"):
        return ["taskset", "-c", str(PIN_CPU)]
    return []


def run_child(kind: str, fileset: FileSet, *, pin: bool, note: str = "", schema: str = "core-patient",
              repeat: int = 1) -> Result:
    """Measure ``kind`` on ``fileset`` in fresh subprocesses and check its counts.

    Parameters
    ----------
    kind : str
        ``orjson``, ``resources``, ``flatten`` or ``fhir_resources``.
    fileset : FileSet
    pin : bool
        Pin the child to CPU 0 with ``taskset``.
    note : str
        Shown next to the row (e.g. the sample used).
    schema : str
        Schema name for ``flatten``.
    repeat : int, default 1
        Run this many times, each in a fresh process, and keep the fastest by CPU time (the
        peak RSS reported is the largest of the runs).

    Returns
    -------
    Result
    """
    best: Result | None = None
    peak = 0.0
    for i in range(max(1, repeat)):
        res = _run_child_once(kind, fileset, pin=pin, note=note, schema=schema,
                              attempt=f" (run {i + 1}/{repeat})" if repeat > 1 else "")
        peak = max(peak, res.peak_rss_mib)
        if best is None or res.cpu_s < best.cpu_s:
            best = res
    assert best is not None
    best.peak_rss_mib = peak
    if repeat > 1:
        best.note = ", ".join(x for x in (note, f"best of {repeat}") if x)
    return best


def _run_child_once(kind: str, fileset: FileSet, *, pin: bool, note: str, schema: str, attempt: str) -> Result:
    log(f"{fileset.name}: {KIND_LABELS[kind]} on {len(fileset.files)} files "
        f"({fileset.n_resources:,} resources){attempt} ...")
    with tempfile.TemporaryDirectory(prefix="bench-fhir-") as tmp:
        spec_path = Path(tmp) / "spec.json"
        result_path = Path(tmp) / "result.json"
        spec_path.write_text(json.dumps({"kind": kind, "files": fileset.files, "schema": schema}))
        cmd = _one_core_prefix(pin) + [sys.executable, str(Path(__file__).resolve()), "--_child",
                                       str(spec_path), str(result_path)]
        env = {**os.environ, **ONE_CORE_ENV, "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{kind} on {fileset.name} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        out = json.loads(result_path.read_text())
    res = Result(fileset.name, kind, len(fileset.files), fileset.n_patients, out["resources"], out["bytes"],
                 out["wall_s"], out["cpu_s"], out["peak_rss_mib"], out["base_rss_mib"], out["import_s"], note,
                 {k: v for k, v in out.items() if k not in {"resources", "bytes", "wall_s", "cpu_s", "peak_rss_mib",
                                                            "base_rss_mib", "import_s"}})
    _check(res, fileset)
    log(f"    {res.resources_per_s:,.0f} resources/CPU s, {res.mb_per_s:,.1f} MB/CPU s, {res.wall_s:,.1f} s wall "
        f"({res.cpu_s / res.wall_s:.0%} CPU), peak RSS {res.peak_rss_mib:,.0f} MiB")
    return res


def _check(res: Result, fileset: FileSet) -> None:
    """Fail loudly when a measurement did not read what the set holds."""
    problems = []
    if res.resources != fileset.n_resources:
        problems.append(f"read {res.resources:,} resources, the set holds {fileset.n_resources:,}")
    if res.raw_bytes != sum(fileset.raw_bytes):
        problems.append(f"read {res.raw_bytes:,} bytes, the set holds {sum(fileset.raw_bytes):,}")
    x = res.extra
    if x.get("skipped"):
        problems.append(f"{x['skipped']} resources skipped")
    if "patients" in x and x["patients"] != fileset.n_patients:
        problems.append(f"{x['patients']} patients read, the set holds {fileset.n_patients}")
    if "rows" in x and (x["rows"] != fileset.n_patients or not x["unique_index"]):
        problems.append(f"flatten gave {x['rows']} rows (unique index: {x['unique_index']}), expected "
                        f"{fileset.n_patients}")
    if x.get("invalid"):
        problems.append(f"fhir.resources rejected {x['invalid']} resources")
    if problems:
        raise RuntimeError(f"{res.label} on {fileset.name}: " + "; ".join(problems))


# ---------------------------------------------------------------------------- synthea set
def _manifest_sizes(source: Path) -> dict[str, int]:
    """Original (uncompressed) size of each stored file, from ``MANIFEST.tsv`` next to ``source``."""
    manifest = source.parent / "MANIFEST.tsv"
    sizes: dict[str, int] = {}
    if manifest.exists():
        lines = manifest.read_text().splitlines()
        header = lines[0].split("\t")
        i_path, i_bytes = header.index("stored_path"), header.index("original_bytes")
        for line in lines[1:]:
            cols = line.split("\t")
            sizes[cols[i_path].rsplit("/", 1)[-1]] = int(cols[i_bytes])
    return sizes


def synthea_files(source: Path, n_patient_files: int | None) -> tuple[list[Path], list[Path]]:
    """Patient Bundles (the first ``n_patient_files``, or all) and the shared Organization/Practitioner ones."""
    found = sorted(source.glob("*.json.xz"))
    if not found:
        raise SystemExit(f"no .json.xz file in {source}; pass --source")
    shared = [p for p in found if p.name.startswith(SHARED_PREFIXES)]
    patients = [p for p in found if not p.name.startswith(SHARED_PREFIXES)]
    if n_patient_files is not None:
        patients = patients[:n_patient_files]
    return patients, shared


def decompressed_cache(paths: Sequence[Path], cache_dir: Path, sizes: dict[str, int]) -> list[Path]:
    """Uncompressed copies of ``.json.xz`` files, written once under ``cache_dir``.

    Parameters
    ----------
    paths : sequence of Path
        ``.json.xz`` originals.
    cache_dir : Path
    sizes : dict of str to int
        Expected uncompressed size by stored name; a cached copy of another size is rewritten.

    Returns
    -------
    list of Path
        The ``.json`` copies, in the order of ``paths``.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    written = 0
    for src in paths:
        dst = cache_dir / src.name[: -len(".xz")]
        expected = sizes.get(src.name)
        if not (dst.exists() and (expected is None or dst.stat().st_size == expected)):
            tmp = dst.with_suffix(".tmp")
            with lzma.open(src, "rb") as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
            os.replace(tmp, dst)
            written += 1
        out.append(dst)
    if written:
        log(f"decompressed {written} files into {cache_dir}")
    return out


def synthea_fileset(patient_paths: list[Path], shared_paths: list[Path], *, use_xz: bool) -> FileSet:
    """The Synthea set: patient Bundles then the shared ones, as ``.json`` copies or ``.json.xz`` originals."""
    originals = patient_paths + shared_paths
    sizes = _manifest_sizes(originals[0].parent)
    files = originals if use_xz else decompressed_cache(originals, DATA_DIR / "synthea-smart-r4-json", sizes)
    import orjson

    patients, resources, raw = [], [], []
    for path in files:
        data = _read_bytes(str(path))
        doc = orjson.loads(data)
        entries = [e for e in doc.get("entry") or () if e.get("resource") is not None]
        patients.append(sum(1 for e in entries if e["resource"]["resourceType"] == "Patient"))
        resources.append(len(entries))
        raw.append(len(data))
    disk = [p.stat().st_size for p in files]
    n = sum(patients)
    name = f"synthea-{n}"
    fmt = ".json.xz originals (xz decompression included)" if use_xz else \
        "uncompressed .json copies of the .json.xz originals"
    desc = (f"{name}: shared Synthea R4 set, {n:,} one-patient transaction Bundles + {len(shared_paths)} "
            f"Organization/Practitioner Bundles, pretty-printed JSON; {fmt}")
    return FileSet(name, [str(p) for p in files], patients, resources, raw, disk, desc)


# --------------------------------------------------------------------------- re-keyed set
@dataclass
class _Template:
    """A filtered, compact patient Bundle whose own UUIDs have :data:`PLACEHOLDER` as third group."""

    data: bytes
    resources: int


_TEMPLATES: list[_Template] = []  # set before forking the build workers


def build_templates(patient_paths: Sequence[Path], shared_paths: Sequence[Path],
                    keep_types: frozenset[str]) -> tuple[list[_Template], list[bytes]]:
    """Filter and compact the patient Bundles, and mark the UUIDs to re-key.

    Every UUID found in a patient Bundle is re-keyed, except those defined by the shared
    Organization/Practitioner Bundles (which are written once, unchanged). Re-keying
    replaces the third group; that is one-to-one only if no two UUIDs of the data share
    the other four groups, which is checked here. The Patient identifiers that are not
    UUIDs (SSN, driver's license, passport) get :data:`ID_MARK` appended, so that they too
    are unique to each copy (otherwise the reader's index would see them shared).

    Parameters
    ----------
    patient_paths, shared_paths : sequence of Path
        Original files (``.json``, ``.json.xz``).
    keep_types : frozenset of str
        Resource types to keep in the patient Bundles.

    Returns
    -------
    templates : list of _Template
    shared : list of bytes
        The shared Bundles as compact JSON.
    """
    import orjson

    shared: list[bytes] = []
    external: set[bytes] = set()
    for path in shared_paths:
        data = orjson.dumps(orjson.loads(_read_bytes(str(path))))
        external.update(UUID_RE.findall(data))
        shared.append(data)
    seen: dict[tuple[bytes, bytes], bytes] = {}

    def key_of(u: bytes) -> None:
        k = (u[:14], u[18:])
        prev = seen.setdefault(k, u)
        if prev != u:
            raise SystemExit(f"cannot re-key: UUIDs {prev!r} and {u!r} differ only in their third group")

    for u in external:
        key_of(u)

    def mark(m: re.Match[bytes]) -> bytes:
        u = m.group(0)
        if u in external:
            return u
        key_of(u)
        return u[:14] + PLACEHOLDER + u[18:]

    templates: list[_Template] = []
    for path in patient_paths:
        raw = _read_bytes(str(path))
        if ID_MARK.encode() in raw or PLACEHOLDER in raw:
            raise SystemExit(f"cannot re-key {path.name}: it contains a template marker")
        doc = orjson.loads(raw)
        entries = [e for e in doc.get("entry") or ()
                   if e.get("resource") is not None and e["resource"].get("resourceType") in keep_types]
        for e in entries:
            if e["resource"]["resourceType"] == "Patient":
                for ident in e["resource"].get("identifier") or ():
                    value = ident.get("value")
                    if isinstance(value, str) and not UUID_RE.fullmatch(value.encode()):
                        ident["value"] = value + ID_MARK
        doc["entry"] = entries
        templates.append(_Template(UUID_RE.sub(mark, orjson.dumps(doc)), len(entries)))
    return templates, shared


def instantiate(template: _Template, k: int) -> bytes:
    """Copy ``k`` of a template: its UUIDs and Patient identifiers made unique to the copy."""
    return template.data.replace(PLACEHOLDER, b"4%03x" % k).replace(ID_MARK.encode(), b"-%03x" % k)


def _build_copy(task: tuple[int, int, str, int]) -> list[tuple[int, int]]:
    """Write copy ``k`` (its first ``m`` templates); return (template index, bytes on disk) per file."""
    k, m, out_dir, level = task
    copy_dir = Path(out_dir) / f"c{k:04d}"
    copy_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(m):
        data = instantiate(_TEMPLATES[i], k)
        if level > 0:
            path = copy_dir / f"p{i:03d}.json.gz"
            payload = gzip.compress(data, compresslevel=level, mtime=0)
        else:
            path = copy_dir / f"p{i:03d}.json"
            payload = data
        with open(path, "wb") as fh:
            fh.write(payload)
        written.append((i, len(payload)))
    return written


def build_rekeyed(patient_paths: Sequence[Path], shared_paths: Sequence[Path], *, n_patients: int,
                  keep_types: frozenset[str], out_dir: Path, gzip_level: int, jobs: int,
                  max_disk_gb: float) -> FileSet:
    """Write (or reuse) the re-keyed set of ``n_patients`` patients under ``out_dir``.

    Parameters
    ----------
    patient_paths, shared_paths : sequence of Path
        The original Synthea files (uncompressed copies are fine and faster).
    n_patients : int
    keep_types : frozenset of str
        Resource types kept in the patient Bundles.
    out_dir : Path
        Created; an existing set there is reused when its manifest matches, else replaced.
    gzip_level : int
        gzip level of the written Bundles; 0 writes plain ``.json``.
    jobs : int
        Worker processes for the build (the build is not measured).
    max_disk_gb : float
        Refuse to write a set estimated to be larger than this on disk.

    Returns
    -------
    FileSet
    """
    import multiprocessing as mp

    import orjson

    params = {"n_patients": n_patients, "keep_types": sorted(keep_types), "gzip_level": gzip_level,
              "source": [p.name for p in patient_paths] + [p.name for p in shared_paths], "version": 2}
    manifest_path = out_dir / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("params") == params and all(Path(f).exists() for f in manifest["fileset"]["files"]):
            log(f"reusing the re-keyed set in {out_dir}")
            return FileSet(**manifest["fileset"])
    if out_dir.exists():
        shutil.rmtree(out_dir)

    log(f"building re-keyed templates from {len(patient_paths)} patient Bundles ...")
    templates, shared = build_templates(patient_paths, shared_paths, keep_types)
    per_copy = len(templates)
    n_copies = -(-n_patients // per_copy)
    if n_copies > MAX_COPIES:
        raise SystemExit(f"--patients {n_patients} needs {n_copies} copies; at most {MAX_COPIES} are supported")
    # estimate the size on disk from the templates themselves
    sample = [instantiate(t, 0) for t in templates]
    disk_per_copy = sum(len(gzip.compress(d, compresslevel=gzip_level)) if gzip_level else len(d) for d in sample)
    raw_per_copy = sum(len(d) for d in sample)
    estimate = disk_per_copy * n_patients / per_copy
    out_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(out_dir).free
    log(f"re-keyed set: {n_patients:,} patients in {n_copies} copies, about {raw_per_copy * n_patients / per_copy / 1e9:.1f}"
        f" GB of JSON, {estimate / 1e9:.2f} GB on disk ({free / 1e9:.0f} GB free)")
    if estimate > max_disk_gb * 1e9 or estimate > free - 5e9:
        raise SystemExit(f"the re-keyed set would take about {estimate / 1e9:.1f} GB on disk "
                         f"(limit {max_disk_gb} GB, {free / 1e9:.0f} GB free); lower --patients")

    t0 = time.perf_counter()
    shared_dir = out_dir / "shared"
    shared_dir.mkdir()
    files: list[str] = []
    patients: list[int] = []
    resources: list[int] = []
    raw: list[int] = []
    disk: list[int] = []
    for path, data in zip(shared_paths, shared, strict=True):
        stem = path.name.split(".")[0]
        target = shared_dir / (f"{stem}.json.gz" if gzip_level else f"{stem}.json")
        payload = gzip.compress(data, compresslevel=gzip_level, mtime=0) if gzip_level else data
        target.write_bytes(payload)
        files.append(str(target))
        patients.append(0)
        resources.append(len(orjson.loads(data).get("entry") or ()))
        raw.append(len(data))
        disk.append(len(payload))

    tasks = [(k, min(per_copy, n_patients - k * per_copy), str(out_dir), gzip_level) for k in range(n_copies)]
    _TEMPLATES[:] = templates
    try:
        ctx = mp.get_context("fork")
        with ctx.Pool(max(1, jobs)) as pool:
            results = pool.map(_build_copy, tasks, chunksize=1)
    finally:
        _TEMPLATES.clear()
    suffix = ".json.gz" if gzip_level else ".json"
    for (k, _m, _d, _l), written in zip(tasks, results, strict=True):
        for i, nbytes in written:
            files.append(str(out_dir / f"c{k:04d}" / f"p{i:03d}{suffix}"))
            patients.append(1)
            resources.append(templates[i].resources)
            raw.append(len(sample[i]))
            disk.append(nbytes)
    kept = ", ".join(sorted(keep_types))
    fmt = f"gzip level {gzip_level} .json.gz" if gzip_level else "plain .json"
    desc = (f"rekeyed-*: copies of the {per_copy} Synthea patient Bundles with every UUID and Patient identifier re-keyed per copy; only "
            f"{kept} kept; compact JSON (orjson), one {fmt} Bundle per patient; the {len(shared_paths)} "
            f"Organization/Practitioner Bundles once")
    fs = FileSet(f"rekeyed-{n_patients}", files, patients, resources, raw, disk, desc)
    manifest_path.write_text(json.dumps({"params": params, "fileset": asdict(fs)}))
    log(f"built {len(files):,} files, {sum(raw) / 1e9:.2f} GB of JSON, {sum(disk) / 1e9:.2f} GB on disk "
        f"in {time.perf_counter() - t0:.0f} s")
    return fs


# ---------------------------------------------------------------------------- reporting
def source_fingerprint() -> str:
    """Short SHA-256 of the synthhealth package sources (``*.py``, ``*.yaml``).

    Other people may edit the package while a long run goes on; comparing the fingerprint
    at the start and at the end tells whether all rows measured the same code.
    """
    import hashlib

    h = hashlib.sha256()
    pkg = REPO_DIR / "synthhealth"
    for path in sorted([*pkg.rglob("*.py"), *pkg.rglob("*.yaml")]):
        if "__pycache__" in path.parts:
            continue
        h.update(str(path.relative_to(pkg)).encode())
        try:
            h.update(path.read_bytes())
        except OSError:
            pass
    return h.hexdigest()[:12]


def _fmt_int(x: float) -> str:
    return f"{x:,.0f}"


def _environment(args: argparse.Namespace, pinned: bool) -> list[str]:
    import importlib.metadata as md

    def ver(name: str) -> str:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "?"

    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_DIR), "status", "--porcelain", "--untracked-files=no",
                                "synthhealth"], capture_output=True, text=True).stdout.strip()
        commit += " (synthhealth/ has uncommitted changes)" if dirty else ""
    except OSError:
        commit = "?"
    load = "/".join(f"{x:.1f}" for x in args.load_start), "/".join(f"{x:.1f}" for x in os.getloadavg())
    one_core = (f"each measurement in a fresh subprocess pinned with `taskset -c {PIN_CPU}`" if pinned
                else "each measurement in a fresh subprocess (not pinned: taskset unavailable or --no-pin)")
    return [
        f"- date: {_dt.datetime.now().isoformat(timespec='seconds')}; command: `python bench/fhir_read.py "
        f"{' '.join(args.argv)}`".rstrip(),
        f"- machine: {cpu}, {os.cpu_count()} CPUs; {platform.platform()}; Python {platform.python_version()}",
        f"- packages: synthhealth {ver('synthhealth')} (git {commit}), orjson {ver('orjson')}, "
        f"fhir.resources {ver('fhir.resources')}, pydantic {ver('pydantic')}, pandas {ver('pandas')}",
        f"- one core: {one_core}, with OMP/OPENBLAS/MKL_NUM_THREADS=1 (the code is single-threaded anyway); "
        "timings exclude imports; peak RSS (`VmHWM`) includes them",
        f"- load average (1/5/15 min) of the machine: {load[0]} at the start, {load[1]} at the end",
        _source_line(args.source_start, source_fingerprint()),
    ]


def _source_line(start: str, end: str) -> str:
    if start == end:
        return f"- synthhealth sources: fingerprint {start}, unchanged during the run"
    return (f"- **synthhealth sources changed during the run** (fingerprint {start} at the start, {end} at the "
            "end): rows may have measured different versions of the code")


def _sets_table(sets: Sequence[FileSet]) -> list[str]:
    lines = ["| set | files | patients | resources | JSON MB (uncompressed) | MB on disk |",
             "|---|---:|---:|---:|---:|---:|"]
    for s in sets:
        lines.append(f"| {s.name} | {len(s.files):,} | {s.n_patients:,} | {s.n_resources:,} | "
                     f"{sum(s.raw_bytes) / 1e6:,.0f} | {sum(s.disk_bytes) / 1e6:,.0f} |")
    return lines


def _results_table(results: Sequence[Result], baselines: dict[str, Result]) -> list[str]:
    lines = ["| set | measurement | files | resources | JSON MB | CPU s | wall s | resources/s | MB/s "
             "| resources/s (wall) | peak RSS MiB | RSS over imports MiB | × fhir.resources |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        base = baselines.get(_family(r.set_name))
        speed = f"{r.resources_per_s / base.resources_per_s:,.1f}×" if base is not None else "–"
        label = r.label + (f" ({r.note})" if r.note else "")
        flag = " †" if r.contended else ""
        lines.append(
            f"| {r.set_name} | {label} | {r.files:,} | {r.resources:,} | {r.raw_bytes / 1e6:,.0f} | {r.cpu_s:,.1f} | "
            f"{r.wall_s:,.1f}{flag} | {_fmt_int(r.resources_per_s)} | {r.mb_per_s:,.1f} | "
            f"{_fmt_int(r.resources_per_wall_s)} | {r.peak_rss_mib:,.0f} | {r.peak_rss_mib - r.base_rss_mib:,.0f} | "
            f"{speed} |")
    return lines


def _family(set_name: str) -> str:
    return set_name.split("-", 1)[0]


def _trend(results: Sequence[Result]) -> tuple[list[str], dict[str, tuple[float, float, float]]]:
    """Peak RSS against patients on the re-keyed sizes.

    Each cell is the peak RSS and, in parentheses, the peak over the RSS right after the
    imports (which excludes the interpreter, the imports and the file list the benchmark
    child holds: about 8 MiB at 50,000 files).

    Returns
    -------
    lines : list of str
        The markdown table.
    growth : dict of str to (float, float, float)
        Per measurement kind: peak RSS at the smallest and the largest size, and the slope in
        KiB per patient.
    """
    rekeyed = [r for r in results if _family(r.set_name) == "rekeyed" and r.kind != "fhir_resources"]
    sizes = sorted({r.patients for r in rekeyed})
    kinds = [k for k in ("orjson", "resources", "flatten") if any(r.kind == k for r in rekeyed)]
    by = {(r.kind, r.patients): r for r in rekeyed}
    header = ("| patients | " + " | ".join(f"{KIND_LABELS[k]}: peak RSS MiB (over imports)" for k in kinds)
              + " | flatten output table MiB |")
    lines = [header, "|---:|" + "---:|" * (len(kinds) + 1)]
    for n in sizes:
        cells = [f"{by[(k, n)].peak_rss_mib:,.0f} ({by[(k, n)].peak_rss_mib - by[(k, n)].base_rss_mib:,.0f})"
                 if (k, n) in by else "–" for k in kinds]
        fl = by.get(("flatten", n))
        table = f"{fl.extra.get('table_mib', float('nan')):,.1f}" if fl else "–"
        lines.append(f"| {n:,} | " + " | ".join(cells) + f" | {table} |")
    growth: dict[str, tuple[float, float, float]] = {}
    if len(sizes) >= 2:
        lo, hi = sizes[0], sizes[-1]
        slope_cells = []
        for k in kinds:
            if (k, lo) in by and (k, hi) in by:
                r_lo, r_hi = by[(k, lo)], by[(k, hi)]
                slope = (r_hi.peak_rss_mib - r_lo.peak_rss_mib) * 1024 / (hi - lo)
                over = ((r_hi.peak_rss_mib - r_hi.base_rss_mib) - (r_lo.peak_rss_mib - r_lo.base_rss_mib)) * 1024 / (
                    hi - lo)
                growth[k] = (r_lo.peak_rss_mib, r_hi.peak_rss_mib, slope)
                slope_cells.append(f"{slope:+.2f} ({over:+.2f}) KiB/patient")
            else:
                slope_cells.append("–")
        fl_lo, fl_hi = by.get(("flatten", lo)), by.get(("flatten", hi))
        tslope = "–"
        if fl_lo and fl_hi:
            tslope = f"{(fl_hi.extra['table_mib'] - fl_lo.extra['table_mib']) * 1024 / (hi - lo):+.2f} KiB/patient"
        lines.append(f"| slope {lo:,} → {hi:,} | " + " | ".join(slope_cells) + f" | {tslope} |")
    return lines, growth


def report(args: argparse.Namespace, pinned: bool, sets: Sequence[FileSet], results: Sequence[Result]) -> str:
    """The markdown report: environment, sets, results side by side, RSS trend and verdict."""
    baselines = {_family(r.set_name): r for r in results if r.kind == "fhir_resources"}
    out = ["# fhir_read benchmark", ""]
    out += _environment(args, pinned)
    out += ["", "## Data sets", ""]
    out += _sets_table(sets)
    out += [""] + [f"- {d}" for d in dict.fromkeys(s.description for s in sets)]
    out += ["", "## Throughput", ""]
    out += _results_table(results, baselines)
    notes = [
        "resources/s and MB/s: resources read, and uncompressed JSON bytes (10^6), per CPU second of the "
        "measuring process (user + system time of the work, one core). CPU time rather than wall time, because "
        "other processes on a shared machine make wall time wait for the core; resources/s (wall) is shown too.",
        f"†: the process got less than {CONTENDED_CPU_SHARE:.0%} of its core (CPU s / wall s): the machine was "
        "busy, so its wall time (not its CPU rates) is inflated.",
        "× fhir.resources: resources/s relative to the fhir.resources row of the same family (synthea / rekeyed).",
        "fhir.resources R4B validate: orjson.loads, then get_fhir_model_class(type).model_validate(resource) for "
        "each resource.",
    ]
    out += [""] + [f"- {n}" for n in notes]
    trend_lines, growth = _trend(results)
    if len(trend_lines) > 2:
        out += ["", "## Peak RSS against patients (re-keyed set)", ""] + trend_lines
    out += ["", "## Verdict", ""] + verdict(results, baselines, growth)
    return "\n".join(out) + "\n"


def verdict(results: Sequence[Result], baselines: dict[str, Result],
            growth: dict[str, tuple[float, float, float]]) -> list[str]:
    """One line per target, then an overall line."""
    lines = []
    flat = [r for r in results if r.kind == "flatten"]
    # throughput on the largest set of each family
    largest: dict[str, Result] = {}
    for r in flat:
        fam = _family(r.set_name)
        if fam not in largest or r.patients > largest[fam].patients:
            largest[fam] = r
    ok_speed = all(r.resources_per_s >= TARGET_RESOURCES_PER_S for r in largest.values())
    parts = ", ".join(f"{r.set_name} {r.resources_per_s:,.0f}/s" for r in largest.values())
    lines.append(f"- read+flatten ≥ {TARGET_RESOURCES_PER_S:,} resources per CPU second, one core: "
                 f"{'PASS' if ok_speed else 'FAIL'} ({parts})")
    ratios = {r.set_name: r.resources_per_s / baselines[_family(r.set_name)].resources_per_s
              for r in largest.values() if _family(r.set_name) in baselines}
    ok_ratio = bool(ratios) and all(v >= TARGET_SPEEDUP for v in ratios.values())
    lines.append(f"- read+flatten ≥ {TARGET_SPEEDUP:.0f}× fhir.resources: {'PASS' if ok_ratio else 'FAIL'} ("
                 + ", ".join(f"{k} {v:,.1f}×" for k, v in ratios.items()) + ")")
    floors = {r.set_name: r for r in results if r.kind == "orjson"}
    rel = [f"{r.set_name} {r.resources_per_s / floors[r.set_name].resources_per_s:.0%}" for r in largest.values()
           if r.set_name in floors]
    if rel:
        lines.append("- read+flatten speed relative to the orjson floor: " + ", ".join(rel))
    ok_mem: bool | None = True
    if growth:
        cells = []
        for kind in ("resources", "flatten"):
            if kind in growth:
                a, b, slope = growth[kind]
                ok_mem = bool(ok_mem) and b <= a * FLAT_RSS_TOLERANCE
                cells.append(f"{KIND_LABELS[kind]} {a:,.0f} → {b:,.0f} MiB ({slope:+.2f} KiB/patient)")
        lines.append(f"- peak RSS flat in patients (largest ≤ {FLAT_RSS_TOLERANCE:.2f}× smallest size): "
                     f"{'PASS' if ok_mem else 'FAIL'} (" + "; ".join(cells) + ")")
    else:
        lines.append("- peak RSS trend: not measured (needs two re-keyed sizes)")
        ok_mem = None
    if not (ok_speed and ok_ratio and ok_mem is not False):
        lines.append("- **overall: target(s) missed**")
    elif ok_mem is None:
        lines.append("- **overall: speed targets met; memory target not measured**")
    else:
        lines.append("- **overall: all targets met**")
    return lines


# ================================================================================== main
def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--patients", type=int, default=None,
                   help="patients in the re-keyed set (default 50000; 1000 with --quick)")
    p.add_argument("--trend", default=None,
                   help="smaller re-keyed sizes (prefixes of the set) for the peak-RSS trend, comma-separated "
                        "(default 1000,5000; 250 with --quick; '' for none)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 60 Synthea files, 1,000 re-keyed patients, trend at 250, 10-file fhir.resources "
                        "samples, no repeats")
    p.add_argument("--keep", action="store_true", help="keep the re-keyed set in bench/_data/ (reused next time)")
    p.add_argument("--xz", action="store_true", help="read the .json.xz originals instead of decompressed copies")
    p.add_argument("--fhir-files", type=int, default=60,
                   help="patient Bundles validated with fhir.resources on the re-keyed set (default 60); on "
                        "synthea-615 every file is validated")
    p.add_argument("--repeat", type=int, default=None,
                   help="runs of each orjson/synthhealth measurement on sets of at most "
                        f"{REPEAT_MAX_RESOURCES:,} resources, keeping the one with the least CPU time (default 3, 1 with --quick; larger "
                        "sets and fhir.resources run once)")
    p.add_argument("--skip-rekeyed", action="store_true", help="only measure the Synthea set")
    p.add_argument("--gzip-level", type=int, default=1, choices=range(0, 10), metavar="0-9",
                   help="gzip level of the re-keyed Bundles; 0 writes plain .json (default 1)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes used to build the re-keyed set")
    p.add_argument("--max-disk-gb", type=float, default=10.0, help="refuse a re-keyed set larger than this on disk")
    p.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help=f"Synthea .json.xz folder ({DEFAULT_SOURCE})")
    p.add_argument("--cpu", type=int, default=0, help="CPU the measurements are pinned to (default 0)")
    p.add_argument("--no-pin", action="store_true", help="do not pin the measurements to a CPU")
    p.add_argument("--save", nargs="?", const="", default=None, metavar="PATH",
                   help="also write the report as markdown (default bench/results/fhir_read-<date>.md)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the raw results as JSON")
    p.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.argv = list(argv)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the report; see the module docstring."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args._child:
        return child_main(*args._child)
    args.load_start = os.getloadavg()
    args.source_start = source_fingerprint()
    global PIN_CPU
    PIN_CPU = args.cpu
    pinned = not args.no_pin and bool(shutil.which("taskset"))
    if args.quick:
        n_syn_files: int | None = 60
        fhir_syn_files: int | None = 10
        args.fhir_files = min(args.fhir_files, 10)
    else:
        n_syn_files = fhir_syn_files = None
    if args.patients is None:
        args.patients = 1000 if args.quick else 50_000
    if args.trend is None:
        args.trend = "250" if args.quick else "1000,5000"
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    trend = sorted({int(x) for x in args.trend.split(",") if x.strip()} - {args.patients})
    trend = [n for n in trend if 0 < n < args.patients]

    def repeats(fs: FileSet) -> int:
        return args.repeat if fs.n_resources <= REPEAT_MAX_RESOURCES else 1

    import synthhealth as sh

    schema = sh.load_schema("core-patient")
    keep_types = frozenset(a.fhir.resource for a in schema.attributes if a.fhir is not None)

    patient_paths, shared_paths = synthea_files(args.source, n_syn_files)
    results: list[Result] = []
    sets: list[FileSet] = []

    # ---- phase 1: the Synthea set
    syn = synthea_fileset(patient_paths, shared_paths, use_xz=args.xz)
    sets.append(syn)
    for kind in ("orjson", "resources", "flatten"):
        results.append(run_child(kind, syn, pin=pinned, repeat=repeats(syn)))
    if fhir_syn_files is None:
        results.append(run_child("fhir_resources", syn, pin=pinned, note="all files"))
    else:
        sample = syn.patient_sample(fhir_syn_files, syn.name)
        results.append(run_child("fhir_resources", sample, pin=pinned, note=f"sample: first {fhir_syn_files} files"))

    # ---- phase 2: the re-keyed set
    out_dir = DATA_DIR / f"rekeyed-{args.patients}"
    if not args.skip_rekeyed:
        try:
            # build from the uncompressed copies when present (faster), else from the originals
            src_paths = [Path(f) for f in syn.files] if not args.xz else patient_paths + shared_paths
            n_pat = len(patient_paths)
            big = build_rekeyed(src_paths[:n_pat], src_paths[n_pat:], n_patients=args.patients,
                                keep_types=keep_types, out_dir=out_dir, gzip_level=args.gzip_level, jobs=args.jobs,
                                max_disk_gb=args.max_disk_gb)
            for n in trend + [args.patients]:
                fs = big if n == args.patients else big.prefix(n, f"rekeyed-{n}")
                sets.append(fs)
                for kind in ("orjson", "resources", "flatten"):
                    results.append(run_child(kind, fs, pin=pinned, repeat=repeats(fs)))
            sample = big.patient_sample(args.fhir_files, f"rekeyed-{args.fhir_files}f")
            results.append(run_child("fhir_resources", sample, pin=pinned,
                                     note=f"sample: first {args.fhir_files} patient files"))
        finally:
            if not args.keep and out_dir.exists():
                shutil.rmtree(out_dir)
                log(f"deleted {out_dir} (use --keep to keep it)")

    text = report(args, pinned, sets, results)
    print(text)
    if args.save is not None:
        path = Path(args.save) if args.save else RESULTS_DIR / f"fhir_read-{_dt.date.today().isoformat()}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        log(f"report written to {path}")
    if args.json is not None:
        args.json.write_text(json.dumps({"sets": [{k: v for k, v in asdict(s).items() if k not in
                                                   ("files", "patients", "resources", "raw_bytes", "disk_bytes")}
                                                  | {"n_files": len(s.files), "n_patients": s.n_patients,
                                                     "n_resources": s.n_resources, "raw_bytes": sum(s.raw_bytes),
                                                     "disk_bytes": sum(s.disk_bytes)} for s in sets],
                                         "results": [asdict(r) for r in results]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
