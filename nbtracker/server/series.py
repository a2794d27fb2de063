"""A run's metric series for the browser: read once, then followed by tailing, downsampled.

``metrics.jsonl`` is parsed once per run and kept in memory (``display.downsample.Series``:
numpy buffers plus stable min/max buckets); later requests read only the bytes appended since.
A request gets, per metric, either the points after those the client already has (a live run
polled twice a second gets a few new points, not the history again) or, when that would be
more than a downsampled series, the min/max sample of the whole series (at most about 2,050
points, whatever the length), flagged ``replace``. Runs are evicted least recently used
beyond ``MAX_POINTS`` points in memory.

A history too long to parse while the user waits (over ``PROGRESSIVE_BYTES``; a million rows
take seconds of JSON parsing) is read in a background thread; meanwhile requests get the
rows in the file's last ``TAIL_BYTES``, flagged ``partial``, so the chart shows the latest
rows at once and the whole history when it is in.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ..core.files import read_jsonl_tail
from ..core.paths import METRICS_FILE
from ..display.downsample import TARGET, Series, digest

#: Points (all metrics of all cached runs) kept in memory: 24 bytes each.
MAX_POINTS = 8_000_000
#: More new points than this and the reply is the downsampled whole instead.
MAX_INCREMENT = 2 * TARGET
#: A metrics file larger than this is read in the background (see the module doc).
PROGRESSIVE_BYTES = 8 << 20
#: What a request gets meanwhile: the rows in this many bytes at the end of the file.
TAIL_BYTES = 512 << 10


def _floats(a: np.ndarray) -> list[float | None]:
    """A JSON-safe list: NaN and infinities become null (a gap in the chart)."""
    out = a.tolist()
    if not np.isfinite(a).all():
        out = [v if math.isfinite(v) else None for v in out]
    return out


def _part(n: int, start: int, replace: bool, x: np.ndarray, t: np.ndarray, y: np.ndarray,
          t0: float | None) -> dict[str, Any]:
    base = t0 if t0 is not None else (float(t[0]) if len(t) else 0.0)
    return {"n": n, "from": start, "replace": replace, "x": _floats(x),
            "t": _floats(np.round(t - base, 3)), "y": _floats(y)}


class RunSeries:
    """One run's numeric metrics, followed as its file grows."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / METRICS_FILE
        self.offset = 0
        self.rows = 0
        self.series: dict[str, Series] = {}
        self.lock = threading.Lock()
        self.loading: threading.Thread | None = None
        self.error: str | None = None

    def update(self) -> None:
        """Read what was appended (called with ``lock`` held)."""
        if self.loading is not None:
            return
        if self.offset == 0 and self._size() > PROGRESSIVE_BYTES:
            self.loading = threading.Thread(target=self._load, name="nbtracker-series", daemon=True)
            self.loading.start()
            return
        rows, self.offset = read_jsonl_tail(self.path, self.offset)
        if rows:
            self.rows += digest(rows, self.series)

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def _load(self) -> None:
        """The whole history, parsed away from the request thread, then swapped in."""
        series: dict[str, Series] = {}
        try:
            rows, offset = read_jsonl_tail(self.path, 0)
            count = digest(rows, series)
            del rows
        except Exception as e:  # noqa: BLE001 - reported in the replies
            with self.lock:
                self.error = f"{type(e).__name__}: {e}"
                self.loading = None
            return
        with self.lock:
            self.series, self.rows, self.offset = series, count, offset
            self.loading = None

    @property
    def points(self) -> int:
        return sum(len(s) for s in self.series.values())

    def payload(self, keys: list[str] | None, have: dict[str, int], t0: float | None) -> dict[str, Any]:
        if self.loading is not None:
            return self._partial(keys, t0)
        names = list(self.series)
        chosen = names if keys is None else [k for k in keys if k in self.series]
        out: dict[str, Any] = {}
        for key in chosen:
            s = self.series[key]
            n = len(s)
            steps, times, values = s.view()
            start = have.get(key, 0)
            if 0 <= start <= n and n - start <= MAX_INCREMENT and (start > 0 or n <= MAX_INCREMENT):
                sl = slice(start, n)
                x, t, y, replace = steps[sl], times[sl], values[sl], start == 0
            else:
                idx = s.buckets.indexes(values)
                x, t, y, replace = steps[idx], times[idx], values[idx], True
                start = 0
            out[key] = _part(n, start, replace, x, t, y, t0)
        reply: dict[str, Any] = {"rows": self.rows, "keys": names, "series": out}
        if self.error:
            reply["error"] = self.error
        return reply

    def _partial(self, keys: list[str] | None, t0: float | None) -> dict[str, Any]:
        """While the history loads: the rows at the end of the file (``n`` 0, so the client
        asks for everything again once the replies stop saying ``partial``)."""
        size = self._size()
        start = max(0, size - TAIL_BYTES)
        rows, _ = read_jsonl_tail(self.path, start)
        tail: dict[str, Series] = {}
        count = digest(rows[1:] if start else rows, tail)     # the first line may be cut in half
        out = {}
        for key, s in tail.items():
            if keys is not None and key not in keys:
                continue
            steps, times, values = s.view()
            idx = s.buckets.indexes(values)
            out[key] = _part(0, 0, True, steps[idx], times[idx], values[idx], t0)
        return {"rows": count, "keys": list(tail), "series": out,
                "partial": {"bytes": size, "tail_rows": count}}


class SeriesCache:
    """``RunSeries`` per run directory, least recently used first out."""

    def __init__(self, max_points: int = MAX_POINTS) -> None:
        self.max_points = max_points
        self._runs: OrderedDict[Path, RunSeries] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, run_dir: Path) -> RunSeries:
        with self._lock:
            rs = self._runs.get(run_dir)
            if rs is None:
                rs = self._runs[run_dir] = RunSeries(run_dir)
            self._runs.move_to_end(run_dir)
        with rs.lock:
            rs.update()
        self._evict()
        return rs

    def _evict(self) -> None:
        with self._lock:
            total = sum(r.points for r in self._runs.values())
            while total > self.max_points and len(self._runs) > 1:
                _, old = self._runs.popitem(last=False)
                total -= old.points
