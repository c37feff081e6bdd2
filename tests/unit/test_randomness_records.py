"""Every ledger entry says which sampler drew its noise and whether it is cryptographically secure.

A release may only rest on secure samplers: OpenDP's (AIM, MST, the DPVAE's count) and the OS
CSPRNG (the DPVAE's ``secure_mode``). Seeded runs and torch generators seeded from OS entropy
(``DPVAE(secure_mode=False)``, ``engine="opacus"`` without torchcsprng) are recorded as not secure,
and the totals, the report's guarantee section and the CLI say so.
"""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import synthhealth as sh
from synthhealth.privacy import LedgerEntry, PrivacyBudget, PrivacyLedger

from ..tinytable import tiny_schema_doc, tiny_table

SCHEMA = tiny_schema_doc("randomness")


@pytest.fixture(scope="module")
def schema() -> sh.PatientSchema:
    return sh.load_schema(SCHEMA)


@pytest.fixture(scope="module")
def table(schema: sh.PatientSchema) -> pd.DataFrame:
    return tiny_table(schema, 60)


def _fit(gen: sh.BaseGenerator, table: pd.DataFrame, schema: sh.PatientSchema) -> sh.BaseGenerator:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sh.InsecureRandomnessWarning)
        return gen.fit(table, schema=schema)


@pytest.mark.parametrize("cls", [sh.AIM, sh.MST])
def test_marginal_generators_release_path_is_secure(cls: type, table: pd.DataFrame, schema: sh.PatientSchema) -> None:
    gen = _fit(cls(epsilon=1.0, random_state=None), table, schema)
    entries = gen.ledger_.entries
    assert entries and all(e.secure and not e.seeded and e.library.startswith("opendp") for e in entries)
    assert gen.ledger_.total().secure


@pytest.mark.parametrize("cls", [sh.AIM, sh.MST])
def test_seeded_fits_are_not_secure(cls: type, table: pd.DataFrame, schema: sh.PatientSchema) -> None:
    gen = _fit(cls(epsilon=1.0, random_state=3), table, schema)
    assert all(e.seeded and not e.secure for e in gen.ledger_.entries)
    total = gen.ledger_.total()
    assert total.seeded and not total.secure


def test_seeded_warning_names_the_real_source(table: pd.DataFrame, schema: sh.PatientSchema) -> None:
    pytest.importorskip("torch")
    with pytest.warns(sh.InsecureRandomnessWarning, match="seeded numpy generator"):
        sh.MST(epsilon=1.0, random_state=0).fit(table, schema=schema)
    with pytest.warns(sh.InsecureRandomnessWarning, match="torch generators seeded from a seeded numpy generator"):
        sh.DPVAE(epsilon=1.0, epochs=1, batch_size=32, random_state=0, device="cpu").fit(table, schema=schema)


def _dpvae(table: pd.DataFrame, schema: sh.PatientSchema, **kw: object) -> sh.BaseGenerator:
    pytest.importorskip("torch")
    pytest.importorskip("opacus")
    return _fit(sh.DPVAE(epsilon=1.0, epochs=1, batch_size=32, device="cpu", **kw), table, schema)


def test_dpvae_secure_mode_is_recorded_secure(table: pd.DataFrame, schema: sh.PatientSchema) -> None:
    gen = _dpvae(table, schema)  # release defaults: secure_mode on, OS CSPRNG
    assert all(e.secure and not e.seeded for e in gen.ledger_.entries)
    assert gen.ledger_.total().secure


@pytest.mark.parametrize("kw", [{"secure_mode": False}, {"engine": "opacus"}])
def test_dpvae_pseudo_random_modes_are_recorded_not_secure(kw: dict, table: pd.DataFrame,
                                                           schema: sh.PatientSchema) -> None:
    """secure_mode=False and engine='opacus' draw from torch generators seeded from OS entropy: not secure."""
    with pytest.warns(sh.InsecureRandomnessWarning, match="not a cryptographically secure sampler"):
        gen = sh.DPVAE(epsilon=1.0, epochs=1, batch_size=32, device="cpu", **kw).fit(table, schema=schema)
    sgd = [e for e in gen.ledger_.entries if e.mechanism == "dp_sgd_subsampled_gaussian"]
    assert sgd and not sgd[0].seeded and not sgd[0].secure
    assert "not a cryptographically secure sampler" in sgd[0].library
    total = gen.ledger_.total()
    assert not total.seeded and not total.secure
    assert "INSECURE SAMPLER" in str(total)
    from synthhealth.report.guarantee import guarantee_section

    sec, _ = guarantee_section(gen.ledger_, schema, fit_id=gen.fit_id_)
    facts = dict(sec.facts)
    assert facts["Randomness"].startswith("NOT SECURE")


def test_entry_secure_is_validated_and_defaults_to_false() -> None:
    e = LedgerEntry("gaussian", "marginal(a)", 1.0, 2.0, 0.1, "f", "numpy", False)
    assert e.secure is False
    with pytest.raises(sh.InvalidParameterError, match="'secure' parameter of LedgerEntry cannot be True for a seeded"):
        LedgerEntry("gaussian", "marginal(a)", 1.0, 2.0, 0.1, "f", "numpy", True, secure=True)
    with pytest.raises(sh.InvalidParameterError, match="'secure' parameter of LedgerEntry must be a bool"):
        LedgerEntry("gaussian", "marginal(a)", 1.0, 2.0, 0.1, "f", "numpy", False, secure="yes")  # type: ignore[arg-type]


def test_ledgers_written_before_the_field_read_conservatively() -> None:
    ledger = PrivacyLedger(PrivacyBudget(4.0, 1e-6))
    fit = ledger.begin_fit("x", rho=0.02)
    ledger.charge(LedgerEntry("discrete_gaussian", "marginal(a)", 1.0, 2.0, 0.01, fit, "opendp 0.16.0", False,
                              secure=True))
    ledger.charge(LedgerEntry("dp_sgd", "g", 1.0, 2.0, 0.0, fit, "torch 2 (torch generator)", False,
                              accounting="approx_dp", epsilon=0.1, delta=1e-7))
    doc = ledger.to_dict()
    for e in doc["entries"]:
        del e["secure"]
    back = PrivacyLedger.from_dict(doc)
    assert [e.secure for e in back.entries] == [True, False]


def test_cli_shows_the_insecure_randomness_warning(tmp_path, table: pd.DataFrame, schema: sh.PatientSchema) -> None:
    from click.testing import CliRunner

    from synthhealth.cli import main

    data = tmp_path / "t.parquet"
    sh.write_table(table, data)
    schema_file = tmp_path / "s.yaml"
    import yaml

    schema_file.write_text(yaml.safe_dump(SCHEMA), encoding="utf-8")
    res = CliRunner().invoke(main, ["fit", "-s", str(schema_file), "-d", str(data), "-g", "mst", "-e", "1",
                                    "--seed", "1", "--out", str(tmp_path / "m"), "-q"])
    assert res.exit_code == 0, res.output
    assert "warning: random_state is set: DP noise comes from a seeded numpy generator" in res.output
    assert "Traceback" not in res.output
