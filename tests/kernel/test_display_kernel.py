"""The inline display in a real kernel (nbclient): live chart output, tables, saved notebook."""

from __future__ import annotations

import base64
import json
import os
import re

import nbformat
import pytest
from nbclient import NotebookClient

import nbtracker
from nbtracker.display.views import LiveView
from tests.nbexec import execute, notebook, outputs, stream_text

pytestmark = pytest.mark.kernel

WIDGET = "application/vnd.jupyter.widget-view+json"
CHART = "application/vnd.nbtracker.chart+json"
EVIL = "<script>window.__pwned=1</script>"


def train_notebook(steps: int) -> nbformat.NotebookNode:
    return notebook(
        "%load_ext nbtracker\nimport nbtracker, math",
        f"run = nbtracker.init(project='k', primary_metric='val/acc', config={{'note': {EVIL!r}}})",
        f"for i in range({steps}):\n    run.log({{'train/loss': 1 / (i + 1), 'val/acc': math.sin(i / 300)}})",
        "run.finish()",
        "nbtracker.runs(project='k')",
        "nbtracker.compare(nbtracker.runs(project='k'), 'val/acc')",
    )


def test_live_chart_output_is_static_first_and_ends_on_the_last_step(tmp_path, run_root):
    nb = execute(train_notebook(2000), cwd=tmp_path, run_root=run_root)
    assert "failed" not in stream_text(nb.cells, "stderr") + stream_text(nb.cells)
    (out,) = outputs(nb.cells[1])
    assert out["output_type"] == "display_data"
    # at rest: static only (no widget view), plus the chart data a JupyterLab renderer draws
    assert set(out["data"]) == {CHART, "image/png", "text/html", "text/plain"}
    chart = out["data"][CHART]
    json.dumps(chart, allow_nan=False)
    assert chart["status"] == "finished" and chart["kind"] == "live"
    lines = {line["name"]: line for p in chart["panels"] for line in p["lines"]}
    assert set(lines) == {"train/loss", "val/acc"}
    assert lines["val/acc"]["x"][-1] == 1999 and len(lines["val/acc"]["x"]) <= 2050
    assert EVIL not in json.dumps(chart)
    meta = out["metadata"]["nbtracker"]
    # the output shown when the run started was updated in place to the finished run
    assert meta["status"] == "finished" and meta["rows"] == 2000 and meta["last_step"] == 1999
    png = base64.b64decode(out["data"]["image/png"])
    (view,) = nbtracker.runs(project="k")
    assert png == LiveView(view, widgets=False).png()      # the very chart the files on disk give
    assert "step 1999" in out["data"]["text/html"] and "finished" in out["data"]["text/html"]
    assert png.decode("latin-1") in base64.b64decode(
        out["data"]["text/html"].split("base64,")[1].split('"')[0]).decode("latin-1")
    # the training cell itself has no output: no clear_output, no redraw spam
    assert outputs(nb.cells[2]) == []
    table = outputs(nb.cells[4])[0]["data"]
    assert sorted(table) == ["application/vnd.nbtracker.runs+json", "text/html", "text/plain"]
    assert "&lt;script&gt;" in table["text/html"] and EVIL not in table["text/html"]
    cmp = outputs(nb.cells[5])
    assert len(cmp) == 1 and set(cmp[0]["data"]) == {CHART, "image/png", "text/html", "text/plain"}
    assert cmp[0]["data"][CHART]["kind"] == "compare"


class RecordingClient(NotebookClient):
    """nbclient that also records, per cell, which display messages carried a widget view."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[int, str, bool]] = []

    def process_message(self, msg, cell, cell_index):
        if msg["msg_type"] in ("display_data", "update_display_data"):
            self.seen.append((cell_index, msg["msg_type"], WIDGET in msg["content"].get("data", {})))
        return super().process_message(msg, cell, cell_index)


def test_outputs_are_live_while_rows_arrive_and_static_at_rest(tmp_path, run_root):
    """Hardening item 0: the saved notebook holds no widget view, whether the run is finished
    or still open, so JupyterLab shows every chart after a reopen with a fresh kernel."""
    nb = notebook(
        "%load_ext nbtracker\nimport nbtracker, time",
        "%nbtracker init --project live --primary acc:max",
        "run = nbtracker.current_run()\nfor i in range(300):\n    run.log({'acc': i / 300})\n    time.sleep(0.002)",
        "x = 1",                                            # a cell that logs nothing
        "for i in range(300, 400):\n    run.log({'acc': i / 400})",   # the run is never finished
    )
    client = RecordingClient(nb, timeout=120, kernel_name="python3",
                             resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env={**os.environ, "NBTRACKER_DIR": str(run_root)})
    by_cell = {}
    for index, kind, widget in client.seen:
        by_cell.setdefault(index, []).append((kind, widget))
    assert by_cell[1][0] == ("display_data", True)        # shown live where the run starts
    assert by_cell[1][-1] == ("update_display_data", False)   # static when that cell ends
    assert by_cell[2][0] == ("update_display_data", True)  # live again as rows arrive
    assert by_cell[2][-1] == ("update_display_data", False)
    assert 3 not in by_cell                                  # nothing sent for a quiet cell
    assert by_cell[4][-1] == ("update_display_data", False)
    for cell in nb.cells:
        assert not outputs(cell, WIDGET), "a widget view was saved in the notebook"
    (chart,) = outputs(nb.cells[1], "image/png")            # and the magic's one line of text
    assert chart["metadata"]["nbtracker"]["rows"] == 400 and chart["metadata"]["nbtracker"]["status"] == "running"


def test_one_chart_per_cell_and_one_header(tmp_path, run_root):
    """Hardening item 1: the magic's returned Run is not displayed a second time."""
    nb = notebook(
        "%load_ext nbtracker",
        "%nbtracker init --project once lr=0.1",
        "r = %nbtracker init --project once\nr.log({'a': 1.0})\nr.display()\nr",
        "r.name",
    )
    execute(nb, cwd=tmp_path, run_root=run_root)
    for cell in nb.cells[1:3]:
        charts = [o for o in cell.outputs if o["output_type"] in ("display_data", "execute_result")]
        assert len(charts) == 1, [o["output_type"] for o in cell.outputs]
        html = charts[0]["data"]["text/html"]
        assert html.count('class="nbtracker-summary"') == 1   # the run header, once
    assert nb.cells[3].outputs[0]["data"]["text/plain"].strip("'") == nbtracker.runs(project="once")[0].name


