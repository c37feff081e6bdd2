"""Encode patient tables as integer codes over the schema's public domain, and decode back.

Codes per attribute type (``k`` states, then the missing state when the schema allows it):

- categorical: the index of the category label;
- boolean: 0 = false, 1 = true;
- count: the count itself (0..cap) or, with ``bins``, the bin index;
- numeric: the index of the bin ``[e_i, e_{i+1})`` (the last bin is closed).

Decoding draws numbers *uniformly inside the bin* (integers uniformly among the integers of the
bin), so no value of the real data is ever copied into synthetic output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import DataValidationError, InvalidParameterError
from ..schema.model import Attribute, PatientSchema
from .table import check_table

__all__ = ["Encoder", "encode", "decode"]


@dataclass(frozen=True)
class _Spec:
    attr: Attribute
    n_values: int  # states without the missing state
    has_missing: bool

    @property
    def size(self) -> int:
        return self.n_values + (1 if self.has_missing else 0)

    @property
    def missing_code(self) -> int:
        return self.n_values


def _spec(a: Attribute) -> _Spec:
    if a.type == "categorical":
        k = len(a.categories)
    elif a.type == "boolean":
        k = 2
    elif a.type == "count":
        assert a.cap is not None
        k = (len(a.bins) - 1) if a.bins is not None else a.cap + 1
    else:
        assert a.bins is not None
        k = len(a.bins) - 1
    return _Spec(a, k, a.missing)


class Encoder:
    """Encoder/decoder between a schema-shaped table and an integer code matrix.

    Parameters
    ----------
    schema : PatientSchema

    Examples
    --------
    >>> import pandas as pd, synthhealth as sh
    >>> enc = Encoder(sh.load_schema("flchain"))
    >>> enc.shape[:3]
    (12, 3, 10)
    """

    def __init__(self, schema: PatientSchema) -> None:
        if not isinstance(schema, PatientSchema):
            raise InvalidParameterError(
                f"The 'schema' parameter of Encoder must be a PatientSchema. Got {type(schema).__name__} instead.")
        self.schema = schema
        self.specs = [_spec(a) for a in schema.attributes]

    @property
    def names(self) -> tuple[str, ...]:
        """Attribute names in column order."""
        return tuple(s.attr.name for s in self.specs)

    @property
    def shape(self) -> tuple[int, ...]:
        """Number of states of each attribute (missing state included)."""
        return tuple(s.size for s in self.specs)

    def state_labels(self, name: str) -> list[str]:
        """Human-readable label of each state of an attribute (for reports and debugging)."""
        spec = self.specs[self.names.index(name)]
        a = spec.attr
        if a.type == "categorical":
            labels = list(a.labels)
        elif a.type == "boolean":
            labels = ["false", "true"]
        elif a.type == "count" and a.bins is None:
            labels = [str(i) for i in range(spec.n_values)]
        else:
            e = a.bins
            assert e is not None
            labels = [f"[{e[i]:g}, {e[i + 1]:g})" for i in range(len(e) - 2)] + [f"[{e[-2]:g}, {e[-1]:g}]"]
            if a.type == "count":
                labels = [f"{int(e[i])}-{int(e[i + 1]) - 1}" for i in range(len(e) - 1)]
        if spec.has_missing:
            labels.append("<missing>")
        return labels

    # ------------------------------------------------------------------ encode
    def encode(self, table: pd.DataFrame) -> np.ndarray:
        """Integer codes (n_rows × n_attributes, ``int64``) of a table in schema form.

        The table is first checked with :func:`synthhealth.read_table`'s rules (declared bounding
        applied, every violation listed), so codes are always inside the public domain. Patient ids
        are not looked at here: :meth:`synthhealth.generators.base.BaseGenerator.fit` checks them.

        Raises
        ------
        DataValidationError
            If the table does not match the schema.
        """
        if not isinstance(table, pd.DataFrame):
            raise InvalidParameterError(
                f"The 'table' parameter must be a pandas DataFrame. Got {type(table).__name__} instead.")
        checked = check_table(table, self.schema, ids="ignore")
        n = len(checked)
        codes = np.empty((n, len(self.specs)), dtype=np.int64)
        for j, spec in enumerate(self.specs):
            codes[:, j] = self._encode_column(spec, checked[spec.attr.name])
        return codes

    def _encode_column(self, spec: _Spec, col: pd.Series) -> np.ndarray:
        a = spec.attr
        if a.type == "categorical":
            out = col.cat.codes.to_numpy(dtype=np.int64).copy()
            miss = out < 0
        elif a.type == "boolean":
            miss = col.isna().to_numpy(dtype=bool)
            out = np.where(miss, 0, col.fillna(False).to_numpy(dtype=bool)).astype(np.int64)
        else:
            vals = col.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
            miss = np.isnan(vals)
            safe = np.where(miss, 0.0, vals)
            if a.type == "count" and a.bins is None:
                out = safe.astype(np.int64)
            else:
                edges = np.asarray(a.bins, dtype=float)
                out = np.searchsorted(edges, safe, side="right") - 1
                out = np.clip(out, 0, len(edges) - 2)
        if miss.any():
            if not spec.has_missing:  # read_table already refuses this; keep the invariant explicit
                raise DataValidationError([f"column {a.name!r}: missing values but no missing state"])
            out[miss] = spec.missing_code
        return out

    # ------------------------------------------------------------------ decode
    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        """A table in schema form from integer codes; numbers drawn uniformly inside their bins.

        Parameters
        ----------
        codes : ndarray of int, shape (n, n_attributes)
        rng : numpy.random.Generator
            Source of the within-bin draws (post-processing: no privacy cost).
        """
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != len(self.specs):
            raise InvalidParameterError(
                f"The 'codes' parameter must have shape (n, {len(self.specs)}). Got {codes.shape} instead.")
        cols: dict[str, Any] = {}
        for j, spec in enumerate(self.specs):
            c = codes[:, j]
            if c.size and (c.min() < 0 or c.max() >= spec.size):
                raise InvalidParameterError(f"codes of attribute {spec.attr.name!r} must be in [0, {spec.size}).")
            cols[spec.attr.name] = self._decode_column(spec, c, rng)
        return pd.DataFrame(cols)

    def _decode_column(self, spec: _Spec, c: np.ndarray, rng: np.random.Generator) -> Any:
        a = spec.attr
        miss = (c == spec.missing_code) if spec.has_missing else np.zeros(len(c), dtype=bool)
        if a.type == "categorical":
            labels = np.array(list(a.labels) + [None], dtype=object)
            return pd.Categorical(labels[c], categories=list(a.labels))
        if a.type == "boolean":
            vals = np.array([False, True, None], dtype=object)[c]
            return pd.array(vals, dtype="boolean")
        if a.type == "count":
            if a.bins is None:
                out = c.astype(float)
            else:
                e = np.asarray(a.bins, dtype=float)
                lo = e[np.minimum(c, len(e) - 2)]
                hi = e[np.minimum(c, len(e) - 2) + 1] - 1  # integer bins [lo, hi-1]
                out = np.floor(lo + rng.random(len(c)) * (hi - lo + 1))
            out[miss] = np.nan
            return pd.array([None if np.isnan(v) else int(v) for v in out], dtype="Int64")
        e = np.asarray(a.bins, dtype=float)
        idx = np.minimum(c, len(e) - 2)
        lo, hi = e[idx], e[idx + 1]
        last = idx == len(e) - 2
        if a.integer:
            ilo = np.ceil(lo)
            # integers in [lo, hi) or, in the closed last bin, [lo, hi]
            ihi = np.where(last, np.floor(hi), np.ceil(hi) - 1)
            ihi = np.maximum(ihi, ilo)
            out = ilo + np.floor(rng.random(len(c)) * (ihi - ilo + 1))
        else:
            out = lo + rng.random(len(c)) * (hi - lo)
        out = out.astype(float)
        out[miss] = np.nan
        return out


def encode(table: pd.DataFrame, schema: PatientSchema) -> np.ndarray:
    """Shortcut for ``Encoder(schema).encode(table)``."""
    return Encoder(schema).encode(table)


def decode(codes: np.ndarray, schema: PatientSchema, rng: np.random.Generator) -> pd.DataFrame:
    """Shortcut for ``Encoder(schema).decode(codes, rng)``."""
    return Encoder(schema).decode(codes, rng)
