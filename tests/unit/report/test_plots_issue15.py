"""The plots of issue 15.6: worst pairs beside their noise floor, real and synthetic Cramér's V side by
side, the full pair heatmap in readable blocks in an appendix, intervals on bar charts, and a
Kaplan–Meier plot with the evaluated window and a numbers-at-risk table."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from matplotlib.image import imread

import synthhealth as sh
from synthhealth.exceptions import InvalidParameterError
from synthhealth.report.render.plots import FIGURE_KINDS, figure_png
from synthhealth.report.utility import cramers_v_matrix


def _img(fig: dict) -> np.ndarray:
    png = figure_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return imread(io.BytesIO(png), format="png")


@pytest.fixture(scope="module")
def doc() -> dict:
    schema = sh.load_schema("flchain")
    t = sh.read_table(sh.datasets.load_flchain(), schema).sample(900, random_state=7)
    train, holdout = t.iloc[:600], t.iloc[600:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gen = sh.MST(epsilon=1.0).fit(train, schema=schema, progress=False)
    rep = sh.Report.build(real=train, holdout=holdout, synthetic=gen.sample(600), model=gen, progress=False,
                          n_boot=20, n_attacks=100, random_state=0)
    return rep.to_dict()


def _figs(doc: dict, section: str) -> dict[str, dict]:
    sec = next(s for s in doc["sections"] if s["key"] == section)
    return {f["key"]: f for f in sec["figures"]}


def test_report_has_the_new_figures(doc: dict) -> None:
    util = _figs(doc, "utility")
    assert "utility.tvd2.heatmap" not in util                       # moved to the appendix
    assert "utility.tvd2.heatmap" in _figs(doc, "pairs")
    wp = util["utility.tvd2.worst_pairs"]["data"]
    assert len(wp["categories"]) == 15 and len(wp["floor"]["values"]) == 15
    assert wp["series"]["TVD"] == sorted(wp["series"]["TVD"], reverse=True)
    cv = util["utility.cramers_v"]
    assert cv["kind"] == "heatmaps" and set(cv["data"]["panels"]) == {"real (holdout)", "synthetic"}
    km = util["utility.survival.km"]["data"]
    assert km["window"][0] == 0 and km["window"][1] > 0 and km["marks"][0]["x"] > 0
    assert set(km["at_risk"]["series"]) == set(km["series"]) and km["at_risk"]["series"]["real (holdout)"][0] == 300
    assert util["utility.tvd1.by_attribute"]["data"]["floor"]["values"]
    assert util["utility.tstr.summary"]["data"]["errors"]
    assert util["utility.prevalence.bars"]["data"]["errors"]
    assert util["utility.ci_overlap.coefficients"]["data"]["errors"]
    bias = _figs(doc, "bias")
    assert bias["bias.subgroup.shares"]["data"]["errors"] and bias["bias.subgroup.tvd"]["data"]["floor"]
    risks = _figs(doc, "attacks")["attacks.anonymeter.risks"]["data"]
    assert list(risks["series"]) == ["risk"] and len(risks["errors"]["risk"]) == 4
    for figs in (util, _figs(doc, "pairs"), _figs(doc, "bias")):
        for f in figs.values():
            assert _img(f).shape[1] == 640
    # the release keeps none of them (statistics of the real data)
    rel = sh.Report(doc).to_dict(release=True, preview=True)
    assert not any(s["key"] in ("utility", "pairs") for s in rel["sections"])


def test_cramers_v() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 3, 2000)
    codes = np.column_stack([a, a, rng.integers(0, 4, 2000)])
    v = cramers_v_matrix(codes, (3, 3, 4))
    assert v[0, 1] == pytest.approx(1.0) and v[0, 2] < 0.1 and np.allclose(v, v.T)
    assert np.isnan(cramers_v_matrix(np.zeros((5, 2), dtype=int), (2, 2))[0, 1])


def test_bars_with_intervals_and_floor_and_km_table() -> None:
    bars = {"key": "b", "title": "t", "kind": "bars",
            "data": {"categories": ["a", "b", "c"], "series": {"x": [0.2, 0.5, 0.1]},
                     "errors": {"x": [[0.1, 0.3], None, [0.05, 0.2]]},
                     "floor": {"label": "noise floor", "values": [0.1, None, 0.05]}}}
    plain = {**bars, "data": {"categories": ["a", "b", "c"], "series": {"x": [0.2, 0.5, 0.1]}}}
    assert not np.array_equal(_img(bars)[:, :, :3].mean(), _img(plain)[:, :, :3].mean())
    with pytest.raises(InvalidParameterError):
        figure_png({**bars, "data": {**bars["data"], "errors": {"x": [[0, 1]]}}})
    lines = {"key": "l", "title": "km", "kind": "lines",
             "data": {"series": {"real": {"x": [0, 1, 2], "y": [1, .8, .5]}}, "step": True,
                      "window": [0, 1.5], "marks": [{"x": 1.8, "label": "end"}],
                      "at_risk": {"times": [0, 1, 2], "series": {"real": [10, 8, 3]}}}}
    bare = {**lines, "data": {"series": lines["data"]["series"], "step": True}}
    assert _img(lines).shape[0] > _img(bare).shape[0]               # the table adds a band
    assert "heatmaps" in FIGURE_KINDS


def test_full_heatmap_is_split_into_readable_blocks() -> None:
    from synthhealth.report.data import ReportData
    from synthhealth.report.utility import pairwise_fidelity

    schema = sh.load_schema("core-patient")
    assert len(schema) > 20  # more attributes than one block holds, so the split is exercised
    t = sh.flatten(sh.datasets.load_demo_fhir(), schema)
    d = ReportData.from_tables(schema, t, t, t)
    figs = {f.key: f for f in pairwise_fidelity(d)[1]}
    blocks = [k for k in figs if k.startswith("utility.tvd2.heatmap.")]
    assert blocks and all(len(figs[k].data["rows"]) <= 20 and len(figs[k].data["cols"]) <= 20 for k in blocks)
