"""The patient schema: one row per patient, every attribute with a public domain.

The schema is the public part of a synthhealth pipeline: category sets, bounds, bins,
caps and code lists are declared here by a person, never computed from the data
they describe. Instances are immutable and validated by :func:`load_schema`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson

from .codes import Code

__all__ = [
    "ATTRIBUTE_TYPES",
    "PATIENT_PATHS",
    "EVENT_RESOURCES",
    "AGGREGATES",
    "Category",
    "Period",
    "FHIRSource",
    "Attribute",
    "PatientSchema",
    "SCHEMA_FORMAT_VERSION",
]

#: Version of the YAML format understood by this release.
SCHEMA_FORMAT_VERSION = 1

#: Statistical types of attributes.
ATTRIBUTE_TYPES = ("categorical", "numeric", "count", "boolean")

#: ``fhir.path`` values for ``resource: Patient`` and the attribute types each may feed.
PATIENT_PATHS: dict[str, tuple[str, ...]] = {
    "gender": ("categorical",),
    "age": ("numeric",),
    "birth_year": ("numeric",),
    "race": ("categorical",),
    "ethnicity": ("categorical",),
    "birth_sex": ("categorical",),
    "marital_status": ("categorical",),
    "deceased": ("boolean",),
    "age_at_death": ("numeric",),
}

#: Event resources (linked to a patient by ``subject``/``patient``) and the element their
#: ``codes`` filter is matched against.
EVENT_RESOURCES: dict[str, str] = {
    "Condition": "code",
    "Observation": "code",
    "Encounter": "type",
    "MedicationRequest": "medicationCodeableConcept",
    "Procedure": "code",
    "Immunization": "vaccineCode",
    "AllergyIntolerance": "code",
}

#: Aggregates of a patient's matching events, and the attribute types each may feed.
AGGREGATES: dict[str, tuple[str, ...]] = {
    "any": ("boolean",),
    "count": ("count",),
    "first": ("numeric", "categorical"),
    "last": ("numeric", "categorical"),
    "min": ("numeric",),
    "max": ("numeric",),
    "mean": ("numeric",),
    "age_at_first": ("numeric",),
    "age_at_last": ("numeric",),
}

#: Aggregates that read ``Observation.value[x]`` (or a component's value).
VALUE_AGGREGATES = ("first", "last", "min", "max", "mean")


@dataclass(frozen=True)
class Category:
    """One category of a categorical attribute.

    Parameters
    ----------
    label : str
        The value in flattened tables.
    codes : tuple of Code
        FHIR codings that map to this category (e.g. OMB race codes).
    values : tuple of str
        Plain values (FHIR ``code`` primitives such as ``female``, or raw table values)
        that map to this category. Defaults to ``(label,)``.
    """

    label: str
    codes: tuple[Code, ...] = ()
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Period:
    """A half-open date window ``[start, end)``; ``None`` means unbounded."""

    start: date | None = None
    end: date | None = None

    def contains(self, day: date) -> bool:
        """Whether ``day`` falls inside the window."""
        if self.start is not None and day < self.start:
            return False
        if self.end is not None and day >= self.end:
            return False
        return True


@dataclass(frozen=True)
class FHIRSource:
    """Where a FHIR-sourced attribute comes from.

    Parameters
    ----------
    resource : str
        ``Patient`` or an event resource (see :data:`EVENT_RESOURCES`).
    path : str or None
        For ``Patient``: one of :data:`PATIENT_PATHS`. For events: ``None``.
    codes : tuple of Code
        Event filter: the event's code must be one of these. Empty = every event.
    aggregate : str or None
        How a patient's matching events become one value (see :data:`AGGREGATES`).
    period : Period or None
        Only events dated inside the window count. ``None``: events before the
        schema's reference date.
    component : Code or None
        For Observations: read the value of the component with this code.
    unit : str or None
        Expected UCUM code of ``valueQuantity``; other units are mapped to missing.
    encounter_classes : tuple of str
        For Encounters: only these ``Encounter.class`` codes count.
    age_at : str
        For ``path: age``: ``reference_date`` or ``end_of_followup`` (death or
        reference date, whichever is first).
    """

    resource: str
    path: str | None = None
    codes: tuple[Code, ...] = ()
    aggregate: str | None = None
    period: Period | None = None
    component: Code | None = None
    unit: str | None = None
    encounter_classes: tuple[str, ...] = ()
    age_at: str = "reference_date"


@dataclass(frozen=True)
class Attribute:
    """One column of the patient table, with its public domain.

    Use :func:`synthhealth.load_schema` to build these; the loader validates every
    field. See ``docs/schema-format.md`` for the YAML format.
    """

    name: str
    type: str
    description: str = ""
    fhir: FHIRSource | None = None
    column: str | None = None
    role: str = "feature"
    missing: bool = True
    # categorical
    categories: tuple[Category, ...] = ()
    other: str | None = None
    # numeric
    bounds: tuple[float, float] | None = None
    bins: tuple[float, ...] | None = None
    unit: str | None = None
    integer: bool = False
    out_of_bounds: str = "clip"
    # count
    cap: int | None = None
    # boolean (plain tables)
    true_values: tuple[str, ...] = ("true", "1", "yes", "y", "t")
    false_values: tuple[str, ...] = ("false", "0", "no", "n", "f")

    @property
    def source_column(self) -> str:
        """Column name in plain input tables (``column`` or ``name``)."""
        return self.column or self.name

    @property
    def labels(self) -> tuple[str, ...]:
        """Category labels (categorical attributes only)."""
        return tuple(c.label for c in self.categories)

    def n_bins(self) -> int:
        """Number of states of the encoded domain, the missing state included."""
        extra = 1 if self.missing else 0
        if self.type == "categorical":
            return len(self.categories) + extra
        if self.type == "boolean":
            return 2 + extra
        if self.type == "count":
            if self.bins is not None:
                return len(self.bins) - 1 + extra
            assert self.cap is not None
            return self.cap + 1 + extra
        assert self.bins is not None
        return len(self.bins) - 1 + extra


@dataclass(frozen=True)
class PatientSchema:
    """A validated FHIR-shaped patient schema (immutable).

    Attributes
    ----------
    name, version, description : str
        Identification of the schema.
    reference_date : datetime.date
        The date the table describes: ages are computed at this date, and events
        after it are ignored unless an attribute's period says otherwise.
    attributes : tuple of Attribute
        The columns, in order.
    value_sets : dict
        Named code lists that attributes refer to.
    patient_id : str or None
        The column of plain tables that holds the patient id (the privacy unit: one row per
        patient, checked by :func:`synthhealth.read_table`). ``None``: tables carry the id in a
        ``patient_id`` column or index, as :func:`synthhealth.flatten` writes it.
    source : str or None
        The file it was loaded from.

    Examples
    --------
    >>> import synthhealth as sh
    >>> schema = sh.load_schema(sh.schema_path("flchain"))
    >>> schema["age"].bounds
    (50.0, 110.0)
    """

    name: str
    version: str
    reference_date: date
    attributes: tuple[Attribute, ...]
    description: str = ""
    value_sets: dict[str, tuple[Code, ...]] = field(default_factory=dict)
    patient_id: str | None = None
    document: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {a.name: a for a in self.attributes})

    def __getitem__(self, name: str) -> Attribute:
        try:
            return self._index[name]  # type: ignore[attr-defined,no-any-return]
        except KeyError:
            raise KeyError(f"schema {self.name!r} has no attribute {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._index  # type: ignore[attr-defined]

    def __iter__(self) -> Iterator[Attribute]:
        return iter(self.attributes)

    def __len__(self) -> int:
        return len(self.attributes)

    @property
    def names(self) -> list[str]:
        """Attribute names, in column order."""
        return [a.name for a in self.attributes]

    @property
    def is_fhir(self) -> bool:
        """Whether every attribute has a FHIR source (so :func:`flatten` can use it)."""
        return all(a.fhir is not None for a in self.attributes)

    @property
    def hash(self) -> str:
        """SHA-256 of the canonical (sorted-key JSON) form of the schema document.

        Models and ledgers record it so a fitted model can refuse a different schema.
        """
        canon = orjson.dumps(self.document, option=orjson.OPT_SORT_KEYS, default=str)
        return hashlib.sha256(canon).hexdigest()

    def domain_size(self) -> float:
        """Size of the full cross-product domain (product of every attribute's states)."""
        return math.prod(a.n_bins() for a in self.attributes)

    def to_dict(self) -> dict[str, Any]:
        """The schema document (as loaded, JSON-serialisable)."""
        return dict(self.document)
