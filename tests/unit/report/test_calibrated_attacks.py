"""Attack verdicts calibrated to what the sample can show (issue 15.1)."""

from __future__ import annotations

import numpy as np
import pytest

from synthhealth.report.attacks.distance import share_permutation_test
from synthhealth.report.attacks.stats import attack_metrics, tpr_at_fpr_counts
from synthhealth.report.guarantee import max_tpr
from synthhealth.report.model import Metric
from synthhealth.report.verdict import Threshold, judge, max_auc


def _tpr_metric(tp: int, n1: int, fp: int, n0: int, fpr: float = 0.01) -> Metric:
    m = np.r_[np.full(tp, 10.0), np.full(n1 - tp, -200.0)]   # tp members above every non-member ...
    n = np.r_[np.full(fp, 9.0), np.zeros(n0 - fp)]            # ... and fp non-members just below them
    ms, _ = attack_metrics("attacks.x", "X", m, n, delta=1e-6, random_state=0, n_boot=20)
    return next(x for x in ms if x.key == ("attacks.x.tpr_at_fpr_1pct" if fpr == 0.01 else
                                           "attacks.x.tpr_at_fpr_0.1pct"))


def test_tpr_counts_and_exact_interval() -> None:
    assert tpr_at_fpr_counts([5, 4, 3, 1], [4, 2, 1, 0], 0.25) == (3, 1)
    met = _tpr_metric(7, 50, 0, 200)
    assert met.details["true_positives"] == 7 and met.details["false_positives"] == 0
    assert met.details["ci_method"] == "clopper-pearson"
    lo, hi = met.ci
    assert lo < 7 / 50 < hi
    assert "members found" not in met.name


def test_tpr_is_na_when_holdout_too_small_to_measure_1pct() -> None:
    # the demo case: 50 non-members, 0 false alarms, 7 of 50 members caught at ε = 1
    met = _tpr_metric(7, 50, 0, 50)
    (c,) = judge([met], claimed_epsilon=1.0, claimed_delta=1e-6)
    assert c.verdict == "n/a"
    assert "Too few non-members (50)" in c.why and "1%" in c.why
    assert "members found" not in c.name


def test_tpr_judged_against_the_dp_tradeoff_curve() -> None:
    # 300 non-members, 1 false alarm (FPR_hi ≈ 1.8%): ε = 1 allows ≈ 5%; 12 of 300 members is consistent
    met = _tpr_metric(12, 300, 1, 300)
    (c,) = judge([met], claimed_epsilon=1.0, claimed_delta=1e-6)
    ceiling = max_tpr(met.details["fpr_upper"], 1.0, 1e-6)
    assert met.ci[0] <= ceiling and c.verdict == "pass"
    # 150 of 300 members caught: far above any ε = 1 test
    met = _tpr_metric(150, 300, 1, 300)
    (c,) = judge([met], claimed_epsilon=1.0, claimed_delta=1e-6)
    assert c.verdict == "fail" and "members found" in c.name
    # the same attack is consistent with a weak guarantee (ε = 8): the curve allows it
    (c,) = judge([met], claimed_epsilon=8.0, claimed_delta=1e-6)
    assert c.verdict == "pass"
    # no guarantee: judged against chance
    (c,) = judge([met])
    assert c.verdict == "fail"


def test_user_threshold_still_overrides_tpr_rule() -> None:
    met = _tpr_metric(7, 50, 0, 50)
    (c,) = judge([met], {"attacks.*.tpr_at_fpr_1pct": Threshold(0.5, 0.6)}, claimed_epsilon=1.0)
    assert c.verdict == "pass" and c.rule.startswith("≤ 0.5")


def test_share_permutation_null_and_copy() -> None:
    rng = np.random.default_rng(1)
    t, h, other = rng.normal(size=(100, 4)), rng.normal(size=(100, 4)), rng.normal(size=(150, 4))
    null = share_permutation_test(other, t, h, n_perm=299, random_state=0)
    assert null["p_value"] > 0.01
    assert abs(null["null_centre"] - 0.5) < 0.05
    lo, hi = null["null_quantiles"]
    assert lo < 0.5 < hi
    copy = share_permutation_test(t, t, h, n_perm=299, random_state=0)
    assert copy["test_share"] == 1.0 and copy["p_value"] < 0.01


def _share_metric(value: float, p: float, centre: float = 0.5) -> Metric:
    return Metric("attacks.dcr.share_closer_to_train", "Share", value, "target", reference=0.5,
                  ci=(value - 0.1, value + 0.1),
                  details={"p_value": p, "null_centre": centre, "test_share": value})


def test_share_is_one_sided() -> None:
    # far below 0.5 (the opposite of memorisation) never fails: the 0.258 / 0.167 cases
    for v in (0.167, 0.258):
        (c,) = judge([_share_metric(v, 1.0)], claimed_epsilon=1.0)
        assert c.verdict == "pass"
    # above 0.5 but within the null's spread: pass (the 0.682 at 50 holdout patients)
    (c,) = judge([_share_metric(0.682, 0.08)], claimed_epsilon=1.0)
    assert c.verdict == "pass"
    # significant but within what ε = 1 allows: warn; beyond it (or with no guarantee): fail
    (c,) = judge([_share_metric(0.682, 0.001)], claimed_epsilon=1.0)
    assert c.verdict == "warn"
    (c,) = judge([_share_metric(0.682, 0.001)])
    assert c.verdict == "fail"
    (c,) = judge([_share_metric(0.99, 0.001)], claimed_epsilon=1.0)
    assert c.verdict == "fail"
    (c,) = judge([_share_metric(0.53, 0.03)], claimed_epsilon=1.0)
    assert c.verdict == "warn"


