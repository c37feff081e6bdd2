"""Plain tables: read_table checks against the schema, listing every violation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import synthhealth as sh


def flchain_rows() -> pd.DataFrame:
    return pd.DataFrame({
        "id": [101, 102, 103],  # the schema's patient_id column
        "age": [61, 97, 50.4],
        "sex": ["F", "M", "F"],
        "sample.yr": [1997, 2003, 1995],
        "kappa": [1.2, 75.0, 0.3],
        "lambda": [1.5, 2.0, 0.6],
        "flc.grp": ["4", 10, "1"],
        "creatinine": [None, 1.1, 0.9],
        "mgus": ["no", "yes", "no"],
        "futime": [3000, 85, 5000],
        "death": [False, True, False],
        "chapter": [None, "Circulatory", np.nan],
        "name": ["synthetic-a", "synthetic-b", "synthetic-c"],  # not in the schema: dropped
    })


def test_read_table_types_and_bounding(flchain_schema: sh.PatientSchema) -> None:
    t = sh.read_table(flchain_rows(), flchain_schema)
    assert list(t.columns) == flchain_schema.names
    assert list(t["sample_yr"]) == ["1997", "2003", "1995"]
    assert list(t["flc_grp"]) == ["4", "10", "1"]
    assert t["age"].tolist() == [61.0, 97.0, 50.0]  # integer attribute rounded
    assert t["kappa"].tolist() == [1.2, 50.0, 0.3]  # clipped to the declared upper bound
    assert t["mgus"].tolist() == [False, True, False] and str(t["mgus"].dtype) == "boolean"
    assert t["chapter"].isna().tolist() == [True, False, True]
    meta = t.attrs["synthhealth"]
    assert meta["kind"] == "table" and meta["ignored_columns"] == ["name"]
    rep = sh.report_of(t)
    assert rep is not None and rep.attributes["kappa"].clipped == 1 and rep.attributes["creatinine"].missing == 1


def test_every_violation_listed_without_values(flchain_schema: sh.PatientSchema) -> None:
    df = flchain_rows().drop(columns=["lambda"])
    df["sex"] = ["F", "X-secret", "female-secret"]
    df["kappa"] = ["1.0", "high-secret", 2.0]
    df["mgus"] = ["no", "maybe-secret", None]
    with pytest.raises(sh.DataValidationError) as info:
        sh.read_table(df, flchain_schema)
    v = info.value.violations
    assert v == [
        "column 'lambda' (lambda): missing from the table",
        "column 'sex' (sex): 2 values not among the declared categories (rows 1, 2)",
        "column 'kappa' (kappa): 1 values that are not numbers (rows 1)",
        "column 'mgus' (mgus): 1 values that are not booleans (see true_values/false_values) (rows 1)",
        "column 'mgus' (mgus): 1 missing values, but the schema declares 'missing: false' (rows 2)",
    ]
    assert "secret" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_counts_violations_and_cap() -> None:
    schema = sh.load_schema({"synthhealth_schema": 1, "name": "c", "version": "1", "reference_date": "2020-01-01",
                             "attributes": [{"name": "n", "type": "count", "cap": 5}]})
    t = sh.read_table(pd.DataFrame({"n": [0, 9, None]}), schema, one_row_per_patient=True)
    assert t["n"].tolist() == [0, 5, pd.NA] and sh.report_of(t).attributes["n"].capped == 1  # type: ignore[union-attr]
    with pytest.raises(sh.DataValidationError) as info:
        sh.read_table(pd.DataFrame({"n": [-1, 2.5, 3], "patient_id": ["a", "b", "c"]}), schema)
    assert info.value.violations == ["column 'n' (n): 1 negative counts (rows 0)",
                                     "column 'n' (n): 1 counts that are not integers (rows 1)"]


def test_coerce_maps_violations_to_missing(flchain_schema: sh.PatientSchema) -> None:
    df = flchain_rows()
    df["sex"] = ["F", "X", "M"]
    t = sh.read_table(df, flchain_schema, on_violation="coerce")
    assert t["sex"].isna().tolist() == [False, True, False]
    assert sh.report_of(t).attributes["sex"].out_of_domain == 1  # type: ignore[union-attr]


def test_files_round_trip(tmp_path: Path, flchain_schema: sh.PatientSchema) -> None:
    t = sh.read_table(flchain_rows(), flchain_schema)
    for name in ("t.csv", "t.parquet"):
        path = sh.write_table(t, tmp_path / name)
        back = sh.read_table(path, flchain_schema)
        assert back["kappa"].tolist() == t["kappa"].tolist()
        assert back["sample_yr"].tolist() == t["sample_yr"].tolist()
        assert back["mgus"].tolist() == t["mgus"].tolist()
        assert back.index.name == "patient_id" and [str(i) for i in back.index] == ["101", "102", "103"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.parquet"]  # no temporary files left


def test_write_table_leaves_nothing_on_failure(tmp_path: Path) -> None:
    class Boom(pd.DataFrame):
        def to_parquet(self, *a, **k):  # type: ignore[no-untyped-def,override]
            raise RuntimeError("disk full")
    with pytest.raises(RuntimeError):
        sh.write_table(Boom({"a": [1]}), tmp_path / "out.parquet")
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(tmp_path: Path, flchain_schema: sh.PatientSchema) -> None:
    with pytest.raises(sh.InvalidParameterError, match="must end in .csv, .csv.gz, .csv.xz or .parquet. Got 'x.xlsx'"):
        (tmp_path / "x.xlsx").write_text("")
        sh.read_table(tmp_path / "x.xlsx", flchain_schema)
    with pytest.raises(FileNotFoundError):
        sh.read_table(tmp_path / "none.csv", flchain_schema)
    with pytest.raises(sh.InvalidParameterError, match="'on_violation' parameter of read_table must be one of"):
        sh.read_table(flchain_rows(), flchain_schema, on_violation="ignore")
    with pytest.raises(sh.InvalidParameterError, match="must be a path or a pandas DataFrame. Got list"):
        sh.read_table([1, 2], flchain_schema)  # type: ignore[arg-type]


def test_flchain_example(flchain_schema: sh.PatientSchema) -> None:
    pytest.importorskip("sksurv")
    df = sh.datasets.load_flchain()
    t = sh.read_table(df, flchain_schema)
    assert t.shape == (7874, 11) and t.index.is_unique and t.index.name == "patient_id"
    assert t["creatinine"].isna().sum() == 1350 and t["chapter"].isna().sum() == 5705
    assert t["death"].sum() == 2169
    for a in flchain_schema:
        if a.type == "numeric":
            assert t[a.name].dropna().between(*a.bounds).all()  # type: ignore[misc]


# ------------------------------------------------------------------ the privacy unit: patient ids
def test_ids_become_the_index_and_are_checked(flchain_schema: sh.PatientSchema) -> None:
    t = sh.read_table(flchain_rows(), flchain_schema)
    assert t.index.name == "patient_id" and list(t.index) == [101, 102, 103]
    assert t.attrs["synthhealth"]["patient_ids"] == "checked"
    assert "id" not in t.attrs["synthhealth"]["ignored_columns"]
    # a table in schema form (a patient_id column, or index) is read again with its ids
    back = sh.read_table(t.reset_index(), flchain_schema)
    assert list(back.index) == [101, 102, 103]
    assert list(sh.read_table(t, flchain_schema).index) == [101, 102, 103]


def test_duplicated_ids_refused_without_values(flchain_schema: sh.PatientSchema) -> None:
    df = pd.concat([flchain_rows(), flchain_rows().iloc[:2]], ignore_index=True)
    df["id"] = ["secret-1", "secret-2", "secret-3", "secret-1", "secret-2"]
    with pytest.raises(sh.DuplicatePatientIdError) as info:
        sh.read_table(df, flchain_schema)
    err = info.value
    assert isinstance(err, sh.PatientIdError) and isinstance(err, sh.DataValidationError)
    assert isinstance(err, sh.SynthHealthError) and isinstance(err, ValueError)
    assert (err.column, err.n_duplicated, err.n_rows) == ("id", 2, 4)
    assert "patient id column 'id': 2 ids appear on more than one row (4 rows)" in str(err)
    assert "secret" not in str(err)
    # 7 (int) and "7" / 7.0 (CSV, floats) are the same patient
    df2 = flchain_rows()
    df2["id"] = [7, "7", 8.0]
    with pytest.raises(sh.DuplicatePatientIdError, match="1 ids appear on more than one row"):
        sh.read_table(df2, flchain_schema)
    # the caller's guarantee does not override ids that show duplicates
    with pytest.raises(sh.DuplicatePatientIdError):
        sh.read_table(df, flchain_schema, one_row_per_patient=True)


def test_duplicated_index_ids_refused(core_schema: sh.PatientSchema) -> None:
    t = sh.flatten(sh.datasets.demo_fhir_path(), core_schema)
    twice = pd.concat([t, t.iloc[:3]])
    with pytest.raises(sh.DuplicatePatientIdError, match="patient id index 'patient_id': 3 ids appear"):
        sh.read_table(twice, core_schema)


def test_missing_ids_refused(flchain_schema: sh.PatientSchema) -> None:
    df = flchain_rows()
    df["id"] = [1, None, " "]
    with pytest.raises(sh.PatientIdError, match=r"patient id column 'id': 2 rows have no patient id \(rows 1, 2\)"):
        sh.read_table(df, flchain_schema)


def test_no_ids_needs_the_callers_guarantee(flchain_schema: sh.PatientSchema) -> None:
    df = flchain_rows().drop(columns=["id"])
    with pytest.raises(sh.PatientIdError, match="one_row_per_patient=True") as info:
        sh.read_table(df, flchain_schema)
    assert not isinstance(info.value, sh.DuplicatePatientIdError)
    assert "'id'" in str(info.value)  # names the declared column
    t = sh.read_table(df, flchain_schema, one_row_per_patient=True)
    assert t.attrs["synthhealth"]["patient_ids"] == "attested" and len(t) == 3
    # the statement travels with the table (a second read, e.g. inside fit, needs no flag)
    assert sh.read_table(t, flchain_schema).attrs["synthhealth"]["patient_ids"] == "attested"
    with pytest.raises(sh.InvalidParameterError, match="'one_row_per_patient' parameter of read_table"):
        sh.read_table(df, flchain_schema, one_row_per_patient="yes")  # type: ignore[arg-type]


def test_split_and_writers_keep_the_ids(tmp_path: Path, flchain_schema: sh.PatientSchema) -> None:
    pytest.importorskip("sksurv")
    t = sh.read_table(sh.datasets.load_flchain().iloc[:200], flchain_schema)
    train, hold = sh.split(t, 0.25, random_state=0)
    assert train.index.name == hold.index.name == "patient_id"
    assert set(train.index) | set(hold.index) == set(t.index) and not set(train.index) & set(hold.index)
    for name in ("train.csv", "train.parquet"):
        back = sh.read_table(sh.write_table(train, tmp_path / name), flchain_schema)
        assert [str(i) for i in back.index] == [str(i) for i in train.index]
        assert back.attrs["synthhealth"]["patient_ids"] == "checked"


def test_schema_declares_the_id_column() -> None:
    doc = {"synthhealth_schema": 1, "name": "c", "version": "1", "reference_date": "2020-01-01",
           "patient_id": "mrn", "attributes": [{"name": "n", "type": "count", "cap": 5}]}
    schema = sh.load_schema(doc)
    assert schema.patient_id == "mrn"
    t = sh.read_table(pd.DataFrame({"mrn": ["x", "y"], "n": [1, 2]}), schema)
    assert list(t.index) == ["x", "y"]
    for bad, message in (("n", "is also attribute 'n'"), ("", "must be a non-empty column name"),
                         (3, "must be a non-empty column name")):
        with pytest.raises(sh.SchemaError, match=message):
            sh.load_schema({**doc, "patient_id": bad})
    assert sh.load_schema("flchain").patient_id == "id"
    assert sh.load_schema("core-patient").patient_id == "patient_id"
