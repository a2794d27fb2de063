"""%load_ext nbtracker in a real in-process IPython: magics, cell records, provenance, %track."""

from __future__ import annotations

import json
import pathlib
import re

import nbtracker
from nbtracker.core.files import read_jsonl

from ..ipshell import cell


def records(run):
    return read_jsonl(run.dir / "cells.jsonl")


def test_init_magic_cells_and_rows_linked(ip, run_root):
    cell(ip, "import nbtracker", "c0")
    r = cell(ip, "%nbtracker init --project demo --tag a --tag b --primary acc:max lr=0.01 name='x' layers=[1,2]", "c1")
    assert r.success, r.error_in_exec
    run = nbtracker.current_run()
    assert run.project == "demo" and run.tags == ["a", "b"] and run.primary_metric == ("acc", "max")
    assert dict(run.config) == {"lr": 0.01, "name": "x", "layers": [1, 2]}
    cell(ip, "run = nbtracker.current_run()\nfor i in range(3):\n    run.log({'acc': i / 10})", "c2")
    failing = cell(ip, "run.log({'acc': 0.9})\n1/0", "c3")
    assert not failing.success
    interrupted = cell(ip, "raise KeyboardInterrupt", "c4")
    assert not interrupted.success
    cell(ip, "run.log({'acc': 0.5})", "c5")
    cell(ip, "%nbtracker finish", "c6")
    recs = records(run)
    assert [c["cell_id"] for c in recs] == ["c1", "c2", "c3", "c4", "c5", "c6"]  # c0 ran before the run
    assert [c["status"] for c in recs] == ["ok", "ok", "error", "interrupted", "ok", "ok"]
    assert recs[2]["error"]["type"] == "ZeroDivisionError"
    assert recs[1]["steps"] == [0, 2] and recs[1]["rows"] == 3 and recs[3]["steps"] is None
    rows = read_jsonl(run.dir / "metrics.jsonl")
    by_cell = {c["cell_id"]: c["execution_count"] for c in recs}
    assert [r["_cell"] for r in rows] == [by_cell["c2"]] * 3 + [by_cell["c3"], by_cell["c5"]]
    assert json.loads((run.dir / "run.json").read_text())["status"] == "finished"
    assert all(isinstance(c["duration"], float) and c["source"] for c in recs)
    # the documented shape (docs/jupyter.md, docs/run-directory.md), no more, no less
    keys = {"execution_count", "cell_id", "source", "start", "duration", "status", "error", "steps", "rows"}
    assert all(set(c) == keys for c in recs)
    assert all(type(c["execution_count"]) is int and type(c["rows"]) is int and type(c["start"]) is float
               for c in recs)
    assert [c["execution_count"] for c in recs] == sorted({c["execution_count"] for c in recs})


def test_interrupt_does_not_end_the_run_and_later_cells_work(ip):
    cell(ip, "import nbtracker\nrun = nbtracker.init(project='p')")
    cell(ip, "raise KeyboardInterrupt")
    assert nbtracker.current_run() is not None
    assert cell(ip, "run.log({'x': 1})").success
    cell(ip, "run.finish()")
    assert [c["status"] for c in records(ip.user_ns["run"])] == ["ok", "interrupted", "ok", "ok"]


def test_rows_reach_disk_when_the_cell_ends(ip):
    cell(ip, "import nbtracker\nrun = nbtracker.init()\nrun.log({'a': 1})")
    run = ip.user_ns["run"]
    assert read_jsonl(run.dir / "metrics.jsonl")[0]["a"] == 1   # no waiting for the ticker
    cell(ip, "run.finish()")


def test_track_logs_one_row_per_cell_with_new_values(ip):
    cell(ip, "import nbtracker\nrun = nbtracker.init()")
    cell(ip, "%track loss acc")
    cell(ip, "loss = 1.0\nacc = 0.5")
    cell(ip, "x = 3")                       # nothing new: no row
    cell(ip, "loss = 0.5")
    cell(ip, "acc = 'text'")                # not numeric: ignored
    cell(ip, "%untrack")
    cell(ip, "loss = 0.1")
    cell(ip, "run.finish()")
    rows = read_jsonl(ip.user_ns["run"].dir / "metrics.jsonl")
    assert [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows] == [
        {"loss": 1.0, "acc": 0.5}, {"loss": 0.5}]


