"""The report renderers: PNG figures, the self-contained HTML page and the PDF."""

from __future__ import annotations

import base64
import copy
import io
import json
import re
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread

from synthhealth.exceptions import InvalidParameterError
from synthhealth.report.model import Check, Figure, Metric, Section
from synthhealth.report.render import figure_png, render_html, render_pdf
from synthhealth.report.render.html import format_ci, format_value

from .sample_doc import EVIL, sample_doc

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# -- helpers ------------------------------------------------------------------------------------


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_SIGNATURE
    assert png[12:16] == b"IHDR"
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def colours(png: bytes) -> np.ndarray:
    """The distinct colours of an image as 0xRRGGBB integers, with their pixel counts."""
    rgb = np.round(imread(io.BytesIO(png), format="png")[..., :3] * 255).astype(np.uint32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    return packed.ravel()


def pdf_pages(path: Path) -> int:
    data = path.read_bytes()
    assert data[:5] == b"%PDF-" and data.rstrip().endswith(b"%%EOF")
    pages = len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))
    counts = [int(c) for c in re.findall(rb"/Type\s*/Pages\s*/Kids\s*\[[^\]]*\]\s*/Count\s*(\d+)", data)]
    assert counts in ([], [pages])
    return pages


class _Page(HTMLParser):
    """Collects the text of each row of #summary-table, the img/src/href attributes and all tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[str] = []
        self.in_table = False
        self.in_body = False
        self.cur: list[str] | None = None
        self.refs: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        self.attrs.append((tag, a.get("class") or "", a))
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action", "data", "poster"):
                self.refs.append((tag, name, value or ""))
        if tag == "table" and a.get("id") == "summary-table":
            self.in_table = True
        if self.in_table and tag == "tbody":
            self.in_body = True
        if self.in_body and tag == "tr":
            self.cur = []

    def handle_endtag(self, tag: str) -> None:
        if self.in_body and tag == "tr" and self.cur is not None:
            self.rows.append(" ".join(" ".join(self.cur).split()))
            self.cur = None
        if tag == "table" and self.in_table:
            self.in_table = self.in_body = False

    def handle_data(self, data: str) -> None:
        if self.cur is not None:
            self.cur.append(data)


def parse(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    p.close()
    return p


def no_figures(doc: dict[str, Any]) -> dict[str, Any]:
    for sec in doc["sections"]:
        sec["figures"] = []
    return doc


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return sample_doc()


@pytest.fixture(scope="module")
def page(doc: dict[str, Any]) -> str:
    return render_html(doc)


# -- figures ------------------------------------------------------------------------------------

KINDS = {
    "bars": {"categories": ["age", "sex", "stage"], "series": {"real": [0.2, 0.5, None], "synthetic": [0.3, 0.4, 0.1]}},
    "heatmap": {"rows": ["a", "b"], "cols": ["x", "y"], "values": [[0.0, None], [1.0, 0.0]], "vmin": 0.0, "vmax": 1.0},
    "lines": {"series": {"attack": {"x": [0.0, 0.2, 1.0], "y": [0.0, 0.4, 1.0]}}, "diagonal": True,
              "xlabel": "false-positive rate", "ylabel": "true-positive rate"},
    "hist": {"edges": [0.0, 1.0, 2.0, 4.0], "series": {"train": [3, 5, 1], "holdout": [2, 6, 1]}},
}


def fig(kind: str, data: dict[str, Any] | None = None, title: str = "A title") -> dict[str, Any]:
    return Figure(key=f"test.{kind}", title=title, kind=kind, data=data or KINDS[kind], caption="c").to_dict()  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_is_a_valid_png(kind: str) -> None:
    png = figure_png(fig(kind))
    w, h = png_size(png)
    assert w == 640 and 250 <= h <= 700  # 6.4 inches at 100 dpi: readable at 640 px
    c = colours(png)
    assert len(np.unique(c)) > 20  # drawn, not blank
    palette_blue = 0x0072B2 if kind != "heatmap" else 0x440154  # first Okabe-Ito colour; viridis' minimum
    assert (c == palette_blue).sum() > 50
    w2, h2 = png_size(figure_png(fig(kind), dpi=200))
    assert w2 == 2 * w and abs(h2 - 2 * h) <= 1


def test_heatmap_none_is_blank() -> None:
    # cells at vmin: two in the figure with a None, three when the None is a 0
    dark = 0x440154
    with_none = (colours(figure_png(fig("heatmap"))) == dark).sum()
    filled = KINDS["heatmap"] | {"values": [[0.0, 0.0], [1.0, 0.0]]}
    without = (colours(figure_png(fig("heatmap", filled))) == dark).sum()
    assert 0.55 < with_none / without < 0.75


def test_lines_diagonal_is_drawn_only_when_asked() -> None:
    def mid_grey(png: bytes) -> int:  # the dashed diagonal is #777777, antialiased
        c = colours(png)
        r, g, b = c >> 16, (c >> 8) & 255, c & 255
        return int(((r == g) & (g == b) & (r >= 0x68) & (r <= 0x86)).sum())

    on = mid_grey(figure_png(fig("lines")))
    off = mid_grey(figure_png(fig("lines", KINDS["lines"] | {"diagonal": False})))
    assert on > off + 150


def test_figures_are_deterministic_and_leave_no_global_state() -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    a = [figure_png(fig(k)) for k in sorted(KINDS)]
    b = [figure_png(fig(k)) for k in sorted(KINDS)]
    assert a == b
    assert plt.get_fignums() == before


def test_hostile_labels_do_not_break_plotting() -> None:
    # "$...$" would be parsed as mathtext (and "$5 and $" fail); an emoji is missing from the font
    data = {"categories": ["cost $5 and $", "x^2_{1}$", "\U0001fa7a stethoscope", EVIL], "series": {"$": [1, 2, 3, 4]}}
    png = figure_png(fig("bars", data, title="$\\frac{1}{0}$ and $"))
    assert png_size(png)[0] == 640


def test_many_categories_grow_the_image() -> None:
    cats = [f"attribute_{i}" for i in range(40)]
    few = png_size(figure_png(fig("bars", {"categories": cats[:5], "series": {"tvd": [0.1] * 5}})))[1]
    many = png_size(figure_png(fig("bars", {"categories": cats, "series": {"tvd": [0.1] * 40}})))[1]
    assert many > 2 * few


@pytest.mark.parametrize(("bad", "needle"), [
    ({"kind": "pie"}, "kind"),
    ({"data": {"categories": ["a", "b"], "series": {"s": [1.0]}}}, "series"),
    ({"data": {"series": {"s": [1.0]}}}, "categories"),
])
def test_figure_errors_name_the_parameter(bad: dict[str, Any], needle: str) -> None:
    f = fig("bars") | bad
    with pytest.raises(InvalidParameterError, match=needle):
        figure_png(f)


def test_figure_other_errors() -> None:
    with pytest.raises(InvalidParameterError, match="dpi"):
        figure_png(fig("bars"), dpi=0)
    with pytest.raises(InvalidParameterError, match="column"):
        figure_png(fig("heatmap", KINDS["heatmap"] | {"values": [[0.0], [1.0, 0.0]]}))
    with pytest.raises(InvalidParameterError, match="increasing"):
        figure_png(fig("hist", {"edges": [0.0, 2.0, 1.0], "series": {"s": [1, 2]}}))
    with pytest.raises(InvalidParameterError, match="'x' and 'y'"):
        figure_png(fig("lines", {"series": {"s": [1, 2]}}))


# -- text helpers -------------------------------------------------------------------------------


def test_formatting_by_hand() -> None:
    assert format_value(0.52349) == "0.523"
    assert format_value(12345) == "12,345"
    assert format_value(1234.6) == "1,235"
    assert format_value(None) == "—"
    assert format_value(1e-6) == "1e-06"
    assert format_value(0.0) == "0"
    assert format_value(True) == "yes"
    assert format_value(12.5, "%") == "12.5%"
    assert format_value(3.0, "days") == "3 days"
    assert format_ci([0.497, 0.531]) == "95% CI 0.497–0.531"
    assert format_ci(None) == "" and format_ci([None, 1.0]) == ""


# -- HTML ---------------------------------------------------------------------------------------


def test_summary_table_lists_every_check(doc: dict[str, Any], page: str) -> None:
    rows = parse(page).rows
    checks = doc["summary"]["checks"]
    assert len(rows) == len(checks) == 8
    labels = {"pass": "PASS", "warn": "WARNING", "fail": "FAIL", "n/a": "N/A"}
    for row, c in zip(rows, checks, strict=True):
        for part in (c["name"], c["metric"], c["rule"], c["why"], labels[c["verdict"]], format_value(c["value"])):
            assert part in row, (part, row)
    assert 'class="verdict v-warn">WARNING<' in page and 'class="verdict v-na">N/A<' in page
    assert "Overall: WARNING" in page and 'class="overall overall-warn"' in page


def test_layout_order(doc: dict[str, Any], page: str) -> None:
    order = [page.index(x) for x in ('class="banner banner-danger"', 'id="summary"', 'id="summary-table"',
                                     'class="toc"', 'id="sec-guarantee"', 'id="sec-attacks"', 'id="sec-utility"',
                                     'id="sec-bias"', 'id="warnings"')]
    assert order == sorted(order)
    for sentence in doc["summary"]["plain"]:
        assert page.index(escape(sentence)) < page.index('id="summary-table"')


def test_nothing_is_omitted(doc: dict[str, Any], page: str) -> None:
    texts = [doc["meta"]["title"], doc["summary"]["headline"], *doc["summary"]["plain"], *doc["warnings"],
             *doc["meta"]["notices"], doc["meta"]["generator"]]
    for sec in doc["sections"]:
        texts += [sec["title"], *[p.strip() for p in sec["intro"].split("\n\n")], *sec["notes"]]
        texts += [x for f in sec["facts"] for x in f]
        for m in sec["metrics"]:
            texts += [m["name"], m["key"], m["description"], m["formula"], format_value(m["value"])]
            if m["ci"]:
                texts.append(format_ci(m["ci"]))
            if m["details"].get("reason"):
                texts.append(m["details"]["reason"])
        for f in sec["figures"]:
            texts += [f["title"], f["caption"]]
    for t in texts:
        assert escape(str(t)) in page, t
    for direction in ("higher is better", "lower is better", "closer to reference is better"):
        assert direction in page
    assert page.count("<details>") == sum(1 for s in doc["sections"] for m in s["metrics"])
    assert "not computed: too few holdout rows" in page


def test_one_png_per_figure_and_no_external_reference(doc: dict[str, Any], page: str) -> None:
    parsed = parse(page)
    n_figures = sum(len(s["figures"]) for s in doc["sections"])
    srcs = [v for tag, name, v in parsed.refs if name == "src"]
    assert len(srcs) == n_figures == page.count("data:image/png;base64,") == 6
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        png_size(base64.b64decode(src.split(",", 1)[1], validate=True))
    imgs = [a for tag, _, a in parsed.attrs if tag == "img"]
    assert all(a.get("alt") for a in imgs)
    assert all(v.startswith("#") for _, name, v in parsed.refs if name == "href")
    assert {name for _, name, _ in parsed.refs} <= {"src", "href"}
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "http://" not in page and "https://" not in page
    assert not {"link", "iframe", "object", "embed", "base"} & set(parsed.tags)
    # every in-page link has its target
    ids = set(re.findall(r'id="([^"]+)"', page))
    assert all(v[1:] in ids for _, name, v in parsed.refs if name == "href")


def test_ids_are_unique_and_links_resolve() -> None:
    doc = no_figures(sample_doc())
    doc["sections"].append(copy.deepcopy(doc["sections"][0]))  # the same section (and metric keys) twice
    doc["sections"].append(Section(key="sec-guarantee", title="odd key").to_dict())
    doc["sections"].append(Section(key="../ x y", title="odder key").to_dict())
    page = render_html(doc)
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    hrefs = re.findall(r'href="#([^"]+)"', page)
    assert set(hrefs) <= set(ids) and len(hrefs) >= len(doc["sections"]) + len(doc["summary"]["checks"])


def test_hostile_text_is_escaped() -> None:
    doc = sample_doc(malicious=True)
    doc["sections"][2]["figures"][0]["caption"] = '"><img src=x onerror=alert(1)>'
    doc["meta"]["schema"]["name"] = "</style><script>alert(2)</script>"
    page = render_html(doc)
    assert EVIL not in page and "alert(2)</script>" not in page
    assert escape(EVIL) in page
    assert page.count("<script") == 1  # the renderer's own print helper, nothing else
    parsed = parse(page)
    assert all(not k.startswith("on") for _, _, a in parsed.attrs for k in a)
    assert sum(tag == "img" for tag in parsed.tags) == 6  # the injected <img> stayed text
    assert page.count("</style>") == 1
    assert len(parse(page).rows) == len(doc["summary"]["checks"])


@pytest.mark.parametrize(("seeded", "release", "expected"), [
    (True, False, {"INTERNAL REVIEW: contains statistics of the real data", "NOT FOR RELEASE: seeded randomness"}),
    (True, True, {"NOT FOR RELEASE: seeded randomness"}),
    (False, False, {"INTERNAL REVIEW: contains statistics of the real data"}),
    (False, True, set()),
])
def test_banners(seeded: bool, release: bool, expected: set[str]) -> None:
    page = render_html(no_figures(sample_doc(seeded=seeded, release=release)))
    found = set(re.findall(r'<div class="banner banner-danger" role="alert">([^<]*)</div>', page))
    assert found == expected


def test_flags_imply_banners_the_document_forgot() -> None:
    doc = no_figures(sample_doc(seeded=True, release=False))
    doc["meta"]["notices"] = []
    found = re.findall(r'<div class="banner banner-danger" role="alert">([^<]*)</div>', render_html(doc))
    assert len(found) == 2
    assert any("seeded" in b for b in found) and any("INTERNAL" in b for b in found)


def test_release_report_has_no_real_data_items() -> None:
    doc = sample_doc(seeded=False, release=True)
    page = render_html(doc)
    assert "real data</span>" not in page  # no item is tagged as a statistic of the real data
    assert page.count("data:image/png;base64,") == 0
    assert "train " not in page.split("</header>")[0]  # no real sizes in the subtitle


def test_a_saved_json_renders_the_same(doc: dict[str, Any], page: str) -> None:
    again = render_html(json.loads(json.dumps(doc, allow_nan=False)))
    assert again == page


def test_print_css_and_accessibility(page: str) -> None:
    assert "@media print" in page and "break-before:page" in page
    assert '<html lang="en">' in page and '<meta charset="utf-8">' in page
    assert page.count('<th scope="col">') >= 5
    assert 'aria-hidden="true"' in page  # the traffic light's lamps are decoration; the word carries the verdict


def test_document_envelope_is_checked() -> None:
    with pytest.raises(InvalidParameterError, match="format"):
        render_html({"format": "other", "format_version": 1})
    with pytest.raises(InvalidParameterError, match="format_version"):
        render_html({"format": "synthhealth-report", "format_version": 2})
    with pytest.raises(InvalidParameterError, match="sections"):
        render_html({"format": "synthhealth-report", "format_version": 1, "sections": {}})
    minimal = render_html({"format": "synthhealth-report", "format_version": 1})
    assert 'id="summary-table"' in minimal and "No checks were configured." in minimal and "No warnings." in minimal


# -- PDF ----------------------------------------------------------------------------------------


def small_doc(n_sections: int, checks: list[Check] | None = None) -> dict[str, Any]:
    doc = sample_doc()
    doc["sections"] = [Section(key=f"s{i}", title=f"Section {i}", intro="Short.", facts=[("a", "1")],
                               metrics=[Metric(key=f"s{i}.m", name="m", value=0.5, goal="maximize")]).to_dict()
                       for i in range(n_sections)]
    doc["summary"]["checks"] = [c.to_dict() for c in checks or []]
    return doc


def test_pdf_page_count(tmp_path: Path) -> None:
    # summary; one page per section; the warnings follow the last section (or get their own page)
    assert pdf_pages(render_pdf(small_doc(2), tmp_path / "a.pdf")) == 3
    out = render_pdf(small_doc(0), tmp_path / "b.pdf")
    assert out == tmp_path / "b.pdf"
    assert pdf_pages(out) == 2


def test_pdf_paginates_long_tables_and_wraps_long_strings(tmp_path: Path) -> None:
    # 300 table rows: 150 checks and 150 metrics (PDF text costs about 0.1 ms a character here)
    doc = no_figures(sample_doc(extra_checks=150))
    for c in doc["summary"]["checks"][8:]:  # short texts keep the test fast: every row still has two lines
        c["why"] = "ok"
    for m in doc["sections"][-1]["metrics"]:
        m["description"], m["name"] = "d", m["name"][:14]
    doc["summary"]["checks"][0]["why"] = "word " * 600 + "x" * 700  # 3,700 characters, one unbreakable token
    doc["warnings"].append("y" * 2000)
    doc["meta"]["title"] = "T" * 400
    doc["sections"][0]["figures"] = [fig("bars", title="B" * 300) | {"caption": "caption " * 800}]
    n = pdf_pages(render_pdf(doc, tmp_path / "long.pdf"))
    # each row of a table has at least two lines (name and key): 2 * 1.3 * 8.5 pt + 0.1 in = 0.41 in,
    # and a page holds 11.69 - 0.6 - 0.75 = 10.34 in: at most 25 rows, so 158 checks need at least 7 pages
    # and the extra section's 150 metrics 6 more, besides the 4 sections of the sample
    assert n >= 7 + 4 + 6
    assert n < 40


def test_pdf_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="path"):
        render_pdf(sample_doc(), tmp_path / "missing" / "r.pdf")
    with pytest.raises(InvalidParameterError, match="format"):
        render_pdf({"format": "x"}, tmp_path / "r.pdf")
    with pytest.raises(InvalidParameterError, match="dpi"):
        render_pdf(sample_doc(), tmp_path / "r.pdf", dpi=10)
    with pytest.raises(InvalidParameterError, match="dpi"):
        render_html(sample_doc(), dpi=1000)


def test_pdf_of_the_sample_with_hostile_text(tmp_path: Path) -> None:
    doc = copy.deepcopy(sample_doc(malicious=True))
    doc["summary"]["plain"].append("costs $5 and $6 \U0001fa7a")  # not mathtext; a glyph the font lacks
    out = render_pdf(doc, tmp_path / "h.pdf")
    # the summary, then each section from a new page (figures two per row may spill over); one image per figure
    n_figures = [len(s["figures"]) for s in doc["sections"]]
    assert 1 + len(n_figures) <= pdf_pages(out) <= 1 + len(n_figures) + sum((n + 1) // 2 for n in n_figures)
    assert len(re.findall(rb"/Subtype\s*/Image", out.read_bytes())) == sum(n_figures)


def _two_verdict_doc(release: bool) -> dict[str, Any]:
    doc = sample_doc(seeded=False, release=release)
    for s in doc["sections"]:
        s["figures"] = []
    doc["summary"]["verdicts"] = {"privacy": "pass", "utility": "fail"}
    if release:
        doc["summary"]["release"] = True
        doc["summary"]["verdict"] = "n/a"
    sha = "ab" * 32
    doc["sections"].append(Section("files", "Provenance and files",
                                   facts=[("synthetic table: /very/long/path/synthetic-patients.parquet",
                                           f"sha256 {sha} (12,345 bytes)")]).to_dict())
    return doc


def test_two_verdicts_and_the_files_section(tmp_path: Path) -> None:
    page = render_html(_two_verdict_doc(release=False))
    assert "Privacy: PASS · Fitness for use: FAIL" in page and "Overall:" not in page
    assert "ab" * 32 in page and "Provenance and files" in page
    assert "table.facts th,table.facts td,table.metrics td:not(.num){overflow-wrap:anywhere}" in page  # a sha256 wraps
    assert render_pdf(_two_verdict_doc(release=False), tmp_path / "a.pdf").stat().st_size > 1000


def test_release_statement_has_no_traffic_light(tmp_path: Path) -> None:
    page = render_html(_two_verdict_doc(release=True))
    summary = page.split('id="summary"')[1].split("</section>")[0]
    assert "Release statement" in summary and 'class="lamp' not in summary
    assert render_pdf(_two_verdict_doc(release=True), tmp_path / "r.pdf").stat().st_size > 1000
