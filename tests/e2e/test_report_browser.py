"""The HTML report in a real browser: headless Chromium driven by Selenium.

CI installs the Debian packages ``chromium`` and ``chromium-driver``. Without them (or without
selenium) this test FAILS, so that a broken page cannot hide behind a skip; set
``SYNTHHEALTH_SKIP_BROWSER=1`` to skip it on a machine that has no browser.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest
from matplotlib.image import imread

from synthhealth.report.render import render_html

from ..unit.report.sample_doc import EVIL, sample_doc

SKIP_ENV = "SYNTHHEALTH_SKIP_BROWSER"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _unavailable(reason: str) -> NoReturn:
    msg = (f"{reason}. Install the browser (apt-get install chromium chromium-driver) and selenium "
           f"(pip install selenium), or set {SKIP_ENV}=1 to skip this test.")
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(msg)
    pytest.fail(msg, pytrace=False)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed")
    binary = next((p for p in (shutil.which(b) for b in BROWSERS) if p), None)
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        _unavailable(f"headless Chromium is missing (browser: {binary}, chromedriver: {driver_path})")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1280,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(15)
    try:
        yield driver
    finally:
        driver.quit()


def full_page_png(driver: Any) -> bytes:
    """A screenshot of the whole page (not only the window), through the DevTools protocol."""
    width = driver.execute_script("return document.documentElement.scrollWidth")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
    return base64.b64decode(shot["data"])


def load(driver: Any, path: Path) -> None:
    driver.get(path.as_uri())
    assert driver.execute_script("return document.readyState") == "complete"


def test_report_renders_in_chromium(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    doc = sample_doc(malicious=True)
    page = tmp_path / "report.html"
    page.write_text(render_html(doc), encoding="utf-8")
    browser.get_log("browser")  # drop anything logged before this page
    load(browser, page)

    assert browser.title == doc["meta"]["title"]  # the <script> in the title is text, not markup
    # the malicious names ran no script and appear as text
    assert browser.execute_script("return typeof window.__pwned") == "undefined"
    assert EVIL in browser.find_element(By.TAG_NAME, "body").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "script")) == 1  # only the renderer's own print helper

    severe = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert severe == [], severe

    table = browser.find_element(By.ID, "summary-table")
    assert table.is_displayed()
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    checks = doc["summary"]["checks"]
    assert len(rows) == len(checks)
    for row, check in zip(rows, checks, strict=True):
        assert check["name"] in row.text
    verdicts = [r.find_element(By.CSS_SELECTOR, ".verdict").text for r in rows]
    assert verdicts == [{"pass": "PASS", "warn": "WARNING", "fail": "FAIL", "n/a": "N/A"}[c["verdict"]] for c in checks]

    # the summary comes first, and its table is above the first section
    summary_y = table.location["y"]
    first_section = browser.find_element(By.CSS_SELECTOR, "section.report-section")
    assert summary_y < first_section.location["y"]
    banners = browser.find_elements(By.CSS_SELECTOR, ".banner-danger")
    assert {b.text for b in banners} >= {"INTERNAL REVIEW: contains statistics of the real data",
                                         "NOT FOR RELEASE: seeded randomness"}
    assert all(b.is_displayed() and b.location["y"] < summary_y for b in banners)

    # every figure decoded (a broken data: URI gives naturalWidth 0); nothing was fetched from a network
    n_figures = sum(len(s["figures"]) for s in doc["sections"])
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt])")
    assert len(images) == n_figures
    assert all(done and w >= 400 and h >= 200 and alt for done, w, h, alt in images)
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert not [r for r in resources if r.startswith(("http:", "https:"))]

    # at 1280 px nothing overflows sideways (tables wrap their text rather than scroll)
    overflow = browser.execute_script(
        "return Array.from(document.querySelectorAll('.table-wrap, main')).filter(e => e.scrollWidth > e.clientWidth + 1)"
        ".map(e => e.className || e.tagName)")
    assert overflow == []

    # the print stylesheet gives a PDF (Chromium's own print path)
    printed = base64.b64decode(browser.execute_cdp_cmd("Page.printToPDF", {"printBackground": True})["data"])
    assert printed[:5] == b"%PDF-"

    shot = full_page_png(browser)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(io.BytesIO(shot), format="png")
    assert pixels.shape[0] > 2000 and pixels.shape[1] >= 1000  # the whole page, not just the window
    rgb = np.round(pixels[..., :3] * 255).astype(np.uint32)
    colours = np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2])
    assert len(colours) > 50  # not a blank page: text, banners, the traffic light and the plots
    assert 0xB3261E in colours  # the red of the NOT FOR RELEASE banner is painted


@pytest.mark.parametrize("release", [False, True], ids=["internal", "release"])
def test_verdicts_review_and_manifest_render_in_chromium(browser: Any, tmp_path: Path, release: bool) -> None:
    """The two verdicts (internal), the release statement without a traffic light, the internal-review
    citation and the sha256 manifest (issue 15.3, 15.4): shown, and a 64-character hash does not overflow."""
    from selenium.webdriver.common.by import By

    from ..unit.report.test_render import _two_verdict_doc

    doc = _two_verdict_doc(release=release)
    if release:
        doc["sections"].append({"key": "review", "title": "Internal review", "intro": "", "metrics": [],
                                "figures": [], "notes": [],
                                "facts": [["Internal review id", "0123456789abcdef"], ["Reviewer", "A. Officer"]]})
    page = tmp_path / "report.html"
    page.write_text(render_html(doc), encoding="utf-8")
    load(browser, page)
    label = browser.find_element(By.CSS_SELECTOR, ".overall-label").text
    lamps = browser.find_elements(By.CSS_SELECTOR, "#summary .lamp")
    if release:
        assert label == "Release statement" and lamps == []
        assert "0123456789abcdef" in browser.find_element(By.TAG_NAME, "body").text
    else:
        assert label == "Privacy: PASS · Fitness for use: FAIL" and len(lamps) == 3
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "ab" * 32 in body.replace("\n", "")
    overflow = browser.execute_script(
        "return Array.from(document.querySelectorAll('.table-wrap, main')).filter(e => e.scrollWidth > e.clientWidth + 1)"
        ".map(e => e.className || e.tagName)")
    assert overflow == []


@pytest.fixture(scope="module")
def built_report() -> Any:
    """A real report (MST at ε = 1 on 600 flchain patients): the regulatory appendix, the next steps and
    the plots of issue 15.5/15.6 as the report writes them."""
    import warnings

    import synthhealth as sh

    schema = sh.load_schema("flchain")
    t = sh.read_table(sh.datasets.load_flchain(), schema).sample(900, random_state=11)
    train, holdout = t.iloc[:600], t.iloc[600:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gen = sh.MST(epsilon=1.0).fit(train, schema=schema, progress=False)
    return sh.Report.build(real=train, holdout=holdout, synthetic=gen.sample(600), model=gen, progress=False,
                           n_boot=20, n_attacks=100, random_state=0, reviewer="A. Officer")


@pytest.mark.parametrize("release", [False, True], ids=["internal", "release"])
def test_appendix_next_steps_and_plots_render_in_chromium(browser: Any, built_report: Any, tmp_path: Path,
                                                          release: bool) -> None:
    """The regulatory appendix (NIST SP 800-226, WP29, HIPAA, EDPB, attestations, sign-off), the next-steps
    box and the new plots (worst pairs, Cramér's V side by side, the pair appendix, Kaplan–Meier with the
    numbers at risk) are shown, decode and do not overflow (issue 15.5, 15.6)."""
    from selenium.webdriver.common.by import By

    doc = built_report.to_dict(release=release, preview=release)
    page = tmp_path / "report.html"
    page.write_text(render_html(doc), encoding="utf-8")
    browser.get_log("browser")
    load(browser, page)
    assert [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"] == []

    appendix = browser.find_element(By.ID, "sec-regulatory")
    assert appendix.is_displayed() and "Regulatory appendix" in appendix.text
    for group, words in (("nist", "Unit of privacy"), ("wp29", "Singling out"), ("hipaa", "NOT a determination"),
                         ("edpb", "The model is a release"), ("attestations", "One Patient record is one person")):
        el = browser.find_element(By.ID, f"sec-regulatory-{group}")
        assert el.is_displayed() and words in el.text, group
    wp29 = browser.find_element(By.ID, "sec-regulatory-wp29").text
    assert ("bounded by the guarantee" in wp29) if release else ("measured:" in wp29)
    nist = browser.find_element(By.ID, "sec-regulatory-nist").text
    assert "Checking the claim" in nist and "central differential privacy" in nist
    signoff = browser.find_element(By.ID, "sec-regulatory-signoff")
    rows = signoff.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == 3 and "A. Officer" in signoff.text
    lines = signoff.find_elements(By.CSS_SELECTOR, "td.line")
    assert lines and all(c.size["height"] >= 30 for c in lines)  # room to sign

    steps = browser.find_elements(By.ID, "next-steps")
    bad = [c for c in doc["summary"]["checks"] if c["verdict"] in ("fail", "warn")]
    if release:
        assert steps == []  # keyed to the internal review's measurements
    elif bad:
        assert steps[0].is_displayed()
        cmds = steps[0].find_elements(By.CSS_SELECTOR, "code.cmd")
        assert cmds and all(c.text.startswith("synthhealth ") for c in cmds)
        assert steps[0].location["y"] < browser.find_element(By.CSS_SELECTOR, "section.report-section").location["y"]

    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt])")
    assert len(images) == sum(len(s["figures"]) for s in doc["sections"])
    assert all(done and w >= 400 and h >= 200 and alt for done, w, h, alt in images)
    alts = " ".join(a for *_, a in images)
    if not release:
        assert "Heat maps side by side: Association between attributes" in alts
        assert "worst-reproduced pairs" in alts and "Kaplan" in alts
        assert browser.find_element(By.ID, "sec-pairs").is_displayed()
    else:
        assert not browser.find_elements(By.ID, "sec-pairs")
    overflow = browser.execute_script(
        "return Array.from(document.querySelectorAll('.table-wrap, main, .next-steps')).filter(e => e.scrollWidth > "
        "e.clientWidth + 1).map(e => e.className || e.tagName)")
    assert overflow == []
    shot = full_page_png(browser)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
