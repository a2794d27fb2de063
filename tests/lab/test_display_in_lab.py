"""The live chart and the runs table in JupyterLab, in headless Chromium: what only a browser shows."""

from __future__ import annotations

import json
import time

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from .conftest import artifacts, open_and_run_all

EVIL = "<script>window.__pwned = 1</script><img src=x onerror='window.__pwned=2'>"
CELLS = [
    "%load_ext nbtracker\nimport nbtracker, time\n"
    f"run = nbtracker.init(project='b', name='first', config={{'lr': 0.1, 'note': {EVIL!r}}}, "
    "primary_metric='val/acc')",
    "for i in range(120):\n    run.log({'train/loss': 1 / (i + 1), 'val/acc': i / 120})\n    time.sleep(0.1)\n"
    "print('loop done')",
    "run.finish()\nfor lr in (0.01, 0.5):\n"
    "    with nbtracker.init(project='b', config={'lr': lr, 'note': 'x'}, primary_metric='val/acc') as r:\n"
    "        r.log({'val/acc': lr})",
    "nbtracker.runs(project='b')",
]


def write_notebook(path):
    nb = new_notebook(cells=[new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


def test_live_chart_updates_in_place_and_runs_table_sorts_filters_and_escapes(lab, page):
    base, work, runs = lab
    write_notebook(work / "display.ipynb")
    open_and_run_all(page, base, "display.ipynb")

    chart = page.locator(".nbtracker-live img").first
    chart.wait_for(state="visible")
    srcs = []
    done = page.locator(".jp-OutputArea-output pre", has_text="loop done")
    deadline = time.monotonic() + 60
    while not done.count() and time.monotonic() < deadline:
        src = chart.get_attribute("src")
        if src and src not in srcs:
            srcs.append(src)
        time.sleep(0.1)
    assert done.count(), "the training loop did not finish in 60 s"
    assert len(srcs) >= 3, f"the chart changed {len(srcs) - 1} times while the loop ran"
    assert chart.evaluate("e => e.naturalWidth") > 0
    page.screenshot(path=str(artifacts() / "live-chart.png"))

    rows = page.locator(".nbtracker-runs table.nbtracker-table tbody tr")
    rows.nth(2).wait_for()
    assert rows.count() == 3
    summaries = {}
    for run_json in runs.glob("b/*/run.json"):
        doc = json.loads(run_json.read_text())
        summaries[doc["id"]] = doc["summary"]["val/acc"]
    expected = sorted(summaries, key=lambda k: summaries[k], reverse=True)
    page.locator(".nbtracker-sort select").select_option("val/acc")
    page.locator(".nbtracker-desc input").check()
    page.wait_for_function(
        "(first) => { const r = document.querySelector('.nbtracker-runs table.nbtracker-table tbody tr');"
        " return r && r.getAttribute('data-run') === first; }", arg=expected[0], timeout=10_000)
    assert [rows.nth(i).get_attribute("data-run") for i in range(3)] == expected
    assert "▼" in page.locator(".nbtracker-runs th", has_text="val/acc").inner_text()
    page.locator(".nbtracker-runs").screenshot(path=str(artifacts() / "runs-table-sorted.png"))

    table_text = page.locator(".nbtracker-runs table.nbtracker-table").inner_text()
    assert "<script>window.__pwned = 1</script>" in table_text        # shown as text
    assert page.evaluate("() => window.__pwned") is None              # and never run

    page.locator(".nbtracker-filter input").fill("first")
    page.wait_for_function(
        "() => document.querySelectorAll('.nbtracker-runs table.nbtracker-table tbody tr').length === 1",
        timeout=10_000)
    assert page.locator(".nbtracker-runs .nbtracker-name").inner_text() == "first"
    page.locator(".nbtracker-filter input").fill("lr<0.2")
    page.wait_for_function(
        "() => document.querySelectorAll('.nbtracker-runs table.nbtracker-table tbody tr').length === 2",
        timeout=10_000)
    assert page.evaluate("() => window.__pwned") is None