def test_cell_magic_run_gives_one_run_per_execution(ip):
    cell(ip, "import nbtracker")
    for lr in (0.1, 0.2):
        res = cell(ip, f"%%nbtracker run --project cellrun lr={lr}\nfor i in range(2):\n    nbtracker.log({{'loss': {lr} * i}})",
                   "same-cell")
        assert res.success, res.error_in_exec
    assert nbtracker.current_run() is None
    listed = nbtracker.runs(project="cellrun")
    assert sorted(r.config["lr"] for r in listed) == [0.1, 0.2]
    assert {r.status for r in listed} == {"finished"}
    for r in listed:
        assert [c["cell_id"] for c in records(r)] == ["same-cell"]
        assert records(r)[0]["rows"] == 2
    bad = cell(ip, "%%nbtracker run --project cellrun\n1/0")
    assert not bad.success
    assert nbtracker.runs(project="cellrun")[0].status == "failed"


def test_status_runs_code_and_help(ip, capsys):
    cell(ip, "import nbtracker")
    cell(ip, "%nbtracker init --project s")
    cell(ip, "nbtracker.log({'loss': 0.3})")
    capsys.readouterr()
    cell(ip, "%nbtracker status")
    out = capsys.readouterr().out
    assert "loss=0.3" in out and "1 rows" in out
    cell(ip, "%nbtracker finish")
    res = cell(ip, "%nbtracker runs --project s")
    assert isinstance(res.result, nbtracker.RunList) and len(res.result) == 1
    capsys.readouterr()
    cell(ip, "%nbtracker code " + res.result[0].id)
    assert "nbtracker.log({'loss': 0.3})" in capsys.readouterr().out
    cell(ip, "%nbtracker")
    assert "%%nbtracker run" in capsys.readouterr().out
    assert not cell(ip, "%nbtracker bogus").success
    assert not cell(ip, "%nbtracker init --bad-flag").success


def test_load_twice_is_harmless(ip):
    ip.run_line_magic("load_ext", "nbtracker")
    from nbtracker import extension
    extension.load_ipython_extension(ip)
    assert sum(getattr(cb, "__name__", "") == "post_run_cell" for cb in ip.events.callbacks["post_run_cell"]) == 1


def test_internal_failure_is_reported_once_and_cells_run(ip, capsys):
    import os

    cell(ip, "import nbtracker\nrun = nbtracker.init()")
    run = ip.user_ns["run"]
    real_fd = run._log._fd
    run._log._fd = os.open(os.devnull, os.O_RDONLY)   # the disk now refuses every row write
    capsys.readouterr()
    try:
        assert cell(ip, "run.log({'y': 2})").success      # logging only queues: the cell is fine
        assert cell(ip, "run.log({'y': 3})").success
        assert cell(ip, "z = 3").success and ip.user_ns["z"] == 3
        err = capsys.readouterr().err
    finally:
        os.close(run._log._fd)
        run._log._fd = real_fd
    assert "StorageError" in err and err.count("your cell ran normally") == 1   # reported once
    (line,) = [x for x in err.splitlines() if x.startswith("nbtracker:")]        # in one line
    details = pathlib.Path(re.search(r"Details: (\S+)", line).group(1))
    assert "Traceback" in details.read_text() and "StorageError" in details.read_text()
    assert cell(ip, "run.finish()").success
    assert [r["y"] for r in nbtracker.load(run.id).history()] == [2, 3]      # nothing was lost


def test_resumed_run_in_the_same_kernel_keeps_recording_cells(ip):
    cell(ip, "import nbtracker\nrun = nbtracker.init(project='r')")
    cell(ip, "run.finish()\nrun = nbtracker.init(project='r', resume=run.id)")
    cell(ip, "run.log({'a': 1})")
    cell(ip, "run.finish()")
    recs = records(ip.user_ns["run"])
    assert [r["rows"] for r in recs] == [0, 0, 1, 0] and len(recs) == 4


