#!/usr/bin/env python
"""Benchmark: synthhealth's AIM and MST against smartnoise-synth's ``mst`` and ``aim`` on flchain.

What it measures
----------------
Every fit runs in a **fresh Python subprocess**, which reports the wall time of ``fit`` alone and
its peak RSS (imports included), then writes its synthetic sample as integer codes over the
public bins. The parent scores every sample the same way:

- **TVD**: total variation distance ``½ Σ |p − q|`` between the synthetic sample and the binned
  training split, for every 1-way and every 2-way marginal over the public domain (missing is
  its own state); the tables give the mean and the max over marginals.
- **TSTR AUROC**: predict ``death`` from age, sex, sample_yr, kappa, lambda, flc_grp, creatinine
  and mgus (binned) with a model trained on the synthetic sample and tested on the real 30 %:
  scikit-learn ``LogisticRegression`` on a one-hot encoding of the bins, and
  ``HistGradientBoostingClassifier`` on the bin codes. "train on real" trains on the real 70 %.
- the **sampling-noise floor**: the TVD between the real test split and the real training split.

Data, split and bins are those of ``../shared/anchors/flchain.md`` (stratified 70/30 split on
death, seed 0; the bins of ``schemas/flchain.yaml`` are the anchor bins), so the figures stand
beside the anchors, which the report reprints at the end.

Sections of the report
----------------------
1. flchain: synthhealth AIM and MST at each ``--epsilons`` (δ = 1e-5) over ``--seeds`` seeds, and
   smartnoise-synth 1.0.8 ``mst``/``aim`` (its default sampler and the fitted model re-sampled
   with mbi ``method="sample"``) at ``--peer-epsilons`` over ``--peer-seeds`` seeds; then a verdict
   against the targets of the issue. A diagnostic row runs our AIM with every 2-way marginal as its
   workload (its default on 11 attributes is every 3-way marginal); ``--no-diagnostics`` skips it.
2. The flattened Synthea set (615 patients, core-patient schema, 51 attributes): a stratified
   50/50 split on ``deceased``, TVD and TSTR (``deceased``) at ``--synthea-epsilons``, to say which
   ε gives useful output there.
3. Scaling (speed only, utility not scored): fit time and peak RSS at ε = 1 against rows
   (flchain resampled with replacement to ``--rows``) and against attributes (core-patient).

smartnoise-synth is installed by this script into its own virtualenv,
``bench/_data/venv-smartnoise`` (made once, reused): ``torch==2.13.0`` (the local CPU wheel)
first, then ``smartnoise-synth==1.0.8``. The fits run through ``bench/_marginals_smartnoise.py``.
If the install fails or takes over 10 minutes, the report prints the anchor figures instead,
labelled "anchor (not re-measured)".

Usage
-----
::

    python bench/marginals.py --quick          # about 4 minutes: 1 seed, no peers, small scaling
    python bench/marginals.py                  # full run (about 1 hour on 2 busy cores)
    python bench/marginals.py --no-peers --seeds 5 --epsilons 1

The report is printed and saved to ``bench/results/marginals-<date>.md`` (raw figures in a
``.json`` beside it); ``--quick`` saves only with ``--save``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import json
import math
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # heavy imports stay out of the children that only need the standard library
    import numpy as np
    import pandas as pd

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
SHARED_DIR = REPO_DIR.parent / "shared"
ANCHORS_MD = SHARED_DIR / "anchors" / "flchain.md"
SYNTHEA_BUNDLES = SHARED_DIR / "data" / "fhir" / "synthea-smart-r4" / "bundles"
DATA_DIR = BENCH_DIR / "_data" / "marginals"
SN_VENV = BENCH_DIR / "_data" / "venv-smartnoise"
SN_DRIVER = BENCH_DIR / "_marginals_smartnoise.py"
RESULTS_DIR = BENCH_DIR / "results"

DELTA = 1e-5
SN_TORCH = "torch==2.13.0"
SN_PACKAGE = "smartnoise-synth==1.0.8"
SN_INSTALL_LIMIT_S = 600.0

#: flchain TSTR task of the anchors: futime and chapter leak the label.
FLCHAIN_LABEL = "death"
FLCHAIN_FEATURES = ("age", "sex", "sample_yr", "kappa", "lambda", "flc_grp", "creatinine", "mgus")
#: Synthea TSTR task: deceased from a few clinical features (age_at_death would leak the label).
SYNTHEA_LABEL = "deceased"
SYNTHEA_FEATURES = ("age", "sex", "heart_failure", "cancer", "copd", "dementia", "chronic_kidney_disease",
                    "smoking_status")

#: Targets of the issue (flchain).
TARGET_TVD2 = {1.0: 0.055, 4.0: 0.050}
TARGET_AUROC_EPS1 = 0.82
TARGET_FIT_S = 10.0
TARGET_PEAK_MB = 500.0
#: "Useful" on Synthea: mean 2-way TVD within this factor of the 50/50 sampling-noise floor.
SYNTHEA_USEFUL_FACTOR = 1.25
#: ... and TSTR AUROC (LR) at most this far below train-on-real.
SYNTHEA_AUROC_GAP = 0.05

OUR_METHODS = {"aim": "synthhealth AIM", "mst": "synthhealth MST"}
#: Diagnostic variant: AIM with every 2-way marginal as workload (its default on flchain is every 3-way one).
AIM_2WAY_LABEL = "synthhealth AIM, workload = all 2-way (diagnostic)"
PEER_LABELS = {
    ("mst", "default"): "smartnoise MST, default sampler",
    ("mst", "resampled"): "smartnoise MST, re-sampled (mbi method=\"sample\")",
    ("aim", "default"): "smartnoise AIM, default sampler",
    ("aim", "resampled"): "smartnoise AIM, re-sampled (mbi method=\"sample\")",
}


def log(message: str) -> None:
    """Print a progress line to stderr (the report goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    """Peak RSS of this process in MiB, from ``VmHWM`` in ``/proc/self/status``.

    ``getrusage(RUSAGE_SELF).ru_maxrss`` is also recorded, but Linux carries the parent's
    high-water mark over (v)fork + exec into a child's ``ru_maxrss``, so in a child started by
    this (large) parent it reports at least the parent's peak. ``VmHWM`` belongs to the address
    space made by exec: the child's own peak, imports included.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return ru_maxrss_mb()


def ru_maxrss_mb() -> float:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# ================================================================================ jobs
@dataclass
class FitJob:
    """One fit, run in a fresh subprocess.

    ``engine`` is ``synthhealth`` or ``smartnoise``; ``train`` a parquet table in schema form
    (synthhealth) or a CSV of codes (smartnoise); ``attrs`` keeps only these schema attributes
    (a prefix of the schema, for the attribute-scaling run); ``n_sample`` = 0 skips sampling.
    """

    engine: str
    method: str
    epsilon: float
    seed: int
    train: str
    schema: str
    n_sample: int
    out_dir: str
    delta: float = DELTA
    attrs: list[str] | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class FitResult:
    """What a fit subprocess reported (``error`` set when it failed or timed out)."""

    job: FitJob
    fit_s: float = math.nan
    sample_s: float = math.nan
    peak_mb: float = math.nan
    peak_imports_mb: float = math.nan
    ru_maxrss_mb: float = math.nan
    wall_s: float = math.nan
    load_before: float = math.nan
    info: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


def _schema_for(name: str, attrs: Sequence[str] | None) -> Any:
    """The bundled schema ``name``, restricted to the attributes ``attrs`` (in schema order)."""
    import synthhealth as sh
    from synthhealth.schema import schema_from_dict

    schema = sh.load_schema(name)
    if not attrs:
        return schema
    doc = schema.to_dict()
    keep = set(attrs)
    doc["attributes"] = [a for a in doc["attributes"] if a["name"] in keep]
    doc["name"] = f"{doc['name']}-{len(doc['attributes'])}"
    return schema_from_dict(doc)


def worker(job_path: str) -> None:
    """Child side: fit one synthhealth generator and write ``result.json`` (+ sample codes)."""
    # A parent started in the background (nohup, `&`) passes SIGINT on as ignored, and Python then
    # keeps ignoring it: restore the KeyboardInterrupt that the parent's timeout relies on.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    job = FitJob(**json.loads(Path(job_path).read_text()))
    out_dir = Path(job.out_dir)
    t0 = time.perf_counter()
    import numpy as np
    import pandas as pd

    import synthhealth as sh
    from synthhealth.transform.encode import Encoder

    import_s = time.perf_counter() - t0
    peak_imports = peak_rss_mb()
    sources = fingerprint(source_hashes())
    schema = _schema_for(job.schema, job.attrs)
    table = pd.read_parquet(job.train)
    if job.attrs:
        table = table[list(schema.names)]
    # benchmark tables are resampled stand-in rows without patient ids: each row is one (stand-in) patient
    table = sh.read_table(table, schema, one_row_per_patient=True)
    cls = {"aim": sh.AIM, "mst": sh.MST}[job.method]
    caught: list[str] = []
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", sh.InsecureRandomnessWarning)  # seeded on purpose: a benchmark
        gen = cls(epsilon=job.epsilon, delta=job.delta, random_state=job.seed, **job.params)
        t1 = time.perf_counter()
        interrupted = False
        try:
            gen.fit(table, schema=schema)
        except KeyboardInterrupt:  # the parent's timeout: report how far the fit got
            interrupted = True
        fit_s = time.perf_counter() - t1
        peak_fit = peak_rss_mb()
        samples: dict[str, str] = {}
        sample_s = math.nan
        if job.n_sample > 0 and not interrupted:
            t1 = time.perf_counter()
            syn = gen.sample(job.n_sample, random_state=job.seed)
            sample_s = time.perf_counter() - t1
            np.save(out_dir / "sample.npy", Encoder(schema).encode(syn))
            samples["default"] = "sample.npy"
        for w in record:
            text = f"{w.category.__name__}: {str(w.message).splitlines()[0][:160]}"
            if text not in caught:
                caught.append(text)
    info: dict[str, Any] = {"sources": sources, "spent": str(gen.ledger_.total()),
                            "rows": len(table), "attributes": len(schema),
                            "import_s": import_s, "peak_fit_mb": peak_fit, "interrupted": interrupted,
                            "rho_spent_fraction": gen.ledger_.spent_rho() / gen.budget_.rho,
                            "measurements": len(gen.ledger_.entries)}
    if job.method == "aim":
        info["rounds"] = int(getattr(gen, "rounds_", -1))
        if not interrupted:
            info["selected"] = [list(r) for r in gen.selected_]
            info["model_cliques"] = [list(c) for c in gen.model_.cliques]
    elif not interrupted:
        info["tree"] = [list(e) for e in gen.tree_]
    result = {"fit_s": fit_s, "sample_s": sample_s, "peak_mb": peak_rss_mb(), "peak_imports_mb": peak_imports,
              "ru_maxrss_mb": ru_maxrss_mb(), "info": info, "samples": samples, "warnings": caught}
    (out_dir / "result.json").write_text(json.dumps(result, indent=1, default=str))


def run_job(job: FitJob, timeout_s: float, python: str | None = None) -> FitResult:
    """Run ``job`` in a fresh subprocess and collect its result (errors and timeouts recorded)."""
    out = Path(job.out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "job.json").write_text(json.dumps(asdict(job), indent=1))
    if job.engine == "synthhealth":
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(out / "job.json")]
    else:
        cmd = [python or "python3", str(SN_DRIVER), str(out / "job.json")]
    env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    res = FitResult(job=job, load_before=os.getloadavg()[0])
    t0 = time.perf_counter()
    timed_out = False
    with open(out / "stdout.txt", "wb") as so, open(out / "stderr.txt", "wb") as se:
        proc = subprocess.Popen(cmd, stdout=so, stderr=se, env=env, cwd=REPO_DIR)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.send_signal(signal.SIGINT)  # synthhealth's worker then reports how far the fit got
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    res.wall_s = time.perf_counter() - t0
    result_file = out / "result.json"
    if timed_out:
        res.error = f"timed out after {timeout_s:,.0f} s"
        if result_file.exists():
            doc = json.loads(result_file.read_text())
            info = doc.get("info", {})
            res.info |= info
            res.peak_mb = doc.get("peak_mb", math.nan)
            res.peak_imports_mb = doc.get("peak_imports_mb", math.nan)
            res.error += (f" (had spent {100 * info.get('rho_spent_fraction', math.nan):.0f} % of ρ in "
                          f"{info.get('rounds', '?')} rounds)" if job.method == "aim" else "")
        return res
    if proc.returncode != 0 or not result_file.exists():
        tail = (out / "stderr.txt").read_text(errors="replace").strip().splitlines()[-3:]
        res.error = f"exit {proc.returncode}: " + " | ".join(tail)
        return res
    doc = json.loads(result_file.read_text())
    res.fit_s = doc["fit_s"]
    res.sample_s = doc.get("sample_s", math.nan)
    res.peak_mb = doc["peak_mb"]
    res.peak_imports_mb = doc.get("peak_imports_mb", math.nan)
    res.ru_maxrss_mb = doc.get("ru_maxrss_mb", math.nan)
    res.samples = {k: str(out / v) for k, v in doc.get("samples", {}).items()}
    res.warnings = doc.get("warnings", [])
    res.info = doc.get("info", {}) | {k: doc[k] for k in ("cardinality", "versions", "import_s") if k in doc}
    return res


# ================================================================================ data
@dataclass
class Split:
    """A train/test split: tables in schema form on disk and integer codes in memory."""

    name: str
    schema_name: str
    names: tuple[str, ...]
    shape: tuple[int, ...]
    train_path: Path
    train_codes_csv: Path
    train: np.ndarray
    test: np.ndarray


def _write_split(name: str, schema: Any, table: pd.DataFrame, label: str, test_size: float) -> Split:
    """Stratified split of ``table`` on ``label`` (seed 0), written under ``DATA_DIR``."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    from synthhealth.transform.encode import Encoder

    train, test = train_test_split(table, test_size=test_size, stratify=table[label].astype(str), random_state=0)
    enc = Encoder(schema)
    tr_codes, te_codes = enc.encode(train), enc.encode(test)
    train_path = DATA_DIR / f"{name}-train.parquet"
    train.reset_index(drop=True).to_parquet(train_path)
    codes_csv = DATA_DIR / f"{name}-train-codes.csv"
    pd.DataFrame(tr_codes, columns=list(enc.names)).to_csv(codes_csv, index=False)
    return Split(name, schema.name, enc.names, enc.shape, train_path, codes_csv, tr_codes, te_codes)


def load_flchain_split() -> Split:
    """flchain, stratified 70/30 on death with seed 0 (5,511 train / 2,363 test), as in the anchors."""
    import synthhealth as sh

    schema = sh.load_schema("flchain")
    table = sh.read_table(sh.datasets.load_flchain(), schema)
    return _write_split("flchain", schema, table, FLCHAIN_LABEL, 0.3)


def load_synthea_table(refresh: bool = False) -> pd.DataFrame:
    """The flattened Synthea set (615 patients × 51 core-patient attributes), cached as parquet."""
    import pandas as pd

    import synthhealth as sh

    schema = sh.load_schema("core-patient")
    cache = DATA_DIR / f"core-patient-synthea615-{schema.hash[:12]}.parquet"
    if cache.exists() and not refresh:
        return sh.read_table(pd.read_parquet(cache), schema)
    log(f"flattening {SYNTHEA_BUNDLES} (cached afterwards in {cache.relative_to(REPO_DIR)})")
    # Synthea's driver's licence numbers are random (two of the 615 share one): person-unique systems only
    table = sh.flatten(str(SYNTHEA_BUNDLES), schema, identifier_systems=(
        "https://github.com/synthetichealth/synthea", "http://hospital.smarthealthit.org",
        "http://hl7.org/fhir/sid/us-ssn"))
    table.to_parquet(cache)
    return table


def resampled_parquet(name: str, table: pd.DataFrame, rows: int) -> Path:
    """``rows`` rows drawn with replacement from ``table`` (seed 0), cached as parquet."""
    path = DATA_DIR / f"{name}-resample-{rows}.parquet"
    if not path.exists():
        table.sample(n=rows, replace=True, random_state=0).reset_index(drop=True).to_parquet(path)
    return path


# ================================================================================ scoring
def marginal_tvds(a: np.ndarray, b: np.ndarray, shape: Sequence[int], k: int) -> np.ndarray:
    """TVD between the k-way marginals of code matrices ``a`` and ``b`` over the full public domain."""
    import numpy as np

    out = []
    for cols in itertools.combinations(range(len(shape)), k):
        dims = tuple(int(shape[c]) for c in cols)
        size = int(np.prod(dims))
        pa = np.bincount(np.ravel_multi_index(tuple(a[:, c] for c in cols), dims), minlength=size) / len(a)
        pb = np.bincount(np.ravel_multi_index(tuple(b[:, c] for c in cols), dims), minlength=size) / len(b)
        out.append(0.5 * float(np.abs(pa - pb).sum()))
    return np.asarray(out)


def tvd_summary(a: np.ndarray, b: np.ndarray, shape: Sequence[int]) -> dict[str, float]:
    """Mean and max TVD over all 1-way and all 2-way marginals."""
    one, two = marginal_tvds(a, b, shape, 1), marginal_tvds(a, b, shape, 2)
    return {"tvd1_mean": float(one.mean()), "tvd1_max": float(one.max()),
            "tvd2_mean": float(two.mean()), "tvd2_max": float(two.max())}


def tstr_auroc(train: np.ndarray, test: np.ndarray, names: Sequence[str], shape: Sequence[int], label: str,
               features: Sequence[str]) -> dict[str, float]:
    """AUROC on the real ``test`` codes of LR (one-hot bins) and HGB (bin codes) trained on ``train``.

    NaN when the training sample holds a single class.
    """

    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # OpenMP on 2 busy cores is ~10x slower than 1 thread here
        return _tstr(train, test, names, shape, label, features)


def _tstr(train: np.ndarray, test: np.ndarray, names: Sequence[str], shape: Sequence[int], label: str,
          features: Sequence[str]) -> dict[str, float]:
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import OneHotEncoder

    j = list(names).index(label)
    fj = [list(names).index(f) for f in features]
    y_tr, y_te = train[:, j], test[:, j]
    if len(np.unique(y_tr)) < 2:
        return {"auc_lr": math.nan, "auc_hgb": math.nan}
    x_tr, x_te = train[:, fj], test[:, fj]
    onehot = OneHotEncoder(categories=[list(range(int(shape[c]))) for c in fj], handle_unknown="ignore")
    lr = LogisticRegression(max_iter=2000).fit(onehot.fit_transform(x_tr), y_tr)
    auc_lr = roc_auc_score(y_te, lr.predict_proba(onehot.transform(x_te))[:, 1])
    hgb = HistGradientBoostingClassifier(random_state=0).fit(x_tr, y_tr)
    auc_hgb = roc_auc_score(y_te, hgb.predict_proba(x_te)[:, 1])
    return {"auc_lr": float(auc_lr), "auc_hgb": float(auc_hgb)}


def load_sample(path: str) -> np.ndarray:
    """Sample codes written by a child (``.npy`` from synthhealth, ``.csv`` from smartnoise)."""
    import numpy as np
    import pandas as pd

    if path.endswith(".npy"):
        return np.load(path)
    return pd.read_csv(path).to_numpy(dtype=np.int64)


@dataclass
class Row:
    """One scored sample: a fit (method, ε, seed) and one of its samples."""

    label: str
    epsilon: float
    seed: int
    fit_s: float
    peak_mb: float
    scores: dict[str, float]
    error: str | None = None


def score_result(res: FitResult, label: str, variant: str, split: Split, task: tuple[str, Sequence[str]]) -> Row:
    """Score one sample of a fit against ``split`` (TVD vs the training split, TSTR on the test split)."""
    row = Row(label, res.job.epsilon, res.job.seed, res.fit_s, res.peak_mb, {}, res.error)
    if res.error is None and variant in res.samples:
        syn = load_sample(res.samples[variant])
        row.scores = tvd_summary(syn, split.train, split.shape)
        row.scores |= tstr_auroc(syn, split.test, split.names, split.shape, task[0], task[1])
    elif res.error is None:
        row.error = f"no {variant} sample"
    return row


# ================================================================================ formatting
def _fmt(values: Sequence[float], digits: int, strip_zero: bool = False) -> str:
    """``mean ± sd`` of the finite ``values`` (just the value for one; ``—`` for none)."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return "—"

    def f(x: float) -> str:
        s = f"{x:,.{digits}f}"
        return s[1:] if strip_zero and s.startswith("0.") else s

    if len(vals) == 1:
        return f(vals[0])
    return f"{f(statistics.fmean(vals))} ± {f(statistics.stdev(vals))}"


def _seeds(n: int) -> str:
    return "seed 0" if n == 1 else f"seeds 0–{n - 1}"


def _eps(e: float) -> str:
    return f"{e:g}"


def utility_table(rows: Sequence[Row], extra: Sequence[str] = ()) -> list[str]:
    """Markdown table, one line per (label, ε): mean ± sd over seeds."""
    lines = ["| method | ε | seeds | fit s | peak MB | 1-way TVD mean / max | 2-way TVD mean / max | "
             "TSTR AUROC LR / HGB |", "|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple[str, float], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.label, r.epsilon), []).append(r)
    for (label, eps), rs in groups.items():
        ok = [r for r in rs if r.error is None]
        errors = [f"seed {r.seed}: {r.error}" for r in rs if r.error is not None]
        if not ok:
            lines.append(f"| {label} | {_eps(eps)} | 0/{len(rs)} | failed: {'; '.join(errors)[:200]} | | | | |")
            continue

        def col(key: str, rs: list[Row] = ok) -> list[float]:
            return [r.scores.get(key, math.nan) for r in rs]

        seeds = f"{len(ok)}" if not errors else f"{len(ok)}/{len(rs)}"
        lines.append(
            f"| {label} | {_eps(eps)} | {seeds} | {_fmt([r.fit_s for r in ok], 1)} | {_fmt([r.peak_mb for r in ok], 0)}"
            f" | {_fmt(col('tvd1_mean'), 3, True)} / {_fmt(col('tvd1_max'), 3, True)}"
            f" | {_fmt(col('tvd2_mean'), 3, True)} / {_fmt(col('tvd2_max'), 3, True)}"
            f" | {_fmt(col('auc_lr'), 3, True)} / {_fmt(col('auc_hgb'), 3, True)} |")
    lines.extend(extra)
    return lines


def reference_rows(split: Split, task: tuple[str, Sequence[str]]) -> tuple[list[str], dict[str, float]]:
    """Table lines for train-on-real and the sampling-noise floor, and their figures."""
    real = tstr_auroc(split.train, split.test, split.names, split.shape, task[0], task[1])
    floor = tvd_summary(split.test, split.train, split.shape)
    lines = [
        f"| train on real (no privacy) | — | — | — | — | — | — | {_fmt([real['auc_lr']], 3, True)} / "
        f"{_fmt([real['auc_hgb']], 3, True)} |",
        f"| sampling-noise floor: real test vs real train | — | — | — | — | "
        f"{_fmt([floor['tvd1_mean']], 3, True)} / {_fmt([floor['tvd1_max']], 3, True)} | "
        f"{_fmt([floor['tvd2_mean']], 3, True)} / "
        f"{_fmt([floor['tvd2_max']], 3, True)} | — |",
    ]
    return lines, real | floor


def anchor_table() -> list[str]:
    """The results table of ``../shared/anchors/flchain.md``, verbatim (empty when the file is missing)."""
    if not ANCHORS_MD.exists():
        return [f"(anchor file {ANCHORS_MD} not found)"]
    lines, inside = [], False
    for line in ANCHORS_MD.read_text(encoding="utf-8").splitlines():
        if line.startswith("## Results"):
            inside = True
            continue
        if inside and line.startswith("## "):
            break
        if inside and line.startswith("|"):
            lines.append(line)
        elif inside and line.strip() and not line.startswith("TVD is") and not line.startswith("Peak RSS"):
            lines.append(("\n" if lines and lines[-1].startswith("|") else "") + line)
    return lines


def _group_mean(rows: Sequence[Row], label: str, eps: float, key: str) -> float:
    vals = [r.scores.get(key, math.nan) if key in r.scores else getattr(r, key, math.nan)
            for r in rows if r.label == label and r.epsilon == eps and r.error is None]
    vals = [v for v in vals if math.isfinite(v)]
    return statistics.fmean(vals) if vals else math.nan


def verdict(rows: Sequence[Row], epsilons: Sequence[float]) -> list[str]:
    """One line per target of the issue and synthhealth method (means over seeds)."""
    out = ["| method | target | measured | verdict |", "|---|---|---|---|"]
    for label in OUR_METHODS.values():
        # (text, measured, limit, higher is better, format)
        checks: list[tuple[str, float, float, bool, str]] = []
        for eps, target in TARGET_TVD2.items():
            if eps in epsilons:
                checks.append((f"mean 2-way TVD ≤ {target:.3f} at ε = {_eps(eps)}",
                               _group_mean(rows, label, eps, "tvd2_mean"), target, False, ".3f"))
        if 1.0 in epsilons:
            for key, name in (("auc_lr", "LR"), ("auc_hgb", "HGB")):
                checks.append((f"TSTR AUROC {name} ≥ {TARGET_AUROC_EPS1} at ε = 1",
                               _group_mean(rows, label, 1.0, key), TARGET_AUROC_EPS1, True, ".3f"))
        for eps in epsilons:
            checks.append((f"fit ≤ {TARGET_FIT_S:g} s at ε = {_eps(eps)}", _group_mean(rows, label, eps, "fit_s"),
                           TARGET_FIT_S, False, ".1f"))
            checks.append((f"peak RSS ≤ {TARGET_PEAK_MB:g} MB at ε = {_eps(eps)}",
                           _group_mean(rows, label, eps, "peak_mb"), TARGET_PEAK_MB, False, ",.0f"))
        for text, value, limit, higher, fmt in checks:
            if not math.isfinite(value):
                out.append(f"| {label} | {text} | — | not measured |")
                continue
            ok = value >= limit if higher else value <= limit
            out.append(f"| {label} | {text} | {value:{fmt}} | {'PASS' if ok else 'FAIL'} |")
    return out


# ================================================================================ smartnoise venv
def ensure_smartnoise(refresh: bool = False) -> tuple[str | None, str]:
    """Make (once) the smartnoise virtualenv; returns (its python or None, a note for the report)."""
    py = SN_VENV / "bin" / "python"
    marker = SN_VENV / ".bench-ready"
    if py.exists() and marker.exists() and not refresh:
        return str(py), marker.read_text().strip()
    if SN_VENV.exists():
        shutil.rmtree(SN_VENV)
    log(f"making {SN_VENV.relative_to(REPO_DIR)}: {SN_TORCH} first, then {SN_PACKAGE} (a few minutes)")
    deadline = time.monotonic() + SN_INSTALL_LIMIT_S
    logfile = SN_VENV.parent / "venv-smartnoise-install.log"
    steps = [[sys.executable, "-m", "venv", str(SN_VENV)],
             [str(py), "-m", "pip", "install", SN_TORCH],
             [str(py), "-m", "pip", "install", SN_PACKAGE]]
    with open(logfile, "w") as fh:
        for cmd in steps:
            left = deadline - time.monotonic()
            try:
                proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=max(left, 1), check=False)
            except subprocess.TimeoutExpired:
                return None, f"installing smartnoise took over {SN_INSTALL_LIMIT_S:.0f} s (log: {logfile})"
            if proc.returncode != 0:
                return None, f"`{' '.join(cmd[-3:])}` failed (exit {proc.returncode}; log: {logfile})"
    probe = subprocess.run([str(py), "-c", "import snsynth, mbi, opacus, torch; from importlib.metadata import "
                            "version as v; print(', '.join(p + ' ' + v(p) for p in ('smartnoise-synth', 'mbi', "
                            "'opacus', 'torch', 'numpy', 'jax')))"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return None, f"smartnoise installed but does not import: {probe.stderr.strip().splitlines()[-1:]}"
    note = probe.stdout.strip()
    if "torch 2.13.0" not in note:
        note += " (WARNING: smartnoise's pins replaced torch 2.13.0)"
    marker.write_text(note)
    return str(py), note


# ================================================================================ report
class Report:
    """Collects the printed lines of the report."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def emit(self, *lines: str) -> None:
        """Print lines to stdout and keep them for the saved report."""
        for line in lines:
            print(line, flush=True)
            self.lines.append(line)


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _git_rev() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True,
                             check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "synthhealth"], cwd=REPO_DIR,
                               capture_output=True, text=True, check=False).stdout.strip()
        return rev + (" + uncommitted changes under synthhealth/" if dirty else "")
    except OSError:
        return "?"


