"""Static HTML: run summaries and the runs table. Every value from a run is escaped.

The HTML renders anywhere (GitHub, nbviewer, VS Code, nbconvert): no script, styles inline
or in a ``<style>`` block scoped to ``.nbtracker-table`` (a renderer that strips it still
shows a plain table).
"""

from __future__ import annotations

import math
from html import escape
from typing import Any, Sequence

from .text import differing_config_keys, flatten_config, fmt_duration, fmt_time, summary_metric_keys
from .render import fmt

STATUS_COLORS = {"running": "#0072B2", "finished": "#009E73", "failed": "#D55E00",
                 "crashed": "#D55E00", "interrupted": "#B8860B"}
MAX_METRICS = 8
MAX_CONFIG = 8
FONT = "font-family: var(--jp-ui-font-family, system-ui, sans-serif); font-size: 12px; line-height: 1.35"


def e(v: Any) -> str:
    return escape(str(v), quote=True)


def badge(status: str) -> str:
    color = STATUS_COLORS.get(status, "#666666")
    weight = "bold" if status in ("crashed", "failed", "interrupted") else "normal"
    return (f'<span class="nbtracker-status nbtracker-status-{e(status)}" '
            f'style="color: {color}; font-weight: {weight}">{e(status)}</span>')


def img(b64: str, alt: str) -> str:
    return f'<img src="data:image/png;base64,{b64}" alt="{e(alt)}" style="max-width: 100%">'


def run_summary(run: Any, source: Any = None, hidden: Sequence[str] = ()) -> str:
    """One or two lines: name, status, step, rows, the primary metric's best, last values; and
    which metrics have no panel (``hidden``), with how to show them."""
    parts = [f"<b>{e(run.name)}</b> <span style='color: #666'>({e(run.project)}/{e(run.id)})</span>",
             badge(run.status)]
    if source is not None:
        if source.last_step is not None:
            parts.append(f"step {e(source.last_step)}")
        parts.append(f"{source.rows:,} rows")
    summary = dict(run.summary)
    pm = run.primary_metric
    if pm and summary.get("best/" + pm[0]) is not None:
        parts.append(f"best <b>{e(pm[0])}</b> = <b>{e(fmt(summary['best/' + pm[0]]))}</b> "
                     f"@ step {e(summary.get('best_step/' + pm[0]))} ({e(pm[1])})")
    last = [(k, v) for k, v in summary.items()
            if not k.startswith(("best/", "best_step/")) and isinstance(v, (int, float))][:6]
    line2 = " · ".join(f"{e(k)} {e(fmt(v))}" for k, v in last)
    more = ""
    if hidden:
        names = ", ".join(e(h) for h in hidden[:6]) + (", …" if len(hidden) > 6 else "")
        more = (f'<br><span style="color: #666">{len(hidden)} more metrics without a panel ({names}): '
                "<code>run.display(metrics=[...])</code> picks the panels</span>")
    return (f'<div class="nbtracker-summary" style="{FONT}">' + " · ".join(parts)
            + (f'<br><span style="color: #444">{line2}</span>' if line2 else "") + more + "</div>")


def compare_summary(sources: Sequence[Any], metrics: Sequence[str]) -> str:
    rows = []
    for s in sources:
        cells = []
        for m in metrics:
            series = s.series.get(m)
            cells.append(e(fmt(float(series.view()[2][-1]))) if series is not None and len(series) else "-")
        rows.append(f"<tr><td>{e(s.name)}</td><td>{badge(s.run.status)}</td>"
                    + "".join(f"<td style='text-align: right'>{c}</td>" for c in cells) + "</tr>")
    head = "<tr><th>run</th><th>status</th>" + "".join(f"<th>{e(m)} (last)</th>" for m in metrics) + "</tr>"
    return (f'<table class="nbtracker-table nbtracker-compare" style="{FONT}; border-collapse: collapse">'
            f"<thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>")


# -- the runs table ---------------------------------------------------------------------------
class Column:
    """A column of the runs table: its label, the ``RunView.get`` key it sorts by, its kind."""

    __slots__ = ("label", "key", "kind", "goal")

    def __init__(self, label: str, key: str, kind: str, goal: str | None = None) -> None:
        self.label, self.key, self.kind, self.goal = label, key, kind, goal


