"""The command line, end to end on the bundled data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import synthhealth as sh
from synthhealth.cli import main

from ..fhirfactory import bundle, condition, patient, write_json


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_console_script_version_and_help() -> None:
    exe = shutil.which("synthhealth")
    assert exe is not None, "the synthhealth console script is not installed"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"synthhealth, version {sh.__version__}"
    out = subprocess.run([sys.executable, "-m", "synthhealth.cli", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("demo", "flatten", "schema", "validate"):
        assert cmd in out.stdout


def test_demo(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    res = runner.invoke(main, ["demo", "-q", "--seed", "0", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "150 Bundles, 46,543 resources, 150 patients" in res.output
    assert "[4/8] split    100 patients for fitting, 50 held out" in res.output
    assert "spent epsilon=1, delta=1e-06" in res.output and "SEEDED: not for release" in res.output
    n_cols = len(sh.load_schema("core-patient"))
    assert pd.read_parquet(out / "real-patients.parquet").shape == (150, n_cols)
    synth = pd.read_parquet(out / "synthetic-patients.parquet")
    model = sh.load_model(out / "model")
    # the synthetic count is the model's noisy count, not the exact number of training patients
    assert synth.shape == (max(1, round(model.total_)), n_cols)
    assert model.ledger_.total().epsilon == pytest.approx(1.0)
    assert f"[7/8] fhir     {len(synth)} synthetic patients" in res.output and "references OK" in res.output
    # the report, with the three-line summary; seeded noise makes the verdict FAIL (not for release)
    assert "[8/8] report" in res.output and "verdict: Privacy: FAIL (Privacy noise not seeded" in res.output
    assert "ε spent: 1 (δ = 1e-06), unit: patient — SEEDED, not for release" in res.output
    assert "attacks: " in res.output and "utility: " in res.output
    # seeded noise: the release is refused, and the shareable layout is written as a marked preview
    assert "release refused: The fit's privacy noise was seeded" in res.output
    for name in ("report.json", "report.html", "report.pdf", "report-preview.json", "report-preview.html"):
        assert (out / "report" / name).stat().st_size > 1000, name
    assert not (out / "report" / "report-release.json").exists()
    manifest = {e["role"] for e in sh.Report.load(out / "report").doc["meta"]["manifest"]}
    assert manifest == {"synthetic table", "synthetic FHIR", "model", "ledger"}
    written = json.loads((out / "synthetic-fhir" / ".manifest.json").read_text())["extension"]["synthhealth"]
    assert written["provenance"]["fit_id"] == model.fit_id_  # the FHIR manifest names the model's fit
    if written["inconsistent_patients"]:  # the report says how many rows the FHIR writer could not keep as they were
        files = sh.Report.load(out / "report").facts("files")
        assert f"{written['inconsistent_patients']} of {len(synth)} synthetic patients" in files[
            "FHIR writer (synthetic FHIR)"]
    rep = sh.Report.load(out / "report")
    assert rep.metric("guarantee.epsilon")["value"] == pytest.approx(1.0)
    res = runner.invoke(main, ["validate", str(out / "synthetic-fhir"), "-q"])
    assert res.exit_code == 0 and "all resources valid" in res.output, res.output


def test_split_fit_sample_report(runner: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "flchain.parquet"
    sh.write_table(sh.datasets.load_flchain().sample(1200, random_state=0), data)
    train, hold = tmp_path / "train.parquet", tmp_path / "holdout.parquet"
    res = runner.invoke(main, ["split", "-s", "flchain", "-d", str(data), "--holdout-frac", "0.25",
                               "--train-out", str(train), "--holdout-out", str(hold), "--seed", "0", "-q"])
    assert res.exit_code == 0, res.output
    assert "split 1200 patients: 900 for training" in res.output and "300 held out" in res.output
    assert len(pd.read_parquet(train)) == 900 and len(pd.read_parquet(hold)) == 300
    res = runner.invoke(main, ["fit", "-s", "flchain", "-d", str(train), "-g", "mst", "-e", "1", "--seed", "0",
                               "-o", str(tmp_path / "model"), "-q"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["sample", str(tmp_path / "model"), "-n", "900", "-o", str(tmp_path / "syn.parquet"),
                               "--seed", "0"])
    assert res.exit_code == 0, res.output
    th = tmp_path / "th.yaml"
    th.write_text("utility.tvd1.mean: {pass_at: 0.5, warn_at: 0.6}\n")
    out = tmp_path / "report"
    res = runner.invoke(main, ["report", "--real", str(train), "--holdout", str(hold), "--synthetic",
                               str(tmp_path / "syn.parquet"), "--model", str(tmp_path / "model"), "-o", str(out),
                               "--release", "--thresholds", str(th), "--format", "json", "--format", "html",
                               "--seed", "0", "-q"])
    # a seeded fit: the release is refused (issue 15.4), the internal review is written
    assert res.exit_code == 2, res.output
    assert "release report refused: The fit's privacy noise was seeded" in res.output
    assert "verdict: " in res.output and "ε spent: 1 (δ = 1e-06)" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json"]
    res = runner.invoke(main, ["report", "--real", str(train), "--holdout", str(hold), "--synthetic",
                               str(tmp_path / "syn.parquet"), "--model", str(tmp_path / "model"), "-o", str(out),
                               "--release", "--preview", "--thresholds", str(th), "--format", "json", "--format",
                               "html", "--seed", "0", "-q"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["report-preview.html", "report-preview.json", "report.html",
                                                     "report.json"]
    assert "PREVIEW, NOT A RELEASE" in (out / "report-preview.html").read_text(encoding="utf-8")
    rep = sh.Report.load(out)
    assert {c["metric"]: c["verdict"] for c in rep.checks}["utility.tvd1.mean"] == "pass"
    assert rep.doc["meta"]["n_train"] == 900 and rep.doc["meta"]["generator"] == "MST"
    # without a model: no guarantee known, attacks still run
    res = runner.invoke(main, ["report", "-s", "flchain", "--real", str(train), "--holdout", str(hold),
                               "--synthetic", str(tmp_path / "syn.parquet"), "-o", str(tmp_path / "r2"),
                               "--format", "json", "-q"])
    assert res.exit_code == 0, res.output
    rep2 = sh.Report.load(tmp_path / "r2")
    assert "no formal guarantee" in res.output and rep2.verdict == "fail"
    assert "attacks.dcr.auc" in rep2.metrics()
    res = runner.invoke(main, ["report", "--real", str(train), "--holdout", str(hold), "--synthetic", str(train),
                               "-o", str(tmp_path / "r3")])
    assert res.exit_code == 2 and "error: The '--schema' option is required without '--model'." in res.output
    res = runner.invoke(main, ["split", "-s", "flchain", "-d", str(data), "--holdout-frac", "1.5",
                               "--train-out", str(train), "--holdout-out", str(hold)])
    assert res.exit_code == 2 and "'--holdout-frac' option must be in (0, 1). Got 1.5" in res.output


def test_release_certifies_only_a_model_output_it_checked(runner: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "flchain.parquet"
    sh.write_table(sh.datasets.load_flchain().sample(1200, random_state=1), data)
    train, hold = tmp_path / "train.parquet", tmp_path / "holdout.parquet"
    res = runner.invoke(main, ["split", "-s", "flchain", "-d", str(data), "--holdout-frac", "0.25",
                               "--train-out", str(train), "--holdout-out", str(hold), "-q"])
    assert res.exit_code == 0, res.output
    # an unseeded fit with OpenDP's secure samplers
    res = runner.invoke(main, ["fit", "-s", "flchain", "-d", str(train), "-g", "mst", "-e", "1",
                               "-o", str(tmp_path / "model"), "-q"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["sample", str(tmp_path / "model"), "-n", "900", "-o", str(tmp_path / "syn.parquet")])
    assert res.exit_code == 0, res.output
    base = ["report", "--real", str(train), "--holdout", str(hold), "--model", str(tmp_path / "model"),
            "--release", "--format", "json", "--format", "html", "-q", "--reviewer", "A. Officer"]
    out = tmp_path / "ok"
    res = runner.invoke(main, base + ["--synthetic", str(tmp_path / "syn.parquet"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    rel = sh.Report.load(out / "report-release.json")
    internal = sh.Report.load(out / "report.json")
    assert rel.doc["meta"]["report_id"] == internal.doc["meta"]["report_id"]
    review = rel.facts("review")
    assert review["Reviewer"] == "A. Officer"
    assert review["Privacy verdict of the internal review"] == internal.doc["summary"]["verdicts"]["privacy"].upper()
    roles = {e["role"] for e in rel.doc["meta"]["manifest"]}
    assert {"synthetic", "model"} <= roles
    # the real training table passed as "synthetic": not a model's output
    res = runner.invoke(main, base + ["--synthetic", str(train), "-o", str(tmp_path / "copy")])
    assert res.exit_code == 2 and "release report refused: The synthetic table is not a model's output" in res.output
    assert not (tmp_path / "copy" / "report-release.json").exists()


def test_fit_and_sample(runner: CliRunner, tmp_path: Path) -> None:
    table = tmp_path / "real.parquet"
    sh.write_table(sh.flatten(sh.datasets.demo_ndjson_path(), sh.load_schema("core-patient")), table)
    ledger = tmp_path / "ledger.json"
    args = ["fit", "-s", "core-patient", "-d", str(table), "-g", "mst", "-e", "1", "--ledger", str(ledger),
            "--seed", "1", "-o", str(tmp_path / "model"), "-q"]
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "fitted MST on 13 patients" in res.output and "remaining for zCDP fits: epsilon=0" in res.output
    assert "NOT for release" in res.output
    res = runner.invoke(main, args[:-3] + ["-o", str(tmp_path / "model2"), "-q"])
    assert res.exit_code == 2 and "privacy budget exceeded" in res.output and "No data was accessed" in res.output
    res = runner.invoke(main, ["sample", str(tmp_path / "model"), "-n", "40", "-o", str(tmp_path / "s.csv"),
                               "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(tmp_path / "s.csv")) == 40
    res = runner.invoke(main, ["sample", str(tmp_path / "model"), "-n", "25", "--format", "fhir-bundle",
                               "-o", str(tmp_path / "fhir"), "--seed", "3", "-q"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("25 patients,") and len(list((tmp_path / "fhir").glob("bundle-*.json"))) == 25
    res = runner.invoke(main, ["fit", "-s", "core-patient", "-d", str(sh.datasets.demo_ndjson_path()), "-e", "2",
                               "-w", "age,sex,diabetes", "--seed", "2", "-o", str(tmp_path / "m3"), "-q"])
    assert res.exit_code == 0, res.output
    assert "fitted AIM on 13 patients" in res.output
    res = runner.invoke(main, ["fit", "-s", "core-patient", "-d", str(sh.datasets.demo_ndjson_path()), "-e", "2",
                               "--remeasure-share", "0.3", "--seed", "2", "-o", str(tmp_path / "m4"), "-q"])
    assert res.exit_code == 0, res.output
    assert sh.load_model(tmp_path / "m4").remeasure_share_ == 0.3
    res = runner.invoke(main, ["fit", "-s", "core-patient", "-d", str(table), "-g", "mst", "-e", "1",
                               "--remeasure-share", "0.3", "-o", str(tmp_path / "m5"), "-q"])
    assert res.exit_code == 2 and "'--remeasure-share' option only applies to --generator aim" in res.output


def test_flatten_bundles_and_ndjson(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    res = runner.invoke(main, ["flatten", "-s", "core-patient", "-i", str(sh.datasets.demo_ndjson_path()), "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert "13 patients" in res.output and f"wrote 13 rows x 51 columns to {out}" in res.output
    t = pd.read_parquet(out)
    assert len(t) == 13 and t["hypertension"].dtype == "boolean"
    csv = tmp_path / "t.csv"
    res = runner.invoke(main, ["flatten", "--schema", str(sh.schema_path("core-patient")), "--input",
                               str(sh.datasets.demo_fhir_path() / "patient-00*.json.xz"), "--output", str(csv), "-q"])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(csv)) == 9


def test_flatten_bad_input_is_one_line_and_leaves_no_file(runner: CliRunner, tmp_path: Path) -> None:
    write_json(tmp_path / "in" / "a.json", bundle([patient("a"), condition("c", "Patient/ghost", "1")]))
    out = tmp_path / "t.parquet"
    res = runner.invoke(main, ["flatten", "-s", "core-patient", "-i", str(tmp_path / "in"), "-o", str(out), "-q"])
    assert res.exit_code == 2
    assert res.output.startswith("error: ") and "never appears in the input" in res.output
    assert res.output.count("\n") == 1 and "Traceback" not in res.output
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "in"]
    res = runner.invoke(main, ["flatten", "-s", "core-patient", "-i", str(tmp_path / "in"), "-o", str(out), "-q",
                               "--on-error", "skip"])
    assert res.exit_code == 0 and "skipped resources: 1 (unknown patient: 1)" in res.output and out.exists()


def test_debug_shows_traceback(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(main, ["--debug", "flatten", "-s", "core-patient", "-i", str(tmp_path / "nope"), "-o", "x.parquet"])
    assert res.exit_code == 1 and isinstance(res.exception, FileNotFoundError)


def test_schema_check(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(main, ["schema", "check", "core-patient"])
    assert res.exit_code == 0 and ": OK" in res.output and "51 attributes" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("synthhealth_schema: 1\nname: b\nversion: '1'\nreference_date: 2020-01-01\nattributes:\n"
                   "  - {name: a, type: numeric, bounds: [120, 20], bins: [0, 1]}\n  - {name: b, type: colour}\n")
    res = runner.invoke(main, ["schema", "check", str(bad)])
    assert res.exit_code == 2
    assert res.output.splitlines() == [
        f"error: 2 problems in schema in {bad}:",
        "  - attributes[0].bounds: lower 120 > upper 20",
        "  - attributes[1].type: unknown attribute type 'colour' (expected one of categorical, numeric, count, boolean)",
    ]


def test_validate(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(main, ["validate", str(sh.datasets.demo_ndjson_path()), "-q"])
    assert res.exit_code == 0 and "all resources valid" in res.output
    write_json(tmp_path / "a.json", bundle([patient("a", birthDate="yesterday"), patient("b")]))
    res = runner.invoke(main, ["validate", str(tmp_path / "a.json"), "-q"])
    assert res.exit_code == 1
    assert "1 invalid: invalid resource 1" in res.output
    assert "entry[0], Patient/a: invalid resource: Patient.birthDate: Date value string does not match spec regex." in res.output


def test_fit_dpvae_on_the_demo_data(runner: CliRunner, tmp_path: Path) -> None:
    pytest.importorskip("opacus")
    res = runner.invoke(main, ["fit", "-s", "core-patient", "-d", str(sh.datasets.demo_fhir_path()), "-g", "dpvae",
                               "-e", "1", "--epochs", "3", "--seed", "0", "-o", str(tmp_path / "vae"), "-q"])
    assert res.exit_code == 0, res.output
    assert "fitted DPVAE on 150 patients" in res.output
    model = sh.load_model(tmp_path / "vae")
    assert model.ledger_.total().epsilon <= 1.0 + 1e-9
    assert model.sample(10, random_state=0).shape == (10, len(sh.load_schema("core-patient")))
    res = runner.invoke(main, ["fit", "-s", "core-patient", "-d", str(sh.datasets.demo_fhir_path()), "-g", "mst",
                               "-e", "1", "--epochs", "3", "-o", str(tmp_path / "m"), "-q"])
    assert res.exit_code == 2 and "--epochs option(s) only apply to --generator dpvae" in res.output
    # without the noisy marginals: a noisy count sets the sampling rate, and nothing is calibrated
    res = runner.invoke(main, ["fit", "-s", "core-patient", "-d", str(sh.datasets.demo_fhir_path()), "-g", "dpvae",
                               "-e", "1", "--epochs", "2", "--marginals-share", "0", "--no-calibrate", "--seed", "0",
                               "-o", str(tmp_path / "vae0"), "-q"])
    assert res.exit_code == 0, res.output
    plain = sh.load_model(tmp_path / "vae0")
    assert plain.privacy_["marginals"] is None and plain.privacy_["dataset_size"]["source"] == "noisy_count"
    assert model.privacy_["marginals"]["calibrated"] and model.privacy_["dataset_size"]["source"] == "noisy_marginals"
    # 51 attributes: "auto" measures no pairs; declared pairs are measured and the decoder fitted to them
    assert model.pairs_ == [] and model.privacy_["marginals"]["l2_sensitivity"] == pytest.approx(51 ** 0.5)
    res = runner.invoke(main, ["fit", "-s", "core-patient", "-d", str(sh.datasets.demo_fhir_path()), "-g", "dpvae",
                               "-e", "1", "--epochs", "2", "--marginal-pairs", "age,sex", "--marginal-pairs",
                               "race,deceased", "--finetune-steps", "20", "--seed", "0", "-o", str(tmp_path / "vae2"),
                               "-q"])
    assert res.exit_code == 0, res.output
    paired = sh.load_model(tmp_path / "vae2")
    assert paired.pairs_ == [("sex", "age"), ("race", "deceased")]
    assert paired.privacy_["marginals"]["finetune_steps"] == 20
    assert paired.privacy_["marginals"]["l2_sensitivity"] == pytest.approx(53 ** 0.5)
    res = runner.invoke(main, ["fit", "-s", "core-patient", "-d", str(sh.datasets.demo_fhir_path()), "-g", "dpvae",
                               "-e", "1", "--marginal-pairs", "age", "-o", str(tmp_path / "bad"), "-q"])
    assert res.exit_code == 2 and "pairs written 'attr1,attr2'. Got 'age' instead." in res.output


def test_sweep_asks_before_spending(runner: CliRunner, tmp_path: Path) -> None:
    t = sh.datasets.load_flchain().sample(900, random_state=0)
    sh.write_table(t.iloc[:600], tmp_path / "train.parquet")
    sh.write_table(t.iloc[600:], tmp_path / "hold.parquet")
    args = ["sweep", "-s", "flchain", "--real", str(tmp_path / "train.parquet"), "--holdout",
            str(tmp_path / "hold.parquet"), "--epsilons", "0.5,2", "-o", str(tmp_path / "sw"), "--seed", "0", "-q"]
    res = runner.invoke(main, args, input="n\n")
    assert res.exit_code == 2 and "spends the sum of the budgets" in res.output and "sum 2.5" in res.output
    assert "sweep cancelled: no data was accessed" in res.output and not (tmp_path / "sw").exists()
    res = runner.invoke(main, args + ["--yes"])
    assert res.exit_code == 0, res.output
    assert {p.name for p in (tmp_path / "sw").iterdir()} == {"sweep.csv", "sweep.json", "sweep.png", "ledger.json"}
    table = pd.read_csv(tmp_path / "sw" / "sweep.csv")
    assert table["epsilon"].tolist() == [0.5, 2.0]
    assert sh.PrivacyLedger.load(tmp_path / "sw" / "ledger.json").total().epsilon == pytest.approx(
        sh.sweep_cost([0.5, 2.0]).epsilon)


def test_demo_flchain(runner: CliRunner, tmp_path: Path) -> None:
    pytest.importorskip("sksurv")
    out = tmp_path / "demo-flchain"
    res = runner.invoke(main, ["demo", "--dataset", "flchain", "-q", "--seed", "0", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "synthhealth demo (flchain)" in res.output and "[1/8] schema   flchain" in res.output
    assert "[2/8] read     flchain (scikit-survival): 7,874 patients" in res.output
    assert "[4/8] split    5249 patients for fitting, 2625 held out" in res.output
    assert "[7/8] fhir     skipped" in res.output and "[8/8] report" in res.output
    # seeded noise fails the privacy verdict: the summary's next steps say what to do, with the command
    assert "next steps (" in res.output and "Fit again without --seed" in res.output
    assert "$ synthhealth fit --schema flchain" in res.output
    assert not (out / "synthetic-fhir").exists()
    rep = sh.Report.load(out / "report")
    assert {e["role"] for e in rep.doc["meta"]["manifest"]} == {"synthetic table", "model", "ledger"}
    assert rep.metric("guarantee.epsilon")["value"] == pytest.approx(1.0)
    assert any(s["key"] == "regulatory" for s in rep.doc["sections"])
    # one data set per demo folder: the ledger is about those patients
    res = runner.invoke(main, ["demo", "-q", "--seed", "0", "--out", str(out)])
    assert res.exit_code == 2 and "earlier demo of the flchain data set" in res.output, res.output
