"""The JupyterLab extension's costs (see README.md here), as ratios in the same run where a
baseline exists, absolute bounds where the issue sets them.

Usage: python benchmarks/bench_lab.py [--quick]

1. Kernel cost of browser-drawn live charts on a 1 kHz loop (~1 ms of pure-Python work per
   step, 4 metrics logged per step). Baseline: the same loop with no chart, in back-to-back
   pairs of rounds (median ratio of process CPU time, every thread included). With the chart:
   the display layer as in a kernel whose frontend has the extension, each update serialized
   to JSON as ipykernel would send it. Target: <= 1.02x. Also: updates per second, bytes each.
2. Server, through HTTP against a real jupyter_server on 127.0.0.1: the listing of 10,000
   runs (first request after start, and a later full listing), a poll of an unchanged root,
   a downsampled 1,000,000-point metric (first request: the file is parsed; later ones: from
   memory), and a poll of a live run after 100 new rows (only new points come back).
   Target: each under 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import make_runs, report  # noqa: E402
from bench_display import calibrate, work  # noqa: E402

TOKEN = "bench"


class JsonPublisher:
    """Stands in for ipykernel's display publisher: serializes every message to JSON."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):  # noqa: ANN001
        self.messages += 1
        self.bytes += len(json.dumps({"data": data, "metadata": metadata or {}, "transient": transient or {}}))

    def clear_output(self, wait=False):  # noqa: ANN001
        pass


def chart_loop(steps: int, n_work: int, live: bool) -> tuple[float, int, int, float]:
    import nbtracker
    from nbtracker.display import inline

    run = nbtracker.init(project="bench-lab")
    view = None
    if live:
        view = inline.live_view(run)
        view.show(None)                 # the static bundle at init, then chart data as rows arrive
        assert view._json, "the browser path is off"
    pub = inline._shell.display_pub
    m0, b0 = pub.messages, pub.bytes
    t, cpu = time.perf_counter(), time.process_time()
    for i in range(steps):
        work(n_work)
        run.log({"train/loss": 1.0 / (i + 1), "train/acc": i / steps, "val/loss": 2.0 / (i + 1), "lr": 0.1})
    elapsed, cpu = time.perf_counter() - t, time.process_time() - cpu
    updates, sent = pub.messages - m0, pub.bytes - b0
    if view:
        view.mode = None
    run.finish()
    return cpu / steps, updates, sent, elapsed


def bench_kernel(steps: int, rounds: int) -> list[dict]:
    os.environ["NBTRACKER_RENDERER"] = "jupyterlab"
    os.environ["NBTRACKER_LIVE"] = "0"      # no chart on its own at init: the baseline has none
    from IPython.core.interactiveshell import InteractiveShell

    from nbtracker.display import inline

    shell = InteractiveShell.instance()
    shell.kernel = object()                 # the display layer's notebook mode
    shell.display_pub = JsonPublisher()
    inline.install(shell)
    n_work = calibrate()
    chart_loop(200, n_work, True)           # warm up imports
    ratios, rates, sizes, base_cpu, live_cpu = [], [], [], [], []
    for _ in range(rounds):
        b = chart_loop(steps, n_work, False)
        c = chart_loop(steps, n_work, True)
        base_cpu.append(b[0])
        live_cpu.append(c[0])
        ratios.append(c[0] / b[0])
        rates.append(c[1] / c[3])
        sizes.append(c[2] / max(1, c[1]))
    inline.uninstall(shell)
    print(f"  chart-data updates: {statistics.median(rates):.2f}/s, {statistics.median(sizes) / 1024:.1f} KiB each "
          f"(4 metrics); ratios per pair: {', '.join(f'{r:.3f}' for r in ratios)}")
    return [dict(name="1 kHz loop, browser chart on, CPU per step", unit="ms",
                 baseline=statistics.median(base_cpu) * 1e3, value=statistics.median(live_cpu) * 1e3,
                 ratio=statistics.median(ratios), target=1.02),
            dict(name="  chart-data updates per second (>= 1)", unit="/s", baseline=None,
                 value=statistics.median(rates), ratio=None, target_abs=float("inf"),
                 ok=statistics.median(rates) >= 1)]


