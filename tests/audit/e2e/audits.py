"""The end-to-end audits, one function each: run ``runs`` fits per side and return an :class:`E2EAudit`.

Parameters are public generator options chosen to make the worst case visible and the fits fast:
ε = 2 at δ = 1e-3 (the (ε, δ) conversion of zCDP is least loose there, so a mechanism that leaks
more than it charges shows within ~1,000 fits), tiny networks and few estimation iterations
(neither affects the privacy claim).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

import synthhealth as sh

from .harness import (
    CANARY,
    E2EAudit,
    dpvae_marginal_llr,
    measurement_llr,
    neighbour_tables,
    run_audit,
    tiny_schema,
)

EPSILON, DELTA = 2.0, 1e-3


def mst_e2e(runs: int) -> E2EAudit:
    """MST's public fit on D / D′ (via ``read_table``); statistic: the canary's LLR over ``measurements_``."""
    schema = tiny_schema()
    tables = neighbour_tables(schema)
    return run_audit("MST", lambda: sh.MST(epsilon=EPSILON, delta=DELTA), tables, schema,
                     measurement_llr(tables[0]), runs)


def aim_e2e(runs: int) -> E2EAudit:
    """AIM's public fit (rounds with selection and annealing, the final pass); same statistic as MST."""
    schema = tiny_schema()
    tables = neighbour_tables(schema)
    return run_audit("AIM", lambda: sh.AIM(epsilon=EPSILON, delta=DELTA, iters=20, max_rounds=6), tables, schema,
                     measurement_llr(tables[0]), runs)


def _dpvae(**kw: Any) -> Callable[[], Any]:
    base = dict(epsilon=EPSILON, delta=DELTA, hidden_sizes=(4,), latent_size=2, finetune_steps=0, calibrate=False,
                accountant="rdp")
    base.update(kw)
    return lambda: sh.DPVAE(**base)


def dpvae_marginals_e2e(runs: int) -> E2EAudit:
    """DPVAE's public fit with 90 % of the budget on the noisy marginals (the rest is DP-SGD); statistic:
    the canary's LLR over the released noisy 1- and 2-way marginals."""
    schema = tiny_schema()
    tables = neighbour_tables(schema)
    return run_audit("DPVAE marginals", _dpvae(epochs=1, marginals_share=0.9), tables, schema,
                     dpvae_marginal_llr(tables[0]), runs)


# ------------------------------------------------------------------ DP-SGD (white box: the noisy gradients)
class _GradientCanary:
    """White-box DP-SGD statistic (:func:`.whitebox.dpsgd_residuals`): at each step, the released noisy
    gradient sum minus the clipped gradients of the step's patients of D (recomputed by the auditor,
    who knows D, the step's weights and its reparameterisation draws), projected on the canary's
    clipped gradient direction, in units of the charged σC. On D it is N(0, 1) per step; on D′ its
    mean is 1/σ per step (the canary's clipped gradient has norm C), so over T full-batch steps the
    test sees exactly the Gaussian mechanism the accountant composes (μ = √T / σ)."""

    def __init__(self, n_d: int) -> None:
        self.n_d = n_d
        self.total = 0.0

    def step(self, s: Any) -> None:
        import torch

        from synthhealth.generators.dpvae import fastdp

        from .whitebox import flat_sums

        residual = s.residual
        in_batch = (s.batch == self.n_d).nonzero()
        if len(in_batch):  # D′: the canary's own clipped gradient is in the released sum; take it back out
            eps = s.eps[int(in_batch[0]):int(in_batch[0]) + 1]
            w, c, _ = fastdp.clipped_grad_sum(s.weights, s.biases, s.spec, s.codes[self.n_d:self.n_d + 1], eps,
                                              s.plan.clip, s.layout)
            canary = flat_sums(w, c) / (s.plan.noise_multiplier * s.plan.clip)
            residual = residual + canary  # put it back: only D's patients are subtracted
        else:
            eps = torch.zeros(1, s.spec.latent, dtype=s.eps.dtype)
            w, c, _ = fastdp.clipped_grad_sum(s.weights, s.biases, s.spec, CANARY_CODES, eps, s.plan.clip, s.layout)
            canary = flat_sums(w, c)
        norm = float(canary.norm())
        if norm > 0:
            self.total += float((residual * canary).sum()) / norm


def _canary_codes() -> Any:
    import torch

    return torch.tensor([[2, 1]], dtype=torch.long)  # a = z (third state), b = True


CANARY_CODES = _canary_codes()
"""The canary's codes in the tiny schema (a: x, y, z; b: False, True)."""


