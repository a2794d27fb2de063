"""A killed writer, torn lines, resume, crash detection, concurrent writers: nothing recorded is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

import nbtracker
from nbtracker.core import status as status_mod
from nbtracker.core.files import read_jsonl

LOGGER = textwrap.dedent("""
    import os, sys, time, nbtracker
    run = nbtracker.init(project="kill", primary_metric=("loss", "min"))
    print(run.id, flush=True)
    i = 0
    while True:
        run.log({"loss": 1.0 / (i + 1), "i": i})
        i += 1
        if i % 100 == 0:             # atomically, so the parent never reads it half-written
            (run.dir.parent / "progress.tmp").write_text(str(i))
            os.replace(run.dir.parent / "progress.tmp", run.dir.parent / "progress")
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
        while time.time() < deadline and (not progress.exists() or int(progress.read_text() or 0) < 1000):
            time.sleep(0.05)
        view = nbtracker.load(run_id)
        assert view.status == "running"
        time.sleep(1.0)
        killed_at = time.time()
        logged_before_kill = int(progress.read_text())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    view = nbtracker.load(run_id)
    assert view.status == "crashed"           # the writer's flock died with it: no waiting
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = view.history()               # a kill mid-write may leave one torn line, no more
    assert all("torn last line" in str(w.message) for w in caught) and len(caught) <= 1
    assert [r["i"] for r in history] == list(range(len(history)))
    assert len(history) >= 1000 and logged_before_kill >= 1000
    # At most about a second of rows is missing: the newest row on disk is that recent.
    assert killed_at - history[-1]["_time"] < 1.0, killed_at - history[-1]["_time"]
    assert nbtracker.runs(status="crashed")[0].id == run_id
    assert view.as_dict()["status"] == "crashed"
    assert json.loads((view.dir / "run.json").read_text())["status"] == "running"  # as recorded


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
    with pytest.raises(nbtracker.RunNotFoundError, match="resume= takes a run id"):
        nbtracker.init(resume="../../etc")   # not a run directory, not an id under the root
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


HOLDER = textwrap.dedent("""
    import fcntl, os, sys
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("locked", flush=True)
    sys.stdin.read()                    # hold the lock until the parent closes stdin
""")


def _recorded_running(run_dir):
    """Make a finished run's run.json say "running" again, as a live writer's would."""
    path = run_dir / "run.json"
    d = json.loads(path.read_text())
    path.write_text(json.dumps({**d, "status": "running", "end_time": None}))


def test_heartbeat_decides_while_another_process_holds_the_lock(run_root):
    with nbtracker.init() as run:
        run.log({"a": 1.0})
    _recorded_running(run.dir)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run.dir / ".lock")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        os.utime(run.dir / "heartbeat")                         # fresh beat, lock held: alive
        assert nbtracker.load(run.id).status == "running"
        stale = time.time() - status_mod.STALE_AFTER - 1
        os.utime(run.dir / "heartbeat", (stale, stale))          # a writer that went quiet
        assert nbtracker.load(run.id).status == "crashed"
        fresh = time.time() - status_mod.STALE_AFTER + 5
        os.utime(run.dir / "heartbeat", (fresh, fresh))
        assert nbtracker.load(run.id).status == "running"
        with pytest.raises(nbtracker.RunActiveError):
            nbtracker.init(resume=run.id)
    finally:
        holder.stdin.close()
        holder.wait(10)
    assert nbtracker.load(run.id).status == "crashed"             # lock released: dead at once
    assert nbtracker.load(run.id).history()[0]["a"] == 1.0


