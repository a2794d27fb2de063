"""A killed writer, torn lines, resume, crash detection, concurrent writers: nothing recorded is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import nbtracker
from nbtracker.core import status as status_mod
from nbtracker.core.files import read_jsonl

LOGGER = textwrap.dedent("""
    import sys, time, nbtracker
    run = nbtracker.init(project="kill", primary_metric=("loss", "min"))
    print(run.id, flush=True)
    i = 0
    while True:
        run.log({"loss": 1.0 / (i + 1), "i": i})
        i += 1
        if i % 100 == 0:
            (run.dir.parent / "progress").write_text(str(i))
        time.sleep(0.0005)
""")


def _start_logger(run_root):
    proc = subprocess.Popen([sys.executable, "-c", LOGGER], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "NBTRACKER_DIR": str(run_root)})
    run_id = proc.stdout.readline().strip()
    return proc, run_id


def test_sigkill_loses_at_most_about_a_second_and_reads_as_crashed(run_root):
    proc, run_id = _start_logger(run_root)
    progress = run_root / "kill" / "progress"
    try:
        deadline = time.time() + 30
        while time.time() < deadline and (not progress.exists() or int(progress.read_text() or 0) < 1500):
            time.sleep(0.05)
        view = nbtracker.load(run_id)
        assert view.status == "running"
        time.sleep(1.2)                       # the last ~second of rows may still be in memory
        logged_before_kill = int(progress.read_text())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    view = nbtracker.load(run_id)
    assert view.status == "crashed"           # the writer's flock died with it: no waiting
    history = view.history()
    assert [r["i"] for r in history] == list(range(len(history)))
    assert len(history) >= logged_before_kill - 1500, (len(history), logged_before_kill)
    assert nbtracker.runs(status="crashed")[0].id == run_id


def test_resume_after_crash_continues_steps(run_root, tmp_path):
    proc, run_id = _start_logger(run_root)
    time.sleep(1.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    with open(run_root / "kill" / run_id / "metrics.jsonl", "a") as f:
        f.write('{"_step": 99999, "_ti')           # a torn last line, as a kill mid-write leaves
    with pytest.warns(nbtracker.NbtrackerWarning, match="torn last line"):
        before = nbtracker.load(run_id).history()
    last = before[-1]["_step"]
    with pytest.warns(nbtracker.NbtrackerWarning):
        run = nbtracker.init(resume=run_id)
    assert run.resumed and run.step == last + 1 and run.status == "running"
    run.log({"loss": 0.0001})
    run.finish()
    with pytest.warns(nbtracker.NbtrackerWarning, match="unreadable"):
        after = nbtracker.load(run_id).history()
    assert after[:-1] == before and after[-1]["_step"] == last + 1 and after[-1]["loss"] == 0.0001
    d = json.loads((run.dir / "run.json").read_text())
    assert d["status"] == "finished" and len(d["resumes"]) == 1
    assert d["summary"]["best/loss"] == 0.0001


def test_resume_errors(run_root):
    with pytest.raises(nbtracker.RunNotFoundError, match="zzzzzzzz"):
        nbtracker.init(resume="zzzzzzzz")
    with pytest.raises(ValueError):
        nbtracker.init(resume="../../etc")
    proc, run_id = _start_logger(run_root)
    try:
        with pytest.raises(nbtracker.RunActiveError, match="another process"):
            nbtracker.init(resume=run_id)
    finally:
        proc.kill()
        proc.wait(10)


def test_resume_keeps_config_and_hand_set_summary(run_root):
    with nbtracker.init(project="p", config={"lr": 1}) as run:
        run.log({"loss": 2.0})
        run.summary["note"] = "kept"
    again = nbtracker.init(resume=run.id, config={"epochs": 3})
    again.log({"loss": 1.0})
    again.finish()
    d = json.loads((run.dir / "run.json").read_text())
    assert d["config"] == {"lr": 1, "epochs": 3}
    assert d["summary"]["note"] == "kept" and d["summary"]["loss"] == 1.0 and d["rows"] == 2


def test_stale_heartbeat_reads_as_crashed_even_while_the_lock_is_held(run_root):
    run = nbtracker.init()
    try:
        assert nbtracker.load(run.id).status == "running"
        old = time.time() - status_mod.STALE_AFTER - 5
        os.utime(run.dir / "heartbeat", (old, old))   # e.g. a writer on another machine went quiet
        assert nbtracker.load(run.id).status == "crashed"
    finally:
        run.finish()
    assert nbtracker.load(run.id).status == "finished"


def test_rows_reach_disk_within_a_second_without_finish(run_root):
    run = nbtracker.init()
    try:
        run.log({"a": 1.0})
        deadline = time.time() + 2
        while time.time() < deadline and not read_jsonl(run.dir / "metrics.jsonl"):
            time.sleep(0.05)
        assert read_jsonl(run.dir / "metrics.jsonl")[0]["a"] == 1.0
    finally:
        run.finish()


WRITER = textwrap.dedent("""
    import sys, nbtracker
    k = int(sys.argv[1])
    with nbtracker.init(project="multi", config={"k": k}) as run:
        for i in range(3000):
            run.log({"i": i, "k": k})
""")


def test_four_processes_write_while_listing(run_root):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(k)],
                              env={**os.environ, "NBTRACKER_DIR": str(run_root)}) for k in range(4)]
    listings = 0
    while any(p.poll() is None for p in procs):
        for r in nbtracker.runs(project="multi"):
            r.history()                      # reading a live run never errors
        listings += 1
    assert [p.returncode for p in procs] == [0, 0, 0, 0]
    done = nbtracker.runs(project="multi")
    assert len(done) == 4 and {r.status for r in done} == {"finished"}
    assert sorted(r.config["k"] for r in done) == [0, 1, 2, 3]
    assert all([row["i"] for row in r.history()] == list(range(3000)) for r in done)
    assert listings > 0


def test_unwritable_root_is_a_clear_storage_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(nbtracker.StorageError, match="NBTRACKER_DIR"):
        nbtracker.init(dir=blocker / "runs")
    assert nbtracker.current_run() is None


def test_failed_writes_keep_rows_and_finish_can_be_retried(run_root):
    run = nbtracker.init()
    run.log({"a": 1.0})
    run.flush()
    run.log({"a": 2.0})
    log = run._log
    real_fd = log._fd
    log._fd = os.open(os.devnull, os.O_RDONLY)   # the disk now refuses writes (EBADF)
    try:
        with pytest.raises(nbtracker.StorageError, match="nothing was dropped"):
            run.finish()
        assert nbtracker.current_run() is run
    finally:
        os.close(log._fd)
        log._fd = real_fd
    run.finish()
    assert [r["a"] for r in read_jsonl(run.dir / "metrics.jsonl")] == [1.0, 2.0]


def test_a_live_runs_unfinished_last_line_is_not_an_error(run_root):
    import warnings

    run = nbtracker.init()
    try:
        run.log({"a": 1.0})
        run.flush()
        with open(run.dir / "metrics.jsonl", "a") as f:
            f.write('{"_step":1,"_ti')                # a write in flight, as a concurrent reader may see
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert [r["a"] for r in nbtracker.load(run.id).history()] == [1.0]
    finally:
        run.finish()