def source_hashes() -> dict[str, str]:
    """sha256 of each ``.py`` file of the package (other people edit them while this runs)."""
    import hashlib

    return {str(p.relative_to(REPO_DIR)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((REPO_DIR / "synthhealth").rglob("*.py"))}


def fingerprint(hashes: dict[str, str]) -> str:
    """One short hash of :func:`source_hashes`."""
    import hashlib

    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()[:12]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",") if x.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command line (``--quick`` changes the defaults of the options left unset)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 seed, no peers, small Synthea grid and scaling")
    p.add_argument("--no-peers", action="store_true", help="skip smartnoise-synth")
    p.add_argument("--seeds", type=int, default=None, help="seeds of our generators (default 3; 1 with --quick)")
    p.add_argument("--epsilons", type=_floats, default=_floats("0.5,1,4"), help="flchain ε grid (default 0.5,1,4)")
    p.add_argument("--peer-epsilons", type=_floats, default=_floats("1,4"),
                   help="ε of the smartnoise fits (default 1,4 with 1 seed: the full grid would exceed 30 min, "
                        "smartnoise AIM takes 3-5 min a fit)")
    p.add_argument("--peer-seeds", type=int, default=1, help="seeds of the smartnoise fits (default 1)")
    p.add_argument("--peers", default="mst,aim", help="smartnoise synthesizers (default mst,aim)")
    p.add_argument("--synthea-epsilons", type=_floats, default=None,
                   help="ε grid on the Synthea set (default 1,4,10,30; 1,10 with --quick)")
    p.add_argument("--synthea-seeds", type=int, default=None, help="seeds on the Synthea set (default: --seeds)")
    p.add_argument("--rows", type=_ints, default=None,
                   help="row counts of the speed test (default 10000,100000,1000000; 10000 with --quick)")
    p.add_argument("--attrs", type=_ints, default=None,
                   help="attribute counts (core-patient prefixes on the 615 Synthea patients) of the speed test "
                        "(default 11,21,31,41,51; 51 with --quick)")
    p.add_argument("--attrs-rows", type=_ints, default=None,
                   help="also fit the full core-patient schema on the Synthea patients resampled to these row "
                        "counts (default 10000; none with --quick)")
    p.add_argument("--scaling-timeout", type=float, default=300.0,
                   help="seconds allowed per scaling fit (default 300; the fit is interrupted and reported)")
    p.add_argument("--no-diagnostics", action="store_true",
                   help="skip the diagnostic flchain variant (AIM with an all-2-way workload)")
    p.add_argument("--sections", default="flchain,synthea,scaling",
                   help="sections to run, comma-separated (default flchain,synthea,scaling)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per fit (default 1800)")
    p.add_argument("--refresh", action="store_true", help="rebuild cached data and the smartnoise virtualenv")
    p.add_argument("--save", nargs="?", const="auto", default=None,
                   help="write the report (default path bench/results/marginals-<date>.md; on unless --quick)")
    p.add_argument("--no-save", action="store_true", help="do not write the report")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.seeds is None:
        args.seeds = 1 if args.quick else 3
    if args.quick:
        args.no_peers = True
    if args.synthea_epsilons is None:
        args.synthea_epsilons = [1.0, 10.0] if args.quick else [1.0, 4.0, 10.0, 30.0]
    if args.synthea_seeds is None:
        args.synthea_seeds = args.seeds
    if args.rows is None:
        args.rows = [10_000] if args.quick else [10_000, 100_000, 1_000_000]
    if args.attrs_rows is None:
        args.attrs_rows = [] if args.quick else [10_000]
    if args.attrs is None:
        args.attrs = [51] if args.quick else [11, 21, 31, 41, 51]
    if args.save is None and not args.quick:
        args.save = "auto"
    if args.no_save:
        args.save = None
    return args


