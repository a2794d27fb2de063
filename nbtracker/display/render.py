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
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

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
    """The chart as PNG bytes (palette-quantized: a 3-row chart is a few tens of KB)."""
    with RENDER_LOCK:
        fig = _figure(chart)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba())
        return _png(rgba)


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


def _figure(chart: Chart) -> Figure:
    slots = layout(chart.panels)
    nrows = max((r for r, _ in slots), default=0) + 1
    ncols = min(COLUMNS, len(chart.panels)) if nrows == 1 else COLUMNS
    header_in = (0.35 if chart.title else 0.0) + (0.2 if chart.note else 0.0)
    width = WIDTH_IN * max(ncols, 2) / COLUMNS
    fig = Figure(figsize=(width, header_in + nrows * ROW_IN), dpi=DPI, layout="constrained")
    if chart.title:
        fig.suptitle(chart.title + (f"\n{chart.note}" if chart.note else ""), x=0.01, ha="left",
                     fontsize=10, fontweight="bold")
    if not chart.panels:
        fig.text(0.5, 0.45, chart.empty, ha="center", va="center", color="#666666", fontsize=10)
        return fig
    grid = fig.add_gridspec(nrows, max(ncols, 1))
    for (r, c), panel in zip(slots, chart.panels):
        _draw_panel(fig.add_subplot(grid[r, c]), panel, chart)
    return fig


def _draw_panel(ax, panel: Panel, chart: Chart) -> None:  # noqa: ANN001 - matplotlib Axes
    ax.set_title(f"{panel.group}/{panel.title}" if panel.group else panel.title, fontsize=9, loc="left")
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.25, linewidth=0.6)
    positive = True
    for i, line in enumerate(panel.lines):
        color = COLORS[i % len(COLORS)]
        ax.plot(line.x, line.y, color=color, linewidth=1.1, label=line.label)
        if len(line.x) == 1:  # a single point is invisible as a line
            ax.plot(line.x, line.y, "o", color=color, markersize=3)
        finite = line.y[np.isfinite(line.y)]
        positive = positive and bool(len(finite)) and bool(np.all(finite > 0))
    if panel.best is not None:
        bx, by, label = panel.best
        ax.plot([bx], [by], marker="*", color=BEST, markersize=10, linestyle="none", zorder=5)
        ax.set_title(label, fontsize=8, loc="right", color=BEST)
    if chart.log_y and positive:
        ax.set_yscale("log")
    if panel.legend and len(panel.lines) > 1:
        ax.legend(fontsize=7, loc="best", frameon=False)
    ax.set_xlabel(chart.xlabel, fontsize=7)


def _png(rgba: np.ndarray) -> bytes:
    from PIL import Image  # Pillow is a dependency of matplotlib

    img = Image.fromarray(rgba, "RGBA").convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
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
