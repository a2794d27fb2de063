"""The seed workflows (Keepsake, Determined, W&B, Runicorn) as notebooks in a real kernel, checked
through the files they leave."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import nbtracker

from ..nbexec import NOTEBOOKS, execute, outputs, stream_text

pytestmark = pytest.mark.timeout(300)


def _errors(nb):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o["output_type"] == "error"]


def test_keepsake_checkpoints_notebook(tmp_path, run_root):
    nb = execute(NOTEBOOKS / "checkpoints.ipynb", cwd=tmp_path, run_root=run_root, timeout=240)
    assert not _errors(nb)
    (run,) = nbtracker.runs(project="keepsake-demo")
    assert run.status == "finished" and len(run.checkpoints) == 9
    best = run.best_checkpoint()
    assert best.metrics["val_acc"] == max(c.metrics["val_acc"] for c in run.checkpoints)
    blobs = [p for p in (run_root / ".store" / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 8                                  # the unchanged 9th copy stored nothing
    restored = tmp_path / "checked-out" / "model.npy"
    assert hashlib.sha256(restored.read_bytes()).hexdigest() == best.manifest[0]["sha256"]
    assert (tmp_path / "checked-out" / "code" / "clean.py").is_file()
    assert "ckpts" in stream_text(nb.cells) and "checkpoints: 9" in stream_text(nb.cells)


def test_determined_top_checkpoint_registry_and_stream_notebook(tmp_path, run_root):
    nb = execute(NOTEBOOKS / "top_checkpoints_registry.ipynb", cwd=tmp_path, run_root=run_root, timeout=240)
    assert not _errors(nb)
    trials = nbtracker.runs(project="determined-demo").filter(config={"lr": 0.3})
    top = nbtracker.runs(project="determined-demo").top_checkpoint()
    assert top.run_id == trials[0].id and top.extra == {"epoch": 4}
    model = nbtracker.get_model("regressor")
    assert [v.version for v in model.versions] == [1, 2] and model.version(1).checkpoint.id == top.id
    assert np.array_equal(np.load(tmp_path / "deploy" / "w.npy"), np.load(model.latest.checkpoint.path / "w.npy"))
    assert "20 rows streamed" in stream_text(nb.cells)


def test_wandb_files_artifacts_media_notebook(tmp_path, run_root):
    nb = execute(NOTEBOOKS / "files_artifacts_media.ipynb", cwd=tmp_path, run_root=run_root, timeout=240)
    assert not _errors(nb)
    run = [r for r in nbtracker.runs(project="wandb-demo") if r.name != "consumer"][0]
    assert sorted(run.files) == ["configs/model.yaml", "notes.txt"]
    media = run.media()
    assert sum(m["_type"] == "image" for m in media) == 8 and all(
        (run.dir / m["path"]).is_file() for m in media)
    assert {m["_type"] for m in media} == {"image", "histogram", "table"}
    assert [e["event"] for e in run.artifacts] == ["logged", "used_by"]
    assert (tmp_path / "restored" / "configs" / "model.yaml").read_text() == "layers: 4\n"
    assert (tmp_path / "downloaded" / "train.csv").read_text().startswith("x,y")
    code = [c for c in nb.cells if c.cell_type == "code"]
    html = outputs(code[3], "text/html")[0]["data"]["text/html"]    # the RunView read from disk
    assert html.count("<figure") == 6 and "nbtracker-table" in html and "nbtracker-histogram" in html
    assert "a &lt;b&gt;" in html and "a <b>" not in html            # table cells are escaped


def test_runicorn_console_text_logging_notebook(tmp_path, run_root):
    nb = execute(NOTEBOOKS / "console_text_logging.ipynb", cwd=tmp_path, run_root=run_root, timeout=240)
    assert not _errors(nb)
    (run,) = nbtracker.runs(project="runicorn-demo")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "epoch 40: accuracy" in stream_text([code[2]])            # still shown in the notebook
    lines = run.console()
    printed = [(r["cell"], r["line"]) for r in lines if r["stream"] == "stdout"]
    loop_cell = code[2].execution_count
    assert (loop_cell, "epoch 0: accuracy 0.000") in printed
    bars = [r["line"] for r in lines if r["stream"] == "stderr" and "epochs" in r["line"]]
    assert len(bars) == 1 and "50/50" in bars[0]                    # the final bar, not 50 partial ones
    assert any("learning rate was small" in r["line"] for r in lines)
    texts = [(r["level"], r["text"]) for r in run.text_log()]
    assert ("info", "checkpointed epoch 40") in texts and texts[-1] == ("info", "training done")
    assert sorted(run.outputs) == [f"outputs/epoch{i}.txt" for i in (0, 10, 20, 30, 40)]
    assert [r["name"] for r in run.references] == ["digits", "resnet18"]
    assert run.references[0]["fingerprint"]["files"] == 20
    assert run.config == {"lr": 0.01, "batch_size": 32, "optimizer": "adam"}
    assert run.primary_metric == ("accuracy", "max")


def test_a_run_that_ends_without_rows_shows_its_header_not_an_empty_chart(tmp_path, run_root):
    from ..nbexec import notebook

    nb = execute(notebook("%load_ext nbtracker\nimport nbtracker",
                          "with nbtracker.init(project='e', name='no-rows') as run:\n    run.log_text('hi')",
                          "with nbtracker.init(project='e', name='rows') as run:\n    run.log({'x': 1})"),
                 cwd=tmp_path, run_root=run_root)
    (empty,) = outputs(nb.cells[1], "text/html")
    assert "image/png" not in empty["data"] and "no-rows" in empty["data"]["text/html"]
    assert "waiting for the first" not in str(empty["data"]) and "hi" in empty["data"]["text/html"]
    assert outputs(nb.cells[2], "image/png")                       # a run with rows keeps its chart


def test_jupyterlab_tour_notebook_carries_chart_data_next_to_its_pictures(tmp_path, run_root):
    """notebooks/jupyterlab_tour.ipynb under nbclient (no extension): every chart output has
    its PNG, HTML and text, and the data the Lab extension draws; the table has its data too."""
    nb = execute(NOTEBOOKS / "jupyterlab_tour.ipynb", cwd=tmp_path, run_root=run_root, timeout=240)
    code = [c for c in nb.cells if c.cell_type == "code"]
    live = outputs(code[1])[0]["data"]
    chart = live["application/vnd.nbtracker.chart+json"]
    assert {"image/png", "text/html", "text/plain"} <= set(live)
    assert chart["status"] == "finished" and chart["panels"][0]["title"] == "val/acc"
    assert chart["panels"][0]["best"][2].startswith("best 1")
    table = outputs(code[4])[0]["data"]["application/vnd.nbtracker.runs+json"]
    assert sorted(r["name"] for r in table["rows"]) == ["live-run", "other-run"]
    cmp = outputs(code[5])[0]["data"]["application/vnd.nbtracker.chart+json"]
    assert cmp["kind"] == "compare"
    assert {line["name"] for line in cmp["panels"][0]["lines"]} == {"live-run", "other-run"}


def test_reproducibility_notebook_replays_its_own_run(tmp_path, run_root):
    """notebooks/reproducibility.ipynb: a seeded run, then nbtracker.replay from inside the kernel."""
    nb = execute(NOTEBOOKS / "reproducibility.ipynb", cwd=tmp_path, run_root=run_root, timeout=300)
    assert not _errors(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    html = outputs(code[4])[0]["data"]["text/html"]
    assert "reproduced" in html and "loss" in html
    original, replayed = sorted(nbtracker.runs(project="repro"), key=lambda r: r.start_time)
    assert replayed._doc["replay_of"] == original.id
    assert stream_text([code[5]]).split() == ["reproduced", "0", original.id]
    assert (replayed.dir / "replay.json").is_file()
