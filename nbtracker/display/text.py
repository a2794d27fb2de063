"""Pure-text views for terminals and scripts: runs tables, the run text view, safe text.

Standard library only (no matplotlib, ipywidgets or numpy): the CLI, ``repr`` of run lists
and the summary a script prints at ``finish()`` use it without loading the notebook display.
"""

from __future__ import annotations

import math
import re
import threading
import time
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    from ..core.query import RunView

MAX_EXTRA = 6
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def term(text: Any) -> str:
    """``text`` safe to print on a terminal: control characters (ESC, BEL, newlines, ...) and
    lone surrogates shown as escapes (``\\x1b``, ``\\udcff``), so stored text can neither
    move the cursor nor make printing fail."""
    s = text if type(text) is str else str(text)
    if not _CONTROL.search(s):
        return s
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii")
                        if not "\ud800" <= m.group() <= "\udfff" else f"\\u{ord(m.group()):04x}", s)


def fmt_value(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    text = term(v)
    return text if len(text) <= 24 else text[:23] + "…"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"   # pragma: no cover


def fmt_time(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def differing_config_keys(runs: Sequence["RunView"]) -> list[str]:
    """Flattened config keys whose value is not the same in every listed run."""
    flat = [flatten_config(r.config) for r in runs]
    keys: dict[str, None] = {}
    for f in flat:
        keys.update(dict.fromkeys(f))
    if len(runs) < 2:
        return list(keys)
    return [k for k in keys if len({repr(f.get(k)) for f in flat}) > 1]


def summary_metric_keys(runs: Sequence["RunView"]) -> list[str]:
    keys: dict[str, None] = {}
    for r in runs:
        for k, v in r.summary.items():
            if not k.startswith(("best/", "best_step/")) and isinstance(v, (int, float)):
                keys[k] = None
    return list(keys)


def runs_columns(runs: Sequence["RunView"]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the runs table (shared by the CLI and the text repr)."""
    primaries = sorted({r.best[0] for r in runs if r.best})
    metrics = [k for k in summary_metric_keys(runs) if k not in primaries][:MAX_EXTRA]
    config = differing_config_keys(runs)[:MAX_EXTRA]
    header = ["id", "name", "project", "status", "started", "duration", "steps"]
    header += [f"best {p}" for p in primaries] + metrics + [f"config.{k}" for k in config]
    rows = []
    for r in runs:
        best = r.best
        row = [r.id, r.name, r.project, r.status, fmt_time(r.start_time), fmt_duration(r.duration), str(r.steps)]
        for p in primaries:
            row.append(fmt_value(best[1]) + (f" @{best[2]}" if best[2] is not None else "")
                       if best and best[0] == p and best[1] is not None else "-")
        summary = r.summary
        row += [fmt_value(summary.get(k)) for k in metrics]
        flat = flatten_config(r.config)
        row += [fmt_value(flat.get(k)) for k in config]
        rows.append([str(c) for c in row])
    return header, rows


def render(header: list[str], rows: list[list[str]]) -> str:
    """Aligned columns; every cell is made terminal-safe first."""
    header = [term(h) for h in header]
    rows = [[term(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def runs_table(runs: Sequence["RunView"]) -> str:
    text = render(*runs_columns(runs)) if len(runs) else "<RunList: no runs>"
    for path, reason in getattr(runs, "unreadable", ()):
        text += f"\nunreadable: {term(path.parent.name)}/{term(path.name)} ({term(reason)})"
    return text


def flatten_config(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config dicts as one level of dotted keys."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            if isinstance(v, dict) and v:
                out.update(flatten_config(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
    return out


# -- the text view of one run -------------------------------------------------------------------
BLOCKS = "▁▂▃▄▅▆▇█"
WIDTH = 24
MAX_METRICS = 12


def bucket_means(values: list[float], width: int = WIDTH) -> list[float]:
    """The means of at most ``width`` consecutive, nearly equal buckets of ``values``."""
    n = len(values)
    buckets = min(width, n)
    return [math.fsum(values[b * n // buckets:(b + 1) * n // buckets]) / ((b + 1) * n // buckets - b * n // buckets)
            for b in range(buckets)]


def sparkline(values: list[float], width: int = WIDTH) -> str:
    """``values`` as block characters, one per bucket of points (bucket mean); NaN/inf skipped."""
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not finite:
        return ""
    means = bucket_means(finite, width)
    lo, hi = min(means), max(means)
    if hi == lo:
        return BLOCKS[3] * len(means)
    return "".join(BLOCKS[min(7, int((m - lo) / (hi - lo) * 8))] for m in means)


#: Per metric: (last value, up to WIDTH bucket means of the finite values, min, max).
Stat = tuple[float, list[float], Any, Any]


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


class TextStats:
    """What the text view of a run needs, kept up to date as rows are logged, in bounded memory.

    Per metric: the last value, min and max of the finite values, and the means of at most
    ``4 * WIDTH`` equal buckets (bucket width doubles as the series grows). ``push`` (on every
    ``log``) only appends the row's values as one tuple (a fraction of a microsecond); ``fold``
    (every ``FOLD_EVERY`` rows, and before reading) splits them into columns, so ``finish()``
    costs the same at a thousand rows and at millions, and memory stays bounded.
    """

    FOLD_EVERY = 16_384

    def __init__(self) -> None:
        self.rows = 0
        self.metrics: dict[str, _Running] = {}
        # Consecutive rows with the same keys share a segment: (keys, flat list of their values).
        # No container is kept per row: numbers are not tracked by the cyclic GC, so a long
        # pending list costs the garbage collector nothing (a tuple per row made it run often).
        self._pending: list[tuple[tuple[str, ...], list[Any]]] = []
        self._keys: tuple[str, ...] | None = None
        self._flat: list[Any] = []
        self._count = 0
        self._lock = threading.Lock()

    def push(self, row: Mapping[str, Any]) -> None:
        keys = tuple(row)
        if keys != self._keys:
            self._keys, self._flat = keys, []
            self._pending.append((keys, self._flat))
        self._flat.extend(row.values())
        self._count += 1
        if self._count >= self.FOLD_EVERY:
            self.fold()

    def fold(self) -> None:
        with self._lock:
            pending, self._pending, self._keys = self._pending, [], None
            self.rows += self._count
            self._count = 0
            for keys, flat in pending:   # in logging order
                width = len(keys)
                for j, name in enumerate(keys):
                    if name[:1] == "_":
                        continue
                    numbers = [v for v in flat[j::width] if type(v) is float or type(v) is int]
                    if not numbers:
                        continue
                    metric = self.metrics.get(name)
                    if metric is None:
                        metric = self.metrics[name] = _Running()
                    metric.extend(numbers)

    def stats(self) -> dict[str, Stat]:
        self.fold()
        return {k: m.stat() for k, m in self.metrics.items()}


class _Running:
    __slots__ = ("last", "lo", "hi", "width", "buckets", "psum", "pcount")

    def __init__(self) -> None:
        self.last: float = math.nan
        self.lo: float | None = None
        self.hi: float | None = None
        self.width = 1
        self.buckets: list[tuple[float, int]] = []
        self.psum = 0.0
        self.pcount = 0

    def extend(self, values: list[float]) -> None:
        self.last = values[-1]
        finite = [v for v in values if v - v == 0]      # NaN and +-inf give NaN
        if not finite:
            return
        lo, hi = min(finite), max(finite)
        self.lo = lo if self.lo is None else min(self.lo, lo)
        self.hi = hi if self.hi is None else max(self.hi, hi)
        i, n = 0, len(finite)
        while i < n:
            take = min(self.width - self.pcount, n - i)
            self.psum += math.fsum(finite[i:i + take]) if take > 1 else finite[i]
            self.pcount += take
            i += take
            if self.pcount == self.width:
                self.buckets.append((self.psum, self.pcount))
                self.psum, self.pcount = 0.0, 0
                if len(self.buckets) >= 4 * WIDTH:   # merge pairs: half as many, twice as wide
                    b = self.buckets
                    self.buckets = [(b[j][0] + b[j + 1][0], b[j][1] + b[j + 1][1]) for j in range(0, len(b), 2)]
                    self.width *= 2

    def stat(self) -> Stat:
        parts = self.buckets + ([(self.psum, self.pcount)] if self.pcount else [])
        # equal-sized buckets (but the last): the mean of their means is the mean of the values
        means = bucket_means([s / c for s, c in parts])
        return self.last, means, self.lo, self.hi
