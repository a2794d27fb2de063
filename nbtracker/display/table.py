"""The runs table: static HTML everywhere, sortable and filterable with a live kernel."""

from __future__ import annotations

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
        self.widget: Any = None

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

    def build_widget(self) -> Any:
        import ipywidgets as w

        sort = w.Dropdown(options=[("newest first", "")] + [(c.label, c.label) for c in self.cols],
                          value="", description="sort by", layout=w.Layout(width="240px"))
        desc = w.Checkbox(value=False, description="descending", indent=False, layout=w.Layout(width="110px"))
        flt = w.Text(value="", placeholder="filter: words, or key>value (lr<0.01 status=crashed)",
                     description="filter", continuous_update=True, layout=w.Layout(width="420px"))
        out = w.HTML(self.html())
        for ctl, cls in ((sort, "nbtracker-sort"), (desc, "nbtracker-desc"), (flt, "nbtracker-filter"),
                         (out, "nbtracker-table-html")):
            ctl.add_class(cls)

        def changed(_: Any) -> None:
            try:
                self.sort, self.descending, self.filter = sort.value, bool(desc.value), flt.value
                out.value = self.html()
            except Exception as e:  # noqa: BLE001 - never raise into the frontend's message loop
                out.value = f"<pre>nbtracker: {html.e(e)}</pre>"

        for ctl in (sort, desc, flt):
            ctl.observe(changed, names="value")
        box = w.VBox([w.HBox([sort, desc, flt]), out])
        box.add_class("nbtracker-runs")
        self.widget = box
        return box

    def bundle(self, widgets: bool) -> dict[str, Any]:
        data: dict[str, Any] = {"text/html": self.html(), "text/plain": self.text()}
        if widgets:
            box = self.widget or self.build_widget()
            data["application/vnd.jupyter.widget-view+json"] = {
                "version_major": 2, "version_minor": 0, "model_id": box.model_id}
        return data
