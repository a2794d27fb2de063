"""nbtracker's JupyterLab extension in a real JupyterLab 4 (and Notebook 7), headless Chromium.

The server has nbtracker's lab and server extensions installed the way ``pip install`` leaves
them. Each test drives the page as a person would and checks what only a browser shows: the
Runs panel, the run and comparison views, the browser-drawn live chart, hover values, a
reopened notebook with its kernel shut down, hostile names rendered as text.
"""

from __future__ import annotations

import shutil
import time
import uuid

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from ..nbexec import NOTEBOOKS
from .conftest import TOKEN, LabServer, artifacts, open_and_run_all, save_and_shut_down, wait_all_ran

EVIL = "<img src=x onerror='window.__pwned=1'><script>window.__pwned=2</script>"

LIVE = [
    "%load_ext nbtracker\nimport nbtracker, time, math",
    "run = nbtracker.init(project='lab', name='live-run', primary_metric='val/acc', config={'lr': 0.1})",
    # ~8 s of rows at ~300 Hz
    "for i in range(2400):\n    run.log({'train/loss': 1 / (i + 1), 'val/acc': math.sin(i / 400)})\n"
    "    time.sleep(0.003)\nprint('loop done')",
    "run.finish()\n"
    "other = nbtracker.init(project='lab', name='other-run', primary_metric='val/acc', config={'lr': 0.5})\n"
    "for i in range(300):\n    other.log({'train/loss': 2 / (i + 1), 'val/acc': math.cos(i / 100)})\n"
    "other.finish()",
    "nbtracker.runs(project='lab')",
]


def write_notebook(path, cells):
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


def open_runs_panel(page):
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands.hasCommand('nbtracker:show-runs')")
    page.evaluate("async () => { await window.jupyterapp.restored;"
                  " await window.jupyterapp.commands.execute('nbtracker:show-runs'); }")
    page.locator("#nbtracker-runs-panel").wait_for(state="visible")


def run_row(page, name):
    return page.locator("#nbtracker-runs-panel .nbt-run", has=page.locator(".nbt-run-name", has_text=name))


ANSWER = "from nbtracker.display import frontend\nprint('renderer answer:', frontend._answer[0])"


def answer(page) -> str:
    """What the kernel learnt from its comm. Run All queues every cell before the comm's reply,
    so the last cell (ANSWER) is run once more after everything ran."""
    wait_all_ran(page)
    page.evaluate("() => { const nb = window.jupyterapp.shell.currentWidget.content;"
                  " nb.activeCellIndex = nb.widgets.length - 1;"
                  " window.jupyterapp.commands.execute('notebook:run-cell'); }")
    count = len(page.locator(".jp-Notebook .jp-Cell").all())
    page.wait_for_function("(n) => { const w = window.jupyterapp.shell.currentWidget;"
                           " const c = w.content.widgets[n - 1];"
                           " return c.model.executionCount > n && w.sessionContext.session.kernel.status === 'idle'; }",
                           arg=count)
    out = page.locator(".jp-OutputArea-output pre", has_text="renderer answer:")
    return out.inner_text().split(":", 1)[1].strip()


def updates(chart) -> int:
    return int(chart.get_attribute("data-updates") or 0)


