"""FHIR R4 input and output: streaming reader (Bundles, Bulk NDJSON) and strict validation."""

from .files import InputFile, discover
from .reader import FHIRReader, Location, PatientRecord, ReadStats, ResourceItem, normalize_reference, read
from .validate import validate_resource

__all__ = [
    "FHIRReader",
    "InputFile",
    "Location",
    "PatientRecord",
    "ReadStats",
    "ResourceItem",
    "discover",
    "normalize_reference",
    "read",
    "validate_resource",
]
