"""Pure chart renderers: panels of series -> PNG bytes, with matplotlib's object API on Agg.

No pyplot, no global figure registry: each call builds a ``Figure``, draws it on its own
``FigureCanvasAgg`` and drops it, so nothing leaks between calls or threads (draws are
serialized by ``RENDER_LOCK`` because matplotlib's text and font caches are shared).
"""

from __future__ import annotations

import io
import math
import threading
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

RENDER_LOCK = threading.Lock()

#: Figure geometry: about 800 px wide, a row of panels about 180 px high.
WIDTH_IN = 10.0
ROW_IN = 2.3
DPI = 80
COLUMNS = 3
#: Colours of the lines of one panel (colour-blind safe, Okabe-Ito) and the best marker.
COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
BEST = "#D55E00"


@dataclass
class Line:
    label: str
    x: np.ndarray
    y: np.ndarray


@dataclass
class Panel:
    """One axes: a title, its lines and, for the primary metric, the best point."""

    title: str
    lines: list[Line]
    group: str = ""
    best: tuple[float, float, str] | None = None   # (x, y, label)
    legend: bool = False


@dataclass
class Chart:
    """What a figure shows: panels (grouped into rows by ``group``) and how."""

    panels: list[Panel]
    title: str = ""
    xlabel: str = "step"
    log_y: bool = False
    note: str = ""                          # a line under the title (e.g. "12 more metrics")
    empty: str = "no metrics logged yet"
    extra: dict = field(default_factory=dict)


def render_png(chart: Chart) -> bytes:
    """The chart as PNG bytes, on a new figure (palette-quantized: a few tens of KB)."""
    return Renderer().png(chart)


#: Live frames leave room to grow, so most frames reuse the drawn axes: x to this factor of
#: the data's span; y by the span on the side that grew, this share of it on the other.
X_HEADROOM = 2.0
Y_HEADROOM = 0.1
#: A live panel whose data fills less than this share of its y range is refit.
Y_REFIT = 0.25


class Renderer:
    """Draws successive states of one chart, reusing as much as possible.

    The figure is kept while the chart's shape (panels, lines, options) stays the same.
    Line data, best markers and their labels are *animated* artists: a frame whose data fits
    the current axis limits only restores the drawn background (axes, ticks, labels) and draws
    those artists on it, about 2 ms instead of 100+. ``live=True`` frames pick limits with
    headroom so that is the common case; a static frame (``live=False``) uses tight limits.
    """

    def __init__(self) -> None:
        self._shape: Any = None
        self._fig: Figure | None = None
        self._canvas: FigureCanvasAgg | None = None
        self._artists: list[dict[str, Any]] = []
        self._background: Any = None
        self._limits: list[Any] = []
        self.full_draws = 0
        self.blits = 0

    def png(self, chart: Chart, live: bool = False) -> bytes:
        shape = _shape(chart)
        with RENDER_LOCK:
            if shape != self._shape or self._fig is None:
                self._fig, self._artists = _figure(chart)
                self._canvas = FigureCanvasAgg(self._fig)
                self._shape = shape
                self._background = None
                self._limits = [None] * len(self._artists)
            assert self._canvas is not None
            if chart.title:
                self._fig._suptitle.set_text(_title(chart))  # type: ignore[union-attr]
                self._background = None   # the title is part of the background
            limits = [_limits(panel, art["log"], live, old)
                      for art, panel, old in zip(self._artists, chart.panels, self._limits)]
            if self._background is None or limits != self._limits:
                self._limits = limits
                for art, (xlim, ylim) in zip(self._artists, limits):
                    art["ax"].set_xlim(*xlim)
                    art["ax"].set_ylim(*ylim)
                self._canvas.draw()            # axes, ticks, labels: everything not animated
                self._background = self._canvas.copy_from_bbox(self._fig.bbox)
                self.full_draws += 1
            else:
                self._canvas.restore_region(self._background)
                self.blits += 1
            for art, panel in zip(self._artists, chart.panels):
                _draw_data(art, panel)
            return _png(np.asarray(self._canvas.buffer_rgba()))


def _span(values: list[np.ndarray], log: bool) -> tuple[float, float] | None:
    parts = []
    for v in values:
        keep = np.isfinite(v) & (v > 0) if log else np.isfinite(v)
        if keep.any():
            parts.append(v[keep])
    if not parts:
        return None
    return float(min(f.min() for f in parts)), float(max(f.max() for f in parts))


