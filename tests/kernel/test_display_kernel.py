"""The inline display in a real kernel (nbclient): live chart output, tables, saved notebook."""

from __future__ import annotations

import base64
import json

import nbformat
import pytest

import nbtracker
from nbtracker.display.views import LiveView
from tests.nbexec import execute, notebook, outputs, stream_text

pytestmark = pytest.mark.kernel

WIDGET = "application/vnd.jupyter.widget-view+json"
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
    assert {WIDGET, "image/png", "text/html", "text/plain"} <= set(out["data"])
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
    assert WIDGET in table and "&lt;script&gt;" in table["text/html"] and EVIL not in table["text/html"]
    cmp = outputs(nb.cells[5])
    assert len(cmp) == 1 and {WIDGET, "image/png", "text/html"} <= set(cmp[0]["data"])


def test_saved_notebook_with_widget_state_stays_small_and_valid(tmp_path, run_root):
    nb = execute(train_notebook(10_000), cwd=tmp_path, run_root=run_root)
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, str(path))
    nbformat.validate(nbformat.read(str(path), as_version=4))
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]
    assert state["version_major"] == 2 and isinstance(state["state"], dict) and state["state"]
    size = path.stat().st_size
    assert size < 200_000, f"saved notebook is {size} bytes"
    # every widget view in the outputs is backed by saved state (what GitHub/nbviewer need)
    for cell in nb.cells:
        for o in outputs(cell, WIDGET):
            assert o["data"][WIDGET]["model_id"] in state["state"]
            assert "image/png" in o["data"] or "text/html" in o["data"]   # a static fallback


def test_nbconvert_html_shows_the_final_chart(tmp_path, run_root):
    """With saved widget state the exported page renders the Image widget from it (its value is
    the final PNG); without (JupyterLab's default save), it falls back to our HTML + PNG."""
    from nbconvert import HTMLExporter

    nb = execute(train_notebook(300), cwd=tmp_path, run_root=run_root)
    png = outputs(nb.cells[1])[0]["data"]["image/png"]
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    images = [m for m in state.values() if m["model_name"] == "ImageModel"]
    assert any(b["data"] == png for m in images for b in m.get("buffers", []))
    body, _ = HTMLExporter().from_notebook_node(nb)
    assert outputs(nb.cells[1])[0]["data"][WIDGET]["model_id"] in body
    del nb.metadata["widgets"]
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
    assert WIDGET in table and table["text/html"].count("data-run=") == 3
    assert "nbtracker-status-interrupted" in table["text/html"]
    for cell in code[6:8]:                                   # compare(), then the magic
        (out,) = outputs(cell, "image/png")
        assert WIDGET in out["data"] and len(out["metadata"]["nbtracker"]["runs"]) == 3


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