def _header(rep: Report, args: argparse.Namespace) -> None:
    import sklearn

    import synthhealth as sh

    rep.emit(
        f"# Marginal-based DP synthesizers on flchain and Synthea ({_dt.date.today().isoformat()})",
        "",
        f"- command: `python bench/{Path(__file__).name} {' '.join(sys.argv[1:])}`".replace("  ", " "),
        f"- synthhealth {sh.__version__} at {_git_rev()} (sources `{args.fingerprint}`: sha256 of "
        f"synthhealth/**/*.py); Python {platform.python_version()}; scikit-learn {sklearn.__version__}",
        f"- machine: {os.cpu_count()} CPUs, {platform.platform()}; no thread pinning (all methods get the same "
        "environment: both cores, default BLAS threads)",
        f"- load at start: `{_uptime()}`",
        "- every fit runs in a fresh subprocess; **fit s** is the wall time of `fit()` alone; **peak MB** is the "
        "child's peak RSS (`VmHWM`, MiB) including imports. `getrusage(RUSAGE_SELF).ru_maxrss` is recorded too "
        "(raw JSON) but is not used: Linux carries the parent's high-water mark over fork/exec into it.",
        f"- δ = {DELTA:g} everywhere; synthhealth fits are seeded (`random_state=seed`, not for release); the sample "
        "has as many rows as the training split.",
        "",
    )


