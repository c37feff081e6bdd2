"""Render a report document (the JSON dict of ``Report.to_dict()``) as ONE self-contained HTML file.

Everything is inline: the CSS, and the figures as ``data:image/png;base64`` images; there are no
external references and no script is needed to read it (one tiny inline script only opens the
formula boxes before printing). Every piece of text is escaped with :func:`html.escape`:
attribute names and labels come from user schemas and data.

The layout puts a one-page summary first (the overall traffic-light verdict, the plain-language
sentences and the table of checks), then a table of contents, the sections and the warnings.
"""

from __future__ import annotations

import base64
import math
import numbers
import re
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from ...exceptions import InvalidParameterError
from .plots import figure_png

__all__ = ["render_html", "check_doc", "format_value", "format_ci", "direction_text", "verdict_label",
           "notice_is_danger", "figure_alt"]

FORMAT = "synthhealth-report"
FORMAT_VERSION = 1

_VERDICTS = ("pass", "warn", "fail", "n/a")
_VERDICT_LABEL = {"pass": "PASS", "warn": "WARNING", "fail": "FAIL", "n/a": "N/A"}
_DIRECTION = {"maximize": "higher is better", "minimize": "lower is better",
              "target": "closer to reference is better"}
_KIND_WORDS = {"bars": "Bar chart", "heatmap": "Heat map", "lines": "Line chart", "hist": "Histogram",
               "heatmaps": "Heat maps side by side"}


# -- shared helpers (the PDF renderer uses them too) ------------------------------------------


def check_doc(doc: Any) -> dict[str, Any]:
    """Validate the document's envelope and return it with missing optional parts filled in.

    Parameters
    ----------
    doc : dict
        A report document: ``format`` must be ``"synthhealth-report"`` and ``format_version`` 1.

    Returns
    -------
    dict
        A shallow copy with ``meta``, ``summary``, ``sections`` and ``warnings`` present.

    Examples
    --------
    >>> check_doc({"format": "synthhealth-report", "format_version": 1})["sections"]
    []
    """
    if not isinstance(doc, Mapping):
        raise InvalidParameterError(f"The 'doc' parameter must be a dict (a report document). Got {type(doc).__name__} instead.")
    if doc.get("format") != FORMAT:
        raise InvalidParameterError(f"The 'doc[\"format\"]' parameter must be {FORMAT!r}. Got {doc.get('format')!r} instead.")
    version = doc.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise InvalidParameterError(
            f"The 'doc[\"format_version\"]' parameter must be {FORMAT_VERSION} (this synthhealth reads that version). "
            f"Got {version!r} instead."
        )
    out = dict(doc)
    for key, typ, default in (("meta", Mapping, {}), ("summary", Mapping, {}), ("sections", list, []),
                              ("warnings", list, [])):
        value = out.get(key)
        if value is None:
            out[key] = default
        elif not isinstance(value, typ):
            raise InvalidParameterError(
                f"The 'doc[{key!r}]' parameter must be a {'dict' if typ is Mapping else 'list'}. "
                f"Got {type(value).__name__} instead."
            )
    return out


def format_value(value: Any, unit: str = "") -> str:
    """A number as a reader would write it: 3 significant digits, thousands separators, ``—`` for missing.

    Examples
    --------
    >>> format_value(0.52349), format_value(12345), format_value(None), format_value(1e-6)
    ('0.523', '12,345', '—', '1e-06')
    """
    if value is None:
        return "—"
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, numbers.Integral):
        text = f"{int(value):,}"
    elif isinstance(value, numbers.Real):
        v = float(value)
        if not math.isfinite(v):
            text = "∞" if v > 0 else ("−∞" if v < 0 else "—")
        elif v == 0:
            text = "0"
        elif abs(v) >= 1000:
            text = f"{v:,.0f}"
        elif abs(v) >= 0.001:
            text = f"{v:.3g}" if abs(v) < 100 else f"{v:.1f}"
        else:
            text = f"{v:.2g}"
    else:
        text = str(value)
    unit = str(unit or "")
    if unit and text != "—":
        text = f"{text}{unit}" if unit == "%" else f"{text} {unit}"
    return text


