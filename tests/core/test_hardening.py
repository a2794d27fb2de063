"""The defects found by fault injection (issue "Hardening"): each test failed before its fix."""

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
from nbtracker.core import ticker
from nbtracker.core.paths import find_root


def _python(code: str, run_root, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "NBTRACKER_DIR": str(run_root), **env})


# -- item 9: a full disk must not duplicate rows ------------------------------------------------
def test_a_write_cut_short_by_the_file_size_limit_leaves_every_row_once(run_root):
    """RLIMIT_FSIZE makes write() stop part-way, as a full disk does; rows were written twice."""
    done = _python("""
        import resource, signal, nbtracker
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # EFBIG instead of a killed process
        run = nbtracker.init(project="full")
        print(run.dir, flush=True)
        size = lambda: (run.dir / "metrics.jsonl").stat().st_size
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, resource.RLIM_INFINITY))
        failures = 0
        for i in range(6279):
            run.log({"loss": i * 0.5, "tag": "x" * 10})
            if i % 500 == 499:
                try:
                    run.flush(summary=False)
                except nbtracker.StorageError:
                    failures += 1
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        run.finish()
        print(failures)
        """, run_root)
    assert done.returncode == 0, done.stderr
    run_dir, failures = done.stdout.split()
    assert int(failures) >= 3                      # the limit really cut writes short
    lines = open(os.path.join(run_dir, "metrics.jsonl"), "rb").read().split(b"\n")
    rows = [json.loads(line) for line in lines if line.strip()]   # every line parses: nothing torn
    assert [r["_step"] for r in rows] == list(range(6279))        # each row exactly once, in order


# -- item 10: one damaged run.json must not break the root --------------------------------------
@pytest.mark.parametrize("field,value", [
    ("start_time", "yesterday"), ("end_time", [1]), ("config", [1, 2]), ("summary", "x"),
    ("primary_metric", {"name": 3}), ("rows", "many"), ("tags", "a"), ("status", 7), ("name", None),
])
def test_a_wrongly_typed_field_is_ignored_and_named(run_root, field, value, capsys):
    from nbtracker.cli import main

    with nbtracker.init(project="d", primary_metric="acc") as good:
        good.log({"acc": 1.0})
    with nbtracker.init(project="d") as bad:
        bad.log({"acc": 0.5})
    doc = json.loads((bad.dir / "run.json").read_text())
    doc[field] = value
    (bad.dir / "run.json").write_text(json.dumps(doc))
    with pytest.warns(nbtracker.NbtrackerWarning, match=f"wrongly typed fields ignored in d/{bad.id} \\({field}\\)"):
        listed = nbtracker.runs()
    assert {r.id for r in listed} == {good.id, bad.id}
    repr(listed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nbtracker.NbtrackerWarning)
        assert main(["ls"]) == 0 and main(["show", bad.id]) == 0 and main(["export", bad.id]) == 0
        assert main(["diff", good.id, bad.id]) == 0
        view = nbtracker.load(bad.id)
        assert view.history()[0]["acc"] == 0.5 and isinstance(view.summary, dict)
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"", b'{"id": "x", "na', b"[1, 2]", b"\xff\xfe", b"null"])
def test_an_unreadable_run_json_is_listed_as_such_and_fails_commands_in_one_line(run_root, content, capsys):
    from nbtracker.cli import main

    with nbtracker.init(project="u") as good:
        good.log({"a": 1})
    with nbtracker.init(project="u") as bad:
        pass
    (bad.dir / "run.json").write_bytes(content)
    with pytest.warns(nbtracker.NbtrackerWarning, match=f"1 unreadable run.*u/{bad.id}"):
        listed = nbtracker.runs()
    assert [r.id for r in listed] == [good.id] and [d.name for d, _ in listed.unreadable] == [bad.id]
    assert f"unreadable: u/{bad.id}" in repr(listed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nbtracker.NbtrackerWarning)
        assert main(["ls"]) == 0
        assert f"unreadable  u/{bad.id}" in capsys.readouterr().out
        with pytest.raises(nbtracker.UnreadableRunError):
            nbtracker.load(bad.id)
        for command in (["show", bad.id], ["export", bad.id], ["diff", good.id, bad.id]):
            assert main(command) == 1
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "Traceback" not in err and bad.id in err


