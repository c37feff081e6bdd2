"""The ``synthhealth`` command line (uses the public API only)."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

import synthhealth as sh

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int = 2) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


@contextlib.contextmanager
def _randomness_warnings() -> Iterator[None]:
    """Show each InsecureRandomnessWarning as one line on stderr (never silenced, never a traceback)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", sh.InsecureRandomnessWarning)
        try:
            yield
        finally:
            seen: set[str] = set()
            for w in caught:
                if issubclass(w.category, sh.InsecureRandomnessWarning):
                    text = str(w.message)
                    if text not in seen:
                        seen.add(text)
                        click.echo(f"warning: {text}", err=True)
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def _errors(func: F) -> F:
    """Turn expected errors into one clear line (the traceback with --debug)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        debug = bool(ctx.find_root().params.get("debug"))
        try:
            return func(*args, **kwargs)
        except (sh.SynthHealthError, OSError) as exc:  # OSError: a missing file, a full disk, no permission
            if debug:
                raise
            text = str(exc)
            first, _, rest = text.partition("\n")
            click.secho(f"error: {first}", fg="red", err=True)
            if rest:
                click.echo(rest, err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(sh.__version__, "--version", "-V", prog_name="synthhealth")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def main(debug: bool) -> None:
    """synthhealth: shareable synthetic patient data with a privacy guarantee.

    \b
    Start with:   synthhealth demo
    Your data:    synthhealth flatten --schema core-patient --input exports/ -o patients.parquet
    """


# ---------------------------------------------------------------------------- demo
@main.command()
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [default: synthhealth-demo, or synthhealth-demo-flchain with --dataset flchain].")
@click.option("--dataset", type=click.Choice(["synthea", "flchain"]), default="synthea", show_default=True,
              help="synthea: the bundled 150 synthetic Synthea patients (FHIR); flchain: the Mayo Clinic serum free "
                   "light chain cohort, 7,874 patients as a table, where utility is good (needs scikit-survival: "
                   'pip install "synthhealth[examples]").')
@click.option("--epsilon", default=1.0, show_default=True, help="Privacy budget epsilon of the fit.")
@click.option("--seed", type=int, default=None, help="Seed the DP noise (reproducible, NOT for release).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@_errors
def demo(out: Path | None, dataset: str, epsilon: float, seed: int | None, quiet: bool) -> None:
    """Run the whole pipeline on a bundled data set (default: 150 synthetic Synthea patients).

    Reads FHIR, flattens to one bounded row per patient, holds out a third of the patients, fits
    AIM with (epsilon, 1e-6)-DP at the patient level on the rest, samples a synthetic table, writes
    it as synthetic FHIR R4 (Bulk NDJSON), and builds the privacy and utility report. With
    --dataset flchain the input is the flchain table (7,874 patients; no FHIR step): large enough
    for good utility at epsilon = 1.

    The folder must be new, empty or an earlier demo's of the same data set; an earlier demo's
    ledger is kept (never reset), so a second run there must fit in what it left.
    """
    if out is None:
        out = Path("synthhealth-demo" if dataset == "synthea" else f"synthhealth-demo-{dataset}")
    sh.PrivacyBudget(epsilon, 1e-6)  # epsilon in (0, 100]: checked before anything is read or written
    _check_demo_folder(out, epsilon, dataset)

    t0 = time.perf_counter()
    click.secho("synthhealth demo" + ("" if dataset == "synthea" else f" ({dataset})"), bold=True)
    schema_name = "core-patient" if dataset == "synthea" else dataset
    schema = sh.load_schema(schema_name)
    click.echo(f"[1/8] schema   {schema_name} v{schema.version}: {len(schema)} attributes, "
               f"domain of {schema.domain_size():.3g} cells, hash {schema.hash[:12]}")
    if dataset == "synthea":
        src = sh.datasets.demo_fhir_path()
        reader = sh.fhir.read(src, progress=not quiet)
        table = sh.flatten(reader, schema)
        stats = reader.stats
        click.echo(f"[2/8] read     {stats.files} Bundles, {stats.n_resources:,} resources, {stats.patients} patients "
                   f"({stats.bytes_read / 1e6:.0f} MB of JSON)")
    else:
        raw = sh.datasets.load_flchain()  # scikit-survival's bundled copy (no download)
        table = sh.read_table(raw, schema)
        click.echo(f"[2/8] read     flchain (scikit-survival): {len(raw):,} patients x {raw.shape[1]} columns")
    out.mkdir(parents=True, exist_ok=True)
    (out / _DEMO_MARKER).write_text(json.dumps({"format": "synthhealth-demo", "dataset": dataset}) + "\n",
                                    encoding="utf-8")
    real_path = sh.write_table(table, out / "real-patients.parquet", overwrite=True)
    if dataset == "synthea":
        flat = sh.report_of(table)
        assert flat is not None
        click.echo(f"[3/8] flatten  {len(table)} rows x {table.shape[1]} columns -> {real_path} (REAL data: keep "
                   "private)")
        click.echo("      " + flat.summary().replace("\n", "\n      "))
    else:
        click.echo(f"[3/8] table    {len(table):,} rows x {table.shape[1]} columns, one row per patient id -> "
                   f"{real_path} (REAL data: keep private)")
    train, holdout = sh.split(table, 1 / 3, random_state=seed)
    sh.write_table(train, out / "real-train.parquet", overwrite=True)
    sh.write_table(holdout, out / "real-holdout.parquet", overwrite=True)
    click.echo(f"[4/8] split    {len(train)} patients for fitting, {len(holdout)} held out for the report "
               f"-> {out / 'real-train.parquet'}, {out / 'real-holdout.parquet'}")
    t_fit = time.perf_counter()
    ledger_path = out / "ledger.json"  # an earlier demo's ledger keeps counting: never reset
    gen = sh.AIM(epsilon=epsilon, random_state=seed)
    with _randomness_warnings():
        gen.fit(train, schema=schema, ledger=ledger_path, progress=not quiet)
    model_path = gen.save(out / "model", overwrite=True)
    spent = gen.ledger_.total(gen.fit_id_)
    click.echo(f"[5/8] fit      AIM in {time.perf_counter() - t_fit:.1f} s, {gen.rounds_} rounds, "
               f"{spent.n_entries} noisy measurements -> {model_path}")
    click.echo(f"      spent epsilon={spent.epsilon:.3g}, delta={spent.delta:.0e} (rho={spent.rho:.4g}), unit: patient"
               + ("; SEEDED: not for release" if spent.seeded else ""))
    # the model's noisy patient count (the default): sampling len(train) rows would publish the exact count
    synth = gen.sample(random_state=seed)
    synth_path = sh.write_table(synth, out / "synthetic-patients.parquet", overwrite=True)
    click.echo(f"[6/8] sample   {len(synth)} synthetic patients -> {synth_path}")
    files = {"synthetic table": synth_path}
    report_w = None
    if dataset == "synthea":
        report_w = sh.fhir.write(synth, schema, out / "synthetic-fhir", random_state=seed,
                                 source=f"urn:synthhealth:demo:{gen.fit_id_}", overwrite=True)
        refs = sh.fhir.check_references(report_w.path)
        click.echo(f"[7/8] fhir     {report_w.n_patients} synthetic patients, {report_w.n_resources:,} FHIR R4 "
                   f"resources (Bulk NDJSON) -> {report_w.path}; " + ("references OK" if refs.ok else refs.summary()))
        files["synthetic FHIR"] = report_w.path
    else:
        click.echo(f"[7/8] fhir     skipped: the {dataset} schema is a plain table with no FHIR form")
    files.update({"model": model_path, "ledger": ledger_path})
    t_rep = time.perf_counter()
    rep = sh.Report.build(real=train, holdout=holdout, synthetic=synth, model=gen, random_state=seed,
                          progress=not quiet, files=files)
    for old in ("report-release", "report-preview"):  # a re-run must not leave an earlier run's release behind
        for ext in ("json", "html", "pdf"):
            (out / "report" / f"{old}.{ext}").unlink(missing_ok=True)
    paths = rep.save(out / "report")
    refusals = rep.release_refusals()
    shared = rep.save(out / "report", release=True, preview=True)
    click.echo(f"[8/8] report   attacks, utility and bias checks in {time.perf_counter() - t_rep:.1f} s "
               f"-> {paths['html']}")
    click.echo("")
    _print_report_summary(rep)
    for _, why in refusals:
        click.secho(f"  release refused: {why}", fg="yellow")
    click.echo("")
    if report_w is not None:
        click.echo(f"synthetic FHIR: {report_w.path}")
    else:
        click.echo(f"synthetic data: {synth_path}")
    click.echo(f"report:         {paths['html']} (internal review), {shared['html']} "
               + ("(PREVIEW: the release was refused, see above)" if refusals else "(shareable release)"))
    click.echo(f"done in {time.perf_counter() - t0:.1f} s")


_DEMO_MARKER = ".synthhealth-demo"
_DEMO_FILES = frozenset({_DEMO_MARKER, "real-patients.parquet", "real-train.parquet", "real-holdout.parquet",
                         "ledger.json", "ledger.json.lock", "model", "synthetic-patients.parquet", "synthetic-fhir",
                         "report"})


def _check_demo_folder(out: Path, epsilon: float, dataset: str = "synthea") -> None:
    """Before anything is read or written: ``out`` is new, empty or an earlier demo's of the same
    data set (its ledger is about those patients), and the earlier demo's ledger (kept, never
    reset) can pay for this run."""
    if out.exists() and not out.is_dir():
        raise sh.InvalidParameterError(f"The demo's '--out' {out} is a file: give a folder.")
    marker = out / _DEMO_MARKER
    if marker.is_file():
        try:
            earlier = json.loads(marker.read_text(encoding="utf-8")).get("dataset", "synthea")
        except (OSError, ValueError, AttributeError):
            earlier = "synthea"
        if earlier != dataset:
            raise sh.InvalidParameterError(
                f"The demo's '--out' folder {out} holds an earlier demo of the {earlier} data set; its ledger is about "
                f"other patients than {dataset}'s. Choose another folder with -o.")
    entries = sorted(p.name for p in out.iterdir()) if out.exists() else []
    if entries and not (out / _DEMO_MARKER).is_file() and not set(entries) <= _DEMO_FILES:
        others = [e for e in entries if e not in _DEMO_FILES]
        raise sh.InvalidParameterError(
            f"The demo's '--out' folder {out} is not empty and is not an earlier demo's (it holds "
            f"{', '.join(others[:5])}{' ...' if len(others) > 5 else ''}): the demo writes only into a new or empty "
            "folder or an earlier demo's. Choose another folder with -o.")
    ledger_path = out / "ledger.json"
    if ledger_path.exists():
        led = sh.PrivacyLedger.load(ledger_path)
        try:
            led.check(sh.PrivacyBudget(epsilon, 1e-6).rho)
        except sh.BudgetExceededError as exc:
            raise sh.BudgetExceededError(
                f"{ledger_path} records the earlier demo fits on these patients ({led.total()}); this run needs "
                f"epsilon={epsilon:g} more and the ledger cannot pay for it. The demo never resets a ledger: run it "
                f"in a new folder (-o NEW_FOLDER), or delete {ledger_path} yourself to start the demo's accounting "
                f"over. ({exc})") from None


# ------------------------------------------------------------------------- flatten
def _identity_options(f: Any) -> Any:
    """``--merge-duplicate-patients`` and ``--identifier-system``: how FHIR Patients of one person are found."""
    f = click.option("--identifier-system", "identifier_systems", multiple=True,
                     help="FHIR input: an identifier system that identifies a person (repeatable; default: every "
                          "system). Patients sharing a value of one of them are one person.")(f)
    return click.option("--merge-duplicate-patients", is_flag=True,
                        help="FHIR input: merge Patients that share an identifier (system + value) or are joined by "
                             "Patient.link into one patient (default: refuse them, naming where they are).")(f)


def _flatten(records: Any, schema: sh.PatientSchema, merge_duplicate_patients: bool,
             identifier_systems: tuple[str, ...], **kw: Any) -> Any:
    return sh.flatten(records, schema, duplicate_patients="merge" if merge_duplicate_patients else "raise",
                      identifier_systems=list(identifier_systems) or None, **kw)


@main.command()
@click.option("--schema", "-s", "schema_src", required=True,
              help="Schema YAML file or bundled schema name (core-patient, flchain).")
@click.option("--input", "-i", "inputs", required=True, multiple=True,
              help="FHIR file, folder or glob (Bundles or Bulk NDJSON; .gz/.xz ok). Repeatable.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output table (.parquet or .csv).")
@click.option("--on-error", type=click.Choice(["raise", "skip"]), default="raise", show_default=True,
              help="Stop at the first bad resource, or skip and count bad resources.")
@click.option("--strict", is_flag=True, help="Validate every resource with fhir.resources (slower).")
@_identity_options
@click.option("--overwrite", is_flag=True, help="Replace an existing output table.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@_errors
def flatten(schema_src: str, inputs: tuple[str, ...], output: Path, on_error: str, strict: bool,
            merge_duplicate_patients: bool, identifier_systems: tuple[str, ...], overwrite: bool, quiet: bool) -> None:
    """Flatten FHIR R4 input into one bounded row per patient (indexed by patient_id)."""
    _check_outputs([output], inputs, overwrite)
    schema = sh.load_schema(schema_src)
    reader = sh.fhir.read(list(inputs), strict=strict, on_error=on_error, progress=not quiet)
    t0 = time.perf_counter()
    table = _flatten(reader, schema, merge_duplicate_patients, identifier_systems, on_error=on_error)
    elapsed = time.perf_counter() - t0
    sh.write_table(table, output, overwrite=overwrite)
    stats = reader.stats
    click.echo(f"read {stats.files} files, {stats.n_resources:,} resources, {stats.patients} patients "
               f"in {elapsed:.1f} s ({stats.n_resources / max(elapsed, 1e-9):,.0f} resources/s)")
    report = sh.report_of(table)
    assert report is not None
    click.echo(report.summary())
    if stats.skipped_examples:
        click.echo("first skipped resources:")
        for line in stats.skipped_examples[:10]:
            click.echo(f"  {line}")
    click.echo(f"wrote {len(table)} rows x {table.shape[1]} columns to {output}")


def _check_outputs(outputs: list[Path], inputs: tuple[str, ...], overwrite: bool) -> None:
    """Before anything is read: output files are distinct, none is an input, none exists unless --overwrite."""
    def same(a: Path, b: Path) -> bool:
        try:
            return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
        except OSError:
            return False

    for i, out in enumerate(outputs):
        for other in outputs[:i]:
            if same(out, other):
                raise sh.InvalidParameterError(f"The two outputs are the same file ({out}): give two different files.")
        for src in inputs:
            if same(out, Path(src)):
                raise sh.InvalidParameterError(f"The output {out} is the input {src}: it would be overwritten. "
                                               "Write to another file.")
        if out.exists() and not overwrite:
            raise sh.InvalidParameterError(f"The output {out} already exists (use --overwrite to replace it).")


# ----------------------------------------------------------------- fit / sample
def _load_data(data: tuple[str, ...], schema: sh.PatientSchema, quiet: bool, one_row_per_patient: bool = False,
               merge_duplicate_patients: bool = False, identifier_systems: tuple[str, ...] = ()) -> Any:
    first = Path(data[0])
    if len(data) == 1 and first.name.lower().endswith((".csv", ".csv.gz", ".csv.xz", ".parquet", ".pq")):
        # patient ids are checked (duplicates refused); a table without ids needs --one-row-per-patient
        return sh.read_table(first, schema, one_row_per_patient=one_row_per_patient)
    return _flatten(sh.fhir.read(list(data), progress=not quiet), schema, merge_duplicate_patients,
                    identifier_systems)


def _marginal_pairs(values: tuple[str, ...]) -> Any:
    """``--marginal-pairs`` values → the DPVAE parameter (None when not given)."""
    if not values:
        return None
    if len(values) == 1 and values[0] in ("auto", "all", "none"):
        return values[0]
    pairs = []
    for v in values:
        parts = [a.strip() for a in v.split(",")]
        if len(parts) != 2 or not all(parts):
            raise sh.InvalidParameterError(
                "The '--marginal-pairs' option must be auto, all, none, or pairs written 'attr1,attr2'. "
                f"Got {v!r} instead.")
        pairs.append((parts[0], parts[1]))
    return pairs


@main.command()
@click.option("--schema", "-s", "schema_src", required=True, help="Schema YAML file or bundled schema name.")
@click.option("--data", "-d", required=True, multiple=True,
              help="Real data: a table (.csv/.parquet) or FHIR (file, folder or glob; flattened on the way).")
@click.option("--generator", "-g", type=click.Choice(["aim", "mst", "dpvae"]), default="aim", show_default=True)
@click.option("--epsilon", "-e", type=float, required=True, help="Privacy budget epsilon of this fit.")
@click.option("--delta", type=float, default=1e-6, show_default=True, help="Privacy parameter delta.")
@click.option("--ledger", "-l", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Privacy ledger shared by every fit of this data (created with this fit's budget if new).")
@click.option("--workload", "-w", multiple=True,
              help="AIM: a marginal that matters, as comma-separated attributes (repeatable).")
@click.option("--remeasure-share", type=float, default=None,
              help="AIM: share of the budget for a final pass re-measuring the selected marginals; 0 turns it off "
                   "[default: 0.5 when a noisy patient count says the data are large enough, else 0].")
@click.option("--epochs", type=int, default=None, help="DPVAE: expected passes over the data [default: 50].")
@click.option("--batch-size", type=int, default=None, help="DPVAE: expected (Poisson) batch size [default: 2048].")
@click.option("--learning-rate", type=float, default=None, help="DPVAE: Adam's peak learning rate [default: 0.03].")
@click.option("--hidden-sizes", default=None, help="DPVAE: hidden widths, comma-separated, e.g. 128,64 [default: 64].")
@click.option("--latent-size", type=int, default=None, help="DPVAE: latent dimension [default: 8].")
@click.option("--kl-weight", type=float, default=None, help="DPVAE: weight of the KL term [default: 0.3].")
@click.option("--clip-norm", type=float, default=None, help="DPVAE: per-patient gradient clip norm [default: 1].")
@click.option("--max-patients", type=int, default=None,
              help="DPVAE: declared upper bound on the number of patients (no budget spent on a noisy count).")
@click.option("--marginals-share", type=float, default=None,
              help="DPVAE: share of the budget for the noisy 1- and 2-way marginals; 0 turns them off "
                   "[default: 0.7 with 2-way marginals, 0.2 with 1-way only].")
@click.option("--marginal-pairs", multiple=True,
              help="DPVAE: 2-way marginals to measure: auto (all pairs up to 20 attributes), all, none, or a pair "
                   "as 'attr1,attr2' (repeatable) [default: auto].")
@click.option("--finetune-steps", type=int, default=None,
              help="DPVAE: steps fitting the decoder to the noisy marginals after training; 0 turns it off "
                   "[default: 300].")
@click.option("--calibrate/--no-calibrate", default=None,
              help="DPVAE: match the model's 1-way marginals to the noisy ones after training [default: on].")
@click.option("--accountant", type=click.Choice(["prv", "rdp"]), default=None, help="DPVAE: accountant [default: prv].")
@click.option("--device", default=None, help="DPVAE: auto, cpu, cuda or cuda:N [default: auto].")
@click.option("--secure-mode/--no-secure-mode", default=None,
              help="DPVAE: DP randomness from the OS CSPRNG [default: on without --seed].")
@click.option("--one-row-per-patient", is_flag=True,
              help="The table has no patient ids and you guarantee one row per patient (the ledger and the report "
                   "record that the guarantee rests on this statement). Tables with ids are always checked.")
@_identity_options
@click.option("--seed", type=int, default=None, help="Seed the DP noise (reproducible, NOT for release).")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path), help="Model folder.")
@click.option("--overwrite", is_flag=True,
              help="Replace an earlier synthhealth model in --out (never a folder holding anything else).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@_errors
def fit(schema_src: str, data: tuple[str, ...], generator: str, epsilon: float, delta: float, ledger: Path | None,
        workload: tuple[str, ...], remeasure_share: float | None, epochs: int | None, batch_size: int | None, learning_rate: float | None,
        hidden_sizes: str | None, latent_size: int | None, kl_weight: float | None, clip_norm: float | None,
        max_patients: int | None, marginals_share: float | None, marginal_pairs: tuple[str, ...],
        finetune_steps: int | None, calibrate: bool | None, accountant: str | None,
        device: str | None, secure_mode: bool | None, one_row_per_patient: bool, merge_duplicate_patients: bool,
        identifier_systems: tuple[str, ...], seed: int | None, out: Path, overwrite: bool, quiet: bool) -> None:
    """Fit a DP generator (patient-level (epsilon, delta)-DP) and save the model.

    The patient is the privacy unit: a table's patient ids (the schema's patient_id column, or a
    patient_id column) are checked and duplicates refused; a table without ids needs
    --one-row-per-patient. FHIR input is flattened to one row per patient.
    """

    schema = sh.load_schema(schema_src)
    sh.PrivacyBudget(epsilon, delta)  # epsilon in (0, 100], delta in (0, 1): checked before any data is read
    params: dict[str, Any] = {"epsilon": epsilon, "delta": delta, "random_state": seed}
    if workload:
        if generator != "aim":
            raise sh.InvalidParameterError("The '--workload' option only applies to --generator aim.")
        params["workload"] = [tuple(a.strip() for a in w.split(",") if a.strip()) for w in workload]
    if remeasure_share is not None:
        if generator != "aim":
            raise sh.InvalidParameterError("The '--remeasure-share' option only applies to --generator aim.")
        params["remeasure_share"] = remeasure_share
    vae = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "hidden_sizes": hidden_sizes,
           "latent_size": latent_size, "kl_weight": kl_weight, "clip_norm": clip_norm, "max_patients": max_patients,
           "marginals_share": marginals_share, "marginal_pairs": _marginal_pairs(marginal_pairs),
           "finetune_steps": finetune_steps, "calibrate": calibrate, "accountant": accountant, "device": device,
           "secure_mode": secure_mode}
    vae = {k: v for k, v in vae.items() if v is not None}
    if vae and generator != "dpvae":
        raise sh.InvalidParameterError(
            f"The {', '.join('--' + k.replace('_', '-') for k in vae)} option(s) only apply to --generator dpvae.")
    if "hidden_sizes" in vae:
        try:
            vae["hidden_sizes"] = tuple(int(h) for h in vae["hidden_sizes"].split(",") if h.strip())
        except ValueError:
            raise sh.InvalidParameterError(
                f"The '--hidden-sizes' option must be comma-separated ints. Got {hidden_sizes!r} instead.") from None
    gen = {"aim": sh.AIM, "mst": sh.MST, "dpvae": sh.DPVAE}[generator](**params, **vae)
    # before the data is read or the budget spent: --overwrite replaces only an earlier model folder
    gen.check_save_path(out, overwrite=overwrite)
    table = _load_data(data, schema, quiet, one_row_per_patient, merge_duplicate_patients, identifier_systems)
    t0 = time.perf_counter()
    with _randomness_warnings():
        gen.fit(table, schema=schema, ledger=ledger, progress=not quiet, one_row_per_patient=one_row_per_patient)
    gen.save(out, overwrite=overwrite)
    spent = gen.ledger_.total(gen.fit_id_)
    click.echo(f"fitted {generator.upper()} on {len(table)} patients in {time.perf_counter() - t0:.1f} s -> {out}")
    click.echo(f"spent: {spent}")
    if ledger is not None:
        total = gen.ledger_.total()
        click.echo(f"ledger {ledger}: total spent epsilon={total.epsilon:.4g}, delta={total.delta:.3g} of "
                   f"{gen.ledger_.budget.epsilon:g}, {gen.ledger_.budget.delta:g}")
        if not any(e.accounting == "approx_dp" for e in gen.ledger_.entries):
            left = sh.PrivacyBudget.from_rho(gen.ledger_.remaining_rho(), gen.ledger_.budget.delta).epsilon \
                if gen.ledger_.remaining_rho() > 0 else 0.0
            click.echo(f"remaining for zCDP fits: epsilon={left:.4g}")
    if generator == "dpvae" and seed is None and not gen.privacy_["secure_mode"]:
        click.secho("DP-SGD randomness from torch's generator (not a CSPRNG): use --secure-mode for a release",
                    fg="yellow")
    if seed is not None:
        click.secho("the DP noise was seeded: this model is NOT for release", fg="yellow")


@main.command()
@click.argument("model", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-n", "n", type=int, default=None,
              help="Number of synthetic patients, at most 10,000,000 (default: the model's noisy count).")
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path),
              help="Output: a table (.parquet or .csv), or a folder for FHIR formats.")
@click.option("--format", "fmt", type=click.Choice(["table", "fhir-ndjson", "fhir-bundle"]), default="table",
              show_default=True, help="A table, or synthetic FHIR R4 (Bulk NDJSON or one Bundle per patient).")
@click.option("--bundle-type", type=click.Choice(["transaction", "collection"]), default="transaction",
              show_default=True, help="FHIR Bundle type (fhir-bundle).")
@click.option("--patients-per-bundle", type=int, default=1, show_default=True, help="Patients per Bundle file.")
@click.option("--seed", type=int, default=None, help="Seed of the sampling and identities (post-processing).")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing output table, or earlier synthhealth output in the FHIR folder.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@_errors
def sample(model: Path, n: int | None, output: Path, fmt: str, bundle_type: str, patients_per_bundle: int,
           seed: int | None, overwrite: bool, quiet: bool) -> None:
    """Draw synthetic patients from a saved model (no privacy cost): a table or synthetic FHIR."""
    import numpy as np

    from synthhealth.generators import MAX_SAMPLE_SIZE

    if n is not None and not 1 <= n <= MAX_SAMPLE_SIZE:
        raise sh.InvalidParameterError(
            f"The '-n' option must be an int in [1, {MAX_SAMPLE_SIZE:,}] (draw more with several runs). Got {n!r} "
            "instead.")
    gen = sh.load_model(model)
    if fmt == "table":
        _check_outputs([output], (str(model),), overwrite)
        synth = gen.sample(n, random_state=seed)
        sh.write_table(synth, output, overwrite=overwrite)
        click.echo(f"wrote {len(synth)} synthetic patients x {synth.shape[1]} columns to {output}")
        return
    total = n if n is not None else max(1, int(round(gen.total_)))
    rng = np.random.default_rng(seed)
    chunk = 50_000
    chunks = (gen.sample(min(chunk, total - i), random_state=rng) for i in range(0, total, chunk))
    report = sh.fhir.write(chunks, gen.schema_, output, format="ndjson" if fmt == "fhir-ndjson" else "bundle",
                           bundle_type=bundle_type, patients_per_bundle=patients_per_bundle, random_state=seed,
                           source=f"urn:synthhealth:model:{gen.name}:{gen.fit_id_}", overwrite=overwrite,
                           progress=not quiet)
    click.echo(report.summary())


# -------------------------------------------------------------------------- schema
# ------------------------------------------------------------------ split / report
@main.command()
@click.option("--schema", "-s", "schema_src", required=True, help="Schema YAML file or bundled schema name.")
@click.option("--data", "-d", required=True, multiple=True,
              help="Real data: a table (.csv/.parquet) or FHIR files/folders (repeatable).")
@click.option("--holdout-frac", type=float, default=0.2, show_default=True,
              help="Share of patients kept out of fitting, for the report's attacks and utility.")
@click.option("--train-out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the training patients (.parquet or .csv).")
@click.option("--holdout-out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the holdout patients (.parquet or .csv).")
@click.option("--one-row-per-patient", is_flag=True,
              help="The table has no patient ids and you guarantee one row per patient (the ledger and the report "
                   "record that the guarantee rests on this statement). Tables with ids are always checked.")
@click.option("--seed", type=int, default=None, help="Seed of the random split.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files (never the input).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@_errors
def split(schema_src: str, data: tuple[str, ...], holdout_frac: float, train_out: Path, holdout_out: Path,
          one_row_per_patient: bool, seed: int | None, overwrite: bool, quiet: bool) -> None:
    """Split real patients at random into a training set and a holdout set (before fitting).

    Fit the generator on the training set only; the report compares the synthetic data with the
    holdout patients the generator never saw. Both files hold REAL data: keep them private.
    """
    if not 0.0 < holdout_frac < 1.0:
        raise sh.InvalidParameterError(f"The '--holdout-frac' option must be in (0, 1). Got {holdout_frac} instead.")
    _check_outputs([train_out, holdout_out], data, overwrite)
    schema = sh.load_schema(schema_src)
    table = _load_data(data, schema, quiet, one_row_per_patient)
    n = len(table)
    train, hold = sh.split(table, holdout_frac, random_state=seed)
    sh.write_table(train, train_out, overwrite=overwrite)
    sh.write_table(hold, holdout_out, overwrite=overwrite)
    click.echo(f"split {n} patients: {len(train)} for training -> {train_out}, {len(hold)} held out -> "
               f"{holdout_out} (REAL data: keep both private)")


@main.command()
@click.option("--schema", "-s", "schema_src", default=None,
              help="Schema YAML file or bundled schema name (default: the model's schema).")
@click.option("--real", "-r", required=True, multiple=True,
              help="The real training patients: a table or FHIR files/folders (repeatable).")
@click.option("--holdout", required=True, multiple=True,
              help="Real patients never used for fitting: a table or FHIR (repeatable).")
@click.option("--synthetic", required=True, multiple=True,
              help="The synthetic data: a table or synthetic FHIR (repeatable).")
@click.option("--model", "-m", "model_path", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="The model folder (its ledger gives the privacy guarantee).")
@click.option("--ledger", "-l", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A privacy ledger file (default: the model's ledger).")
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Report folder (report.json, report.html, report.pdf).")
@click.option("--release", is_flag=True,
              help="Also write the shareable release variant (no statistic of the real data). Refused unless the "
                   "synthetic data is a model's output whose fit is in the ledger, the fit was not seeded and used "
                   "secure samplers, and the internal privacy verdict is not a fail.")
@click.option("--preview", is_flag=True,
              help="With --release: when the release is refused, write report-preview.* (the release layout, "
                   "marked PREVIEW, NOT A RELEASE) instead of failing.")
@click.option("--reviewer", default=None, help="Who reviews the internal report (cited by the release report).")
@click.option("--shadow", is_flag=True, help="Run the shadow-model attack (slow; needs --model).")
@click.option("--collapse-generations", type=int, default=0, show_default=True,
              help="Generations of the recursive-generation (model collapse) test; needs --model.")
@click.option("--thresholds", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="YAML file of {metric pattern: {pass_at, warn_at, better, measure}} overriding the defaults.")
@click.option("--n-attacks", type=int, default=500, show_default=True, help="Attacks per re-identification risk.")
@click.option("--format", "formats", multiple=True, type=click.Choice(["json", "html", "pdf"]),
              help="Formats to write (repeatable; default: all three).")
@click.option("--one-row-per-patient", is_flag=True,
              help="The real tables have no patient ids and you guarantee one row per patient. Tables with ids are always checked.")
@click.option("--seed", type=int, default=None, help="Seed of the attacks' and bootstraps' sampling.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@_errors
def report(schema_src: str | None, real: tuple[str, ...], holdout: tuple[str, ...], synthetic: tuple[str, ...],
           model_path: Path | None, ledger: Path | None, output: Path, release: bool, preview: bool,
           reviewer: str | None, shadow: bool, collapse_generations: int, thresholds: Path | None, n_attacks: int,
           formats: tuple[str, ...], one_row_per_patient: bool, seed: int | None, quiet: bool) -> None:
    """Build the privacy and utility report of a synthetic dataset.

    Without --model (or --ledger) the privacy-guarantee section says that no guarantee is known;
    the attacks still run.
    """
    import yaml

    model = sh.load_model(model_path) if model_path is not None else None
    if schema_src is not None:
        schema = sh.load_schema(schema_src)
    elif model is not None:
        schema = model.schema_
    else:
        raise sh.InvalidParameterError("The '--schema' option is required without '--model'.")
    if (shadow or collapse_generations) and model is None:
        raise sh.InvalidParameterError("The '--shadow' and '--collapse-generations' options need '--model'.")
    th = None
    if thresholds is not None:
        try:
            th = sh.report.load_thresholds(yaml.safe_load(thresholds.read_text(encoding="utf-8")) or {})
        except yaml.YAMLError as exc:
            raise sh.InvalidParameterError(f"The '--thresholds' file {thresholds} is not valid YAML: {exc}") from None
    # synthetic rows are not patients: they carry no ids
    tables = {name: _load_data(src, schema, quiet, one_row_per_patient or name == "synthetic") for name, src in
              (("real", real), ("holdout", holdout), ("synthetic", synthetic))}
    from synthhealth.report.provenance import file_provenance

    # where the synthetic data comes from: the provenance its Parquet file or FHIR folder kept
    provs = [file_provenance(p) for p in synthetic]
    prov = provs[0] if provs and all(p is not None and p == provs[0] for p in provs) else None
    files: dict[str, Any] = {f"synthetic {i + 1}" if len(synthetic) > 1 else "synthetic": p
                             for i, p in enumerate(synthetic)}
    files.update({"model": model_path, "ledger": ledger})
    if schema_src is not None and Path(schema_src).is_file():
        files["schema"] = schema_src
    t0 = time.perf_counter()
    rep = sh.Report.build(real=tables["real"], holdout=tables["holdout"], synthetic=tables["synthetic"],
                          schema=schema, model=model, ledger=ledger, thresholds=th, shadow=shadow,
                          collapse_generations=collapse_generations, n_attacks=n_attacks, random_state=seed,
                          progress=not quiet, provenance=prov, files=files, reviewer=reviewer)
    fmts = formats or ("json", "html", "pdf")
    paths = rep.save(output, formats=fmts)
    _print_report_summary(rep)
    if release:
        refusals = rep.release_refusals()
        if refusals and not preview:
            click.echo(f"report built in {time.perf_counter() - t0:.1f} s (internal review only):")
            for k, p in paths.items():
                click.echo(f"  {k:<12} {p}")
            rep.to_dict(release=True)  # raises the refusal (exit 2, every reason listed)
        paths.update({f"{'preview' if refusals else 'release'} {k}": v
                      for k, v in rep.save(output, formats=fmts, release=True, preview=preview).items()})
        for _, why in refusals:
            click.secho(f"  release refused (preview written): {why}", fg="yellow")
    click.echo(f"report built in {time.perf_counter() - t0:.1f} s:")
    for k, p in paths.items():
        click.echo(f"  {k:<12} {p}")


@main.command()
@click.option("--schema", "-s", "schema_src", required=True, help="Schema YAML file or bundled schema name.")
@click.option("--real", "-r", required=True, multiple=True,
              help="The real (training) patients: a table or FHIR files/folders (repeatable).")
@click.option("--holdout", required=True, multiple=True, help="Patients kept out of fitting: a table or FHIR.")
@click.option("--generator", "-g", type=click.Choice(["mst", "aim", "dpvae"]), default="mst", show_default=True)
@click.option("--epsilons", default="0.25,0.5,1,2,4", show_default=True, help="Comma-separated epsilons.")
@click.option("--delta", type=float, default=1e-6, show_default=True, help="Privacy parameter delta of each fit.")
@click.option("--ledger", "-l", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Ledger to charge every fit to (default: a new ledger saved in the output folder).")
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for sweep.csv, sweep.json, sweep.png (and ledger.json).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before spending the budget.")
@click.option("--one-row-per-patient", is_flag=True,
              help="The table has no patient ids and you guarantee one row per patient (the ledger and the report "
                   "record that the guarantee rests on this statement). Tables with ids are always checked.")
@click.option("--seed", type=int, default=None,
              help="Seed the DP noise and metrics (NOT for release: for stand-in data only).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@_errors
def sweep(schema_src: str, real: tuple[str, ...], holdout: tuple[str, ...], generator: str, epsilons: str,
          delta: float, ledger: Path | None, output: Path, yes: bool, one_row_per_patient: bool, seed: int | None,
          quiet: bool) -> None:
    """Fit a generator at several epsilons and plot the privacy-utility curve.

    Every fit touches the real data, so the sweep SPENDS THE SUM OF THE BUDGETS on the ledger.
    To choose epsilon without spending budget, sweep on stand-in data (a public dataset of the
    same shape, the bundled demo, or an earlier synthetic release) and fit the real data once.
    """
    try:
        eps = [float(e) for e in epsilons.split(",") if e.strip()]
    except ValueError:
        raise sh.InvalidParameterError(
            f"The '--epsilons' option must be comma-separated numbers. Got {epsilons!r} instead.") from None
    if ledger is None and (output / "ledger.json").exists():
        # the sweep would save its new ledger there: an earlier ledger must never be reset
        raise sh.InvalidParameterError(
            f"{output / 'ledger.json'} already exists: pass it with --ledger to keep counting on it, or choose another "
            "--output folder. No data was accessed.")
    cost = sh.sweep_cost(eps, generator=generator, delta=delta)
    click.echo(f"This sweep fits {generator.upper()} {cost.n_fits} times on the real data and spends the sum of "
               f"the budgets: epsilons {', '.join(f'{e:g}' for e in sorted(eps))} (sum {cost.epsilon_sum:g}); the "
               f"ledger will record epsilon={cost.epsilon:.4g}, delta={cost.delta:.3g}.")
    if not yes and not click.confirm("Spend this budget?", default=False):
        raise sh.InvalidParameterError("sweep cancelled: no data was accessed (use --yes to skip the question).")
    schema = sh.load_schema(schema_src)
    train = _load_data(real, schema, quiet, one_row_per_patient)
    hold = _load_data(holdout, schema, quiet, one_row_per_patient)

    with _randomness_warnings():
        res = sh.sweep(train, hold, schema=schema, generator=generator, epsilons=eps, delta=delta, ledger=ledger,
                       random_state=seed, progress=not quiet, one_row_per_patient=one_row_per_patient)
    output.mkdir(parents=True, exist_ok=True)
    import json

    res.table.to_csv(output / "sweep.csv", index=False)
    (output / "sweep.json").write_text(json.dumps(res.to_dict(), indent=1), encoding="utf-8")
    res.plot(output / "sweep.png")
    if ledger is None:
        res.ledger.save(output / "ledger.json")
    click.echo(res.table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    total = res.ledger.total()
    click.echo(f"ledger total: epsilon={total.epsilon:.4g}, delta={total.delta:.3g}"
               + (" (SEEDED: not for release)" if total.seeded else ""))
    click.echo(f"wrote {output / 'sweep.csv'}, {output / 'sweep.json'}, {output / 'sweep.png'}"
               + ("" if ledger is not None else f", {output / 'ledger.json'}"))


def _print_report_summary(rep: Any) -> None:
    verdicts = rep.doc["summary"].get("verdicts") or {}
    privacy = str(verdicts.get("privacy", rep.verdict))
    colour = {"pass": "green", "warn": "yellow", "fail": "red"}.get(privacy, None)  # utility never reads as risk
    click.secho(f"verdict: {rep.doc['summary']['headline']}", fg=colour, bold=True)
    for line in rep.summary().splitlines():
        click.echo(f"  {line}")
    for w in rep.doc.get("warnings", [])[:5]:
        click.secho(f"  warning: {w}", fg="yellow")
    steps = rep.doc["summary"].get("next_steps") or []
    if steps:  # the first remedy of each failed or warned check; the report's "next steps" box has them all
        click.echo(f"  next steps ({len(steps)} check(s); all of them, with the commands, in the report's summary):")
        for item in steps[:4]:
            first = (item.get("steps") or [{}])[0]
            click.echo(f"    {item.get('name')}: {first.get('text', '')}")
            if first.get("command"):
                click.echo(f"      $ {first['command']}")


@main.group()
def schema() -> None:
    """Work with patient schemas."""


@schema.command("check")
@click.argument("source")
@_errors
def schema_check(source: str) -> None:
    """Validate a schema file (or bundled name) and summarise it; lists every problem."""
    s = sh.load_schema(source)
    click.echo(f"{s.source or source}: OK")
    click.echo(f"  {s.name} v{s.version}, reference date {s.reference_date}, {len(s)} attributes, "
               f"hash {s.hash[:16]}")
    by_type: dict[str, int] = {}
    for a in s:
        by_type[a.type] = by_type.get(a.type, 0) + 1
    click.echo("  types: " + ", ".join(f"{k} {v}" for k, v in sorted(by_type.items())))
    click.echo(f"  full domain: {s.domain_size():.4g} cells")
    width = max(len(a.name) for a in s)
    for a in s:
        src = ""
        if a.fhir is not None:
            src = a.fhir.resource + (f".{a.fhir.path}" if a.fhir.path else f" [{a.fhir.aggregate}]")
        click.echo(f"  {a.name:<{width}}  {a.type:<11} {a.n_bins():>3} states  {src}")


# -------------------------------------------------------------------------- ledger
@main.group()
def ledger() -> None:
    """Inspect a privacy ledger and recover it after a crashed fit."""


def _print_reservations(led: sh.PrivacyLedger) -> list[Any]:
    held = led.reservations()
    for r in held:
        colour = {"live": None, "stale": "red", "unknown": "yellow"}[r.state]
        click.secho(f"  {r}", fg=colour)
    return held


@ledger.command("status")
@click.argument("path", metavar="LEDGER", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_errors
def ledger_status(path: Path) -> None:
    """Budget, spending, fits and the reservations of running fits (stale ones flagged)."""
    led = sh.PrivacyLedger.load(path)
    total = led.total()
    click.echo(f"ledger {path}: budget {led.budget}" + (f", dataset {led.dataset}" if led.dataset else ""))
    click.echo(f"spent: {total}")
    states: dict[str, int] = {}
    for f in led.fits:
        states[str(f.get("status"))] = states.get(str(f.get("status")), 0) + 1
    click.echo(f"fits: {len(led.fits)}" + (" (" + ", ".join(f"{v} {k}" for k, v in sorted(states.items())) + ")"
                                          if states else ""))
    rho = led.remaining_rho()
    if any(e.accounting == "approx_dp" for e in led.entries):
        click.echo(f"remaining: rho={rho:.6g} for zCDP fits")
    else:
        click.echo(f"remaining: epsilon={led.remaining_epsilon():.4g} (rho={rho:.6g}) for zCDP fits")
    if not led.reservations():
        click.echo("reservations: none")
        return
    click.echo("reservations (planned cost of running fits, counted as spent until they end):")
    held = _print_reservations(led)
    stale = [r for r in held if r.state == "stale"]
    if stale:
        click.secho(f"{len(stale)} STALE reservation{'s' if len(stale) > 1 else ''} (the process is gone): "
                    f"{'they count' if len(stale) > 1 else 'it counts'} as spent until cleared with "
                    f"`synthhealth ledger clear-stale {path}`", fg="red")
    if any(r.state == "unknown" for r in held):
        click.echo("reservations marked UNKNOWN cannot be checked from here; if you know such a fit is not running, "
                   f"clear it with `synthhealth ledger clear-stale {path} --fit FIT_ID`")


@ledger.command("clear-stale")
@click.argument("path", metavar="LEDGER", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--fit", "fit_ids", multiple=True, metavar="FIT_ID",
              help="Clear exactly this reservation (repeatable), also one that cannot be checked from here "
                   "(another host, an older ledger): you vouch that the fit is not running. Never a running one.")
@_errors
def ledger_clear_stale(path: Path, fit_ids: tuple[str, ...]) -> None:
    """Release the reservations of fits whose process is gone (crashed or killed).

    The measurements those fits charged stay in the ledger and keep counting; only the planned
    cost they never charged goes back to the budget. The fits are marked 'abandoned'.
    """
    led = sh.PrivacyLedger.load(path)
    cleared = led.clear_stale(list(fit_ids) if fit_ids else None)
    if not cleared:
        click.echo("no stale reservation: nothing cleared")
    for r in cleared:
        click.echo(f"cleared {r}")
    left = led.reservations()
    if left:
        click.echo(f"{len(left)} reservation{'s' if len(left) > 1 else ''} left:")
        _print_reservations(led)
    click.echo(f"spent: {led.total()}")


# ------------------------------------------------------------------------ validate
@main.command()
@click.argument("path", nargs=-1, required=True)
@click.option("--max-errors", default=20, show_default=True, help="How many problems to list.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@_errors
def validate(path: tuple[str, ...], max_errors: int, quiet: bool) -> None:
    """Validate FHIR R4 files: every resource strictly (fhir.resources R4B), required code
    bindings, and reference integrity (every reference resolves inside the files).

    Exits with status 1 when any resource is invalid, a binding is violated or a reference does
    not resolve. Duplicate ids across Bundles (shared Organizations in transaction Bundles) and
    conditional or external references are reported as warnings.
    """
    reader = sh.fhir.read(list(path), strict=True, on_error="skip", progress=not quiet)
    t0 = time.perf_counter()
    binding_problems: list[str] = []
    n_binding = 0
    for item in reader.resources():
        problems = sh.fhir.check_bindings(item.resource)
        if problems:
            n_binding += len(problems)
            if len(binding_problems) < max_errors:
                rid = item.resource.get("id")
                where = f"{item.location}, {item.resource['resourceType']}/{rid}" if isinstance(rid, str) else str(item.location)
                binding_problems.extend(f"{where}: {p}" for p in problems)
    stats = reader.stats
    refs = sh.fhir.check_references(list(path))
    elapsed = time.perf_counter() - t0
    click.echo(f"checked {stats.files} files, {stats.n_resources + stats.n_skipped:,} resources, "
               f"{stats.patients} patients in {elapsed:.1f} s")
    failed = False
    if stats.n_skipped:
        failed = True
        click.secho(f"{stats.n_skipped} invalid: " + ", ".join(f"{k} {v}" for k, v in stats.skipped.items()),
                    fg="red")
        for line in stats.skipped_examples[:max_errors]:
            click.echo(f"  {line}")
    if n_binding:
        failed = True
        click.secho(f"{n_binding} required-binding violations", fg="red")
        for line in binding_problems[:max_errors]:
            click.echo(f"  {line}")
    # legitimate in real exports (shared resources in transaction Bundles, conditional or external
    # references to practitioners and organisations): warnings, not errors
    warn_kinds = {"duplicate id", "duplicate fullUrl", "conditional reference", "external reference"}
    errors = {k: v for k, v in refs.problems.items() if k not in warn_kinds}
    click.echo(refs.summary())
    if refs.problems:
        shown = [e for e in refs.examples if not any(e.endswith(k) for k in warn_kinds)] or refs.examples
        for line in shown[:max_errors]:
            click.echo(f"  {line}")
    if errors:
        failed = True
    elif refs.problems:
        click.secho("warning: " + ", ".join(sorted(refs.problems)) + " (allowed in real exports; synthhealth's own "
                    "output has none)", fg="yellow")
    if failed:
        sys.exit(1)
    click.secho("all resources valid", fg="green")


if __name__ == "__main__":  # pragma: no cover
    main()
