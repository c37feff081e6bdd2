"""End-to-end privacy audits: the public ``fit`` of each generator, on the release path.

Each audit builds a tiny public schema, a table D and its neighbour D′ (D plus one *canary*
patient whose row sits alone in a cell), reads both through :func:`synthhealth.read_table` (or
:func:`synthhealth.flatten` for FHIR), fits ``Generator(epsilon=…, random_state=None)`` on each many
times with the secure samplers, computes a statistic from the fitted model (what ``save`` writes:
the graphical model, the noisy marginals, the DP-SGD iterates), and bounds ε from below with
Clopper–Pearson at 99 % (:func:`synthhealth.privacy.audit.epsilon_lower_bound`, ``alpha=0.01``).
The bound must stay at or below the ε the ledger claims; the mutation tests
(``tests/audit/e2e/test_mutants.py``) show it does not when production code is broken.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

import synthhealth as sh
from synthhealth.privacy.audit import AuditResult, epsilon_lower_bound

ALPHA = 0.01
"""1 − confidence of every end-to-end audit bound (99 %)."""

TINY_SCHEMA = {
    "synthhealth_schema": 1, "name": "audit-tiny", "version": "1", "reference_date": "2020-01-01",
    "attributes": [
        {"name": "a", "type": "categorical", "categories": ["x", "y", "z"], "missing": False},
        {"name": "b", "type": "boolean", "missing": False},
    ],
}
CANARY = {"a": "z", "b": True}
"""The canary patient: alone in the cell (a = z, b = True) of D′."""


def tiny_schema() -> sh.PatientSchema:
    """The audits' public schema: a (3 categories) × b (boolean), no missing states."""
    return sh.load_schema(TINY_SCHEMA)


def neighbour_tables(schema: sh.PatientSchema, per_cell: int = 30) -> tuple[pd.DataFrame, pd.DataFrame]:
    """D (``per_cell`` patients in every cell but the canary's) and D′ = D + the canary, via ``read_table``.

    Every other cell is populated, so each 1-way count the canary touches is far from 0 and the
    model's estimates move linearly with the noisy measurements; only the canary's 2-way cell is
    empty in D.
    """
    rows = [{"a": a, "b": b} for a in ("x", "y", "z") for b in (False, True) if (a, b) != ("z", True)] * per_cell
    d = pd.DataFrame(rows)
    d.insert(0, "patient_id", [f"p{i:05d}" for i in range(len(d))])
    dp = pd.concat([d, pd.DataFrame([{"patient_id": "canary", **CANARY}])], ignore_index=True)
    return _read(d, schema), _read(dp, schema)


def _read(df: pd.DataFrame, schema: sh.PatientSchema) -> pd.DataFrame:
    return sh.read_table(df.set_index("patient_id"), schema)


def canary_codes(gen: Any) -> np.ndarray:
    """The canary's codes (1 × d) under the fitted generator's public encoder."""
    return np.array([[_state(gen, a, v) for a, v in CANARY.items()]], dtype=np.int64)


def _state(gen: Any, attr: str, value: Any) -> int:
    spec = gen.schema_[attr]
    if spec.type == "boolean":
        return int(bool(value))
    return list(spec.labels).index(value)


def measurement_llr(table_d: pd.DataFrame) -> Callable[[Any], float]:
    """The canary's log-likelihood-ratio statistic over the fitted noisy measurements (AIM, MST).

    The auditor knows D: for each noisy marginal y_m (σ_m) of ``measurements_`` the statistic adds
    (y_m − x_m)[c] / σ_m², where x_m is D's exact marginal and c the canary's cell. For Gaussian
    measurements this is the most powerful test of D against D′ (one patient more in c), so its
    ε lower bound approaches what the measurements really leak.
    """
    from synthhealth.generators.private_data import marginal_counts
    from synthhealth.transform.encode import Encoder

    def statistic(gen: Any) -> float:
        codes_d = Encoder(gen.schema_).encode(table_d)
        canary = canary_codes(gen)
        comp = getattr(gen, "compression_", None)
        domain = gen.model_.domain
        if comp is not None:
            codes_d, canary = comp.transform(codes_d), comp.transform(canary)
        total = 0.0
        for m in gen.measurements_:
            idx = tuple(int(canary[0, domain.attrs.index(a)]) for a in m.clique)
            exact = marginal_counts(codes_d, domain, m.clique)
            total += (float(np.asarray(m.values)[idx]) - float(exact[idx])) / m.sigma**2
        return total

    return statistic