def format_ci(ci: Any) -> str:
    """``"95% CI 0.49–0.55"`` or ``""`` when there is no interval.

    Examples
    --------
    >>> format_ci([0.49, 0.551])
    '95% CI 0.49–0.551'
    """
    if not isinstance(ci, (list, tuple)) or len(ci) != 2 or ci[0] is None or ci[1] is None:
        return ""
    return f"95% CI {format_value(ci[0])}–{format_value(ci[1])}"


def direction_text(goal: Any) -> str:
    """Plain words for a metric's goal.

    Examples
    --------
    >>> direction_text("minimize")
    'lower is better'
    """
    return _DIRECTION.get(str(goal), "")


def verdict_label(verdict: Any) -> str:
    """The verdict as an upper-case word (never by colour alone).

    Examples
    --------
    >>> verdict_label("warn")
    'WARNING'
    """
    return _VERDICT_LABEL.get(_verdict(verdict), "N/A")


def _verdict(verdict: Any) -> str:
    v = str(verdict).lower() if verdict is not None else "n/a"
    return v if v in _VERDICTS else "n/a"


def notice_is_danger(text: str) -> bool:
    """Whether a notice must be shown as a red banner (not for release, internal, seeded).

    Examples
    --------
    >>> notice_is_danger("NOT FOR RELEASE: seeded randomness"), notice_is_danger("Release report")
    (True, False)
    """
    t = str(text).lower()
    return any(w in t for w in ("not for release", "internal", "seeded", "do not share", "confidential"))


def notices(meta: Mapping[str, Any]) -> list[str]:
    """The notices to show, adding the ones the flags imply when the document lacks them."""
    out = [str(n) for n in (meta.get("notices") or [])]
    low = " ".join(out).lower()
    if meta.get("seeded") and "seed" not in low:
        out.append("NOT FOR RELEASE: generated with seeded (reproducible) randomness")
    if meta.get("release") is False and "internal" not in low:
        out.append("INTERNAL REVIEW: contains statistics of the real data")
    return out


def figure_alt(fig: Mapping[str, Any]) -> str:
    """A textual description of a figure for screen readers.

    Examples
    --------
    >>> figure_alt({"title": "Ages", "kind": "bars", "caption": "",
    ...             "data": {"categories": ["young", "old"], "series": {"real": [1, 2]}}})
    'Bar chart: Ages. Categories: young, old. Series: real.'
    """
    kind = str(fig.get("kind"))
    parts = [f"{_KIND_WORDS.get(kind, 'Chart')}: {fig.get('title') or fig.get('key') or 'untitled'}."]
    data = fig.get("data") if isinstance(fig.get("data"), Mapping) else {}
    if kind == "bars" and isinstance(data.get("categories"), list):
        cats = [str(c) for c in data["categories"]]
        parts.append(f"Categories: {', '.join(cats[:8])}{f' and {len(cats) - 8} more' if len(cats) > 8 else ''}.")
    elif kind == "heatmap" and isinstance(data.get("rows"), list) and isinstance(data.get("cols"), list):
        parts.append(f"{len(data['rows'])} rows by {len(data['cols'])} columns; blank cells were not computed.")
    elif kind == "hist" and isinstance(data.get("edges"), list) and len(data["edges"]) >= 2:
        parts.append(f"Distribution from {format_value(data['edges'][0])} to {format_value(data['edges'][-1])}.")
    if isinstance(data.get("series"), Mapping) and data["series"]:
        parts.append(f"Series: {', '.join(str(s) for s in list(data['series'])[:8])}.")
    if fig.get("caption"):
        parts.append(str(fig["caption"]))
    return " ".join(parts)


def _slug(text: Any, used: set[str], prefix: str) -> str:
    base = prefix + (re.sub(r"[^A-Za-z0-9_-]+", "-", str(text)).strip("-") or "x")
    slug, i = base, 2
    while slug in used:
        slug, i = f"{base}-{i}", i + 1
    used.add(slug)
    return slug


def _e(x: Any) -> str:
    return escape("" if x is None else str(x), quote=True)