def test_live_and_compare_magics_in_a_terminal_shell(ip, capsys):
    """Outside a kernel (this in-process shell is a terminal one) both print text views."""
    assert cell(ip, "%nbtracker?").success
    capsys.readouterr()
    cell(ip, "%nbtracker live")
    assert "no active run" in capsys.readouterr().out
    cell(ip, "import nbtracker\nrun = nbtracker.init(project='cmp')\nrun.log({'loss': 1.0})\nrun.log({'loss': 0.5})")
    capsys.readouterr()
    assert cell(ip, "%nbtracker live").success
    out = capsys.readouterr().out
    assert "running, 2 rows" in out and "loss" in out
    cell(ip, "run.finish()")
    assert not cell(ip, "%nbtracker compare --project cmp").success   # no primary metric: say which
    assert not cell(ip, "%nbtracker compare --project cmp --metric nope").success
    assert not cell(ip, "%nbtracker compare --project empty --metric loss").success
    capsys.readouterr()
    res = cell(ip, "%nbtracker compare --project cmp --metric loss --log")
    assert res.success, res.error_in_exec
    assert "loss across 1 runs" in capsys.readouterr().out
    res = cell(ip, f"%nbtracker live {nbtracker.runs(project='cmp')[0].id}")
    assert res.success, res.error_in_exec


def test_a_failing_track_still_records_the_cell(ip, capsys):
    cell(ip, "import nbtracker\nrun = nbtracker.init(project='t')\n%track big")
    capsys.readouterr()
    # %track's log() raises inside post_run_cell (the run looks finished for this one cell)
    cell(ip, "big = 1.5\nrun._finished = True")
    cell(ip, "run._finished = False")
    assert "%track failed" in capsys.readouterr().err
    cell(ip, "run.finish()")
    recs = records(ip.user_ns["run"])
    assert [r["status"] for r in recs] == ["ok", "ok", "ok", "ok"]


def test_interrupted_context_manager_and_cell_run_end_as_interrupted(ip):
    cell(ip, "import nbtracker")
    res = cell(ip, "with nbtracker.init(project='ctx') as r:\n    r.log({'a': 1})\n    raise KeyboardInterrupt")
    assert isinstance(res.error_in_exec, KeyboardInterrupt)
    res = cell(ip, "%%nbtracker run --project ctx\nnbtracker.log({'b': 1})\nraise KeyboardInterrupt")
    assert isinstance(res.error_in_exec, KeyboardInterrupt)
    listed = nbtracker.runs(project="ctx")
    assert [r.status for r in listed] == ["interrupted", "interrupted"]
    for r in listed:
        (rec,) = records(r)
        assert rec["status"] == "interrupted" and rec["rows"] == 1 and rec["error"]["type"] == "KeyboardInterrupt"
    assert cell(ip, "%nbtracker init --project ctx").success and nbtracker.current_run() is not None
    cell(ip, "%nbtracker finish")


def test_diff_bad_arguments_never_exit(ip, capsys):
    assert not cell(ip, "%nbtracker diff --help x").success      # argparse's exit becomes a UsageError
    assert not cell(ip, "%nbtracker diff onlyone").success
    assert cell(ip, "1 + 1").success


def test_unload_keeps_the_code_so_far_and_stops_recording(ip):
    from nbtracker import magics
    from nbtracker.core import ticker

    cell(ip, "import nbtracker\nrun = nbtracker.init(project='u')")
    ticker.remove(id(magics._sessions[id(ip)]))   # no background capture: only unload may write the code now
    cell(ip, "a = 41 + 1")
    run = ip.user_ns["run"]
    ip.run_line_magic("unload_ext", "nbtracker")
    assert "a = 41 + 1" in (run.dir / "code" / "clean.py").read_text()
    assert "_cell" not in run._context
    cell(ip, "run.log({'x': 1})")
    cell(ip, "run.finish()")
    assert len(records(run)) == 2                # the init cell and the cell before unload
    assert "_cell" not in read_jsonl(run.dir / "metrics.jsonl")[0]
    ip.run_line_magic("load_ext", "nbtracker")   # the fixture unloads it again


def test_a_failed_init_fails_its_cell_in_one_line_and_later_runs_work(ip, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for src in (f"%nbtracker init --dir {blocker}/runs", "%nbtracker init --primary acc:sideways",
                f"%%nbtracker run --dir {blocker}/runs\nran = True"):
        res = cell(ip, src)
        assert type(res.error_in_exec).__name__ == "UsageError", src
        assert str(res.error_in_exec).startswith("nbtracker: ")
    assert "ran" not in ip.user_ns and nbtracker.current_run() is None
    assert cell(ip, "x = 1").success
    assert cell(ip, "%nbtracker init --project later").success
    run = nbtracker.current_run()
    cell(ip, "nbtracker.log({'a': 1})")
    cell(ip, "%nbtracker finish")
    assert [r["rows"] for r in records(run)] == [0, 1, 0]