# -- item 11: a failed init changes nothing -------------------------------------------------------
@pytest.mark.parametrize("bad", [
    {"config": {"_x": 1}}, {"config": [1, 2]}, {"config": {1: 2}}, {"group": object()}, {"notes": 5},
    {"group": 5}, {"name": 3}, {"resume": "nosuchrun"}, {"project": "a\udcff"}, {"tags": 5},
])
def test_a_failed_init_leaves_the_active_run_and_the_disk_as_they_were(run_root, bad, capsys):
    a = nbtracker.init(project="keep")
    before = sorted(p.name for p in (run_root / "keep").iterdir())
    with pytest.raises((ValueError, TypeError, LookupError)) as info:
        nbtracker.init(project="keep", **bad) if "project" not in bad else nbtracker.init(**bad)
    assert isinstance(info.value, nbtracker.NbtrackerError), type(info.value)
    assert nbtracker.current_run() is a and a.status == "running"
    assert sorted(p.name for p in (run_root / "keep").iterdir()) == before
    assert "finished run" not in capsys.readouterr().err
    a.finish()


def test_init_on_a_full_disk_removes_what_it_made(run_root, monkeypatch):
    a = nbtracker.init(project="disk")
    from nbtracker.core import files

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files, "atomic_write_json", no_space)
    monkeypatch.setattr("nbtracker.run.atomic_write_json", no_space)
    with pytest.raises(nbtracker.StorageError, match="No space left"):
        nbtracker.init(project="disk")
    monkeypatch.undo()
    assert [p.name for p in (run_root / "disk").iterdir()] == [a.id]
    assert nbtracker.current_run() is a
    a.finish()


# -- item 12: a forked child must not keep a dead writer's lock ----------------------------------
def test_a_forked_child_does_not_hold_the_lock_of_a_killed_parent(run_root):
    code = """
        import multiprocessing, os, sys, time, nbtracker
        run = nbtracker.init(project="fork")
        print(run.id, flush=True)
        def child():
            time.sleep(60)
        p = multiprocessing.get_context("fork").Process(target=child)
        p.start()
        print(p.pid, flush=True)
        time.sleep(60)
        """
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "NBTRACKER_DIR": str(run_root)})
    run_id = proc.stdout.readline().strip()
    child = int(proc.stdout.readline())
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert os.path.exists(f"/proc/{child}")                    # the child lives on
        # the child closes its copy of the lock as soon as it runs after the fork
        deadline = time.monotonic() + 10
        while nbtracker.load(run_id).status != "crashed" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert nbtracker.load(run_id).status == "crashed"
        resumed = nbtracker.init(resume=run_id)                    # not refused
        resumed.finish()
    finally:
        os.kill(child, signal.SIGKILL)


# -- item 13: finish() must not re-read the history ---------------------------------------------
def test_finish_prints_the_text_view_without_reading_the_history(run_root, monkeypatch):
    from nbtracker.core import files

    read = []
    monkeypatch.setattr(files, "read_jsonl", lambda *a, **k: read.append(a) or [])
    monkeypatch.setattr("nbtracker.core.query.read_jsonl", files.read_jsonl)
    code = """
        import sys, nbtracker
        run = nbtracker.init(project="big", primary_metric="acc")
        for i in range(200_000):
            run.log({"acc": i / 200_000, "loss": 1 / (i + 1), "nan": float("nan") if i % 3 else i})
        import nbtracker.core.files as f
        f.read_jsonl = None          # finish() must not need it
        run.finish()
        """
    done = _python(code, run_root, NBTRACKER_QUIET="0")
    assert done.returncode == 0, done.stderr
    assert "finished, 200000 rows" in done.stderr and "best 1 @ step 199999 (max)" in done.stderr
    assert "min 5e-06  max 1" in done.stderr and "min 0  max 199998" in done.stderr


