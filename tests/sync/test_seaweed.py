"""The object storage mirror against a real S3 server: SeaweedFS on 127.0.0.1, signatures checked."""

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
from nbtracker.cli import main as cli
from nbtracker.sync import ship

pytestmark = pytest.mark.services


def _objects(fs, prefix):
    fs.invalidate_cache()
    try:
        return {k: (v["size"], str(v.get("LastModified"))) for k, v in fs.find(prefix, detail=True).items()}
    except FileNotFoundError:
        return {}


def _make_run(rows, project="sw", **config):
    run = nbtracker.init(project=project, config=config or {"lr": 0.1}, primary_metric="loss:min")
    for i in range(rows):
        run.log({"loss": 1 / (i + 1), "acc": i % 7, "note": "é\n\"x\""})
    run.finish()
    return run


def _same_as_local(url, run_id):
    local = nbtracker.load(run_id)
    remote = nbtracker.load(run_id, dir=url)
    assert remote.dir != local.dir
    assert {**remote.as_dict(), "dir": None} == {**local.as_dict(), "dir": None}
    assert remote.status == local.status
    assert remote.history() == local.history()
    return remote


def test_sync_read_back_and_resync_uploads_nothing(s3, seaweed, tmp_path):
    weights = tmp_path / "w.bin"
    weights.write_bytes(os.urandom(50_000))
    run = nbtracker.init(project="sw", config={"lr": 0.1, "layers": [1, 2]}, primary_metric="loss:min")
    for i in range(3000):
        run.log({"loss": 1 / (i + 1)})
    run.checkpoint(str(weights), step=10)
    run.save(str(weights))
    run.finish()
    (first,) = ship([run.id], to=s3)
    assert first.error is None and first.rows == 3000 and first.uploads >= 5
    fs = seaweed.fs()
    before = _objects(fs, s3.split("://", 1)[1])
    blobs = [k for k in before if "/.store/blobs/sha256/" in k]
    assert len(blobs) == 1     # checkpoint and saved file share one content, shipped once
    (second,) = ship([run.id], to=s3)
    assert second.error is None and second.uploads == 0 and second.uploaded_bytes == 0
    assert _objects(fs, s3.split("://", 1)[1]) == before   # nothing rewritten, same LastModified

    remote = _same_as_local(s3, run.id)
    listed = nbtracker.runs(dir=s3)
    assert [r.id for r in listed] == [run.id] and listed[0].summary == run.summary
    out = tmp_path / "restored"
    remote.checkpoints[0].checkout(out)
    assert (out / "w.bin").read_bytes() == weights.read_bytes()
    nbtracker.compare(listed)   # the comparison view draws from the mirror copy


