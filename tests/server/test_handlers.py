"""The server extension's HTTP API against a real jupyter_server on 127.0.0.1 (no mocks).

The server is started the way a user's is (its extension enabled by the config file the
install put in etc/jupyter); runs are written by this test process with the real Run API, and
every answer is checked against the files.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

import nbtracker

TOKEN = "server-test-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("srv")
    work, runs = root / "work", root / "runs"
    work.mkdir()
    runs.mkdir()
    (root / "secret.txt").write_text("top secret")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / "cfg"), "JUPYTER_RUNTIME_DIR": str(root / "rt"),
           "NBTRACKER_DIR": str(runs)}
    log = open(root / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_server", "--no-browser", "--ip=127.0.0.1",
                             f"--port={port}", f"--IdentityProvider.token={TOKEN}",
                             f"--ServerApp.root_dir={work}", "--allow-root"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail((root / "server.log").read_text()[-3000:])
        try:
            urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2).read()
            break
        except OSError:
            assert time.monotonic() < deadline, (root / "server.log").read_text()[-3000:]
            time.sleep(0.2)
    yield base, runs, root
    proc.terminate()
    proc.wait(15)
    log.close()
    assert "nbtracker server extension loaded" in (root / "server.log").read_text()


def get(base: str, path: str, token: str | None = TOKEN, raw: bool = False):
    url = f"{base}/nbtracker/api/{path}"
    headers = {"Authorization": f"token {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
        body = r.read()
        return (r.status, dict(r.headers), body) if raw else json.loads(body)


def status_of(base: str, path: str, token: str | None = TOKEN) -> int:
    try:
        get(base, path, token, raw=True)
        return 200
    except urllib.error.HTTPError as e:
        return e.code


def test_every_route_needs_the_token(server):
    base, runs, _ = server
    with nbtracker.init(project="auth", dir=runs) as r:
        r.log({"x": 1})
    key = f"auth/{r.id}"
    for path in ("runs", f"runs/{key}", f"runs/{key}/metrics", f"runs/{key}/cells", f"runs/{key}/code",
                 f"runs/{key}/assets", f"runs/{key}/file?path=run.json"):
        assert status_of(base, path, token=None) == 403, path
        assert status_of(base, path, token="wrong") == 403, path
        assert status_of(base, path) == 200, path


def test_listing_pages_and_polls_only_what_changed(server):
    base, runs, _ = server
    made = []
    for i in range(25):
        with nbtracker.init(project="page", name=f"p{i:02d}", dir=runs, primary_metric="acc") as r:
            r.log({"acc": i / 25})
        made.append(r.id)
    first = get(base, "runs?project=page&offset=0&limit=10")
    second = get(base, "runs?project=page&offset=10&limit=10")
    third = get(base, "runs?project=page&offset=20&limit=10")
    names = [r["name"] for page in (first, second, third) for r in page["runs"]]
    assert first["total"] == 25 and len(names) == 25 and names[0] == "p24"      # newest first
    assert set(names) == {f"p{i:02d}" for i in range(25)}
    top = first["runs"][0]
    assert top["primary"] == {"name": "acc", "goal": "max", "last": 0.96, "best": 0.96, "best_step": 0}
    assert top["status"] == "finished" and top["rows"] == 1
    gen = first["generation"]
    time.sleep(0.6)                                  # the listing refreshes at most twice a second
    assert get(base, f"runs?since={gen}")["changed"] == []
    live = nbtracker.init(project="page", name="growing", dir=runs)
    for i in range(50):
        live.log({"loss": 1 / (i + 1)})
    live.flush()
    time.sleep(0.6)
    reply = get(base, f"runs?since={gen}")
    assert [r["name"] for r in reply["changed"]] == ["growing"] and reply["changed"][0]["status"] == "running"
    gen = reply["generation"]
    live.finish()
    time.sleep(0.6)
    reply = get(base, f"runs?since={gen}")
    assert [(r["name"], r["status"], r["rows"]) for r in reply["changed"]] == [("growing", "finished", 50)]
    gen = reply["generation"]
    import shutil

    shutil.rmtree(runs / "page" / made[0])
    time.sleep(0.6)
    reply = get(base, f"runs?since={gen}")
    assert reply["removed"] == [f"page/{made[0]}"] and reply["changed"] == []
    for bad in ("offset=-1", "limit=0", "limit=abc", "since=x", "project=..", "project=a%2Fb"):
        assert status_of(base, f"runs?{bad}") == 400, bad


def test_metrics_are_downsampled_then_polled_as_increments(server):
    base, runs, _ = server
    run = nbtracker.init(project="m", dir=runs, primary_metric=("loss", "min"))
    for i in range(100_000):
        run.log({"loss": 1 / (i + 1), "spike": 1000.0 if i == 77_777 else 0.0})
    run.flush()
    key = f"m/{run.id}"
    reply = get(base, f"runs/{key}/metrics")
    deadline = time.monotonic() + 60
    while "partial" in reply:          # 9 MB: read in the background, the latest rows meanwhile
        assert reply["series"]["loss"]["x"][-1] == 99_999 and reply["series"]["loss"]["n"] == 0
        assert time.monotonic() < deadline
        time.sleep(0.2)
        reply = get(base, f"runs/{key}/metrics")
    assert reply["rows"] == 100_000 and set(reply["keys"]) == {"loss", "spike"}
    spike = reply["series"]["spike"]
    assert spike["replace"] and spike["n"] == 100_000 and len(spike["x"]) <= 2100
    assert 1000.0 in spike["y"] and spike["x"][spike["y"].index(1000.0)] == 77_777   # no spike hidden
    assert spike["x"][0] == 0 and spike["x"][-1] == 99_999
    for i in range(100_000, 100_030):
        run.log({"loss": 1 / (i + 1)})
    run.flush()
    have = json.dumps({"loss": 100_000, "spike": 100_000})
    inc = get(base, f"runs/{key}/metrics?have={urllib.request.quote(have)}")
    loss = inc["series"]["loss"]
    assert not loss["replace"] and loss["from"] == 100_000 and loss["x"] == list(range(100_000, 100_030))
    assert inc["series"]["spike"]["x"] == [] and inc["rows"] == 100_030
    one = get(base, f"runs/{key}/metrics?keys={urllib.request.quote(json.dumps(['loss']))}")
    assert list(one["series"]) == ["loss"]
    run.log({"loss": float("nan")})
    run.finish()
    last = get(base, f"runs/{key}/metrics?have={urllib.request.quote(json.dumps({'loss': 100_030}))}")
    assert last["series"]["loss"]["y"] == [None]                       # NaN: a gap, valid JSON
    for bad in ("keys=notjson", "keys=%7B%7D", "have=%5B%5D", "have=%7B%22loss%22%3A-1%7D"):
        assert status_of(base, f"runs/{key}/metrics?{bad}") == 400, bad


def test_cells_code_assets_and_files(server):
    base, runs, _ = server
    with nbtracker.init(project="a", dir=runs) as r:
        r.log({"x": 1})
        r.log_text("hello <b>there</b>")
        img = nbtracker.Image(__import__("numpy").zeros((4, 4, 3), dtype="uint8"))
        r.log({"sample": img})
        (runs.parent / "page.html").write_text("<script>alert(1)</script>")
        r.save(runs.parent / "page.html")
        r.checkpoint(runs.parent / "page.html", step=0, metrics={"x": 1})
    key = f"a/{r.id}"
    doc = get(base, f"runs/{key}")
    assert doc["id"] == r.id and doc["status"] == "finished" and doc["has"]["media"]
    assets = get(base, f"runs/{key}/assets")
    assert assets["text"][0]["text"] == "hello <b>there</b>"
    (item,) = assets["images"]["sample"]
    status, headers, body = get(base, f"runs/{key}/file?path={urllib.request.quote(item['path'])}", raw=True)
    assert headers["Content-Type"] == "image/png" and body[:8] == b"\x89PNG\r\n\x1a\n"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert [c["id"] for c in assets["checkpoints"]] and assets["files"][0]["path"] == "page.html"
    status, headers, body = get(base, f"runs/{key}/file?path=files/page.html", raw=True)
    assert headers["Content-Type"] == "application/octet-stream" and headers["Content-Disposition"] == "attachment"
    assert "sandbox" in headers["Content-Security-Policy"]
    assert get(base, f"runs/{key}/cells") == {"cells": []}              # a script records no cells
    assert get(base, f"runs/{key}/code")["clean.py"] is None


def test_nothing_outside_the_run_root_is_served(server):
    base, runs, root = server
    with nbtracker.init(project="safe", dir=runs) as r:
        r.log({"x": 1})
    key = f"safe/{r.id}"
    run_dir = runs / "safe" / r.id
    secret = root / "secret.txt"
    (run_dir / "out").symlink_to(root)                       # a symlinked folder out of the run
    (run_dir / "leak.txt").symlink_to(secret)                # a symlinked file
    (runs / "linked").symlink_to(runs / "safe")              # a symlinked project
    os.symlink(run_dir, runs / "safe" / "alias")             # a symlinked run
    cases = {
        f"runs/{key}/file?path=../../../secret.txt": 403,
        f"runs/{key}/file?path=%2E%2E%2F%2E%2E%2F%2E%2E%2Fsecret.txt": 403,
        f"runs/{key}/file?path={urllib.request.quote(str(secret))}": 403,       # absolute
        f"runs/{key}/file?path=out/secret.txt": 403,
        f"runs/{key}/file?path=leak.txt": 403,
        f"runs/{key}/file?path=run.json%00.png": 403,
        f"runs/{key}/file?path=..%5C..%5Csecret.txt": 403,                      # backslashes
        f"runs/{key}/file?path=": 403,
        f"runs/{key}/file?path=nothing.png": 404,
        "runs/linked/" + r.id: 403,
        "runs/safe/alias": 403,
        "runs/..%2F..%2Fsecret.txt/x/metrics": 403,
        "runs/%2E%2E/" + r.id: 403,
        "runs/safe/..%2F..": 403,
        "runs/safe/a%00b": 403,
        "runs/safe/nosuchrun": 404,
        "runs/nosuchproject/abc": 404,
        "runs/safe/../../secret.txt": 404,        # normalised by the client/server: no such route
    }
    for path, want in cases.items():
        code = status_of(base, path)
        assert code == want, f"{path}: {code}"
    for path in cases:
        try:
            assert b"top secret" not in get(base, path, raw=True)[2]
        except urllib.error.HTTPError:
            pass


def test_hostile_values_come_back_as_valid_json_data(server):
    base, runs, _ = server
    evil = "<script>alert(1)</script>\"'&amp;"
    config = {evil: evil, "nan": float("nan")}
    with nbtracker.init(project="evil", name=evil, dir=runs, tags=[evil], config=config) as r:
        r.log({evil: 1.0, "inf": float("inf")})
    doc = get(base, f"runs/evil/{r.id}")
    assert doc["name"] == evil and doc["config"] == {evil: evil, "nan": "NaN"}
    assert doc["summary"]["inf"] == "Infinity"
    listing = get(base, "runs?project=evil")
    assert listing["runs"][0]["tags"] == [evil]
    series = get(base, f"runs/evil/{r.id}/metrics")["series"]
    assert series[evil]["y"] == [1.0] and series["inf"]["y"] == [None]


def test_a_long_history_is_read_in_the_background_with_the_latest_rows_meanwhile(tmp_path, monkeypatch):
    """In-process (the threshold lowered): the first replies carry the file's last rows, flagged
    partial; then the whole history, downsampled, with every extreme."""
    from nbtracker.server import series as srv

    monkeypatch.setattr(srv, "PROGRESSIVE_BYTES", 1 << 20)
    monkeypatch.setattr(srv, "TAIL_BYTES", 64 << 10)
    with nbtracker.init(project="big", dir=tmp_path) as run:
        for i in range(60_000):
            run.log({"loss": -5.0 if i == 123 else 1 / (i + 1)})
    cache = srv.SeriesCache()
    rs = cache.get(run.dir)
    first = rs.payload(None, {}, None)
    assert "partial" in first and 0 < first["rows"] < 2_000
    assert first["series"]["loss"]["n"] == 0 and first["series"]["loss"]["x"][-1] == 59_999
    rs.loading.join(30) if rs.loading else None
    whole = cache.get(run.dir).payload(None, {"loss": 0}, None)
    assert "partial" not in whole and whole["rows"] == 60_000
    loss = whole["series"]["loss"]
    assert loss["replace"] and loss["n"] == 60_000 and loss["x"][0] == 0 and -5.0 in loss["y"]
