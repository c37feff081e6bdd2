"""``Report``: build the privacy and utility report, save it as JSON, HTML and PDF.

The report has four parts, each a :class:`~synthhealth.report.model.Section`:

1. the privacy **guarantee** read from the ledger (nothing learned from the data);
2. empirical **attacks** on the released synthetic data (membership inference by distance,
   density and shadow models; singling out, linkability and inference risks);
3. **utility** against the real holdout data (distributions, 2-way marginals, k-marginal score,
   pMSE, train-on-synthetic/test-on-real, CI overlap, survival curves, prevalence);
4. **bias and collapse** (subgroups, rare categories, coverage, recursive generation).

and a summary of every check against its threshold with an overall verdict. Parts 2–4 use real
data: the full report is for internal review. ``save(..., release=True)`` writes the shareable
variant that keeps only the guarantee and descriptions of the synthetic data.
"""

from __future__ import annotations

import json
import os
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import check_positive_int, check_random_state
from ..exceptions import InsecureRandomnessWarning, InvalidParameterError, SynthHealthError
from ..privacy.ledger import PrivacyLedger
from ..schema.model import PatientSchema
from .data import ReportData
from .guarantee import guarantee_section
from .model import Check, Figure, Metric, Section, jsonable
from .provenance import check_release, file_manifest, fit_record, release_refusals, table_provenance
from .regulatory import next_steps, regulatory_section
from .verdict import PRIVACY_PREFIXES, Threshold, judge, overall

__all__ = ["Report", "REPORT_FORMAT", "REPORT_FORMAT_VERSION", "FitSample"]

REPORT_FORMAT = "synthhealth-report"
"""The ``format`` field of every report document."""
REPORT_FORMAT_VERSION = 1
"""The document version this release writes and reads (``format_version``)."""

FitSample = Callable[[pd.DataFrame, np.random.Generator], pd.DataFrame]
"""``fit_sample(table, rng) -> synthetic table``: re-fit a generator on ``table`` and sample as many rows."""

INTERNAL_NOTICE = ("INTERNAL REVIEW: this report contains statistics of the real patient data (no records). "
                   "Do not share it outside the review; share the release version instead.")
RELEASE_NOTICE = ("RELEASE VERSION: contains only the differential-privacy guarantee and descriptions of the "
                  "synthetic data; no statistic of the real data.")
SEEDED_NOTICE = ("NOT FOR RELEASE: the privacy noise was seeded (reproducible), so the differential-privacy "
                 "guarantee does not hold.")


def _version() -> str:
    from .. import __version__

    return __version__


def _as_list(x: Any) -> list[Any]:
    if x is None:
        return []
    if isinstance(x, (Metric, Figure)):
        return [x]
    return list(x)


def _split(result: Any) -> tuple[list[Metric], list[Figure]]:
    """Normalise a metric function's result: (metrics, figures) with figures a Figure or a list."""
    if isinstance(result, tuple) and len(result) == 2:
        ms, fs = result
        return _as_list(ms), _as_list(fs)
    items = _as_list(result)
    return [m for m in items if isinstance(m, Metric)], [f for f in items if isinstance(f, Figure)]


def model_fit_sample(model: Any) -> FitSample:
    """A budget-free ``fit_sample(table, rng)`` that re-fits a fresh copy of ``model``'s generator.

    Used by the shadow-model attack (on holdout data) and the collapse test (on synthetic data):
    neither touches the protected training data, so the fresh in-memory ledgers they create are
    not charged to the real ledger. Uses only the public generator API (``get_params``, ``fit``,
    ``sample``, ``schema_``).

    Parameters
    ----------
    model : fitted generator
        E.g. a fitted :class:`synthhealth.MST`; its parameters and schema are copied.

    Returns
    -------
    callable
        ``fit_sample(table, rng)``: a fresh generator with the same parameters (seeded from
        ``rng``) fitted on ``table``, sampled to ``len(table)`` rows.

    Raises
    ------
    InvalidParameterError
        If ``model`` is not a fitted synthhealth generator.
    """
    for attr in ("get_params", "fit", "sample", "schema_"):
        if not hasattr(model, attr):
            raise InvalidParameterError(
                f"The 'model' parameter must be a fitted synthhealth generator (missing {attr!r}). "
                f"Got {type(model).__name__} instead.")
    params = dict(model.get_params())
    schema = model.schema_

    def fit_sample(table: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        seed = int(rng.integers(2**31 - 1))
        gen = type(model)(**{**params, "random_state": seed})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureRandomnessWarning)
            # the report's own re-fits (shadow models, collapse): tables it checked, one row per patient or
            # synthetic rows; nothing of them is released
            try:
                gen.fit(table, schema=schema, progress=False, one_row_per_patient=True)
            except TypeError:  # a generator without a progress option
                gen.fit(table, schema=schema)
        return gen.sample(len(table), random_state=seed + 1)

    return fit_sample


