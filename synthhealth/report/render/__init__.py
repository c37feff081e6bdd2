"""Renderers of the report's JSON document: one self-contained HTML file, a PDF and the figures' PNGs.

They work from the document (``Report.to_dict()``), so a saved ``report.json`` can be rendered again.
"""

from .html import render_html
from .pdf import render_pdf
from .plots import figure_png

__all__ = ["render_html", "render_pdf", "figure_png"]
