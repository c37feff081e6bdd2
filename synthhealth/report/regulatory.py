"""The regulatory appendix and the "next steps" of a report, generated from the report's own data.

:func:`regulatory_section` writes the appendix a privacy officer files with a release:

- the items NIST SP 800-226 ("Guidelines for Evaluating Differential Privacy Guarantees") asks
  for: unit of privacy, ε/δ and the DP variant, accounting across every release of the same
  patients (the ledger), trust model, implementation correctness, security of the samplers, bias
  hazards;
- the three criteria of the Article 29 Working Party's Opinion 05/2014 on anonymisation
  techniques (singling out, linkability, inference): the measured results in the internal
  report, the differential-privacy statement in the release;
- a HIPAA Expert Determination statement (45 CFR §164.514(b)(1)): evidence for a qualified expert,
  not a determination, with what the expert must still check;
- the point of EDPB Opinion 28/2024 that a model trained on personal data is itself a release;
- the attestations the guarantee rests on, and a sign-off block.

:func:`next_steps` keys a remedy, with the command-line commands, to each failed or warned check.

Everything is read from the report document (its ``meta``, ``summary`` and sections), so the
appendix of a release report holds no statistic of the real data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["regulatory_section", "next_steps", "REGULATORY_GROUPS"]

REGULATORY_GROUPS = ("nist", "wp29", "hipaa", "edpb", "attestations")
"""The keys of the appendix's groups, in order (the sign-off block follows them)."""

_AUDIT_DOC = "docs/privacy.md, section \"Checking the claim: empirical audits\""


def _f(x: Any, digits: int = 3) -> str:
    if x is None:
        return "—"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(v):
        return "∞" if v > 0 else "—"
    return f"{v:.{digits}g}"


def _metrics(doc: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(m.get("key")): m for s in doc.get("sections") or [] for m in s.get("metrics") or []
            if isinstance(m, Mapping)}


def _checks(doc: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("metric")): c for c in (doc.get("summary") or {}).get("checks") or [] if isinstance(c, Mapping)}


def _posterior(prior: float, eps: float, delta: float) -> float:
    e = math.exp(min(eps, 700.0))
    return min(1.0, prior * e / (prior * e + 1.0 - prior) + delta)


def _accounting(fits: Sequence[Mapping[str, Any]], mechs: Sequence[Mapping[str, Any]]) -> tuple[str, list[str]]:
    kinds = sorted({str(f.get("accounting") or "zcdp") for f in fits} | {str(m.get("accounting")) for m in mechs
                                                                          if m.get("accounting")})
    words = []
    if "zcdp" in kinds:
        words.append("zero-concentrated DP (zCDP; ρ adds up over the measurements), converted to (ε, δ)-DP with the "
                     "Canonne–Kamath–Steinke (2020) conversion")
    if "approx_dp" in kinds:
        words.append("(ε, δ)-DP of DP-SGD from the PRV (or RDP) accountant of the training steps, added to the "
                     "marginals' (ε, δ) by basic composition")
    return ("; ".join(words) or "no measurement recorded"), kinds


def _measured(metrics: Mapping[str, Mapping[str, Any]], checks: Mapping[str, Mapping[str, Any]], prefix: str
              ) -> list[dict[str, Any]]:
    out = []
    for key, m in metrics.items():
        if key.startswith(prefix) and key.endswith("risk"):
            c = checks.get(key) or {}
            out.append({"metric": key, "name": m.get("name"), "value": m.get("value"), "ci": m.get("ci"),
                        "verdict": c.get("verdict", "n/a"), "rule": c.get("rule")})
    return out


def _measured_text(items: list[dict[str, Any]]) -> str:
    if not items:
        return "not measured in this review"
    parts = []
    for it in items:
        ci = it.get("ci")
        ci_text = f" (95% CI {_f(ci[0])}–{_f(ci[1])})" if isinstance(ci, (list, tuple)) and len(ci) == 2 else ""
        parts.append(f"{it['name']}: {_f(it['value'])}{ci_text}, {str(it['verdict']).upper()}")
    return "; ".join(parts)