def _paragraphs(text: Any, cls: str = "") -> str:
    if not text:
        return ""
    c = f' class="{cls}"' if cls else ""
    return "".join(f"<p{c}>{_e(p.strip())}</p>" for p in re.split(r"\n\s*\n", str(text)) if p.strip())


# -- the page ------------------------------------------------------------------------------------


_CSS = """
:root{--ink:#1f2328;--muted:#555d66;--line:#d0d7de;--pass:#1a7f37;--pass-bg:#e6f4ea;--pass-ink:#0f5323;
--warn:#e8a200;--warn-bg:#fff4d6;--warn-ink:#6b4300;--fail:#c62828;--fail-bg:#fde7e6;--fail-ink:#8c1a13;
--na:#6e7781;--na-bg:#eef1f4;--na-ink:#3d444d}
*{box-sizing:border-box}
body{margin:0;background:#f6f8fa;color:var(--ink);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
main{max-width:1040px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:1.9rem;margin:.2em 0 .3em}h2{font-size:1.45rem;margin:1.6em 0 .5em;border-bottom:2px solid var(--line);
padding-bottom:.2em}h3{font-size:1.1rem;margin:1.3em 0 .4em}
a{color:#0550ae}
.banner{margin:.5em 0;padding:.7em 1em;border-radius:6px;font-weight:700;font-size:1.05rem;
-webkit-print-color-adjust:exact;print-color-adjust:exact}
.banner-danger{background:#b3261e;color:#fff;border:2px solid #7f1d17}
.banner-info{background:var(--warn-bg);color:var(--warn-ink);border:2px solid var(--warn)}
.about{font-size:.9rem;color:var(--muted);border-collapse:collapse;margin:.6em 0}
.about th{text-align:left;font-weight:600;padding:.1em 1em .1em 0;color:var(--ink)}.about td{padding:.1em 0}
.overall{display:flex;align-items:center;gap:22px;margin:1em 0;padding:18px 22px;border-radius:10px;
border:3px solid;-webkit-print-color-adjust:exact;print-color-adjust:exact}
.overall-pass{background:var(--pass-bg);border-color:var(--pass);color:var(--pass-ink)}
.overall-warn{background:var(--warn-bg);border-color:var(--warn);color:var(--warn-ink)}
.overall-fail{background:var(--fail-bg);border-color:var(--fail);color:var(--fail-ink)}
.overall-na{background:var(--na-bg);border-color:var(--na);color:var(--na-ink)}
.lights{display:flex;flex-direction:column;gap:6px;background:#2b2f33;padding:8px;border-radius:12px;flex:none}
.lamp{width:30px;height:30px;border-radius:50%;opacity:.22}
.lamp-fail{background:#ff3b30}.lamp-warn{background:#ffcc00}.lamp-pass{background:#34c759}
.lamp.on{opacity:1;box-shadow:0 0 10px 2px rgba(255,255,255,.45)}
.overall-label{font-size:2rem;font-weight:800;letter-spacing:.04em;margin:0}
.headline{font-size:1.2rem;font-weight:600;margin:.2em 0 0}
.plain{font-size:1.05rem;margin:.6em 0 1em}.plain li{margin:.25em 0}
.table-wrap{overflow-x:auto;margin:.6em 0 1.2em}
table.data{border-collapse:collapse;width:100%;font-size:.93rem}
table.data caption{text-align:left;font-weight:700;padding:.3em 0;color:var(--ink)}
table.data th,table.data td{border-bottom:1px solid var(--line);padding:.45em .6em;text-align:left;vertical-align:top}
table.facts th,table.facts td,table.metrics td:not(.num){overflow-wrap:anywhere}
table.facts tbody th{width:24%;min-width:9em;overflow-wrap:normal;hyphens:auto}
table.data thead th{background:#eef1f4;border-bottom:2px solid #aab3bc}
table.data tbody tr:nth-child(even){background:#fafbfc}
td.num{white-space:nowrap;font-variant-numeric:tabular-nums}
.ci{display:block;color:var(--muted);font-size:.85em;white-space:nowrap}
.reason{display:block;color:var(--muted);font-size:.85em;min-width:9em;white-space:normal}
table.metrics td:last-child{min-width:16em;width:38%}
.subtitle{margin:0 0 .6em}
.verdict{display:inline-block;font-weight:700;padding:.1em .55em;border-radius:999px;white-space:nowrap;border:1px solid;
-webkit-print-color-adjust:exact;print-color-adjust:exact}
.verdict::before{content:"";display:inline-block;width:.7em;height:.7em;border-radius:50%;margin-right:.4em;
vertical-align:-.05em;background:currentColor}
.v-pass{background:var(--pass-bg);color:var(--pass-ink);border-color:var(--pass)}
.v-warn{background:var(--warn-bg);color:var(--warn-ink);border-color:var(--warn)}
.v-fail{background:var(--fail-bg);color:var(--fail-ink);border-color:var(--fail)}
.v-na{background:var(--na-bg);color:var(--na-ink);border-color:var(--na)}
.tag{display:inline-block;font-size:.72rem;font-weight:600;color:#5a3e00;background:#fff4d6;border:1px solid #e8a200;
border-radius:4px;padding:0 .35em;margin-left:.4em;vertical-align:.1em;white-space:nowrap}
.key{color:var(--muted);font-size:.8em;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
details{margin-top:.3em;font-size:.88em}details summary{cursor:pointer;color:#0550ae}
details pre{white-space:pre-wrap;background:#f6f8fa;padding:.4em .6em;border-radius:4px;margin:.3em 0}
nav.toc{background:#f6f8fa;border:1px solid var(--line);border-radius:8px;padding:.6em 1.2em;margin:1.5em 0}
nav.toc h2{border:0;margin:.3em 0;font-size:1.15rem}nav.toc ol{margin:.2em 0 .4em}
.intro p{font-size:1.02rem}
figure{margin:1.2em 0;padding:.8em;border:1px solid var(--line);border-radius:8px;break-inside:avoid}
figure img{display:block;max-width:100%;height:auto;margin:0 auto}
figcaption{margin-top:.5em;font-size:.93rem;color:var(--ink)}
.notes li{margin:.3em 0}
.warnings li{margin:.35em 0}
.muted{color:var(--muted)}
.group{margin:1.2em 0}
table.signoff-table td.line{border-bottom:1px solid var(--ink);height:2.4em;min-width:8em}
.next-steps{margin:1em 0;padding:.6em 1.1em;border:2px solid #0550ae;border-radius:8px;background:#f1f6fd}
.next-steps h3{margin:.3em 0}.next-steps li{margin:.3em 0}
code.cmd{display:block;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85em;
background:#fff;border:1px solid var(--line);border-radius:4px;padding:.2em .5em;margin:.2em 0;overflow-wrap:anywhere}
footer{margin-top:3em;color:var(--muted);font-size:.85rem;border-top:1px solid var(--line);padding-top:.6em}
@media (max-width:700px){main{padding:14px}.overall{flex-direction:column;align-items:flex-start}}
@media print{
@page{size:A4;margin:14mm}
body{background:#fff;font-size:11pt}main{max-width:none;padding:0}
.summary{break-after:page}.report-section{break-before:page}
figure,tr,.overall,.banner{break-inside:avoid}
thead{display:table-header-group}
a{color:inherit;text-decoration:none}
.table-wrap{overflow:visible}
details summary{display:none}
}
"""