def test_cell_magic_run_behaves_like_a_plain_cell(tmp_path, run_root):
    """Hardening item 7: the user's line in the traceback, and the last expression's value."""
    nb = notebook(
        "%load_ext nbtracker",
        "%%nbtracker run --project cm\nx = 1\n1 / 0",
        "%%nbtracker run --project cm\ny = 21\ny * 2",
    )
    execute(nb, cwd=tmp_path, run_root=run_root, allow_errors=True)
    (error,) = [o for o in nb.cells[1].outputs if o["output_type"] == "error"]
    text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error["traceback"]))
    assert "----> 3 1 / 0" in text and "Could not get source" not in text
    assert "nbtracker/magics.py" not in text and "_execute_body" not in text
    (value,) = [o for o in nb.cells[2].outputs if o["output_type"] == "execute_result"]
    assert value["data"]["text/plain"] == "42"
    statuses = sorted(r.status for r in nbtracker.runs(project="cm"))
    assert statuses == ["failed", "finished"]


def test_saved_notebook_stays_small_and_valid(tmp_path, run_root):
    nb = execute(train_notebook(10_000), cwd=tmp_path, run_root=run_root)
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, str(path))
    nbformat.validate(nbformat.read(str(path), as_version=4))
    size = path.stat().st_size
    assert size < 200_000, f"saved notebook is {size} bytes"
    for cell in nb.cells:
        assert not outputs(cell, WIDGET)
        for o in outputs(cell, "image/png"):
            assert "text/html" in o["data"] and "text/plain" in o["data"]


def test_nbconvert_html_shows_the_final_chart(tmp_path, run_root):
    from nbconvert import HTMLExporter

    nb = execute(train_notebook(300), cwd=tmp_path, run_root=run_root)
    png = outputs(nb.cells[1])[0]["data"]["image/png"]
    nb.metadata.pop("widgets", None)          # JupyterLab's default save has no widget state
    body, _ = HTMLExporter().from_notebook_node(nb)
    assert png[:200] in body and "step 299" in body
    assert EVIL not in body


def test_terminal_style_text_in_a_kernel_when_live_is_off(tmp_path, run_root):
    nb = notebook("import nbtracker",
                  "run = nbtracker.init(project='q')\nfor i in range(5): run.log({'a': i})",
                  "run.display()", "run.finish()")
    execute(nb, cwd=tmp_path, run_root=run_root, env={"NBTRACKER_LIVE": "0"})
    assert outputs(nb.cells[1]) == []                        # no chart where the run started
    (shown,) = outputs(nb.cells[2])
    assert shown["metadata"]["nbtracker"]["rows"] == 5        # run.display() still shows it


def test_live_charts_notebook_runs_and_shows_every_view(tmp_path, run_root):
    from tests.nbexec import NOTEBOOKS

    nb = execute(NOTEBOOKS / "live_charts.ipynb", cwd=tmp_path, run_root=run_root, timeout=300)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not [o for c in code for o in c.outputs if o["output_type"] == "error"]
    live = outputs(code[1], "image/png")[0]["metadata"]["nbtracker"]
    assert live["status"] == "finished" and live["last_step"] == 599
    listed = nbtracker.runs(project="display-demo")
    assert sorted(r.status for r in listed) == ["finished", "finished", "interrupted"]
    table = outputs(code[5])[0]["data"]
    assert WIDGET not in table and table["text/html"].count("data-run=") == 3
    assert "nbtracker-status-interrupted" in table["text/html"]
    for cell in code[6:8]:                                   # compare(), then the magic
        (out,) = outputs(cell, "image/png")
        assert WIDGET not in out["data"] and len(out["metadata"]["nbtracker"]["runs"]) == 3
    # hardening item 3: `%nbtracker compare ... --log` is drawn (and saved) with log y
    assert outputs(code[6], "image/png")[0]["metadata"]["nbtracker"]["options"]["log_y"] is False
    assert outputs(code[7], "image/png")[0]["metadata"]["nbtracker"]["options"]["log_y"] is True


def test_a_sweep_in_one_cell_gets_three_charts_and_a_note(tmp_path, run_root):
    nb = notebook("import nbtracker",
                  "for lr in range(6):\n    with nbtracker.init(project='sweep', config={'lr': lr}) as r:\n"
                  "        r.log({'a': lr})",
                  "run = nbtracker.init(project='sweep')\nrun.log({'a': 1})\nrun.finish()")
    execute(nb, cwd=tmp_path, run_root=run_root)
    assert len(outputs(nb.cells[1], "image/png")) == 3
    assert stream_text(nb.cells[1:2]).count("more than 3 runs started in this cell") == 1
    assert len(outputs(nb.cells[2], "image/png")) == 1        # the next cell counts afresh
    assert len(nbtracker.runs(project="sweep")) == 7
