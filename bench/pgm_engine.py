#!/usr/bin/env python
"""Benchmark: the Private-PGM engine (``synthhealth.generators.pgm``) on flchain-shaped marginals.

What it measures
----------------
Each case runs in a fresh Python subprocess pinned to one core (``taskset -c 0`` when available,
``OMP_NUM_THREADS=1``), so its peak RSS (``VmHWM``, imports included) is its own.

``tree``
    11 one-way + 10 two-way measurements forming a tree (the maximum spanning tree of mutual
    information on the binned data, as MST would pick): ``estimate(iters=1000)``.
``3-way``
    The same plus 4 three-way measurements (AIM-like cliques of up to ~2,500 cells).
``rounds warm`` / ``rounds cold``
    AIM-like: the one-way measurements, then the 14 higher-order ones added one per round, each
    round refitting ``estimate`` from the previous model (``warm_start``) or from scratch.

Each case also times ``sample`` (5,511 and 200,000 rows) and all 55 two-way ``marginal`` queries
on its final model.

Data
----
flchain (``synthhealth.datasets.load_flchain``, needs scikit-survival), binned with the public bins
of ``../shared/anchors/flchain.md`` plus a missing state per column (sizes 12, 3, 10, 14, 14, 11,
11, 3, 16, 3, 17), a 5,511-row subset drawn with seed 0. Noise: zCDP ``rho`` for the given
epsilon and ``delta = 1e-5``, split equally over the measurements (Gaussian ``sigma =
sqrt(k / (2 rho))``). Timings are for the post-processing only; nothing here is private.

Usage
-----
::

    python bench/pgm_engine.py                 # epsilon 1 and 4, about a minute
    python bench/pgm_engine.py --epsilon 1 --no-pin
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
CASES = ("tree", "3-way", "rounds warm", "rounds cold")
N_ROWS = 5511

AGE = [55, 60, 65, 70, 75, 80, 85, 90, 95, 100]
FLC = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0]
CREAT = [0.6, 0.8, 1.0, 1.2, 1.4, 1.7, 2.0, 3.0, 5.0]
FUTIME = [365.25 * k for k in range(1, 15)]
CHAPTERS = ["Blood", "Circulatory", "Congenital", "Digestive", "Endocrine", "External Causes", "Genitourinary",
            "Ill Defined", "Infectious", "Injury and Poisoning", "Mental", "Musculoskeletal", "Neoplasms", "Nervous",
            "Respiratory", "Skin"]


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")  # pragma: no cover


def load_data():
    """The binned flchain table (int codes) and its domain."""
    import numpy as np

    import synthhealth as sh
    from synthhealth.generators.pgm import Domain

    df = sh.datasets.load_flchain()

    def binned(values, edges):
        v = np.asarray(values, dtype=float)
        codes = np.digitize(v, edges)
        return np.where(np.isnan(v), len(edges) + 1, codes)

    def categorical(values, cats):
        lookup = {c: i for i, c in enumerate(cats)}
        return np.array([lookup.get(str(x), len(cats)) for x in values])

    cols = {
        "age": binned(df["age"], AGE),
        "sex": categorical(df["sex"], ["F", "M"]),
        "sample_yr": categorical(df["sample.yr"], [str(y) for y in range(1995, 2004)]),
        "kappa": binned(df["kappa"], FLC),
        "lambda": binned(df["lambda"], FLC),
        "flc_grp": categorical(df["flc.grp"], [str(k) for k in range(1, 11)]),
        "creatinine": binned(df["creatinine"], CREAT),
        "mgus": categorical(df["mgus"], ["no", "yes"]),
        "futime": binned(df["futime"], FUTIME),
        "death": categorical(df["death"].astype(int), ["0", "1"]),
        "chapter": np.array([0 if not isinstance(x, str) else 1 + CHAPTERS.index(x) for x in df["chapter"]]),
    }
    shape = (12, 3, 10, 14, 14, 11, 11, 3, 16, 3, 17)
    domain = Domain(tuple(cols), shape)
    data = np.stack([cols[a] for a in domain.attrs], axis=1)
    assert (data < np.array(shape)).all()
    rows = np.random.default_rng(0).choice(len(data), size=N_ROWS, replace=False)
    return data[rows], domain


def choose_cliques(data, domain):
    """MST-like tree on mutual information, and four 3-way cliques grown from adjacent tree edges."""
    import itertools

    import numpy as np

    def marginal(attrs):
        idx = [domain.index(a) for a in attrs]
        flat = np.ravel_multi_index(data[:, idx].T, domain.shape_of(attrs))
        return np.bincount(flat, minlength=domain.size(attrs)).reshape(domain.shape_of(attrs)).astype(float)

    def mutual_information(a, b):
        p = marginal((a, b)) / len(data)
        pa, pb = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
        nz = p > 0
        return float((p[nz] * np.log(p[nz] / (pa @ pb)[nz])).sum())

    attrs = domain.attrs
    weights = sorted(((mutual_information(a, b), a, b) for a, b in itertools.combinations(attrs, 2)), reverse=True)
    comp = {a: a for a in attrs}

    def find(a):
        while comp[a] != a:
            a = comp[a]
        return a

    tree = []
    for _, a, b in weights:
        if find(a) != find(b):
            comp[find(a)] = find(b)
            tree.append((a, b))
    triples = []
    for e1, e2 in itertools.combinations(tree, 2):
        common = set(e1) & set(e2)
        if common:
            t = domain.canonical(set(e1) | set(e2))
            if domain.size(t) <= 2600:
                triples.append((domain.size(t), t))
    triples = [t for _, t in sorted(triples, reverse=True)[:4]]
    return tree, triples, marginal


def child(case: str, epsilon: float) -> dict:
    t0 = time.perf_counter()
    import numpy as np

    from synthhealth.generators.pgm import Measurement, estimate

    import_s = time.perf_counter() - t0
    rss_imports = _peak_rss_mb()
    data, domain = load_data()
    tree, triples, marginal = choose_cliques(data, domain)
    one_way = [(a,) for a in domain.attrs]
    higher = tree if case == "tree" else tree + triples
    cliques = one_way + higher
    log_inv_delta = math.log(1e5)
    rho = (math.sqrt(epsilon + log_inv_delta) - math.sqrt(log_inv_delta)) ** 2
    sigma = math.sqrt(len(cliques) / (2 * rho))
    rng = np.random.default_rng(1)
    measurements = {c: Measurement(c, marginal(c) + rng.normal(0, sigma, domain.shape_of(c)), sigma) for c in cliques}
    rss_data = _peak_rss_mb()

    t, cpu = time.perf_counter(), time.process_time()
    if case.startswith("rounds"):
        current = [measurements[c] for c in one_way]
        model = estimate(domain, current)
        iters = [model.fit_info.n_iter]
        for c in higher:
            current.append(measurements[c])
            model = estimate(domain, current, warm_start=model if case == "rounds warm" else None)
            iters.append(model.fit_info.n_iter)
    else:
        model = estimate(domain, list(measurements.values()), iters=1000)
        iters = [model.fit_info.n_iter]
    fit_s, fit_cpu_s = time.perf_counter() - t, time.process_time() - cpu

    t = time.perf_counter()
    model.sample(N_ROWS, np.random.default_rng(0))
    sample_s = time.perf_counter() - t
    t = time.perf_counter()
    model.sample(200_000, np.random.default_rng(0))
    sample_200k_s = time.perf_counter() - t
    t = time.perf_counter()
    pairs = [(a, b) for i, a in enumerate(domain.attrs) for b in domain.attrs[i + 1 :]]
    for p in pairs:
        model.marginal(p)
    marg_s = time.perf_counter() - t
    err = float(np.mean([np.abs(model.marginal(c) - marginal(c)).sum() / N_ROWS / 2 for c in cliques]))
    err_noisy = float(np.mean([np.abs(measurements[c].values - marginal(c)).sum() / N_ROWS / 2 for c in cliques]))
    return {
        "case": case, "epsilon": epsilon, "measurements": len(cliques), "sigma": sigma,
        "model_cells": sum(domain.size(c) for c in model.cliques), "max_clique": max(domain.size(c) for c in model.cliques),
        "iters": iters, "converged": bool(model.fit_info.converged), "fit_s": fit_s, "fit_cpu_s": fit_cpu_s, "sample_5511_s": sample_s,
        "sample_200k_s": sample_200k_s, "marginals_55_s": marg_s, "import_s": import_s,
        "tvd_model": err, "tvd_noisy": err_noisy, "peak_rss_mb": _peak_rss_mb(), "rss_after_imports_mb": rss_imports,
        "rss_after_data_mb": rss_data,
    }


def run_case(case: str, epsilon: float, pin: bool) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", case, "--epsilon", str(epsilon)]
    if pin and shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO_DIR, check=False)
    if out.returncode != 0:
        raise SystemExit(f"case {case!r} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epsilon", type=float, action="append", help="privacy budget(s) to simulate (default 1 and 4)")
    ap.add_argument("--case", action="append", choices=CASES, help="cases to run (default all)")
    ap.add_argument("--no-pin", action="store_true", help="don't pin to CPU 0")
    ap.add_argument("--json", type=Path, help="also write the raw results as JSON")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.epsilon[0])))
        return
    results = []
    print("| case | ε | meas. | model cells (max clique) | iterations | fit s (CPU s) | sample 5,511 / 200k s | "
          "55 marginals s | peak RSS MB (after imports) | TVD model / noisy |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for eps in args.epsilon or [1.0, 4.0]:
        for case in args.case or CASES:
            r = run_case(case, eps, pin=not args.no_pin)
            results.append(r)
            it = r["iters"]
            its = str(it[0]) if len(it) == 1 else f"{sum(it)} over {len(it)} fits"
            print(f"| {case} | {eps:g} | {r['measurements']} | {r['model_cells']:,} ({r['max_clique']:,}) | {its}"
                  f"{'' if r['converged'] else ' (not converged)'} | {r['fit_s']:.2f} ({r['fit_cpu_s']:.2f}) | "
                  f"{r['sample_5511_s']:.3f} / {r['sample_200k_s']:.2f} | {r['marginals_55_s']:.3f} | "
                  f"{r['peak_rss_mb']:.0f} ({r['rss_after_imports_mb']:.0f}) | {r['tvd_model']:.3f} / "
                  f"{r['tvd_noisy']:.3f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