def _progress(done: int, total: int, what: str, res: FitResult) -> None:
    status = res.error or f"fit {res.fit_s:.1f} s, peak {res.peak_mb:,.0f} MB"
    log(f"[{done}/{total}] {what}: {status}")


def section_flchain(rep: Report, args: argparse.Namespace, raw: dict[str, Any]) -> None:
    """flchain utility: ours over the ε grid and seeds, smartnoise peers, reference rows, verdict."""
    split = load_flchain_split()
    task = (FLCHAIN_LABEL, FLCHAIN_FEATURES)
    rows: list[Row] = []
    results: list[FitResult] = []
    variants: list[tuple[str, str, str, dict[str, Any]]] = [(m, m, label, {}) for m, label in OUR_METHODS.items()]
    if not args.no_diagnostics:
        pairs = [list(p) for p in itertools.combinations(split.names, 2)]
        variants.append(("aim2", "aim", AIM_2WAY_LABEL, {"workload": pairs}))
    jobs = [(v, e, s) for e in args.epsilons for v in variants for s in range(args.seeds)]
    for i, ((key, method, label, params), eps, seed) in enumerate(jobs, 1):
        job = FitJob("synthhealth", method, eps, seed, str(split.train_path), "flchain", len(split.train),
                     str(DATA_DIR / "runs" / f"flchain-{key}-eps{_eps(eps)}-seed{seed}"), params=params)
        res = run_job(job, args.timeout)
        res.info["label"] = label
        _progress(i, len(jobs), f"{label} ε={_eps(eps)} seed {seed}", res)
        results.append(res)
        rows.append(score_result(res, label, "default", split, task))

    peer_notes: list[str] = []
    noted: set[str] = set()
    if not args.no_peers:
        python, note = ensure_smartnoise(args.refresh)
        if python is None:
            peer_notes.append(f"- smartnoise-synth could not be run: {note}. Its figures below are the anchors' "
                              "(**anchor (not re-measured)**).")
        else:
            peer_notes.append(f"- smartnoise virtualenv `{SN_VENV.relative_to(REPO_DIR)}`: {note}.")
            peers = [p.strip() for p in args.peers.split(",") if p.strip()]
            pjobs = [(m, e, s) for e in args.peer_epsilons for m in peers for s in range(args.peer_seeds)]
            for i, (method, eps, seed) in enumerate(pjobs, 1):
                job = FitJob("smartnoise", method, eps, seed, str(split.train_codes_csv), "flchain",
                             len(split.train), str(DATA_DIR / "runs" / f"flchain-sn{method}-eps{_eps(eps)}-seed{seed}"))
                res = run_job(job, args.timeout, python)
                _progress(i, len(pjobs), f"smartnoise {method} ε={_eps(eps)} seed {seed}", res)
                results.append(res)
                for variant in ("default", "resampled"):
                    rows.append(score_result(res, PEER_LABELS[(method, variant)], variant, split, task))
                if res.error is None and "cardinality" in res.info:
                    taken = dict(zip(split.names, res.info["cardinality"], strict=True))
                    public = dict(zip(split.names, split.shape, strict=True))
                    diff = [f"{a} {taken[a]} of {public[a]}" for a in split.names if taken[a] != public[a]]
                    seen = (f"states seen vs public states (bins + the schema's missing state): {', '.join(diff)}"
                            if diff else "every public state occurs in the data")
                    msg = (f"- smartnoise {method} (ε = {_eps(eps)}, seed {seed}) took its category sets from the "
                           f"private training data (free, no warning): {len(split.names)} columns, {seen}")
                    if method not in noted:
                        noted.add(method)
                        peer_notes.append(msg)
                for w in res.warnings:
                    text = f"- smartnoise {method} warned: `{w}`"
                    if text not in peer_notes:
                        peer_notes.append(text)

    ref_lines, ref = reference_rows(split, task)
    rep.emit(f"## 1. flchain ({len(split.train):,} train / {len(split.test):,} test, {len(split.names)} columns, "
             "anchor bins)", "",
             "TVD: synthetic sample vs the binned training split, over all 1-way and 2-way marginals. TSTR: predict "
             f"`{FLCHAIN_LABEL}` from {', '.join(FLCHAIN_FEATURES)} (binned), tested on the real 30 %. "
             f"Mean ± sd over seeds; our generators: {_seeds(args.seeds)}; " + (
                 f"smartnoise: {_seeds(args.peer_seeds)} at ε ∈ {{{', '.join(map(_eps, args.peer_epsilons))}}} "
                 "(smartnoise AIM takes 3-5 min a fit here, so the full 3 × 3 grid would take well over 30 min)."
                 if not args.no_peers else "smartnoise peers skipped (--no-peers/--quick)."), "")
    rep.emit(*utility_table(rows, ref_lines), "")
    if peer_notes:
        rep.emit(*peer_notes, "- smartnoise draws its Gaussian noise from OpenDP (not seedable): its seed only "
                 "seeds selection and sampling. mbi 1.1's default sampler (`method=\"round\"`) does not shuffle rows "
                 "inside parent groups; the re-sampled rows sample the same fitted model i.i.d.", "")
    extra = []
    for res in results:
        if res.job.engine == "synthhealth" and res.error is None and res.job.seed == 0:
            what = (f"{res.info.get('rounds')} rounds, selected {len(res.info.get('selected', []))} marginals, "
                    f"model cliques {res.info.get('model_cliques')}") if res.job.method == "aim" \
                else f"tree {res.info.get('tree')}"
            extra.append(f"- {res.info['label']} ε = {_eps(res.job.epsilon)} seed 0: {what}; spent "
                         f"{res.info.get('spent')}")
            if res.warnings:
                extra.append(f"  - warnings: {'; '.join(res.warnings)}")
    rep.emit("<details><summary>models fitted (seed 0)</summary>", "", *extra, "", "</details>", "")
    rep.emit("### Targets (synthhealth, means over seeds)", "", *verdict(rows, args.epsilons), "",
             f"Reference: train-on-real AUROC {ref['auc_lr']:.3f} / {ref['auc_hgb']:.3f}; noise floor 2-way TVD "
             f"{ref['tvd2_mean']:.3f} (anchors: .837 / .824 and .050).", "")
    raw["flchain"] = {"rows": [asdict(r) for r in rows], "fits": [_raw_fit(r) for r in results], "reference": ref}


