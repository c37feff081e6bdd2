"""Render a report document as a PDF with matplotlib's :class:`~matplotlib.backends.backend_pdf.PdfPages`.

Pure Python (no system libraries): every page is a matplotlib figure of A4 size on which a small
flow layout writes wrapped text, paginated tables (the header repeats on each page) and the
report's figures (drawn by :func:`synthhealth.report.render.plots.figure_png`, two per row).
Page 1 is the summary: title, notices, the overall verdict, the plain-language sentences and the
checks table; each section then starts on a new page.
"""

from __future__ import annotations

import io
import numbers
import os
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure as MplFigure
from matplotlib.image import imread
from matplotlib.patches import Ellipse, Rectangle

from ...exceptions import InvalidParameterError
from .html import (
    check_doc,
    direction_text,
    format_ci,
    format_value,
    notice_is_danger,
    notices,
    verdict_label,
)
from .plots import figure_png

__all__ = ["render_pdf"]

_W, _H = 8.27, 11.69                      # A4 portrait, inches
_ML, _MR, _MT, _MB = 0.6, 0.6, 0.6, 0.75  # margins
_TW = _W - _ML - _MR                      # text width
_LS = 1.3                                 # line spacing (multiple of the font size)
_EM = {"normal": 0.54, "bold": 0.61}      # average character width (em) of DejaVu Sans, generous
_PAD = 0.05                               # cell padding, inches
_INK, _MUTED, _LINE = "#1f2328", "#555d66", "#c9d1d9"
_VERDICT_COLORS = {  # background, text, strong
    "pass": ("#e6f4ea", "#0f5323", "#1a7f37"),
    "warn": ("#fff4d6", "#6b4300", "#e8a200"),
    "fail": ("#fde7e6", "#8c1a13", "#c62828"),
    "n/a": ("#eef1f4", "#3d444d", "#6e7781"),
}


def render_pdf(doc: Mapping[str, Any], path: str | os.PathLike[str], *, dpi: int = 100) -> Path:
    """Write a report document as a PDF file.

    Parameters
    ----------
    doc : dict
        The report's JSON document (``Report.to_dict()`` or a loaded ``report.json``).
    path : str or path-like
        Where to write the PDF (overwritten). Its folder must exist.
    dpi : int, default 100
        Resolution of the figures' images (at 100 they are 640 pixels wide, about 190 pixels per inch
        on the page, where two figures share the width).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InvalidParameterError
        If ``doc`` is not a version-1 synthhealth report document or ``path``'s folder does not exist.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> doc = {"format": "synthhealth-report", "format_version": 1, "meta": {"title": "Demo"},
    ...        "summary": {"verdict": "pass", "headline": "Fine", "checks": []}, "sections": []}
    >>> out = render_pdf(doc, pathlib.Path(tempfile.mkdtemp()) / "r.pdf")
    >>> out.read_bytes()[:4]
    b'%PDF'
    """
    doc = check_doc(doc)
    if isinstance(dpi, bool) or not isinstance(dpi, numbers.Integral) or not 20 <= dpi <= 600:
        raise InvalidParameterError(f"The 'dpi' parameter of render_pdf must be an int in [20, 600]. Got {dpi!r} instead.")
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidParameterError(f"The 'path' parameter of render_pdf must be a str or path. Got {type(path).__name__} instead.")
    out = Path(path)
    if not out.parent.is_dir():
        raise InvalidParameterError(f"The 'path' parameter of render_pdf must be in an existing folder. Got {str(out)!r} instead.")
    meta = doc["meta"]
    title = str(meta.get("title") or "synthhealth privacy and utility report")
    shown = notices(meta)
    danger = next((n for n in shown if notice_is_danger(n)), "")
    with warnings.catch_warnings():
        # characters outside DejaVu Sans (e.g. emoji in an attribute name) are drawn as boxes, not errors
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")
        with PdfPages(out, metadata={"Title": title, "Creator": "synthhealth", "Subject": "privacy and utility report"}) as pdf:
            w = _Writer(pdf, footer=title, stamp=danger)
            _summary_pages(w, title, meta, shown, doc["summary"])
            for sec in doc["sections"]:
                if isinstance(sec, Mapping):
                    _section_pages(w, sec, dpi)
            _warnings(w, doc["warnings"], new_page=not doc["sections"])
            w.finish()
    return out


