"""The documentation site builds with `mkdocs build --strict` and holds the generated references.

The build runs once per module (about 10 s): mkdocs, mkdocs-material, mkdocstrings[python] and
mkdocs-click must be installed (the [dev] extra); without them the module is skipped.
"""

from __future__ import annotations

import html as html_lib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from synthhealth.cli import main

for _module in ("mkdocs", "material", "mkdocstrings_handlers.python", "mkdocs_click"):
    pytest.importorskip(_module, reason="the docs build needs the [dev] extra (mkdocs and its plugins)")

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


@dataclass(frozen=True)
class Build:
    site: Path
    returncode: int
    output: str


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    site = tmp_path_factory.mktemp("docs") / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")  # mkdocs-material's end-of-life banner
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    return Build(site, proc.returncode, proc.stdout + proc.stderr)


def _page(build: Build, url: str) -> str:
    path = build.site / url / "index.html" if url else build.site / "index.html"
    assert path.is_file(), f"{url or 'home'}: no page in the built site"
    return path.read_text(encoding="utf-8")


def _text(html: str) -> str:
    """The page's text: code blocks are split into highlighted spans."""
    return html_lib.unescape(re.sub(r"<[^>]+>", "", html))


def test_strict_build_succeeds(build: Build) -> None:
    assert build.returncode == 0, build.output
    assert "WARNING" not in build.output, build.output


def test_every_markdown_page_is_built(build: Build) -> None:
    assert build.returncode == 0, build.output
    pages = [p.relative_to(DOCS) for p in DOCS.rglob("*.md") if "_hooks" not in p.parts]
    assert len(pages) >= 20
    for page in pages:
        url = (page.parent if page.stem == "index" else page.with_suffix("")).as_posix()
        url = "" if url == "." else url
        _page(build, url)


def test_home_and_getting_started(build: Build) -> None:
    home = _text(_page(build, ""))
    assert "synthhealth demo" in home
    assert "Planned, not built yet" not in home
    start = _text(_page(build, "getting-started"))
    for step in ("synthhealth split", "synthhealth fit", "synthhealth sample", "synthhealth report", "report.html"):
        assert step in start, step


def test_cli_reference_is_generated_from_the_click_group(build: Build) -> None:
    html = _text(_page(build, "cli"))
    assert main.commands, "the click group has no commands"
    for name, command in main.commands.items():
        assert f"synthhealth {name}" in html, name
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--"):
                    assert opt in html, f"synthhealth {name} {opt}"
    assert "synthhealth report" in html
    assert "--holdout" in html and "--release" in html
    assert "Sentinel" not in html  # click 8.3+'s UNSET default, shown by mkdocs-click's table style


def test_api_reference(build: Build) -> None:
    report = _page(build, "api/report")
    assert 'id="synthhealth.report.Report.build"' in report
    assert "Report.build" in report
    top = _page(build, "api/synthhealth")
    # names that griffe would otherwise resolve to the submodule of the same name are listed explicitly
    for anchor in ("synthhealth.load_schema", "synthhealth.transform.flatten.flatten", "synthhealth.AIM.fit",
                   "synthhealth.MST.sample", "synthhealth.DPVAE.fit", "synthhealth.PrivacyLedger.open",
                   "synthhealth.sweep.sweep", "synthhealth.datasets.demo_fhir_path"):
        assert f'id="{anchor}"' in top, anchor
    fhir = _page(build, "api/fhir")
    for anchor in ("synthhealth.fhir.read", "synthhealth.fhir.write.write", "synthhealth.fhir.FHIRReader"):
        assert f'id="{anchor}"' in fhir, anchor
    privacy = _page(build, "api/privacy")
    assert 'id="synthhealth.privacy.PrivacyBudget"' in privacy
    # the hook renders Sphinx roles of the docstrings as plain code
    for html in (report, top, fhir, privacy):
        assert not re.search(r":(class|func|meth|data|attr|mod):<code>", html)


def test_no_external_resources(build: Build) -> None:
    """No fonts, scripts or stylesheets from the network: the site works offline."""
    assert build.returncode == 0, build.output
    external = re.compile(r"<(?:script|link|img)\b[^>]*\b(?:src|href)=\"(?:https?:)?//", re.IGNORECASE)
    for html in build.site.rglob("*.html"):
        text = html.read_text(encoding="utf-8")
        assert not external.search(text), html.relative_to(build.site)
        assert "fonts.googleapis" not in text, html.relative_to(build.site)