def regulatory_section(doc: Mapping[str, Any], *, release: bool = False) -> dict[str, Any]:
    """The regulatory appendix of a report document, as a section dict.

    Parameters
    ----------
    doc : mapping
        A report document (:meth:`synthhealth.Report.to_dict`); for ``release=True`` the release
        variant (it must hold no statistic of the real data: none is read from it).
    release : bool, default False
        Write the release's appendix: the WP29 criteria are answered by the DP guarantee, and the
        measured results are cited from the internal review instead of shown.

    Returns
    -------
    dict
        A section (``key="regulatory"``, ``title``, ``intro``, empty ``metrics``/``figures``/``facts``,
        ``notes``) with ``groups`` (a list of ``{"key", "title", "intro", "rows": [[label, value], ...]}``
        in the order of :data:`REGULATORY_GROUPS`), ``signoff`` (``{"intro", "signers": [{"role", "name",
        "date", "signature"}]}``) and ``data`` (the same content, machine-readable).
    """
    meta = doc.get("meta") or {}
    privacy = meta.get("privacy") or {}
    fit = meta.get("fit") or {}
    prov = meta.get("provenance") or {}
    summary = doc.get("summary") or {}
    verdicts = summary.get("verdicts") or {}
    metrics, checks = _metrics(doc), _checks(doc)
    schema = meta.get("schema") or {}
    fits = list(privacy.get("fits") or [])
    mechs = list(privacy.get("mechanisms") or [])
    has = bool(privacy.get("has_guarantee"))
    eps = privacy.get("epsilon")
    delta = privacy.get("delta") or 0.0
    seeded = bool(privacy.get("seeded") or meta.get("seeded"))
    secure = privacy.get("secure")
    if secure is None and fit:
        secure = fit.get("secure")
    acc_text, acc_kinds = _accounting(fits, mechs)
    manifest = list(meta.get("manifest") or [])
    model_files = [e for e in manifest if str(e.get("role", "")).lower().startswith("model")]
    review_id = meta.get("report_id") or "—"
    review_date = meta.get("created") or "—"

    # ---------------------------------------------------------------- NIST SP 800-226
    ids = sorted({str(f.get("patient_ids")) for f in fits if f.get("patient_ids")})
    unit_basis = ("checked: every fit's table had patient ids and no id appeared on two rows" if ids == ["checked"]
                  else "ATTESTED by the caller (one_row_per_patient=True) for at least one fit: the table had no "
                       "patient ids" if "attested" in ids else "not recorded by this ledger")
    this_eps = fit.get("epsilon") if fit.get("found") else None
    others = [f for f in fits if f.get("fit_id") != (prov.get("fit_id") or fit.get("fit_id"))]
    fit_list = ", ".join(f"{f.get('fit_id')} ({f.get('generator')}, ε = {_f(f.get('epsilon'))}, {f.get('status')}, "
                         f"{f.get('finished') or f.get('started') or '?'})" for f in fits[:8])
    if len(fits) > 8:
        fit_list += f" and {len(fits) - 8} more"
    mech_text = "; ".join(f"{m.get('mechanism')} × {m.get('count')} ({m.get('library')}, "
                          f"{'seeded' if m.get('seeded') else 'not seeded'})" for m in mechs) or "—"
    n_insecure = privacy.get("n_insecure_entries")
    if seeded:
        sampler = "SEEDED (reproducible): the guarantee does not hold; NOT FOR RELEASE"
    elif secure:
        sampler = ("every measurement drew its noise from a cryptographically secure sampler (OpenDP's samplers or "
                   "the operating system's CSPRNG), not seeded (the ledger's secure flag of each entry)")
    elif secure is None:
        sampler = "not recorded"
    else:
        sampler = ("NOT SECURE: " + (f"{n_insecure} measurement(s)" if n_insecure else "at least one measurement")
                   + " drew noise from a pseudo-random generator that is not cryptographically secure; NOT FOR "
                     "RELEASE")
    emp = [(k, m.get("value")) for k, m in metrics.items() if k.endswith("epsilon_lower_bound")
           and m.get("value") is not None]
    if release:
        audit_here = (f"the empirical attacks were run in the internal review {review_id} (privacy verdict "
                      f"{str(verdicts.get('privacy', 'n/a')).upper()}); their figures use real patients and are not "
                      "in this document")
    elif emp:
        k, v = max(emp, key=lambda kv: kv[1])
        audit_here = (f"this review's largest empirical ε lower bound is {_f(v)} ({k}), against the claimed ε = "
                      f"{_f(eps)}: " + ("consistent with the claim" if eps is not None and v <= eps else
                                        "ABOVE THE CLAIM: the implementation or the claim is wrong"))
    else:
        audit_here = "no empirical ε lower bound was computed in this review"
    bias_keys = [k for k in checks if k.startswith("bias.")]
    if release:
        bias_text = (f"Measured in the internal review {review_id} (fitness-for-use verdict "
                     f"{str(verdicts.get('utility', 'n/a')).upper()}); the subgroup figures use real patients")
    elif bias_keys:
        bias_text = "; ".join(f"{checks[k].get('name')}: {_f(checks[k].get('value'))} "
                              f"{str(checks[k].get('verdict')).upper()}" for k in bias_keys)
    else:
        bias_text = "not measured in this review"
    nist_rows = [
        ["Unit of privacy", "the patient: all of one person's records form one bounded row; neighbouring datasets "
                            "differ by adding or removing one patient"],
        ["One row per patient", unit_basis],
        ["Privacy parameters", (f"ε = {_f(eps, 4)}, δ = {_f(delta)} (all fits on this ledger)"
                                + (f"; the fit that produced this data: ε = {_f(this_eps, 4)}" if this_eps is not None
                                   and len(fits) > 1 else "")) if has else "no ledger: no guarantee is known"],
        ["DP variant and accountant", acc_text],
        ["Mechanisms", mech_text],
        ["Accounting across releases", (f"the ledger records {len(fits)} fit(s) on these patients, and ε above is "
                                        f"their total: {fit_list}" + (f". {len(others)} other fit(s) on the same "
                                                                     "patients are counted" if others else "")
                                        + ". Releases of the same patients outside this ledger are NOT counted: the "
                                          "signer attests that there are none (see the attestations)") if has
         else "no ledger: releases of the same patients are not accounted"],
        ["Trust model", "central differential privacy: the curator who runs synthhealth on the real records is "
                        "trusted (sees the data and keeps the noise secret); the model, the synthetic data and "
                        "the ledger are the outputs; no guarantee against the curator"],
        ["Implementation correctness", f"end-to-end audits through the public fit ({_AUDIT_DOC}; tests/audit/e2e): "
                                       "MST, AIM, MST through FHIR flattening, DPVAE marginals and DP-SGD (white box) "
                                       "are fitted hundreds to thousands of times on neighbouring datasets and ε is "
                                       "bounded from below (Clopper–Pearson, 99%), which must stay at or below the ε "
                                       "charged; charge = noise used "
                                       "(tests/audit/e2e/test_charge_equals_noise.py); mutation tests "
                                       "(tests/audit/e2e/test_mutants.py, python -m pytest tests/audit --mutants) show "
                                       "each audit fails on broken code. An audit can only show a claim false; the "
                                       "proof is the accounting. In this report: " + audit_here],
        ["Security of the samplers", sampler],
        ["Randomness", "SEEDED: NOT FOR RELEASE" if seeded else "not seeded"],
        ["Assumed public", f"the schema {schema.get('name')} {schema.get('version')} (sha256 {schema.get('hash')}): "
                           "domains, bounds, bins and caps, never computed from the data"],
        ["Bias hazards", "DP noise is the same for every cell, so small subgroups and rare categories lose most "
                         "(relative error grows as the group shrinks); fitness for use must be judged per subgroup. "
                         + bias_text],
    ]

    # ---------------------------------------------------------------- WP29 Opinion 05/2014
    p50 = _posterior(0.5, eps, delta) if has and eps is not None else None
    dp_stmt = (f"bounded by the guarantee: whatever the attacker knows, seeing the output changes the odds of any "
               f"statement about one patient by at most e^ε = {_f(math.exp(min(eps, 700.0)))} (plus δ = {_f(delta)}); "
               f"a 50% prior becomes at most {100 * p50:.1f}%") if p50 is not None else "no guarantee is known"
    wp29_items = {
        "singling_out": _measured(metrics, checks, "attacks.singling_out"),
        "linkability": _measured(metrics, checks, "attacks.linkability"),
        "inference": _measured(metrics, checks, "attacks.inference"),
    }
    wp_names = {"singling_out": "Singling out", "linkability": "Linkability", "inference": "Inference"}
    wp29_rows = []
    for k, items in wp29_items.items():
        if release:
            text = (dp_stmt + f". Measured in the internal review {review_id} (privacy verdict "
                    f"{str(verdicts.get('privacy', 'n/a')).upper()})")
        else:
            text = "measured: " + _measured_text(items) + (f". Also {dp_stmt}" if p50 is not None else "")
        wp29_rows.append([wp_names[k], text])

    # ---------------------------------------------------------------- HIPAA Expert Determination
    hipaa_must = [
        "whether the risk of identification by the anticipated recipients, alone or with other reasonably available "
        "information, is very small for this context (45 CFR §164.514(b)(1)); ε is an input, not the answer",
        "who the recipients are, what else they hold, and the contract or data-use terms of the release",
        "that the attributes of the public schema are acceptable to release at this ε (dates, geography, rare "
        "conditions, free text)",
        "that every release of these patients is in the ledger (no fit or release outside it)",
        "the attestations below (one Patient record is one person; the schema was fixed without looking at the data)",
        "the methods and results of this report and how long the determination stays valid",
    ]
    hipaa_rows = [
        ["Statement", "This report is EVIDENCE FOR A QUALIFIED EXPERT under the Expert Determination method; it is "
                      "NOT a determination and does not make the data de-identified under HIPAA"],
        ["Evidence provided", ("the DP guarantee at the patient level" + (f" (ε = {_f(eps)}, δ = {_f(delta)})" if has
                                                                         else " (none known)")
                               + ("; the internal review's measured attacks: privacy verdict "
                                  f"{str(verdicts.get('privacy', 'n/a')).upper()}" + (f" (review {review_id})"
                                                                                       if release else ""))
                               + "; the sha256 manifest of the files judged")],
        ["The expert must still check", "; ".join(f"({i + 1}) {t}" for i, t in enumerate(hipaa_must))],
    ]

    # ---------------------------------------------------------------- EDPB Opinion 28/2024
    model_text = ("; ".join(f"{e.get('path')} (sha256 {e.get('sha256')})" for e in model_files)
                  if model_files else "no model file was named in this report's manifest")
    edpb_rows = [
        ["The model is a release", "a model trained on personal data is not anonymous by default (EDPB Opinion "
                                   "28/2024): whoever receives the model can sample from it or attack it, so "
                                   "sharing the model is a release of the patients, like the synthetic data"],
        ["What covers the model", (f"the same guarantee: the model ({prov.get('generator') or meta.get('generator')} "
                                   f"fit {prov.get('fit_id') or fit.get('fit_id') or '—'}) is the output of the DP fit, "
                                   "and the synthetic data is post-processing of it") if has else
         "no guarantee is known: do not share the model"],
        ["Model file", model_text],
    ]

    # ---------------------------------------------------------------- attestations
    att_rows = [
        ["The schema is public", f"the schema {schema.get('name')} (sha256 {schema.get('hash')}) was fixed from "
                                 "public knowledge, without looking at the patients' data: ATTESTED BY THE SIGNER"],
        ["One Patient record is one person", (
            "patient ids CHECKED by synthhealth on every fit (no id on two rows; the ledger's patient_ids = checked); "
            "the signer attests that no person has two Patient records with different identifiers"
            if ids == ["checked"] else
            "ATTESTED BY THE CALLER (the ledger's patient_ids = attested): the table had no patient ids; a patient "
            "with k rows is protected at about k·ε only" if "attested" in ids else
            "not recorded by the ledger: ATTESTED BY THE SIGNER")],
        ["Every release of these patients is in the ledger", "ATTESTED BY THE SIGNER: the ledger's total is the "
                                                             "budget spent on these patients only if no other fit "
                                                             "or release of them exists"],
        ["The noise was not seeded and came from secure samplers", "CHECKED: " + sampler if not seeded and secure
         else sampler],
        ["The synthetic files are those judged", "CHECKED by the sha256 manifest (Provenance and files) at the time of "
                                                 "the report; the reader can recompute the hashes"],
    ]
    groups = [
        {"key": "nist", "title": "NIST SP 800-226: the differential-privacy guarantee",
         "intro": "The items NIST SP 800-226 (Guidelines for Evaluating Differential Privacy Guarantees) asks a "
                  "deployment to report, from this report's ledger and review.", "rows": nist_rows},
        {"key": "wp29", "title": "WP29 Opinion 05/2014: singling out, linkability, inference",
         "intro": ("The three criteria of the Article 29 Working Party's opinion on anonymisation techniques. "
                   + ("This release answers them with the differential-privacy guarantee; the attacks were measured in "
                      "the internal review." if release else
                      "Measured on the synthetic data with real training and holdout patients (anonymeter-style "
                      "attacks; risk = success beyond what the population alone reveals), and bounded by the "
                      "guarantee.")), "rows": wp29_rows},
        {"key": "hipaa", "title": "HIPAA: evidence for an Expert Determination",
         "intro": "45 CFR §164.514(b)(1): a qualified expert determines that the risk of identification is very small.",
         "rows": hipaa_rows},
        {"key": "edpb", "title": "EDPB Opinion 28/2024: the model itself is a release", "intro": "", "rows": edpb_rows},
        {"key": "attestations", "title": "Attestations the guarantee rests on",
         "intro": "What the guarantee assumes, and whether synthhealth checked it or a person must attest it.",
         "rows": att_rows},
    ]
    reviewer = meta.get("reviewer")
    signers = [{"role": "Data custodian (curator of the real data)", "name": "", "date": "", "signature": ""},
               {"role": "Privacy officer / reviewer", "name": str(reviewer or ""), "date": "", "signature": ""},
               {"role": "Qualified expert (HIPAA Expert Determination), if used", "name": "", "date": "",
                "signature": ""}]
    signoff = {"intro": ("I have read this report and the attestations above, and I approve the release of the files "
                         "listed under Provenance and files (by their sha256 hashes)." if release else
                         "I have reviewed this internal report and the attestations above."),
               "signers": signers}
    data = {
        "release": bool(release),
        "nist": {"unit": "patient", "one_row_per_patient": ids or None, "epsilon": eps, "delta": delta,
                 "dp_variant": acc_kinds, "accounting": acc_text, "mechanisms": mechs,
                 "fits_on_ledger": len(fits), "this_fit_epsilon": this_eps, "trust_model": "central",
                 "curator_trusted": True, "audits": {"doc": _AUDIT_DOC, "tests": "tests/audit/e2e",
                                                     "mutants": "tests/audit/e2e/test_mutants.py"},
                 "empirical_epsilon_lower_bounds": None if release else dict(emp),
                 "secure_samplers": secure, "seeded": seeded,
                 "bias_checks": None if release else {k: checks[k].get("verdict") for k in bias_keys}},
        "wp29": {k: ({"dp_statement": dp_stmt} if release else {"measured": v, "dp_statement": dp_stmt})
                 for k, v in wp29_items.items()},
        "hipaa": {"determination": False, "expert_must_check": hipaa_must},
        "edpb": {"model_is_release": True, "model_files": model_files},
        "attestations": {r[0]: r[1] for r in att_rows},
        "internal_review": {"id": review_id, "date": review_date, "verdicts": dict(verdicts)},
    }
    intro = ("What a privacy officer files with the data: the items the guidance documents ask for, generated from "
             "this report's ledger" + (", and the internal review it cites" if release else " and measurements")
             + ". It supports a decision; it does not make one.")
    notes = ["References: NIST SP 800-226 (2025); Article 29 Working Party, Opinion 05/2014 on Anonymisation "
             "Techniques (WP216); HHS, Guidance Regarding Methods for De-identification (45 CFR §164.514); EDPB, "
             "Opinion 28/2024 on certain data protection aspects related to the processing of personal data in the "
             "context of AI models."]
    return {"key": "regulatory", "title": "Regulatory appendix", "intro": intro, "metrics": [], "figures": [],
            "notes": notes, "facts": [], "groups": groups, "signoff": signoff, "data": data}


