"""Honesty checks of the whole report: it must say high risk for a copy, low risk (and poor utility) for noise,
near-chance attacks for a DP generator, and never contain a real record."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import synthhealth as sh
from synthhealth.transform.encode import Encoder


@pytest.fixture(scope="module")
def flchain() -> tuple[sh.PatientSchema, pd.DataFrame, pd.DataFrame]:
    schema = sh.load_schema("flchain")
    t = sh.datasets.load_flchain().sample(3000, random_state=1).reset_index(drop=True)
    return schema, t.iloc[:1500].reset_index(drop=True), t.iloc[1500:].reset_index(drop=True)


def _uniform(schema: sh.PatientSchema, n: int, seed: int) -> pd.DataFrame:
    """Independent noise over the public domain: each attribute uniform over its states."""
    enc = Encoder(schema)
    rng = np.random.default_rng(seed)
    codes = np.column_stack([rng.integers(0, k, size=n) for k in enc.shape])
    return enc.decode(codes, rng)


def _checks(rep: sh.Report) -> dict[str, str]:
    return {c["metric"]: c["verdict"] for c in rep.checks}


def test_copy_of_training_data_is_reported_as_high_risk(flchain) -> None:
    schema, train, holdout = flchain
    rep = sh.Report.build(real=train, holdout=holdout, synthetic=train.copy(), schema=schema, random_state=0,
                          progress=False, strict=True, n_boot=50)
    m = rep.metrics()
    assert m["attacks.dcr.auc"]["value"] >= 0.9
    assert m["attacks.dcr.exact_match_train"]["value"] >= 0.95
    assert m["attacks.dcr.share_closer_to_train"]["value"] >= 0.9
    risks = [v for k, v in m.items() if k.startswith("attacks.") and k.endswith("risk") and v["value"] is not None]
    assert risks and max(r["value"] for r in risks) >= 0.5
    v = _checks(rep)
    assert v["attacks.dcr.auc"] == "fail" and v["attacks.dcr.share_closer_to_train"] == "fail"
    assert rep.verdict == "fail"
    assert "HIGH" in " ".join(rep.doc["summary"]["plain"])
    assert not rep.doc["warnings"]


def test_independent_noise_is_low_risk_and_poor_utility(flchain) -> None:
    schema, train, holdout = flchain
    rep = sh.Report.build(real=train, holdout=holdout, synthetic=_uniform(schema, 1500, 3), schema=schema,
                          random_state=0, progress=False, strict=True, n_boot=50)
    m = rep.metrics()
    lo, hi = m["attacks.dcr.auc"]["ci"]
    assert lo <= 0.5 <= hi or abs(m["attacks.dcr.auc"]["value"] - 0.5) < 0.03
    assert 0.4 <= m["attacks.dcr.share_closer_to_train"]["value"] <= 0.6
    v = _checks(rep)
    assert v["attacks.dcr.auc"] == "pass" and v["attacks.density.auc"] == "pass"
    assert v["utility.tvd1.mean"] == "fail" and v["utility.tvd2.mean"] == "fail"
    assert m["utility.tvd1.mean"]["value"] > 0.2


def test_dp_generator_attacks_near_chance_and_guarantee_stated(flchain) -> None:
    schema, train, holdout = flchain
    gen = sh.MST(epsilon=1.0, random_state=0).fit(train, schema=schema, progress=False)
    rep = sh.Report.build(real=train, holdout=holdout, synthetic=gen.sample(1500, random_state=0), model=gen,
                          random_state=0, progress=False, strict=True, n_boot=50)
    m = rep.metrics()
    for key in ("attacks.dcr.auc", "attacks.density.auc"):
        lo, hi = m[key]["ci"]
        assert lo - 0.02 <= 0.5 <= hi + 0.02, (key, m[key]["value"], m[key]["ci"])
    eps = m["guarantee.epsilon"]["value"]
    assert eps == pytest.approx(gen.ledger_.total().epsilon)
    for k, v in m.items():  # no attack may beat the claim
        if k.endswith("epsilon_lower_bound") and v["value"] is not None:
            assert v["value"] <= eps
    v = _checks(rep)
    assert v["guarantee.seeded"] == "fail"  # seeded test noise: the report must say NOT FOR RELEASE
    assert any("NOT FOR RELEASE" in n for n in rep.doc["meta"]["notices"])
    assert m["utility.tvd1.mean"]["value"] < 0.1


def test_no_real_record_in_any_output_file(flchain, tmp_path: Path) -> None:
    schema, train, holdout = flchain
    canary = train.iloc[[0]].copy()
    canary["kappa"], canary["lambda"], canary["creatinine"] = 13.371942, 17.294113, 4.918273
    train = pd.concat([canary, train.iloc[1:]], ignore_index=True)
    hold_canary = holdout.iloc[[0]].copy()
    hold_canary["kappa"], hold_canary["lambda"] = 21.481516, 23.427181
    holdout = pd.concat([hold_canary, holdout.iloc[1:]], ignore_index=True)
    gen = sh.MST(epsilon=1.0, random_state=0).fit(train, schema=schema, progress=False)
    rep = sh.Report.build(real=train, holdout=holdout, synthetic=gen.sample(1500, random_state=0), model=gen,
                          random_state=0, progress=False, strict=True, n_boot=20)
    files = list(rep.save(tmp_path).values()) + list(rep.save(tmp_path, release=True, preview=True).values())
    # full-precision values: long enough not to occur by chance among the report's own floats
    needles = ["13.371942", "17.294113", "4.918273", "21.481516", "23.427181"]
    for f in files:
        raw = f.read_bytes()
        texts = [raw.decode("latin-1")]
        if f.suffix == ".pdf":  # page streams are deflated
            for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", raw, re.S):
                try:
                    texts.append(zlib.decompress(m.group(1)).decode("latin-1"))
                except zlib.error:
                    pass
        for needle in needles:
            assert not any(needle in t for t in texts), (f.name, needle)
    # and no training row, written as in the data, appears in the JSON
    doc = json.loads((tmp_path / "report.json").read_text())
    text = json.dumps(doc)
    for _, row in train.head(50).iterrows():
        assert f"{row['kappa']}, {row['lambda']}" not in text


def test_release_variant_drops_every_real_statistic(flchain) -> None:
    schema, train, holdout = flchain
    gen = sh.MST(epsilon=1.0, random_state=0).fit(train, schema=schema, progress=False)
    rep = sh.Report.build(real=train, holdout=holdout, synthetic=gen.sample(800, random_state=0), model=gen,
                          random_state=0, progress=False, n_boot=20)
    doc = rep.to_dict(release=True, preview=True)  # a seeded test fit: a preview of the release layout
    assert doc["meta"]["release"] is True and doc["meta"]["preview"] is True and doc["meta"]["n_train"] is None and doc["meta"]["n_holdout"] is None
    for s in doc["sections"]:
        assert all(m["real_data"] is False for m in s["metrics"])
        assert all(f["real_data"] is False for f in s["figures"])
    keys = {m["key"] for s in doc["sections"] for m in s["metrics"]}
    assert "guarantee.epsilon" in keys and not any(k.startswith(("attacks.", "utility.", "bias.")) for k in keys)
    assert all(c["metric"].startswith("guarantee.") for c in doc["summary"]["checks"])
    assert "PREVIEW, NOT A RELEASE" in doc["meta"]["notices"][0] and "RELEASE VERSION" in doc["meta"]["notices"][1]
    # the internal document is unchanged
    assert rep.doc["meta"]["release"] is False and rep.doc["meta"]["n_train"] == 1500


def test_build_validates_parameters(flchain) -> None:
    schema, train, holdout = flchain
    with pytest.raises(sh.InvalidParameterError, match="'schema'"):
        sh.Report.build(real=train, holdout=holdout, synthetic=train)
    with pytest.raises(sh.InvalidParameterError, match="'model'"):
        sh.Report.build(real=train, holdout=holdout, synthetic=train, schema=schema, shadow=True)
    with pytest.raises(sh.InvalidParameterError, match="n_attacks"):
        sh.Report.build(real=train, holdout=holdout, synthetic=train, schema=schema, n_attacks=0)
    with pytest.raises(sh.InvalidParameterError, match="'holdout'"):
        sh.Report.build(real=train, holdout=holdout.iloc[:0], synthetic=train, schema=schema)


def test_shadow_attack_and_collapse_run_through_build(flchain) -> None:
    schema, train, holdout = flchain

    def copy_fit_sample(table: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        """A leaky toy generator: a bootstrap of its input (budget-free, fast)."""
        return table.sample(len(table), replace=True, random_state=int(rng.integers(2**31 - 1)))

    small_train, small_hold = train.iloc[:400], holdout.iloc[:400]
    rep = sh.Report.build(real=small_train, holdout=small_hold, synthetic=copy_fit_sample(small_train,
                                                                                         np.random.default_rng(0)),
                          schema=schema, shadow=True, fit_sample=copy_fit_sample, collapse_generations=2,
                          random_state=0, progress=False, strict=True, n_boot=20)
    m = rep.metrics()
    assert m["attacks.shadow.auc"]["value"] > 0.7  # the shadow attack sees the leak
    traj = m["bias.collapse.distinct_share"]
    assert traj["value"] < traj["details"]["generation_0"]  # bootstrapping its own output loses diversity
    assert {"shadow models", "recursive generation (collapse)"} <= set(rep.doc["meta"]["timings_s"])


@pytest.mark.slow
def test_shadow_attack_with_the_real_generator(flchain) -> None:
    schema, train, holdout = flchain
    gen = sh.MST(epsilon=1.0, random_state=0).fit(train.iloc[:600], schema=schema, progress=False)
    rep = sh.Report.build(real=train.iloc[:600], holdout=holdout.iloc[:600], synthetic=gen.sample(600), model=gen,
                          shadow=True, collapse_generations=2, random_state=0, progress=False, strict=True,
                          n_boot=20)
    m = rep.metrics()
    lo, hi = m["attacks.shadow.auc"]["ci"]
    assert lo <= 0.5 + 0.1 and m["attacks.shadow.auc"]["value"] < 0.8
    assert m["bias.collapse.tvd1"]["value"] is not None


def test_report_accessors_and_isolated_summary(flchain) -> None:
    schema, train, holdout = flchain
    rep = sh.Report.build(real=train.iloc[:300], holdout=holdout.iloc[:300], synthetic=train.iloc[:300],
                          schema=schema, random_state=0, progress=False, n_boot=10)
    assert rep.headline == rep.doc["summary"]["headline"] and rep.plain
    assert rep.facts()["Formal guarantee"].startswith("none known")
    assert rep.section("utility")["title"].startswith("Utility")
    with pytest.raises(KeyError, match="no section 'nope'"):
        rep.section("nope")
    html = rep._repr_html_()
    assert html.startswith("<div><iframe srcdoc=") and "summary-table" in html and "<body" not in html.split('"')[0]