# opens the formula boxes when printing (the report reads fine without it)
_SCRIPT = ('<script>addEventListener("beforeprint",function(){document.querySelectorAll("details")'
           '.forEach(function(d){d.open=true})})</script>')


def render_html(doc: Mapping[str, Any], *, dpi: int = 100) -> str:
    """Render a report document as one self-contained HTML page.

    Parameters
    ----------
    doc : dict
        The report's JSON document (``Report.to_dict()``; a saved ``report.json`` loaded with
        :func:`json.load` works too).
    dpi : int, default 100
        Resolution of the embedded figures (640 pixels wide at 100).

    Returns
    -------
    str
        The HTML text (UTF-8 when written). It references nothing outside itself.

    Raises
    ------
    InvalidParameterError
        If ``doc`` is not a version-1 synthhealth report document, or a figure's data is malformed.

    Examples
    --------
    >>> page = render_html({"format": "synthhealth-report", "format_version": 1,
    ...                     "meta": {"title": "Demo"}, "summary": {"verdict": "pass", "checks": []}})
    >>> page.startswith("<!DOCTYPE html>") and 'id="summary-table"' in page
    True
    """
    doc = check_doc(doc)
    if isinstance(dpi, bool) or not isinstance(dpi, numbers.Integral) or not 20 <= dpi <= 600:
        raise InvalidParameterError(f"The 'dpi' parameter of render_html must be an int in [20, 600]. Got {dpi!r} instead.")
    meta, summary = doc["meta"], doc["summary"]
    title = str(meta.get("title") or "synthhealth privacy and utility report")
    used: set[str] = set()
    metric_ids: dict[str, str] = {}
    section_ids = []
    anchored: set[str] = set()
    for sec in doc["sections"]:
        sec = sec if isinstance(sec, Mapping) else {}
        section_ids.append(_slug(sec.get("key") or sec.get("title"), used, "sec-"))
        for m in sec.get("metrics") or []:
            if isinstance(m, Mapping) and m.get("key") is not None and str(m["key"]) not in metric_ids:
                metric_ids[str(m["key"])] = _slug(m["key"], used, "m-")

    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<meta name="generator" content="synthhealth">',
           f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"]
    out.append(_header(title, meta))
    out.append(_summary(summary, metric_ids))
    out.append(_toc(doc["sections"], section_ids, bool(_about_rows(meta))))
    out.append(_about(meta))
    for sec, sid in zip(doc["sections"], section_ids, strict=True):
        out.append(_section(sec if isinstance(sec, Mapping) else {}, sid, metric_ids, anchored, dpi))
    out.append(_warnings(doc["warnings"]))
    out.append(f'<footer>Generated by synthhealth {_e(meta.get("synthhealth_version") or "")}'
               f'{" on " + _e(meta.get("created")) if meta.get("created") else ""}. '
               "This file is self-contained: it loads nothing from the network.</footer>")
    out.append(f"</main>{_SCRIPT}</body></html>")
    return "\n".join(out)


