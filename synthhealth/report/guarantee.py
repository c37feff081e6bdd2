"""The privacy-guarantee section: what the ledger proves, in the terms of NIST SP 800-226.

Reporting items (NIST SP 800-226, "Guidelines for Evaluating Differential Privacy Guarantees"):
the unit of privacy and the neighbouring relation, ε and δ, the accountant and its conversion,
every mechanism and what it measured, what was assumed public, the software and its versions,
and whether randomness was seeded. Plus what ε means for one patient, in plain language.

Nothing here is a statistic of the real data: the ledger only holds what was measured (in
terms of the public schema), sensitivities, noise scales and costs.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from ..privacy.ledger import PrivacyLedger
from ..schema.model import PatientSchema
from .model import Metric, Section

__all__ = ["guarantee_section", "posterior_bound", "max_tpr"]


def posterior_bound(prior: float, epsilon: float, delta: float = 0.0) -> float:
    """Largest posterior belief that a patient is in the data, from a prior, under (ε, δ)-DP.

    For pure ε-DP the odds can grow at most by e^ε: ``p' ≤ p e^ε / (p e^ε + 1 − p)``; δ adds at
    most δ (a conservative reading of the δ slack).

    Examples
    --------
    >>> round(posterior_bound(0.5, 1.0), 3)
    0.731
    """
    if not 0.0 <= prior <= 1.0:
        raise ValueError(f"The 'prior' parameter must be in [0, 1]. Got {prior!r} instead.")
    e = math.exp(epsilon) if epsilon < 700 else math.inf
    if math.isinf(e):
        return 1.0
    return min(1.0, prior * e / (prior * e + 1.0 - prior) + delta)


def max_tpr(fpr: float, epsilon: float, delta: float) -> float:
    """The best true-positive rate any membership test can reach at a false-positive rate, under (ε, δ)-DP.

    The (ε, δ)-DP trade-off region (Kairouz et al. 2015): TPR ≤ min(e^ε·FPR + δ, 1 − e^{−ε}(1 − δ − FPR)).

    Examples
    --------
    >>> round(max_tpr(0.01, 1.0, 0.0), 4)
    0.0272
    """
    e = math.exp(min(epsilon, 700.0))
    return max(0.0, min(1.0, e * fpr + delta, 1.0 - (1.0 - delta - fpr) / e))


def _fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}"


def _mechanisms(ledger: PrivacyLedger) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, str, bool], dict[str, Any]] = defaultdict(
        lambda: {"count": 0, "rho": 0.0, "epsilon": 0.0, "delta": 0.0, "sensitivities": set(), "scale_min": math.inf,
                 "scale_max": 0.0, "examples": []})
    for e in ledger.entries:
        g = groups[(e.mechanism, e.accounting, e.library, e.seeded)]
        g["count"] += 1
        g["rho"] += e.rho
        g["epsilon"] += e.epsilon
        g["delta"] += e.delta
        g["sensitivities"].add(e.sensitivity)
        g["scale_min"] = min(g["scale_min"], e.scale)
        g["scale_max"] = max(g["scale_max"], e.scale)
        if len(g["examples"]) < 3:
            g["examples"].append(e.target)
    out = []
    for (mech, acc, lib, seeded), g in groups.items():
        out.append({"mechanism": mech, "accounting": acc, "library": lib, "seeded": seeded, "count": g["count"],
                    "rho": g["rho"], "epsilon": g["epsilon"], "delta": g["delta"],
                    "sensitivities": sorted(g["sensitivities"]), "scale_min": g["scale_min"],
                    "scale_max": g["scale_max"], "examples": g["examples"]})
    return out


def _unit_basis(fits: list[dict[str, Any]], attested: list[dict[str, Any]]) -> str:
    """How each fit's table is known to hold one row per patient (the ledger's ``patient_ids``)."""
    if attested:
        return (f"ATTESTED BY THE CALLER, NOT CHECKED for {len(attested)} of {len(fits)} fits: the table had no "
                "patient ids and the caller stated one row per patient (one_row_per_patient=True); the guarantee "
                "rests on that statement")
    # a fit refused before its first measurement (e.g. for duplicated ids) records nothing
    ran = [f for f in fits if f.get("status") != "failed" or f.get("patient_ids")]
    if ran and all(f.get("patient_ids") == "checked" for f in ran):
        return "checked: every fit's table had patient ids, and no id appeared on two rows"
    return "not recorded by this ledger (written before patient ids were checked)"


def guarantee_section(ledger: PrivacyLedger | None, schema: PatientSchema, *,
                      generator: str | None = None, fit_id: str | None = None) -> tuple[Section, dict[str, Any]]:
    """Build the privacy-guarantee section from a ledger (or say that no guarantee is known).

    Parameters
    ----------
    ledger : PrivacyLedger or None
        The ledger of the data the synthetic set was generated from. ``None``: no formal guarantee.
    schema : PatientSchema
        The public schema (its name, version and hash are stated as the public assumption).
    generator : str, optional
        Name of the generator, when known.
    fit_id : str, optional
        The fit that produced the synthetic data (its own cost is shown beside the ledger total).

    Returns
    -------
    (Section, dict)
        The section and a summary dict with ``epsilon``, ``delta`` (None without a ledger),
        ``seeded`` and ``has_guarantee``.

    Examples
    --------
    >>> import synthhealth as sh
    >>> from synthhealth.privacy import PrivacyBudget, PrivacyLedger
    >>> sec, info = guarantee_section(PrivacyLedger(PrivacyBudget(1.0, 1e-6)), sh.load_schema("flchain"))
    >>> info["epsilon"]
    0.0
    """
    sec = Section("guarantee", "Privacy guarantee (differential privacy)")
    schema_fact = f"{schema.name} {schema.version} (sha256 {schema.hash[:16]}…)"
    if ledger is None:
        sec.intro = ("No privacy ledger was given, so NO formal privacy guarantee is known for this synthetic data. "
                     "The attacks below still measure empirical risk, but an attack that fails proves nothing: "
                     "only a differential-privacy guarantee bounds what any attacker can learn.")
        sec.facts = [("Formal guarantee", "none known (no ledger)"), ("Public schema", schema_fact)]
        sec.metrics.append(Metric(
            key="guarantee.epsilon", name="ε (privacy loss) spent", value=None, goal="minimize", range=(0, math.inf),
            reference=0.0, real_data=False, description="No ledger: no guarantee is known.",
            formula="—", details={"reason": "no ledger"}))
        return sec, {"epsilon": None, "delta": None, "seeded": False, "has_guarantee": False}

    total = ledger.total()
    this = ledger.total(fit_id) if fit_id else None
    eps, delta = total.epsilon, total.delta
    fits = [f for f in ledger.fits]
    mechs = _mechanisms(ledger)
    seeded = total.seeded
    sec.intro = (
        f"This dataset is protected by differential privacy at the level of the patient: the whole output depends "
        f"so little on any one patient that adding or removing that patient changes the probability of any result by "
        f"at most a factor e^ε = {_fmt(math.exp(min(eps, 700)))} (ε = {_fmt(eps)}), except with probability "
        f"δ = {_fmt(delta)}. This holds whatever the attacker knows about everybody else.")
    if not seeded and total.n_entries and not total.secure:
        sec.intro += (" WARNING: at least one measurement drew its noise from a sampler that is not cryptographically "
                      "secure, so this run is NOT FOR RELEASE.")
    # the privacy unit: one row per patient, checked on the ids or stated by the caller
    attested = [f for f in fits if f.get("patient_ids") == "attested"]
    if attested:
        sec.intro += (f" NOTE: for {len(attested)} of the {len(fits)} fits the table had no patient ids, and the "
                      "guarantee rests on the caller's statement that it holds one row per patient "
                      "(one_row_per_patient=True): a patient with k rows would be protected at about k·ε only.")
    if seeded:
        sec.intro += (" WARNING: at least one measurement used seeded (reproducible) randomness. Seeded noise can be "
                      "reproduced by anyone with the seed, so the guarantee does not hold: this run is NOT FOR RELEASE.")
    accountants = sorted({f.get("accounting", "zcdp") for f in fits} | {e.accounting for e in ledger.entries})
    acc_text = []
    if "zcdp" in accountants:
        acc_text.append("zero-concentrated DP (ρ adds up over measurements), converted to (ε, δ) with the tight "
                        "Canonne–Kamath–Steinke 2020 conversion")
    if "approx_dp" in accountants:
        acc_text.append("(ε, δ) entries from the DP-SGD accountant (opacus PRV/RDP) added by basic composition")
    libs = sorted({e.library for e in ledger.entries})
    sec.facts = [
        ("Unit of privacy", f"{total.unit} (each patient contributes exactly one bounded row)"),
        ("One row per patient", _unit_basis(fits, attested)),
        ("Neighbouring datasets", total.neighbouring),
        ("ε spent (all fits on this ledger)", _fmt(eps, 4)),
        ("δ", _fmt(delta)),
        ("ρ (zCDP)", _fmt(total.rho, 6)),
        ("Budget of the ledger", f"ε = {_fmt(ledger.budget.epsilon)}, δ = {_fmt(ledger.budget.delta)}"),
        ("Fits charged to this ledger", str(len(fits))),
        ("Measurements of private data", str(total.n_entries)),
        ("Accounting", "; ".join(acc_text) if acc_text else "no measurement yet"),
        ("Noise samplers", ", ".join(libs) if libs else "—"),
        ("Assumed public", f"the schema {schema_fact}: its domains, bounds, bins and caps; nothing was learned "
                           "from the data for free"),
        ("Randomness", "SEEDED: NOT FOR RELEASE" if seeded else
         "cryptographically secure samplers (not seeded)" if total.secure else
         "NOT SECURE: at least one measurement drew its noise from a pseudo-random generator that is not "
         "cryptographically secure (e.g. DPVAE(secure_mode=False) or engine='opacus'): NOT FOR RELEASE"),
    ]
    if generator:
        sec.facts.insert(2, ("Generator", generator))
    if this is not None and len(fits) > 1:
        sec.facts.insert(3, ("ε of the fit that produced this data", _fmt(this.epsilon, 4)))
    if total.n_reserved:
        # fits still running on this ledger (or crashed, stale): their spending is not in ε yet
        sec.facts.append(("Fits still running on this ledger", (
            f"{total.n_reserved}, reserving up to ε = {_fmt(total.committed_epsilon or eps, 4)} in all; the ε above "
            "counts only what was measured" + (f"; {total.n_stale} of them stale (the process is gone)"
                                               if total.n_stale else ""))))
    versions = {}
    for f in fits:
        versions.update(f.get("versions") or {})
    if versions:
        sec.facts.append(("Library versions", ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))))

    p1 = posterior_bound(0.5, eps, delta)
    p2 = posterior_bound(0.01, eps, delta)
    t1 = max_tpr(0.01, eps, delta)
    sec.notes = [
        f"What ε = {_fmt(eps)} means for one patient: an attacker who was 50% sure that a given patient is in the "
        f"data can be at most {100 * p1:.1f}% sure after seeing the synthetic data; one who was 1% sure, at most "
        f"{100 * p2:.2f}%.",
        f"Any membership test that wrongly accuses 1% of non-members can catch at most {100 * t1:.1f}% of members "
        f"(guessing catches 1%).",
        "The guarantee covers everything computed from the released model and synthetic data, including any "
        "analysis or attack done later (post-processing). It does not hide population-level facts (e.g. that a "
        "condition is common), which is the purpose of sharing the data.",
    ]
    sec.metrics += [
        Metric(key="guarantee.epsilon", name="ε (privacy loss) spent", value=eps, goal="minimize", range=(0, math.inf),
               reference=0.0, real_data=False, unit="",
               description="The proven bound on how much any one patient can influence the output. Smaller is "
                           "more private; ε ≤ 1 is strong, ε of a few units is common in practice.",
               formula="zCDP: ρ = Σ ρ_i; ε = CKS(ρ, δ) (+ Σ ε_j of (ε, δ) entries)",
               details={"rho": total.rho, "budget_epsilon": ledger.budget.epsilon, "seeded": seeded,
                        "this_fit_epsilon": this.epsilon if this else None}),
        Metric(key="guarantee.delta", name="δ", value=delta, goal="minimize", range=(0, 1), reference=0.0,
               real_data=False, description="The probability that the ε bound may fail; should be far below 1/n.",
               formula="δ of the ledger (+ Σ δ_j of (ε, δ) entries)"),
        Metric(key="guarantee.posterior_50", name="Max. belief from a 50% prior", value=p1, goal="minimize",
               range=(0.5, 1.0), reference=0.5, real_data=False,
               description="How sure an attacker who started at 50% can become that a patient is in the data.",
               formula="p' = p·e^ε / (p·e^ε + 1 − p) + δ"),
        Metric(key="guarantee.max_tpr_at_fpr_1pct", name="Max. TPR of any attack at 1% FPR", value=t1,
               goal="minimize", range=(0.01, 1.0), reference=0.01, real_data=False,
               description="The best any membership attack can do at a 1% false-alarm rate, by the guarantee.",
               formula="TPR ≤ min(e^ε·FPR + δ, 1 − e^(−ε)(1 − δ − FPR))"),
    ]
    info = {"epsilon": eps, "delta": delta, "seeded": seeded, "has_guarantee": True, "mechanisms": mechs,
            # the samplers' security (each entry's secure flag), for the regulatory appendix
            "secure": bool(total.secure), "n_insecure_entries": sum(not e.secure for e in ledger.entries),
            "unit": total.unit, "neighbouring": total.neighbouring,
            # dates only (no fit durations: they grow with the number of patients)
            "fits": [{k: f.get(k) for k in ("fit_id", "generator", "accounting", "epsilon", "delta", "status",
                                             "started", "finished", "schema_hash", "seeded", "patient_ids")}
                     for f in ledger.to_dict(times="day")["fits"]]}
    return sec, info
