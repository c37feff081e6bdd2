"""Draw the report's figures (:class:`synthhealth.report.model.Figure` dicts) as PNG images.

Only matplotlib's object API is used (:class:`matplotlib.figure.Figure` with the Agg canvas): no
pyplot, so nothing is registered in pyplot's global figure list and nothing leaks between calls or
threads. Colours come from the Okabe-Ito palette (safe for the common colour-vision deficiencies);
series are also told apart by line style or hatching, so the plots survive greyscale printing.
"""

from __future__ import annotations

import io
import json
import math
import numbers
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence, Sized
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap
from matplotlib.figure import Figure as MplFigure

from ...exceptions import InvalidParameterError

__all__ = ["figure_png", "FIGURE_KINDS", "PALETTE"]

#: Okabe & Ito (2008) colour-blind-safe palette (black moved last).
PALETTE: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
_LINESTYLES = ("-", "--", "-.", ":")
_HATCHES = ("", "//", "..", "xx", "\\\\", "++", "oo", "--")
FIGURE_KINDS = ("bars", "heatmap", "lines", "hist", "heatmaps")

_WIDTH_IN = 6.4          # 640 px at the default dpi of 100
_FONT = 10.0
_MAX_LABEL = 32          # characters of a tick label before it is shortened with an ellipsis
_MAX_LEGEND = 8          # legend entries drawn (more series are still drawn)


_CACHE: OrderedDict[tuple[str, int], bytes] = OrderedDict()
_CACHE_MAX = 256  # figures; the HTML and the PDF of one report draw the same figures


def figure_png(fig: Mapping[str, Any], *, dpi: int = 100) -> bytes:
    """Draw one report figure as a PNG image (memoised: the HTML and the PDF share the drawings).

    Parameters
    ----------
    fig : dict
        A figure in its JSON form (:meth:`synthhealth.report.model.Figure.to_dict`): ``key``,
        ``title``, ``kind`` (``"bars"``, ``"heatmap"``, ``"lines"`` or ``"hist"``), ``data`` (the
        keys each kind expects are listed on :class:`~synthhealth.report.model.Figure`) and
        ``caption``. ``None`` values are drawn as gaps (blank cells in a heatmap).
    dpi : int, default 100
        Resolution. The image is 6.4 inches wide (640 pixels at 100 dpi); its height depends on the
        kind and on the number of categories or rows.

    Returns
    -------
    bytes
        The PNG file's bytes.

    Raises
    ------
    InvalidParameterError
        If ``kind`` is unknown, a data key is missing or the series' lengths disagree.

    Examples
    --------
    >>> png = figure_png({"key": "k", "title": "Two bars", "kind": "bars",
    ...                   "data": {"categories": ["a", "b"], "series": {"real": [1.0, 2.0]}}})
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    if isinstance(dpi, bool) or not isinstance(dpi, numbers.Integral) or not 20 <= dpi <= 600:
        raise InvalidParameterError(f"The 'dpi' parameter of figure_png must be an int in [20, 600]. Got {dpi!r} instead.")
    if not isinstance(fig, Mapping):
        raise InvalidParameterError(f"The 'fig' parameter of figure_png must be a dict. Got {type(fig).__name__} instead.")
    kind = fig.get("kind")
    if kind not in FIGURE_KINDS:
        raise InvalidParameterError(
            f"The 'fig[\"kind\"]' parameter of figure_png must be one of {', '.join(map(repr, FIGURE_KINDS))}. "
            f"Got {kind!r} instead."
        )
    data = fig.get("data")
    if not isinstance(data, Mapping):
        raise InvalidParameterError(
            f"The 'fig[\"data\"]' parameter of figure_png must be a dict. Got {type(data).__name__} instead."
        )
    try:
        key: tuple[str, int] | None = (json.dumps(fig, sort_keys=True, default=str), int(dpi))
    except (TypeError, ValueError):
        key = None
    if key is not None and key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    png = _draw(fig, kind, data, int(dpi))
    if key is not None:
        _CACHE[key] = png
        while len(_CACHE) > _CACHE_MAX:
            _CACHE.popitem(last=False)
    return png


def _draw(fig: Mapping[str, Any], kind: str, data: Mapping[str, Any], dpi: int) -> bytes:
    drawer = {"bars": _bars, "heatmap": _heatmap, "lines": _lines, "hist": _hist, "heatmaps": _heatmaps}[kind]
    mfig = MplFigure(figsize=(_WIDTH_IN, 4.0), dpi=dpi, facecolor="white")
    try:
        with warnings.catch_warnings():
            # characters outside DejaVu Sans (emoji in a category name, say) are drawn as boxes, not errors
            warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")
            FigureCanvasAgg(mfig)
            drawer(mfig, data)
            title = str(fig.get("title") or "")
            if title:
                h = mfig.get_size_inches()[1]
                mfig.text(0.12 / _WIDTH_IN, 1 - 0.1 / h, _shorten(title, 64), fontsize=_FONT + 2, ha="left", va="top")
            buf = io.BytesIO()
            mfig.savefig(buf, format="png", dpi=dpi, facecolor="white", metadata={"Software": None})
        return buf.getvalue()
    finally:
        mfig.clear()
        del mfig


# -- data checks ---------------------------------------------------------------------------------


def _need(data: Mapping[str, Any], key: str, kind: str) -> Any:
    if key not in data:
        raise InvalidParameterError(
            f"The 'fig[\"data\"]' parameter of figure_png must have the key {key!r} for a {kind!r} figure. "
            f"Got keys {sorted(map(str, data))} instead."
        )
    return data[key]


def _floats(values: Any, where: str) -> np.ndarray:
    """A float array with ``None`` (and anything not a number) as NaN."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence | np.ndarray):
        raise InvalidParameterError(
            f"The {where!r} parameter of figure_png must be a list of numbers. Got {type(values).__name__} instead."
        )
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        if isinstance(v, numbers.Real) and not isinstance(v, bool):
            out[i] = float(v)
    return out


