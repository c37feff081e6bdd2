"""A realistic report document for the renderers' tests, built from the report's model objects.

The numbers imitate an internal review of an MST synthetic copy of flchain (11 attributes); curves
come from a seeded generator so the document is the same on every call.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from synthhealth.report.model import Check, Figure, Metric, Section

ATTRS = ["age", "sex", "sample_yr", "kappa", "lambda", "flc_grp", "creatinine", "mgus", "futime", "death", "chapter"]
EVIL = "<script>alert(1)</script>"


def _roc(rng: np.random.Generator, shift: float, n: int = 400) -> dict[str, list[float]]:
    """An empirical ROC curve of two normal score samples ``shift`` apart."""
    neg, pos = rng.normal(0, 1, n), rng.normal(shift, 1, n)
    thr = np.sort(np.concatenate([neg, pos]))[::-1]
    tpr = [0.0] + [float((pos >= t).mean()) for t in thr[::8]] + [1.0]
    fpr = [0.0] + [float((neg >= t).mean()) for t in thr[::8]] + [1.0]
    return {"x": fpr, "y": tpr}


def sample_doc(*, seeded: bool = True, release: bool = False, malicious: bool = False, extra_figures: int = 0,
               extra_checks: int = 0) -> dict[str, Any]:
    """Build a report document (the dict of ``Report.to_dict()``).

    Parameters
    ----------
    seeded, release : bool
        The meta flags (a release document drops everything with ``real_data=True``).
    malicious : bool
        Put ``<script>alert(1)</script>`` into an attribute name, a metric's and a check's name, a fact,
        a note, a warning and a notice (what a hostile schema could do).
    extra_figures : int
        Additional figures (cycling through the four kinds) in a fifth section, for timing.
    extra_checks : int
        Additional metrics (in that section) with one check each, for long tables.
    """
    rng = np.random.default_rng(0)
    attrs = list(ATTRS)
    if malicious:
        attrs[1] = EVIL

    guarantee = Section(
        key="guarantee", title="Privacy guarantee",
        intro=("The synthetic table was produced by a differentially private generator. Differential privacy "
               "limits how much anyone can learn about a single patient from the output, whatever else they know."
               "\n\nThe budget below is the whole guarantee: smaller epsilon means stronger protection."),
        facts=[("Mechanism", "MST: noisy 1- and 2-way marginals, Gaussian noise"),
               ("Privacy budget ε (epsilon)", "1"), ("δ (delta)", "1e-06"),
               ("Accountant", "zero-concentrated DP (ρ = 0.0123), converted to (ε, δ)"),
               ("Unit of privacy", "one patient (all of their rows)"),
               ("Randomness", "seeded: reproducible, NOT private" if seeded else "operating-system entropy")]
        + ([("Schema note", EVIL)] if malicious else []),
        metrics=[
            Metric(key="guarantee.epsilon", name="Privacy budget ε", value=1.0, goal="minimize", range=(0.0, np.inf),
                   reference=0.0, description="How much one patient can change the output; below 1 is strong.",
                   formula="ε from the zCDP accountant: ε = ρ + 2·sqrt(ρ·log(1/δ))", real_data=False),
            Metric(key="guarantee.delta", name="Failure probability δ", value=1e-6, goal="minimize", range=(0.0, 1.0),
                   reference=0.0, description="The chance that the ε guarantee does not hold; keep far below 1/n.",
                   formula="fixed by the user", real_data=False),
        ],
        notes=["The guarantee holds for any attacker; the attacks below only illustrate it."],
    )

    attacks = Section(
        key="attacks", title="Privacy attacks",
        intro=("We tried to tell the training patients apart from held-out patients using only the synthetic data. "
               "An attack that does no better than a coin flip (AUC 0.5) found nothing to exploit."),
        metrics=[
            Metric(key="attacks.dcr.auc", name=("Distance-to-closest-record attack AUC" if not malicious else EVIL),
                   value=0.514, goal="minimize", range=(0.0, 1.0), reference=0.5, ci=(0.497, 0.531),
                   description="How well closeness to a synthetic row reveals that a patient was in training.",
                   formula="AUC of score −min_j d(x, s_j) for train vs holdout records; d = Gower distance"),
            Metric(key="attacks.mia.advantage", name="Membership inference advantage", value=0.041, goal="minimize",
                   range=(0.0, 1.0), reference=0.0, ci=(0.012, 0.07),
                   description="Best true-positive rate minus false-positive rate of the attack.",
                   formula="max_t TPR(t) − FPR(t)"),
            Metric(key="attacks.dcr.share_closer_train", name="Synthetic rows closer to training", value=0.507,
                   goal="target", range=(0.0, 1.0), reference=0.5, ci=(0.49, 0.524),
                   description="Share of synthetic rows nearer a training than a holdout patient; 0.5 means no copying.",
                   formula="mean_s 1[d(s, train) < d(s, holdout)] with equal-size samples"),
            Metric(key="attacks.attribute.sex", name="Attribute inference on sex", value=None, goal="minimize",
                   range=(0.0, 1.0), reference=0.5,
                   description="Accuracy of guessing a patient's sex from the other attributes.",
                   details={"reason": "too few holdout rows in a group (< 20)"}),
        ],
        figures=[
            Figure(key="attacks.dcr.roc", title="Membership attack ROC", kind="lines",
                   data={"series": {"DCR attack": _roc(rng, 0.05), "Shadow-model attack": _roc(rng, 0.15)},
                         "diagonal": True, "xlabel": "False-positive rate", "ylabel": "True-positive rate"},
                   caption="Curves on the dashed diagonal mean the attack is guessing."),
            Figure(key="attacks.dcr.hist", title="Distance to the closest synthetic row", kind="hist",
                   data={"edges": np.linspace(0, 3, 16).tolist(),
                         "series": {"training patients": np.histogram(rng.gamma(2, 0.4, 2000), np.linspace(0, 3, 16))[0],
                                    "holdout patients": np.histogram(rng.gamma(2, 0.41, 2000), np.linspace(0, 3, 16))[0]},
                         "xlabel": "Gower distance × attributes", "ylabel": "patients"},
                   caption="Overlapping distributions: training patients are not closer than unseen ones."),
        ],
    )

    tvd = np.round(rng.uniform(0.005, 0.09, len(attrs)), 4)
    corr = rng.uniform(0, 0.25, (len(attrs), len(attrs)))
    corr = np.round((corr + corr.T) / 2, 3)
    np.fill_diagonal(corr, 0)
    corr_list: list[list[float | None]] = corr.tolist()
    corr_list[2][5] = corr_list[5][2] = None  # a pair that could not be computed
    t = np.linspace(0, 5000, 30)
    utility = Section(
        key="utility", title="Usefulness of the synthetic data",
        intro="How closely the synthetic table reproduces the real one: single columns, pairs, and models trained on it.",
        metrics=[
            Metric(key="utility.marginals.tvd_mean", name="Mean column difference (TVD)", value=float(tvd.mean()),
                   goal="minimize", range=(0.0, 1.0), reference=0.0,
                   description="Average share of patients that would have to change category to match the real columns.",
                   formula="mean over attributes of ½ Σ_k |p_real(k) − p_syn(k)|",
                   details={"per_attribute": dict(zip(attrs, tvd.tolist(), strict=True))}),
            Metric(key="utility.pairs.corr_diff", name="Pairwise association difference", value=0.081,
                   goal="minimize", range=(0.0, 1.0), reference=0.0,
                   description="How much the relations between pairs of columns differ (Cramér's V).",
                   formula="mean over pairs |V_real − V_syn|"),
            Metric(key="utility.tstr.auc", name="Train-synthetic test-real AUC for death", value=0.781,
                   goal="maximize", range=(0.0, 1.0), reference=0.802, ci=(0.762, 0.799),
                   description="A model trained on synthetic data predicts death in real patients almost as well.",
                   formula="AUC on holdout of a gradient-boosted model fitted to the synthetic table"),
            Metric(key="utility.survival.cindex", name="Survival concordance", value=0.744, goal="target",
                   range=(0.0, 1.0), reference=0.751, ci=(0.73, 0.76),
                   description="Ranking of survival times by a Cox model trained on synthetic data.",
                   formula="Harrell's C on holdout"),
        ],
        figures=[
            Figure(key="utility.marginals.tvd", title="Column differences", kind="bars",
                   data={"categories": attrs, "series": {"TVD": tvd.tolist()}, "ylabel": "total variation distance"},
                   caption="Short bars are good: below 0.05 the columns are practically identical."),
            Figure(key="utility.pairs.heatmap", title="Association difference by pair", kind="heatmap",
                   data={"rows": attrs, "cols": attrs, "values": corr_list, "vmin": 0.0, "vmax": 0.3,
                         "label": "|V real − V synthetic|"},
                   caption="Dark cells are pairs reproduced well; blank cells could not be computed."),
            Figure(key="utility.survival.km", title="Kaplan-Meier survival", kind="lines",
                   data={"series": {"real": {"x": t.tolist(), "y": np.exp(-t / 9000).tolist()},
                                    "synthetic": {"x": t.tolist(), "y": np.exp(-t / 8600).tolist()}},
                         "step": True, "xlabel": "days", "ylabel": "share alive"},
                   caption="The synthetic curve follows the real one."),
        ],
        notes=["Utility is measured on 1,575 held-out patients never seen by the generator."],
    )

    groups = ["F, < 60", "F, ≥ 60", "M, < 60", "M, ≥ 60"]
    bias = Section(
        key="bias", title="Fairness across groups",
        intro="Whether the synthetic data serves every group of patients equally well.",
        metrics=[
            Metric(key="bias.tstr.auc_gap", name="Largest AUC gap between groups", value=0.064, goal="minimize",
                   range=(0.0, 1.0), reference=0.0, ci=(0.021, 0.11),
                   description="The worst difference between groups in how well the synthetic-trained model works.",
                   formula="max_g AUC_g − min_g AUC_g"),
        ],
        figures=[Figure(key="bias.tstr.groups", title="Model quality by group", kind="bars",
                        data={"categories": groups, "series": {"trained on real": [0.81, 0.79, 0.8, 0.77],
                                                                "trained on synthetic": [0.79, 0.75, 0.78, 0.726]},
                              "ylabel": "AUC"},
                        caption="Similar bar pairs mean the synthetic data does not disadvantage a group.")],
    )

    sections = [guarantee, attacks, utility, bias]
    checks = [
        Check("guarantee.epsilon", "Privacy budget", 1.0, "≤ 1 (warn above 1, fail above 10)", "pass",
              "The privacy budget is in the strong range."),
        Check("attacks.dcr.auc", "Membership attack (closest record)", 0.514, "≤ 0.60 (warn above 0.55)", "pass",
              "An attacker cannot tell who was in the training data."),
        Check("attacks.mia.advantage", "Membership advantage", 0.041, "≤ 0.10 (warn above 0.05)", "pass",
              "The attack's advantage over guessing is small."),
        Check("attacks.attribute.sex", "Attribute inference on sex", None, "≤ 0.60", "n/a",
              "Not computed: too few holdout patients in a group."),
        Check("utility.marginals.tvd_mean", "Column differences", float(tvd.mean()), "≤ 0.05 (fail above 0.10)",
              "pass" if tvd.mean() <= 0.05 else "warn", "Single columns look like the real ones."),
        Check("utility.pairs.corr_diff", "Pair relations", 0.081, "≤ 0.05 (fail above 0.15)", "warn",
              "Some relations between columns are weaker than in the real data."),
        Check("utility.tstr.auc", "Prediction of death", 0.781, "≥ reference − 0.05", "pass",
              "Models trained on synthetic data work nearly as well."),
        Check("bias.tstr.auc_gap", "Gap between groups", 0.064, "≤ 0.05 (fail above 0.10)", "fail" if malicious else "warn",
              "Older men are served a little worse than other groups."),
    ]
    if malicious:
        checks.append(Check("attacks.dcr.auc", EVIL, 0.514, f"≤ {EVIL}", "fail", EVIL))

    if extra_figures or extra_checks:
        kinds = [attacks.figures[0], attacks.figures[1], utility.figures[0], utility.figures[1]]
        more = Section(key="extra", title="Additional measurements",
                       intro="Per-attribute details, for reviewers.",
                       figures=[Figure(key=f"extra.fig{i}", title=f"Extra figure {i}", kind=kinds[i % 4].kind,
                                       data=kinds[i % 4].data, caption=f"Copy {i} of a {kinds[i % 4].kind} figure.")
                                for i in range(extra_figures)],
                       metrics=[Metric(key=f"extra.metric{i}", name=f"Extra metric number {i} with a fairly long name",
                                       value=float(rng.uniform()), goal="minimize", reference=0.0,
                                       description="A measurement that only makes the tables long.")
                                for i in range(extra_checks)])
        sections.append(more)
        checks += [Check(f"extra.metric{i}", f"Extra check {i}", float(rng.uniform()), "≤ 0.5",
                         ("pass", "warn", "fail")[i % 3], "A check that only exists to make the summary long.")
                   for i in range(extra_checks)]

    if release:
        for sec in sections:
            sec.metrics = [m for m in sec.metrics if not m.real_data]
            sec.figures = [f for f in sec.figures if not f.real_data]
        kept = {m.key for s in sections for m in s.metrics}
        checks = [c for c in checks if c.metric in kept]

    notices = []
    if not release:
        notices.append("INTERNAL REVIEW: contains statistics of the real data")
    if seeded:
        notices.append("NOT FOR RELEASE: seeded randomness")
    if malicious:
        notices.append(f"Reviewed by {EVIL}")
    verdicts = {c.verdict for c in checks}
    verdict = "fail" if "fail" in verdicts else "warn" if "warn" in verdicts else "pass"
    return {
        "format": "synthhealth-report", "format_version": 1,
        "meta": {"title": "Privacy and utility report: flchain, MST (ε = 1)" + (f" {EVIL}" if malicious else ""),
                 "created": "2026-03-14T09:26:53+00:00", "synthhealth_version": "0.1.0",
                 "schema": {"name": "flchain", "version": "1", "hash": "9f2c51e0a7b3d4c8e1f06a2b"},
                 "generator": "MST(epsilon=1, delta=1e-06)",
                 "n_train": None if release else 6299, "n_holdout": None if release else 1575, "n_synthetic": 6299,
                 "release": release, "seeded": seeded, "notices": notices},
        "summary": {"verdict": verdict,
                    "headline": {"pass": "Private and useful", "warn": "Private and useful, with caveats",
                                 "fail": "Problems found: do not release without review"}[verdict],
                    "plain": ["The data was generated with a strong, mathematically proven privacy budget (ε = 1).",
                              "Attacks could not tell which patients were used to build the synthetic data.",
                              "Single columns match the real data closely; some relations between columns are weaker.",
                              "A model trained on the synthetic data predicts death almost as well as one trained "
                              "on the real data, but a little less well for older men."],
                    "checks": [c.to_dict() for c in checks]},
        "sections": [s.to_dict() for s in sections],
        "warnings": ["The holdout set is small (1,575 patients): attack AUCs have wide intervals.",
                     "Attribute 'chapter' has 15% missing values; they were treated as their own category."]
        + ([f"Unknown attribute {EVIL} ignored"] if malicious else []),
    }
