"""Charge = noise used (issue 14.3): every sampler call of real release-path fits, recomputed against the ledger."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

import synthhealth as sh

from . import crosscheck
from .harness import neighbour_tables, tiny_schema

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _fit(make: Any, fits: int = 1) -> tuple[list[Any], crosscheck.Record]:
    schema = tiny_schema()
    table = neighbour_tables(schema, per_cell=20)[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with crosscheck.record() as rec:
            gens = [make().fit(table, schema=schema) for _ in range(fits)]
    return gens, rec


GENERATORS = {
    "mst": lambda: sh.MST(epsilon=2.0, delta=1e-3),
    "aim": lambda: sh.AIM(epsilon=2.0, delta=1e-3, iters=20, max_rounds=6),
    "dpvae": lambda: sh.DPVAE(epsilon=2.0, delta=1e-3, epochs=4, batch_size=20, hidden_sizes=(4,), latent_size=2,
                              clip_norm=0.05, finetune_steps=0, calibrate=False, accountant="rdp"),
}


def charge_problems(name: str, fits: int = 4) -> list[str]:
    """Fit ``name`` ``fits`` times on the release path while recording; every charge/noise disagreement."""
    gens, rec = _fit(GENERATORS[name], fits)
    problems: list[str] = []
    for gen in gens:
        problems += _fit_problems(name, gen, rec)
    # the statistical checks pool the noise of all fits
    return problems + crosscheck.check_noise(rec)


def _fit_problems(name: str, gen: Any, rec: crosscheck.Record) -> list[str]:
    sub = crosscheck.only_fit(rec, gen.fit_id_)
    problems = crosscheck.check(sub, gen.fit_id_)
    entries = [e for e in sub.entries if e.fit_id == gen.fit_id_]
    total = gen.ledger_.total(gen.fit_id_)
    if name == "dpvae":
        recomputed = crosscheck.dpsgd_epsilon_recomputed(gen, sub)
        charged = sum(e.epsilon for e in entries)
        if recomputed > charged * (1 + 1e-6):
            problems.append(f"DPVAE: epsilon {recomputed:.6g} recomputed from the noise used, {charged:.6g} charged")
    else:
        recomputed_rho = sum(e.rho for e in entries)
        if abs(recomputed_rho - gen.budget_.rho) > 1e-9 * gen.budget_.rho:
            problems.append(f"rho charged {recomputed_rho:.6g}, budget {gen.budget_.rho:.6g}")
    if total.epsilon > gen.budget_.epsilon * (1 + 1e-9):
        problems.append(f"ledger total epsilon {total.epsilon:.6g} above the budget {gen.budget_.epsilon:.6g}")
    return problems


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_charge_equals_noise_used(name: str) -> None:
    assert charge_problems(name) == []


def test_recorder_sees_every_release() -> None:
    gens, rec = _fit(GENERATORS["mst"])
    rec = crosscheck.only_fit(rec, gens[0].fit_id_)
    # MST on two attributes: 2 one-way + 1 two-way Gaussian marginals and 1 tree selection
    assert len(rec.gaussian) == 3 and len(rec.noisy_max) == 1
    assert all(sens == 1.0 for _, _, sens in rec.gaussian)
    gens, rec = _fit(GENERATORS["dpvae"])
    rec = crosscheck.only_fit(rec, gens[0].fit_id_)
    assert len(rec.plans) == 1 and rec.batches and rec.normals and rec.clip_excess and rec.sgd_noise
    assert max(rec.clip_excess) > 0.99  # clipping binds at clip_norm=0.05, so the check is not vacuous