def test_live_chart_is_drawn_by_the_extension_and_the_panel_follows_the_run(lab_server, page):
    """notebooks/jupyterlab_tour.ipynb, run all: the live chart is uPlot, moving at least once a
    second while the loop runs; the panel lists the run as running, then finished without a
    reload; the run opens in the main area with its chart and hover values; two runs overlay
    in a comparison; the runs table and the comparison output are interactive."""
    shutil.copy(NOTEBOOKS / "jupyterlab_tour.ipynb", lab_server.work / "live.ipynb")
    open_and_run_all(page, lab_server.base, "live.ipynb")
    chart = page.locator(".jp-Notebook .jp-Cell").nth(2).locator(".nbtracker-chart-output")
    chart.wait_for(state="visible", timeout=60_000)
    open_runs_panel(page)
    row = run_row(page, "live-run")
    row.wait_for()
    # while the loop runs: the chart changes at least once a second, drawn on canvases
    page.wait_for_function("() => { const c = document.querySelectorAll('.jp-Cell')[2]"
                           ".querySelector('.nbtracker-chart-output'); return c && +c.dataset.updates >= 2; }",
                           timeout=60_000)
    assert row.get_attribute("data-status") == "running"
    seen = []
    for _ in range(4):
        seen.append((time.monotonic(), updates(chart), int(chart.get_attribute("data-points") or 0)))
        time.sleep(1.0)
    page.screenshot(path=str(artifacts() / "ext-live-chart.png"))
    counts = [u for _, u, _ in seen]
    assert all(b > a for a, b in zip(counts, counts[1:])), f"chart updates per second: {counts}"
    assert chart.locator("canvas").count() >= 2                  # one uPlot per metric
    assert chart.locator("img").count() == 0                     # not the PNG, not the widget
    page.locator(".jp-OutputArea-output pre", has_text="loop done").wait_for(timeout=60_000)
    wait_all_ran(page)
    # finished, without reloading anything
    page.wait_for_function("() => { const r = [...document.querySelectorAll('#nbtracker-runs-panel .nbt-run')]"
                           ".find(e => e.querySelector('.nbt-run-name').textContent === 'live-run');"
                           " return r && r.dataset.status === 'finished'; }", timeout=30_000)
    assert "2400 steps" in row.inner_text()
    page.locator("#nbtracker-runs-panel").screenshot(path=str(artifacts() / "ext-runs-panel.png"))
    # the final chart holds the whole run, drawn from data in the output
    assert chart.get_attribute("data-status") == "finished"

    # open the run: main-area view with its chart; hover shows a value
    row.locator(".nbt-run-name").click()
    view = page.locator(".nbt-run-view").last
    view.locator(".u-over").first.wait_for()
    over = view.locator(".u-over").first
    box = over.bounding_box()
    legend_values = view.locator(".nbt-panel").first.locator(".u-legend .u-value")
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)
    page.wait_for_function("(v) => { const e = document.querySelectorAll("
                           "'.nbt-run-view .nbt-panel .u-legend .u-value');"
                           " return e.length > 1 && e[1].textContent !== '--' && e[1].textContent !== ''; }", arg=None)
    hovered = legend_values.nth(1).inner_text()
    float(hovered)                                            # a number under the cursor
    page.screenshot(path=str(artifacts() / "ext-run-view.png"))
    # the other tabs: config, cells (which cell produced which steps), code
    view.locator("button.nbt-tab", has_text="cells").click()
    cells = view.locator("table.nbt-cells tbody tr")
    cells.first.wait_for()
    texts = cells.all_inner_texts()
    assert any("0–2399" in t and "2400" in t for t in texts), texts
    page.screenshot(path=str(artifacts() / "ext-run-cells.png"))
    view.locator("button.nbt-tab", has_text="code").click()
    view.locator("pre.nbt-code-clean").wait_for()
    assert "run.log" in view.locator("pre.nbt-code-clean").inner_text()
    view.locator("button.nbt-tab", has_text="config").click()
    assert "lr" in view.locator("table.nbt-config").inner_text()

    # compare two runs from the panel
    open_runs_panel(page)
    run_row(page, "other-run").wait_for()
    run_row(page, "live-run").locator("input").check()
    run_row(page, "other-run").locator("input").check()
    page.locator("#nbtracker-runs-panel button.nbt-compare-button").click()
    cmp = page.locator(".nbt-compare-view").last
    cmp.locator(".u-over").first.wait_for()
    legend = cmp.locator(".nbt-panel").first.locator(".u-legend").inner_text()
    assert "live-run" in legend and "other-run" in legend
    diff = cmp.locator("table.nbt-diff-table")
    diff.wait_for()
    assert "config.lr" in diff.inner_text() and "0.5" in diff.inner_text()
    page.screenshot(path=str(artifacts() / "ext-compare.png"))
    # back in the notebook: the comparison output is drawn by the extension, the table too
    page.locator(".lm-TabBar-tab", has_text="live.ipynb").click()
    outputs = page.locator(".jp-Notebook .jp-Cell")
    compare_out = outputs.nth(6).locator(".nbtracker-chart-output")
    compare_out.locator("canvas").first.wait_for()
    assert "live-run" in compare_out.locator(".u-legend").first.inner_text()
    table = outputs.nth(5).locator(".nbtracker-runs-output")
    table.locator("tbody tr").nth(1).wait_for()
    table.locator("tbody tr", has_text="live-run").locator("input").check()
    table.locator("tbody tr", has_text="other-run").locator("input").check()
    table.locator("select").select_option("val/acc")
    table.locator("button.nbt-overlay-button").click()
    overlay = table.locator(".nbt-overlay .u-legend")
    overlay.wait_for()
    assert "live-run" in overlay.inner_text() and "other-run" in overlay.inner_text()
    table.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts() / "ext-runs-table-overlay.png"))