def test_auc_is_one_sided_and_consistent_with_the_guarantee() -> None:
    assert max_auc(1.0) == pytest.approx(np.e / (1 + np.e))
    below = Metric("attacks.dcr.auc", "AUC", 0.2, "target", reference=0.5, ci=(0.1, 0.3))
    wide = Metric("attacks.dcr.auc", "AUC", 0.55, "target", reference=0.5, ci=(0.38, 0.72))
    high = Metric("attacks.dcr.auc", "AUC", 0.99, "target", reference=0.5, ci=(0.97, 1.0))
    for eps in (1.0, None):
        cs = {c.value: c for c in judge([below, wide, high], claimed_epsilon=eps)}
        assert cs[0.2].verdict == "pass"       # below chance is not a risk
        assert cs[0.99].verdict == "fail"
    (c,) = judge([wide], claimed_epsilon=1.0)
    assert c.verdict == "pass" and "too wide" in c.why


def test_inference_not_judged_when_control_already_succeeds() -> None:
    m = Metric("attacks.inference.risk", "Inference risk", 0.75, "minimize", ci=(0.2, 1.0),
               details={"control": {"rate": 0.97, "n_success": 485, "n_attacks": 500}})
    (c,) = judge([m], claimed_epsilon=1.0)
    assert c.verdict == "n/a" and "implied by other attributes" in c.why


def test_tstr_is_one_sided() -> None:
    # a perfect generator that beats train-on-real must not fail (issue 15.3)
    better = Metric("utility.tstr.auroc", "TSTR", 0.85, "maximize", reference=0.75, ci=(0.80, 0.90))
    worse = Metric("utility.tstr.auroc", "TSTR", 0.60, "maximize", reference=0.75, ci=(0.55, 0.65))
    cs = judge([better, worse])
    assert [c.verdict for c in cs] == ["pass", "fail"]
    assert cs[0].rule.startswith("(reference − value) ≤ 0.03")


def test_checks_that_cannot_be_judged_at_this_size_say_so() -> None:
    m = Metric("utility.pmse_ratio", "pMSE ratio", 40.0, "minimize", reference=1.0,
               details={"not_judged": "106 parameters for 138 rows"})
    (c,) = judge([m])
    assert c.verdict == "n/a" and c.why == "Cannot be judged at this size: 106 parameters for 138 rows."


def test_rare_states_at_a_size_that_cannot_show_them() -> None:
    import synthhealth as sh
    from synthhealth.report.bias import rare_categories
    from synthhealth.report.data import ReportData

    t = sh.read_table(sh.datasets.load_flchain(), sh.load_schema("flchain")).iloc[:150]
    d = ReportData.from_tables(sh.load_schema("flchain"), t.iloc[:100], t.iloc[100:], t.iloc[:100])
    ms, _ = rare_categories(d)
    cs = {c.metric: c for c in judge(ms)}
    c = cs["bias.rare.retention"]
    assert c.verdict == "n/a" and "with 50 holdout patients no state can have a real frequency below 0.01" in c.why


def test_subgroup_check_against_the_real_vs_real_floor() -> None:
    # a "perfect generator" (more patients of the same population) is judged against what it can reach
    import synthhealth as sh
    from synthhealth.report.bias import subgroup_gaps
    from synthhealth.report.data import ReportData

    schema = sh.load_schema("flchain")
    t = sh.read_table(sh.datasets.load_flchain(), schema).sample(frac=1.0, random_state=4)
    verdicts = []
    for k in range(5):
        part = t.iloc[k * 500:(k + 1) * 500]
        d = ReportData.from_tables(schema, part.iloc[:200], part.iloc[200:300], part.iloc[300:500])
        ms, _ = subgroup_gaps(d)
        worst = next(m for m in ms if m.key == "bias.subgroup.worst_tvd")
        assert worst.reference is not None and worst.reference > 0.03  # the floor is far from 0 at this size
        verdicts += [c.verdict for c in judge([worst])]
    assert verdicts.count("fail") == 0
    # with fewer than the minimum patients per subgroup the check says so
    d = ReportData.from_tables(schema, t.iloc[:100], t.iloc[100:130], t.iloc[130:230])
    (c,) = judge([m for m in subgroup_gaps(d)[0] if m.key == "bias.subgroup.worst_tvd"])
    assert c.verdict == "n/a" and "no subgroup has at least 20 real rows" in c.why


def test_survival_warns_when_synthetic_goes_past_the_real_follow_up() -> None:
    import synthhealth as sh
    from synthhealth.report.data import ReportData
    from synthhealth.report.utility import survival_curves

    schema = sh.load_schema("flchain")
    t = sh.read_table(sh.datasets.load_flchain(), schema).sample(1500, random_state=0)
    hold = t.iloc[500:1000].copy()
    short = hold["futime"] > 1500
    hold.loc[short, "futime"] = 1500          # the real follow-up ends at 1500 days (censored there)
    hold.loc[short, "death"] = False
    d = ReportData.from_tables(schema, t.iloc[:500], hold, t.iloc[1000:])
    ms, _ = survival_curves(d)
    km = next(m for m in ms if m.key == "utility.survival.km_max_gap")
    assert km.details["real_follow_up"] == 1500 and km.details["synthetic_beyond_follow_up"] > 0.5
    assert "beyond the real follow-up" in km.details["warning"]