def _files_section(prov: Mapping[str, Any] | None, fit: Mapping[str, Any] | None,
                   manifest: list[dict[str, Any]], extra: Sequence[tuple[str, str]] = ()) -> Section:
    """Where the synthetic data comes from and the sha256 hashes of the files the report describes."""
    sec = Section("files", "Provenance and files",
                  intro="What this report describes: the model output it judged and the files, by their sha256 "
                        "hashes, so that a reader can check that the files at hand are the ones judged.")
    if prov:
        sec.facts += [("Synthetic data produced by", f"{prov.get('generator')} fit {prov.get('fit_id')}"),
                      ("Schema hash (of the model)", str(prov.get("schema_hash"))),
                      ("Seeded", "yes: NOT FOR RELEASE" if prov.get("seeded") else "no")]
    else:
        sec.facts.append(("Synthetic data produced by", "unknown: the table carries no synthhealth provenance "
                                                        "(not a model's output, or a CSV file)"))
    if fit is not None:
        sec.facts.append(("Fit in the given ledger", (f"yes ({fit.get('status')}, ε = {fit.get('epsilon'):.4g})"
                                                      if fit.get("found") else "NO: the ledger does not hold this fit")))
    sec.facts += list(extra)
    for e in manifest:
        sec.facts.append((f"{e['role']}: {e['path']}",
                          "missing" if e.get("sha256") is None else f"sha256 {e['sha256']} ({e['bytes']:,} bytes)"))
    if not manifest:
        sec.notes.append("No files were named (Report.build(files=...), or the command line's inputs).")
    return sec


def _synthetic_section(data: ReportData, max_figures: int = 12) -> Section:
    """Descriptions computed from the synthetic data only (kept in the release version)."""
    sec = Section("synthetic", "The synthetic data",
                  intro="What the released synthetic data contains. Everything in this section is computed from "
                        "the synthetic data alone, so it is covered by the privacy guarantee (post-processing).")
    syn = data.codes("synthetic")
    sec.facts = [("Synthetic patients", f"{len(syn):,}"), ("Attributes", str(len(data.names))),
                 ("Schema", f"{data.schema.name} {data.schema.version}")]
    for j, name in enumerate(data.names[:max_figures]):
        freq = np.bincount(syn[:, j], minlength=data.sizes[j]) / max(len(syn), 1)
        labels = data.labels(name)
        sec.figures.append(Figure(f"synthetic.marginal.{name}", f"{name} (synthetic)", "bars",
                                  {"categories": labels, "series": {"synthetic": freq.tolist()}},
                                  caption="Share of synthetic patients in each state.", real_data=False))
    if len(data.names) > max_figures:
        sec.notes.append(f"Distributions of the first {max_figures} of {len(data.names)} attributes are shown.")
    return sec


