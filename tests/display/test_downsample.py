"""Downsampling: every bucket's extremes drawn, stable as points arrive, bounded output."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbtracker.display.downsample import TARGET, MinMaxBuckets, Series, Smoothed, digest


def brute_extremes(values: np.ndarray, width: int) -> set[int]:
    """Index of the min and of the max of every bucket [k*w, (k+1)*w), NaN never winning."""
    out = set()
    for start in range(0, len(values), width):
        chunk = values[start:start + width]
        lo = np.where(np.isnan(chunk), np.inf, chunk)
        hi = np.where(np.isnan(chunk), -np.inf, chunk)
        out |= {start + int(np.argmin(lo)), start + int(np.argmax(hi))}
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                          st.integers(-5, 5).map(float)), min_size=1, max_size=400),
       st.sampled_from([2, 3, 8, 16]))
def test_every_bucket_extreme_is_kept(values, target):
    values = np.array(values, dtype=float)
    b = MinMaxBuckets(target)
    idx = set(b.indexes(values).tolist())
    assert brute_extremes(values, b.width) <= idx
    assert {0, len(values) - 1} <= idx
    assert len(values) // b.width <= target                 # bounded number of buckets
    assert len(idx) <= 2 * (target + 1) + 2


def test_points_are_stable_as_the_series_grows():
    rng = np.random.default_rng(1)
    data = rng.normal(size=50_000)
    data[12_345] = 40.0                                      # a spike must survive every redraw
    b = MinMaxBuckets(64)
    previous: set[int] | None = None
    prev_width = b.width
    for n in range(100, len(data) + 1, 997):
        idx = set(b.indexes(data[:n]).tolist())
        if n > 12_345:
            assert 12_345 in idx
        if previous is not None:
            # complete buckets before the last partial one never change their points
            settled = {i for i in previous if b.bucket_of(i) < (prev_n // b.width) - 1}
            if b.width == prev_width:
                assert settled <= idx
            else:   # the width doubled: points can only drop out, never appear in settled buckets
                stable_region = (prev_n // b.width) * b.width
                assert {i for i in idx if i < stable_region} <= previous
        previous, prev_n, prev_width = idx, n, b.width


def test_output_is_bounded_at_a_million_points():
    s = Series()
    values = np.sin(np.arange(1_000_000) / 1000.0)
    for i in range(0, 1_000_000, 100_000):   # appended in chunks, as a ticker would see them
        for j in range(i, i + 100_000):
            s.append(j, j, values[j])
        idx, y = s.sample()
    assert len(idx) <= 2 * TARGET + 4 and len(idx) >= TARGET
    assert y.max() == values.max() and y.min() == values.min()
    assert idx[-1] == 999_999


def test_smoothing_is_incremental_and_matches_a_full_pass():
    rng = np.random.default_rng(2)
    values = rng.normal(size=3000)
    values[100] = np.nan
    values[200] = np.inf
    sm = Smoothed(0.9)
    sm.update(values[:1000])
    part = sm.update(values).copy()
    full = Smoothed(0.9).update(values)
    np.testing.assert_array_equal(part, full)
    assert np.isnan(full[100]) and full[200] == np.inf           # kept as they are
    assert np.isfinite(full[201]) and abs(full[201] - full[199]) < 1   # and not averaged in
    with pytest.raises(ValueError):
        Smoothed(1.0)


def test_digest_keeps_numbers_per_metric_and_skips_text():
    series: dict[str, Series] = {}
    rows = [{"_step": 0, "_time": 1.0, "a": 1, "b": "text"}, {"_step": 1, "_time": 2.0, "a": 2.5, "c": True},
            {"_step": 5, "_time": 3.0, "c": 1.0, "_cell": 4}]
    assert digest(rows, series) == 3
    assert sorted(series) == ["a", "c"]
    steps, times, values = series["a"].view()
    assert steps.tolist() == [0, 1] and values.tolist() == [1, 2.5] and times.tolist() == [1.0, 2.0]
    assert series["c"].view()[0].tolist() == [5]      # bools are logged as 0/1 by run.log, not here
