"""Replay overhead: ``nbtracker.replay`` against plain nbclient execution of the same notebook.

Usage: python benchmarks/bench_replay.py [--quick]

A seeded numpy training notebook (a few seconds of work, 2,000 logged steps) is run once to make
the original run. Then, alternately, 3 times each: (a) nbclient executes the run's
``code/clean.ipynb`` in a fresh kernel (the baseline: what re-running the code costs anyway);
(b) ``nbtracker.replay(run)``: the same execution plus finding the new run and comparing every
metric step by step. Target: median (b) / median (a) <= 1.15.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import report  # noqa: E402

CELLS = [
    "%load_ext nbtracker\nimport nbtracker, numpy as np",
    "run = nbtracker.init(project='bench-replay', primary_metric='loss:min')",
    "rng = np.random.default_rng(0)\nX = rng.normal(size=(2000, 50))\ny = X @ rng.normal(size=50)\nw = np.zeros(50)",
    "for step in range(STEPS):\n    i = rng.integers(0, 2000, 64)\n    g = X[i].T @ (X[i] @ w - y[i]) / 64\n"
    "    w -= 0.01 * g\n"
    "    run.log({'loss': float(((X[i] @ w - y[i]) ** 2).mean()), 'gnorm': float(np.linalg.norm(g))})",
    "run.finish()",
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    steps, repeat = (200, 1) if args.quick else (2000, 3)
    import nbformat
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    import nbtracker

    tmp = Path(tempfile.mkdtemp(prefix="nbt-bench-replay-"))
    root = tmp / "runs"
    os.environ.update(NBTRACKER_DIR=str(root), NBTRACKER_QUIET="1", NBTRACKER_LIVE="0")
    nb = new_notebook(cells=[new_code_cell(c.replace("STEPS", str(steps))) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    env = {**os.environ}
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp)}}).execute(env=env)
    (run,) = nbtracker.runs(project="bench-replay")
    plain, replays = [], []
    for _ in range(repeat):
        clean = nbformat.read(str(run.dir / "code" / "clean.ipynb"), as_version=4)
        t = time.perf_counter()
        NotebookClient(clean, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp)}}).execute(env=env)
        plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        rep = nbtracker.replay(run)
        replays.append(time.perf_counter() - t)
        assert rep.status == "reproduced", rep.text()
    base, value = statistics.median(plain), statistics.median(replays)
    print(f"  plain nbclient runs: {', '.join(f'{x:.2f}' for x in plain)} s; replays: "
          f"{', '.join(f'{x:.2f}' for x in replays)} s ({steps:,} steps, {len(rep.keys)} metrics compared)")
    failed = report([dict(name=f"replay vs plain nbclient, {steps:,} steps", unit="s", baseline=base, value=value,
                          ratio=value / base, target=1.15)])
    return 0 if args.quick else (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