def _pad(lo: float, hi: float, share: float, log: bool) -> tuple[float, float]:
    if log:
        a, b = _pad(math.log10(lo), math.log10(hi), share, False)
        return 10 ** a, 10 ** b
    if hi == lo:
        d = abs(hi) * 0.05 or 0.5
        return lo - d, hi + d
    d = (hi - lo) * share
    return lo - d, hi + d


def _limits(panel: Panel, log: bool, live: bool, old: Any) -> Any:
    """((x0, x1), (y0, y1)) of a panel: tight with matplotlib's 5% margins for a static frame.

    A live frame keeps the old limits while the data fits them. An axis the data outgrew gets
    room to grow again: x to ``X_HEADROOM`` times the data's span, y by the data's span on the
    side it grew (``Y_HEADROOM`` of it on the other), so a steadily growing metric costs a full
    redraw only each time it doubles. A y range the data fills less than ``Y_REFIT`` of is refit.
    """
    xs = _span([ln.x for ln in panel.lines], False)
    ys = _span([ln.y for ln in panel.lines], log)
    if xs is None or ys is None:
        if live and old is not None:
            return old
        return (0.0, 1.0), ((1.0, 10.0) if log else (0.0, 1.0))
    tight = (_pad(*xs, 0.05, False), _pad(*ys, 0.05, log))
    if not live:
        return tight
    (x0, x1), (y0, y1) = old if old is not None else ((math.inf, -math.inf), (math.inf, -math.inf))
    if not (x0 <= xs[0] and xs[1] <= x1):
        # the first frames of a run see the x range grow fastest (relative to it): more room
        factor = X_HEADROOM * 2 if old is None else X_HEADROOM
        grown = xs[0] + (xs[1] - xs[0]) * factor if xs[1] > xs[0] else tight[0][1]
        x0, x1 = tight[0][0], max(grown, tight[0][1])
    f = math.log10 if log else float
    lo, hi = f(ys[0]), f(ys[1])
    fits = y0 <= ys[0] and ys[1] <= y1
    filled = (hi - lo) / max(1e-300, f(y1) - f(y0)) if fits else 0.0
    if not fits or (filled < Y_REFIT and hi > lo):
        span = (hi - lo) or (abs(hi) * 0.05 or 0.5)
        if old is None:        # which way will it grow? A span both ways to start with
            below = above = span
        else:
            below = span if ys[0] < y0 else span * Y_HEADROOM
            above = span if ys[1] > y1 else span * Y_HEADROOM
        a, b = lo - below, hi + above
        y0, y1 = (10 ** a, 10 ** b) if log else (a, b)
    return (x0, x1), (y0, y1)


def _draw_data(art: dict[str, Any], panel: Panel) -> None:
    ax = art["ax"]
    for artist, line in zip(art["lines"], panel.lines):
        artist.set_data(line.x, line.y)
        ax.draw_artist(artist)
    if panel.best is not None and art["best"] is not None:
        bx, by, label = panel.best
        art["best"].set_data([bx], [by])
        art["best_title"].set_text(label)
        ax.draw_artist(art["best"])
        ax.draw_artist(art["best_title"])


def _positive(panel: Panel) -> bool:
    finite = [ln.y[np.isfinite(ln.y)] for ln in panel.lines]
    return all(len(f) for f in finite) and bool(finite) and all(bool(np.all(f > 0)) for f in finite)


def _shape(chart: Chart) -> Any:
    return (tuple((p.title, p.group, tuple((ln.label, len(ln.x) == 1) for ln in p.lines),
                   p.best is not None, p.legend, chart.log_y and _positive(p)) for p in chart.panels),
            chart.xlabel, bool(chart.title), chart.empty if not chart.panels else None)


def _title(chart: Chart) -> str:
    return chart.title + (f"\n{chart.note}" if chart.note else "")


def layout(panels: Sequence[Panel], columns: int = COLUMNS) -> list[tuple[int, int]]:
    """(row, column) of each panel: a group starts a new row unless it fits whole in the
    rest of the current one, so ``train/*`` and ``val/*`` stay together and rows stay full."""
    slots: list[tuple[int, int]] = []
    row, col = 0, 0
    i = 0
    while i < len(panels):
        j = i
        while j < len(panels) and panels[j].group == panels[i].group:
            j += 1
        size = j - i
        if col and (col + size > columns):
            row, col = row + 1, 0
        for _ in range(size):
            slots.append((row, col))
            col += 1
            if col == columns:
                row, col = row + 1, 0
        i = j
    return slots


#: Fixed margins, in inches (a layout engine would cost a third of every redraw).
LEFT, RIGHT, BOTTOM, TITLE_GAP, ROW_GAP, COL_GAP = 0.6, 0.15, 0.45, 0.3, 0.75, 0.6