class Report:
    """The privacy and utility report of one synthetic dataset.

    Build one with :meth:`Report.build`; save it with :meth:`save` (``report.json``,
    ``report.html``, ``report.pdf``); reload a saved one with :meth:`load`.

    Examples
    --------
    >>> import synthhealth as sh
    >>> schema = sh.load_schema("flchain")
    >>> t = sh.datasets.load_flchain().sample(1200, random_state=0).reset_index(drop=True)
    >>> train, holdout = t.iloc[:800], t.iloc[800:]
    >>> gen = sh.MST(epsilon=1.0, random_state=0).fit(train, schema=schema, progress=False)
    >>> rep = sh.Report.build(real=train, holdout=holdout, synthetic=gen.sample(800, random_state=0),
    ...                       model=gen, random_state=0, progress=False)
    >>> rep.verdict in ("pass", "warn", "fail")
    True
    """

    def __init__(self, doc: dict[str, Any]) -> None:
        if not isinstance(doc, dict) or doc.get("format") != REPORT_FORMAT:
            raise InvalidParameterError("The 'doc' parameter of Report must be a synthhealth report document.")
        if doc.get("format_version") != REPORT_FORMAT_VERSION:
            raise InvalidParameterError(
                f"report format version {doc.get('format_version')!r} is not supported; this release reads "
                f"version {REPORT_FORMAT_VERSION}.")
        self.doc = doc

    # ------------------------------------------------------------------ build
    @classmethod
    def build(
        cls,
        *,
        real: pd.DataFrame,
        holdout: pd.DataFrame,
        synthetic: pd.DataFrame,
        schema: PatientSchema | None = None,
        ledger: PrivacyLedger | str | os.PathLike[str] | None = None,
        model: Any = None,
        thresholds: Mapping[str, Threshold] | None = None,
        shadow: bool = False,
        fit_sample: FitSample | None = None,
        collapse_generations: int = 0,
        n_attacks: int = 500,
        max_targets: int = 2000,
        n_boot: int = 200,
        title: str | None = None,
        random_state: Any = None,
        progress: bool = True,
        strict: bool = False,
        provenance: Mapping[str, Any] | None = None,
        files: Mapping[str, str | os.PathLike[str]] | None = None,
        reviewer: str | None = None,
    ) -> Report:
        """Measure everything and return the report.

        Parameters
        ----------
        real : DataFrame
            The real patients the generator was fitted on (training data; "members").
        holdout : DataFrame
            Real patients of the same population that the generator never saw.
        synthetic : DataFrame
            The synthetic data to assess.
        schema : PatientSchema, optional
            The public schema; taken from ``model`` when omitted.
        ledger : PrivacyLedger or path, optional
            The privacy ledger of the real data; taken from ``model`` when omitted. Without one, the
            guarantee section says that no guarantee is known.
        model : fitted generator, optional
            The generator that produced ``synthetic`` (for its ledger, schema, and the shadow-model
            attack and collapse test, which re-fit copies of it on holdout/synthetic data).
        thresholds : mapping of metric pattern → Threshold, optional
            Overrides of :data:`synthhealth.report.verdict.DEFAULT_THRESHOLDS`.
        shadow : bool, default False
            Run the shadow-model attack (slow: it fits the generator many times on holdout data).
        fit_sample : callable, optional
            ``fit_sample(table, rng) -> synthetic table`` for the shadow attack and the collapse test
            (default: re-fit copies of ``model``).
        collapse_generations : int, default 0
            Generations of the recursive-generation ("model collapse") stress test; 0 skips it.
        n_attacks : int, default 500
            Attacks per anonymeter-style risk.
        max_targets : int, default 2000
            Members and non-members attacked by the membership-inference attacks.
        n_boot : int, default 200
            Bootstrap resamples for confidence intervals.
        title : str, optional
            Title shown at the top of the HTML and PDF report. Default: ``"Privacy and utility
            report: <schema name>"``.
        random_state : None, int or numpy Generator
            Seeds the subsampling, attacks and bootstraps (not any privacy noise).
        progress : bool, default True
            Show a progress bar.
        strict : bool, default False
            Raise when a metric fails to compute (default: record the failure in the report's
            warnings and go on with the others).
        provenance : mapping, optional
            Where ``synthetic`` comes from (``kind="synthetic"``, ``generator``, ``schema_hash``,
            ``fit_id``, ``seeded``); default: the provenance a synthhealth model put in
            ``synthetic.attrs`` (see :func:`synthhealth.report.provenance.table_provenance`). The
            release report is refused without it.
        files : mapping of role → path, optional
            The files the report describes (e.g. ``{"synthetic table": ..., "synthetic FHIR": ...,
            "model": ..., "ledger": ..., "schema": ...}``): both reports carry their sha256 hashes.
        reviewer : str, optional
            Who reviews the internal report (shown, and cited by the release report).

        Returns
        -------
        Report
        """
        t_start = time.perf_counter()
        if model is not None:
            schema = schema if schema is not None else getattr(model, "schema_", None)
            if ledger is None:
                ledger = getattr(model, "ledger_", None)
        if schema is None:
            raise InvalidParameterError("The 'schema' parameter is required when no fitted 'model' is given.")
        if isinstance(ledger, (str, os.PathLike)):
            ledger = PrivacyLedger.load(ledger)
        if ledger is not None and not isinstance(ledger, PrivacyLedger):
            raise InvalidParameterError(
                f"The 'ledger' parameter must be a PrivacyLedger, a path or None. Got {type(ledger).__name__} instead.")
        collapse_generations = check_positive_int(collapse_generations, "collapse_generations", "Report.build",
                                                  allow_zero=True)
        n_attacks = check_positive_int(n_attacks, "n_attacks", "Report.build")
        max_targets = check_positive_int(max_targets, "max_targets", "Report.build")
        n_boot = check_positive_int(n_boot, "n_boot", "Report.build")
        if (shadow or collapse_generations) and fit_sample is None:
            if model is None:
                raise InvalidParameterError(
                    "The shadow-model attack and the collapse test re-fit the generator: give 'model' (a fitted "
                    "generator) or 'fit_sample'.")
            fit_sample = model_fit_sample(model)
        rng = check_random_state(random_state)
        data = ReportData.from_tables(schema, real, holdout, synthetic)
        seeds = iter(rng.integers(2**31 - 1, size=64).tolist())
        generator_name = type(model).__name__ if model is not None else None
        fit_id = getattr(model, "fit_id_", None) if model is not None else None
        prov = dict(provenance) if provenance is not None else table_provenance(synthetic)
        if prov is not None and prov.get("fit_id"):
            fit_id = fit_id or prov["fit_id"]
            generator_name = generator_name or prov.get("generator")
        fit_info = fit_record(ledger, (prov or {}).get("fit_id") or fit_id)
        manifest = file_manifest(files) if files else []

        g_sec, g_info = guarantee_section(ledger, schema, generator=generator_name, fit_id=fit_id)
        claimed = g_info["epsilon"]
        delta = g_info["delta"] if g_info["delta"] else 1e-6

        from . import bias, utility
        from .attacks import anonymeter, density, distance
        from .attacks import shadow as shadow_mod

        steps: list[tuple[str, str, Callable[[], Any]]] = [
            ("attacks", "distance to closest record", lambda: distance.dcr_attack(
                data, max_targets=max_targets, random_state=next(seeds), delta=delta)),
            ("attacks", "density ratio (DOMIAS)", lambda: density.density_attack(
                data, max_targets=max_targets, random_state=next(seeds), delta=delta)),
            ("attacks", "singling out, linkability, inference", lambda: anonymeter.anonymeter_risks(
                data, n_attacks=n_attacks, random_state=next(seeds))),
        ]
        if shadow:
            assert fit_sample is not None
            fs = fit_sample
            steps.append(("attacks", "shadow models", lambda: shadow_mod.shadow_attack(
                data, fs, random_state=next(seeds), delta=delta)))
        steps += [
            ("utility", "single-attribute distributions", lambda: utility.marginal_fidelity(data)),
            ("utility", "2-way marginals", lambda: utility.pairwise_fidelity(data)),
            ("utility", "3-way marginal score", lambda: utility.k_marginal_score(data, k=3,
                                                                                random_state=next(seeds))),
            ("utility", "propensity (pMSE)", lambda: utility.pmse(data, random_state=next(seeds))),
            ("utility", "train on synthetic, test on real", lambda: utility.tstr(
                data, random_state=next(seeds), n_boot=n_boot)),
            ("utility", "regression CI overlap", lambda: utility.ci_overlap(data)),
            ("utility", "survival curves", lambda: utility.survival_curves(data)),
            ("utility", "prevalence", lambda: utility.prevalence(data)),
            ("bias", "subgroups", lambda: bias.subgroup_gaps(data)),
            ("bias", "rare categories", lambda: bias.rare_categories(data)),
            ("bias", "coverage", lambda: bias.coverage(data, random_state=next(seeds))),
        ]
        if collapse_generations:
            assert fit_sample is not None
            fs2 = fit_sample
            steps.append(("bias", "recursive generation (collapse)", lambda: bias.collapse(
                data, fs2, generations=collapse_generations, random_state=next(seeds))))

        sections = {
            "attacks": Section("attacks", "Empirical privacy attacks", intro=(
                "Real attacks run against the synthetic data, each with its threat model. Members are patients of "
                "the training data, non-members patients of the holdout data. An attack near chance level is "
                "reassuring but proves nothing on its own; the guarantee above is the proof. If an attack's "
                "empirical ε lower bound exceeded the claimed ε, the guarantee would be wrong.")),
            "utility": Section("utility", "Utility: how well the synthetic data matches the real data", intro=(
                "The synthetic data is compared with real holdout patients the generator never saw.")),
            "bias": Section("bias", "Bias, rare categories and collapse", intro=(
                "The failure modes synthetic data is known for: patient subgroups served worse than others, rare "
                "categories lost, diversity lost, and decay when synthetic data is re-used to train generators.")),
        }
        warn_list: list[str] = []
        timings: dict[str, float] = {}
        if progress:
            from tqdm.auto import tqdm
        else:  # tqdm.auto warns in Jupyter without ipywidgets even when disabled
            from tqdm import tqdm

        bar = tqdm(steps, desc="report", unit="step", disable=not progress, leave=False)
        for part, label, fn in bar:
            bar.set_postfix_str(label)
            t0 = time.perf_counter()
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    metrics, figures = _split(fn())
                for w in caught:
                    text = f"{label}: {w.category.__name__}: {str(w.message).splitlines()[0][:200]}"
                    if text not in warn_list:
                        warn_list.append(text)
            except InvalidParameterError:
                raise
            except Exception as exc:  # one failed metric must not lose the others
                if strict:
                    raise
                warn_list.append(f"{label} could not be computed: {type(exc).__name__}: {str(exc)[:200]}")
                metrics, figures = [], []
            timings[label] = round(time.perf_counter() - t0, 3)
            sections[part].metrics += metrics
            sections[part].figures += figures
        bar.close()

        # the full pair heatmap is in an appendix; the utility section shows the worst pairs and the associations
        pairs_sec = Section("pairs", "Appendix: every pair of attributes", intro=(
            "The 2-way total variation distance of every pair of attributes, real (holdout) vs synthetic, in blocks "
            "small enough to read. The utility section shows the worst pairs beside their sampling-noise floor."))
        pairs_sec.figures = [f for f in sections["utility"].figures if f.key.startswith("utility.tvd2.heatmap")]
        sections["utility"].figures = [f for f in sections["utility"].figures
                                       if not f.key.startswith("utility.tvd2.heatmap")]
        all_metrics = g_sec.metrics + [m for s in sections.values() for m in s.metrics]
        for m in all_metrics:  # warnings recorded in a metric's details appear on the page too
            w = (m.details or {}).get("warning")
            text = f"{m.name} ({m.key}): {w}" if isinstance(w, str) and w else None
            if text and text not in warn_list:
                warn_list.append(text)
        manifest_fhir = [e for e in manifest if str(e.get("path", "")).endswith(".manifest.json")]
        fhir_facts: list[tuple[str, str]] = []
        for e in manifest_fhir:  # the FHIR writer's count of rows inconsistent in themselves
            try:
                ext = json.loads(Path(e["path"]).read_text(encoding="utf-8"))["extension"]["synthhealth"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if ext.get("inconsistent_patients"):
                text = (f"{ext['inconsistent_patients']} of {ext.get('patients', '?')} synthetic patients' rows were "
                        "inconsistent in themselves, so their FHIR resources flatten back to other values (by "
                        "attribute: " + ", ".join(f"{k} {v}" for k, v in sorted((ext.get("mismatches") or {}).items()))
                        + ")")
                fhir_facts.append((f"FHIR writer ({e['role']})", text))
                warn_list.append(f"FHIR writer: {text}.")
        checks = judge(all_metrics, thresholds, claimed_epsilon=claimed, claimed_delta=g_info["delta"])
        if g_info["seeded"]:
            checks.insert(0, Check("guarantee.seeded", "Privacy noise not seeded", None,
                                   "secure (unseeded) randomness", "fail", SEEDED_NOTICE))
        if fit_info is not None and not fit_info.get("found"):
            checks.insert(0, Check(
                "guarantee.ledger", "Ledger holds the fit that produced the data", None,
                "the synthetic data's fit is in the ledger", "fail",
                f"The given ledger does not hold fit {fit_info.get('fit_id')}, which produced the synthetic data: its "
                "ε is that of other fits and says nothing about this data."))
        if not g_info["has_guarantee"]:
            checks.insert(0, Check("guarantee.epsilon", "Formal privacy guarantee", None, "a DP ledger is required",
                                   "fail", "No ledger: no formal privacy guarantee is known for this data."))
        doc: dict[str, Any] = {
            "format": REPORT_FORMAT,
            "format_version": REPORT_FORMAT_VERSION,
            "meta": {
                "title": title or f"Privacy and utility report: {schema.name}",
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "synthhealth_version": _version(),
                "schema": {"name": schema.name, "version": schema.version, "hash": schema.hash},
                "generator": generator_name,
                "n_train": len(data.train), "n_holdout": len(data.holdout), "n_synthetic": len(data.synthetic),
                "release": False, "seeded": bool(g_info["seeded"]),
                "notices": [INTERNAL_NOTICE] + ([SEEDED_NOTICE] if g_info["seeded"] else []),
                "settings": {"shadow": shadow, "collapse_generations": collapse_generations, "n_attacks": n_attacks,
                             "max_targets": max_targets, "n_boot": n_boot,
                             "thresholds": {k: vars(v) for k, v in (thresholds or {}).items()}},
                "timings_s": {**timings, "total": round(time.perf_counter() - t_start, 3)},
                "privacy": jsonable({k: v for k, v in g_info.items()}),
                "report_id": uuid.uuid4().hex[:16],
                "reviewer": reviewer,
                "provenance": prov,
                "fit": fit_info,
                "manifest": manifest,
            },
            "summary": {},
            "sections": [g_sec.to_dict(), _synthetic_section(data).to_dict()]
                        + [s.to_dict() for s in sections.values()]
                        + [_files_section(prov, fit_info, manifest, fhir_facts).to_dict()]
                        + ([pairs_sec.to_dict()] if pairs_sec.figures else []),
            "warnings": warn_list,
        }
        doc["summary"] = _summary(checks, g_info, all_metrics, n_train=len(data.train))
        doc = jsonable(doc)
        doc["summary"]["next_steps"] = next_steps(doc)  # a remedy, with commands, for each failed or warned check
        doc["sections"].append(jsonable(regulatory_section(doc)))
        return cls(doc)

    # ------------------------------------------------------------------ views
    @property
    def verdict(self) -> str:
        """Overall verdict: ``"pass"``, ``"warn"`` or ``"fail"``."""
        return str(self.doc["summary"]["verdict"])

    @property
    def checks(self) -> list[dict[str, Any]]:
        """The judged checks (dicts with metric, name, value, rule, verdict, why)."""
        return list(self.doc["summary"]["checks"])

    def metrics(self) -> dict[str, dict[str, Any]]:
        """Every metric by key.

        Returns
        -------
        dict
            Metric key → the metric's dict (``value``, ``ci``, ``goal``, ``reference``, ``description``, ...).
        """
        return {m["key"]: m for s in self.doc["sections"] for m in s["metrics"]}

    def metric(self, key: str) -> dict[str, Any]:
        """One metric by key (``KeyError`` when the report has no such metric).

        Parameters
        ----------
        key : str
            The metric's dotted key, e.g. ``"attacks.dcr.auc"`` (see :meth:`metrics` for every key).

        Returns
        -------
        dict
            The metric as stored in the report document: ``key``, ``name``, ``value``, ``goal``,
            ``range``, ``reference``, ``ci``, ``description``, ``formula``, ``real_data``,
            ``details`` and the other fields of :class:`synthhealth.report.Metric`.

        Raises
        ------
        KeyError
            If the report has no metric with that key (e.g. a section that was skipped, or a
            release report, which keeps only synthetic-data metrics).
        """
        ms = self.metrics()
        if key not in ms:
            raise KeyError(f"no metric {key!r} in this report ({len(ms)} metrics)")
        return ms[key]

    def summary(self) -> str:
        """Three plain lines: ε spent, attack verdict, utility score."""
        return "\n".join(self.doc["summary"]["lines"])

    def to_dict(self, *, release: bool = False, preview: bool = False) -> dict[str, Any]:
        """The report document; ``release=True`` drops every statistic of the real data.

        Parameters
        ----------
        release : bool, default False
            Return the shareable release variant: the privacy guarantee and synthetic-only metrics
            and figures; every metric, figure, check and fact about the real data is removed and the
            verdict is recomputed from what remains.
        preview : bool, default False
            With ``release=True``: produce the release layout even when the release is refused,
            marked "PREVIEW, NOT A RELEASE" with the reasons (e.g. for seeded test runs).

        Returns
        -------
        dict
            A JSON-serialisable copy of the document (changing it does not change the report):
            ``format``, ``format_version``, ``meta``, ``summary``, ``sections`` and ``warnings``.
        """
        return _release(self.doc, preview=preview) if release else json.loads(json.dumps(self.doc))

    def release_refusals(self) -> list[tuple[str, str]]:
        """Why the release report would be refused (empty when it may be produced).

        Returns
        -------
        list of (code, sentence)
            See :func:`synthhealth.report.provenance.release_refusals`.
        """
        return release_refusals(self.doc)

    @property
    def headline(self) -> str:
        """One-line verdict in plain language."""
        return str(self.doc["summary"]["headline"])

    @property
    def plain(self) -> list[str]:
        """The plain-language sentences of the summary."""
        return list(self.doc["summary"]["plain"])

    def section(self, key: str) -> dict[str, Any]:
        """One section as a dict.

        Parameters
        ----------
        key : {"guarantee", "synthetic", "attacks", "utility", "bias", "files", "pairs", "regulatory"}
            ("pairs": the appendix of every attribute pair; "regulatory": the regulatory appendix,
            with its ``groups``, ``signoff`` and ``data``; a release report has "review" instead of
            the measured sections)

        Returns
        -------
        dict
            ``title``, ``intro``, ``facts``, ``metrics``, ``figures``, ``notes``.

        Raises
        ------
        KeyError
            If the report has no such section (a release report keeps only two).
        """
        for s in self.doc["sections"]:
            if s["key"] == key:
                return s
        raise KeyError(f"no section {key!r}; this report has {[s['key'] for s in self.doc['sections']]}")

    def facts(self, key: str = "guarantee") -> dict[str, str]:
        """The label → value facts of a section.

        Parameters
        ----------
        key : str, default "guarantee"
            The section (see :meth:`section`).

        Returns
        -------
        dict
            Label → value, in the report's order (e.g. ``"Unit of privacy"``, ``"ε spent ..."``).
        """
        return {label: value for label, value in self.section(key)["facts"]}

    def summary_html(self, *, height: int = 900) -> str:
        """The summary page alone, in an ``<iframe>`` so that its styles never touch the notebook around it.

        Parameters
        ----------
        height : int, default 900
            Height of the frame in pixels.

        Returns
        -------
        str
            HTML: a ``<div>`` holding an ``<iframe srcdoc=...>`` of the rendered summary.
        """
        import html as _html

        from .render import render_html

        page = render_html({**self.doc, "sections": [], "warnings": []})
        return (f'<div><iframe srcdoc="{_html.escape(page, quote=True)}" style="width:100%;height:{int(height)}px;'
                'border:1px solid #ccc" title="synthhealth report summary"></iframe></div>')

    def _repr_html_(self) -> str:  # notebooks: the summary, isolated; the full report is report.html
        return self.summary_html()

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str], *, release: bool = False, preview: bool = False,
             formats: Sequence[str] = ("json", "html", "pdf")) -> dict[str, Path]:
        """Write ``report.json``, ``report.html`` and ``report.pdf`` into a folder.

        Parameters
        ----------
        path : folder
            The output folder (created if missing); files of the same names are replaced.
        release : bool, default False
            Write the shareable release variant (no statistic of the real data), as
            ``report-release.json``, ``report-release.html`` and ``report-release.pdf``. Refused
            (nothing written) unless the synthetic table is a model's output whose fit is in the
            ledger, the fit was not seeded and used secure samplers, and this internal review's
            privacy verdict is not a fail.
        preview : bool, default False
            With ``release=True``: when the release is refused, write the release layout anyway as
            ``report-preview.*``, marked "PREVIEW, NOT A RELEASE" with the reasons.
        formats : sequence of {"json", "html", "pdf"}
            Which files to write (default: all three).

        Returns
        -------
        dict
            Format → written path.

        Raises
        ------
        InvalidParameterError
            If ``formats`` is empty or names a format other than json, html and pdf.
        ReleaseRefusedError
            With ``release=True`` and ``preview=False``, when the release may not be produced
            (:class:`~synthhealth.report.provenance.NotModelOutputError`,
            :class:`~synthhealth.report.provenance.UnrelatedLedgerError`,
            :class:`~synthhealth.report.provenance.SeededFitError`,
            :class:`~synthhealth.report.provenance.InsecureFitError`,
            :class:`~synthhealth.report.provenance.InternalReviewFailedError`).
        """
        bad = [f for f in formats if f not in ("json", "html", "pdf")]
        if bad or not formats:
            raise InvalidParameterError(
                f"The 'formats' parameter must be a non-empty subset of json, html, pdf. Got {list(formats)} instead.")
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        doc = self.to_dict(release=release, preview=preview)
        stem = ("report-preview" if doc["meta"].get("preview") else "report-release") if release else "report"
        written: dict[str, Path] = {}
        if "json" in formats:
            p = out / f"{stem}.json"
            _atomic_text(p, json.dumps(doc, indent=1, ensure_ascii=False))
            written["json"] = p
        if "html" in formats:
            from .render import render_html

            p = out / f"{stem}.html"
            _atomic_text(p, render_html(doc))
            written["html"] = p
        if "pdf" in formats:
            from .render import render_pdf

            p = out / f"{stem}.pdf"
            tmp = p.with_name(p.name + ".tmp")
            render_pdf(doc, tmp)
            os.replace(tmp, p)
            written["pdf"] = p
        return written

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Report:
        """Read a saved ``report.json`` (or a folder holding one).

        Parameters
        ----------
        path : str or Path
            A report JSON file written by :meth:`save` (e.g. ``report-release.json``), or a folder
            holding ``report.json``.

        Returns
        -------
        Report
            The report, with the same views (:attr:`verdict`, :meth:`metric`, :meth:`summary`, ...)
            as the one that was saved.

        Raises
        ------
        SynthHealthError
            If the file cannot be read or is not valid JSON.
        InvalidParameterError
            If the JSON is not a synthhealth report, or has a format version this release does not
            read.
        """
        p = Path(path)
        if p.is_dir():
            p = p / "report.json"
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise SynthHealthError(f"cannot read the report {p}: {type(exc).__name__}") from exc
        return cls(doc)

    def __repr__(self) -> str:
        m = self.doc["meta"]
        return (f"Report({m['schema']['name']!r}, verdict={self.verdict!r}, checks={len(self.checks)}, "
                f"release={m['release']})")


