"""Plain tables (CSV, Parquet, DataFrames) checked against a patient schema."""

from __future__ import annotations

import lzma
import os
import re
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import check_bool, check_choice
from ..exceptions import (
    DataValidationError,
    DuplicatePatientIdError,
    InputFileError,
    InvalidParameterError,
    PatientIdError,
)
from ..schema.model import Attribute, PatientSchema
from .flatten import AttributeCounts, FlattenReport

__all__ = ["read_table", "check_table", "write_table", "load_table_file", "PATIENT_ID", "patient_ids"]

_MAX_ROWS_SHOWN = 5

#: Name of the patient id column or index of tables in schema form (as :func:`synthhealth.flatten` writes it).
PATIENT_ID = "patient_id"
#: How a table's one-row-per-patient property is known (recorded in the table, the ledger and the report).
ID_CHECKED = "checked"
ID_ATTESTED = "attested"


def _find_ids(df: pd.DataFrame, schema: PatientSchema) -> tuple[str | None, Any, bool]:
    """(name, values, from_index) of the patient ids of ``df``; name ``None`` when it has none.

    Looked up in this order: the schema's declared ``patient_id`` column, a ``patient_id`` column
    (tables in schema form written by :func:`write_table` as CSV), an index of either name.
    """
    names = [n for n in (schema.patient_id, PATIENT_ID) if n is not None]
    for n in names:
        if n in df.columns:
            col = df[n]
            if isinstance(col, pd.DataFrame):
                raise PatientIdError([f"patient id column {n!r}: appears more than once"])
            return n, col.to_numpy(dtype=object), False
    if df.index.name is not None and df.index.name in names:
        return str(df.index.name), df.index.to_numpy(dtype=object), True
    return None, None, False


def patient_ids(table: pd.DataFrame, schema: PatientSchema, *, one_row_per_patient: bool = False,
                caller: str = "read_table") -> tuple[pd.Index | None, str]:
    """Find and check the patient ids of a table: the privacy unit is the patient.

    Parameters
    ----------
    table : pandas.DataFrame
        The table, in source form (the schema's ``patient_id`` column) or schema form (a
        ``patient_id`` column or index, as :func:`synthhealth.flatten` and :func:`read_table`
        give it).
    schema : PatientSchema
        Its schema (declares the id column in ``patient_id``).
    one_row_per_patient : bool, default False
        The caller guarantees one row per patient: a table without ids is accepted (ids that are
        present are still checked).
    caller : str, default "read_table"
        Named in the error messages.

    Returns
    -------
    (pandas.Index or None, str)
        The ids as an index named ``patient_id`` (``None`` without ids), and how one row per
        patient is known: ``"checked"`` (unique ids) or ``"attested"`` (no ids; the caller's
        guarantee, also when the table was read with ``one_row_per_patient=True``).

    Raises
    ------
    PatientIdError
        If the table has no ids and nobody guarantees one row per patient, or some rows have no id.
    DuplicatePatientIdError
        If ids repeat; the message gives the column and how many ids and rows, never an id.

    Examples
    --------
    >>> import pandas as pd, synthhealth as sh
    >>> schema = sh.load_schema("flchain")
    >>> ids, how = patient_ids(pd.DataFrame({"id": [3, 7]}), schema)
    >>> list(ids), how
    ([3, 7], 'checked')
    >>> patient_ids(pd.DataFrame({"id": [3, 3, 7]}), schema)
    Traceback (most recent call last):
    ...
    synthhealth.exceptions.DuplicatePatientIdError: the table does not show one row per patient (the privacy unit):
      - patient id column 'id': 1 ids appear on more than one row (2 rows); each patient must have exactly one row
    """
    name, values, from_index = _find_ids(table, schema)
    if name is None:
        meta = table.attrs.get("synthhealth") if isinstance(table.attrs, dict) else None
        if one_row_per_patient or (isinstance(meta, dict) and meta.get("patient_ids") == ID_ATTESTED):
            return None, ID_ATTESTED
        declared = f"the schema's patient_id column {schema.patient_id!r}" if schema.patient_id else \
            "a 'patient_id' column (declare the id column with 'patient_id:' in the schema)"
        raise PatientIdError([
            f"patient id: the table has none ({declared}, or an index named 'patient_id'). A patient with k rows "
            f"would be protected at about k times epsilon: give the ids, or pass one_row_per_patient=True to "
            f"{caller} to guarantee one row per patient yourself (the ledger and the report then say that the "
            f"guarantee rests on it)"])
    what = f"patient id {'index' if from_index else 'column'} {name!r}"
    ids = pd.Index(values, name=PATIENT_ID, dtype=object)
    text = pd.Series(values, dtype=object)
    missing = text.isna().to_numpy(dtype=bool) | (text.astype("string").str.strip() == "").fillna(True).to_numpy(dtype=bool)
    if missing.any():
        raise PatientIdError([f"{what}: {int(missing.sum())} rows have no patient id ({_rows(missing)})"])
    # "7" read from a CSV and 7.0 from a float column are the same id
    keys = pd.Series([_as_text(v) for v in values], dtype=object)
    dup = keys.duplicated(keep=False).to_numpy(dtype=bool)
    if dup.any():
        n_ids = int(keys[dup].nunique())
        n_rows = int(dup.sum())
        raise DuplicatePatientIdError(
            [f"{what}: {n_ids} ids appear on more than one row ({n_rows} rows); each patient must have exactly "
             f"one row"], column=name, n_duplicated=n_ids, n_rows=n_rows)
    return ids, ID_CHECKED


