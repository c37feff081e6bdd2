"""Driver for smartnoise-synth, run by ``bench/marginals.py`` inside its own virtualenv.

Not a benchmark on its own: ``marginals.py`` makes the smartnoise virtualenv
(``bench/_data/venv-smartnoise``: torch 2.13.0 CPU, smartnoise-synth 1.0.8, which pins mbi < 2 and
opacus 0.14) and runs this file there, one fit per fresh process::

    venv-smartnoise/bin/python bench/_marginals_smartnoise.py JOB.json

``JOB.json`` holds ``method`` (``mst`` or ``aim``), ``epsilon``, ``delta``, ``seed``, ``train``
(a CSV of the training split already binned to synthhealth's public bins: one integer code per
cell), ``n_sample`` and ``out_dir``. Every column is passed to smartnoise as *categorical*, so
smartnoise works on our public bins; note that smartnoise then takes each column's set of
categories from the private data itself, for free and without a warning.

Two samples are written from the same fit, as CSV of codes in the same columns:

- ``sample-default.csv``: ``synth.sample(n)``, i.e. mbi 1.1's default ``method="round"`` sampler,
  which does not shuffle rows inside parent groups (spurious correlations, see the anchors);
- ``sample-resampled.csv``: the fitted mbi model sampled with ``method="sample"`` (i.i.d.), then
  decompressed (MST) and mapped back through smartnoise's transformer, as the anchors did.

``result.json`` gets the fit's wall time, the peak RSS (``VmHWM``; imports included), the
smartnoise domain sizes and package versions. ``np.random`` is seeded with ``seed``; this seeds
selection and sampling only: smartnoise draws its Gaussian noise from OpenDP, which cannot be seeded.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any


def _peak_mb() -> float:
    """Peak RSS of this process in MiB (``VmHWM``; see ``marginals.py`` for why not ``ru_maxrss``)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _to_codes(synth: Any, data: Any, columns: list[str], method: str) -> Any:
    """Map an mbi ``Dataset`` sampled from the fitted model back to our integer codes."""
    if method == "mst":
        data = synth.undo_compress_fn(data)
    df = data.df[["col" + str(i) for i in range(synth._transformer.output_width)]]
    rows = [tuple(t[1:]) for t in df.itertuples()]
    out = synth._transformer.inverse_transform(rows)
    out.columns = columns
    return out


def main(job_path: str) -> None:
    """Run one smartnoise fit described by ``job_path`` and write its samples and ``result.json``."""
    job = json.loads(Path(job_path).read_text())
    out_dir = Path(job["out_dir"])
    t_start = time.perf_counter()
    import numpy as np
    import pandas as pd
    from snsynth import Synthesizer

    import_s = time.perf_counter() - t_start
    peak_imports = _peak_mb()
    train = pd.read_csv(job["train"])
    columns = list(train.columns)
    np.random.seed(int(job["seed"]))
    caught: list[str] = []
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        synth = Synthesizer.create(job["method"], epsilon=float(job["epsilon"]), delta=float(job["delta"]))
        t0 = time.perf_counter()
        synth.fit(train, categorical_columns=columns, preprocessor_eps=0.0)
        fit_s = time.perf_counter() - t0
        peak_fit = _peak_mb()
        n = int(job["n_sample"])
        t0 = time.perf_counter()
        default = synth.sample(n)
        sample_s = time.perf_counter() - t0
        default.columns = columns
        default.to_csv(out_dir / "sample-default.csv", index=False)
        resampled = _to_codes(synth, synth.synthesizer.synthetic_data(rows=n, method="sample"), columns,
                              job["method"])
        resampled.to_csv(out_dir / "sample-resampled.csv", index=False)
        for w in record:
            text = f"{w.category.__name__}: {str(w.message).splitlines()[0][:160]}"
            if text not in caught:
                caught.append(text)
    versions = {}
    for pkg in ("smartnoise-synth", "mbi", "opacus", "torch", "numpy", "jax", "opendp"):
        try:
            versions[pkg] = version(pkg)
        except Exception:  # noqa: BLE001 - a missing optional package is just not reported
            versions[pkg] = "?"
    result = {
        "fit_s": fit_s,
        "sample_s": sample_s,
        "import_s": import_s,
        "peak_mb": _peak_mb(),
        "peak_fit_mb": peak_fit,
        "peak_imports_mb": peak_imports,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cardinality": [int(c) for c in synth._transformer.cardinality],
        "warnings": caught,
        "versions": versions,
        "samples": {"default": "sample-default.csv", "resampled": "sample-resampled.csv"},
        "pid": os.getpid(),
    }
    (out_dir / "result.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
