"""Privacy and utility report: the DP guarantee, real attacks, utility, bias and collapse checks.

Build a report with :meth:`Report.build` and save it as ``report.json``, ``report.html`` and
``report.pdf`` with :meth:`Report.save`; ``release=True`` writes the shareable variant that
keeps only the guarantee and synthetic-only descriptions, and is refused
(:class:`ReleaseRefusedError`) unless it can certify what it describes. Metric definitions: ``docs/report.md``.
"""

from .build import REPORT_FORMAT, REPORT_FORMAT_VERSION, Report, model_fit_sample
from .model import Check, Figure, Metric, Section
from .provenance import (
    InsecureFitError,
    InternalReviewFailedError,
    NotModelOutputError,
    ReleaseRefusedError,
    SeededFitError,
    UnrelatedLedgerError,
)
from .verdict import DEFAULT_THRESHOLDS, Threshold, load_thresholds

__all__ = ["Report", "REPORT_FORMAT", "REPORT_FORMAT_VERSION", "model_fit_sample", "Check", "Figure", "Metric",
           "Section", "Threshold", "DEFAULT_THRESHOLDS", "load_thresholds", "ReleaseRefusedError",
           "NotModelOutputError", "UnrelatedLedgerError", "InsecureFitError", "SeededFitError",
           "InternalReviewFailedError"]
