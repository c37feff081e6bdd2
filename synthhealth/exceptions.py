"""Exception and warning hierarchy of synthhealth.

Every error raised on purpose by synthhealth derives from :class:`SynthHealthError`.
Subclasses also inherit the builtin exception that matches their meaning, so
``except ValueError`` keeps working in user code. Messages name the parameter or
location, the constraint and the value received; they never echo patient data.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "SynthHealthError",
    "InvalidParameterError",
    "InputFileError",
    "SchemaError",
    "SchemaProblem",
    "FHIRFormatError",
    "DataValidationError",
    "PatientIdError",
    "DuplicatePatientIdError",
    "NotFittedError",
    "BudgetExceededError",
    "AccountingError",
    "OptionalDependencyError",
    "PrivacyLeakWarning",
    "InsecureRandomnessWarning",
    "LowUtilityWarning",
    "DataQualityWarning",
]


class SynthHealthError(Exception):
    """Base class of every error raised by synthhealth."""


class InvalidParameterError(SynthHealthError, ValueError):
    """A function or constructor parameter has an invalid value."""


class InputFileError(InvalidParameterError):
    """An input file (a table, a model folder's files) cannot be read.

    The message names the file and what is wrong with it (a position where known), never its
    content: the file may hold patient data.

    Parameters
    ----------
    message : str
        What is wrong (no content of the file).
    file : str or Path
        The file being read.
    """

    def __init__(self, message: str, *, file: object) -> None:
        self.reason = message
        self.file = str(file)
        super().__init__(f"{self.file}: {message}")


@dataclass(frozen=True)
class SchemaProblem:
    """One problem found in a schema: where it is and what is wrong.

    Attributes
    ----------
    path : str
        Location inside the schema document, e.g. ``attributes[3].bounds``.
    message : str
        What is wrong, e.g. ``lower 120 > upper 20``.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SchemaError(SynthHealthError, ValueError):
    """A patient schema is invalid. Collects every problem with its path.

    Parameters
    ----------
    problems : list of SchemaProblem
        All problems found (never just the first one).
    source : str, optional
        File the schema came from.
    """

    def __init__(self, problems: list[SchemaProblem], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        n = len(self.problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{n} problem{'s' if n != 1 else ''} in schema{where}:\n{lines}")


class FHIRFormatError(SynthHealthError, ValueError):
    """FHIR input is malformed. Names the file, the position and the resource id.

    Parameters
    ----------
    message : str
        What is wrong (no patient data).
    file : str, optional
        The file being read.
    line : int, optional
        1-based line number (NDJSON) or ``None``.
    entry : int, optional
        0-based ``Bundle.entry`` index or ``None``.
    resource_id : str, optional
        ``resourceType/id`` of the offending resource, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        entry: int | None = None,
        resource_id: str | None = None,
    ) -> None:
        self.reason = message
        self.file = file
        self.line = line
        self.entry = entry
        self.resource_id = resource_id
        super().__init__(self._format())

    @property
    def location(self) -> str:
        """Human-readable position: ``file, line 3`` or ``file, entry[12]``."""
        parts = []
        if self.file:
            parts.append(self.file)
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.entry is not None:
            parts.append(f"entry[{self.entry}]")
        if self.resource_id:
            parts.append(self.resource_id)
        return ", ".join(parts)

    def _format(self) -> str:
        loc = self.location
        return f"{loc}: {self.reason}" if loc else self.reason


class DataValidationError(SynthHealthError, ValueError):
    """A table does not match its schema. Lists every violation found.

    Parameters
    ----------
    violations : list of str
        One line per violation: column, constraint and a count (no values
        from the data beyond what the public schema already declares).
    """

    def __init__(self, violations: list[str]) -> None:
        self.violations = list(violations)
        n = len(self.violations)
        lines = "\n".join(f"  - {v}" for v in self.violations)
        super().__init__(f"table does not match the schema ({n} problem{'s' if n != 1 else ''}):\n{lines}")


class PatientIdError(DataValidationError):
    """The table cannot show one row per patient: its patient ids are absent or incomplete.

    The patient is the privacy unit: a patient with k rows is protected at about k·ε. A table
    without ids is accepted only when the caller guarantees one row per patient
    (``one_row_per_patient=True``), and the ledger records that the guarantee rests on it.

    Parameters
    ----------
    violations : list of str
        One line per problem: the id column, the constraint and a count (never an id).
    """

    def __init__(self, violations: list[str]) -> None:
        self.violations = list(violations)
        lines = "\n".join(f"  - {v}" for v in self.violations)
        ValueError.__init__(self, f"the table does not show one row per patient (the privacy unit):\n{lines}")


class DuplicatePatientIdError(PatientIdError):
    """Several rows of the table carry the same patient id.

    The message names the id column and how many ids (and rows) are duplicated, never the ids.

    Parameters
    ----------
    violations : list of str
        One line per problem: the id column, the constraint and a count (never an id).
    column : str
        The column (or index) holding the ids.
    n_duplicated : int
        How many distinct ids appear on more than one row.
    n_rows : int
        How many rows carry one of those ids.
    """

    def __init__(self, violations: list[str], *, column: str = "patient_id", n_duplicated: int = 0,
                 n_rows: int = 0) -> None:
        self.column = column
        self.n_duplicated = n_duplicated
        self.n_rows = n_rows
        super().__init__(violations)


class NotFittedError(SynthHealthError, ValueError, AttributeError):
    """A model was used before ``fit``."""


class BudgetExceededError(SynthHealthError, ValueError):
    """A privacy budget would be exceeded; raised before any data is touched."""


class AccountingError(SynthHealthError):
    """Privacy accounting failed or is inconsistent."""


class OptionalDependencyError(SynthHealthError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class PrivacyLeakWarning(UserWarning):
    """Something about the private data is being used without a DP charge."""


class InsecureRandomnessWarning(UserWarning):
    """Randomness is seeded or otherwise not suitable for a release."""


class LowUtilityWarning(UserWarning):
    """The output is likely to have poor utility (e.g. too little budget)."""


class DataQualityWarning(UserWarning):
    """Input values were clipped, capped or mapped to the missing state."""
