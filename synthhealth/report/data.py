"""Bring the real, holdout and synthetic tables into the common forms that metrics and attacks use.

Three views of each table, all derived from the *public schema* only (never from the data):

- ``codes``: integer codes over the schema's domain (:class:`synthhealth.transform.Encoder`);
  numbers fall in their public bins, missing is its own state;
- ``embedding``: a float matrix for distance-based attacks: each categorical/boolean attribute
  one-hot (missing is a category) scaled by 1/2, so a mismatch adds exactly 1 to the L1 distance;
  each numeric/count attribute scaled to [0, 1] by its declared bounds (or cap) plus a missing
  indicator. The L1 distance between two rows is then Gower's distance times the number of
  attributes (mismatch = 1, numeric difference = |x − y| / range; a missing number against a present
  one adds 1 plus the present value's scaled position, so between 1 and 2);
- ``tables``: the checked DataFrames themselves (:func:`synthhealth.read_table`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from ..exceptions import InvalidParameterError
from ..schema.model import Attribute, PatientSchema
from ..transform.encode import Encoder
from ..transform.table import check_table

__all__ = ["ReportData", "numeric_range"]


def numeric_range(a: Attribute) -> tuple[float, float]:
    """Public range of a numeric or count attribute: declared bounds, bins or ``[0, cap]``."""
    if a.type == "count":
        if a.bins is not None:
            return float(a.bins[0]), float(a.bins[-1])
        assert a.cap is not None
        return 0.0, float(a.cap)
    if a.bounds is not None:
        return float(a.bounds[0]), float(a.bounds[1])
    assert a.bins is not None
    return float(a.bins[0]), float(a.bins[-1])


def _embed(table: pd.DataFrame, schema: PatientSchema) -> np.ndarray:
    blocks: list[np.ndarray] = []
    n = len(table)
    for a in schema.attributes:
        col = table[a.name]
        if a.type in ("categorical", "boolean"):
            if a.type == "categorical":
                k = len(a.categories)
                idx = col.cat.codes.to_numpy(dtype=np.int64).copy()
                idx[idx < 0] = k
            else:
                k = 2
                miss = col.isna().to_numpy(dtype=bool)
                idx = np.where(miss, 2, col.fillna(False).to_numpy(dtype=bool).astype(np.int64))
            block = np.zeros((n, k + 1), dtype=np.float64)
            block[np.arange(n), idx] = 0.5
            blocks.append(block)
        else:
            lo, hi = numeric_range(a)
            vals = col.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
            miss = np.isnan(vals)
            scaled = np.clip((np.where(miss, lo, vals) - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
            scaled[miss] = 0.0
            blocks.append(np.column_stack([scaled, miss.astype(np.float64)]))
    return np.hstack(blocks) if blocks else np.zeros((n, 0))


@dataclass
class ReportData:
    """The three tables of a report, checked against the schema, with their codes and embeddings.

    Parameters
    ----------
    schema : PatientSchema
    train : DataFrame
        The real data the generator was fitted on (the attacks' members).
    holdout : DataFrame
        Real data of the same population *not* used for fitting (non-members; the utility reference).
    synthetic : DataFrame
        The released synthetic data.

    Examples
    --------
    >>> import synthhealth as sh
    >>> from synthhealth.report.data import ReportData
    >>> schema = sh.load_schema("flchain")
    >>> t = sh.datasets.load_flchain().head(60)
    >>> d = ReportData.from_tables(schema, t.iloc[:30], t.iloc[30:], t.iloc[:30])
    >>> d.codes("train").shape == (30, len(schema))
    True
    """

    schema: PatientSchema
    train: pd.DataFrame
    holdout: pd.DataFrame
    synthetic: pd.DataFrame
    encoder: Encoder = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.encoder = Encoder(self.schema)
        self._codes: dict[str, np.ndarray] = {}
        self._emb: dict[str, np.ndarray] = {}

    @classmethod
    def from_tables(cls, schema: PatientSchema, train: pd.DataFrame, holdout: pd.DataFrame,
                    synthetic: pd.DataFrame) -> ReportData:
        """Check the three tables against the schema (declared bounding applied) and wrap them."""
        if not isinstance(schema, PatientSchema):
            raise InvalidParameterError(
                f"The 'schema' parameter must be a PatientSchema. Got {type(schema).__name__} instead.")
        checked = {}
        for name, t in (("real", train), ("holdout", holdout), ("synthetic", synthetic)):
            if not isinstance(t, pd.DataFrame):
                raise InvalidParameterError(
                    f"The {name!r} parameter must be a pandas DataFrame. Got {type(t).__name__} instead.")
            if len(t) == 0:
                raise InvalidParameterError(f"The {name!r} parameter must have at least one row. Got 0 rows instead.")
            # real patients: duplicated ids refused when the tables carry ids; synthetic rows are not patients
            ids = "ignore" if name == "synthetic" else "if_present"
            checked[name] = check_table(t, schema, ids=ids).reset_index(drop=True)
        return cls(schema, checked["real"], checked["holdout"], checked["synthetic"])

    # ------------------------------------------------------------------ views
    def table(self, which: str) -> pd.DataFrame:
        """``"train"``, ``"holdout"`` or ``"synthetic"`` table (checked)."""
        if which not in ("train", "holdout", "synthetic"):
            raise InvalidParameterError(
                f"The 'which' parameter must be one of 'train', 'holdout', 'synthetic'. Got {which!r} instead.")
        return getattr(self, which)

    def codes(self, which: str) -> np.ndarray:
        """Integer codes (n × d) of one table."""
        if which not in self._codes:
            self._codes[which] = self.encoder.encode(self.table(which))
        return self._codes[which]

    def embedding(self, which: str) -> np.ndarray:
        """Float embedding (n × p) of one table for distances (see the module docstring)."""
        if which not in self._emb:
            self._emb[which] = _embed(self.table(which), self.schema)
        return self._emb[which]

    @property
    def names(self) -> tuple[str, ...]:
        """Attribute names in column order."""
        return self.encoder.names

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of states of each attribute (missing included)."""
        return self.encoder.shape

    def labels(self, name: str) -> list[str]:
        """Human-readable state labels of one attribute (bins as intervals)."""
        return self.encoder.state_labels(name)

    @cached_property
    def outcome(self) -> str | None:
        """The attribute with ``role: outcome`` (else the ``event`` of a survival pair), if any."""
        for role in ("outcome", "event"):
            for a in self.schema.attributes:
                if a.role == role:
                    return a.name
        return None

    @cached_property
    def survival(self) -> tuple[str, str] | None:
        """``(time, event)`` attribute names when the schema declares a time-to-event pair."""
        t = [a.name for a in self.schema.attributes if a.role == "time"]
        e = [a.name for a in self.schema.attributes if a.role == "event"]
        return (t[0], e[0]) if t and e else None