def dpvae_marginal_llr(table_d: pd.DataFrame) -> Callable[[Any], float]:
    """The canary's log-likelihood ratio over the DPVAE's released noisy marginals (``noisy_marginals_``).

    One patient adds 1 to one cell of every 1-way and 2-way histogram; the statistic adds
    (y − x)/σ² over those cells (x: D's exact counts, known to the auditor).
    """
    from synthhealth.generators.dpvae.marginals import marginal_counts, split_marginals
    from synthhealth.transform.encode import Encoder

    def statistic(gen: Any) -> float:
        names = list(gen.encoder_.names)
        pairs = [(names.index(a), names.index(b)) for a, b in gen.pairs_]
        sizes = gen.encoder_.shape
        exact1, exact2 = split_marginals(marginal_counts(Encoder(gen.schema_).encode(table_d), sizes, pairs),
                                         sizes, pairs)
        noisy1, noisy2 = gen.noisy_marginals_
        c = canary_codes(gen)[0]
        diff = sum(float(noisy1[j][c[j]] - exact1[j][c[j]]) for j in range(len(sizes)))
        diff += sum(float(noisy2[k][c[a], c[b]] - exact2[k][c[a], c[b]]) for k, (a, b) in enumerate(pairs))
        return diff / gen.marginal_sigma_**2

    return statistic


def claimed_epsilon(gen: Any) -> float:
    """The ε the ledger records for the fit (what the user is told)."""
    return float(gen.ledger_.total(gen.fit_id_).epsilon)


@dataclass(frozen=True)
class E2EAudit:
    """Outcome of one end-to-end audit: the lower bound beside the claim."""

    name: str
    claimed: float
    result: AuditResult
    outputs: np.ndarray
    """The statistic of every run, shape (2, runs): row 0 on D, row 1 on D′."""

    @property
    def bound(self) -> float:
        return self.result.epsilon_lower_bound

    @property
    def holds(self) -> bool:
        """The claim survives the audit (bound ≤ claimed ε)."""
        return self.bound <= self.claimed + 1e-9

    def __str__(self) -> str:
        return (f"{self.name}: empirical eps >= {self.bound:.3f} (99 %, {self.result.n_runs} fits) "
                f"vs claimed {self.claimed:.3f}")


def run_audit(name: str, make: Callable[[], Any], tables: tuple[pd.DataFrame, pd.DataFrame],
              schema: sh.PatientSchema, statistic: Callable[[Any], float], runs: int) -> E2EAudit:
    """Fit ``make()`` ``runs`` times on D and on D′ (interleaved) and bound ε from the statistic."""
    out = np.empty((2, runs))
    claims = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(runs):
            for side in (0, 1):
                gen = make().fit(tables[side], schema=schema)
                if gen.seeded_:
                    raise AssertionError("an end-to-end audit must run on the release path (random_state=None)")
                out[side, i] = statistic(gen)
                claims.add(round(claimed_epsilon(gen), 9))
    if len(claims) != 1:
        raise AssertionError(f"the claimed epsilon differs between runs: {sorted(claims)}")
    delta = float(gen.ledger_.total(gen.fit_id_).delta)
    return E2EAudit(name, claims.pop(), epsilon_lower_bound(out[0], out[1], delta, alpha=ALPHA), out)
