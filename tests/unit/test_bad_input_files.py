"""Bad tables, models and options give one-line errors naming the file, never a traceback (issue 16.3)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import synthhealth as sh
from synthhealth.cli import main
from synthhealth.privacy.budget import MAX_EPSILON
from synthhealth.transform import load_table_file

CANARY = "Zqxjkv-Canary-4711"


# ------------------------------------------------------------------------------------------ tables
@pytest.mark.parametrize(("name", "content", "match"), [
    ("empty.csv", b"", r"empty\.csv: the file is empty \(0 bytes\)"),
    ("latin1.csv", f"sex,name\nF,{CANARY}\xe9\n".encode("latin-1"), r"latin1\.csv: not UTF-8 text .*save the CSV as UTF-8"),
    ("ragged.csv", f"a,b\n1,2\n1,2,{CANARY}\n".encode(), r"ragged\.csv: line 3 has 3 fields, the header has 2"),
    ("quote.csv", f'a,b\n1,"{CANARY}\n'.encode(), r"quote\.csv: not a well-formed CSV"),
    ("bad.csv.gz", CANARY.encode(), r"bad\.csv\.gz: a corrupt"),
    ("bad.csv.xz", CANARY.encode(), r"bad\.csv\.xz: a corrupt"),
    ("fake.parquet", f"id,name\n1,{CANARY}\n".encode(), r"fake\.parquet: not a readable Parquet file"),
    ("empty.parquet", b"", r"empty\.parquet: the file is empty \(0 bytes\)"),
])
def test_bad_table_files(tmp_path: Path, name: str, content: bytes, match: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(sh.InputFileError, match=match) as info:
        load_table_file(path)
    assert isinstance(info.value, sh.InvalidParameterError)
    assert info.value.file == str(path)
    assert CANARY not in str(info.value) and "\n" not in str(info.value)


def test_truncated_parquet(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    pd.DataFrame({"a": np.arange(100)}).to_parquet(good)
    bad = tmp_path / "cut.parquet"
    bad.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(sh.InputFileError, match=r"cut\.parquet: not a readable Parquet file"):
        load_table_file(bad)


def test_header_only_csv_is_a_zero_row_table(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("age,sex\n", encoding="utf-8")
    assert load_table_file(tmp_path / "h.csv").shape == (0, 2)


# ------------------------------------------------------------------------------------------ budget
@pytest.mark.parametrize("eps", [100.0 + 1e-9, 1e3, 1e15, 1e100, 1e300, 1e308, math.inf, math.nan, 0.0, -1.0])
def test_epsilon_bound(eps: float) -> None:
    with pytest.raises(sh.InvalidParameterError, match=r"'epsilon' parameter must be a float in \(0, 100\]"):
        sh.PrivacyBudget(eps, 1e-6)


@pytest.mark.parametrize("eps", [1e-6, 1.0, 10.0, MAX_EPSILON])
def test_rho_positive_and_finite_up_to_the_bound(eps: float) -> None:
    b = sh.PrivacyBudget(eps, 1e-6)
    assert 0.0 < b.rho < math.inf
    assert sh.PrivacyBudget.from_rho(b.rho, 1e-6).epsilon == pytest.approx(eps, rel=1e-6)


# ------------------------------------------------------------------------------------------ models
@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    schema = sh.load_schema("flchain")
    with pytest.warns(sh.InsecureRandomnessWarning):
        gen = sh.MST(epsilon=1.0, random_state=0).fit(sh.datasets.load_flchain().iloc[:200], schema=schema)
    return gen.save(tmp_path_factory.mktemp("m") / "model")


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _edit(folder: Path, fn) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    fn(doc)
    (folder / "model.json").write_text(json.dumps(doc), encoding="utf-8")


def _object_array(folder: Path) -> None:
    with np.load(folder / "arrays.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["evil"] = np.array([{"a": 1}], dtype=object)
    np.savez(folder / "arrays.npz", **arrays)


MODEL_CASES = {
    "truncated_json": (lambda f: (f / "model.json").write_bytes((f / "model.json").read_bytes()[:300]),
                       r"model\.json: not valid JSON at line \d+, column \d+"),
    "empty_json": (lambda f: (f / "model.json").write_bytes(b""), r"model\.json: the file is empty"),
    "latin1_json": (lambda f: (f / "model.json").write_bytes(b'{"a": "\xe9"}'), r"model\.json: not UTF-8"),
    "json_list": (lambda f: (f / "model.json").write_text("[1, 2]"), r"model\.json: a model file holds a JSON object"),
    "unknown_param": (lambda f: _edit(f, lambda d: d["params"].update(bogus=1)),
                      r"model\.json: 'params' holds parameter\(s\) 'bogus' that MST does not take"),
    "params_not_object": (lambda f: _edit(f, lambda d: d.update(params=[1])),
                          r"model\.json: the field 'params' must be an object"),
    "missing_fit_id": (lambda f: _edit(f, lambda d: d.pop("fit_id")),
                       r"model\.json: a required field or array is missing: 'fit_id'"),
    "bad_fit_id": (lambda f: _edit(f, lambda d: d.update(fit_id=7)), r"model\.json: the field 'fit_id' must be"),
    "missing_ledger": (lambda f: _edit(f, lambda d: d.pop("ledger")), r"missing: 'ledger'"),
    "total_not_number": (lambda f: _edit(f, lambda d: d.update(total={"x": 1})), r"model\.json: a field or array"),
    "generator_not_str": (lambda f: _edit(f, lambda d: d.update(generator=[1])), r"unknown generator"),
    "object_array": (_object_array, r"arrays\.npz: holds an object \(pickled\) array"),
    "truncated_npz": (lambda f: (f / "arrays.npz").write_bytes((f / "arrays.npz").read_bytes()[:100]),
                      r"arrays\.npz: not a readable \.npz archive"),
    "npz_not_zip": (lambda f: (f / "arrays.npz").write_bytes(b"hello"), r"arrays\.npz: not a readable"),
}


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_bad_model_folders(saved_model: Path, tmp_path: Path, case: str) -> None:
    spoil, match = MODEL_CASES[case]
    folder = _copy(saved_model, tmp_path / case)
    spoil(folder)
    with pytest.raises(sh.InvalidParameterError, match=match) as info:
        sh.load_model(folder)
    assert str(folder) in str(info.value)
    result = CliRunner().invoke(main, ["sample", str(folder), "-o", str(tmp_path / "s.csv")])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and result.output.startswith("error: ")
    assert not (tmp_path / "s.csv").exists()


def test_missing_arrays(saved_model: Path, tmp_path: Path) -> None:
    folder = _copy(saved_model, tmp_path / "m")
    (folder / "arrays.npz").unlink()
    with pytest.raises(FileNotFoundError, match=r"arrays\.npz is missing"):
        sh.load_model(folder)


# ------------------------------------------------------------------------------------------ the CLI
def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result.exit_code, result.output


@pytest.mark.parametrize("eps", ["1e15", "1e100", "1e300", "1e308", "inf", "nan", "101", "0", "-1"])
def test_cli_fit_epsilon_out_of_range(tmp_path: Path, eps: str) -> None:
    sh.datasets.load_flchain().iloc[:50].to_csv(tmp_path / "t.csv", index=False)
    code, out = _cli("fit", "-s", "flchain", "-d", str(tmp_path / "t.csv"), "-e", eps, "-o", str(tmp_path / "m"),
                     "-l", str(tmp_path / "ledger.json"), "-q")
    assert code == 2 and out.startswith("error: The 'epsilon' parameter must be a float in (0, 100]"), out
    assert not (tmp_path / "ledger.json").exists() and not (tmp_path / "m").exists()


def test_cli_fit_on_zero_patients_spends_nothing(tmp_path: Path) -> None:
    sh.datasets.load_flchain().iloc[:0].to_csv(tmp_path / "h.csv", index=False)
    code, out = _cli("fit", "-s", "flchain", "-d", str(tmp_path / "h.csv"), "-e", "1", "-o", str(tmp_path / "m"),
                     "-l", str(tmp_path / "ledger.json"), "-q")
    assert code == 2 and out == f"error: {tmp_path / 'h.csv'}: the input held no patients (a header line and 0 rows)\n"
    assert not (tmp_path / "m").exists() and not (tmp_path / "ledger.json").exists()


def test_fit_on_zero_patients_charges_nothing(tmp_path: Path) -> None:
    schema = sh.load_schema("flchain")
    path = sh.PrivacyLedger(sh.PrivacyBudget(2.0)).save(tmp_path / "ledger.json")
    with pytest.raises(sh.DataValidationError, match="the table holds no patients"):
        sh.MST(epsilon=1.0).fit(sh.datasets.load_flchain().iloc[:0], schema=schema, ledger=path)
    ledger = sh.PrivacyLedger.open(path)
    assert ledger.spent_rho() == 0.0 and ledger.remaining_rho() == sh.PrivacyBudget(2.0).rho
    assert not ledger.entries


@pytest.mark.parametrize("name", ["empty.csv", "latin1.csv", "ragged.csv", "fake.parquet"])
def test_cli_fit_bad_tables(tmp_path: Path, name: str) -> None:
    content = {"empty.csv": b"", "latin1.csv": "age\n\xe9\n".encode("latin-1"), "ragged.csv": b"a,b\n1,2\n1,2,3\n",
               "fake.parquet": b"PAR1 not really"}[name]
    (tmp_path / name).write_bytes(content)
    code, out = _cli("fit", "-s", "flchain", "-d", str(tmp_path / name), "-e", "1", "-o", str(tmp_path / "m"), "-q")
    assert code == 2 and out.startswith(f"error: {tmp_path / name}: "), out
    assert len(out.strip().splitlines()) == 1


@pytest.mark.parametrize("n", ["99999999999999", "10000001", "0", "-3"])
def test_cli_sample_n_bound(saved_model: Path, tmp_path: Path, n: str) -> None:
    code, out = _cli("sample", str(saved_model), "-n", n, "-o", str(tmp_path / "s.csv"))
    assert code == 2 and out.startswith("error: The '-n' option must be an int in [1, 10,000,000]"), out
    assert not (tmp_path / "s.csv").exists()


def test_sample_n_bound_in_the_api(saved_model: Path) -> None:
    gen = sh.load_model(saved_model)
    with pytest.raises(sh.InvalidParameterError, match=r"'n' parameter of MST\.sample must be an int in \[1, 10,000,000\]"):
        gen.sample(sh.generators.MAX_SAMPLE_SIZE + 1)


@pytest.mark.parametrize("eps", ["1e15", "1e308", "101"])
def test_cli_demo_epsilon_out_of_range_writes_nothing(tmp_path: Path, eps: str) -> None:
    code, out = _cli("demo", "--epsilon", eps, "-o", str(tmp_path / "demo"), "-q")
    assert code == 2 and out.startswith("error: The 'epsilon' parameter must be a float in (0, 100]"), out
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize("generator", ["mst", "dpvae"])
def test_sweep_total_epsilon_bound(generator: str) -> None:
    with pytest.raises(sh.InvalidParameterError, match=r"must add up to a total epsilon of at most 100"):
        sh.sweep_cost([60.0, 70.0], generator=generator)
    assert sh.sweep_cost([40.0, 50.0], generator=generator).epsilon <= 100


@pytest.mark.parametrize(("content", "match"), [
    (b"\xff\xfe{}", "UnicodeDecodeError"), (b'{"trunc', "JSONDecodeError"), (b"", "JSONDecodeError"),
    (b"[1, 2]", "is not a synthhealth privacy ledger"),
])
def test_bad_ledger_files(tmp_path: Path, content: bytes, match: str) -> None:
    (tmp_path / "ledger.json").write_bytes(content)
    with pytest.raises(sh.AccountingError, match=match):
        sh.PrivacyLedger.load(tmp_path / "ledger.json")
    code, out = _cli("ledger", "status", str(tmp_path / "ledger.json"))
    assert code == 2 and out.startswith("error: ") and len(out.strip().splitlines()) == 1, out


def test_schema_file_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(sh.SchemaError, match=r"1 problem in schema in .*s\.yaml:\n  - not UTF-8 text"):
        sh.load_schema(tmp_path / "s.yaml")
