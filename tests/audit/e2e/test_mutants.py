"""Mutation tests (issue 14.2): every mutant of :mod:`.mutants` makes its audits fail.

Run with ``python -m pytest tests/audit --mutants`` (about 40 minutes on one core); the table of
mutant, audit, empirical ε lower bound and killed is printed with ``-s`` and quoted in docs/privacy.md.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from . import audits
from .mutants import MUTANTS, Mutant
from .test_charge_equals_noise import GENERATORS, charge_problems

pytestmark = pytest.mark.mutant

RUNS = {"mst_e2e": 2000, "fhir_mst_e2e": 2000, "dpvae_marginals_e2e": 2000, "aim_e2e": 1000, "dpsgd_e2e": 1000}
"""Fits per side: enough for a quartered noise to show with margin (MST spends a third of its budget on a
selection the canary cannot move, so it needs more runs than AIM)."""


def _e2e(name: str) -> Callable[[Path], tuple[bool, str]]:
    def run(tmp: Path) -> tuple[bool, str]:
        runs = RUNS[name]
        result = audits.fhir_mst_e2e(runs, tmp) if name == "fhir_mst_e2e" else getattr(audits, name)(runs)
        return (not result.holds, f"eps >= {result.bound:.2f} vs claimed {result.claimed:.2f}")

    return run


def _charge(tmp: Path) -> tuple[bool, str]:
    problems = {g: charge_problems(g) for g in sorted(GENERATORS)}
    found = {g: p for g, p in problems.items() if p}
    return (bool(found), "; ".join(f"{g}: {p[0]}" for g, p in found.items()) or "consistent")


AUDITS: dict[str, Callable[[Path], tuple[bool, str]]] = {
    **{n: _e2e(n) for n in ("mst_e2e", "aim_e2e", "dpvae_marginals_e2e", "dpsgd_e2e", "fhir_mst_e2e")},
    "charge_equals_noise": _charge,
}
CASES = [(m, a) for m in MUTANTS for a in m.audits]


@pytest.mark.parametrize(("mutant", "audit"), CASES, ids=[f"{m.name}-{a}" for m, a in CASES])
def test_mutant_is_killed(mutant: Mutant, audit: str, tmp_path: Path) -> None:
    with mutant.patch():
        killed, detail = AUDITS[audit](tmp_path)
    print(f"| {mutant.name} | {mutant.what} | {audit} | {detail} | {'yes' if killed else 'NO'} |")
    assert killed, f"mutant {mutant.name} survived {audit}: {detail}"


def test_every_mutant_has_an_audit() -> None:
    assert all(m.audits for m in MUTANTS)
    assert {a for m in MUTANTS for a in m.audits} <= set(AUDITS)
