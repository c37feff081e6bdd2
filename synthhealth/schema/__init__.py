"""FHIR-shaped patient schemas: public domains, bounds, bins and code lists."""

from .codes import SYSTEM_ALIASES, Code, resolve_system
from .loader import bundled_schemas, load_schema, schema_from_dict, schema_path
from .model import (
    AGGREGATES,
    ATTRIBUTE_TYPES,
    EVENT_RESOURCES,
    PATIENT_PATHS,
    Attribute,
    Category,
    FHIRSource,
    PatientSchema,
    Period,
)

__all__ = [
    "AGGREGATES",
    "ATTRIBUTE_TYPES",
    "EVENT_RESOURCES",
    "PATIENT_PATHS",
    "SYSTEM_ALIASES",
    "Attribute",
    "Category",
    "Code",
    "FHIRSource",
    "PatientSchema",
    "Period",
    "bundled_schemas",
    "load_schema",
    "resolve_system",
    "schema_from_dict",
    "schema_path",
]