def _raw_fit(res: FitResult) -> dict[str, Any]:
    d = asdict(res)
    d["info"] = {k: v for k, v in res.info.items() if k not in ("selected", "model_cliques", "tree")} | \
        {k: res.info[k] for k in ("selected", "tree") if k in res.info}
    return d


def section_synthea(rep: Report, args: argparse.Namespace, raw: dict[str, Any]) -> None:
    """Synthea (615 patients, 51 attributes): which ε gives useful output."""
    import synthhealth as sh

    schema = sh.load_schema("core-patient")
    table = load_synthea_table(args.refresh)
    split = _write_split("synthea", schema, table, SYNTHEA_LABEL, 0.5)
    task = (SYNTHEA_LABEL, SYNTHEA_FEATURES)
    rows: list[Row] = []
    results: list[FitResult] = []
    jobs = [(m, e, s) for e in args.synthea_epsilons for m in OUR_METHODS for s in range(args.synthea_seeds)]
    for i, (method, eps, seed) in enumerate(jobs, 1):
        job = FitJob("synthhealth", method, eps, seed, str(split.train_path), "core-patient", len(split.train),
                     str(DATA_DIR / "runs" / f"synthea-{method}-eps{_eps(eps)}-seed{seed}"))
        res = run_job(job, args.timeout)
        _progress(i, len(jobs), f"Synthea {OUR_METHODS[method]} ε={_eps(eps)} seed {seed}", res)
        results.append(res)
        rows.append(score_result(res, OUR_METHODS[method], "default", split, task))
    ref_lines, ref = reference_rows(split, task)
    n_pairs = len(split.names) * (len(split.names) - 1) // 2
    rep.emit(f"## 2. Synthea: flattened core-patient set ({len(table)} patients, {len(split.names)} attributes)", "",
             f"Stratified 50/50 split on `{SYNTHEA_LABEL}` (seed 0): {len(split.train)} train / {len(split.test)} "
             f"test. TVD over all {len(split.names)} 1-way and {n_pairs:,} 2-way marginals vs the training half; "
             f"TSTR: `{SYNTHEA_LABEL}` from {', '.join(SYNTHEA_FEATURES)}. AIM's default workload here is every "
             "2-way marginal (d > 15). Mean ± sd over seeds.", "")
    rep.emit(*utility_table(rows, ref_lines), "")
    tvd_limit = SYNTHEA_USEFUL_FACTOR * ref["tvd2_mean"]
    auc_limit = ref["auc_lr"] - SYNTHEA_AUROC_GAP

    def smallest(ok: Callable[[float], bool]) -> str:
        eps = [e for e in args.synthea_epsilons if ok(e)]
        return f"**ε = {_eps(min(eps))}**" if eps else "none of the grid"

    useful = []
    for label in OUR_METHODS.values():
        tvd_ok = smallest(lambda e, lb=label: _group_mean(rows, lb, e, "tvd2_mean") <= tvd_limit)
        auc_ok = smallest(lambda e, lb=label: _group_mean(rows, lb, e, "auc_lr") >= auc_limit)
        both = smallest(lambda e, lb=label: _group_mean(rows, lb, e, "tvd2_mean") <= tvd_limit
                        and _group_mean(rows, lb, e, "auc_lr") >= auc_limit)
        useful.append(f"| {label} | {tvd_ok} | {auc_ok} | {both} |")
    rep.emit("Smallest ε of the grid that gives useful output (means over seeds):", "",
             f"| method | mean 2-way TVD ≤ {SYNTHEA_USEFUL_FACTOR:g} × floor ({tvd_limit:.3f}) | TSTR AUROC LR ≥ "
             f"train-on-real − {SYNTHEA_AUROC_GAP:g} ({auc_limit:.3f}) | both |", "|---|---|---|---|", *useful, "")
    warn = sorted({w for r in results for w in r.warnings})
    if warn:
        rep.emit("Warnings raised by the fits: " + "; ".join(f"`{w}`" for w in warn), "")
    raw["synthea"] = {"rows": [asdict(r) for r in rows], "fits": [_raw_fit(r) for r in results], "reference": ref}