def load_table_file(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame (no schema checks).

    Parameters
    ----------
    path : str or Path
        A ``.csv`` (optionally compressed: ``.csv.gz``, ``.csv.xz``), ``.parquet`` or ``.pq`` file.

    Returns
    -------
    pandas.DataFrame
        The file's table. CSV columns are read as strings (empty fields are missing) so that
        :func:`read_table` does the typing; Parquet columns keep their stored types.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    InvalidParameterError
        If the extension is neither ``.csv`` (optionally ``.gz``) nor ``.parquet``.
    InputFileError
        If the file cannot be read as its extension says: an empty (0-byte) file, a CSV that is
        not UTF-8 text (e.g. Latin-1) or has rows with more fields than its header (the line is
        named), a corrupt compressed file, or a ``.parquet`` file that is not Parquet. The message
        names the file and the problem, never the file's content.

    Examples
    --------
    >>> import pandas as pd, tempfile, pathlib
    >>> tmp = tempfile.TemporaryDirectory()
    >>> out = pathlib.Path(tmp.name) / "t.csv"
    >>> pd.DataFrame({"sex": ["F", ""], "age": [61, 70]}).to_csv(out, index=False)
    >>> load_table_file(out).to_dict("list")
    {'sex': ['F', nan], 'age': ['61', '70']}
    >>> tmp.cleanup()
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"table file not found: {p}")
    name = p.name.lower()
    if name.endswith((".parquet", ".pq")):
        return _read_parquet(p)
    if name.endswith((".csv", ".csv.gz", ".csv.xz")):
        return _read_csv(p)
    raise InvalidParameterError(
        f"The 'path' parameter of read_table must end in .csv, .csv.gz, .csv.xz or .parquet. Got {p.name!r} instead.")


def _read_parquet(p: Path) -> pd.DataFrame:
    if p.is_file() and p.stat().st_size == 0:
        raise InputFileError("the file is empty (0 bytes), not a Parquet table", file=p)
    try:
        import pyarrow as pa
        arrow_errors: tuple[type[BaseException], ...] = (pa.ArrowException,)
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        arrow_errors = ()
    try:
        return pd.read_parquet(p)
    except (*arrow_errors, ValueError, EOFError) as exc:  # pyarrow's messages name no data; they are not shown
        raise InputFileError(f"not a readable Parquet file ({type(exc).__name__}): is it a Parquet table, and "
                             "complete?", file=p) from None
    except OSError as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise InputFileError(f"not a readable Parquet file ({type(exc).__name__}): is it a Parquet table, and "
                             "complete?", file=p) from None