# -- a small flow layout ---------------------------------------------------------------------------


def _m(text: Any) -> str:
    """Text for matplotlib: ``$`` escaped so that user strings are never parsed as mathtext."""
    return ("" if text is None else str(text)).replace("$", r"\$")


def _wrap(text: Any, width_in: float, size: float, weight: str = "normal") -> list[str]:
    chars = max(4, int(width_in / (_EM[weight] * size / 72)))
    lines: list[str] = []
    for para in ("" if text is None else str(text)).splitlines() or [""]:
        lines.extend(textwrap.wrap(para, chars, break_long_words=True, break_on_hyphens=True) or [""])
    return lines


def _lh(size: float) -> float:
    return _LS * size / 72


class _Writer:
    """Keeps the current page and the vertical position ``y`` (inches from the top)."""

    def __init__(self, pdf: PdfPages, footer: str, stamp: str) -> None:
        self.pdf, self.footer, self.stamp = pdf, footer, stamp
        self.fig: MplFigure | None = None
        self.page = 0
        self.y = _MT

    # pages
    def new_page(self) -> None:
        self.finish()
        self.fig = MplFigure(figsize=(_W, _H), facecolor="white")
        self.page += 1
        self.y = _MT
        foot = _wrap(self.footer, _TW - 1.2, 7.5)
        self.text(_ML, _H - _MB + 0.3, foot[0][:-1] + "…" if len(foot) > 1 else foot[0], size=7.5, color=_MUTED)
        self.text(_W - _MR, _H - _MB + 0.3, f"page {self.page}", size=7.5, color=_MUTED, ha="right")
        if self.stamp:
            self.text(_W / 2, _HEADER_TOP, "\n".join(_header_lines(self.stamp)), size=_HEADER_SIZE, color="#b3261e",
                      weight="bold", ha="center")

    def finish(self) -> None:
        if self.fig is not None:
            self.pdf.savefig(self.fig)
            self.fig.clear()
            self.fig = None

    @property
    def room(self) -> float:
        return _H - _MB - self.y

    def ensure(self, height: float) -> None:
        if self.fig is None or height > self.room:
            self.new_page()

    # primitives (inches from the top-left corner)
    def text(self, x: float, y: float, s: str, *, size: float = 10, color: str = _INK, weight: str = "normal",
             ha: str = "left") -> None:
        assert self.fig is not None
        self.fig.text(x / _W, 1 - y / _H, _m(s), fontsize=size, color=color, fontweight=weight, ha=ha, va="top",
                      linespacing=_LS)

    def rect(self, x: float, y: float, w: float, h: float, *, face: str, edge: str = "none", lw: float = 0.0) -> None:
        assert self.fig is not None
        self.fig.add_artist(Rectangle((x / _W, 1 - (y + h) / _H), w / _W, h / _H, facecolor=face, edgecolor=edge,
                                      linewidth=lw, transform=self.fig.transFigure))

    def hline(self, y: float, x0: float = _ML, x1: float = _W - _MR, color: str = _LINE, lw: float = 0.6) -> None:
        assert self.fig is not None
        self.fig.add_artist(Rectangle((x0 / _W, 1 - y / _H), (x1 - x0) / _W, 0, edgecolor=color, linewidth=lw,
                                      facecolor="none", transform=self.fig.transFigure))

    # flow elements
    def space(self, h: float) -> None:
        self.y += h

    def paragraph(self, text: Any, *, size: float = 10, color: str = _INK, weight: str = "normal", indent: float = 0.0,
                  bullet: str = "", after: float = 0.08) -> None:
        lines = _wrap(text, _TW - indent - (0.2 if bullet else 0), size, weight)
        lh = _lh(size)
        while lines:  # split a long paragraph across pages
            self.ensure(lh)
            take = max(1, int(self.room / lh))
            chunk, lines = lines[:take], lines[take:]
            if bullet:
                self.text(_ML + indent, self.y, bullet, size=size, color=color, weight=weight)
            self.text(_ML + indent + (0.2 if bullet else 0), self.y, "\n".join(chunk), size=size, color=color,
                      weight=weight)
            self.y += lh * len(chunk)
            bullet = ""
        self.y += after

    def heading(self, text: Any, size: float = 15) -> None:
        lines = _wrap(text, _TW, size, "bold")
        self.ensure(_lh(size) * len(lines) + 0.6)  # keep a heading with what follows
        self.text(_ML, self.y, "\n".join(lines), size=size, weight="bold")
        self.y += _lh(size) * len(lines) + 0.04
        self.hline(self.y, color="#8c959f", lw=1.0)
        self.y += 0.12

    def box(self, text: Any, *, face: str, ink: str, edge: str, size: float = 11) -> None:
        lines = _wrap(text, _TW - 0.3, size, "bold")
        h = _lh(size) * len(lines) + 0.2
        self.ensure(h)
        self.rect(_ML, self.y, _TW, h, face=face, edge=edge, lw=1.5)
        self.text(_ML + 0.15, self.y + 0.1, "\n".join(lines), size=size, color=ink, weight="bold")
        self.y += h + 0.08

    def table(self, columns: Sequence[tuple[str, float]], rows: Sequence[Sequence[Any]], *, size: float = 8.5,
              verdict_col: int | None = None, title: str = "") -> None:
        """Columns are (header, relative width); a row taller than a page is cut with an ellipsis."""
        total = sum(w for _, w in columns)
        widths = [w / total * _TW for _, w in columns]
        xs = np.concatenate([[_ML], _ML + np.cumsum(widths)])
        lh = _lh(size)
        head = [_wrap(h, wd - 2 * _PAD, size, "bold") for (h, _), wd in zip(columns, widths, strict=True)]
        head_h = lh * max(len(h) for h in head) + 2 * _PAD

        def header() -> None:
            if title:
                self.text(_ML, self.y, title, size=size + 1.5, weight="bold")
                self.y += _lh(size + 1.5) + 0.02
            self.rect(_ML, self.y, _TW, head_h, face="#eef1f4")
            for x, lines in zip(xs, head, strict=False):
                self.text(x + _PAD, self.y + _PAD, "\n".join(lines), size=size, weight="bold")
            self.y += head_h
            self.hline(self.y, color="#8c959f", lw=0.9)

        title_h = _lh(size + 1.5) + 0.02 if title else 0.0
        first = True
        for row in rows:
            cells = []
            for j, (value, wd) in enumerate(zip(row, widths, strict=True)):
                weight = "bold" if j == verdict_col else "normal"
                cells.append(_wrap(value, wd - 2 * _PAD - (0.12 if j == verdict_col else 0), size, weight))
            n = max(len(c) for c in cells)
            max_lines = max(1, int((_H - _MT - _MB - head_h - title_h - 2 * _PAD) / lh))
            if n > max_lines:
                cells = [c if len(c) <= max_lines else c[: max_lines - 1] + [c[max_lines - 1][:-1] + "…"] for c in cells]
                n = max_lines
            row_h = lh * n + 2 * _PAD
            if first or row_h > self.room:
                if not first or self.fig is None or head_h + title_h + row_h > self.room:
                    self.new_page()
                header()
                first = False
            for j, (x, lines) in enumerate(zip(xs, cells, strict=False)):
                if j == verdict_col:
                    v = str(row[j]).lower()
                    v = {"warning": "warn"}.get(v, v)
                    face, ink, strong = _VERDICT_COLORS.get(v, _VERDICT_COLORS["n/a"])
                    self.rect(x + 0.02, self.y + 0.02, widths[j] - 0.04, row_h - 0.04, face=face, edge=strong, lw=0.8)
                    self.text(x + _PAD + 0.06, self.y + _PAD, "\n".join(lines), size=size, color=ink, weight="bold")
                else:
                    self.text(x + _PAD, self.y + _PAD, "\n".join(lines), size=size)
            self.y += row_h
            self.hline(self.y)
        self.y += 0.15

    def images(self, figures: Sequence[Mapping[str, Any]], dpi: int) -> None:
        """The figures two per row, each with its title (in the image) and caption below; heat maps
        (their cell labels must stay readable) take a row of their own, at the full text width."""
        gap = 0.25
        max_h = _H - _MT - _MB - 0.2
        rows: list[list[Mapping[str, Any]]] = []
        for fig in figures:
            if fig.get("kind") in _WIDE_KINDS:
                rows.append([fig])
            elif rows and len(rows[-1]) == 1 and rows[-1][0].get("kind") not in _WIDE_KINDS:
                rows[-1].append(fig)
            else:
                rows.append([fig])
        for row in rows:
            cells = []
            cw = _TW if row[0].get("kind") in _WIDE_KINDS else (_TW - gap) / 2
            for fig in row:
                img = imread(io.BytesIO(figure_png(fig, dpi=dpi)), format="png")
                h = cw * img.shape[0] / img.shape[1]
                caption = _wrap(_caption(fig), cw, 7.5)
                if len(caption) > 12:  # the HTML shows the whole caption; here it must leave room for the image
                    caption = caption[:11] + [caption[11][:-1] + "…"]
                cap_h = _lh(7.5) * len(caption)
                w = cw
                if h + cap_h + 0.1 > max_h:  # very tall: shrink to the page
                    h = max_h - cap_h - 0.1
                    w = h * img.shape[1] / img.shape[0]
                cells.append((img, w, h, caption, cap_h))
            row_h = max(h + cap_h for _, _, h, _, cap_h in cells) + 0.3
            self.ensure(row_h)
            for k, (img, w, h, caption, _) in enumerate(cells):
                x = _ML + k * (cw + gap)
                assert self.fig is not None
                ax = self.fig.add_axes((x / _W, 1 - (self.y + h) / _H, w / _W, h / _H))
                ax.imshow(img, interpolation="none", aspect="auto")
                ax.set_axis_off()
                self.text(x, self.y + h + 0.05, "\n".join(caption), size=7.5, color=_MUTED)
            self.y += row_h