# -- item 14: stored text must never break or steer the terminal --------------------------------
def test_cli_output_escapes_control_characters_and_survives_surrogates(run_root):
    with nbtracker.init(project="t", name="evil\x1b[2J\x07name", notes="n\x1b]0;title\x07",
                        tags=["t\x1b[31m"]) as run:
        run.log({"v": 1, "text": "x\udcff"})       # text decoded with surrogateescape
    doc = json.loads((run.dir / "run.json").read_text())
    doc["summary"]["s"] = "y\udcfe"                  # as another tool may write it (valid JSON)
    (run.dir / "run.json").write_text(json.dumps(doc))
    with nbtracker.init(project="t", name="other") as other:
        other.log({"v": 2})
    for command in (["ls"], ["show", run.id], ["diff", run.id, other.id], ["export", run.id, "-f", "csv"],
                    ["rm", run.id, other.id, "--yes"]):
        done = subprocess.run([sys.executable, "-m", "nbtracker", *command], capture_output=True,
                              env={**os.environ, "NBTRACKER_DIR": str(run_root), "PYTHONIOENCODING": "utf-8"})
        assert done.returncode == 0, (command, done.stderr)
        assert b"\x1b" not in done.stdout and b"\x07" not in done.stdout, (command, done.stdout)
        if command[0] in ("ls", "show", "rm"):
            assert b"evil\\x1b[2J\\x07name" in done.stdout, (command, done.stdout)


# -- item 15: every bad input is a documented error naming the key ------------------------------
class Raising:
    def __init__(self, exc):
        self.exc = exc

    def item(self):
        raise self.exc


def test_bad_values_raise_documented_errors_naming_the_key(run_root):
    deep: dict = {}
    node = deep
    for _ in range(3000):
        node["k"] = {}
        node = node["k"]
    selfish: dict = {}
    selfish["me"] = selfish
    with nbtracker.init(project="v") as run:
        for bad, match in (({"huge": 10 ** 400}, "huge.*too large"), ({"deep": deep}, "nested more than"),
                           ({"me": selfish}, "nested more than"), ({"it": Raising(KeyError("x"))}, "it.*item"),
                           ({"rt": Raising(RuntimeError("cuda"))}, "rt.*cuda")):
            with pytest.raises(nbtracker.InvalidValueError, match=match):
                run.log(bad)
        for where in ("config", "summary"):
            for bad in ({"deep": deep}, {"me": selfish}, {"huge": [10 ** 400]}):
                with pytest.raises(nbtracker.InvalidValueError):
                    getattr(run, where).update(bad)
        run.log({"ok": 1.0})
    assert [r["ok"] for r in nbtracker.load(run.id).history()] == [1.0]   # nothing else recorded
    with pytest.raises(nbtracker.InvalidValueError):
        nbtracker.init(project="v", config={"deep": deep})
    with pytest.raises(nbtracker.RunNotFoundError):
        nbtracker.load("a" * 300)
    with pytest.raises(nbtracker.RunNotFoundError):
        nbtracker.load("x\x00y")
    with pytest.raises(nbtracker.InvalidKeyError, match="bytes"):
        nbtracker.init(project="😀" * 100)
    assert nbtracker.current_run() is None


# -- item 16 --------------------------------------------------------------------------------------
def test_auto_step_never_passes_the_documented_range(run_root):
    with nbtracker.init(project="s") as run:
        run.log({"a": 1}, step=2 ** 63 - 1)
        with pytest.raises(nbtracker.InvalidKeyError, match="beyond 2\\*\\*63-1"):
            run.log({"a": 2})
    assert [r["_step"] for r in nbtracker.load(run.id).history()] == [2 ** 63 - 1]


def test_planted_symlinks_are_not_followed_on_resume(run_root, tmp_path):
    with nbtracker.init(project="l") as run:
        run.log({"a": 1})
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("heartbeat", ".lock"):
        (run.dir / name).unlink()
        (run.dir / name).symlink_to(outside / name)
    with pytest.raises(nbtracker.StorageError, match="symlink: refused"):
        nbtracker.init(resume=run.id)
    assert list(outside.iterdir()) == []          # nothing created or touched outside the root
    assert nbtracker.current_run() is None