def test_cli_sync_and_root(s3, capsys):
    run = _make_run(500)
    assert cli(["sync", run.id, "--to", s3]) == 0
    assert "500 rows" in capsys.readouterr().out
    assert cli(["sync", "--all", "--to", s3]) == 0
    assert "up to date" in capsys.readouterr().out
    assert cli(["--root", s3, "ls"]) == 0
    assert run.id in capsys.readouterr().out
    assert cli(["--root", s3, "export", run.id, "-f", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 500 and rows[-1]["_step"] == 499


def test_wrong_secret_is_a_clear_error(s3, monkeypatch, capsys):
    run = _make_run(10)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    (shipped,) = ship([run.id], to=s3, options={"skip_instance_cache": True})
    assert shipped.error and "refused the credentials" in shipped.error and "AWS_SECRET_ACCESS_KEY" in shipped.error
    assert cli(["sync", run.id, "--to", s3]) == 1
    assert "refused the credentials" in capsys.readouterr().err


def test_sigkill_mid_sync_then_resume(s3, seaweed, tmp_path):
    run = _make_run(40_000)
    size = (run.dir / "metrics.jsonl").stat().st_size
    env = {**seaweed.environ(), "NBTRACKER_MIRROR_SEGMENT": str(64 << 10),
           "NBTRACKER_DIR": os.environ["NBTRACKER_DIR"]}
    proc = subprocess.Popen([sys.executable, "-m", "nbtracker", "sync", run.id, "--to", s3], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    fs = seaweed.fs()
    seg_dir = f"{s3.split('://', 1)[1]}/sw/{run.id}/metrics.jsonl.d"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(_objects(fs, seg_dir)) < 8:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = _objects(fs, seg_dir)
    assert 8 <= len(partial) < size // (64 << 10), "killed too late to test a resume"
    env["NBTRACKER_MIRROR_SEGMENT"] = str(1 << 20)   # resumes with other segment sizes: offsets still chain
    done = subprocess.run([sys.executable, "-m", "nbtracker", "sync", run.id, "--to", s3, "--json"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert 0 < report["rows"] < 40_000
    after = _objects(fs, seg_dir)
    assert all(after[k] == v for k, v in partial.items())   # nothing shipped twice or rewritten
    starts = sorted((int(k.rsplit("/", 1)[1][:16]), v[0]) for k, v in after.items())
    offset = 0
    for start, n in starts:
        assert start == offset
        offset += n
    assert offset == size
    _same_as_local(s3, run.id)


def test_live_mirror_of_a_running_loop(s3, seaweed, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import nbtracker, sys, time
        run = nbtracker.init(project="live", mirror={s3!r}, config={{"lr": 0.1}})
        print(run.id, flush=True)
        for i in range(60):
            for j in range(50):
                run.log({{"loss": 1 / (i * 50 + j + 1)}})
            time.sleep(0.05)
        sys.stdin.readline()          # the test reads the mirror while the run is open
        run.finish()
    """))
    env = {**seaweed.environ(), "NBTRACKER_MIRROR_INTERVAL": "0.3", "NBTRACKER_DIR": os.environ["NBTRACKER_DIR"]}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        run_id = proc.stdout.readline().strip()
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = nbtracker.runs(dir=s3)
            if found:
                n = len(found[0].history())
                if not seen or n != seen[-1]:
                    seen.append(n)
                if n == 3000:
                    break
            time.sleep(0.2)
        assert found[0].status == "running"
        assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] == 3000, seen   # grew while running
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(60) == 0, proc.stderr.read()
    finally:
        proc.kill()
    assert "nbtracker:" not in proc.stderr.read()
    remote = _same_as_local(s3, run_id)
    assert remote.status == "finished"


def test_duckdb_and_pandas_read_the_segments_directly(s3, seaweed):
    duckdb = pytest.importorskip("duckdb")
    import pandas as pd

    run = _make_run(1000, project="q")
    (shipped,) = ship([run.id], to=s3)
    assert shipped.error is None
    fs = seaweed.fs()
    con = duckdb.connect()
    con.register_filesystem(fs)
    base = s3.split("://", 1)[1]
    query = f"select count(*), min(loss) from read_json('s3://{base}/*/*/metrics.jsonl.d/*.jsonl')"
    ((n, best),) = con.sql(query).fetchall()
    assert n == 1000 and best == pytest.approx(1 / 1000)
    # the query of docs/teams.md, as written there
    per_run = con.sql(f"""
      select regexp_extract(filename, '([^/]+)/metrics\\.jsonl\\.d/', 1) as run, max(_step) as steps,
             min(loss) as best_loss
      from read_json('s3://{base}/q/*/metrics.jsonl.d/*.jsonl', filename=true)
      group by run order by best_loss""").fetchall()
    assert per_run == [(run.id, 999, pytest.approx(1 / 1000))]
    ((rid, status, lr),) = con.sql(f"select id, status, config.lr from read_json('s3://{base}/*/*/run.json')").fetchall()
    assert (rid, status, lr) == (run.id, "finished", 0.1)
    keys = sorted(fs.glob(f"{base}/q/*/metrics.jsonl.d/*.jsonl"))
    frames = [pd.read_json(fs.open(k), lines=True, dtype=False, precise_float=True) for k in keys]
    assert len(pd.concat(frames)) == 1000


def test_two_syncers_of_one_run_at_once_make_one_chain(s3, seaweed):
    """A live mirror and `nbtracker sync` (or two syncs) racing: each segment is created once,
    and both walk the same chain of segments, whatever sizes they cut."""
    run = _make_run(30_000)
    procs = []
    for seg in (48 << 10, 80 << 10):
        env = {**seaweed.environ(), "NBTRACKER_MIRROR_SEGMENT": str(seg), "NBTRACKER_DIR": os.environ["NBTRACKER_DIR"]}
        procs.append(subprocess.Popen([sys.executable, "-m", "nbtracker", "sync", run.id, "--to", s3, "--json"],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, (out, err)
        reports.append(json.loads(out))
    fs = seaweed.fs()
    segs = _objects(fs, f"{s3.split('://', 1)[1]}/sw/{run.id}/metrics.jsonl.d")
    offset = 0
    for start, n in sorted((int(k.rsplit("/", 1)[1][:16]), v[0]) for k, v in segs.items()):
        assert start == offset, "segments overlap or leave a hole"
        offset += n
    assert offset == (run.dir / "metrics.jsonl").stat().st_size
    assert sum(r["rows"] for r in reports) == 30_000      # every row shipped by exactly one of them
    _same_as_local(s3, run.id)


@pytest.mark.parametrize("ending, status", [("", "finished"), ("1 / 0", "failed")])
def test_a_script_that_never_calls_finish_still_lands_on_the_mirror(s3, seaweed, tmp_path, ending, status):
    """At interpreter exit the S3 client cannot resolve a host name any more (thread pools are
    shut down before atexit runs): mirrored runs are finished before that."""
    script = tmp_path / "train.py"
    script.write_text(f"import nbtracker\nrun = nbtracker.init(project='exit', mirror={s3!r})\n"
                      f"for i in range(5000):\n    run.log({{'a': i}})\nprint(run.id, flush=True)\n{ending}\n")
    env = {**seaweed.environ(), "AWS_ENDPOINT_URL": seaweed.endpoint.replace("127.0.0.1", "localhost"),
           "NBTRACKER_DIR": os.environ["NBTRACKER_DIR"]}
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert "nbtracker:" not in out.stderr, out.stderr
    run_id = out.stdout.split()[0]
    remote = _same_as_local(s3, run_id)
    assert remote.status == status and len(remote.history()) == 5000