_WIDE_KINDS = ("heatmap", "heatmaps")  # drawn at the full text width in the PDF

_HEADER_SIZE = 7.0   # points: the running header (the first "not for release" notice) on every page
_HEADER_TOP = 0.12   # inches from the top edge; the header's lines end above the top margin


def _header_lines(stamp: str) -> list[str]:
    """The running header's lines: the whole notice, wrapped to the text width, as many lines as fit
    above the top margin (the last one ends with an ellipsis only when even those do not suffice)."""
    lines = _wrap(stamp, _TW, _HEADER_SIZE, "bold")
    room = max(1, int((_MT - _HEADER_TOP - 0.03) / _lh(_HEADER_SIZE)))
    if len(lines) > room:
        lines = lines[: room - 1] + [lines[room - 1][:-1] + "…"]
    return lines


def _caption(fig: Mapping[str, Any]) -> str:
    text = str(fig.get("title") or fig.get("key") or "")
    if fig.get("caption"):
        text += " — " + str(fig["caption"])
    if fig.get("real_data"):
        text += " [real data]"
    return text


# -- the pages -------------------------------------------------------------------------------------


def _summary_pages(w: _Writer, title: str, meta: Mapping[str, Any], shown: list[str], summary: Mapping[str, Any]) -> None:
    w.new_page()
    lines = _wrap(title, _TW, 19, "bold")
    w.paragraph(" ".join(lines[:3]) + (" …" if len(lines) > 3 else ""), size=19, weight="bold", after=0.04)
    about = []
    if meta.get("created"):
        about.append(f"created {meta['created']}")
    schema = meta.get("schema") if isinstance(meta.get("schema"), Mapping) else {}
    if schema:
        about.append(f"schema {schema.get('name') or '?'} v{schema.get('version') or '?'}")
    if meta.get("generator"):
        about.append(f"generator {meta['generator']}")
    sizes = ", ".join(f"{k} {format_value(meta.get(f'n_{k}'))}" for k in ("train", "holdout", "synthetic")
                      if meta.get(f"n_{k}") is not None)
    if sizes:
        about.append(f"rows: {sizes}")
    if meta.get("synthhealth_version"):
        about.append(f"synthhealth {meta['synthhealth_version']}")
    if about:
        w.paragraph(" · ".join(about), size=8.5, color=_MUTED, after=0.12)
    for n in shown:
        if notice_is_danger(n):
            w.box(n, face="#b3261e", ink="white", edge="#7f1d17")
        else:
            w.box(n, face="#fff4d6", ink="#6b4300", edge="#e8a200")

    # the verdicts: a traffic light (of the privacy verdict) and the words; the release has no light
    verdicts = summary.get("verdicts") if isinstance(summary.get("verdicts"), Mapping) else {}
    release = bool(summary.get("release"))
    v = str((verdicts.get("privacy") if verdicts and not release else summary.get("verdict")) or "n/a").lower()
    v = v if v in _VERDICT_COLORS else "n/a"
    if release:
        label = "Release statement"
    elif verdicts:
        label = (f"Privacy: {verdict_label(verdicts.get('privacy'))} · Fitness for use: "
                 f"{verdict_label(verdicts.get('utility'))}")
    else:
        label = f"Overall: {verdict_label(v)}"
    face, ink, strong = _VERDICT_COLORS["n/a" if release else v]
    head = _wrap(summary.get("headline") or "", _TW - 1.4, 12, "bold")
    h = max(1.25, 0.55 + _lh(12) * len(head) + 0.2)
    w.ensure(h + 0.1)
    w.space(0.05)
    w.rect(_ML, w.y, _TW, h, face=face, edge=strong, lw=2.5)
    assert w.fig is not None
    if not release:
        w.rect(_ML + 0.2, w.y + (h - 1.05) / 2, 0.42, 1.05, face="#2b2f33")
        for k, (lamp, col) in enumerate((("fail", "#ff3b30"), ("warn", "#ffcc00"), ("pass", "#34c759"))):
            cy = w.y + (h - 1.05) / 2 + 0.19 + k * 0.335
            w.fig.add_artist(Ellipse(((_ML + 0.41) / _W, 1 - cy / _H), 0.26 / _W, 0.26 / _H, facecolor=col,
                                     alpha=1.0 if lamp == v else 0.22, transform=w.fig.transFigure, edgecolor="none"))
    w.text(_ML + 0.9, w.y + 0.15, label, size=22 if len(label) < 30 else 16, color=ink, weight="bold")
    w.text(_ML + 0.9, w.y + 0.58, "\n".join(head), size=12, color=ink, weight="bold")
    w.y += h + 0.18

    for sentence in summary.get("plain") or []:
        w.paragraph(sentence, size=10.5, bullet="•", after=0.04)
    w.space(0.12)
    checks = [c for c in summary.get("checks") or [] if isinstance(c, Mapping)]
    rows = [[f"{c.get('name') or c.get('metric') or ''}\n{c.get('metric') or ''}", format_value(c.get("value")),
             c.get("rule") or "", verdict_label(c.get("verdict")), c.get("why") or ""] for c in checks]
    if rows:
        w.table([("Check", 2.2), ("Value", 0.9), ("Threshold", 1.6), ("Verdict", 1.05), ("What it means", 3.2)], rows,
                verdict_col=3, title=f"Checks ({len(rows)})")
    else:
        w.paragraph("No checks were configured.", size=10, color=_MUTED)
    _next_steps(w, summary.get("next_steps"))


