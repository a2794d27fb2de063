"""Core performance, as ratios against raw baselines measured in the same run (see README.md here).

Usage: python benchmarks/bench_core.py [--quick] [--json FILE]
Exits 1 if a target is missed (not with --quick, which only proves the script runs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbtracker
from nbtracker.core.paths import RUN_FILE

ROW = {"loss": 0.25, "acc": 0.875, "lr": 0.001, "grad_norm": 1.5}


def best_of(fn, repeat):
    return min(fn() for _ in range(repeat))


def raw_log(path: Path, n: int) -> float:
    t = time.perf_counter()
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"_step": i, "_time": time.time(), "loss": ROW["loss"] * i, "acc": ROW["acc"],
                                "lr": ROW["lr"], "grad_norm": ROW["grad_norm"]}) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return time.perf_counter() - t


def nbt_log(root: Path, n: int) -> tuple[float, Path]:
    """init -> log -> finish as a script does it, default output on: the text view is printed
    at finish (to stderr, silenced here so the terminal does not time the printing)."""
    t = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        saved, sys.stderr = sys.stderr, devnull
        quiet = os.environ.pop("NBTRACKER_QUIET", None)   # the default: the text view at finish
        try:
            run = nbtracker.init(project="bench", dir=root)
            log = run.log
            for i in range(n):
                log({"loss": ROW["loss"] * i, "acc": ROW["acc"], "lr": ROW["lr"], "grad_norm": ROW["grad_norm"]})
            run.finish()
        finally:
            sys.stderr = saved
            if quiet is not None:
                os.environ["NBTRACKER_QUIET"] = quiet
    return time.perf_counter() - t, run.dir


_FINISH = """
import os, resource, sys, time
import nbtracker
n = int(sys.argv[1])
run = nbtracker.init(project="finish", dir=sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for i in range(n):
    run.log({"loss": 0.25 * i, "acc": 0.875, "lr": 0.001, "grad_norm": 1.5})
run.flush()
os.sync()            # finish() fsyncs; what was written before is not finish's own cost
t = time.perf_counter()
run.finish()
took = time.perf_counter() - t
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(took, grown * 1024)
"""


def bench_finish(tmp: Path, small: int, big: int) -> list[dict]:
    """finish() with the text view on, at ``small`` and ``big`` rows, each in a fresh process;
    and how much the peak RSS grew from init to the end of finish at ``big`` rows."""
    out = {}
    for n in (small, big):
        env = {**os.environ, "NBTRACKER_QUIET": "0"}
        done = subprocess.run([sys.executable, "-c", _FINISH, str(n), str(tmp / f"finish-{n}")], env=env,
                              capture_output=True, text=True, check=True)
        took, grown = map(float, done.stdout.split())
        assert f"finished, {n} rows" in done.stderr, done.stderr[-500:]
        out[n] = (took, grown)
    return [
        dict(name=f"finish() at {big:,} vs {small:,} rows", unit="ms", baseline=out[small][0] * 1000,
             value=out[big][0] * 1000, ratio=out[big][0] / out[small][0], target_abs=50.0,
             ok=out[big][0] < 0.05),
        dict(name=f"peak RSS growth, {big:,} rows + finish", unit="MB", baseline=None,
             value=out[big][1] / 1e6, ratio=None, target_abs=100.0, ok=out[big][1] < 100e6),
    ]


def bench_log(tmp: Path, n: int, repeat: int) -> list[dict]:
    raw_path = tmp / "raw.jsonl"
    raws, nbts, run_dir = [], [], None
    for _ in range(repeat):                       # interleaved so both see the same machine load
        raws.append(raw_log(raw_path, n))
        t, run_dir = nbt_log(tmp / "log-root", n)
        nbts.append(t)
    raw_t, nbt_t = min(raws), min(nbts)
    raw_b = raw_path.stat().st_size / n
    nbt_b = (run_dir / "metrics.jsonl").stat().st_size / n
    return [
        dict(name="log 4 scalars, init..finish", unit="us/row", baseline=raw_t / n * 1e6, value=nbt_t / n * 1e6,
             ratio=nbt_t / raw_t, target=1.5),
        dict(name="disk per row", unit="B/row", baseline=raw_b, value=nbt_b, ratio=nbt_b / raw_b, target=1.2),
    ]


def bench_import(repeat: int) -> list[dict]:
    # With bytecode caching on, as an installed package has it (some sandboxes set
    # PYTHONDONTWRITEBYTECODE, which makes every import compile its sources).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-c", "import nbtracker"], check=True, env=env)   # warm the cache

    def run(code):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        return time.perf_counter() - t
    bare, imp = [], []
    for _ in range(repeat):
        bare.append(run("pass"))
        imp.append(run("import nbtracker"))
    extra_ms = (statistics.median(imp) - statistics.median(bare)) * 1000
    return [dict(name="import nbtracker (above python -c pass)", unit="ms", baseline=statistics.median(bare) * 1000,
                 value=statistics.median(imp) * 1000, ratio=None, extra=extra_ms, target_abs=60.0,
                 ok=extra_ms <= 60.0)]


def bench_history(tmp: Path, n: int, repeat: int, big: int) -> list[dict]:
    run = nbtracker.init(project="hist", dir=tmp / "hist-root")
    for i in range(n):
        run.log({"loss": ROW["loss"] * i, "acc": ROW["acc"], "lr": ROW["lr"], "grad_norm": ROW["grad_norm"]})
    run.finish()
    path = run.dir / "metrics.jsonl"

    def raw():
        t = time.perf_counter()
        with open(path) as f:
            rows = [json.loads(line) for line in f]
        assert len(rows) == n
        return time.perf_counter() - t

    def nbt():
        t = time.perf_counter()
        rows = nbtracker.load(str(run.dir)).history()
        assert len(rows) == n
        return time.perf_counter() - t

    raw_t, nbt_t = best_of(raw, repeat), best_of(nbt, repeat)
    out = [dict(name=f"history read ({n:,} rows)", unit="ms", baseline=raw_t * 1000, value=nbt_t * 1000,
                ratio=nbt_t / raw_t, target=1.3)]
    # the absolute figure: `big` rows, made by repeating the file
    big_dir = tmp / "hist-big"
    shutil.copytree(run.dir, big_dir)
    data = path.read_bytes()
    with open(big_dir / "metrics.jsonl", "wb") as f:
        for _ in range(big // n):
            f.write(data)
    t = time.perf_counter()
    rows = nbtracker.load(str(big_dir)).history()
    big_t = time.perf_counter() - t
    out.append(dict(name=f"history read ({len(rows):,} rows)", unit="s", baseline=None, value=big_t, ratio=None,
                    target_abs=3.0 * big / 1_000_000, ok=big_t < 3.0 * big / 1_000_000))
    return out


def make_runs(root: Path, count: int) -> None:
    with nbtracker.init(project="list", dir=root, config={"lr": 0.1, "layers": [64, 32]},
                        primary_metric="acc:max") as run:
        for i in range(50):
            run.log({"loss": 1 / (i + 1), "acc": i / 50})
    for _ in range(count - 1):
        dst = root / "list" / nbtracker.core.paths.new_run_id()
        shutil.copytree(run.dir, dst)
        doc = json.loads((dst / RUN_FILE).read_text())
        doc["id"] = dst.name
        (dst / RUN_FILE).write_text(json.dumps(doc, indent=1))


def bench_listing(tmp: Path, small: int, large: int, repeat: int) -> list[dict]:
    out = []
    for count in (small, large):
        root = tmp / f"list-{count}"
        make_runs(root, count)

        def raw():
            t = time.perf_counter()
            docs = []
            for project in os.scandir(root):
                for run_dir in os.scandir(project.path):
                    with open(os.path.join(run_dir.path, RUN_FILE), "rb") as f:
                        docs.append(json.loads(f.read()))
            assert len(docs) == count
            return time.perf_counter() - t

        def nbt():
            t = time.perf_counter()
            listed = nbtracker.runs(dir=root)
            assert len(listed) == count and listed[0].summary["best/acc"] == 0.98
            return time.perf_counter() - t

        raw_t, nbt_t = best_of(raw, repeat), best_of(nbt, repeat)
        if count == small:
            out.append(dict(name=f"runs() listing ({count} runs)", unit="ms", baseline=raw_t * 1000,
                            value=nbt_t * 1000, ratio=nbt_t / raw_t, target=1.5))
        else:
            out.append(dict(name=f"runs() listing ({count:,} runs)", unit="s", baseline=raw_t, value=nbt_t,
                            ratio=nbt_t / raw_t, target_abs=0.5 * count / 10_000, ok=nbt_t < 0.5 * count / 10_000))
    return out


def report(results: list[dict]) -> int:
    """Print the results table (shared by the benchmark scripts); returns how many missed."""
    failed = 0
    print(f"{'benchmark':44} {'baseline':>12} {'nbtracker':>12} {'ratio':>7} {'target':>10}  ok")
    for r in results:
        if "target" in r:
            r["ok"] = r["ratio"] <= r["target"]
            target = f"<= {r['target']}x"
        elif r["target_abs"] == float("inf"):
            target = "-"
        else:
            target = f"<= {r['target_abs']:.4g} {'ms extra' if 'extra' in r else r['unit']}"
            if r["name"].startswith("finish()"):
                target = f"< {r['target_abs']:.3g} ms"
        base = "-" if r["baseline"] is None else f"{r['baseline']:.3g} {r['unit']}"
        if r.get("ratio"):
            ratio = f"{r['ratio']:.2f}x" if r["ratio"] >= 0.1 else f"{r['ratio']:.2g}x"
        else:
            ratio = f"+{r['extra']:.0f}ms" if "extra" in r else "-"
        print(f"{r['name']:44} {base:>12} {r['value']:>9.3g} {r['unit']:<3} {ratio:>7} {target:>10}  "
              f"{'yes' if r['ok'] else 'NO'}")
        failed += not r["ok"]
    return failed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs, not the targets")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    q = args.quick
    os.environ["NBTRACKER_QUIET"] = "1"   # no text view while making fixtures; the log and
    # finish benchmarks turn it on where they measure it
    tmp = Path(tempfile.mkdtemp(prefix="nbt-bench-"))
    try:
        results = []
        results += bench_log(tmp, 2_000 if q else 50_000, 2 if q else 7)
        results += bench_finish(tmp, 1_000, 20_000 if q else 2_000_000)
        results += bench_import(2 if q else 15)
        results += bench_history(tmp, 2_000 if q else 20_000, 2 if q else 5, 10_000 if q else 1_000_000)
        results += bench_listing(tmp, 30 if q else 300, 100 if q else 10_000, 2 if q else 5)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    failed = report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if q:
        return 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
