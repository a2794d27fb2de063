"""Replay in real kernels (nbclient): the original run is made by executing a notebook, the
replay by ``nbtracker.replay`` / ``nbtracker replay``; the files (replay.json, run.json) are the
oracle."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import nbtracker

from ..nbexec import execute, notebook

pytestmark = pytest.mark.timeout(300)

HEAD = "%load_ext nbtracker\nimport nbtracker, numpy as np"
INIT = "run = nbtracker.init(project='rep', primary_metric='loss:min')"
TRAIN = ("for step in range(50):\n"
         "    w -= 0.1 * 2 * (w - 1.0)\n"
         "    run.log({'loss': float(((w - 1.0) ** 2).mean()), 'w0': float(w[0])})")


def make_run(tmp_path, run_root, cells, saved=None, env=None):
    """Execute ``cells``; the notebook file the kernel sees is ``saved`` (default: the same)."""
    nb = notebook(*cells)
    path = tmp_path / "train.ipynb"
    import nbformat

    nbformat.write(notebook(*(saved if saved is not None else cells)), str(path))
    execute(nb, cwd=tmp_path, run_root=run_root, env={"NBTRACKER_NOTEBOOK": str(path), **(env or {})})
    (run,) = [r for r in nbtracker.runs(project="rep") if not r._doc.get("replay_of")]
    return run


def replay_json(report):
    made = nbtracker.load(report.replay)
    assert made._doc["replay_of"] == report.original
    return json.loads((made.dir / "replay.json").read_text())


def test_a_seeded_numpy_training_replays_exact(tmp_path, run_root):
    run = make_run(tmp_path, run_root, [HEAD, INIT, "rng = np.random.default_rng(0)\nw = rng.normal(size=5)",
                                        TRAIN, "run.finish()"])
    report = nbtracker.replay(run.id)
    assert report.status == "reproduced" and report.exit_code == 0, report.text()
    assert {k.key: k.status for k in report.keys} == {"loss": "exact", "w0": "exact"}
    assert report.rows == (50, 50) and report.best["original"] == report.best["replay"]
    saved = replay_json(report)
    assert saved["status"] == "reproduced" and saved["exit_code"] == 0
    # the replay is an ordinary run: listed, comparable
    assert {r.id for r in nbtracker.runs(project="rep")} == {run.id, report.replay}
    # --until: only up to the cell that made the run: no rows come back
    short = nbtracker.replay(run, until=2)
    assert short.status == "differs" and short.rows == (50, 0)
    assert {k.status for k in short.keys} == {"missing in replay"}


def test_an_unseeded_training_differs_at_the_first_step_in_the_training_cell(tmp_path, run_root):
    run = make_run(tmp_path, run_root, [HEAD, INIT, "w = np.random.normal(size=5)", TRAIN, "run.finish()"])
    report = nbtracker.replay(run)
    assert report.status == "differs" and report.exit_code == 1
    loss = next(k for k in report.keys if k.key == "loss")
    assert loss.status == "differs" and loss.step == 0
    assert loss.cells == (4, 4)                     # the training cell, in both runs
    assert "run.log" in loss.sources[0] and loss.sources[0] == loss.sources[1] and not loss.diff
    assert "DIFFERS at step 0" in report.text()
    assert "&lt;" not in report.text() and "<table>" in report._repr_html_()
    # the CLI says the same with exit code 1
    cli = subprocess.run([sys.executable, "-m", "nbtracker", "replay", run.id, "--json"],
                         capture_output=True, text=True, timeout=240)
    assert cli.returncode == 1, cli.stderr
    assert json.loads(cli.stdout)["status"] == "differs"
    text = subprocess.run([sys.executable, "-m", "nbtracker", "replay", run.id], capture_output=True, text=True,
                          timeout=240)
    assert text.returncode == 1 and text.stdout.splitlines()[0].startswith(f"replay of {run.id} (clean code)")
    assert any(ln.strip().startswith("loss: DIFFERS at step 0") for ln in text.stdout.splitlines()), text.stdout


def test_a_name_from_a_deleted_cell_fails_the_replay_and_points_at_it(tmp_path, run_root):
    cells = [HEAD, "lr = 0.05", INIT, "w = np.ones(5) * 3\nfor step in range(10):\n"
             "    w -= lr * (w - 1.0)\n    run.log({'loss': float(((w - 1.0) ** 2).mean())})", "run.finish()"]
    saved = [c for c in cells if c != "lr = 0.05"]     # the cell was deleted before the save
    run = make_run(tmp_path, run_root, cells, saved=saved)
    source = json.loads((run.dir / "code" / "source.json").read_text())
    names = source["hidden_state"]["names_from_deleted_cells"]
    assert [(n["name"], n["used_in"], n["defined_in"]) for n in names] == [("lr", 4, [2])]
    report = nbtracker.replay(run)
    assert report.status == "could not run" and report.exit_code == 2
    assert report.error["ename"] == "NameError" and "lr" in report.error["evalue"]
    assert report.error["cell"] == 4 and "lr" in report.error["source"]
    assert report.error["hint"] == names[0]["note"]
    assert report.left_out == [2]
    assert "hidden state:" in report.text() and "'lr'" in report.text()
    # --exact replays every execution, the deleted cell included: the numbers come back
    assert nbtracker.replay(run, exact=True).status == "reproduced"


def test_a_local_module_edited_after_the_run_replays_from_the_captured_copy(tmp_path, run_root):
    (tmp_path / "mymodel.py").write_text("def scale():\n    return 3.0\n")
    cells = [HEAD + "\nfrom mymodel import scale", INIT,
             "for step in range(5):\n    run.log({'loss': scale() * step})", "run.finish()"]
    run = make_run(tmp_path, run_root, cells)
    modules = json.loads((run.dir / "code" / "modules.json").read_text())
    (mod,) = modules["modules"]
    assert mod["module"] == "mymodel" and mod["path"] == "mymodel.py" and mod["version"] == 1
    assert (run.dir / "code" / "modules" / "mymodel.py").read_text() == "def scale():\n    return 3.0\n"
    assert json.loads((run.dir / "code" / "git.json").read_text()) == {"git": "not a git work tree",
                                                                        "cwd": str(tmp_path)}
    (tmp_path / "mymodel.py").write_text("def scale():\n    return 4.0\n")     # edited since
    report = nbtracker.replay(run)
    assert report.status == "reproduced", report.text()
    assert {k.key: k.status for k in report.keys} == {"loss": "exact"}
    # checkout: the module next to clean.ipynb, where an import from there finds it
    out = tmp_path / "co"
    cli = subprocess.run([sys.executable, "-m", "nbtracker", "checkout", run.id, "-o", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert (out / "code" / "mymodel.py").read_text() == "def scale():\n    return 3.0\n"
    assert (out / "code" / "clean.ipynb").is_file() and (out / "code" / "modules.json").is_file()


def test_a_module_reloaded_during_the_run_is_captured_again(tmp_path, run_root):
    (tmp_path / "mymodel.py").write_text("def scale():\n    return 3.0\n")
    (tmp_path / "bigmod.py").write_text("DATA = '" + "x" * (1100 * 1024) + "'\n")
    edit = "open('mymodel.py', 'w').write('def scale():\\n    return 5.0\\n')"
    cells = [HEAD + "\nimport importlib, mymodel, bigmod", INIT,
             "run.log({'loss': mymodel.scale()})",
             edit + "\nimportlib.reload(mymodel)",
             "run.log({'loss': mymodel.scale()})",
             "open('mymodel.py', 'w').write('def scale():\\n    return 7.0\\n')",    # edited, not reloaded
             "run.log({'loss': mymodel.scale()})", "import time; time.sleep(1.2)", "run.finish()"]
    run = make_run(tmp_path, run_root, cells)
    assert [r["loss"] for r in run.history()] == [3.0, 5.0, 5.0]
    modules = json.loads((run.dir / "code" / "modules.json").read_text())
    versions = [v for v in modules["modules"] if v["module"] == "mymodel"]
    assert [(v["version"], v["reloaded"]) for v in versions] == [(1, False), (2, True)]
    assert versions[0]["cells"][1] < versions[1]["cells"][0] <= 4
    assert (run.dir / versions[0]["file"]).read_text().endswith("return 3.0\n")
    assert (run.dir / versions[1]["file"]).read_text().endswith("return 5.0\n")
    assert (run.dir / "code" / "modules" / "mymodel.py").read_text().endswith("return 5.0\n")   # the latest
    assert [s["module"] for s in modules["skipped"]] == ["bigmod"] and "larger than" in modules["skipped"][0]["reason"]
    assert [e["module"] for e in modules["edited_not_reloaded"]] == ["mymodel"]


def test_exact_reproduces_an_out_of_order_session_that_the_clean_version_does_not(tmp_path, run_root):
    a, b, c = "x = 1", "x = x + 1", "run.log({'x': x})"
    # the session ran C after B twice (B, C, B, C); the file holds each cell once
    run = make_run(tmp_path, run_root, [HEAD, INIT, a, b, c, b, c, "run.finish()"],
                   saved=[HEAD, INIT, a, b, c, "run.finish()"])
    assert [r["x"] for r in run.history()] == [2, 3]
    hidden = json.loads((run.dir / "code" / "source.json").read_text())["hidden_state"]
    assert [o["execution_count"] for o in hidden["out_of_order"]] == [6]     # b again, after c
    clean = nbtracker.replay(run)
    assert clean.status == "differs" and clean.rows == (2, 1)
    exact = nbtracker.replay(run, exact=True)
    assert exact.status == "reproduced", exact.text()
    assert exact.mode == "exact" and exact.rows == (2, 2)


def test_git_state_and_environment_are_captured(tmp_path, run_root):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "origin",
                    "https://alice:s3cret@example.com/team/repo.git"], check=True)
    (tmp_path / "tracked.txt").write_text("one\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "tracked.txt"], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "x"],
                   check=True)
    (tmp_path / "tracked.txt").write_text("two\n")
    run = make_run(tmp_path, run_root, [HEAD, INIT, "run.log({'a': 1})\nrun.finish()"],
                   env={"SECRET_TOKEN": "zzz-do-not-store"})
    git = json.loads((run.dir / "code" / "git.json").read_text())
    assert git["git"] == "ok" and len(git["commit"]) == 40 and git["dirty"] and git["changed_files"] == 1
    assert git["remote"] == "https://example.com/team/repo.git"
    assert "+two" in (run.dir / "code" / "git.diff").read_text()
    env = json.loads((run.dir / "env.json").read_text())
    assert env["kernel"]["name"] == "python3" and "numpy" in env["distributions"]
    everything = b"".join(p.read_bytes() for p in run.dir.rglob("*") if p.is_file())
    assert b"zzz-do-not-store" not in everything and b"s3cret" not in everything
