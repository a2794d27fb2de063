"""A view's data: per-run series fed from the run's history, then from ``log`` events, and
the options that say how to draw them (x axis, log y, smoothing, which metrics)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.files import read_jsonl
from ..core.paths import METRICS_FILE
from ..core.values import check_chart_options
from .downsample import Series, apply, collect, digest
from .render import fmt, panel_grid
from .text import WIDTH, Stat

#: Panels drawn when no ``metrics=`` is given (the rest are named under the chart).
MAX_PANELS = 12


@dataclass(frozen=True)
class Options:
    """How a view draws: ``metrics`` (None: the first ``MAX_PANELS``, primary first), the x
    axis (``"step"``, ``"time"`` or another metric's name), ``log_y``, ``smoothing`` in [0, 1)."""

    metrics: tuple[str, ...] | None = None
    x: str = "step"
    log_y: bool = False
    smoothing: float = 0.0


def make_options(**options: Any) -> Options:
    """Validated ``Options`` (``core.values.check_chart_options``: a clear error on bad input)."""
    return Options(**check_chart_options(options))


class Source:
    """One run's series: its history on disk, then the rows ``push``-ed by the ``log`` event
    (from the logging thread), folded in by ``digest`` in whatever thread draws."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.id: str = run.id
        self.series: dict[str, Series] = {}
        self.view: Any = None          # the view this source belongs to
        self.rows = 0
        self.last_step: Any = None
        self.start_time: float = run.start_time or 0.0
        self._lock = threading.Lock()
        self._batch: dict[str, Any] = {}
        self._batch_rows = 0
        self._batch_step: Any = None
        self._load_history()

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def live(self) -> bool:
        """A run this process is writing (rows arrive as events)."""
        return hasattr(self.run, "log") and not getattr(self.run, "_finished", True)

    def _load_history(self) -> None:
        run = self.run
        if hasattr(run, "log") and not run._finished:
            run.flush(summary=False)   # rows logged so far are on disk; later ones come as events
        status = getattr(run, "status", "running")
        rows = read_jsonl(run.dir / METRICS_FILE, live=status == "running")
        self.rows = digest(rows, self.series)
        if rows:
            self.last_step = rows[-1].get("_step")

    def push(self, row: dict[str, Any]) -> None:
        """A row just logged (called on every ``run.log``: a few microseconds)."""
        with self._lock:
            collect(row, self._batch)
            self._batch_rows += 1
            self._batch_step = row.get("_step")

    def digest(self) -> bool:
        """Fold the rows pushed since the last call into the series; True when there were any."""
        with self._lock:
            if not self._batch_rows:
                return False
            batch, n, step = self._batch, self._batch_rows, self._batch_step
            self._batch, self._batch_rows = {}, 0
        apply(batch, self.series)
        self.rows += n
        self.last_step = step
        return True

    def metric_names(self) -> list[str]:
        names = list(self.series)
        pm = self.run.primary_metric
        if pm and pm[0] in self.series:   # the primary metric's group first, itself first in it
            names.remove(pm[0])
            names.insert(0, pm[0])
        ordered: list[str] = []
        for group in panel_grid(names).values():
            ordered += group
        return ordered

    def xy(self, name: str, options: Options) -> tuple[np.ndarray, np.ndarray]:
        """Downsampled (x, y) of one metric for the chosen x axis."""
        s = self.series[name]
        idx, y = s.sample(options.smoothing)
        steps, times, _ = s.view()
        if options.x == "step":
            return steps[idx], y
        if options.x == "time":
            return (times[idx] - self.start_time) / _time_scale(times[-1] - self.start_time)[0], y
        other = self.series.get(options.x)
        if other is None:
            return np.empty(0), np.empty(0)
        osteps, _, ovals = other.view()
        order = np.argsort(osteps, kind="stable")
        pos = np.searchsorted(osteps[order], steps[idx])
        pos = np.minimum(pos, len(order) - 1)
        hit = osteps[order][pos] == steps[idx]
        return ovals[order][pos][hit], y[hit]

    def best(self, name: str, options: Options) -> tuple[float, float, str] | None:
        """The primary metric's best point, as in the run's summary (finite values only)."""
        pm = self.run.primary_metric
        if not pm or pm[0] != name or options.x != "step":
            return None
        steps, _, values = self.series[name].view()
        finite = np.isfinite(values)
        if not finite.any():
            return None
        masked = np.where(finite, values, -np.inf if pm[1] == "max" else np.inf)
        i = int(np.argmax(masked) if pm[1] == "max" else np.argmin(masked))
        return float(steps[i]), float(values[i]), f"best {fmt(float(values[i]))} @ {int(steps[i])}"


def _time_scale(span: float) -> tuple[float, str]:
    if span >= 7200:
        return 3600.0, "wall time (h)"
    if span >= 120:
        return 60.0, "wall time (min)"
    return 1.0, "wall time (s)"


def xlabel(options: Options, source: Source) -> str:
    if options.x == "time":
        times = [s.view()[1] for s in source.series.values() if len(s)]
        span = max((float(t[-1]) for t in times), default=source.start_time) - source.start_time
        return _time_scale(span)[1]
    return options.x


def stat(s: Series) -> Stat:
    """The text view's numbers for one series, with numpy (any length, a few ms at most)."""
    values = s.view()[2]
    finite = values[np.isfinite(values)]
    if not len(finite):
        return float(values[-1]), [], None, None
    n = len(finite)
    buckets = min(WIDTH, n)
    edges = np.arange(buckets) * n // buckets          # the same buckets as text.bucket_means
    sizes = np.diff(np.append(edges, n))
    means = (np.add.reduceat(finite, edges) / sizes).tolist()
    return float(values[-1]), means, float(finite.min()), float(finite.max())