def section_scaling(rep: Report, args: argparse.Namespace, raw: dict[str, Any]) -> None:
    """Fit time and peak RSS vs rows (flchain resampled) and vs attributes (core-patient)."""
    import synthhealth as sh

    fl_schema = sh.load_schema("flchain")
    flchain = sh.read_table(sh.datasets.load_flchain(), fl_schema)
    cases: list[tuple[str, str, int, int, str, list[str] | None]] = []  # (table, schema, rows, d, path, attrs)
    for n in args.rows:
        path = resampled_parquet("flchain", flchain, n)
        cases.append(("flchain resampled", "flchain", n, len(fl_schema), str(path), None))
    cp_schema = sh.load_schema("core-patient")
    synthea = load_synthea_table(args.refresh).reset_index(drop=True)
    cp_path = DATA_DIR / "synthea-all.parquet"
    synthea.to_parquet(cp_path)
    names = list(cp_schema.names)
    for d in args.attrs:
        cases.append(("Synthea core-patient", "core-patient", len(synthea), d, str(cp_path),
                      names[:d] if d < len(names) else None))
    for n in args.attrs_rows:
        path = resampled_parquet(f"core-patient-{cp_schema.hash[:12]}", synthea, n)
        cases.append(("Synthea core-patient resampled", "core-patient", n, len(names), str(path), None))
    results: list[FitResult] = []
    total = len(cases) * len(OUR_METHODS)
    k = 0
    for what, schema_name, n, d, path, attrs in cases:
        for method in OUR_METHODS:
            k += 1
            job = FitJob("synthhealth", method, 1.0, 0, path, schema_name, 0,
                         str(DATA_DIR / "runs" / f"scale-{schema_name}-{n}-{d}-{method}"), attrs=attrs)
            res = run_job(job, args.scaling_timeout)
            res.info |= {"case": what, "rows": n, "attributes": d}
            _progress(k, total, f"scaling {OUR_METHODS[method]} {what} n={n:,} d={d}", res)
            results.append(res)
    rep.emit("## 3. Scaling (speed test only: utility is not scored)", "",
             "ε = 1, δ = 1e-5, seed 0, one fit each, no sampling; each fit is stopped after "
             f"{args.scaling_timeout:,.0f} s. **Rows**: flchain's 7,874 rows resampled with replacement (seed 0), so "
             "these tables hold duplicates and say nothing about utility. **Attributes**: the first d attributes of "
             "the core-patient schema on the 615 flattened Synthea patients" + (
                 f" (and the full schema on them resampled to {', '.join(f'{n:,}' for n in args.attrs_rows)} rows)"
                 if args.attrs_rows else "") + ". AIM's default workload is every 3-way "
             "marginal for d ≤ 15 and every 2-way marginal above; its round budget is 16·d. Peak MB includes "
             "imports (about 110 MB); the next column is the part above the peak after imports.", "",
             "| table | rows | attributes | method | fit s | peak MB | above imports MB | model |",
             "|---|---|---|---|---|---|---|---|")
    for res in results:
        j = res.job
        n, d = res.info["rows"], res.info["attributes"]
        label = OUR_METHODS[j.method]
        if res.error is not None:
            rep.emit(f"| {res.info['case']} | {n:,} | {d} | {label} | {res.error} | {res.peak_mb:,.0f} | "
                     f"{res.peak_mb - res.peak_imports_mb:,.0f} | |")
            continue
        model = f"{res.info.get('rounds')} rounds" if j.method == "aim" else f"{len(res.info.get('tree', []))} edges"
        rep.emit(f"| {res.info['case']} | {n:,} | {d} | {label} | {res.fit_s:.1f} | {res.peak_mb:,.0f} | "
                 f"{res.peak_mb - res.peak_imports_mb:,.0f} | {model} |")
    rep.emit("")
    raw["scaling"] = [_raw_fit(r) for r in results]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or, with the hidden ``--worker``, one fit in a child process)."""
    args = parse_args(argv)
    if args.worker:
        worker(args.worker)
        return 0
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    rep = Report()
    started = time.perf_counter()
    start_hashes = source_hashes()
    args.fingerprint = fingerprint(start_hashes)
    raw: dict[str, Any] = {"args": {k: v for k, v in vars(args).items() if k != "worker"}}
    _header(rep, args)
    sections: dict[str, Callable[[Report, argparse.Namespace, dict[str, Any]], None]] = {
        "flchain": section_flchain, "synthea": section_synthea, "scaling": section_scaling}
    wanted = [x.strip() for x in args.sections.split(",") if x.strip()]
    unknown = [x for x in wanted if x not in sections]
    if unknown:
        raise SystemExit(f"unknown section(s) {unknown}: choose from {', '.join(sections)}")
    for name in sections:
        if name in wanted:
            log(f"section {name}")
            sections[name](rep, args, raw)
    rep.emit("## Anchors (from `../shared/anchors/flchain.md`, measured on a 2-core machine; not re-measured)", "",
             *anchor_table(), "")
    end_hashes = source_hashes()
    changed = sorted(p for p in set(start_hashes) | set(end_hashes) if start_hashes.get(p) != end_hashes.get(p))
    rep.emit(f"- load at end: `{_uptime()}`", f"- total run time: {(time.perf_counter() - started) / 60:.1f} min",
             f"- synthhealth sources at end: `{fingerprint(end_hashes)}`" + (
                 f" (**changed during the run**, by other developers: {', '.join(changed)}; each fit's raw JSON "
                 "holds the fingerprint of the sources it imported)" if changed else " (unchanged)"), "")
    if args.save:
        path = Path(args.save) if args.save != "auto" else \
            RESULTS_DIR / f"marginals-{_dt.date.today().isoformat()}{'-quick' if args.quick else ''}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(rep.lines) + "\n", encoding="utf-8")
        path.with_suffix(".json").write_text(json.dumps(raw, indent=1, default=str), encoding="utf-8")
        log(f"saved {path} and {path.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