def test_effective_status_on_a_directory_built_by_hand(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    now = time.time()
    for recorded in ("finished", "failed", "interrupted", "crashed"):
        assert status_mod.effective_status(d, recorded) == recorded   # end states are final
    assert status_mod.effective_status(d, "running") == "crashed"    # no heartbeat at all
    (d / "heartbeat").touch()
    # No .lock (a writer on another machine, or a filesystem without flock): the heartbeat decides.
    assert status_mod.effective_status(d, "running", now=now) == "running"
    assert status_mod.effective_status(d, "running", now=now + status_mod.STALE_AFTER + 1) == "crashed"
    (d / ".lock").touch()                                          # a lock file nobody holds
    assert status_mod.effective_status(d, "running", now=now) == "crashed"


@pytest.mark.slow
def test_a_live_run_refreshes_its_heartbeat(run_root):
    run = nbtracker.init()
    try:
        stale = time.time() - status_mod.STALE_AFTER - 1
        os.utime(run.dir / "heartbeat", (stale, stale))
        assert nbtracker.load(run.id).status == "crashed"
        deadline = time.time() + status_mod.HEARTBEAT_EVERY + 3
        while time.time() < deadline and nbtracker.load(run.id).status != "running":
            time.sleep(0.1)
        assert nbtracker.load(run.id).status == "running"       # the background thread beat again
    finally:
        run.finish()


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
    import sys, time, nbtracker
    k = int(sys.argv[1])
    with nbtracker.init(project="multi", config={"k": k}) as run:
        for i in range(3000):
            run.log({"i": i, "k": k})
            if i % 300 == 0:
                time.sleep(0.1)         # keep the writers alive (~1 s) while the parent lists
""")


def test_four_processes_write_while_listing(run_root):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(k)],
                              env={**os.environ, "NBTRACKER_DIR": str(run_root)}) for k in range(4)]
    listings = 0
    seen: dict[str, set[str]] = {}
    rows_seen_live = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no torn-line warning for a live writer either
        while any(p.poll() is None for p in procs):
            for r in nbtracker.runs(project="multi"):
                seen.setdefault(r.id, set()).add(r.status)
                if r.status == "running":
                    rows_seen_live = max(rows_seen_live, len(r.history()))
            listings += 1
    assert [p.returncode for p in procs] == [0, 0, 0, 0]
    done = nbtracker.runs(project="multi")
    assert len(done) == 4 and {r.status for r in done} == {"finished"}
    assert sorted(r.config["k"] for r in done) == [0, 1, 2, 3]
    assert all([row["i"] for row in r.history()] == list(range(3000)) for r in done)
    assert all(r.steps == 3000 and r.summary["i"] == 2999 for r in done)
    assert listings > 5 and rows_seen_live > 0           # the listing really overlapped the writing
    assert not any("crashed" in s for s in seen.values()), seen   # finishing is never "crashed"


EXITS = {
    "exit without finish": ("finished", None, "run.log({'a': 1.0})\n"),
    "uncaught exception": ("failed", "ValueError", "run.log({'a': 1.0})\nraise ValueError('bad batch')\n"),
    "uncaught KeyboardInterrupt": ("interrupted", "KeyboardInterrupt", "run.log({'a': 1.0})\nraise KeyboardInterrupt\n"),
}


@pytest.mark.parametrize("case", list(EXITS))
def test_interpreter_exit_finishes_open_runs_with_all_rows(case, run_root):
    status, error, tail = EXITS[case]
    code = ("import nbtracker\nrun = nbtracker.init(project='exit')\nprint(run.id, flush=True)\n"
            "for i in range(2000):\n    run.log({'i': i})\n" + tail)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "NBTRACKER_DIR": str(run_root)})
    view = nbtracker.load(out.stdout.split()[0])
    assert view.status == status, out.stderr
    assert (view.as_dict()["error"] or {}).get("type") == error
    assert [r["i"] for r in view.history() if "i" in r] == list(range(2000))
    assert view.history()[-1].get("a") == 1.0 and view.steps == 2001


FORKER = textwrap.dedent("""
    import os, sys, nbtracker
    run = nbtracker.init(project="fork")
    print(run.id, flush=True)
    for i in range(3):
        run.log({"i": i})               # queued, not yet written, when the process forks
    pid = os.fork()
    if pid == 0:
        assert nbtracker.current_run() is None
        sys.exit(0)                     # a normal exit runs atexit hooks in the child
    os.waitpid(pid, 0)
    import json
    assert json.loads((run.dir / "run.json").read_text())["status"] == "running"
    run.log({"i": 3})
    run.finish()
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_finish_or_duplicate_the_parents_run(run_root):
    # Regression: the child's atexit hook finished the parent's run and wrote its queued rows again.
    out = subprocess.run([sys.executable, "-c", FORKER], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "NBTRACKER_DIR": str(run_root)})
    assert out.returncode == 0, out.stderr
    view = nbtracker.load(out.stdout.split()[0])
    assert [r["i"] for r in view.history()] == [0, 1, 2, 3] and view.status == "finished"


@pytest.mark.parametrize("below", ["", "runs", "runs/deeper"])
def test_unwritable_root_is_a_clear_storage_error(tmp_path, below):
    # We run as root, so chmod would not stop us: a regular file where a directory must be does.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    root = blocker / below if below else blocker
    with pytest.raises(nbtracker.StorageError, match="NBTRACKER_DIR") as info:
        nbtracker.init(dir=root)
    assert str(blocker) in str(info.value) and "writable" in str(info.value)
    assert isinstance(info.value, OSError)
    assert nbtracker.current_run() is None and blocker.read_text() == "not a directory"
    # Readers of such a root see no runs rather than an OSError.
    assert len(nbtracker.runs(dir=root)) == 0
    with pytest.raises(nbtracker.RunNotFoundError):
        nbtracker.load("abcdefgh", dir=root)
    with pytest.raises(nbtracker.RunNotFoundError):
        nbtracker.init(dir=root, resume="abcdefgh")


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


def test_a_torn_last_line_is_skipped_with_a_warning(run_root):
    with nbtracker.init() as run:
        for i in range(3):
            run.log({"i": i})
    path = run.dir / "metrics.jsonl"
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"_step":3,"_time":17955')        # half a line, as a kill leaves
    with pytest.warns(nbtracker.NbtrackerWarning, match="torn last line"):
        assert [r["i"] for r in nbtracker.load(run.id).history()] == [0, 1, 2]
    assert nbtracker.load(run.id).status == "finished"            # listing does not read rows
    path.write_bytes(whole[:-1])                                  # a complete row missing its "\n"
    assert [r["i"] for r in nbtracker.load(run.id).history()] == [0, 1, 2]
