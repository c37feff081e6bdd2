"""Patient-level tables: flattening FHIR (with contribution bounding) and plain tables."""

from .flatten import AttributeCounts, FlattenReport, flatten, report_of
from .table import load_table_file, read_table, write_table

__all__ = ["AttributeCounts", "FlattenReport", "flatten", "load_table_file", "read_table", "report_of", "write_table"]
