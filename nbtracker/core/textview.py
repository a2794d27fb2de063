"""The compact text view of a run for terminals and scripts: last values, best, sparkline."""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from .table import fmt_duration, fmt_value

BLOCKS = "▁▂▃▄▅▆▇█"
WIDTH = 24
MAX_METRICS = 12


def sparkline(values: list[float], width: int = WIDTH) -> str:
    """``values`` as block characters, one per bucket of points (bucket mean); NaN/inf skipped."""
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not finite:
        return ""
    n = len(finite)
    buckets = min(width, n)
    means = []
    for b in range(buckets):
        chunk = finite[b * n // buckets:(b + 1) * n // buckets]
        means.append(sum(chunk) / len(chunk))
    lo, hi = min(means), max(means)
    if hi == lo:
        return BLOCKS[3] * buckets
    return "".join(BLOCKS[min(7, int((m - lo) / (hi - lo) * 8))] for m in means)


def series_of(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for row in rows:
        for k, v in row.items():
            if k[:1] != "_" and type(v) in (int, float):
                out.setdefault(k, []).append(v)
    return out


#: Per metric: (last value, up to WIDTH bucket means of the finite values, min, max).
Stat = tuple[float, list[float], Any, Any]


def stat_of(values: list[float]) -> Stat:
    finite = [v for v in values if math.isfinite(v)]
    n = len(finite)
    buckets = min(WIDTH, n)
    means = []
    for b in range(buckets):
        chunk = finite[b * n // buckets:(b + 1) * n // buckets]
        means.append(sum(chunk) / len(chunk))
    return values[-1], means, (min(finite) if finite else None), (max(finite) if finite else None)


def text_view(run: Any, rows: list[Mapping[str, Any]]) -> str:
    """A few lines: the run, then per metric its last value, sparkline and min/max or best.

    ``run`` is a ``Run`` or a ``RunView`` (anything with name, id, status, primary_metric,
    summary, start_time); ``rows`` its metric rows in order.
    """
    return format_view(run, len(rows), {k: stat_of(v) for k, v in series_of(rows).items()})


def format_view(run: Any, rows: int, stats: Mapping[str, Stat]) -> str:
    pm = run.primary_metric
    summary = dict(run.summary)
    start = getattr(run, "start_time", None)
    end = getattr(run, "end_time", None)
    duration = fmt_duration(end - start) if (start and end) else ""
    head = f"run {run.name} ({run.id}) {run.status}, {rows} rows" + (f", {duration}" if duration else "")
    lines = [head]
    names = list(stats)
    if pm and pm[0] in stats:
        names.remove(pm[0])
        names.insert(0, pm[0])
    width = max((len(n) for n in names[:MAX_METRICS]), default=0)
    for name in names[:MAX_METRICS]:
        last, means, lo, hi = stats[name]
        if pm and name == pm[0] and summary.get("best/" + name) is not None:
            tail = f"best {fmt_value(summary['best/' + name])} @ step {summary.get('best_step/' + name)} ({pm[1]})"
        elif lo is not None:
            tail = f"min {fmt_value(lo)}  max {fmt_value(hi)}"
        else:
            tail = ""
        lines.append(f"  {name.ljust(width)}  {fmt_value(last).rjust(10)}  {sparkline(means).ljust(WIDTH)}  {tail}".rstrip())
    if len(names) > MAX_METRICS:
        lines.append(f"  ... and {len(names) - MAX_METRICS} more metrics")
    return "\n".join(lines)
