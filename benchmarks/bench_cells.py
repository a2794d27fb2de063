"""Per-cell overhead of nbtracker's hooks with a run active, in a real in-process IPython shell.

Usage: python benchmarks/bench_cells.py [--quick]
Baseline: the same trivial cells in the same shell without the extension, measured in the same
run (interleaved rounds, best of each). Target: under 0.3 ms per cell.

The session imports three local modules from its working folder first, as a notebook importing
its project's code does: with a run active, each cell's end checks them for a reload (the
capture itself, and git and the environment, run in the background).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    cells, rounds = (200, 2) if args.quick else (2000, 5)
    os.environ["NBTRACKER_DIR"] = tempfile.mkdtemp(prefix="nbt-cells-")
    work = tempfile.mkdtemp(prefix="nbt-cells-work-")
    for i in range(3):
        with open(os.path.join(work, f"localmod{i}.py"), "w") as f:
            f.write(f"VALUE = {i}\n\ndef f(x):\n    return x + VALUE\n")
    os.chdir(work)
    sys.path.insert(0, work)
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    start_ipython()
    ip = get_ipython()

    def burst(log: bool) -> float:
        src = "run.log({'x': 1.0})" if log else "x = 1"
        t = time.perf_counter()
        for _ in range(cells):
            ip.run_cell(src, store_history=True)
        return (time.perf_counter() - t) / cells

    ip.run_cell("import nbtracker, localmod0, localmod1, localmod2", store_history=True)
    plain, tracked, tracked_log, plain_log = [], [], [], []
    for _ in range(rounds):
        ip.run_cell("run = nbtracker.init(project='bench')", store_history=True)
        plain.append(burst(False))
        plain_log.append(burst(True))
        ip.run_cell("run.finish()", store_history=True)
        ip.run_line_magic("load_ext", "nbtracker")
        ip.run_cell("run = nbtracker.init(project='bench')", store_history=True)
        tracked.append(burst(False))
        tracked_log.append(burst(True))
        ip.run_cell("run.finish()", store_history=True)
        ip.run_line_magic("unload_ext", "nbtracker")
    extra = (min(tracked) - min(plain)) * 1000
    extra_log = (min(tracked_log) - min(plain_log)) * 1000
    print(f"{'cell':36} {'no extension':>14} {'extension+run':>14} {'overhead':>10} target")
    print(f"{'x = 1':36} {min(plain)*1e3:11.3f} ms {min(tracked)*1e3:11.3f} ms {extra:7.3f} ms < 0.3 ms "
          f"{'yes' if extra < 0.3 else 'NO'}")
    print(f"{'run.log(...) (row flushed at cell end)':36} {min(plain_log)*1e3:11.3f} ms "
          f"{min(tracked_log)*1e3:11.3f} ms {extra_log:7.3f} ms (informative)")
    return 0 if (args.quick or extra < 0.3) else 1


if __name__ == "__main__":
    sys.exit(main())