def test_saved_notebook_reopened_with_the_kernel_shut_down_keeps_the_interactive_chart(lab_server, page):
    cells = LIVE[:2] + ["for i in range(500):\n    run.log({'loss': 1 / (i + 1)})", "run.finish()", LIVE[4]]
    write_notebook(lab_server.work / "reopen.ipynb", cells)
    open_and_run_all(page, lab_server.base, "reopen.ipynb")
    wait_all_ran(page)
    save_and_shut_down(page)
    saved = nbformat.read(str(lab_server.work / "reopen.ipynb"), as_version=4)
    out = saved.cells[1].outputs[0]["data"]
    assert {"application/vnd.nbtracker.chart+json", "image/png", "text/html"} <= set(out)
    # reopened: Lab gives it a fresh kernel that has run nothing; the charts come from the file
    page.goto(f"{lab_server.base}/lab/workspaces/r{uuid.uuid4().hex[:8]}/tree/reopen.ipynb?token={TOKEN}")
    chart = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".nbtracker-chart-output")
    chart.locator("canvas").first.wait_for()
    assert chart.get_attribute("data-status") == "finished"
    # still interactive: hover shows a value, log y re-draws
    over = chart.locator(".u-over").first
    box = over.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
    value = chart.locator(".nbt-panel").first.locator(".u-legend .u-value").nth(1)
    page.wait_for_function("(e) => e.textContent !== '--'", arg=value.element_handle())
    float(value.inner_text())
    chart.locator("input.nbt-log").check()
    # the runs table renders interactively too: sort, filter, overlay
    table = page.locator(".nbtracker-runs-output table.nbt-table")
    table.locator("tbody tr").first.wait_for()
    table.locator("th", has_text="steps").click()
    assert "▲" in table.locator("th", has_text="steps").inner_text()
    page.screenshot(path=str(artifacts() / "ext-reopened-without-kernel.png"), full_page=True)


def test_hostile_names_keys_and_values_are_text_everywhere(lab_server, page):
    cells = ["%load_ext nbtracker\nimport nbtracker",
             f"evil = nbtracker.init(project='hostile', name={EVIL!r}, tags=[{EVIL!r}], notes={EVIL!r}, "
             f"config={{{EVIL!r}: {EVIL!r}}}, primary_metric={EVIL!r})\n"
             f"for i in range(20):\n    evil.log({{{EVIL!r}: i, 'ok': i}})\n"
             f"evil.summary[{EVIL!r}] = {EVIL!r}\nevil.finish()",
             "nbtracker.runs(project='hostile')"]
    write_notebook(lab_server.work / "hostile.ipynb", cells)
    open_and_run_all(page, lab_server.base, "hostile.ipynb")
    wait_all_ran(page)
    page.locator(".nbtracker-runs-output table.nbt-table tbody tr").first.wait_for()
    open_runs_panel(page)
    row = page.locator("#nbtracker-runs-panel .nbt-run[data-key^='hostile/']")
    row.wait_for()
    assert EVIL in row.locator(".nbt-run-name").inner_text()     # shown as the text it is
    row.locator(".nbt-run-name").click()
    view = page.locator(".nbt-run-view").last
    view.locator(".u-over").first.wait_for()
    for tab in ("config", "cells", "code"):
        view.locator("button.nbt-tab", has_text=tab).click()
        time.sleep(0.5)
    row.locator("input").check()
    page.screenshot(path=str(artifacts() / "ext-hostile.png"))
    assert page.evaluate("() => window.__pwned") is None


