"""FHIR R4 input and output: streaming reader (Bundles, Bulk NDJSON), writer, and strict validation."""

from .files import InputFile, discover
from .integrity import REQUIRED_BINDINGS, ReferenceReport, check_bindings, check_references
from .reader import FHIRReader, Location, PatientRecord, ReadStats, ResourceItem, normalize_reference, read
from .validate import validate_resource
from .write import (
    IDENTIFIER_SYSTEM,
    MANIFEST_NAME,
    SYNTHETIC_TAG,
    TEST_DATA_SECURITY_LABEL,
    WriteReport,
    write,
)

__all__ = [
    "FHIRReader",
    "IDENTIFIER_SYSTEM",
    "InputFile",
    "Location",
    "MANIFEST_NAME",
    "PatientRecord",
    "REQUIRED_BINDINGS",
    "ReadStats",
    "ReferenceReport",
    "ResourceItem",
    "SYNTHETIC_TAG",
    "TEST_DATA_SECURITY_LABEL",
    "WriteReport",
    "check_bindings",
    "check_references",
    "discover",
    "normalize_reference",
    "read",
    "validate_resource",
    "write",
]
