"""Series storage and stable min/max downsampling (pure; numpy, no matplotlib).

A live chart draws a series of any length with a bounded number of points. The points are
bucketed by their *index* (log order) into fixed ranges ``[k*w, (k+1)*w)``, ``w`` a power of
two. Each bucket keeps its minimum and its maximum. When the series grows past ``target``
buckets, ``w`` doubles and neighbouring buckets merge; a merged bucket's extremes are among
its halves' extremes, so:

- every extreme of every bucket is drawn (no spike is hidden, whatever the zoom);
- points already drawn never move: a new point only changes the last, partial bucket, and
  a width change only drops points, never brings in different ones;
- the work per redraw is O(new points + target), not O(length): a redraw at 1,000,000
  points costs about what it costs at 1,000.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Buckets per series; a panel is at most a few hundred pixels wide, so this is >= 2 per pixel.
TARGET = 1024


class Series:
    """One metric's points in log order: step, wall time and value.

    Stored in growable numpy buffers (capacity doubles), so readers get views of a prefix
    that stay valid while the series grows.
    """

    __slots__ = ("_data", "_n", "buckets", "_smooth")

    def __init__(self, target: int = TARGET) -> None:
        self._data = np.empty((3, 256), dtype=float)   # rows: steps, times, values
        self._n = 0
        self.buckets = MinMaxBuckets(target)
        self._smooth: Smoothed | None = None

    def append(self, step: float, t: float, value: float) -> None:
        self.extend([step], [t], [value])

    def extend(self, steps: list[float], times: list[float], values: list[float]) -> None:
        n, k = self._n, len(values)
        if n + k > self._data.shape[1]:
            grown = np.empty((3, max(2 * self._data.shape[1], n + k)), dtype=float)
            grown[:, :n] = self._data[:, :n]
            self._data = grown
        self._data[0, n:n + k] = steps
        self._data[1, n:n + k] = times
        self._data[2, n:n + k] = values
        self._n = n + k

    def __len__(self) -> int:
        return self._n

    def view(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Views of (steps, times, values) over the points appended so far."""
        d, n = self._data, self._n
        return d[0, :n], d[1, :n], d[2, :n]

    def sample(self, smoothing: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(indexes, values) to draw: every bucket's min and max and the first and last points,
        of the raw values or of their moving average (``smoothing`` in [0, 1))."""
        _, _, values = self.view()
        if smoothing <= 0:
            idx = self.buckets.indexes(values)
            return idx, values[idx]
        sm = self._smooth
        if sm is None or sm.weight != smoothing:
            sm = self._smooth = Smoothed(smoothing, self.buckets.target)
        smoothed = sm.update(values)
        idx = sm.buckets.indexes(smoothed)
        return idx, smoothed[idx]


class MinMaxBuckets:
    """Incremental, stable min/max buckets over a growing 1-d array (see the module doc)."""

    def __init__(self, target: int = TARGET) -> None:
        if target < 2:
            raise ValueError("target must be at least 2")
        self.target = target
        self.width = 1
        self._lo = np.empty(0, dtype=np.int64)   # index of the min of each complete bucket
        self._hi = np.empty(0, dtype=np.int64)   # index of the max of each complete bucket

    @property
    def complete(self) -> int:
        return len(self._lo)

    def _fold(self, values: np.ndarray) -> None:
        """Bring the complete buckets up to date with ``values`` (which only ever grows)."""
        n = len(values)
        while n // self.width > self.target:
            self._merge(values)
        done = self.complete
        full = n // self.width
        if full <= done:
            return
        w = self.width
        chunk = values[done * w: full * w].reshape(full - done, w)
        base = np.arange(done, full, dtype=np.int64) * w
        lo = base + _argmin(chunk)
        hi = base + _argmax(chunk)
        self._lo = np.concatenate([self._lo, lo])
        self._hi = np.concatenate([self._hi, hi])

    def _merge(self, values: np.ndarray) -> None:
        """Double the width: pairs of complete buckets become one (an odd last one is dropped
        and recomputed from the raw values as part of the new partial bucket)."""
        pairs = self.complete // 2
        lo, hi = self._lo[: 2 * pairs].reshape(pairs, 2), self._hi[: 2 * pairs].reshape(pairs, 2)
        lo_vals = _for_min(values[lo])
        hi_vals = _for_max(values[hi])
        self._lo = lo[np.arange(pairs), np.argmin(lo_vals, axis=1)]
        self._hi = hi[np.arange(pairs), np.argmax(hi_vals, axis=1)]
        self.width *= 2

    def indexes(self, values: np.ndarray) -> np.ndarray:
        """The sorted, unique indexes to draw for ``values`` (the series so far)."""
        n = len(values)
        if n == 0:
            return np.empty(0, dtype=np.int64)
        self._fold(values)
        start = self.complete * self.width
        parts = [self._lo, self._hi]
        if start < n:  # the partial last bucket, recomputed (at most `width` points)
            tail = values[start:]
            parts.append(np.array([start + _argmin(tail[None, :])[0], start + _argmax(tail[None, :])[0]]))
        parts.append(np.array([0, n - 1], dtype=np.int64))   # the line starts and ends where the data does
        return np.unique(np.concatenate(parts))

    def bucket_of(self, i: int) -> int:
        return i // self.width


def _for_min(a: np.ndarray) -> np.ndarray:
    """NaN never wins a min (an all-NaN bucket keeps a NaN index, drawn as a gap)."""
    return np.where(np.isnan(a), np.inf, a)


def _for_max(a: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(a), -np.inf, a)


def _argmin(chunk: np.ndarray) -> np.ndarray:
    return np.argmin(_for_min(chunk), axis=1)


def _argmax(chunk: np.ndarray) -> np.ndarray:
    return np.argmax(_for_max(chunk), axis=1)


class Smoothed:
    """The debiased exponential moving average of a growing series (TensorBoard's smoothing),
    extended incrementally: only new points are computed on each redraw. NaN and inf points
    are kept as they are and do not enter the average."""

    def __init__(self, weight: float, target: int = TARGET) -> None:
        if not 0 <= weight < 1:
            raise ValueError("smoothing must be in [0, 1)")
        self.weight = weight
        self.buckets = MinMaxBuckets(target)
        self._out = np.empty(256, dtype=float)
        self._n = 0
        self._last = 0.0
        self._num = 0

    def update(self, values: np.ndarray) -> np.ndarray:
        n0, n = self._n, len(values)
        if n > len(self._out):
            grown = np.empty(max(n, 2 * len(self._out)), dtype=float)
            grown[:n0] = self._out[:n0]
            self._out = grown
        w, last, num = self.weight, self._last, self._num
        new = []
        for v in values[n0:n].tolist():
            if v != v or v == _INF or v == -_INF:
                new.append(v)
                continue
            last = last * w + (1 - w) * v
            num += 1
            new.append(last / (1 - w ** num))
        self._out[n0:n] = new
        self._last, self._num, self._n = last, num, n
        return self._out[:n]


_INF = float("inf")


Batch = dict  # metric -> ([steps], [times], [values]): plain lists, cheap to append to


def collect(row: Any, batch: Batch) -> None:
    """Add one logged row's numbers to ``batch``. Floats and ints are not tracked by the
    garbage collector, so a batch holding thousands of rows costs the GC nothing (keeping the
    row dicts themselves would: a 1 kHz loop got several percent slower from that alone)."""
    step = row.get("_step")
    if not isinstance(step, (int, float)):
        return
    t = row.get("_time")
    if not isinstance(t, (int, float)):
        t = _NAN
    for k, v in row.items():
        if k[0] == "_" or type(v) not in (int, float):
            continue
        cols = batch.get(k)
        if cols is None:
            cols = batch[k] = ([], [], [])
        cols[0].append(step)
        cols[1].append(t)
        cols[2].append(v)


def apply(batch: Batch, series: dict[str, Series], target: int = TARGET) -> None:
    """Move a batch into the per-metric series (one numpy copy per metric)."""
    for k, (steps, times, values) in batch.items():
        s = series.get(k)
        if s is None:
            s = series[k] = Series(target)
        s.extend(steps, times, values)


def digest(rows: Any, series: dict[str, Series], target: int = TARGET) -> int:
    """Append the numeric values of logged rows to per-metric series; returns rows seen."""
    batch: Batch = {}
    count = 0
    for row in rows:
        count += 1
        collect(row, batch)
    apply(batch, series, target)
    return count


_NAN = float("nan")
