"""The JupyterLab extension's costs (see README.md here), as ratios in the same run where a
baseline exists, absolute bounds where the issue sets them.

Usage: python benchmarks/bench_lab.py [--quick]

1. Kernel cost of browser-drawn live charts on a 1 kHz loop (~1 ms of pure-Python work per
   step, 4 metrics logged per step), the display layer as in a kernel whose frontend has the
   extension, each update serialized to JSON as ipykernel would send it. Target: <= 1.02x.
   On these shared machines two identical 6 s rounds differ by up to 20% in CPU time, so the
   ratio checked is built from the two parts that make up the cost, each measured where it
   is stable: (a) the extra cost of one ``run.log`` with the chart attached (a tight loop of
   logs, best of interleaved rounds, updates held back), times 1,000 rows per second; (b) the
   CPU time of the chart-data updates themselves (measured around each update during the
   1 kHz loop), per second of loop. Ratio = 1 + (a + b) / 1 s (the loop's own CPU per second).
   The end-to-end ratio of whole rounds is printed too, for what it is worth. Also: updates
   per second, bytes each.
2. Server, through HTTP against a real jupyter_server on 127.0.0.1: the listing of 10,000
   runs (first request after start, and a later full listing), a poll of an unchanged root,
   a downsampled 1,000,000-point metric (the first reply: the latest rows while the file is
   parsed in the background; then the time until the whole history is in; later fetches come
   from memory), and a poll of a live run after 100 new rows (only new points come back).
   Target: each under 0.5 s (the whole-history time is reported, not held to it).
3. The size of a saved notebook that logs 10,000 steps of two metrics in a real kernel
   (nbclient) and shows the runs table and a comparison, and how much of it is chart data.
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


def chart_loop(steps: int, n_work: int, live: bool) -> tuple[float, int, int, float, float]:
    """(CPU per step, updates, bytes sent, wall seconds, CPU seconds spent in updates)."""
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
    spent = view.draw_cpu if view else 0.0
    if view:
        view.mode = None
    run.finish()
    return cpu / steps, updates, sent, elapsed, spent


def per_row(rows: int, live: bool) -> float:
    """CPU seconds per ``run.log`` in a tight loop, the chart attached but no update due."""
    import nbtracker
    from nbtracker.display import inline

    run = nbtracker.init(project="bench-lab-row")
    view = None
    if live:
        view = inline.live_view(run)
        view.show(None)
        view._next = float("inf")       # hold updates back: the per-row part alone
    cpu = time.process_time()
    for i in range(rows):
        run.log({"train/loss": 1.0 / (i + 1), "train/acc": i / rows, "val/loss": 2.0 / (i + 1), "lr": 0.1})
    cpu = time.process_time() - cpu
    if view:
        view.mode = None
    run.finish()
    return cpu / rows


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
    ratios, rates, sizes, base_cpu, shares = [], [], [], [], []
    for k in range(rounds):
        if k % 2 == 0:                       # alternate the order: no drift favours one side
            b = chart_loop(steps, n_work, False)
            c = chart_loop(steps, n_work, True)
        else:
            c = chart_loop(steps, n_work, True)
            b = chart_loop(steps, n_work, False)
        base_cpu.append(b[0])
        ratios.append(c[0] / b[0])
        rates.append(c[1] / c[3])
        sizes.append(c[2] / max(1, c[1]))
        shares.append(c[4] / c[3])           # update CPU per second of loop
    rows = 4000 if steps < 1000 else 20000
    plain = min(per_row(rows, False) for _ in range(5))
    attached = min(per_row(rows, True) for _ in range(5))
    inline.uninstall(shell)
    # Per second of a 1 kHz loop whose steps are CPU work (1 s of CPU per second), the chart
    # costs 1,000 times the per-row extra plus the updates' CPU per second (time-based: about
    # two a second, each bounded by the downsampled size, whatever the loop's pace).
    row_part = max(0.0, attached - plain) * 1000
    update_part = statistics.median(shares)
    ratio = 1 + row_part + update_part
    print(f"  per run.log: {plain * 1e6:.2f} us plain, {attached * 1e6:.2f} us with the chart attached; "
          f"updates: {statistics.median(rates):.2f}/s, {update_part * 1e3:.2f} ms CPU per second, "
          f"{statistics.median(sizes) / 1024:.1f} KiB each (4 metrics)")
    print(f"  end-to-end ratio of whole rounds (noisy): median {statistics.median(ratios):.3f}, "
          f"per pair {', '.join(f'{r:.3f}' for r in ratios)}")
    print(f"  the loop's step: {statistics.median(base_cpu) * 1e3:.3f} ms CPU (calibrated to about 1 ms)")
    return [dict(name="1 kHz loop, browser chart on, kernel CPU per s", unit="ms",
                 baseline=1000.0, value=1000.0 * ratio, ratio=ratio, target=1.02),
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
        t = time.perf_counter()
        cold, metrics = timed_get(base, f"runs/{key}/metrics")      # the latest rows if partial
        while "partial" in metrics:
            time.sleep(0.1)
            metrics = timed_get(base, f"runs/{key}/metrics")[1]
        whole = time.perf_counter() - t
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
                            (f"{points:,}-point metric, first reply", cold),
                            (f"{points:,}-point metric, whole history in", whole),
                            (f"{points:,}-point metric, later fetch", warm),
                            ("live run poll, +100 rows (200 points back)", live)):
            held = "whole history" not in name
            out.append(dict(name=name, unit="s", baseline=None, value=value, ratio=None,
                            target_abs=0.5 if held else float("inf"), ok=value < 0.5 or not held))
    finally:
        proc.terminate()
        proc.wait(15)
    return out


def bench_notebook(steps: int) -> list[dict]:
    import nbformat
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    cells = ["%load_ext nbtracker\nimport nbtracker, math",
             "run = nbtracker.init(project='size', primary_metric='val/acc')",
             f"for i in range({steps}):\n    run.log({{'train/loss': 1 / (i + 1), 'val/acc': math.sin(i / 300)}})",
             "run.finish()", "nbtracker.runs(project='size')",
             "nbtracker.compare(nbtracker.runs(project='size'), 'val/acc')"]
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "NBTRACKER_DIR": str(Path(tmp) / "runs")}
        env.pop("NBTRACKER_RENDERER", None)
        env.pop("NBTRACKER_LIVE", None)
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp}}).execute(env=env)
        path = Path(tmp) / "saved.ipynb"
        nbformat.write(nb, str(path))
        size = path.stat().st_size
    chart = sum(len(json.dumps(o["data"][m])) for c in nb.cells for o in c.get("outputs", [])
                for m in ("application/vnd.nbtracker.chart+json", "application/vnd.nbtracker.runs+json")
                if m in o.get("data", {}))
    png = sum(len(o["data"]["image/png"]) for c in nb.cells for o in c.get("outputs", [])
              if "image/png" in o.get("data", {}))
    print(f"  saved {steps:,}-step notebook: {size / 1024:.0f} KiB; chart and table data {chart / 1024:.0f} KiB, "
          f"PNGs {png / 1024:.0f} KiB (base64, each also inside its HTML)")
    return [dict(name=f"saved notebook, {steps:,} steps, table, comparison", unit="KiB", baseline=None,
                 value=size / 1024, ratio=None, target_abs=float("inf"), ok=True)]


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
        results += bench_notebook(1_000 if q else 10_000)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    failed = report(results)
    return 0 if q else (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