def start_server(root: Path, runs: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (root / "work").mkdir(exist_ok=True)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / "cfg"), "JUPYTER_RUNTIME_DIR": str(root / "rt"),
           "NBTRACKER_DIR": str(runs)}
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_server", "--no-browser", "--ip=127.0.0.1",
                             f"--port={port}", f"--IdentityProvider.token={TOKEN}",
                             f"--ServerApp.root_dir={root / 'work'}", "--allow-root"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2).read()
            return proc, base
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("jupyter_server did not start")


def timed_get(base: str, path: str) -> tuple[float, dict]:
    req = urllib.request.Request(f"{base}/nbtracker/api/{path}", headers={"Authorization": f"token {TOKEN}"})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        body = json.loads(r.read())
    return time.perf_counter() - t, body


def bench_server(tmp: Path, count: int, points: int) -> list[dict]:
    import nbtracker

    runs = tmp / "runs"
    make_runs(runs, count)
    big = nbtracker.init(project="big", dir=runs, primary_metric="loss:min")
    for i in range(points):
        big.log({"loss": 1.0 / (i + 1), "acc": i / points})
    big.flush()
    t = time.perf_counter()
    proc, base = start_server(tmp, runs)
    print(f"  server up in {time.perf_counter() - t:.2f} s (listing read in the background)")
    out = []
    try:
        first, listing = timed_get(base, "runs?limit=20000")     # may wait for the start-up read
        assert listing["total"] == count + 1
        again = min(timed_get(base, "runs?limit=20000")[0] for _ in range(3))
        polls = []
        for _ in range(3):
            time.sleep(0.6)                       # past the shared refresh: each poll walks the root
            polls.append(timed_get(base, f"runs?since={listing['generation']}")[0])
        poll = min(polls)
        key = f"big/{big.id}"
        cold, metrics = timed_get(base, f"runs/{key}/metrics")
        assert metrics["rows"] == points and len(metrics["series"]["loss"]["x"]) <= 2100
        warm = min(timed_get(base, f"runs/{key}/metrics")[0] for _ in range(3))
        for i in range(100):
            big.log({"loss": 0.5, "acc": 0.5})
        big.flush()
        have = json.dumps({k: v["n"] for k, v in metrics["series"].items()})
        live, inc = timed_get(base, f"runs/{key}/metrics?have={urllib.request.quote(have)}")
        new_points = sum(len(v["x"]) for v in inc["series"].values())
        assert new_points == 200 and not any(v["replace"] for v in inc["series"].values())
        big.finish()
        for name, value in ((f"listing {count:,} runs, first request", first),
                            (f"listing {count:,} runs, later", again),
                            (f"poll of {count:,} unchanged runs", poll),
                            (f"{points:,}-point metric, first fetch (parse)", cold),
                            (f"{points:,}-point metric, later fetch", warm),
                            ("live run poll, +100 rows (200 points back)", live)):
            out.append(dict(name=name, unit="s", baseline=None, value=value, ratio=None, target_abs=0.5,
                            ok=value < 0.5))
    finally:
        proc.terminate()
        proc.wait(15)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs, not the targets")
    args = p.parse_args()
    q = args.quick
    os.environ["NBTRACKER_QUIET"] = "1"
    tmp = Path(tempfile.mkdtemp(prefix="nbt-bench-lab-"))
    os.environ["NBTRACKER_DIR"] = str(tmp / "kernel-runs")
    try:
        results = bench_kernel(600 if q else 6000, 1 if q else 8)
        results += bench_server(tmp, 100 if q else 10_000, 20_000 if q else 1_000_000)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    failed = report(results)
    return 0 if q else (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
