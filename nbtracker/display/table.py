"""The runs table: static HTML that sorts and filters itself where the frontend trusts it.

The output is one ``text/html`` (plus ``text/plain``): the table, a filter box and a small
script. JupyterLab, Notebook 7, VS Code and nbconvert's HTML run the script for outputs they
trust (outputs of this session, and notebooks signed when saved), so clicking a header sorts
and typing filters, also after a reload with no kernel. Where scripts do not run (GitHub, an
untrusted notebook), it is the same table, static. No widget: nothing to lose on reopening.
The same filter language works in Python: ``RunsTable(runs).filter = "lr<0.1"``.
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Any, Sequence

from ..core.query import RunList
from .text import flatten_config
from .text import runs_table as text_table
from . import html

_OPS = ("!=", ">=", "<=", "==", "=", ">", "<")
_OP_RE = re.compile(r"\s*(!=|>=|<=|==|=|>|<)\s*")


class FilterError(ValueError):
    pass


def parse_filter(text: str) -> list[tuple[str, str | None, Any]]:
    """``"lr>0.01 status=finished adam"`` -> [(key, op, value) ...]; a bare word is (word, None, None).

    Every term must hold: comparisons use ``RunView.get`` (summary, config, metadata);
    a bare word matches the name, id, status, tags, group, notes or a config value.
    """
    terms: list[tuple[str, str | None, Any]] = []
    for token in _OP_RE.sub(lambda m: m.group(1), text.strip()).split():
        for op in _OPS:
            key, sep, value = token.partition(op)
            if sep:
                if not key or not value:
                    raise FilterError(f"incomplete comparison {token!r}: write key{op}value")
                terms.append((key, "=" if op == "==" else op, value))
                break
        else:
            terms.append((token.lower(), None, None))
    return terms


def matches(run: Any, terms: list[tuple[str, str | None, Any]]) -> bool:
    for key, op, want in terms:
        if op is None:
            hay = [run.name, run.id, run.status, run.group or "", run.notes or "", *run.tags,
                   *(str(v) for v in flatten_config(run.config).values())]
            if not any(key in str(h).lower() for h in hay):
                return False
            continue
        have = run.get(key)
        if have is None:
            return False
        a: Any
        b: Any
        if isinstance(have, float) and math.isnan(have):
            return False                      # NaN is neither above nor below anything
        try:
            a, b = float(have), float(want)   # numbers compare as numbers ("1e-3" == 0.001)
            if isinstance(have, (str, bool)):
                raise ValueError
        except (TypeError, ValueError):
            a, b = str(have), str(want)
        ok = {"=": a == b, "!=": a != b, ">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[op]
        if not ok:
            return False
    return True


class RunsTable:
    """A runs table with sort and filter state; ``html()`` is the static table."""

    def __init__(self, runs: Sequence[Any]) -> None:
        self.runs = list(runs)
        self.cols = html.columns(self.runs)
        self.sort: str = ""           # a column label, "" = as listed (newest first)
        self.descending = False
        self.filter = ""
        self.error = ""

    def shown(self) -> list[Any]:
        """The runs after the filter and the sort."""
        try:
            terms = parse_filter(self.filter)
            self.error = ""
        except FilterError as e:
            terms, self.error = [], str(e)
        picked = [r for r in self.runs if matches(r, terms)]
        col = next((c for c in self.cols if c.label == self.sort), None)
        if col is not None:
            picked = list(RunList(picked).sort(col.key, self.descending))
        return picked

    def html(self) -> str:
        shown = self.shown()
        note = []
        if self.filter:
            note.append(f"filter {self.filter!r}: {len(shown)} of {len(self.runs)}")
        if self.error:
            note.append(self.error)
        return html.runs_table(shown, self.cols, self.sort or None, self.descending, "; ".join(note))

    def text(self) -> str:
        return text_table(self.runs) if self.runs else "<RunList: no runs>"

    def interactive_html(self) -> str:
        """The table with its filter box and sorting script (ids unique per output)."""
        uid = f"nbtracker-runs-{next(_ids)}-{id(self) & 0xffffff:x}"
        return (f'<div class="nbtracker-runs" id="{uid}">'
                f'<input class="nbtracker-filter" type="search" placeholder="filter: words, or key&gt;value '
                f'(lr&lt;0.01 status=crashed)" style="width: 26em; margin: 2px 0 4px 0; font-size: 12px">'
                f"{self.html()}<script>{_SCRIPT.replace('__ID__', uid)}</script></div>")

    def payload(self) -> dict[str, Any]:
        """The JupyterLab renderer's data (``application/vnd.nbtracker.runs+json``): columns,
        one row per run with raw values (sorted and filtered in the browser), the metrics that
        can be overlaid."""
        rows = [{"key": f"{r.project}/{r.id}", "name": r.name, "status": r.status,
                 "values": [_json_value(_raw(r, c)) for c in self.cols]} for r in self.runs]
        metrics = sorted({k for r in self.runs for k, v in r.summary.items()
                          if not k.startswith(("best/", "best_step/")) and type(v) in (int, float)})
        return {"version": 1, "columns": [{"label": c.label, "kind": c.kind} for c in self.cols],
                "rows": rows, "metrics": metrics}

    def bundle(self) -> dict[str, Any]:
        return {RUNS_MIME: self.payload(), "text/html": self.interactive_html(), "text/plain": self.text()}


RUNS_MIME = "application/vnd.nbtracker.runs+json"


def _raw(run: Any, col: Any) -> Any:
    if col.kind == "best":
        return run.best[1] if run.best and run.best[0] == col.label else None
    if col.kind == "duration":
        return run.duration
    if col.key == "steps":
        return run.steps
    return run.get(col.key)


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if v != v else str(v)
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


_ids = itertools.count(1)

# Sorting and filtering in the browser, on the data-v values the table carries. Kept small and
# free of any value from a run: the table's text is escaped HTML, never script.
_SCRIPT = r"""
(function () {
  var root = document.getElementById('__ID__');
  if (!root || root.dataset.ready) { return; }
  root.dataset.ready = '1';
  var table = root.querySelector('table.nbtracker-table'), body = table.tBodies[0];
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells), box = root.querySelector('input');
  var rows = Array.prototype.slice.call(body.rows), sorted = -1, down = false;
  var caption = table.caption, total = rows.length;
  function num(v) { return v === '' ? NaN : Number(v); }
  function cmp(a, b) {
    var x = num(a), y = num(b);
    if (a === '' || b === '') { return a === b ? 0 : (a === '' ? 1 : -1); }
    if (!isNaN(x) && !isNaN(y)) { return x - y; }
    return a < b ? -1 : (a > b ? 1 : 0);
  }
  heads.forEach(function (th, i) {
    th.style.cursor = 'pointer';
    th.addEventListener('click', function () {
      down = sorted === i ? !down : false; sorted = i;
      heads.forEach(function (h) { h.textContent = h.dataset.label; });
      th.textContent = th.dataset.label + (down ? ' ▼' : ' ▲');
      rows.sort(function (r, s) {
        var a = r.cells[i].dataset.v, b = s.cells[i].dataset.v;
        if (a === '' || b === '') { return cmp(a, b); }
        return down ? cmp(b, a) : cmp(a, b);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  function column(key) {
    for (var i = 0; i < heads.length; i++) {
      if (heads[i].dataset.key === key || heads[i].dataset.label === key) { return i; }
    }
    return -1;
  }
  function keep(row, terms) {
    for (var t = 0; t < terms.length; t++) {
      var m = /^(.+?)(!=|>=|<=|==|=|>|<)(.+)$/.exec(terms[t]);
      if (!m) { if (row.textContent.toLowerCase().indexOf(terms[t].toLowerCase()) < 0) { return false; } continue; }
      var i = column(m[1]); if (i < 0) { return false; }
      var v = row.cells[i].dataset.v; if (v === '') { return false; }
      var c = cmp(v, m[3]), op = m[2] === '==' ? '=' : m[2];
      if (!isNaN(num(v)) && !isNaN(num(m[3]))) { c = num(v) - num(m[3]); }
      if (!({'=': c === 0, '!=': c !== 0, '>': c > 0, '<': c < 0, '>=': c >= 0, '<=': c <= 0})[op]) { return false; }
    }
    return true;
  }
  box.addEventListener('input', function () {
    var text = box.value.replace(/\s*(!=|>=|<=|==|=|>|<)\s*/g, '$1').trim();
    var terms = text ? text.split(/\s+/) : [], shown = 0;
    rows.forEach(function (r) { var ok = keep(r, terms); r.style.display = ok ? '' : 'none'; shown += ok; });
    caption.textContent = total + (total === 1 ? ' run' : ' runs') + (terms.length ? ' · filter: ' + shown + ' shown' : '');
  });
})();
"""
