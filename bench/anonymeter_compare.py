"""Our singling-out, linkability and inference risks next to anonymeter 1.1.0's, on flchain.

anonymeter 1.1.0 pins numpy<1.27 and pyarrow<22, which our numpy 2.x environment cannot take, so it
runs in its own virtual environment (``bench/_data/anonymeter-venv``, built on first use with
``python3 -m venv`` and ``pip install anonymeter==1.1.0``) on parquet files written to
``bench/_data/anonymeter-compare/``. This one file is both the driver (project venv) and the worker
(``--worker JOB.json``, anonymeter's venv: it imports neither synthhealth nor numpy 2).

flchain is split at random (seed 0) into train and holdout of 3,937 records each. Three synthetic
sets of 3,937 records: a copy of train (a total leak), MST at epsilon = 1, and the holdout's columns
shuffled independently (no leak, no structure). Each attack runs with the same number of attacks on
both sides, the same partial records (linkability) and the same secret (inference).

anonymeter runs twice for singling out: on the raw values (its usual use) and on the public bins
(numbers replaced by their bin index), which is what our implementation attacks; linkability and
inference run on the raw values (our distances also use the raw numbers, scaled by their declared
range; anonymeter scales by the observed range).

Usage::

    . .venv/bin/activate
    python bench/anonymeter_compare.py            # about a minute once the venv exists
    python bench/anonymeter_compare.py --n-attacks 200 --seed 1
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "_data"
VENV = DATA / "anonymeter-venv"
WORK = DATA / "anonymeter-compare"
ANONYMETER = "anonymeter==1.1.0"


# ============================================================================ worker (anonymeter venv)
def worker(job_file: str) -> None:
    """Run anonymeter's evaluators on the jobs of ``job_file``; write their results next to it."""
    import numpy as np
    import pandas as pd
    from anonymeter.evaluators import InferenceEvaluator, LinkabilityEvaluator, SinglingOutEvaluator

    spec = json.loads(Path(job_file).read_text())
    tables: dict[str, pd.DataFrame] = {}

    def load(name: str) -> pd.DataFrame:
        if name not in tables:
            tables[name] = pd.read_parquet(Path(spec["dir"]) / f"{name}.parquet")
        return tables[name]

    # numba compiles the neighbour search on first use: warm it up outside the timings
    w = load(spec["jobs"][0]["ori"]).head(20)
    LinkabilityEvaluator(ori=w, syn=w, aux_cols=(list(w.columns[:2]), list(w.columns[2:])), n_attacks=5,
                         control=w).evaluate(n_jobs=1)

    out = []
    for job in spec["jobs"]:
        np.random.seed(job["seed"])  # linkability and inference sample with pandas' global generator
        ori, syn, ctl = load(job["ori"]), load(job["syn"]), load(job["control"])
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if job["attack"] == "singling_out":
                ev = SinglingOutEvaluator(ori=ori, syn=syn, control=ctl, n_attacks=job["n_attacks"],
                                          n_cols=job["n_cols"], seed=job["seed"]).evaluate(mode=job["mode"])
                extra = {"n_success_queries": len(ev.queries())}
            elif job["attack"] == "linkability":
                ev = LinkabilityEvaluator(ori=ori, syn=syn, control=ctl, n_attacks=job["n_attacks"],
                                          aux_cols=tuple(job["aux_cols"]), n_neighbors=1).evaluate(n_jobs=job["n_jobs"])
                extra = {}
            else:
                ev = InferenceEvaluator(ori=ori, syn=syn, control=ctl, n_attacks=job["n_attacks"],
                                        aux_cols=job["aux_cols"], secret=job["secret"],
                                        regression=False).evaluate(n_jobs=job["n_jobs"])
                extra = {}
            risk = ev.risk(confidence_level=0.95)
            res = ev.results(confidence_level=0.95)
        seconds = time.perf_counter() - t0
        out.append({"id": job["id"], "risk": float(risk.value), "ci": [float(risk.ci[0]), float(risk.ci[1])],
                    "main": float(res.attack_rate.value), "control": float(res.control_rate.value),
                    "baseline": float(res.baseline_rate.value), "n_success": float(res.n_success),
                    "n_control": float(res.n_control), "n_baseline": float(res.n_baseline),
                    "seconds": seconds, "warnings": sorted({str(c.message)[:120] for c in caught}), **extra})
    Path(spec["out"]).write_text(json.dumps(out, indent=1))


