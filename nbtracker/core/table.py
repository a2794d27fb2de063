"""Plain-text tables of runs for terminals (CLI, reprs): fixed columns, then what differs."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from .query import RunView

MAX_EXTRA = 6


def fmt_value(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    text = str(v)
    return text if len(text) <= 24 else text[:23] + "…"


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
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def runs_table(runs: Sequence["RunView"]) -> str:
    return render(*runs_columns(runs))


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
