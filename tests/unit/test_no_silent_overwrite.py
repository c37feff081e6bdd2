"""Nothing is deleted or replaced that synthhealth did not write (issue 16, item 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import synthhealth as sh
from synthhealth.cli import main
from synthhealth.privacy import LedgerEntry, PrivacyBudget, PrivacyLedger

from ..tinytable import tiny_schema_doc, tiny_table

SCHEMA = tiny_schema_doc("overwrite")


@pytest.fixture(scope="module")
def schema() -> sh.PatientSchema:
    return sh.load_schema(SCHEMA)


@pytest.fixture(scope="module")
def table(schema: sh.PatientSchema) -> pd.DataFrame:
    return tiny_table(schema, 60)


@pytest.fixture
def schema_file(tmp_path: Path) -> Path:
    import yaml

    p = tmp_path / "schema.yaml"
    p.write_text(yaml.safe_dump(SCHEMA))
    return p


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -------------------------------------------------------------------- write_table
def test_write_table_refuses_an_existing_file(tmp_path: Path, table: pd.DataFrame) -> None:
    for name in ("t.parquet", "t.csv"):
        p = tmp_path / name
        p.write_bytes(b"precious")
        with pytest.raises(sh.InvalidParameterError, match="already exists"):
            sh.write_table(table, p)
        assert p.read_bytes() == b"precious"
        sh.write_table(table, p, overwrite=True)
        assert len(sh.read_table(p, sh.load_schema(SCHEMA))) == len(table)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["t.csv", "t.parquet"]  # no temporary file left
    new = sh.write_table(table, tmp_path / "sub" / "new.parquet")  # a new file needs nothing
    assert new.exists()
    (tmp_path / "dir.parquet").mkdir()
    with pytest.raises(sh.InvalidParameterError, match="is a folder"):
        sh.write_table(table, tmp_path / "dir.parquet", overwrite=True)
    with pytest.raises(sh.InvalidParameterError, match="'overwrite' parameter"):
        sh.write_table(table, tmp_path / "x.csv", overwrite="yes")  # type: ignore[arg-type]


# ------------------------------------------------------------------- model save
def test_save_overwrites_only_a_model_folder(tmp_path: Path, table: pd.DataFrame, schema: sh.PatientSchema) -> None:
    gen = sh.MST(epsilon=1.0, random_state=0).fit(table, schema=schema)
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    (sandbox / "train.parquet").write_bytes(b"the input")
    (sandbox / "notes.txt").write_text("unrelated")
    before = _snapshot(sandbox)
    with pytest.raises(sh.InvalidParameterError, match="not empty"):
        gen.save(sandbox)
    with pytest.raises(sh.InvalidParameterError, match="not a synthhealth model folder"):
        gen.save(sandbox, overwrite=True)
    assert _snapshot(sandbox) == before
    # a folder with a model.json that is not ours is not a model either
    (sandbox / "model.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(sh.InvalidParameterError, match="not a synthhealth model folder"):
        gen.save(sandbox, overwrite=True)
    # an earlier model is replaced ...
    model = gen.save(tmp_path / "model")
    gen.save(model, overwrite=True)
    assert sorted(p.name for p in model.iterdir()) == ["arrays.npz", "model.json"]
    # ... but not when something else was put beside it
    (model / "my-analysis.csv").write_text("keep me")
    with pytest.raises(sh.InvalidParameterError, match="my-analysis.csv"):
        gen.save(model, overwrite=True)
    assert (model / "my-analysis.csv").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(sh.InvalidParameterError, match="is a file"):
        sh.MST.check_save_path(tmp_path / "file", overwrite=True)
    assert sh.MST.check_save_path(tmp_path / "new") == tmp_path / "new"


def test_cli_fit_overwrite_never_deletes_the_input(tmp_path: Path, table: pd.DataFrame, schema_file: Path) -> None:
    sandbox = tmp_path / "sandbox"
    train = sh.write_table(table, sandbox / "train.parquet")
    (sandbox / "unrelated.txt").write_text("keep me")
    before = _snapshot(sandbox)
    ledger = tmp_path / "ledger.json"
    res = CliRunner().invoke(main, ["fit", "-s", str(schema_file), "-d", str(train), "-g", "mst", "-e", "1",
                                    "--ledger", str(ledger), "--out", str(sandbox), "--overwrite", "--seed", "0"])
    assert res.exit_code == 2, res.output
    assert "not a synthhealth model folder" in res.output
    assert _snapshot(sandbox) == before
    assert not ledger.exists()  # refused before the budget was touched
    # an earlier model folder is replaced
    out = tmp_path / "model"
    args = ["fit", "-s", str(schema_file), "-d", str(train), "-g", "mst", "-e", "1", "--out", str(out), "--seed", "0"]
    assert CliRunner().invoke(main, args).exit_code == 0
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and "not empty" in res.output
    res = CliRunner().invoke(main, [*args, "--overwrite"])
    assert res.exit_code == 0, res.output


# ------------------------------------------------------------------------- demo
def test_demo_refuses_a_folder_that_is_not_a_demo(tmp_path: Path) -> None:
    out = tmp_path / "work"
    out.mkdir()
    (out / "thesis.docx").write_text("years of work")
    (out / "model").mkdir()
    before = _snapshot(out)
    res = CliRunner().invoke(main, ["demo", "-q", "--seed", "0", "-o", str(out)])
    assert res.exit_code == 2, res.output
    assert "not an earlier demo" in res.output and "thesis.docx" in res.output
    assert _snapshot(out) == before and sorted(p.name for p in out.iterdir()) == ["model", "thesis.docx"]
    (tmp_path / "file").write_text("x")
    res = CliRunner().invoke(main, ["demo", "-q", "-o", str(tmp_path / "file")])
    assert res.exit_code == 2


def test_demo_never_resets_an_existing_ledger(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    out.mkdir()
    (out / ".synthhealth-demo").write_text('{"format": "synthhealth-demo"}\n')
    led = PrivacyLedger.open(out / "ledger.json", PrivacyBudget(1.0, 1e-6))
    for _ in range(2):  # two earlier fits
        fit = led.begin_fit("aim", rho=led.budget.rho / 2)
        led.charge(LedgerEntry("discrete_gaussian", "marginal(age)", 1.0, 10.0, led.budget.rho / 2, fit,
                               "opendp", False))
        led.end_fit(fit)
    before = (out / "ledger.json").read_bytes()
    res = CliRunner().invoke(main, ["demo", "-q", "--seed", "0", "-o", str(out)])
    assert res.exit_code == 2, res.output
    assert "never resets a ledger" in res.output and "-o NEW_FOLDER" in res.output
    assert (out / "ledger.json").read_bytes() == before  # neither reset nor charged
    assert sorted(p.name for p in out.iterdir()) == [".synthhealth-demo", "ledger.json", "ledger.json.lock"]


def test_demo_accepts_a_folder_of_an_older_demo(tmp_path: Path) -> None:
    """An earlier demo written before the marker file: recognised by its file names only."""
    from synthhealth.cli import _check_demo_folder

    out = tmp_path / "demo"
    (out / "model").mkdir(parents=True)
    (out / "real-patients.parquet").write_bytes(b"")
    _check_demo_folder(out, 1.0)
    _check_demo_folder(tmp_path / "new", 1.0)


# ------------------------------------------------------------------------ split
def test_split_refuses_outputs_that_would_lose_data(tmp_path: Path, table: pd.DataFrame, schema_file: Path) -> None:
    data = sh.write_table(table, tmp_path / "all.parquet")
    original = data.read_bytes()
    runner = CliRunner()

    def split(train: Path, hold: Path, *extra: str):
        return runner.invoke(main, ["split", "-s", str(schema_file), "-d", str(data), "--train-out", str(train),
                                    "--holdout-out", str(hold), "--seed", "0", *extra])

    same = tmp_path / "x.parquet"
    res = split(same, same)
    assert res.exit_code == 2 and "same file" in res.output and not same.exists()
    res = split(tmp_path / "sub" / ".." / "x.parquet", same)  # the same file, spelt differently
    assert res.exit_code == 2 and "same file" in res.output
    res = split(data, tmp_path / "h.parquet")
    assert res.exit_code == 2 and "is the input" in res.output
    res = split(tmp_path / "t.parquet", data, "--overwrite")  # --overwrite never replaces the input
    assert res.exit_code == 2 and "is the input" in res.output
    assert data.read_bytes() == original and not (tmp_path / "t.parquet").exists()
    # existing outputs: refused before anything is written, replaced with --overwrite
    t, h = tmp_path / "t.parquet", tmp_path / "h.parquet"
    h.write_bytes(b"earlier")
    res = split(t, h)
    assert res.exit_code == 2 and "already exists" in res.output
    assert not t.exists() and h.read_bytes() == b"earlier"  # no half-written split
    res = split(t, h, "--overwrite")
    assert res.exit_code == 0, res.output
    schema = sh.load_schema(SCHEMA)
    assert len(sh.read_table(t, schema)) + len(sh.read_table(h, schema)) == len(table)


# ------------------------------------------------------------ flatten and sample
def test_flatten_and_sample_refuse_existing_outputs(tmp_path: Path, table: pd.DataFrame,
                                                    schema: sh.PatientSchema) -> None:
    runner = CliRunner()
    existing = tmp_path / "patients.parquet"
    existing.write_bytes(b"earlier")
    res = runner.invoke(main, ["flatten", "-s", "core-patient", "-i", str(sh.datasets.demo_ndjson_path()),
                               "-o", str(existing)])
    assert res.exit_code == 2 and "already exists" in res.output and existing.read_bytes() == b"earlier"
    model = sh.MST(epsilon=1.0, random_state=0).fit(table, schema=schema).save(tmp_path / "model")
    res = runner.invoke(main, ["sample", str(model), "-n", "5", "-o", str(existing)])
    assert res.exit_code == 2 and "already exists" in res.output and existing.read_bytes() == b"earlier"
    res = runner.invoke(main, ["sample", str(model), "-n", "5", "-o", str(existing), "--overwrite", "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert len(pd.read_parquet(existing)) == 5


# ------------------------------------------------------------------------ sweep
def test_sweep_never_replaces_an_earlier_ledger(tmp_path: Path, table: pd.DataFrame, schema_file: Path) -> None:
    data = sh.write_table(table, tmp_path / "train.parquet")
    out = tmp_path / "sw"
    out.mkdir()
    led = PrivacyLedger.open(out / "ledger.json", PrivacyBudget(1.0, 1e-6))
    led.end_fit(led.begin_fit("aim", rho=0.001))
    before = (out / "ledger.json").read_bytes()
    res = CliRunner().invoke(main, ["sweep", "-s", str(schema_file), "--real", str(data), "--holdout", str(data),
                                    "--epsilons", "0.5", "-o", str(out), "--yes", "--one-row-per-patient"])
    assert res.exit_code == 2, res.output
    assert "already exists" in res.output and "--ledger" in res.output
    assert (out / "ledger.json").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["ledger.json", "ledger.json.lock"]
