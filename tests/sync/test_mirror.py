"""The object storage mirror on a folder (``file://``, the same fsspec code paths as S3 minus
the network), its failure behaviour, reading back, and what ``init`` accepts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import nbtracker
from nbtracker.core.errors import InvalidValueError, NbtrackerError
from nbtracker.sync import ship
from nbtracker.sync import live as live_mirrors
from nbtracker.sync.objstore import ConflictError, ObjectMirror

pytest.importorskip("fsspec")


def _run(rows=100, project="m", **kw):
    run = nbtracker.init(project=project, config={"lr": 0.1}, **kw)
    for i in range(rows):
        run.log({"loss": 1 / (i + 1)})
    run.finish()
    return run


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_layout_segments_blobs_and_documents(tmp_path):
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"w" * 5000)
    run = nbtracker.init(project="m", config={"lr": 0.1})
    for i in range(100):
        run.log({"loss": i})
    run.checkpoint(str(weights), step=1)
    run.finish()
    mirror = tmp_path / "mirror"
    (shipped,) = ship([run.id], to=mirror.as_uri())
    assert shipped.error is None, shipped.error
    files = _files(mirror)
    prefix = f"m/{run.id}/"
    segs = sorted(k for k in files if k.startswith(prefix + "metrics.jsonl.d/"))
    assert segs == [prefix + "metrics.jsonl.d/0000000000000000.jsonl"]
    assert files[segs[0]] == (run.dir / "metrics.jsonl").read_bytes()
    assert files[prefix + "run.json"] == (run.dir / "run.json").read_bytes()
    assert json.loads(files[prefix + "heartbeat.json"])["time"] > 0
    digest = nbtracker.load(run.id).checkpoints[0].manifest[0]["sha256"]
    assert files[f".store/blobs/sha256/{digest[:2]}/{digest[2:]}"] == weights.read_bytes()
    # Never shipped: the writer lock, the heartbeat file itself, the store's hard links.
    assert not any(k.endswith(("/.lock", "/heartbeat")) or "/files/" in k for k in files)
    (again,) = ship([run.id], to=mirror.as_uri())
    assert again.uploads == 0 and _files(mirror) == files


def test_torn_tail_is_never_shipped_and_growth_ships_as_new_segments(tmp_path):
    run = _run(10)
    path = run.dir / "metrics.jsonl"
    mirror = tmp_path / "mirror"
    with open(path, "ab") as f:
        f.write(b'{"_step":10,"_time":1.0,"loss":0.')      # a write in flight
    (first,) = ship([run.id], to=mirror.as_uri())
    seg_dir = mirror / "m" / run.id / "metrics.jsonl.d"
    assert first.rows == 10
    assert b"".join(p.read_bytes() for p in sorted(seg_dir.iterdir())).endswith(b"\n")
    with open(path, "ab") as f:
        f.write(b'5}\n{"_step":11,"_time":1.0,"loss":0.25}\n')
    (second,) = ship([run.id], to=mirror.as_uri())
    assert second.rows == 2
    segs = sorted(seg_dir.iterdir())
    assert len(segs) == 2 and int(segs[1].stem) == segs[0].stat().st_size
    assert b"".join(p.read_bytes() for p in segs) == path.read_bytes()


def test_a_segment_is_never_overwritten(tmp_path):
    run = _run(10)
    mirror = tmp_path / "mirror"
    seg = mirror / "m" / run.id / "metrics.jsonl.d" / "0000000000000000.jsonl"
    seg.parent.mkdir(parents=True)
    seg.write_bytes(b'{"_step":0,"_time":0,"other":"writer"}\n')
    target = ObjectMirror(mirror.as_uri())
    with pytest.raises(ConflictError, match="another writer"):
        target.sync_run(run.dir, registry=False)
    assert seg.read_bytes() == b'{"_step":0,"_time":0,"other":"writer"}\n'


def test_reading_a_mirror_follows_its_changes(tmp_path):
    mirror = tmp_path / "mirror"
    a, b = _run(50, name="a"), _run(20, name="b")
    ship(all=True, to=mirror.as_uri())
    listed = nbtracker.runs(dir=mirror.as_uri())
    assert sorted(r.name for r in listed) == ["a", "b"]
    assert len(nbtracker.load("a", dir=mirror.as_uri()).history()) == 50
    with pytest.raises(NbtrackerError, match="read-only"):
        nbtracker.init(dir=mirror.as_uri())
    again = nbtracker.init(resume=a.id)            # a grows; b is deleted from the mirror
    for _ in range(25):
        again.log({"loss": 0.0})
    again.finish()
    ship([a.id], to=mirror.as_uri())
    import shutil

    shutil.rmtree(mirror / "m" / b.id)
    listed = nbtracker.runs(dir=mirror.as_uri())
    assert [r.name for r in listed] == ["a"] and listed[0].steps == 75
    assert len(listed[0].history()) == 75
    assert listed[0].history() == nbtracker.load(a.id).history()


def test_live_mirror_survives_a_failing_store_and_catches_up(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("NBTRACKER_MIRROR_INTERVAL", "0.1")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the mirror's folder should be")
    url = (blocker / "mirror").as_uri()
    run = nbtracker.init(project="m", mirror=url)
    for i in range(2000):
        run.log({"loss": i})
        if i % 500 == 0:
            time.sleep(0.15)
    (mirror,) = live_mirrors.mirrors_of(run)
    deadline = time.monotonic() + 10
    while mirror.status()["state"] != "failing" and time.monotonic() < deadline:
        time.sleep(0.05)
    status = mirror.status()
    assert status["state"] == "failing" and status["last_error"]
    assert any("failing" in line for line in live_mirrors.status_lines(run))
    blocker.unlink()                                # the store comes back
    mirror.poke()
    deadline = time.monotonic() + 90                # back-off: 2, 4, 8 ... seconds
    while mirror.status()["state"] != "live" and time.monotonic() < deadline:
        mirror.poke()
        time.sleep(0.1)
    assert mirror.status()["state"] == "live"
    run.finish()
    err = capfd.readouterr().err
    assert err.count("The run goes on") == 1 and "reachable again" in err
    assert len(nbtracker.load(run.id).history()) == 2000      # the run never noticed
    assert nbtracker.load(run.id, dir=(blocker / "mirror").as_uri()).history() == nbtracker.load(run.id).history()


def test_finish_is_bounded_when_the_store_stays_down(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("NBTRACKER_MIRROR_FINISH_TIMEOUT", "1.5")
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    run = nbtracker.init(project="m", mirror=(blocker / "m").as_uri())
    run.log({"x": 1})
    t0 = time.monotonic()
    run.finish()
    assert time.monotonic() - t0 < 5
    assert f"nbtracker sync {run.id} --to" in capfd.readouterr().err
    assert nbtracker.load(run.id).status == "finished"


def test_bad_mirror_arguments_fail_before_any_run_exists(run_root, monkeypatch):
    for bad in (123, "not a url", "mlflow://x"):
        with pytest.raises(InvalidValueError):
            nbtracker.init(mirror=bad)
    with pytest.raises(InvalidValueError):
        nbtracker.init(mirror="file:///tmp/x", mirror_options=["no"])
    with pytest.raises(NbtrackerError, match="not installed|not a storage URL|install"):
        nbtracker.init(mirror="nosuchscheme://bucket/x")
    monkeypatch.setenv("NBTRACKER_MIRROR", "still not a url")
    with pytest.raises(InvalidValueError):
        nbtracker.init()
    assert not run_root.exists() or not any(run_root.iterdir())


def test_environment_variable_turns_mirroring_on(tmp_path, monkeypatch):
    monkeypatch.setenv("NBTRACKER_MIRROR", (tmp_path / "env-mirror").as_uri())
    run = _run(5)
    assert (tmp_path / "env-mirror" / "m" / run.id / "run.json").read_bytes() == (run.dir / "run.json").read_bytes()
    off = nbtracker.init(project="m", mirror=False)
    assert live_mirrors.mirrors_of(off) == []
    off.finish()


def test_import_nbtracker_loads_no_mirror_library():
    code = ("import sys, nbtracker; bad = [m for m in ('fsspec', 's3fs', 'botocore', 'urllib.request', "
            "'nbtracker.sync.objstore', 'nbtracker.sync.mlflow') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_status_magic_shows_the_mirror(ip, tmp_path, capsys):
    url = (tmp_path / "magic-mirror").as_uri()
    ip.run_line_magic("nbtracker", f"init --project m --mirror {url}")
    ip.run_cell("import nbtracker; nbtracker.log({'x': 1})")
    capsys.readouterr()
    ip.run_line_magic("nbtracker", "status")
    out = capsys.readouterr().out
    assert f"mirror   {url}" in out
    ip.run_line_magic("nbtracker", "finish")
    assert os.path.exists(tmp_path / "magic-mirror" / "m")


def test_a_killed_writer_leaves_the_worker_to_ship_what_reached_the_disk(tmp_path):
    """SIGKILL of the run's process: its mirror worker sees its input close, makes one last
    pass of what reached the disk, and exits (no orphan left behind)."""
    mirror = (tmp_path / "mirror").as_uri()
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, nbtracker
        from nbtracker.sync import live
        run = nbtracker.init(project="m", mirror={mirror!r})
        for i in range(3000):
            run.log({{"x": i}})
        run.flush()
        print(run.id, live.mirrors_of(run)[0].proc.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """))
    env = {**os.environ, "NBTRACKER_MIRROR_INTERVAL": "60"}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == -9
    run_id, worker = out.stdout.split()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and os.path.exists(f"/proc/{worker}"):
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{worker}"), "the worker outlived its run's process"
    assert len(nbtracker.load(run_id, dir=mirror).history()) == 3000


def test_a_worker_that_dies_is_reported_once(tmp_path, capfd):
    run = nbtracker.init(project="m", mirror=(tmp_path / "mirror").as_uri())
    (mirror,) = live_mirrors.mirrors_of(run)
    deadline = time.monotonic() + 30
    while mirror.status()["passes"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    mirror.proc.kill()
    mirror.proc.wait()
    deadline = time.monotonic() + 10
    while mirror.status()["state"] != "failing" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "exited with code -9" in mirror.status()["last_error"]
    run.log({"x": 1})                  # the run goes on
    run.finish()
    err = capfd.readouterr().err
    assert err.count("the worker process exited (code -9)") == 1 and f"nbtracker sync {run.id}" in err
    assert nbtracker.load(run.id).status == "finished"