def _series(data: Mapping[str, Any], kind: str) -> dict[str, Any]:
    series = _need(data, "series", kind)
    if not isinstance(series, Mapping):
        raise InvalidParameterError(
            f"The 'fig[\"data\"][\"series\"]' parameter of figure_png must be a dict of name to values. "
            f"Got {type(series).__name__} instead."
        )
    return {str(k): v for k, v in series.items()}


def _same_length(values: Sized, n: int, where: str, what: str) -> None:
    if len(values) != n:
        raise InvalidParameterError(
            f"The {where!r} parameter of figure_png must have one value per {what} ({n}). Got {len(values)} values instead."
        )


def _shorten(text: Any, n: int = _MAX_LABEL) -> str:
    """One line of at most ``n`` characters, ``$`` escaped (user text is never parsed as mathtext)."""
    s = " ".join(str(text).split())
    s = s if len(s) <= n else s[: n - 1] + "…"
    return s.replace("$", r"\$")


def _no_data(mfig: MplFigure) -> None:
    ax = mfig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, "No data to show", ha="center", va="center", fontsize=_FONT + 1, color="#444444",
            transform=ax.transAxes)


def _legend_layout(names: Sequence[str]) -> tuple[int, int]:
    """(columns, rows) of the legend drawn above the axes; (0, 0) when there is one series or none."""
    if len(names) < 2:
        return 0, 0
    shown = names[:_MAX_LEGEND]
    item = max(_text_in(len(_shorten(x, 40)), _FONT - 1) for x in shown) + 0.6
    ncol = max(1, min(len(shown), int((_WIDTH_IN - 1.2) // item)))
    return ncol, math.ceil(len(shown) / ncol)


def _legend(ax: Any, names: Sequence[str]) -> None:
    """A legend in a band between the title and the axes (where it hides no data), the figure's full width."""
    ncol, _ = _legend_layout(names)
    if ncol:
        handles, labels = ax.get_legend_handles_labels()
        mfig = ax.get_figure()
        h = mfig.get_size_inches()[1]
        mfig.legend(handles[:_MAX_LEGEND], [_shorten(x, 40) for x in labels[:_MAX_LEGEND]], fontsize=_FONT - 1,
                    frameon=False, loc="upper left", bbox_to_anchor=(0.1 / _WIDTH_IN, 1 - 0.34 / h), ncol=ncol,
                    borderaxespad=0.0, borderpad=0.0, handlelength=2.6, columnspacing=1.2)


def _style(ax: Any) -> None:
    ax.tick_params(labelsize=_FONT - 1)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)


def _text_in(chars: int, size: float) -> float:
    """Inches taken by ``chars`` characters at ``size`` points (DejaVu Sans, generous)."""
    return chars * size * 0.6 / 72


def _margins(mfig: MplFigure, *, left: float = 0.85, bottom: float = 0.7, right: float = 0.25,
             top: float = 0.5, names: Sequence[str] = ()) -> None:
    """Place the axes by margins in inches (cheaper than a tight bounding box, which draws twice).

    ``names`` are the legend's entries: their rows are added to the top margin.
    """
    top += 0.24 * _legend_layout(names)[1] + (0.08 if len(names) > 1 else 0.0)
    w, h = mfig.get_size_inches()
    left, right = min(left, 0.45 * w), min(right, 0.3 * w)
    bottom, top = min(bottom, 0.45 * h), min(top, 0.4 * h)
    mfig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h)


# -- the four kinds ------------------------------------------------------------------------------


def _bars(mfig: MplFigure, data: Mapping[str, Any]) -> None:
    cats = [str(c) for c in _need(data, "categories", "bars")]
    series = _series(data, "bars")
    values = {}
    for name, vals in series.items():
        arr = _floats(vals, f'fig["data"]["series"][{name!r}]')
        _same_length(arr, len(cats), f'fig["data"]["series"][{name!r}]', "category")
        values[name] = arr
    if not cats or not values:
        _no_data(mfig)
        return
    n, k = len(cats), len(values)
    labels = [_shorten(c) for c in cats]
    # vertical bars only while every label fits under its bar
    horizontal = n > 8 or sum(_text_in(len(c) + 2, _FONT - 1) for c in labels) > _WIDTH_IN - 1.3
    width = 0.8 / k
    fs = _FONT - 1 if n <= 30 else max(6.0, _FONT - 1 - (n - 30) / 10)
    if horizontal:
        mfig.set_size_inches(_WIDTH_IN, min(max(0.22 * n * max(1.0, 0.6 * k) + 1.3, 3.0), 14.0))
        _margins(mfig, left=0.25 + _text_in(max(len(c) for c in labels), fs),
                 bottom=0.75 if data.get("ylabel") else 0.5, names=list(values))
    else:
        mfig.set_size_inches(_WIDTH_IN, 3.8)
        _margins(mfig, bottom=0.75 if data.get("xlabel") else 0.5, names=list(values))
    ax = mfig.add_subplot()
    pos = np.arange(n)
    for j, (name, arr) in enumerate(values.items()):
        offset = (j - (k - 1) / 2) * width
        style = {"color": PALETTE[j % len(PALETTE)], "hatch": _HATCHES[j % len(_HATCHES)],
                 "edgecolor": "white" if j == 0 else "#333333", "linewidth": 0.5, "label": name}
        lo, hi = _intervals(data, name, arr)
        err = None
        if lo is not None and hi is not None:
            err = np.vstack([np.clip(arr - lo, 0, None), np.clip(hi - arr, 0, None)])
            err = np.nan_to_num(err, nan=0.0)
        ekw = {"ecolor": "#222222", "capsize": 2.5, "error_kw": {"linewidth": 0.9}} if err is not None else {}
        if horizontal:
            ax.barh(pos + offset, np.nan_to_num(arr, nan=0.0), height=width, xerr=err, **ekw, **style)
        else:
            ax.bar(pos + offset, np.nan_to_num(arr, nan=0.0), width=width, yerr=err, **ekw, **style)
    floor = data.get("floor")
    if isinstance(floor, Mapping) and floor.get("values") is not None:
        fv = _floats(floor["values"], 'fig["data"]["floor"]["values"]')
        _same_length(fv, n, 'fig["data"]["floor"]["values"]', "category")
        label = _shorten(floor.get("label") or "sampling-noise floor", 40)
        span = 0.8 / 2
        for i, v in enumerate(fv):
            if math.isfinite(v):
                if horizontal:
                    ax.plot([v, v], [i - span, i + span], color="#000000", linewidth=2.0, linestyle=(0, (2, 1)),
                            label=label if i == int(np.nanargmax(np.isfinite(fv))) else None)
                else:
                    ax.plot([i - span, i + span], [v, v], color="#000000", linewidth=2.0, linestyle=(0, (2, 1)),
                            label=label if i == int(np.nanargmax(np.isfinite(fv))) else None)
    _style(ax)
    if horizontal:
        ax.set_yticks(pos, labels, fontsize=fs)
        ax.invert_yaxis()  # first category on top, as read
        ax.set_ylim(n - 0.5, -0.5)
        ax.grid(False, axis="y")
        if data.get("ylabel"):
            ax.set_xlabel(_shorten(data["ylabel"], 80), fontsize=_FONT)
    else:
        ax.set_xticks(pos, labels, fontsize=fs)
        ax.grid(False, axis="x")
        if data.get("ylabel"):
            ax.set_ylabel(_shorten(data["ylabel"], 60), fontsize=_FONT)
    if data.get("xlabel"):
        (ax.set_ylabel if horizontal else ax.set_xlabel)(_shorten(data["xlabel"], 60), fontsize=_FONT)
    names = list(values) + ([_shorten(floor.get("label") or "sampling-noise floor", 40)]
                            if isinstance(floor, Mapping) and floor.get("values") is not None else [])
    _legend(ax, names)


def _intervals(data: Mapping[str, Any], name: str, arr: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """A series' 95% intervals from ``data["errors"][name]`` (a list of [lo, hi] or None per category)."""
    errors = data.get("errors")
    if not isinstance(errors, Mapping) or errors.get(name) is None:
        return None, None
    raw = errors[name]
    _same_length(raw, len(arr), f'fig["data"]["errors"][{name!r}]', "category")
    lo, hi = np.full(len(arr), np.nan), np.full(len(arr), np.nan)
    for i, pair in enumerate(raw):
        if isinstance(pair, Sequence) and len(pair) == 2 and all(isinstance(v, numbers.Real) for v in pair):
            lo[i], hi[i] = float(pair[0]), float(pair[1])
    return lo, hi


def _heatmaps(mfig: MplFigure, data: Mapping[str, Any]) -> None:
    """Two (or more) heatmaps of the same rows and columns side by side, on one colour scale."""
    rows = [str(r) for r in _need(data, "rows", "heatmaps")]
    cols = [str(c) for c in _need(data, "cols", "heatmaps")]
    panels = _need(data, "panels", "heatmaps")
    if not isinstance(panels, Mapping) or not panels:
        raise InvalidParameterError("The 'fig[\"data\"][\"panels\"]' parameter of figure_png must be a dict of "
                                    "name to a matrix (list of rows).")
    grids = {}
    for name, raw in panels.items():
        _same_length(raw, len(rows), f'fig["data"]["panels"][{name!r}]', "row")
        g = np.full((len(rows), len(cols)), np.nan)
        for i, row in enumerate(raw):
            arr = _floats(row, f'fig["data"]["panels"][{name!r}][{i}]')
            _same_length(arr, len(cols), f'fig["data"]["panels"][{name!r}][{i}]', "column")
            g[i] = arr
        grids[str(name)] = g
    if not rows or not cols:
        _no_data(mfig)
        return
    vmin = float(data["vmin"]) if isinstance(data.get("vmin"), numbers.Real) else 0.0
    vmax = float(data["vmax"]) if isinstance(data.get("vmax"), numbers.Real) else 1.0
    k, r, c = len(grids), len(rows), len(cols)
    fs = _FONT - 1 if max(r, c) <= 10 else max(6.0, _FONT - 1 - (max(r, c) - 10) / 4)
    labels = [_shorten(x, 16) for x in rows]
    left = 0.15 + _text_in(max(len(x) for x in labels), fs)
    gap, cbar = 0.25, 0.75
    panel_w = (_WIDTH_IN - left - cbar - gap * (k - 1)) / k
    panel_h = panel_w * r / c
    bottom = 0.3 + _text_in(max(len(_shorten(x, 16)) for x in cols), fs) * 0.87
    mfig.set_size_inches(_WIDTH_IN, panel_h + bottom + 0.75)
    h = panel_h + bottom + 0.75
    cmap = _cmap()
    im = None
    for j, (name, g) in enumerate(grids.items()):
        x0 = left + j * (panel_w + gap)
        ax = mfig.add_axes((x0 / _WIDTH_IN, bottom / h, panel_w / _WIDTH_IN, panel_h / h))
        im = ax.imshow(np.ma.masked_invalid(g), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto",
                       interpolation="nearest")
        ax.set_xticks(np.arange(c), [_shorten(x, 16) for x in cols], fontsize=fs, rotation=60, ha="right",
                      rotation_mode="anchor")
        ax.set_yticks(np.arange(r), labels if j == 0 else [""] * r, fontsize=fs)
        ax.tick_params(length=0)
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_title(_shorten(name, 30), fontsize=_FONT, pad=4)
        if r * c <= 64:
            for a in range(r):
                for b in range(c):
                    v = g[a, b]
                    if math.isfinite(v):
                        ax.text(b, a, _short_number(v), ha="center", va="center", fontsize=fs - 1,
                                color="black" if v > (vmin + vmax) / 2 else "white")
    assert im is not None
    cax = mfig.add_axes(((_WIDTH_IN - cbar + 0.15) / _WIDTH_IN, bottom / h, 0.15 / _WIDTH_IN, panel_h / h))
    cb = mfig.colorbar(im, cax=cax)
    cb.ax.tick_params(labelsize=_FONT - 2)
    if data.get("label"):
        cb.set_label(_shorten(data["label"], 40), fontsize=_FONT - 1)


def _heatmap(mfig: MplFigure, data: Mapping[str, Any]) -> None:
    rows = [str(r) for r in _need(data, "rows", "heatmap")]
    cols = [str(c) for c in _need(data, "cols", "heatmap")]
    raw = _need(data, "values", "heatmap")
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence | np.ndarray):
        raise InvalidParameterError(
            f"The 'fig[\"data\"][\"values\"]' parameter of figure_png must be a list of rows. Got {type(raw).__name__} instead."
        )
    _same_length(raw, len(rows), 'fig["data"]["values"]', "row")
    grid = np.full((len(rows), len(cols)), np.nan)
    for i, row in enumerate(raw):
        arr = _floats(row, f'fig["data"]["values"][{i}]')
        _same_length(arr, len(cols), f'fig["data"]["values"][{i}]', "column")
        grid[i] = arr
    if not rows or not cols:
        _no_data(mfig)
        return
    finite = grid[np.isfinite(grid)]
    vmin = data.get("vmin")
    vmax = data.get("vmax")
    vmin = float(vmin) if isinstance(vmin, numbers.Real) else (float(finite.min()) if finite.size else 0.0)
    vmax = float(vmax) if isinstance(vmax, numbers.Real) else (float(finite.max()) if finite.size else 1.0)
    if not vmax > vmin:
        vmax = vmin + 1.0
    r, c = len(rows), len(cols)
    biggest = max(r, c)
    fs = _FONT - 1 if biggest <= 15 else max(5.5, _FONT - 1 - (biggest - 15) / 6)
    row_labels = [_shorten(x, 24) for x in rows]
    col_labels = [_shorten(x, 24) for x in cols]
    left = 0.2 + _text_in(max(len(x) for x in row_labels), fs)
    bottom = 0.35 + (_text_in(max(len(x) for x in col_labels), fs) * 0.87 if c > 4 else 0.2)
    axes_w = _WIDTH_IN - left - 1.25  # the colour bar and its labels on the right
    # at least 0.16 inch per row (a readable 7-point label each), up to 14 inches
    axes_h = min(max(axes_w * r / c, 1.6, 0.16 * r), 14.0)
    mfig.set_size_inches(_WIDTH_IN, axes_h + bottom + 0.55)
    _margins(mfig, left=left, bottom=bottom, right=0.3, top=0.55)
    ax = mfig.add_subplot()
    cmap: Colormap = _cmap()
    masked = np.ma.masked_invalid(grid)
    im = ax.imshow(masked, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    ax.set_xticks(np.arange(c), col_labels, fontsize=fs, rotation=60 if c > 4 else 0,
                  ha="right" if c > 4 else "center", rotation_mode="anchor")
    ax.set_yticks(np.arange(r), row_labels, fontsize=fs)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    if r * c <= 120:
        mid = (vmin + vmax) / 2
        for i in range(r):
            for j in range(c):
                v = grid[i, j]
                if math.isfinite(v):
                    ax.text(j, i, _short_number(v), ha="center", va="center", fontsize=fs - 0.5,
                            color="black" if v > mid else "white")
    cbar = mfig.colorbar(im, ax=ax, fraction=0.05, pad=0.03)
    cbar.ax.tick_params(labelsize=_FONT - 2)
    if data.get("label"):
        cbar.set_label(_shorten(data["label"], 50), fontsize=_FONT - 1)
    if np.isnan(grid).any():
        mfig.text(0.01, 0.01, "blank cells: not computed", fontsize=_FONT - 2, color="#444444", ha="left", va="bottom")


def _cmap() -> Colormap:
    from matplotlib import colormaps

    cmap = colormaps["viridis"].with_extremes(bad="white")  # a copy: the registered one is untouched
    return cmap


def _short_number(v: float) -> str:
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 0.01:
        return f"{v:.2f}"
    return f"{v:.0e}"


def _lines(mfig: MplFigure, data: Mapping[str, Any]) -> None:
    series = _series(data, "lines")
    names = list(series) + (["chance (y = x)"] if data.get("diagonal") else [])
    window = data.get("window")
    if not (isinstance(window, Sequence) and len(window) == 2 and all(isinstance(v, numbers.Real) for v in window)):
        window = None
    marks = [m for m in data.get("marks") or [] if isinstance(m, Mapping) and isinstance(m.get("x"), numbers.Real)]
    names += ([_shorten(data.get("window_label") or "evaluated window", 40)] if window else []) + [
        _shorten(m.get("label") or "", 40) for m in marks]
    mfig.set_size_inches(_WIDTH_IN, 4.6 if data.get("diagonal") else 3.8)
    _margins(mfig, bottom=0.75 if data.get("xlabel") else 0.5, names=names)
    ax = mfig.add_subplot()
    logx = bool(data.get("logx"))
    drawn = 0
    for j, (name, xy) in enumerate(series.items()):
        where = f'fig["data"]["series"][{name!r}]'
        if not isinstance(xy, Mapping) or "x" not in xy or "y" not in xy:
            raise InvalidParameterError(
                f"The {where!r} parameter of figure_png must be a dict with keys 'x' and 'y'. Got {type(xy).__name__} instead."
            )
        x = _floats(xy["x"], where + '["x"]')
        y = _floats(xy["y"], where + '["y"]')
        _same_length(y, len(x), where + '["y"]', "x value")
        if logx:
            y = np.where(x > 0, y, np.nan)
            x = np.where(x > 0, x, np.nan)
        style = {"color": PALETTE[j % len(PALETTE)], "linestyle": _LINESTYLES[j % len(_LINESTYLES)],
                 "linewidth": 2.0, "label": name}
        if data.get("step"):
            ax.step(x, y, where="post", **style)
        else:
            ax.plot(x, y, marker="o" if len(x) <= 12 else None, markersize=4, **style)
        drawn += 1
    if data.get("diagonal"):
        ax.plot([0, 1], [0, 1], color="#777777", linestyle=(0, (4, 3)), linewidth=1.2, label="chance (y = x)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_aspect("equal", adjustable="box")
        drawn += 1
    if window:
        ax.axvspan(float(window[0]), float(window[1]), color="#0072B2", alpha=0.07, linewidth=0,
                   label=_shorten(data.get("window_label") or "evaluated window", 40))
        ax.axvline(float(window[1]), color="#0072B2", linewidth=1.0, linestyle=":")
    for mark in marks:
        ax.axvline(float(mark["x"]), color="#D55E00", linewidth=1.2, linestyle="--",
                   label=_shorten(mark.get("label") or "", 40))
    if logx and drawn:
        ax.set_xscale("log")
    if not drawn:
        mfig.delaxes(ax)
        _no_data(mfig)
        return
    _style(ax)
    if data.get("xlabel"):
        ax.set_xlabel(_shorten(data["xlabel"], 60), fontsize=_FONT)
    if data.get("ylabel"):
        ax.set_ylabel(_shorten(data["ylabel"], 60), fontsize=_FONT)
    _at_risk(mfig, ax, data.get("at_risk"))
    _legend(ax, names)


def _at_risk(mfig: MplFigure, ax: Any, at_risk: Any) -> None:
    """A numbers-at-risk table under the axes: one row per series, one column per time."""
    if not isinstance(at_risk, Mapping) or not isinstance(at_risk.get("series"), Mapping):
        return
    times = _floats(at_risk.get("times") or [], 'fig["data"]["at_risk"]["times"]')
    series = {str(k): v for k, v in at_risk["series"].items()}
    if not len(times) or not series:
        return
    w, h = mfig.get_size_inches()
    extra = 0.35 + 0.2 * len(series)
    mfig.set_size_inches(w, h + extra)
    # keep the axes where they were (in inches) and put the table in the new band at the bottom
    pos = ax.get_position()
    ax.set_position((pos.x0, (pos.y0 * h + extra) / (h + extra), pos.width, pos.height * h / (h + extra)))
    x0, x1 = ax.get_xlim()
    fig_h = h + extra
    mfig.text(0.12 / w, (extra - 0.05) / fig_h, "Number at risk", fontsize=_FONT - 1.5, ha="left", va="top",
              fontweight="bold")
    for i, (name, counts) in enumerate(series.items()):
        vals = _floats(counts, f'fig["data"]["at_risk"]["series"][{name!r}]')
        _same_length(vals, len(times), f'fig["data"]["at_risk"]["series"][{name!r}]', "time")
        y = (extra - 0.25 - 0.2 * i) / fig_h
        mfig.text(0.12 / w, y, _shorten(name, 14), fontsize=_FONT - 2, ha="left", va="top",
                  color=PALETTE[i % len(PALETTE)])
        for t, v in zip(times, vals, strict=True):
            if math.isfinite(t) and x0 <= t <= x1:
                xf = pos.x0 + (t - x0) / (x1 - x0) * pos.width
                mfig.text(xf, y, "—" if not math.isfinite(v) else f"{int(round(v)):,}", fontsize=_FONT - 2,
                          ha="center", va="top")


def _hist(mfig: MplFigure, data: Mapping[str, Any]) -> None:
    edges = _floats(_need(data, "edges", "hist"), 'fig["data"]["edges"]')
    series = _series(data, "hist")
    values = {}
    for name, vals in series.items():
        arr = _floats(vals, f'fig["data"]["series"][{name!r}]')
        _same_length(arr, max(len(edges) - 1, 0), f'fig["data"]["series"][{name!r}]', "bin (len(edges) - 1)")
        values[name] = arr
    if len(edges) < 2 or not values or not np.isfinite(edges).all():
        if len(edges) >= 2 and not np.isfinite(edges).all():
            raise InvalidParameterError("The 'fig[\"data\"][\"edges\"]' parameter of figure_png must be finite numbers.")
        _no_data(mfig)
        return
    if np.any(np.diff(edges) <= 0):
        raise InvalidParameterError("The 'fig[\"data\"][\"edges\"]' parameter of figure_png must be strictly increasing.")
    mfig.set_size_inches(_WIDTH_IN, 3.8)
    _margins(mfig, bottom=0.75 if data.get("xlabel") else 0.5, names=list(values))
    ax = mfig.add_subplot()
    for j, (name, arr) in enumerate(values.items()):
        color = PALETTE[j % len(PALETTE)]
        vals = np.nan_to_num(arr, nan=0.0)
        ax.stairs(vals, edges, fill=True, color=color, alpha=0.18, linewidth=0)
        ax.stairs(vals, edges, color=color, linewidth=2.0, linestyle=_LINESTYLES[j % len(_LINESTYLES)], label=name)
    _style(ax)
    ax.set_ylim(bottom=0)
    ax.set_xlim(edges[0], edges[-1])
    if data.get("xlabel"):
        ax.set_xlabel(_shorten(data["xlabel"], 60), fontsize=_FONT)
    if data.get("ylabel"):
        ax.set_ylabel(_shorten(data["ylabel"], 60), fontsize=_FONT)
    _legend(ax, list(values))