# ============================================================================ next steps
def _cmd_schema(meta: Mapping[str, Any]) -> str:
    return str((meta.get("schema") or {}).get("name") or "SCHEMA")


def next_steps(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Remedies, with commands, keyed to each failed or warned check of a report document.

    Parameters
    ----------
    doc : mapping
        A report document (its ``summary.checks``, ``meta`` and metrics are read).

    Returns
    -------
    list of dict
        One entry per failed or warned check: ``{"metric", "name", "verdict", "steps": [{"text",
        "command"}]}`` (``command`` may be ``None``). Checks that pass or are n/a have none.
    """
    meta = doc.get("meta") or {}
    metrics = _metrics(doc)
    s = _cmd_schema(meta)
    gen = str(meta.get("generator") or (meta.get("provenance") or {}).get("generator") or "aim").lower()
    eps = (meta.get("privacy") or {}).get("epsilon")
    n_train = meta.get("n_train")
    fit_base = f"synthhealth fit --schema {s} --data train.parquet --ledger ledger.json"
    other = "mst" if gen == "aim" else "aim"

    def more_patients() -> dict[str, Any]:
        n = f" ({n_train:,} were used)" if isinstance(n_train, int) else ""
        return {"text": f"More patients{n}: the noise per patient is fixed, so statistics improve with thousands of "
                        "patients at the same ε.", "command": None}

    def larger_eps() -> dict[str, Any]:
        e2 = _f(2 * eps) if isinstance(eps, (int, float)) and eps > 0 else "2"
        return {"text": f"A larger ε (e.g. {e2}), chosen first by a sweep on stand-in data (a sweep on the real data "
                        "spends the sum of its budgets).",
                "command": f"synthhealth sweep --schema {s} --real standin-train.parquet --holdout "
                           f"standin-holdout.parquet -g {gen if gen in ('aim', 'mst', 'dpvae') else 'aim'} "
                           "--epsilons 0.5,1,2,4 -o sweep/"}

    def switch() -> dict[str, Any]:
        why = ("AIM spends its budget on the marginals that matter most and usually keeps more structure than MST"
               if other == "aim" else "MST measures every 1-way marginal and a spanning tree of pairs; on few "
                                      "patients it can beat AIM")
        return {"text": f"Try {other.upper()} instead of {gen.upper()}: {why}.",
                "command": f"{fit_base} -g {other} -e {_f(eps) if eps else 1} -o model-{other}/"}

    def workload(attrs: Sequence[str]) -> dict[str, Any]:
        w = ",".join(str(a) for a in attrs if a)
        return {"text": f"Tell AIM which marginal matters ({' × '.join(attrs)}) with a workload.",
                "command": f"{fit_base} -g aim -e {_f(eps) if eps else 1} -w {w} -o model-workload/"}

    def fewer() -> dict[str, Any]:
        return {"text": "Fewer attributes (or coarser bins) in the schema: each measurement then gets more of the "
                        "budget. Edit the schema YAML and check it.",
                "command": "synthhealth schema check my-schema.yaml"}

    out = []
    for c in (doc.get("summary") or {}).get("checks") or []:
        v = str(c.get("verdict"))
        if v not in ("fail", "warn"):
            continue
        key = str(c.get("metric"))
        m = metrics.get(key) or {}
        det = m.get("details") or {}
        steps: list[dict[str, Any]] = []
        if key == "guarantee.seeded":
            steps = [{"text": "Fit again without --seed: seeded noise is reproducible and gives no guarantee.",
                      "command": f"{fit_base} -g {gen} -e {_f(eps) if eps else 1} -o model/"}]
        elif key == "guarantee.ledger":
            steps = [{"text": "Pass the ledger that recorded the fit that produced the synthetic data.",
                      "command": f"synthhealth report --schema {s} --real train.parquet --holdout holdout.parquet "
                                 "--synthetic synthetic.parquet --ledger ledger.json -o report/"},
                     {"text": "See which fits a ledger holds.", "command": "synthhealth ledger status ledger.json"}]
        elif key == "guarantee.epsilon" and c.get("value") is None:
            steps = [{"text": "No ledger was given, so no guarantee is known: give the model (its ledger) or the "
                              "ledger of the fit that produced the synthetic data.",
                      "command": f"synthhealth report --schema {s} --real train.parquet --holdout holdout.parquet "
                                 "--synthetic synthetic.parquet --model model/ --ledger ledger.json -o report/"}]
        elif key.startswith("guarantee."):
            steps = [{"text": "Fit with a smaller ε, or share fewer releases of the same patients (the ledger adds "
                              "them all up).", "command": "synthhealth ledger status ledger.json"}]
        elif key.startswith("attacks."):
            steps = [{"text": "Do not release. Check that the synthetic table is the output of the model "
                              "(provenance under Provenance and files), not a copy of real data.", "command": None},
                     {"text": "If the table is a model's output and an empirical ε lower bound exceeds the claimed ε, "
                              "the implementation is wrong: report it with the report JSON.", "command": None},
                     {"text": "With few holdout patients the attack checks are uncertain: rerun the report with more "
                              "holdout patients.",
                      "command": f"synthhealth split --schema {s} --data patients.parquet --holdout-frac 0.5 "
                                 "--train-out train.parquet --holdout-out holdout.parquet"}]
        elif key == "utility.tvd2.mean":
            pair = None
            wp = det.get("worst_pairs") or []
            if wp:
                pair = wp[0].get("pair")
            steps = ([workload(pair)] if pair else []) + [switch(), more_patients(), larger_eps(), fewer()]
        elif key == "utility.tstr.auroc":
            outcome = det.get("outcome")
            pairs = [p.get("pair") for p in ((metrics.get("utility.tvd2.mean") or {}).get("details") or {})
                     .get("worst_pairs") or [] if outcome in (p.get("pair") or [])]
            feats = [f for f in det.get("features") or [] if f != outcome]
            pair = pairs[0] if pairs else ([outcome, feats[0]] if outcome and feats else None)
            steps = ([workload(pair)] if pair else []) + [more_patients(), larger_eps(), switch()]
        elif key.startswith("utility.survival"):
            pair = [det.get("time"), det.get("event")] if det.get("time") and det.get("event") else None
            steps = ([workload(pair)] if pair else []) + [more_patients(), larger_eps()]
        elif key.startswith("bias.subgroup"):
            steps = [more_patients(), larger_eps(), fewer()]
        elif key.startswith("bias.rare"):
            steps = [more_patients(), larger_eps(), fewer()]
        else:
            steps = [switch(), more_patients(), larger_eps(), fewer()]
        out.append({"metric": key, "name": c.get("name"), "verdict": v, "steps": steps})
    return out