_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _read_csv(p: Path) -> pd.DataFrame:
    if p.is_file() and p.stat().st_size == 0:
        raise InputFileError("the file is empty (0 bytes): a CSV table needs at least a header line", file=p)
    try:
        return pd.read_csv(p, keep_default_na=True, na_values=[""], dtype=str, encoding="utf-8")
    except UnicodeDecodeError:
        raise InputFileError("not UTF-8 text (it may be Latin-1 or Windows-1252): save the CSV as UTF-8",
                             file=p) from None
    except pd.errors.EmptyDataError:
        raise InputFileError("the file holds no columns (no header line)", file=p) from None
    except pd.errors.ParserError as exc:
        m = _FIELDS.search(str(exc))
        if m:
            raise InputFileError(f"line {m.group(2)} has {m.group(3)} fields, the header has {m.group(1)} "
                                 "(a ragged CSV: quote fields that hold commas)", file=p) from None
        raise InputFileError("not a well-formed CSV table (e.g. an unclosed quote); pandas could not parse it",
                             file=p) from None
    except (EOFError, lzma.LZMAError, zlib.error) as exc:
        raise InputFileError(f"a corrupt or truncated compressed file ({type(exc).__name__})", file=p) from None
    except OSError as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise InputFileError(f"a corrupt or unreadable file ({type(exc).__name__})", file=p) from None