def test_temp_files_of_killed_writers_are_removed_on_resume(run_root):
    with nbtracker.init(project="tmp") as run:
        pass
    stale = run.dir / ".run.json.12345.678.tmp"
    stale.write_text("{half")
    nbtracker.init(resume=run.id).finish()
    assert not stale.exists()


def test_the_ticker_thread_ends_when_no_run_is_open(run_root):
    run = nbtracker.init(project="idle")
    assert ticker.alive()
    run.finish()
    deadline = time.monotonic() + 5
    while ticker.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not ticker.alive()


# -- item 4: one rule for where runs go ----------------------------------------------------------
def test_the_root_is_found_upward(tmp_path, monkeypatch):
    monkeypatch.delenv("NBTRACKER_DIR")
    project = tmp_path / "proj"
    notebooks = project / "notebooks" / "deep"
    notebooks.mkdir(parents=True)
    assert find_root(cwd=notebooks) == (notebooks / "nbtracker-runs",
                                        f"default: ./nbtracker-runs in the working directory {notebooks}")
    (project / "nbtracker-runs").mkdir()
    root, why = find_root(cwd=notebooks)
    assert root == project / "nbtracker-runs" and "nearest existing" in why
    (project / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.nbtracker]\ndir = "store/runs"\n')
    root, why = find_root(cwd=notebooks)
    assert root == project / "store" / "runs" and "[tool.nbtracker] dir" in why
    monkeypatch.setenv("NBTRACKER_DIR", str(tmp_path / "env"))
    assert find_root(cwd=notebooks)[0] == tmp_path / "env"
    assert find_root(tmp_path / "arg", cwd=notebooks) == (tmp_path / "arg", "dir= argument")
    monkeypatch.delenv("NBTRACKER_DIR")
    monkeypatch.chdir(notebooks)             # the CLI and every reader use the same rule
    with nbtracker.init(project="up") as run:
        pass
    assert run.dir.parent.parent == project / "store" / "runs"
    from nbtracker.cli import main

    monkeypatch.chdir(project)
    assert [r.id for r in nbtracker.runs()] == [run.id]
    done = subprocess.run([sys.executable, "-m", "nbtracker", "root"], capture_output=True, text=True,
                          cwd=notebooks, env={k: v for k, v in os.environ.items() if k != "NBTRACKER_DIR"})
    assert done.stdout.splitlines()[0] == str(project / "store" / "runs") and "pyproject.toml" in done.stdout
    assert main(["ls"]) == 0


# -- item 6 -----------------------------------------------------------------------------------------
def test_resume_takes_the_same_references_as_load(run_root):
    with nbtracker.init(project="r", name="named-run") as run:
        run.log({"a": 1})
    for ref in (run.id, run.id[:5], "named-run", str(run.dir)):
        again = nbtracker.init(resume=ref)
        assert again.id == run.id and again.step == 1
        again.finish()
    with pytest.raises(nbtracker.RunNotFoundError, match="unique id prefix, a unique name"):
        nbtracker.init(resume="nope")


def test_bare_command_lists_the_commands_and_export_defaults_to_csv(run_root):
    with nbtracker.init(project="c") as run:
        run.log({"a": 1.5})
    env = {**os.environ, "NBTRACKER_DIR": str(run_root)}
    bare = subprocess.run([sys.executable, "-m", "nbtracker"], capture_output=True, text=True, env=env)
    assert bare.returncode == 2 and all(c in bare.stderr for c in ("ls", "show", "diff", "export", "rm", "root"))
    export = subprocess.run([sys.executable, "-m", "nbtracker", "export", run.id], capture_output=True,
                            text=True, env=env)
    assert export.returncode == 0 and export.stdout.splitlines() == ["_step,_time,a", export.stdout.splitlines()[1]]
    assert export.stdout.splitlines()[1].endswith(",1.5")
