#!/usr/bin/env python
"""Benchmark: synthhealth.fhir.write throughput and memory, side by side with fhir.resources models.

What it measures
----------------
Each row runs in a fresh Python subprocess pinned to one core (``taskset -c 0`` when available),
so its peak RSS is its own (``VmHWM``, imports included):

``write NDJSON``
    ``sh.fhir.write(table, schema, out, format="ndjson")`` on a DataFrame: validation of the table,
    planning, building every resource as a plain dict, orjson, writing the Bulk files.
``write NDJSON, chunks``
    The same, the table given as an iterator of 10,000-row chunks read from Parquet: the writer's
    own memory, which must not grow with the number of patients.
``write Bundles``
    ``format="bundle"``, 100 patients per transaction Bundle.
``fhir.resources R4B``
    The floor of a writer built on the models: the same resources (parsed from a synthhealth
    output) built with ``get_fhir_model_class(type).model_validate(dict)`` and serialised with
    ``model_dump_json()``, then written. Planning, identities and dates are not included. About
    800 resources/s, so it runs on a sample of resources (throughput is per resource).

Tables
------
``synthetic-N``: N patients of the ``core-patient`` schema, each column drawn independently
from the empirical distribution of the flattened demo data (150 synthetic Synthea patients),
then made consistent (age at death = age for the dead, onset <= age, inpatient + emergency <=
encounters), as a product-of-marginals generator would give. Built once (not timed) and kept
as Parquet in ``bench/_data/``. The output of each run is deleted after it is measured.

Usage
-----
::

    python bench/fhir_write.py              # 10k and 100k patients (about 10 minutes)
    python bench/fhir_write.py --quick      # 2k and 10k patients, well under 2 minutes
    python bench/fhir_write.py --sizes 10000,50000 --save

Run ``python bench/fhir_write.py --help`` for every option.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / "_data"
RESULTS_DIR = BENCH_DIR / "results"

#: Target of the issue: resources/s on one core (NDJSON, largest size).
TARGET_RESOURCES_PER_S = 50_000
#: Peak RSS of the largest size may exceed that of the smallest by this factor and still count as flat.
FLAT_RSS_TOLERANCE = 1.25
CHUNK_ROWS = 10_000
PER_BUNDLE = 100
ONE_CORE_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                 "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "RAYON_NUM_THREADS")}
LABELS = {
    "ndjson": "synthhealth write NDJSON",
    "ndjson_chunks": "synthhealth write NDJSON, chunks",
    "bundle": f"synthhealth write Bundles ({PER_BUNDLE}/file)",
    "fhir_resources": "fhir.resources R4B build+serialise",
}


def log(message: str) -> None:
    """Progress line on stderr (the tables go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# =============================================================================== tables
def synthetic_table(n: int, seed: int) -> Any:
    """``n`` core-patient rows: each column drawn from the flattened demo's marginal, made consistent."""
    import numpy as np
    import pandas as pd

    import synthhealth as sh

    schema = sh.load_schema("core-patient")
    demo = sh.flatten(sh.datasets.demo_fhir_path(), schema)
    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {}
    for a in schema:
        src = demo[a.name].to_numpy(dtype=object)
        cols[a.name] = src[rng.integers(0, len(src), size=n)]
    t = pd.DataFrame(cols)
    for a in schema:
        if a.type == "numeric":
            t[a.name] = pd.to_numeric(t[a.name], errors="coerce")
        elif a.type == "count":
            t[a.name] = t[a.name].astype("Int64")
        elif a.type == "boolean":
            t[a.name] = t[a.name].astype("boolean")
        else:
            t[a.name] = pd.Categorical(t[a.name], categories=list(a.labels))
    dead = t["deceased"].to_numpy(dtype=bool)
    t.loc[~dead, "age_at_death"] = np.nan
    t.loc[dead, "age_at_death"] = t.loc[dead, "age"]
    for cond in ("hypertension", "diabetes"):
        onset = f"{cond}_onset_age"
        has = t[cond].to_numpy(dtype=bool) & t["age"].notna().to_numpy()
        draw = np.floor(rng.random(n) * (t["age"].fillna(0).to_numpy() + 1))
        t[onset] = np.where(has, draw, np.nan)
    low = (t["n_inpatient_5y"] + t["n_emergency_5y"]).to_numpy(dtype=int)
    t["n_encounters_5y"] = pd.array(np.maximum(t["n_encounters_5y"].to_numpy(dtype=int), low), dtype="Int64")
    return t


def table_path(n: int, seed: int) -> Path:
    """Build (once) and return the Parquet file of ``synthetic_table(n, seed)``."""
    import synthhealth as sh

    schema = sh.load_schema("core-patient")
    path = DATA_DIR / f"write-synthetic-{n}-s{seed}-{schema.hash[:8]}.parquet"
    if not path.exists():
        log(f"building the synthetic table of {n:,} patients -> {path.name} ...")
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        synthetic_table(n, seed).to_parquet(tmp, row_group_size=CHUNK_ROWS)
        tmp.rename(path)
    return path


# ============================================================================ child side
def _maxrss_mib() -> float:
    """Peak RSS of this process (``VmHWM``: ``ru_maxrss`` inherits the parent's peak over fork/exec)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _dir_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _prepare_write(spec: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    import pandas as pd
    import pyarrow.parquet as pq

    import synthhealth as sh

    schema = sh.load_schema("core-patient")
    kind = spec["kind"]
    out = Path(spec["out"])
    table = pd.read_parquet(spec["table"]) if kind != "ndjson_chunks" else None
    first = pq.ParquetFile(spec["table"]).read_row_group(0).to_pandas().iloc[:5]
    sh.fhir.write(first, schema, out, random_state=0)  # imports and caches, not timed
    shutil.rmtree(out)
    del first

    def chunks() -> Any:
        for batch in pq.ParquetFile(spec["table"]).iter_batches(batch_size=CHUNK_ROWS):
            yield batch.to_pandas()

    def run() -> dict[str, Any]:
        src = chunks() if kind == "ndjson_chunks" else table
        fmt = "bundle" if kind == "bundle" else "ndjson"
        rep = sh.fhir.write(src, schema, out, format=fmt, patients_per_bundle=PER_BUNDLE, random_state=0)
        return {"resources": rep.n_resources, "bytes": rep.bytes_written, "patients": rep.n_patients,
                "mismatches": sum(rep.mismatches.values()), "files": len(rep.files)}

    return run


def _prepare_fhir_resources(spec: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    import orjson
    from fhir.resources.R4B import get_fhir_model_class

    items = [orjson.loads(line) for line in Path(spec["sample"]).read_bytes().splitlines()]
    models = {t: get_fhir_model_class(t) for t in {r["resourceType"] for r in items}}
    out = Path(spec["out"])

    def run() -> dict[str, Any]:
        n = n_bytes = 0
        out.mkdir(parents=True, exist_ok=True)
        handles: dict[str, Any] = {}
        try:
            for r in items:
                rtype = r["resourceType"]
                data = models[rtype].model_validate(r).model_dump_json().encode() + b"\n"
                fh = handles.get(rtype)
                if fh is None:
                    fh = handles[rtype] = open(out / f"{rtype}.ndjson", "wb")
                fh.write(data)
                n += 1
                n_bytes += len(data)
        finally:
            for fh in handles.values():
                fh.close()
        return {"resources": n, "bytes": n_bytes, "patients": spec["patients"], "mismatches": 0, "files": len(handles)}

    return run


def child_main(spec_path: str, result_path: str) -> int:
    """Run one measurement in this (fresh) process; write timings, RSS and counts as JSON."""
    t0 = time.perf_counter()
    spec = json.loads(Path(spec_path).read_text())
    prepare = _prepare_fhir_resources if spec["kind"] == "fhir_resources" else _prepare_write
    run = prepare(spec)
    import_s = time.perf_counter() - t0
    base = _maxrss_mib()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    out = run()
    wall = time.perf_counter() - wall0
    out.update(wall_s=wall, cpu_s=time.process_time() - cpu0, import_s=import_s, base_rss_mib=base,
               peak_rss_mib=_maxrss_mib())
    Path(result_path).write_text(json.dumps(out))
    return 0


# =========================================================================== parent side
@dataclass
class Result:
    """One measurement."""

    kind: str
    patients: int
    resources: int
    bytes: int
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    base_rss_mib: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.resources / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def mb_s(self) -> float:
        return self.bytes / 1e6 / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def cpu_rate(self) -> float:
        return self.resources / self.cpu_s if self.cpu_s > 0 else float("nan")


def run_child(spec: dict[str, Any], *, pin: bool, repeat: int = 1) -> Result:
    """Measure ``spec`` in fresh subprocesses (``repeat`` times, fastest kept, largest peak RSS)."""
    best: Result | None = None
    peak = 0.0
    for i in range(max(1, repeat)):
        with tempfile.TemporaryDirectory(prefix="bench-write-", dir=DATA_DIR) as tmp:
            spec_path = Path(tmp) / "spec.json"
            result_path = Path(tmp) / "result.json"
            spec_path.write_text(json.dumps({**spec, "out": str(Path(tmp) / "out")}))
            cmd = (["taskset", "-c", "0"] if pin and shutil.which("taskset") else []) + \
                [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path), str(result_path)]
            label = LABELS[spec["kind"]]
            log(f"{label}: {spec['patients']:,} patients" + (f" (run {i + 1}/{repeat})" if repeat > 1 else "") + " ...")
            env = {**os.environ, **ONE_CORE_ENV}
            proc = subprocess.run(cmd, env=env, cwd=REPO_DIR, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                sys.stderr.write(proc.stdout + proc.stderr)
                raise SystemExit(f"measurement failed: {label}")
            r = json.loads(result_path.read_text())
        if r["patients"] != spec["patients"] or r["mismatches"]:
            raise SystemExit(f"{label}: wrote {r['patients']} patients with {r['mismatches']} mismatches; expected "
                             f"{spec['patients']} and none")
        res = Result(spec["kind"], r["patients"], r["resources"], r["bytes"], r["wall_s"], r["cpu_s"],
                     r["peak_rss_mib"], r["base_rss_mib"], spec.get("note", ""))
        log(f"  {res.rate:,.0f} resources/s, {res.mb_s:.1f} MB/s, peak RSS {res.peak_rss_mib:.0f} MiB")
        peak = max(peak, res.peak_rss_mib)
        if best is None or res.wall_s < best.wall_s:
            best = res
    assert best is not None
    best.peak_rss_mib = peak
    return best


def fhir_resources_sample(table: Path, n_patients: int) -> tuple[Path, int]:
    """Write ``n_patients`` of the table with synthhealth and gather their resources into one NDJSON file."""
    import pandas as pd

    import synthhealth as sh

    out = DATA_DIR / "write-fhir-resources-sample"
    shutil.rmtree(out, ignore_errors=True)
    df = pd.read_parquet(table).iloc[:n_patients]
    sh.fhir.write(df, sh.load_schema("core-patient"), out, random_state=0)
    sample = DATA_DIR / "write-fhir-resources-sample.ndjson"
    with open(sample, "wb") as fh:
        for f in sorted(out.glob("*.ndjson")):
            fh.write(f.read_bytes())
    n = sum(1 for _ in sample.read_bytes().splitlines())
    shutil.rmtree(out)
    return sample, n


def render(results: list[Result], sizes: list[int], env: dict[str, str], fr: Result | None) -> str:
    """The markdown report with its verdict lines."""
    lines = ["# synthhealth.fhir.write benchmark", ""]
    lines += [f"- {k}: {v}" for k, v in env.items()]
    lines += ["", "| what | patients | resources | resources/s | resources/CPU-s | MB/s | wall s | peak RSS MiB | "
              "RSS over imports | × fhir.resources |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results + ([fr] if fr else []):
        x = f"{r.cpu_rate / fr.cpu_rate:,.0f}×" if fr and r is not fr else ""
        note = f" ({r.note})" if r.note else ""
        lines.append(f"| {LABELS[r.kind]}{note} | {r.patients:,} | {r.resources:,} | {r.rate:,.0f} | "
                     f"{r.cpu_rate:,.0f} | {r.mb_s:.1f} | {r.wall_s:.1f} | {r.peak_rss_mib:.0f} | "
                     f"{r.peak_rss_mib - r.base_rss_mib:.0f} | {x} |")
    lines += ["", "resources/s and MB/s are per second of wall time; resources/CPU-s per second of the process's "
              "CPU time (the same on an idle core; the honest one-core figure when other processes share the "
              "core). × fhir.resources compares CPU rates."]
    lines.append("")
    big, small = max(sizes), min(sizes)
    verdicts = []
    nd = next((r for r in results if r.kind == "ndjson" and r.patients == big), None)
    if nd is not None:
        ok = nd.cpu_rate >= TARGET_RESOURCES_PER_S
        verdicts.append(ok)
        lines.append(f"- **Throughput** {'PASS' if ok else 'FAIL'}: {nd.cpu_rate:,.0f} resources per CPU-second "
                     f"writing NDJSON for {big:,} patients on one core (target {TARGET_RESOURCES_PER_S:,}); "
                     f"{nd.rate:,.0f} per wall-clock second (CPU share {nd.cpu_s / nd.wall_s:.0%}).")
    ch = {r.patients: r for r in results if r.kind == "ndjson_chunks"}
    if big in ch and small in ch and big != small:
        ratio = ch[big].peak_rss_mib / ch[small].peak_rss_mib
        ok = ratio <= FLAT_RSS_TOLERANCE
        verdicts.append(ok)
        lines.append(f"- **Memory** {'PASS' if ok else 'FAIL'}: peak RSS writing {big:,} patients from chunks is "
                     f"{ch[big].peak_rss_mib:.0f} MiB, {ratio:.2f}× that of {small:,} patients "
                     f"(flat if ≤ {FLAT_RSS_TOLERANCE}×). With a whole DataFrame the input table itself grows "
                     f"with the patients.")
    if fr is not None and nd is not None:
        lines.append(f"- **Speed-up**: {nd.cpu_rate / fr.cpu_rate:,.0f}× the fhir.resources floor "
                     f"({fr.cpu_rate:,.0f} resources per CPU-second, models only).")
    if verdicts:
        lines.append(f"- **Overall**: {'PASS' if all(verdicts) else 'FAIL'}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--child", nargs=2, metavar=("SPEC", "RESULT"), help=argparse.SUPPRESS)
    ap.add_argument("--sizes", default="10000,100000", help="patients per table, comma-separated")
    ap.add_argument("--quick", action="store_true", help="2,000 and 10,000 patients, a small fhir.resources sample")
    ap.add_argument("--repeat", type=int, default=1, help="runs per measurement on tables up to 20,000 patients")
    ap.add_argument("--fhir-resources", type=int, default=3000, help="resources in the fhir.resources sample")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic tables")
    ap.add_argument("--no-bundles", action="store_true", help="skip the Bundle rows")
    ap.add_argument("--no-pin", action="store_true", help="don't pin to CPU 0")
    ap.add_argument("--save", nargs="?", const="", default=None, metavar="PATH",
                    help="also write the report (default bench/results/fhir_write-<date>.md)")
    ap.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    args = ap.parse_args(argv)
    if args.child:
        return child_main(*args.child)
    sizes = [2000, 10000] if args.quick else [int(s) for s in args.sizes.split(",") if s]
    n_fr = 1000 if args.quick else args.fhir_resources
    pin = not args.no_pin
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    load0 = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    tables = {n: table_path(n, args.seed) for n in sizes}
    results: list[Result] = []
    for n in sorted(sizes):
        rep = args.repeat if n <= 20_000 else 1
        base = {"table": str(tables[n]), "patients": n}
        results.append(run_child({**base, "kind": "ndjson"}, pin=pin, repeat=rep))
        results.append(run_child({**base, "kind": "ndjson_chunks", "note": f"{CHUNK_ROWS:,}-row chunks"},
                                 pin=pin, repeat=rep))
        if not args.no_bundles:
            results.append(run_child({**base, "kind": "bundle"}, pin=pin, repeat=rep))
    sample, n_res = fhir_resources_sample(tables[min(sizes)], max(1, n_fr // 25))
    lines = sample.read_bytes().splitlines()[:n_fr]
    sample.write_bytes(b"\n".join(lines) + b"\n")
    fr = run_child({"kind": "fhir_resources", "sample": str(sample), "patients": 0,
                    "note": f"sample of {len(lines):,} resources"}, pin=pin)
    sample.unlink()
    import synthhealth as sh

    env = {
        "date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "load average": f"{load0} at the start, {' / '.join(f'{x:.1f}' for x in os.getloadavg())} at the end "
                        f"(1/5/15 min)",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "synthhealth": sh.__version__,
        "pinned": "CPU 0 (taskset)" if pin and shutil.which("taskset") else "no",
        "tables": "core-patient, product of the demo's marginals made consistent (see the script's docstring)",
    }
    text = render(results, sizes, env, fr)
    print(text)
    if args.save is not None:
        path = Path(args.save) if args.save else RESULTS_DIR / f"fhir_write-{_dt.date.today().isoformat()}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        log(f"saved {path}")
    if args.json:
        Path(args.json).write_text(json.dumps([vars(r) for r in results + [fr]], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
