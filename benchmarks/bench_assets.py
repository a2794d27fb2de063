"""Checkpoints, images and console capture, as ratios against raw baselines measured in the same run.

Usage: python benchmarks/bench_assets.py [--quick] [--size-mb N] [--json FILE]
Exits 1 if a target is missed (not with --quick, which only proves the script runs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

import nbtracker
from bench_core import report   # the same table as the core benchmarks


def best_of(fn, repeat):
    return min(fn() for _ in range(repeat))


def disk_bytes(root: Path) -> int:
    seen, total = set(), 0
    for p in root.rglob("*"):
        st = p.lstat()
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def bench_checkpoint(tmp: Path, size_mb: int, repeat: int) -> list[dict]:
    src = tmp / "weights.bin"
    with open(src, "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(size_mb):
            f.write(chunk[:-8] + os.urandom(8))
    time.sleep(2.2)   # older than the racy window, as weights saved earlier are (see core/blobs.py)
    shutil.copyfile(src, tmp / "warm")  # both sides read from the page cache

    def copy():
        dest = tmp / "copy.bin"
        t = time.perf_counter()
        shutil.copyfile(src, dest)
        took = time.perf_counter() - t
        dest.unlink()
        return took

    roots = []

    def first():
        root = tmp / f"root{len(roots)}"
        roots.append(root)
        run = nbtracker.init(project="bench", dir=root)
        t = time.perf_counter()
        run.checkpoint(src, metrics={"acc": 0.5})
        took = time.perf_counter() - t
        run.finish()
        if len(roots) > 1:
            shutil.rmtree(roots[-2], ignore_errors=True)
        return took

    base = best_of(copy, repeat)
    nbt = best_of(first, repeat)
    root = roots[-1]
    run = nbtracker.init(project="bench", dir=root)
    before = disk_bytes(root)

    def again():
        t = time.perf_counter()
        run.checkpoint(src, metrics={"acc": 0.6})
        return time.perf_counter() - t

    re_t = best_of(again, repeat)
    run.finish()
    extra = (disk_bytes(root) - before) / repeat
    name = f"checkpoint a {size_mb} MiB file"
    return [
        dict(name=name, unit="s", baseline=base, value=nbt, ratio=nbt / base, target=1.3),
        dict(name="unchanged re-checkpoint (vs copyfile)", unit="s", baseline=base, value=re_t,
             ratio=re_t / base, target=0.05),
        dict(name="disk per unchanged re-checkpoint", unit="KiB", baseline=None, value=extra / 1024,
             ratio=None, target_abs=1024.0, ok=extra < 2**20),
    ]


def bench_images(tmp: Path, steps: int, repeat: int) -> list[dict]:
    x = (np.random.default_rng(0).random((256, 256, 3)) * 255).astype(np.uint8)
    natural = (np.stack([np.outer(np.linspace(0, 1, 256), np.linspace(0, 1, 256))] * 3, -1) * 255).astype(np.uint8)

    def loop(images: bool) -> tuple[float, float]:
        run = nbtracker.init(project="bench", dir=tmp / "img")
        log = run.log
        t = time.perf_counter()
        for i in range(steps):
            log({"loss": 0.5, "acc": 0.25})
            if images and i % 100 == 0:
                run.log_image("sample", natural, step=i)
        took = time.perf_counter() - t
        t = time.perf_counter()
        run.finish()
        return took, time.perf_counter() - t

    scalars = best_of(lambda: loop(False)[0], repeat)
    runs = [loop(True) for _ in range(repeat)]
    with_images, finish_wait = min(runs)
    run = nbtracker.init(project="bench", dir=tmp / "img")
    n = 300
    t = time.perf_counter()
    for i in range(n):
        run.log_image("x", x, step=i)
    per_image = (time.perf_counter() - t) / n
    run.finish()
    return [
        dict(name="log_image 256x256 RGB (in the loop)", unit="us", baseline=None, value=per_image * 1e6,
             ratio=None, target_abs=1000.0, ok=per_image < 1e-3),
        dict(name=f"{steps:,} steps + image/100 steps vs scalars", unit="s", baseline=scalars,
             value=with_images, ratio=with_images / scalars, target=1.2),
        dict(name="  then finish() waits for the image writer", unit="s", baseline=None, value=finish_wait,
             ratio=None, target_abs=float("inf"), ok=True),
    ]


CONSOLE = textwrap.dedent("""
    import sys, time, nbtracker
    n, capture = int(sys.argv[1]), sys.argv[2] == "1"
    run = nbtracker.init(project="bench", capture_console=capture)
    t = time.perf_counter()
    for i in range(n):
        print("step", i, "loss", 0.5)
    run.finish()
    sys.stderr.write(repr(time.perf_counter() - t))
""")


def bench_console(tmp: Path, lines: int, repeat: int) -> list[dict]:
    def run(capture: bool) -> float:
        with open(tmp / "out.txt", "w") as out:
            p = subprocess.run([sys.executable, "-c", CONSOLE, str(lines), "1" if capture else "0"],
                               stdout=out, stderr=subprocess.PIPE, text=True, check=True,
                               env={**os.environ, "NBTRACKER_DIR": str(tmp / "console"),
                                    "NBTRACKER_QUIET": "1"})
        return float(p.stderr.strip().splitlines()[-1])

    base = best_of(lambda: run(False), repeat)
    nbt = best_of(lambda: run(True), repeat)
    return [dict(name=f"print {lines:,} lines, console captured", unit="s", baseline=base, value=nbt,
                 ratio=nbt / base, target=1.2)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs, not the targets")
    p.add_argument("--size-mb", type=int, default=1024, help="checkpoint file size (default 1024 MiB)")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    q = args.quick
    os.environ["NBTRACKER_QUIET"] = "1"
    tmp = Path(tempfile.mkdtemp(prefix="nbt-bench-assets-", dir=os.environ.get("NBT_BENCH_TMP")))
    try:
        results = []
        results += bench_checkpoint(tmp, 8 if q else args.size_mb, 2 if q else 3)
        results += bench_images(tmp, 2_000 if q else 100_000, 1 if q else 3)
        results += bench_console(tmp, 2_000 if q else 100_000, 1 if q else 5)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    failed = report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    return 0 if q else (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