def columns(runs: Sequence[Any]) -> list[Column]:
    """Fixed columns, the primary metrics' best values, summary metrics, config that differs."""
    cols = [Column("name", "name", "name"), Column("status", "status", "status"),
            Column("started", "start_time", "time"), Column("duration", "duration", "duration"),
            Column("steps", "steps", "int")]
    primaries: dict[str, str] = {}
    for r in runs:
        pm = r.primary_metric
        if pm:
            primaries.setdefault(pm[0], pm[1])
    for name, goal in primaries.items():
        cols.append(Column(name, "best/" + name, "best", goal))
    metrics = [k for k in summary_metric_keys(runs) if k not in primaries][:MAX_METRICS]
    cols += [Column(k, k, "metric") for k in metrics]
    taken = {c.label for c in cols}
    for k in differing_config_keys(runs)[:MAX_CONFIG]:
        cols.append(Column(k if k not in taken else f"config.{k}", k, "config"))
    return cols


def sort_value(run: Any, col: Column) -> str:
    """What a column sorts by, as ``data-v`` text: a number (``repr``) or text; "" if missing."""
    v = run.best[1] if col.kind == "best" and run.best and run.best[0] == col.label else (
        None if col.kind == "best" else run.get(col.key))
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, (int, float)):
        return "" if isinstance(v, float) and math.isnan(v) else repr(float(v))
    return "" if v is None else str(v)


def _cell(run: Any, col: Column, best_of: dict[str, Any]) -> str:
    return _td(run, col, best_of).replace("<td", f'<td data-v="{e(sort_value(run, col))}"', 1)


def _td(run: Any, col: Column, best_of: dict[str, Any]) -> str:
    if col.kind == "name":
        return f'<td class="nbtracker-name" title="{e(run.id)}"><b>{e(run.name)}</b></td>'
    if col.kind == "status":
        return f"<td>{badge(run.status)}</td>"
    if col.kind == "time":
        return f"<td>{e(fmt_time(run.start_time))}</td>"
    if col.kind == "duration":
        return f"<td style='text-align: right'>{e(fmt_duration(run.duration))}</td>"
    if col.kind == "int":
        return f"<td style='text-align: right'>{e(run.steps)}</td>"
    if col.kind == "best":
        best = run.best
        if not best or best[0] != col.label or best[1] is None:
            return "<td style='text-align: right'>-</td>"
        top = best_of.get(col.label) == best[1]
        style = "text-align: right; background: #e6f4ea; font-weight: bold" if top else "text-align: right"
        mark = "★ " if top else ""
        at = f" <span style='color: #666; font-weight: normal'>@{e(best[2])}</span>" if best[2] is not None else ""
        return f"<td class='nbtracker-best' style='{style}'>{mark}{e(fmt(best[1]))}{at}</td>"
    if col.kind == "metric":
        v = run.summary.get(col.key)
        return f"<td style='text-align: right'>{e(fmt(v)) if v is not None else '-'}</td>"
    flat = flatten_config(run.config)
    v = flat.get(col.key)
    text = "-" if col.key not in flat else (fmt(v) if isinstance(v, float) else str(v))
    if len(text) > 60:
        text = text[:59] + "…"
    return f"<td>{e(text)}</td>"


def _best_of(runs: Sequence[Any], cols: list[Column]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in cols:
        if c.kind != "best":
            continue
        values = [r.best[1] for r in runs if r.best and r.best[0] == c.label
                  and isinstance(r.best[1], (int, float)) and math.isfinite(r.best[1])]
        if values:
            out[c.label] = max(values) if c.goal == "max" else min(values)
    return out


def runs_table(runs: Sequence[Any], cols: list[Column] | None = None, sort: str | None = None,
               descending: bool = False, note: str = "") -> str:
    """The runs as an HTML table; ``sort`` is the label of the sorted column (marked ▲/▼)."""
    cols = cols if cols is not None else columns(runs)
    best_of = _best_of(runs, cols)
    head = []
    for c in cols:
        arrow = (" ▼" if descending else " ▲") if c.label == sort else ""
        hint = {"best": f"best value ({c.goal})", "config": f"config {c.key}", "metric": "last value"}.get(c.kind, "")
        head.append(f'<th title="{e(hint)}" data-key="{e(c.key)}" data-label="{e(c.label)}">{e(c.label)}{arrow}</th>')
    body = []
    for r in runs:
        body.append(f'<tr data-run="{e(r.id)}">' + "".join(_cell(r, c, best_of) for c in cols) + "</tr>")
    caption = f"{len(runs)} run{'s' if len(runs) != 1 else ''}" + (f" · {e(note)}" if note else "")
    return (f'<div class="nbtracker-runs-static" style="{FONT}; overflow-x: auto">'
            "<style>.nbtracker-table td, .nbtracker-table th {padding: 2px 8px; border-bottom: 1px solid #ddd;"
            " white-space: nowrap; line-height: 1.35} .nbtracker-table th {text-align: left}</style>"
            f'<table class="nbtracker-table" style="border-collapse: collapse; line-height: 1.35">'
            f"<caption style='caption-side: top; text-align: left; color: #666'>{caption}</caption>"
            f"<thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")