def _next_steps(w: _Writer, items: Any) -> None:
    """The "next steps" box: for each failed or warned check, what to try, with the commands."""
    items = [i for i in items or [] if isinstance(i, Mapping)]
    if not items:
        return
    w.ensure(0.8)
    w.paragraph("Next steps", size=12, weight="bold", color="#0550ae", after=0.02)
    w.paragraph("What to try for each check that failed or warned, with the commands (put your own file paths in place of the examples).",
                size=8.5, color=_MUTED, after=0.06)
    for it in items:
        w.paragraph(f"{it.get('name') or it.get('metric')} ({verdict_label(it.get('verdict'))})", size=9.5,
                    weight="bold", after=0.02)
        for st in it.get("steps") or []:
            if not isinstance(st, Mapping):
                continue
            w.paragraph(st.get("text") or "", size=8.5, bullet="•", indent=0.1, after=0.01)
            if st.get("command"):
                w.paragraph("$ " + str(st["command"]), size=7.5, color="#0550ae", indent=0.3, after=0.03)


def _section_pages(w: _Writer, sec: Mapping[str, Any], dpi: int) -> None:
    w.new_page()
    title = sec.get("title") or sec.get("key") or "Section"
    w.heading(title)
    for para in str(sec.get("intro") or "").split("\n\n"):
        if para.strip():
            w.paragraph(para.strip(), size=10)
    facts = [f for f in sec.get("facts") or [] if isinstance(f, (list, tuple)) and len(f) >= 2]
    if facts:
        w.table([("Item", 1.0), ("Value", 1.6)], [[f[0], format_value(f[1])] for f in facts], size=9, title="Key facts")
    metrics = [m for m in sec.get("metrics") or [] if isinstance(m, Mapping)]
    if metrics:
        rows = []
        for m in metrics:
            unit = str(m.get("unit") or "")
            value = format_value(m.get("value"), unit)
            ci = format_ci(m.get("ci"))
            details = m.get("details") if isinstance(m.get("details"), Mapping) else {}
            if ci:
                value += "\n" + ci
            elif m.get("value") is None and details.get("reason"):
                value += "\nnot computed: " + str(details["reason"])
            name = str(m.get("name") or m.get("key") or "") + (" [real data]" if m.get("real_data") else "")
            rows.append([f"{name}\n{m.get('key') or ''}", value, format_value(m.get("reference"), unit),
                         direction_text(m.get("goal")), m.get("description") or ""])
        w.table([("Measure", 2.0), ("Value", 1.3), ("Reference", 0.95), ("Direction", 1.15), ("What it means", 3.1)],
                rows, title="Measurements")
    figures = [f for f in sec.get("figures") or [] if isinstance(f, Mapping)]
    if figures:
        w.images(figures, dpi)
    for g in sec.get("groups") or []:  # the regulatory appendix: one table per guidance document
        if not isinstance(g, Mapping):
            continue
        rows = [[r[0], r[1]] for r in g.get("rows") or [] if isinstance(r, (list, tuple)) and len(r) >= 2]
        w.ensure(0.9)
        w.paragraph(g.get("title") or g.get("key") or "", size=11.5, weight="bold", after=0.04)
        if g.get("intro"):
            w.paragraph(g["intro"], size=9, color=_MUTED, after=0.04)
        if rows:
            w.table([("Item", 1.0), ("Value", 2.6)], rows, size=8.5)
    so = sec.get("signoff")
    if isinstance(so, Mapping):
        signers = [x for x in so.get("signers") or [] if isinstance(x, Mapping)]
        w.ensure(0.9 + 0.5 * len(signers))
        w.paragraph("Sign-off", size=11.5, weight="bold", after=0.04)
        if so.get("intro"):
            w.paragraph(so["intro"], size=9, after=0.06)
        # blank lines to sign on: the name is filled in when known, the rest by hand
        w.table([("Role", 1.6), ("Name", 1.4), ("Date", 0.8), ("Signature", 1.4)],
                [[x.get("role") or "", (x.get("name") or "") + "\n\n\n", x.get("date") or "", x.get("signature") or ""]
                 for x in signers], size=9)
    notes = [str(n) for n in sec.get("notes") or []]
    if notes:
        w.ensure(0.6)
        w.paragraph("Notes", size=11, weight="bold", after=0.04)
        for n in notes:
            w.paragraph(n, size=9.5, bullet="•", after=0.03)


def _warnings(w: _Writer, items: list[Any], new_page: bool) -> None:
    if new_page:
        w.new_page()
    else:
        w.space(0.2)
    w.heading("Warnings", size=13)
    if not items:
        w.paragraph("No warnings.", size=10, color=_MUTED)
    for item in items:
        w.paragraph(item, size=9.5, bullet="•", after=0.03)