# ============================================================================ driver (project venv)
def ensure_venv() -> Path:
    """The anonymeter venv's python, building the venv first when it is missing."""
    py = VENV / "bin" / "python"
    if py.exists():
        probe = subprocess.run([str(py), "-c", "import anonymeter.evaluators"], capture_output=True)
        if probe.returncode == 0:
            return py
    DATA.mkdir(parents=True, exist_ok=True)
    print(f"building {VENV.relative_to(ROOT)} ({ANONYMETER}) ...", file=sys.stderr)
    subprocess.run(["python3", "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", ANONYMETER], check=True)
    return py


def binned(table: Any, data: Any, which: str) -> Any:
    """The table at the public schema's resolution: numbers as their bin index (missing: NaN)."""
    import numpy as np
    import pandas as pd

    codes = data.codes(which)
    out = table.copy()
    for j, spec in enumerate(data.encoder.specs):
        if spec.attr.type in ("numeric", "count"):
            c = codes[:, j].astype(float)
            if spec.has_missing:
                c[codes[:, j] == spec.n_values] = np.nan
            out[spec.attr.name] = pd.Series(c, index=out.index)
    return out


def fmt(risk: float | None, ci: Any) -> str:
    if risk is None:
        return "n/a"
    if ci is None:
        return f"{risk:.3f}"
    return f"{risk:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def rates(main: Any, control: Any, base: Any) -> str:
    def r(x: Any) -> str:
        return "–" if x is None else f"{x:.2f}"
    return f"{r(main)} / {r(control)} / {r(base)}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--n-attacks", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-jobs", type=int, default=2, help="anonymeter's neighbour-search threads")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker)
        return

    import numpy as np
    import pandas as pd

    import synthhealth as sh
    from synthhealth.exceptions import InsecureRandomnessWarning
    from synthhealth.report.attacks.anonymeter import (
        default_link_split,
        inference_risk,
        linkability_risk,
        singling_out_risk,
    )
    from synthhealth.report.data import ReportData

    py = ensure_venv()
    WORK.mkdir(parents=True, exist_ok=True)
    n_attacks, seed = args.n_attacks, args.seed

    schema = sh.load_schema("flchain")
    t = sh.datasets.load_flchain()
    perm = np.random.default_rng(0).permutation(len(t))
    train, holdout = t.iloc[perm[:3937]].reset_index(drop=True), t.iloc[perm[3937:7874]].reset_index(drop=True)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureRandomnessWarning)
        mst = sh.MST(epsilon=1, random_state=0).fit(train, schema=schema, one_row_per_patient=True).sample(
            len(train), random_state=0)
    t_mst = time.perf_counter() - t0
    rng = np.random.default_rng(5)
    indep = pd.DataFrame({c: holdout[c].to_numpy()[rng.permutation(len(holdout))] for c in holdout.columns})
    sets = {"copy of train": train.copy(), "MST ε=1": mst, "independent columns": indep}

    rows: list[dict[str, Any]] = []
    jobs: list[dict[str, Any]] = []
    written: set[str] = set()

    def write(name: str, df: pd.DataFrame) -> str:
        if name not in written:
            df = df.copy()
            for c in df.columns:  # anonymeter 1.1.0 cannot compare pandas' nullable booleans (pd.NA)
                if isinstance(df[c].dtype, pd.BooleanDtype):
                    df[c] = df[c].astype(bool) if not df[c].isna().any() else df[c].astype(object)
            df.to_parquet(WORK / f"{name}.parquet", index=False)
            written.add(name)
        return name

    for si, (label, syn) in enumerate(sets.items()):
        d = ReportData.from_tables(schema, train, holdout, syn)
        names = list(d.names)
        aux = default_link_split(d, random_state=seed)
        raw = {w: write(f"s{si}-{w}-raw", d.table(w)) for w in ("train", "holdout", "synthetic")}
        bins = {w: write(f"s{si}-{w}-bins", binned(d.table(w), d, w)) for w in ("train", "holdout", "synthetic")}
        attacks: list[tuple[str, Any, dict[str, Any]]] = [
            ("singling out, univariate", singling_out_risk, {"mode": "univariate"}),
            ("singling out, multivariate (3 cols)", singling_out_risk, {"mode": "multivariate", "n_cols": 3}),
            ("linkability (demographics+3 | rest)", linkability_risk, {"aux_cols": aux}),
            ("inference, secret death", inference_risk, {"secret": "death"}),
            ("inference, secret flc_grp", inference_risk, {"secret": "flc_grp"}),
        ]
        for ai, (attack, fn, kw) in enumerate(attacks):
            t0 = time.perf_counter()
            risk, rate = fn(d, n_attacks=n_attacks, random_state=seed, **kw)
            dt = time.perf_counter() - t0
            row_id = f"{si}-{ai}"
            det = risk.details
            rows.append({"id": row_id, "set": label, "attack": attack, "ours": fmt(risk.value, risk.ci),
                         "ours_rates": rates(rate.value, det.get("control", {}).get("rate"),
                                             det.get("baseline", {}).get("rate")),
                         "ours_s": dt, "ours_n": det.get("n_found", det.get("main", {}).get("n_attacks"))})
            base = {"n_attacks": n_attacks, "seed": seed, "n_jobs": args.n_jobs}
            if fn is singling_out_risk:
                for variant, files in (("bins", bins), ("raw", raw)):
                    jobs.append({**base, "id": f"{row_id}-{variant}", "attack": "singling_out", "mode": kw["mode"],
                                 "n_cols": kw.get("n_cols", 3), "ori": files["train"], "syn": files["synthetic"],
                                 "control": files["holdout"]})
            elif fn is linkability_risk:
                jobs.append({**base, "id": f"{row_id}-raw", "attack": "linkability", "aux_cols": [aux[0], aux[1]],
                             "ori": raw["train"], "syn": raw["synthetic"], "control": raw["holdout"]})
            else:
                jobs.append({**base, "id": f"{row_id}-raw", "attack": "inference", "secret": kw["secret"],
                             "aux_cols": [n for n in names if n != kw["secret"]],
                             "ori": raw["train"], "syn": raw["synthetic"], "control": raw["holdout"]})

    job_file, out_file = WORK / "jobs.json", WORK / "results.json"
    job_file.write_text(json.dumps({"dir": str(WORK), "out": str(out_file), "jobs": jobs}))
    t0 = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run([str(py), str(Path(__file__).resolve()), "--worker", str(job_file)], check=True, env=env,
                   cwd=str(WORK))
    t_anon = time.perf_counter() - t0
    theirs = {r["id"]: r for r in json.loads(out_file.read_text())}

    print(f"# Our risks vs anonymeter 1.1.0 on flchain (train {len(train):,} / holdout {len(holdout):,}, "
          f"{n_attacks} attacks, seed {seed})\n")
    print("Risk and 95% CI; rates are main / control / baseline success rates. anonymeter singling out on the "
          "public bins (bins) and on the raw values (raw); its linkability and inference on the raw values.\n")
    print("| synthetic | attack | ours | ours: rates | anonymeter (bins) | anonymeter (raw) | anonymeter: rates "
          "| ours s | anonymeter s |")
    print("|---|---|---|---|---|---|---|---:|---:|")
    notes = []
    for r in rows:
        b, w = theirs.get(f"{r['id']}-bins"), theirs[f"{r['id']}-raw"]
        ref = b or w
        print(f"| {r['set']} | {r['attack']} | {r['ours']} | {r['ours_rates']} "
              f"| {fmt(b['risk'], b['ci']) if b else '–'} | {fmt(w['risk'], w['ci'])} "
              f"| {rates(ref['main'], ref['control'], ref['baseline'])} | {r['ours_s']:.2f} "
              f"| {(b['seconds'] if b else 0) + w['seconds']:.2f} |")
        for x in (b, w):
            if x and x["warnings"]:
                notes.append(f"- {r['set']}, {r['attack']} ({x['id'].rsplit('-', 1)[1]}): " + "; ".join(x["warnings"]))
    print(f"\nMST fit + sample: {t_mst:.1f} s. anonymeter worker, all jobs, process included: {t_anon:.1f} s. "
          "Timings on this machine (2 shared cores); anonymeter's seconds add its bins and raw runs.")
    if notes:
        print("\nanonymeter warnings:\n" + "\n".join(notes))


if __name__ == "__main__":
    main()