def _fmt(v: Any, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}g}"


def _summary(checks: list[Check], g_info: dict[str, Any], metrics: list[Metric], *, n_train: int) -> dict[str, Any]:
    verdict = overall(checks)
    by_key = {m.key: m for m in metrics}
    privacy = [c for c in checks if c.metric.startswith(PRIVACY_PREFIXES)]
    attack = [c for c in privacy if c.metric.startswith("attacks.")]
    util = [c for c in checks if not c.metric.startswith(PRIVACY_PREFIXES)]
    # plain-language sentences
    plain: list[str] = []
    if g_info["has_guarantee"]:
        eps = g_info["epsilon"]
        strength = "strong" if eps <= 2 else "moderate" if eps <= 8 else "weak"
        plain.append(f"Formal guarantee: differential privacy at the patient level with ε = {eps:.3g}, "
                     f"δ = {g_info['delta']:.1g} ({strength})." + (" The noise was SEEDED: not for release."
                                                                    if g_info["seeded"] else ""))
    else:
        plain.append("No formal privacy guarantee is known for this data (no privacy ledger was given).")
    aucs = [(m.key, m.value) for m in metrics if m.key.startswith("attacks.") and m.key.endswith(".auc")
            and m.value is not None]
    if aucs:
        key, best = max(aucs, key=lambda kv: kv[1])
        a_verdict = overall(attack)
        word = {"pass": "low", "warn": "uncertain or elevated", "fail": "HIGH"}.get(a_verdict, "not judged")
        worst = [c.name for c in attack if c.verdict == a_verdict and a_verdict in ("warn", "fail")]
        plain.append(f"Measured risk: {word}" + (f" (worst: {', '.join(worst[:2])})" if worst else "")
                     + f". The strongest membership attack reached AUC {best:.2f} (0.50 = guessing; "
                     f"{by_key[key].name}).")
    risks = [m for m in metrics if m.key.startswith("attacks.") and m.key.endswith("risk") and m.value is not None]
    if risks:
        worst = max(risks, key=lambda m: m.value or 0.0)
        plain.append(f"The highest re-identification risk measured is {worst.name.lower()}: {worst.value:.2f} "
                     f"(0 = no risk beyond what the population alone reveals).")
    t1, t2 = by_key.get("utility.tvd1.mean"), by_key.get("utility.tvd2.mean")
    tstr = by_key.get("utility.tstr.auroc")
    if t1 is not None and t1.value is not None:
        s = (f"Utility: single-attribute distributions differ from the real holdout data by {t1.value:.3f} on "
             "average (total variation, 0 = identical)")
        if t2 is not None and t2.value is not None:
            s += f", pairs of attributes by {t2.value:.3f}"
        if tstr is not None and tstr.value is not None:
            s += (f"; a model trained on synthetic data reaches AUROC {tstr.value:.2f} on real data "
                  f"(trained on real: {_fmt(tstr.reference, 2)})")
        plain.append(s + ".")
    if g_info["has_guarantee"] and n_train < 1000:
        plain.append(f"Only {n_train:,} patients were used for fitting: with so few, the noise that protects each "
                     "patient dominates many statistics, so expect low utility at small ε (utility improves "
                     "with thousands of patients).")
    u_verdict = overall(util)
    p_verdict = overall(privacy)
    p_word = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}.get(p_verdict, "N/A")
    u_word = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}.get(u_verdict, "N/A")
    p_fail = [c.name for c in privacy if c.verdict == "fail"]
    u_fail = [c.name for c in util if c.verdict == "fail"]
    headline = (f"Privacy: {p_word}" + (f" ({', '.join(p_fail[:2])}{', …' if len(p_fail) > 2 else ''})" if p_fail
                                        else "") + f". Fitness for use: {u_word}"
                + (f" ({len(u_fail)} utility check(s) failed; poor utility is not a privacy risk)" if u_fail else "")
                + ".")
    lines = [
        ("ε spent: " + (f"{g_info['epsilon']:.3g} (δ = {g_info['delta']:.1g}), unit: patient"
                        + (" — SEEDED, not for release" if g_info["seeded"] else "")
                        if g_info["has_guarantee"] else "no formal guarantee (no ledger)")),
        "attacks: " + (f"{overall(attack)}" + (f" (best membership AUC {max(v for _, v in aucs):.2f})" if aucs else "")
                       if attack else "not run"),
        "utility: " + (f"{u_verdict}" + (f" (mean 2-way TVD {t2.value:.3f})" if t2 is not None and t2.value is not None
                                         else "") if util else "not measured"),
    ]
    lines.insert(0, f"privacy verdict: {p_verdict}; fitness for use: {u_verdict}")
    return {"verdict": verdict, "verdicts": {"privacy": p_verdict, "utility": u_verdict}, "headline": headline,
            "plain": plain, "lines": lines, "checks": [c.to_dict() for c in checks]}


