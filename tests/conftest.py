"""Shared fixtures and the --full switch (slow tests are deselected by default)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import synthhealth as sh

from .fhirfactory import write_json, write_ndjson

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fhir"
SYNTHEA = SHARED / "synthea-smart-r4" / "bundles"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--full", action="store_true", default=False,
                     help="also run tests marked slow (statistical, audit, full-data)")
    parser.addoption("--mutants", action="store_true", default=False,
                     help="run the mutation tests of the privacy audits (tests/audit/e2e/test_mutants.py)")


def pytest_configure(config: pytest.Config) -> None:
    # property-based fuzzing (tests/unit/test_fuzz_bad_input.py): a few hundred derandomized (reproducible) cases
    # by default, at least 1,000 random ones with --full
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:  # a dev dependency (pyproject's dev extra); the fuzz tests skip without it
        return
    common = {"deadline": None, "database": None, "print_blob": True,
              "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                        HealthCheck.function_scoped_fixture]}
    settings.register_profile("ci", max_examples=100, derandomize=True, **common)
    settings.register_profile("full", max_examples=500, **common)
    settings.load_profile("full" if config.getoption("--full") else "ci")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    import sys

    fuzz = sys.modules.get("tests.unit.test_fuzz_bad_input")
    if fuzz is not None and fuzz.STATS["cases"]:
        terminalreporter.write_line(fuzz.summary())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    full, mutants = config.getoption("--full"), config.getoption("--mutants")
    keep, drop = [], []
    for item in items:
        if item.get_closest_marker("mutant"):
            (keep if mutants else drop).append(item)
        else:
            (drop if item.get_closest_marker("slow") and not full else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def core_schema() -> sh.PatientSchema:
    return sh.load_schema("core-patient")


@pytest.fixture(scope="session")
def flchain_schema() -> sh.PatientSchema:
    return sh.load_schema("flchain")


@pytest.fixture(scope="session")
def synthea_dir() -> Path:
    if not SYNTHEA.is_dir():  # CI and developer machines have ../shared beside the repository
        pytest.fail(f"shared data missing: {SYNTHEA}")
    return SYNTHEA


@pytest.fixture
def fhir_files(tmp_path: Path) -> Callable[..., Path]:
    """Return a writer: fhir_files({"a.json": bundle_doc, "Patient.ndjson": [res, ...]}) -> folder."""

    def make(files: dict[str, Any], folder: str = "in") -> Path:
        root = tmp_path / folder
        for name, content in files.items():
            if ".ndjson" in name:
                write_ndjson(root / name, content)
            elif isinstance(content, bytes):
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                (root / name).write_bytes(content)
            else:
                write_json(root / name, content)
        return root

    return make
