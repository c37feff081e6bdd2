"""MkDocs hook: render the Sphinx roles of the package's docstrings as plain code.

The docstrings use Sphinx cross-reference roles (``:class:`PatientRecord```, ``:func:`flatten```),
which mkdocstrings does not interpret: without this hook the API pages would show
``:class:PatientRecord``. The role name is dropped and a leading ``~`` (Sphinx's "show the last
component") is honoured. Only the rendered HTML of each page is changed, never the Python sources.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|data|mod|obj|exc|const):(<code>)(~?)([^<]*)(</code>)")


def _replace(match: re.Match[str]) -> str:
    opening, tilde, target, closing = match.groups()
    if tilde:
        target = target.rsplit(".", 1)[-1]
    return f"{opening}{target}{closing}"


def on_page_content(html: str, **kwargs: Any) -> str:
    """Strip Sphinx role prefixes in front of inline code."""
    return _ROLE.sub(_replace, html)