def _figure(chart: Chart) -> tuple[Figure, list[dict[str, Any]]]:
    slots = layout(chart.panels)
    nrows = max((r for r, _ in slots), default=0) + 1
    ncols = max(1, min(COLUMNS, len(chart.panels)) if nrows == 1 else COLUMNS)
    header_in = (0.35 if chart.title else 0.0) + (0.2 if chart.note else 0.0)
    width = WIDTH_IN * max(ncols, 2) / COLUMNS
    height = header_in + nrows * ROW_IN
    fig = Figure(figsize=(width, height), dpi=DPI)
    if chart.title:
        fig.suptitle(_title(chart), x=0.01, y=1 - 0.08 / height, ha="left", va="top",
                     fontsize=10, fontweight="bold")
    if not chart.panels:
        fig.text(0.5, 0.45, chart.empty, ha="center", va="center", color="#666666", fontsize=10)
        return fig, []
    ax_h = ROW_IN - ROW_GAP
    ax_w = (width - LEFT - RIGHT - (ncols - 1) * COL_GAP) / ncols
    grid = fig.add_gridspec(nrows, ncols, left=LEFT / width, right=1 - RIGHT / width,
                            bottom=BOTTOM / height, top=1 - (header_in + TITLE_GAP) / height,
                            wspace=COL_GAP / ax_w, hspace=ROW_GAP / ax_h)
    artists = [_draw_panel(fig.add_subplot(grid[r, c]), panel, chart)
               for (r, c), panel in zip(slots, chart.panels)]
    return fig, artists


def _draw_panel(ax: Any, panel: Panel, chart: Chart) -> dict[str, Any]:
    log = chart.log_y and _positive(panel)
    title = f"{panel.group}/{panel.title}" if panel.group else panel.title
    if chart.log_y and not log:
        title += "  (linear: values <= 0)"   # say why this panel ignores log y
    # Fixed positions (y=, label coords): matplotlib otherwise measures every tick label on each
    # draw to place titles and axis labels, a third of a full redraw.
    ax.set_title(title, fontsize=9, loc="left", y=1.0, pad=4)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.25, linewidth=0.6)
    lines = []
    for i, line in enumerate(panel.lines):
        color = COLORS[i % len(COLORS)]
        style = dict(marker="o", markersize=3) if len(line.x) == 1 else {}   # one point: a dot
        (artist,) = ax.plot(line.x, line.y, color=color, linewidth=1.1, label=line.label,
                            animated=True, **style)
        lines.append(artist)
    best = best_title = None
    if panel.best is not None:
        bx, by, label = panel.best
        (best,) = ax.plot([bx], [by], marker="*", color=BEST, markersize=10, linestyle="none",
                          zorder=5, animated=True)
        best_title = ax.set_title(label, fontsize=8, loc="right", color=BEST, y=1.0, pad=4)
        best_title.set_animated(True)
    if log:
        ax.set_yscale("log")
    else:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
    # Fewer ticks: tick labels are most of the cost of a full draw (text layout).
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=chart.xlabel == "step"))
    if panel.legend and len(panel.lines) > 1:
        ax.legend(handles=lines, fontsize=7, loc="upper right", frameon=False)
    ax.set_xlabel(chart.xlabel, fontsize=7)
    ax.xaxis.set_label_coords(0.5, -0.2)
    ax.yaxis.set_label_coords(-0.15, 0.5)
    return {"ax": ax, "lines": lines, "best": best, "best_title": best_title, "log": log}


def _png(rgba: np.ndarray) -> bytes:
    from PIL import Image  # Pillow is a dependency of matplotlib

    # FASTOCTREE: as small as MEDIANCUT with optimize=True here, at a sixth of the time (~5 ms)
    img = Image.fromarray(rgba, "RGBA").convert("RGB").quantize(colors=64, method=Image.Quantize.FASTOCTREE)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def fmt(v: object) -> str:
    """A metric value for labels and tables: 4 significant digits, ints as ints."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    if isinstance(v, float):
        if v != v:
            return "nan"
        if v in (math.inf, -math.inf):
            return "inf" if v > 0 else "-inf"
        return f"{v:.4g}"
    return str(v)


def panel_grid(names: Sequence[str]) -> dict[str, list[str]]:
    """Metric names grouped by their prefix before the last ``/`` ("" for ungrouped)."""
    groups: dict[str, list[str]] = {}
    for n in names:
        group = n.rsplit("/", 1)[0] if "/" in n else ""
        groups.setdefault(group, []).append(n)
    return groups
