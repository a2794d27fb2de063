"""The nbtracker command, in-process and as a real subprocess: outputs and exit codes."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys

import pytest

import nbtracker
from nbtracker.cli import main


@pytest.fixture
def two_runs():
    made = []
    for lr in (0.1, 0.01):
        with nbtracker.init(project="mnist", config={"lr": lr, "opt": {"name": "sgd"}}, tags=["t"],
                            primary_metric="val/acc:max") as run:
            for i in range(4):
                run.log({"loss": lr / (i + 1), "val/acc": i * lr, "odd": math.nan if i == 2 else i})
        made.append(run)
    return made


def test_ls_table_sort_and_json(two_runs, capsys):
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    assert all(r.id in out for r in two_runs) and "best val/acc" in out and "config.lr" in out
    assert main(["ls", "--sort", "best/val/acc", "--desc", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in records] == [two_runs[0].id, two_runs[1].id]
    assert records[0]["status"] == "finished" and records[0]["summary"]["best/val/acc"] == pytest.approx(0.3)
    assert main(["ls", "--status", "crashed"]) == 0
    assert "no runs" in capsys.readouterr().out


def test_show_and_diff(two_runs, capsys):
    a, b = two_runs
    assert main(["show", a.name]) == 0
    out = capsys.readouterr().out
    assert f"({a.id})" in out and "opt.name = sgd" in out and "metrics.jsonl" in out and "best 0.3 at step 3" in out
    assert main(["diff", a.id, b.id]) == 0
    out = capsys.readouterr().out
    assert "config: 1 of 2 differ" in out and "tags: 0 of 1 differ" in out
    assert main(["diff", a.id, b.id, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [r["key"] for r in d["config"] if r["differs"]] == ["lr"]


def test_export_csv_round_trips_through_pandas(two_runs, tmp_path):
    pd = pytest.importorskip("pandas")
    out = tmp_path / "h.csv"
    assert main(["export", two_runs[0].id, "--format", "csv", "-o", str(out)]) == 0
    df = pd.read_csv(out)
    assert list(df.columns) == ["_step", "_time", "loss", "val/acc", "odd"]
    assert math.isnan(df["odd"][2]) and df["loss"][0] == 0.1
    jl = tmp_path / "h.jsonl"
    assert main(["export", two_runs[0].id, "-f", "jsonl", "-o", str(jl)]) == 0
    assert pd.read_json(jl, lines=True)["_step"].tolist() == [0, 1, 2, 3]


def test_rm_refuses_live_runs_and_paths_outside_the_root(two_runs, capsys, monkeypatch, tmp_path):
    live = nbtracker.init(project="mnist")
    try:
        assert main(["rm", live.id, "--yes"]) == 1
        assert "running" in capsys.readouterr().err and live.dir.exists()
    finally:
        live.finish()
    outside = tmp_path / "elsewhere"
    with nbtracker.init(dir=outside) as foreign:
        pass
    assert main(["rm", str(foreign.dir), "--yes"]) == 1
    assert "not a run directory under" in capsys.readouterr().err and foreign.dir.exists()
    assert main(["rm", "../..", "--yes"]) == 1
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["rm", two_runs[0].id]) == 2                    # no TTY: --yes required
    assert main(["rm", two_runs[0].id, "--yes"]) == 0
    assert not two_runs[0].dir.exists() and two_runs[1].dir.exists()


def test_errors_and_usage(capsys):
    assert main(["show", "nope"]) == 1
    assert "no run 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["bogus"])
    assert e.value.code == 2


def test_python_dash_m_subprocess(two_runs, run_root):
    env = {**os.environ, "NBTRACKER_DIR": str(run_root)}
    ok = subprocess.run([sys.executable, "-m", "nbtracker", "ls", "--json"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0 and len(json.loads(ok.stdout)) == 2
    missing = subprocess.run([sys.executable, "-m", "nbtracker", "show", "zzz"], capture_output=True, text=True, env=env)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    version = subprocess.run([sys.executable, "-m", "nbtracker", "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"nbtracker {nbtracker.__version__}"
    piped = subprocess.run(f"'{sys.executable}' -m nbtracker ls | head -c 10", shell=True, capture_output=True,
                           text=True, env=env)
    assert "Traceback" not in piped.stderr
