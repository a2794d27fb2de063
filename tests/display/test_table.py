"""The runs table: columns, highlights, escaping, sort and filter (no kernel)."""

from __future__ import annotations

import json

import re

import pytest

import nbtracker
from nbtracker.display import html
from nbtracker.display.table import FilterError, RunsTable, matches, parse_filter

EVIL = "<script>window.__pwned=1</script><img src=x onerror=alert(1)>"


@pytest.fixture
def runs():
    for lr, acc, status in ((0.1, 0.5, None), (0.01, 0.9, None), (0.5, 0.7, "crashed"), (0.2, None, None)):
        with nbtracker.init(project="t", config={"lr": lr, "note": EVIL + str(lr), "same": 1}, tags=["sweep"],
                            primary_metric="val/acc", name=f"lr-{lr}") as r:
            r.log({"val/acc": acc, "loss": 1 - (acc or 0)})
            if status:
                r.finish(status)
    return nbtracker.runs(project="t")


def cells_of(table_html: str) -> list[str]:
    return re.findall(r'data-run="([^"]+)"', table_html)


def test_columns_best_highlight_and_differing_config(runs):
    page = html.runs_table(runs)
    labels = [c.label for c in html.columns(runs)]
    assert labels[:5] == ["name", "status", "started", "duration", "steps"]
    assert "val/acc" in labels and "loss" in labels and "lr" in labels
    assert "same" not in labels                              # equal in every run: not shown
    assert page.count("★") == 1 and "★ 0.9" in page           # the best run's best value is marked
    assert "nbtracker-status-crashed" in page
    assert len(cells_of(page)) == 4


def test_every_value_is_escaped(runs, tmp_path):
    page = html.runs_table(runs)
    assert "<script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    # a run name or tag cannot inject either
    with nbtracker.init(project="t2", name='"><b>x</b>', tags=["<i>"]) as r:
        r.log({"a": 1})
    page = html.runs_table(nbtracker.runs(project="t2"))
    assert "<b>x</b>" not in page and "<i>" not in page


def test_sort_and_filter(runs):
    t = RunsTable(runs)
    t.sort, t.descending = "val/acc", True
    names = [r.name for r in t.shown()]
    assert names == ["lr-0.01", "lr-0.5", "lr-0.1", "lr-0.2"]     # the run without a value is last
    t.descending = False
    assert [r.name for r in t.shown()][:3] == ["lr-0.1", "lr-0.5", "lr-0.01"]
    t.sort = "lr"
    assert [r.name for r in t.shown()] == ["lr-0.01", "lr-0.1", "lr-0.2", "lr-0.5"]
    t.filter = "lr>0.1 status=finished"
    assert [r.name for r in t.shown()] == ["lr-0.2"]
    t.filter = "crashed"
    assert [r.name for r in t.shown()] == ["lr-0.5"]
    t.filter = "lr >= 0.1  sweep"
    assert len(t.shown()) == 3
    t.filter = "lr>"
    assert len(t.shown()) == 4 and "incomplete comparison" in t.html()   # a bad filter shows all, says why
    t.filter, t.sort, t.descending = "", "val/acc", True
    assert "val/acc ▼" in t.html()


def test_filter_terms():
    assert parse_filter("a>1 b = x  word") == [("a", ">", "1"), ("b", "=", "x"), ("word", None, None)]
    with pytest.raises(FilterError):
        parse_filter("=3")


def test_nan_never_matches_a_comparison(tmp_path):
    with nbtracker.init(project="n") as r:
        r.log({"m": float("nan")})
    (view,) = nbtracker.runs(project="n")
    assert not matches(view, parse_filter("m>0")) and not matches(view, parse_filter("m<0"))


def test_the_table_is_one_static_html_output_that_sorts_itself(runs):
    """Item 0: no widget, so a saved notebook shows it; sorting and filtering run in the page.
    Next to the HTML, the JupyterLab renderer's data (raw values; the renderer sets them as text)."""
    t = RunsTable(runs)
    bundle = t.bundle()
    assert sorted(bundle) == ["application/vnd.nbtracker.runs+json", "text/html", "text/plain"]
    data = bundle["application/vnd.nbtracker.runs+json"]
    assert [c["label"] for c in data["columns"]][:5] == ["name", "status", "started", "duration", "steps"]
    assert len(data["rows"]) == len(runs) and all(len(r["values"]) == len(data["columns"]) for r in data["rows"])
    json.dumps(data, allow_nan=False)                                # valid JSON for the browser
    page = bundle["text/html"]
    assert page.count("<script>") == 1 and 'class="nbtracker-filter"' in page
    script = page[page.index("<script>"):page.index("</script>")]
    assert "pwned" not in script and "lr-0" not in script          # no run value in the script
    assert "&lt;script&gt;window.__pwned" in page                 # the values, escaped, in the table
    best = next(r for r in runs if r.name == "lr-0.01")
    assert f'data-v="{float(best.best[1])!r}"' in page               # what a header click sorts by
    assert "lr-0.01" in bundle["text/plain"]
    assert t.interactive_html() != t.interactive_html()             # unique ids per output