def _header(title: str, meta: Mapping[str, Any]) -> str:
    parts = [f"<header><h1>{_e(title)}</h1>"]
    rows = _about_rows(meta)
    for n in notices(meta):
        cls = "banner-danger" if notice_is_danger(n) else "banner-info"
        parts.append(f'<div class="banner {cls}" role="alert">{_e(n)}</div>')
    line = [v for k, v in rows if k in ("Schema", "Generator", "Rows")]
    if line:
        parts.append(f'<p class="muted subtitle">{_e(" · ".join(line))}</p>')
    parts.append("</header>")
    return "".join(parts)


def _about_rows(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if meta.get("created"):
        rows.append(("Created", str(meta["created"])))
    schema = meta.get("schema") if isinstance(meta.get("schema"), Mapping) else {}
    if schema:
        s = f"{schema.get('name') or '?'} version {schema.get('version') or '?'}"
        if schema.get("hash"):
            s += f" (hash {str(schema['hash'])[:12]})"
        rows.append(("Schema", s))
    if meta.get("generator"):
        rows.append(("Generator", str(meta["generator"])))
    sizes = [(k, meta.get(f"n_{k}")) for k in ("train", "holdout", "synthetic")]
    sizes_text = ", ".join(f"{k} {format_value(v)}" for k, v in sizes if v is not None)
    if sizes_text:
        rows.append(("Rows", sizes_text))
    if "release" in meta:
        rows.append(("Report kind", "release (no statistics of the real data)" if meta.get("release")
                     else "internal review (contains statistics of the real data)"))
    if "seeded" in meta:
        rows.append(("Randomness", "seeded (reproducible, NOT private)" if meta.get("seeded")
                     else "fresh operating-system entropy"))
    if meta.get("synthhealth_version"):
        rows.append(("synthhealth", str(meta["synthhealth_version"])))
    return rows


def _about(meta: Mapping[str, Any]) -> str:
    rows = _about_rows(meta)
    if not rows:
        return ""
    body = "".join(f'<tr><th scope="row">{_e(k)}</th><td>{_e(v)}</td></tr>' for k, v in rows)
    return (f'<section id="about" aria-labelledby="about-h"><h2 id="about-h">About this report</h2>'
            f'<table class="about">{body}</table></section>')


def _verdict_badge(verdict: Any) -> str:
    v = _verdict(verdict)
    return f'<span class="verdict v-{"na" if v == "n/a" else v}">{_e(verdict_label(v))}</span>'


def _summary(summary: Mapping[str, Any], metric_ids: Mapping[str, str]) -> str:
    verdicts = summary.get("verdicts") if isinstance(summary.get("verdicts"), Mapping) else {}
    v = _verdict(verdicts.get("privacy") if verdicts and not summary.get("release") else summary.get("verdict"))
    cls = "na" if v == "n/a" else v
    lamps = "".join(f'<span class="lamp lamp-{x}{" on" if x == v else ""}"></span>' for x in ("fail", "warn", "pass"))
    if summary.get("release"):  # the release states the guarantee; it has no traffic light of its own
        label, lights, cls = "Release statement", "", "na"
    elif verdicts:
        label = (f"Privacy: {verdict_label(verdicts.get('privacy'))} · Fitness for use: "
                 f"{verdict_label(verdicts.get('utility'))}")
        lights = f'<div class="lights" aria-hidden="true">{lamps}</div>'
    else:
        label, lights = f"Overall: {verdict_label(v)}", f'<div class="lights" aria-hidden="true">{lamps}</div>'
    parts = ['<section id="summary" class="summary" aria-labelledby="summary-h">',
             '<h2 id="summary-h">Summary</h2>',
             f'<div class="overall overall-{cls}" role="status">{lights}'
             f'<div><p class="overall-label">{_e(label)}</p>'
             f'<p class="headline">{_e(summary.get("headline") or "")}</p></div></div>']
    plain = [str(p) for p in summary.get("plain") or []]
    if plain:
        parts.append('<ul class="plain">' + "".join(f"<li>{_e(p)}</li>" for p in plain) + "</ul>")
    checks = [c for c in summary.get("checks") or [] if isinstance(c, Mapping)]
    counts = {x: sum(_verdict(c.get("verdict")) == x for c in checks) for x in _VERDICTS}
    count_text = ", ".join(f"{counts[x]} {verdict_label(x).lower()}" for x in _VERDICTS if counts[x])
    parts.append('<div class="table-wrap"><table id="summary-table" class="data">'
                 f"<caption>Checks ({len(checks)}{': ' + _e(count_text) if count_text else ''})</caption>"
                 '<thead><tr><th scope="col">Check</th><th scope="col">Value</th><th scope="col">Threshold</th>'
                 '<th scope="col">Verdict</th><th scope="col">What it means</th></tr></thead><tbody>')
    for c in checks:
        key = str(c.get("metric") or "")
        name = _e(c.get("name") or key)
        if key in metric_ids:
            name = f'<a href="#{metric_ids[key]}">{name}</a>'
        parts.append(f'<tr><th scope="row">{name}<br><span class="key">{_e(key)}</span></th>'
                     f'<td class="num">{_e(format_value(c.get("value")))}</td><td>{_e(c.get("rule") or "")}</td>'
                     f"<td>{_verdict_badge(c.get('verdict'))}</td><td>{_e(c.get('why') or '')}</td></tr>")
    if not checks:
        parts.append('<tr><td colspan="5" class="muted">No checks were configured.</td></tr>')
    parts.append("</tbody></table></div>")
    parts.append(_next_steps(summary.get("next_steps")))
    parts.append("</section>")
    return "".join(parts)


def _toc(sections: Iterable[Any], ids: list[str], about: bool) -> str:
    items = ['<li><a href="#summary">Summary</a></li>']
    if about:
        items.append('<li><a href="#about">About this report</a></li>')
    for sec, sid in zip(sections, ids, strict=True):
        t = (sec.get("title") or sec.get("key")) if isinstance(sec, Mapping) else sid
        items.append(f'<li><a href="#{sid}">{_e(t)}</a></li>')
    items.append('<li><a href="#warnings">Warnings</a></li>')
    return f'<nav class="toc" aria-labelledby="toc-h"><h2 id="toc-h">Contents</h2><ol>{"".join(items)}</ol></nav>'


def _section(sec: Mapping[str, Any], sid: str, metric_ids: Mapping[str, str], anchored: set[str], dpi: int) -> str:
    title = sec.get("title") or sec.get("key") or "Section"
    parts = [f'<section id="{sid}" class="report-section" aria-labelledby="h-{sid}">',
             f'<h2 id="h-{sid}">{_e(title)}</h2>', f'<div class="intro">{_paragraphs(sec.get("intro"))}</div>']
    facts = [f for f in sec.get("facts") or [] if isinstance(f, (list, tuple)) and len(f) >= 2]
    if facts:
        parts.append(f'<div class="table-wrap"><table class="data facts"><caption>Key facts: {_e(title)}</caption>'
                     '<thead><tr><th scope="col">Item</th><th scope="col">Value</th></tr></thead><tbody>')
        parts.extend(f'<tr><th scope="row">{_e(f[0])}</th><td>{_e(format_value(f[1]))}</td></tr>' for f in facts)
        parts.append("</tbody></table></div>")
    metrics = [m for m in sec.get("metrics") or [] if isinstance(m, Mapping)]
    if metrics:
        parts.append(f'<div class="table-wrap"><table class="data metrics"><caption>Measurements: {_e(title)}</caption>'
                     '<thead><tr><th scope="col">Measure</th><th scope="col">Value</th>'
                     '<th scope="col">Reference</th><th scope="col">Direction</th>'
                     '<th scope="col">What it means</th></tr></thead><tbody>')
        parts.extend(_metric_row(m, metric_ids, anchored) for m in metrics)
        parts.append("</tbody></table></div>")
    for fig in sec.get("figures") or []:
        if isinstance(fig, Mapping):
            parts.append(_figure(fig, dpi))
    for g in sec.get("groups") or []:  # the regulatory appendix: one table per guidance document
        if isinstance(g, Mapping):
            parts.append(_group(g, sid))
    if isinstance(sec.get("signoff"), Mapping):
        parts.append(_signoff(sec["signoff"], sid))
    notes = [str(n) for n in sec.get("notes") or []]
    if notes:
        parts.append('<h3>Notes</h3><ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    parts.append("</section>")
    return "".join(parts)


def _group(g: Mapping[str, Any], sid: str) -> str:
    gid = f"{sid}-{re.sub(r'[^A-Za-z0-9_-]+', '-', str(g.get('key') or 'group'))}"
    rows = [r for r in g.get("rows") or [] if isinstance(r, (list, tuple)) and len(r) >= 2]
    parts = [f'<div class="group" id="{_e(gid)}"><h3>{_e(g.get("title") or g.get("key") or "")}</h3>',
             _paragraphs(g.get("intro"))]
    if rows:
        parts.append(f'<div class="table-wrap"><table class="data facts" aria-label="{_e(g.get("title") or "")}">'
                     '<thead><tr><th scope="col">Item</th><th scope="col">Value</th></tr></thead><tbody>')
        parts.extend(f'<tr><th scope="row">{_e(r[0])}</th><td>{_e(r[1])}</td></tr>' for r in rows)
        parts.append("</tbody></table></div>")
    parts.append("</div>")
    return "".join(parts)


def _signoff(so: Mapping[str, Any], sid: str) -> str:
    signers = [s for s in so.get("signers") or [] if isinstance(s, Mapping)]
    parts = [f'<div class="group signoff" id="{sid}-signoff"><h3>Sign-off</h3>', _paragraphs(so.get("intro")),
             '<table class="data signoff-table"><thead><tr><th scope="col">Role</th><th scope="col">Name</th>'
             '<th scope="col">Date</th><th scope="col">Signature</th></tr></thead><tbody>']
    for s in signers:
        parts.append(f'<tr><th scope="row">{_e(s.get("role"))}</th>'
                     + "".join(f'<td class="line">{_e(s.get(k) or "")}</td>' for k in ("name", "date", "signature"))
                     + "</tr>")
    parts.append("</tbody></table></div>")
    return "".join(parts)


def _next_steps(items: Any) -> str:
    items = [i for i in items or [] if isinstance(i, Mapping)]
    if not items:
        return ""
    parts = ['<section id="next-steps" class="next-steps" aria-labelledby="next-steps-h">'
             '<h3 id="next-steps-h">Next steps</h3><p class="muted">What to try for each check that failed or '
             "warned, with the commands (put your own file paths in place of the examples).</p><ul>"]
    for it in items:
        parts.append(f'<li><strong>{_e(it.get("name") or it.get("metric"))}</strong> '
                     f'{_verdict_badge(it.get("verdict"))}<ul>')
        for st in it.get("steps") or []:
            if isinstance(st, Mapping):
                cmd = f'<code class="cmd">{_e(st["command"])}</code>' if st.get("command") else ""
                parts.append(f"<li>{_e(st.get('text') or '')}{cmd}</li>")
        parts.append("</ul></li>")
    parts.append("</ul></section>")
    return "".join(parts)


def _metric_row(m: Mapping[str, Any], metric_ids: Mapping[str, str], anchored: set[str]) -> str:
    key = str(m.get("key") or "")
    rid = metric_ids.get(key)
    row_id = ""
    if rid and rid not in anchored:  # one anchor per metric key, on its first row
        anchored.add(rid)
        row_id = f' id="{rid}"'
    unit = str(m.get("unit") or "")
    value = _e(format_value(m.get("value"), unit))
    ci = format_ci(m.get("ci"))
    if ci:
        value += f'<span class="ci">{_e(ci)}</span>'
    details = m.get("details") if isinstance(m.get("details"), Mapping) else {}
    if m.get("value") is None and details.get("reason"):
        value += f'<span class="reason">not computed: {_e(details["reason"])}</span>'
    tag = '<span class="tag" title="a statistic of the real data">real data</span>' if m.get("real_data") else ""
    more = []
    if m.get("formula"):
        more.append(f"<pre>{_e(m['formula'])}</pre>")
    rng = m.get("range")
    if isinstance(rng, (list, tuple)) and len(rng) == 2:
        more.append(f"<div>Possible values: {_e(format_value(rng[0]))} to {_e(format_value(rng[1]))}</div>")
    box = f"<details><summary>How it is computed</summary>{''.join(more)}</details>" if more else ""
    return (f'<tr{row_id}><th scope="row">{_e(m.get("name") or key)}{tag}<br><span class="key">{_e(key)}</span></th>'
            f'<td class="num">{value}</td><td class="num">{_e(format_value(m.get("reference"), unit))}</td>'
            f"<td>{_e(direction_text(m.get('goal')))}</td><td>{_e(m.get('description') or '')}{box}</td></tr>")


def _figure(fig: Mapping[str, Any], dpi: int) -> str:
    png = figure_png(fig, dpi=dpi)
    b64 = base64.b64encode(png).decode("ascii")
    width = int.from_bytes(png[16:20], "big")
    height = int.from_bytes(png[20:24], "big")
    scale = 100 / dpi  # show at the 100-dpi size whatever the resolution
    tag = ' <span class="tag">real data</span>' if fig.get("real_data") else ""
    caption = f"<strong>{_e(fig.get('title') or fig.get('key') or '')}</strong>{tag}"
    if fig.get("caption"):
        caption += f" — {_e(fig['caption'])}"
    return (f"<figure><img src=\"data:image/png;base64,{b64}\" alt=\"{_e(figure_alt(fig))}\" "
            f'width="{round(width * scale)}" height="{round(height * scale)}" loading="eager">'
            f"<figcaption>{caption}</figcaption></figure>")


def _warnings(warnings: list[Any]) -> str:
    body = ('<ul class="warnings">' + "".join(f"<li>{_e(w)}</li>" for w in warnings) + "</ul>") if warnings \
        else '<p class="muted">No warnings.</p>'
    return f'<section id="warnings" class="report-section" aria-labelledby="warnings-h"><h2 id="warnings-h">Warnings</h2>{body}</section>'
