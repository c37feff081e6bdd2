"""The ``synthhealth`` command line (uses the public API only)."""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

import synthhealth as sh

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int = 2) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


def _errors(func: F) -> F:
    """Turn expected errors into one clear line (the traceback with --debug)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        debug = bool(ctx.find_root().params.get("debug"))
        try:
            return func(*args, **kwargs)
        except (sh.SynthHealthError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
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
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("synthhealth-demo"),
              show_default=True, help="Output folder.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@_errors
def demo(out: Path, quiet: bool) -> None:
    """Run the pipeline on the bundled demo data (150 synthetic Synthea patients).

    Today the pipeline reads FHIR, checks the schema and flattens to one bounded row per
    patient; the DP generators, synthetic FHIR and the report come in later releases.
    """
    t0 = time.perf_counter()
    click.secho("synthhealth demo", bold=True)
    schema = sh.load_schema("core-patient")
    click.echo(f"[1/3] schema   core-patient v{schema.version}: {len(schema)} attributes, "
               f"domain of {schema.domain_size():.3g} cells, hash {schema.hash[:12]}")
    src = sh.datasets.demo_fhir_path()
    reader = sh.fhir.read(src, progress=not quiet)
    table = sh.flatten(reader, schema)
    stats = reader.stats
    click.echo(f"[2/3] read     {stats.files} Bundles, {stats.n_resources:,} resources, {stats.patients} patients "
               f"({stats.bytes_read / 1e6:.0f} MB of JSON)")
    path = sh.write_table(table, out / "patients.parquet")
    report = sh.report_of(table)
    assert report is not None
    click.echo(f"[3/3] flatten  {len(table)} rows x {table.shape[1]} columns -> {path}")
    click.echo("      " + report.summary().replace("\n", "\n      "))
    click.echo("")
    prev = table[["sex", "age", "diabetes", "hypertension", "bmi", "n_encounters_5y"]].head(5)
    click.echo(prev.to_string())
    click.echo("")
    click.secho("The DP generators (AIM, MST, DP-VAE), synthetic FHIR output and the privacy report are not "
                "built yet: the demo stops after flattening.", fg="yellow")
    click.echo(f"done in {time.perf_counter() - t0:.1f} s; the flattened table is REAL patient data: keep it private.")


# ------------------------------------------------------------------------- flatten
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
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@_errors
def flatten(schema_src: str, inputs: tuple[str, ...], output: Path, on_error: str, strict: bool, quiet: bool) -> None:
    """Flatten FHIR R4 input into one bounded row per patient."""
    schema = sh.load_schema(schema_src)
    reader = sh.fhir.read(list(inputs), strict=strict, on_error=on_error, progress=not quiet)
    t0 = time.perf_counter()
    table = sh.flatten(reader, schema, on_error=on_error)
    elapsed = time.perf_counter() - t0
    sh.write_table(table, output)
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


# -------------------------------------------------------------------------- schema
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


# ------------------------------------------------------------------------ validate
@main.command()
@click.argument("path", nargs=-1, required=True)
@click.option("--max-errors", default=20, show_default=True, help="How many errors to list.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@_errors
def validate(path: tuple[str, ...], max_errors: int, quiet: bool) -> None:
    """Strictly validate FHIR R4 files (fhir.resources R4B) and patient references.

    Exits with status 1 when any resource is invalid.
    """
    reader = sh.fhir.read(list(path), strict=True, on_error="skip", progress=not quiet)
    t0 = time.perf_counter()
    for _ in reader.resources():
        pass
    stats = reader.stats
    elapsed = time.perf_counter() - t0
    click.echo(f"checked {stats.files} files, {stats.n_resources + stats.n_skipped:,} resources, "
               f"{stats.patients} patients in {elapsed:.1f} s")
    if stats.n_skipped:
        click.secho(f"{stats.n_skipped} invalid: " + ", ".join(f"{k} {v}" for k, v in stats.skipped.items()),
                    fg="red")
        for line in stats.skipped_examples[:max_errors]:
            click.echo(f"  {line}")
        sys.exit(1)
    click.secho("all resources valid", fg="green")


if __name__ == "__main__":  # pragma: no cover
    main()
