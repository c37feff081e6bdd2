"""End-to-end privacy audits of today's code (issue 14.1): the bound stays at or below the ledger's ε.

Default run (CI): a few hundred fits per side and audit, about two minutes in all. ``--full``: 1,500
per side (the figures quoted in docs/privacy.md). Every audit runs the public ``fit`` with
``random_state=None`` (OpenDP's samplers, the OS CSPRNG for DP-SGD).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import audits

FAST = {"mst": 300, "aim": 150, "dpvae_marginals": 200, "dpsgd": 150, "fhir_mst": 200}
FULL = 1500


def _run(name: str, runs: int, tmp_path: Path) -> audits.E2EAudit:
    if name == "fhir_mst":
        return audits.fhir_mst_e2e(runs, tmp_path)
    return getattr(audits, f"{name}_e2e")(runs)


@pytest.mark.parametrize("name", sorted(FAST))
def test_e2e_audit_within_claim(name: str, tmp_path: Path) -> None:
    result = _run(name, FAST[name], tmp_path)
    assert result.holds, str(result)
    assert abs(result.claimed - audits.EPSILON) < 0.05  # the fit spends (nearly) its budget


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FAST))
def test_e2e_audit_within_claim_full(name: str, tmp_path: Path) -> None:
    result = _run(name, FULL, tmp_path)
    print(result)
    assert result.holds, str(result)


def test_statistics_see_the_canary(tmp_path: Path) -> None:
    """The statistics are not blind: on D′ their mean moves by about what one patient adds."""
    mst = audits.mst_e2e(60)
    sd = mst.outputs[0].std()
    assert mst.outputs[1].mean() - mst.outputs[0].mean() > 0.3 * sd**2  # LLR: shift = variance
    sgd = audits.dpsgd_e2e(40)
    assert abs(sgd.outputs[0].mean()) < 4 * sgd.outputs[0].std() / 40**0.5
    assert sgd.outputs[1].mean() - sgd.outputs[0].mean() > 0.0