PREVIEW_NOTICE = ("PREVIEW, NOT A RELEASE: this document has the layout of the release report but certifies nothing; "
                  "the release report was refused: ")


def _release(doc: dict[str, Any], *, preview: bool = False) -> dict[str, Any]:
    """The shareable variant: guarantee and synthetic-only content; no statistic of the real data.

    Refused (:class:`~synthhealth.report.provenance.ReleaseRefusedError`) unless the checks of
    :func:`~synthhealth.report.provenance.release_refusals` hold; ``preview=True`` writes it anyway,
    marked as a preview that certifies nothing.
    """
    reasons = release_refusals(doc)
    if reasons and not preview:
        check_release(doc)
    d = json.loads(json.dumps(doc))
    meta = d["meta"]
    meta["release"] = True
    meta["preview"] = bool(reasons)
    meta["n_train"] = None
    meta["n_holdout"] = None
    meta["notices"] = ([PREVIEW_NOTICE + " ".join(r for _, r in reasons)] if reasons else []) + [RELEASE_NOTICE] + (
        [SEEDED_NOTICE] if meta.get("seeded") else [])
    meta.pop("timings_s", None)
    meta["settings"] = {}
    kept_sections = []
    kept_keys: set[str] = set()
    for s in d["sections"]:
        s["metrics"] = [m for m in s["metrics"] if not m.get("real_data", True)]
        s["figures"] = [f for f in s["figures"] if not f.get("real_data", True)]
        kept_keys |= {m["key"] for m in s["metrics"]}
        if s["key"] in ("guarantee", "synthetic", "files") or s["metrics"] or s["figures"]:
            if s["key"] not in ("guarantee", "synthetic", "files"):
                s["notes"] = []
                s["facts"] = []
            kept_sections.append(s)
    summary = d["summary"]
    verdicts = summary.get("verdicts") or {}
    review = Section("review", "Internal review", intro=(
        "The empirical attacks and the utility measurements use the real patients, so they are not in this "
        "document. They were run on the same synthetic files (see the hashes under Provenance and files) in the "
        "internal review cited here."))
    review.facts = [("Internal review id", str(meta.get("report_id") or "—")),
                    ("Date of the internal review", str(meta.get("created") or "—")),
                    ("Privacy verdict of the internal review", str(verdicts.get("privacy", "n/a")).upper()),
                    ("Fitness-for-use verdict of the internal review", str(verdicts.get("utility", "n/a")).upper()),
                    ("Reviewer", str(meta.get("reviewer") or "________________ (name, role, date, signature)"))]
    d["sections"] = kept_sections + [review.to_dict()]
    # the release's regulatory appendix: the DP statement where the internal one has measurements
    d["sections"].append(jsonable(regulatory_section(d, release=True)))
    checks = [c for c in summary["checks"] if c["metric"] in kept_keys or c["metric"].startswith("guarantee.")]
    privacy = meta.get("privacy") or {}
    plain = [p for p in summary["plain"] if p.startswith(("Formal guarantee", "No formal"))]
    plain.append(f"The empirical attacks and utility measurements were reviewed internally (review "
                 f"{meta.get('report_id') or '—'} of {meta.get('created') or '—'}): privacy "
                 f"{str(verdicts.get('privacy', 'n/a')).upper()}, fitness for use "
                 f"{str(verdicts.get('utility', 'n/a')).upper()}.")
    if reasons:
        headline = "PREVIEW: not certified for release (" + reasons[0][1] + ")"
    else:
        headline = (f"Differential privacy at the patient level, ε = {privacy.get('epsilon', 0.0):.3g}, "
                    f"δ = {privacy.get('delta') or 0.0:.1g}, for the synthetic data described here.")
    d["summary"] = {"verdict": "n/a", "release": True, "verdicts": verdicts, "headline": headline,
                    "plain": plain, "lines": [summary["lines"][1] if len(summary["lines"]) > 1 else summary["lines"][0]],
                    "checks": checks}
    meta["privacy"] = {k: privacy.get(k) for k in ("epsilon", "delta", "seeded", "has_guarantee", "mechanisms",
                                                    "secure", "n_insecure_entries")}
    d["warnings"] = []
    return d


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)

