#!/usr/bin/env python
"""Benchmark: time and peak memory of the privacy and utility report (issue 6).

What it measures
----------------
``sh.Report.build`` (every attack and metric) and ``Report.save`` (JSON + HTML + PDF) at 10k and
100k patients, without the shadow-model attack and then with it (the shadow attack re-fits the
generator 2 × ``n_shadows`` times per target, so it is only run where it finishes in minutes).
Each case runs in a fresh Python subprocess, so its peak RSS (``VmHWM``, imports included) is its
own. Target of the issue: ≤ 2 minutes at 100k patients without the shadow-model attack, on 2 cores.

Data
----
``core-patient`` (45 FHIR-derived attributes): the 150 bundled demo patients are flattened and an
MST model (ε = 10, seeded) fitted on them generates stand-in "real" train and holdout tables of
n patients each (decoded values are drawn inside public bins, so rows are varied); the
synthetic table is an MST ε = 1 sample fitted on that train table. ``flchain`` (11 attributes):
rows of the real flchain table drawn with replacement for train and holdout, synthetic from MST
ε = 1. Nothing here is released; seeds make it repeatable.

Usage
-----
::

    python bench/report.py                         # 10k and 100k, both schemas, shadow at 10k only
    python bench/report.py --sizes 10000 --schemas flchain --save
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "_data" / "report"
RESULTS = BENCH_DIR / "results"


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_data(schema_name: str, n: int) -> Path:
    """Write train/holdout/synthetic parquet files for one case (cached)."""
    import synthhealth as sh

    out = DATA_DIR / f"{schema_name}-{n}"
    if (out / "synthetic.parquet").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    schema = sh.load_schema(schema_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if schema_name == "core-patient":
            base = sh.flatten(sh.fhir.read(sh.datasets.demo_fhir_path()), schema)
            src = sh.MST(epsilon=10.0, random_state=0).fit(base, schema=schema, progress=False)
            train, holdout = src.sample(n, random_state=1), src.sample(n, random_state=2)
        else:
            t = sh.datasets.load_flchain()
            train = t.sample(n, replace=True, random_state=1).reset_index(drop=True)
            holdout = t.sample(n, replace=True, random_state=2).reset_index(drop=True)
        t0 = time.perf_counter()
        # resampled stand-in rows (with repeats) and no patient ids: a benchmark, not a release
        gen = sh.MST(epsilon=1.0, random_state=0).fit(train, schema=schema, progress=False, one_row_per_patient=True)
        print(f"  (data {schema_name} n={n}: MST fit {time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        synth = gen.sample(n, random_state=3)
        gen.save(out / "model", overwrite=True)
    sh.write_table(train, out / "train.parquet", overwrite=True)
    sh.write_table(holdout, out / "holdout.parquet", overwrite=True)
    sh.write_table(synth, out / "synthetic.parquet", overwrite=True)
    return out


def worker(case_dir: str, shadow: bool) -> None:
    """Child: build and save one report; print a JSON line."""
    t0 = time.perf_counter()
    import pandas as pd

    import synthhealth as sh

    d = Path(case_dir)
    model = sh.load_model(d / "model")
    tables = {k: pd.read_parquet(d / f"{k}.parquet") for k in ("train", "holdout", "synthetic")}
    t_import = time.perf_counter() - t0
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = sh.Report.build(real=tables["train"], holdout=tables["holdout"], synthetic=tables["synthetic"],
                              model=model, shadow=shadow, random_state=0, progress=False)
    t_build = time.perf_counter() - t1
    t2 = time.perf_counter()
    rep.save(d / ("report-shadow" if shadow else "report"))
    t_save = time.perf_counter() - t2
    print(json.dumps({"import_load_s": t_import, "build_s": t_build, "save_s": t_save,
                      "peak_mb": peak_rss_mb(), "timings": rep.doc["meta"]["timings_s"], "verdict": rep.verdict,
                      "warnings": rep.doc["warnings"]}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--schemas", nargs="+", default=["core-patient", "flchain"])
    ap.add_argument("--shadow-max", type=int, default=10_000, help="run the shadow attack up to this size")
    ap.add_argument("--save", action="store_true", help="write bench/results/report-<date>.md/json")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker[0], args.worker[1] == "1")
        return 0
    rows = []
    for schema_name in args.schemas:
        for n in args.sizes:
            d = make_data(schema_name, n)
            for shadow in (False, True):
                if shadow and n > args.shadow_max:
                    continue
                env = {**os.environ, "PYTHONWARNINGS": "ignore"}
                t0 = time.perf_counter()
                res = subprocess.run([sys.executable, __file__, "--worker", str(d), "1" if shadow else "0"],
                                     capture_output=True, text=True, env=env)
                wall = time.perf_counter() - t0
                if res.returncode != 0:
                    print(res.stderr[-3000:], file=sys.stderr)
                    rows.append({"schema": schema_name, "n": n, "shadow": shadow, "error": res.stderr[-300:]})
                    continue
                r = json.loads(res.stdout.strip().splitlines()[-1])
                r.update({"schema": schema_name, "n": n, "shadow": shadow, "wall_s": wall})
                rows.append(r)
                slow = sorted(r["timings"].items(), key=lambda kv: -kv[1] if kv[0] != "total" else 0)[:3]
                print(f"{schema_name:>12} n={n:>7,} shadow={shadow!s:>5}: build {r['build_s']:6.1f} s, save "
                      f"{r['save_s']:5.1f} s, peak {r['peak_mb']:6.0f} MB  (slowest: "
                      + ", ".join(f"{k} {v:.1f}s" for k, v in slow) + ")", flush=True)
    lines = ["| schema | patients (train = holdout = synthetic) | shadow attack | build s | save s (json+html+pdf) "
             "| build + save s | peak RSS MB | target ≤ 120 s |", "|---|---:|---|---:|---:|---:|---:|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['schema']} | {r['n']:,} | {'yes' if r['shadow'] else 'no'} | error | | | | |")
            continue
        tot = r["build_s"] + r["save_s"]
        target = ("PASS" if tot <= 120 else "FAIL") if not r["shadow"] else "—"
        lines.append(f"| {r['schema']} | {r['n']:,} | {'yes' if r['shadow'] else 'no'} | {r['build_s']:.1f} | "
                     f"{r['save_s']:.1f} | {tot:.1f} | {r['peak_mb']:,.0f} | {target} |")
    print("\n".join(lines))
    if args.save:
        RESULTS.mkdir(exist_ok=True)
        stamp = time.strftime("%Y-%m-%d")
        (RESULTS / f"report-{stamp}.json").write_text(json.dumps(rows, indent=1))
        (RESULTS / f"report-{stamp}.md").write_text(
            "# bench/report.py\n\n" + f"- load: `{os.getloadavg()}`\n\n" + "\n".join(lines) + "\n\n## Per-step "
            "timings (s)\n\n" + "\n".join(f"- {r['schema']} n={r['n']} shadow={r['shadow']}: "
                                          + ", ".join(f"{k} {v:.1f}" for k, v in r.get('timings', {}).items())
                                          for r in rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