def test_notebook7_draws_the_live_chart(lab_server, page):
    loop = "for i in range(300):\n    run.log({'loss': 1 / (i + 1)})\nrun.finish()"
    write_notebook(lab_server.work / "nb7.ipynb", [*LIVE[:2], loop, ANSWER])
    page.goto(f"{lab_server.base}/notebooks/nb7.ipynb?token={TOKEN}")
    page.wait_for_function(
        "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " return !!(w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel"
        " && w.sessionContext.session.kernel.status === 'idle'); }", timeout=90_000)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").click()
    page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()
    chart = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".nbtracker-chart-output")
    chart.locator("canvas").first.wait_for()
    page.wait_for_function("(e) => e.dataset.status === 'finished'", arg=chart.element_handle(), timeout=60_000)
    page.screenshot(path=str(artifacts() / "ext-notebook7.png"))
    assert answer(page) == "True"          # the extension answered the kernel's comm


@pytest.fixture(scope="module")
def lab_without_labextension(tmp_path_factory):
    server = LabServer(tmp_path_factory.mktemp("lab-nolabext"), labextension=False)
    yield server
    server.stop("server-labextension-disabled")


def test_with_the_lab_extension_disabled_the_png_shows(lab_without_labextension, page):
    """The server extension is still on (its hint says a renderer is there); the browser has
    none: the outputs fall back to the PNG and HTML they carry, and the comm tells the kernel."""
    server = lab_without_labextension
    loop = "for i in range(300):\n    run.log({'loss': 1 / (i + 1)})"
    write_notebook(server.work / "plain.ipynb", [*LIVE[:2], loop, "run.finish()", ANSWER])
    open_and_run_all(page, server.base, "plain.ipynb")
    wait_all_ran(page)
    img = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea-output img")
    img.first.wait_for()
    assert img.first.evaluate("e => e.naturalWidth") > 0
    assert page.locator(".nbtracker-chart-output").count() == 0
    assert page.locator("#nbtracker-runs-panel").count() == 0
    page.screenshot(path=str(artifacts() / "ext-disabled-png.png"))
    # the kernel was told: Lab closed its comm (no such target), so later cells use widgets
    assert answer(page) == "False"


def test_the_run_view_shows_hidden_state_local_modules_and_git(lab_server, page, tmp_path):
    """A run made in a kernel (nbclient) whose notebook file lost the cell that defined ``lr``,
    with a local module: its code tab lists the hidden state and the captured module."""
    from ..nbexec import execute, notebook

    (tmp_path / "helpers.py").write_text("def factor():\n    return 2\n")
    cells = ["%load_ext nbtracker\nimport nbtracker\nfrom helpers import factor", "lr = 0.5",
             "run = nbtracker.init(project='hidden', name='hidden-run')\n"
             "for i in range(5):\n    run.log({'loss': lr * factor() / (i + 1)})\nrun.finish()"]
    saved = tmp_path / "hidden.ipynb"
    nbformat.write(notebook(cells[0], cells[2]), str(saved))
    execute(notebook(*cells), cwd=tmp_path, run_root=lab_server.runs, env={"NBTRACKER_NOTEBOOK": str(saved)})
    page.goto(f"{lab_server.base}/lab/workspaces/h{uuid.uuid4().hex[:8]}?token={TOKEN}")
    open_runs_panel(page)
    run_row(page, "hidden-run").locator(".nbt-run-name").click()
    view = page.locator(".nbt-run-view").last
    view.locator("button.nbt-tab", has_text="code").click()
    hidden = view.locator("ul.nbt-hidden-state li")
    hidden.first.wait_for()
    assert any("'lr' is read by cell [3]" in t for t in hidden.all_inner_texts()), hidden.all_inner_texts()
    assert "helpers.py v1" in view.locator("ul.nbt-modules").inner_text()
    page.screenshot(path=str(artifacts() / "ext-hidden-state.png"))