def write_table(table: pd.DataFrame, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write a table to ``.parquet`` or ``.csv`` atomically (temporary file, then rename).

    No partial file is left behind if writing fails, and an existing file is never replaced
    unless ``overwrite`` is true.

    Parameters
    ----------
    table : pandas.DataFrame
        The table to write; its index is written too (e.g. ``patient_id``).
    path : str or Path
        The output file, ending in ``.parquet``, ``.pq`` or ``.csv``; missing parent folders are
        created.
    overwrite : bool, default False
        Replace an existing file. Without it, an existing file is refused (and left as it was).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InvalidParameterError
        If ``path`` does not end in ``.parquet``, ``.pq`` or ``.csv``, or it exists and
        ``overwrite`` is false.

    Examples
    --------
    >>> import pandas as pd, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> write_table(pd.DataFrame({"a": [1]}), out).name
    't.csv'
    """
    p = Path(path)
    name = p.name.lower()
    if not name.endswith((".parquet", ".pq", ".csv")):
        raise InvalidParameterError(
            f"The output path must end in .parquet or .csv. Got {p.name!r} instead.")
    if not isinstance(overwrite, bool):
        raise InvalidParameterError(
            f"The 'overwrite' parameter of write_table must be a bool. Got {overwrite!r} instead.")
    if p.is_dir():
        raise InvalidParameterError(f"The output path {p} is a folder: give a file name ending in .parquet or .csv.")
    if p.exists() and not overwrite:
        raise InvalidParameterError(_EXISTS.format(p=p))
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    try:
        if name.endswith(".csv"):
            table.to_csv(tmp, index=True)
        else:
            table.to_parquet(tmp, index=True)
        if overwrite:
            os.replace(tmp, p)
        else:
            _link_new(Path(tmp), p)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return p


_EXISTS = "{p} already exists: synthhealth does not replace a file unless told to (overwrite=True, or --overwrite)."


def _link_new(tmp: Path, p: Path) -> None:
    """Move ``tmp`` to ``p`` only if ``p`` does not exist (no race: a hard link fails on an existing name)."""
    try:
        os.link(tmp, p)
    except FileExistsError:
        raise InvalidParameterError(_EXISTS.format(p=p)) from None
    except OSError:  # no hard links on this file system: check, then rename
        if p.exists():
            raise InvalidParameterError(_EXISTS.format(p=p)) from None
        os.replace(tmp, p)


def _rows(mask: np.ndarray) -> str:
    idx = np.flatnonzero(mask)
    shown = ", ".join(str(int(i)) for i in idx[:_MAX_ROWS_SHOWN])
    more = ", ..." if len(idx) > _MAX_ROWS_SHOWN else ""
    return f"rows {shown}{more}"


def _is_missing(series: pd.Series) -> np.ndarray:
    miss = series.isna().to_numpy(dtype=bool)
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        stripped = series.astype("string").str.strip()
        miss = miss | (stripped == "").fillna(True).to_numpy(dtype=bool)
    return miss


def _as_text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


class _Checker:
    def __init__(self, coerce: bool) -> None:
        self.coerce = coerce
        self.violations: list[str] = []

    def violation(self, attr: Attribute, what: str, mask: np.ndarray, counts: AttributeCounts) -> None:
        n = int(mask.sum())
        if not n:
            return
        self._violated |= mask
        if self.coerce and attr.missing:
            counts.out_of_domain += n  # coerced to the missing state
        else:
            self.violations.append(f"column {attr.source_column!r} ({attr.name}): {n} {what} ({_rows(mask)})")

    def column(self, attr: Attribute, s: pd.Series, counts: AttributeCounts) -> Any:
        miss = _is_missing(s)
        self._violated = np.zeros(len(s), dtype=bool)
        if attr.type == "categorical":
            # a category's label always matches (tables in schema form), besides its declared values
            lookup = {c.label: c.label for c in attr.categories}
            lookup.update({v: c.label for c in attr.categories for v in c.values})
            out = np.empty(len(s), dtype=object)
            bad = np.zeros(len(s), dtype=bool)
            for i, (v, m) in enumerate(zip(s.to_numpy(dtype=object), miss, strict=True)):
                if m:
                    out[i] = None
                    continue
                text = _as_text(v)
                label = lookup.get(text)
                if label is None:
                    # "4.0" read from a CSV matches category "4"
                    try:
                        num = float(text)
                        if num.is_integer():
                            label = lookup.get(str(int(num)))
                    except ValueError:
                        pass
                if label is None:
                    if attr.other is not None:
                        counts.out_of_domain += 1
                        label = attr.other
                    else:
                        bad[i] = True
                out[i] = label
            self.violation(attr, "values not among the declared categories", bad, counts)
            out[bad] = None
            result: Any = pd.Categorical(out, categories=list(attr.labels))
            final_missing = pd.isna(result)
        elif attr.type == "boolean":
            truthy = set(attr.true_values)
            falsy = set(attr.false_values)
            out_b = np.empty(len(s), dtype=object)
            bad = np.zeros(len(s), dtype=bool)
            for i, (v, m) in enumerate(zip(s.to_numpy(dtype=object), miss, strict=True)):
                if m:
                    out_b[i] = None
                elif isinstance(v, (bool, np.bool_)):
                    out_b[i] = bool(v)
                else:
                    t = _as_text(v).lower()
                    if t in truthy:
                        out_b[i] = True
                    elif t in falsy:
                        out_b[i] = False
                    else:
                        bad[i] = True
                        out_b[i] = None
            self.violation(attr, "values that are not booleans (see true_values/false_values)", bad, counts)
            result = pd.array(out_b, dtype="boolean")
            final_missing = result.isna()
        else:
            if pd.api.types.is_bool_dtype(s.dtype):
                num = pd.Series(np.full(len(s), np.nan))
                bad = ~miss
            else:
                num = pd.to_numeric(s, errors="coerce")
                bad = num.isna().to_numpy(dtype=bool) & ~miss
            vals = num.to_numpy(dtype=float, na_value=np.nan).copy()
            self.violation(attr, "values that are not numbers", bad, counts)
            vals[bad] = np.nan
            if attr.type == "count":
                assert attr.cap is not None
                neg = vals < 0
                frac = ~np.isnan(vals) & (vals != np.round(vals))
                self.violation(attr, "negative counts", neg, counts)
                self.violation(attr, "counts that are not integers", frac, counts)
                vals[neg | frac] = np.nan
                over = vals > attr.cap
                counts.capped += int(over.sum())
                vals[over] = attr.cap
                result = pd.array([None if np.isnan(v) else int(v) for v in vals], dtype="Int64")
            else:
                assert attr.bounds is not None
                lo, hi = attr.bounds
                out_mask = (vals < lo) | (vals > hi)
                n_out = int(out_mask.sum())
                if n_out:
                    if attr.out_of_bounds == "clip":
                        counts.clipped += n_out
                        vals = np.clip(vals, lo, hi)
                    else:
                        counts.out_of_domain += n_out
                        vals[out_mask] = np.nan
                if attr.integer:
                    vals = np.round(vals)
                result = vals
            final_missing = np.isnan(np.asarray(pd.array(result, dtype="Float64").to_numpy(dtype=float, na_value=np.nan)))
        final_missing = np.asarray(final_missing, dtype=bool)
        if not attr.missing:
            # values already reported as violations are not reported again as missing
            self.violation(attr, "missing values, but the schema declares 'missing: false'",
                           final_missing & ~self._violated, counts)
        counts.missing += int(final_missing.sum())
        return result


def read_table(
    data: str | os.PathLike[str] | pd.DataFrame,
    schema: PatientSchema,
    *,
    on_violation: str = "raise",
    one_row_per_patient: bool = False,
) -> pd.DataFrame:
    """Read a plain table (one row per patient) and check it against a schema.

    The patient is the privacy unit, so the table must show one row per patient: the ids are
    read from the schema's ``patient_id`` column (or a ``patient_id`` column or index, as
    :func:`synthhealth.flatten` and :func:`write_table` leave them), and duplicated or missing ids
    are refused. A table without ids is accepted only with ``one_row_per_patient=True``.

    Declared bounding is always applied and counted: numbers outside ``bounds`` are
    clipped (or set missing with ``out_of_bounds: missing``), counts above ``cap`` are
    capped, unknown categories go to the declared ``other`` category. Anything else that
    does not fit the schema is a *violation*.

    Parameters
    ----------
    data : path or DataFrame
        A ``.csv`` (optionally ``.gz``/``.xz``) or ``.parquet`` file, or a DataFrame.
        Columns are matched by each attribute's ``column`` (default: its name), or by
        the attribute name when that column is absent; other columns are dropped.
    schema : PatientSchema
        The public schema of the table.
    on_violation : {"raise", "coerce"}, default "raise"
        ``"raise"``: list every violation (missing column, non-numeric value, unknown
        category, non-boolean value, negative or fractional count, missing value where
        none is allowed) in one :class:`DataValidationError`. ``"coerce"``: map violating
        values to missing and count them as out of domain (attributes with
        ``missing: false`` have no missing state, so their violations still raise).
    one_row_per_patient : bool, default False
        The caller guarantees that the table has one row per patient: a table without patient ids
        is accepted (ids that are present are still checked). The guarantee then rests on this
        statement, and the table, the ledger of any fit and the report record it (``"attested"``).

    Returns
    -------
    pandas.DataFrame
        Columns named and ordered like the schema's attributes, typed like
        :func:`synthhealth.flatten`'s output and indexed by ``patient_id`` (the input's index when
        the table has no ids); ``df.attrs["synthhealth"]`` holds the counts and ``patient_ids``:
        ``"checked"`` or ``"attested"``.

    Raises
    ------
    DataValidationError
        Listing every violation (column, constraint, how many, which rows); values from the
        table are never echoed.
    PatientIdError
        If the table has no patient ids and ``one_row_per_patient`` is false, or some rows have
        no id.
    DuplicatePatientIdError
        If a patient id appears on several rows (the message names the column and how many ids
        are duplicated, never an id).
    InputFileError
        If the file cannot be read (see :func:`load_table_file`) or holds no patients (a header
        line only).

    Examples
    --------
    >>> import pandas as pd, synthhealth as sh
    >>> schema = sh.load_schema("flchain")
    >>> df = pd.DataFrame({"id": [1], "age": [61], "sex": ["F"], "sample.yr": [1997], "kappa": [1.2],
    ...     "lambda": [1.5], "flc.grp": [4], "creatinine": [None], "mgus": ["no"],
    ...     "futime": [3000], "death": [False], "chapter": [None]})
    >>> sh.read_table(df, schema)["sample_yr"].iloc[0]
    '1997'
    """
    return check_table(data, schema, on_violation=on_violation, one_row_per_patient=one_row_per_patient)


def check_table(data: str | os.PathLike[str] | pd.DataFrame, schema: PatientSchema, *, on_violation: str = "raise",
                one_row_per_patient: bool = False, ids: str = "require") -> pd.DataFrame:
    """:func:`read_table`, with a choice of what is done with the patient ids (internal callers).

    ``ids="require"`` is :func:`read_table`'s contract; ``"if_present"`` checks the ids when the
    table has them (real tables inside the report); ``"ignore"`` skips them (synthetic tables, whose
    rows are not patients) and keeps the input's index.
    """
    if not isinstance(schema, PatientSchema):
        raise InvalidParameterError(
            f"The 'schema' parameter of read_table must be a PatientSchema (see load_schema). Got {type(schema).__name__} instead.")
    check_choice(on_violation, "on_violation", ("raise", "coerce"), "read_table")
    check_bool(one_row_per_patient, "one_row_per_patient", "read_table")
    if isinstance(data, pd.DataFrame):
        df = data
    elif isinstance(data, (str, os.PathLike)):
        df = load_table_file(data)
        if len(df) == 0:
            raise InputFileError("the input held no patients (a header line and 0 rows)", file=data)
    else:
        raise InvalidParameterError(
            f"The 'data' parameter of read_table must be a path or a pandas DataFrame. Got {type(data).__name__} instead.")
    check_choice(ids, "ids", ("require", "if_present", "ignore"), "check_table")
    index: pd.Index | None = None
    basis: str | None = None
    if ids == "require" or (ids == "if_present" and _find_ids(df, schema)[0] is not None):
        index, basis = patient_ids(df, schema, one_row_per_patient=one_row_per_patient, caller="read_table")
    checker = _Checker(on_violation == "coerce")
    # a table already in schema form (e.g. written by write_table) uses the attribute names
    source = {a.name: a.source_column if a.source_column in df.columns else a.name for a in schema.attributes}
    missing_cols = [a for a in schema.attributes if source[a.name] not in df.columns]
    for a in missing_cols:
        checker.violations.append(f"column {a.source_column!r} ({a.name}): missing from the table")
    if missing_cols and on_violation == "coerce":
        raise DataValidationError(checker.violations)
    counts = {a.name: AttributeCounts() for a in schema.attributes}
    columns: dict[str, Any] = {}
    for a in schema.attributes:
        if source[a.name] in df.columns:
            col = df[source[a.name]]
            if isinstance(col, pd.DataFrame):
                checker.violations.append(f"column {a.source_column!r} ({a.name}): appears more than once")
                continue
            columns[a.name] = checker.column(a, col, counts[a.name])
    if checker.violations:
        raise DataValidationError(checker.violations)
    out = pd.DataFrame(columns, index=df.index if index is None else index)
    report = FlattenReport(schema.name, schema.hash, len(out), counts, {})
    id_cols = {n for n in (schema.patient_id, PATIENT_ID) if n is not None}
    ignored = [str(c) for c in df.columns if c not in set(source.values()) and c not in id_cols]
    out.attrs["synthhealth"] = {"kind": "table", **report.to_dict(), "ignored_columns": ignored}
    if basis is not None:
        out.attrs["synthhealth"]["patient_ids"] = basis
    return out
