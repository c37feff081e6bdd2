"""synthhealth: differentially private synthetic patient data from FHIR, with a privacy report.

The public API::

    import synthhealth as sh

    schema = sh.load_schema("core-patient")                    # public domains, never inferred
    table = sh.flatten(sh.fhir.read("exports/"), schema)       # one row per patient, bounded
    gen = sh.AIM(epsilon=1.0).fit(table, schema=schema)         # patient-level (epsilon, delta)-DP
    synthetic = gen.sample(1000)                                # post-processing: free
    gen.ledger_.total()                                         # what was spent, and how
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import datasets, fhir, privacy, report
from .exceptions import (
    AccountingError,
    BudgetExceededError,
    DataQualityWarning,
    DataValidationError,
    DuplicatePatientIdError,
    FHIRFormatError,
    InputFileError,
    InsecureRandomnessWarning,
    InvalidParameterError,
    LowUtilityWarning,
    NotFittedError,
    OptionalDependencyError,
    PatientIdError,
    PrivacyLeakWarning,
    SchemaError,
    SynthHealthError,
)
from .generators import AIM, DPVAE, MST, load_model
from .privacy import PrivacyBudget, PrivacyLedger
from .report import Report
from .schema import Attribute, PatientSchema, bundled_schemas, load_schema, schema_path
from .sweep import SweepResult, split, sweep, sweep_cost
from .transform import FlattenReport, flatten, read_table, report_of, write_table

try:
    __version__ = version("synthhealth")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = [
    "AIM",
    "DPVAE",
    "MST",
    "PrivacyBudget",
    "PrivacyLedger",
    "Report",
    "SweepResult",
    "load_model",
    "privacy",
    "report",
    "AccountingError",
    "Attribute",
    "BudgetExceededError",
    "DataQualityWarning",
    "DataValidationError",
    "DuplicatePatientIdError",
    "FHIRFormatError",
    "FlattenReport",
    "InsecureRandomnessWarning",
    "InvalidParameterError",
    "InputFileError",
    "LowUtilityWarning",
    "NotFittedError",
    "OptionalDependencyError",
    "PatientIdError",
    "PatientSchema",
    "PrivacyLeakWarning",
    "SchemaError",
    "SynthHealthError",
    "__version__",
    "bundled_schemas",
    "datasets",
    "fhir",
    "flatten",
    "load_schema",
    "read_table",
    "report_of",
    "schema_path",
    "split",
    "sweep",
    "sweep_cost",
    "write_table",
]