def dpsgd_tables(schema: sh.PatientSchema, per_cell: int = 15) -> tuple[pd.DataFrame, pd.DataFrame]:
    """D: patients with a ∈ {x, y} only; D′ = D + the canary (a = z, b = True), via ``read_table``."""
    rows = [{"a": a, "b": b} for a in ("x", "y") for b in (False, True)] * per_cell
    d = pd.DataFrame(rows)
    d.insert(0, "patient_id", [f"p{i:05d}" for i in range(len(d))])
    dp = pd.concat([d, pd.DataFrame([{"patient_id": "canary", **CANARY}])], ignore_index=True)
    return (sh.read_table(d.set_index("patient_id"), schema), sh.read_table(dp.set_index("patient_id"), schema))


def dpsgd_e2e(runs: int) -> E2EAudit:
    """DPVAE's public fit with DP-SGD only (``marginals_share=0``, ``max_patients`` declared, batch ≥ n so
    q = 1), a tiny clip norm so the canary's gradient is clipped; statistic: :class:`_GradientCanary`."""
    schema = tiny_schema()
    tables = dpsgd_tables(schema)
    n_max = len(tables[1])
    make = _dpvae(epochs=8, batch_size=n_max, max_patients=n_max, marginals_share=0, clip_norm=0.01,
                  learning_rate=1e-2)
    watcher = _GradientCanary(len(tables[0]))

    def statistic(gen: Any) -> float:
        value, watcher.total = watcher.total, 0.0
        return value

    from .whitebox import dpsgd_residuals

    with dpsgd_residuals(watcher.step):
        return run_audit("DPVAE DP-SGD", make, tables, schema, statistic, runs)


# ------------------------------------------------------------------ FHIR through flatten
FHIR_SCHEMA = {
    "synthhealth_schema": 1, "name": "audit-tiny-fhir", "version": "1", "reference_date": "2020-01-01",
    "value_sets": {"htn": ["sct|38341003"]},
    "attributes": [
        {"name": "a", "type": "categorical", "missing": False, "other": "z",
         "fhir": {"resource": "Patient", "path": "gender"},
         "categories": [{"label": "x", "values": ["female"]}, {"label": "y", "values": ["male"]},
                        {"label": "z", "values": ["other"]}]},
        {"name": "b", "type": "boolean", "missing": False, "fhir": {"resource": "Condition", "value_set": "htn"}},
    ],
}
_GENDER = {"x": "female", "y": "male", "z": "other"}


def write_fhir(folder: Path, canary_copies: int, per_cell: int = 30) -> Path:
    """D as NDJSON (``per_cell`` patients in each cell but the canary's); with ``canary_copies`` > 0, the
    canary person too, as that many Patient resources sharing one identifier, each with its Condition."""
    import orjson

    folder.mkdir(parents=True, exist_ok=True)
    patients, conditions = [], []
    i = 0
    for a in ("x", "y", "z"):
        for b in (False, True):
            if (a, b) == ("z", True):
                continue
            for _ in range(per_cell):
                pid = f"p{i:05d}"
                i += 1
                patients.append({"resourceType": "Patient", "id": pid, "gender": _GENDER[a], "birthDate": "1960-01-01"})
                if b:
                    conditions.append(_condition(f"c{pid}", pid))
    for k in range(canary_copies):
        pid = f"canary{k}"
        patients.append({"resourceType": "Patient", "id": pid, "gender": "other", "birthDate": "1960-01-01",
                         "identifier": [{"system": "urn:audit:mrn", "value": "canary-person"}]})
        conditions.append(_condition(f"c{pid}", pid))
    (folder / "Patient.ndjson").write_bytes(b"\n".join(orjson.dumps(p) for p in patients) + b"\n")
    (folder / "Condition.ndjson").write_bytes(b"\n".join(orjson.dumps(c) for c in conditions) + b"\n")
    return folder


def _condition(rid: str, pid: str) -> dict[str, Any]:
    return {"resourceType": "Condition", "id": rid, "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}]},
            "onsetDateTime": "2010-01-01"}


def fhir_mst_e2e(runs: int, workdir: Path) -> E2EAudit:
    """MST fitted on ``flatten`` of FHIR NDJSON: D, and D′ = D + one person recorded as five Patient
    resources with a shared identifier (merged into one row: ``duplicate_patients="merge"``)."""
    schema = sh.load_schema(FHIR_SCHEMA)
    d = sh.flatten(write_fhir(workdir / "d", 0), schema, duplicate_patients="merge")
    dp = sh.flatten(write_fhir(workdir / "dprime", 5), schema, duplicate_patients="merge")
    return run_audit("MST via flatten (FHIR)", lambda: sh.MST(epsilon=EPSILON, delta=DELTA), (d, dp), schema,
                     measurement_llr(d), runs)


