"""The benchmark scripts run and print their tables (figures are checked on demand, not here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def quick(script: str, timeout: int) -> subprocess.CompletedProcess:
    """Run ``benchmarks/<script> --quick``; it must exit 0."""
    out = subprocess.run([sys.executable, str(BENCH / script), "--quick"], capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out


@pytest.mark.slow
def test_bench_core_quick_runs():
    out = quick("bench_core.py", 300)
    for name in ("log 4 scalars", "disk per row", "import nbtracker", "history read", "runs() listing",
                 "finish() at", "peak RSS growth"):
        assert name in out.stdout


@pytest.mark.slow
def test_bench_display_quick_runs():
    out = quick("bench_display.py", 300)
    assert "1 kHz loop, chart on, CPU time" in out.stdout and "static redraw at 100,000 points" in out.stdout
    assert "pace, 10 ms rows" in out.stdout and "live frame at 100,000 points" in out.stdout


@pytest.mark.slow
def test_bench_assets_quick_runs():
    out = quick("bench_assets.py", 300)
    for name in ("checkpoint a 8 MiB file", "unchanged re-checkpoint", "log_image 256x256 RGB",
                 "image/100 steps", "console captured"):
        assert name in out.stdout


@pytest.mark.slow
def test_bench_lab_quick_runs():
    out = quick("bench_lab.py", 600)
    for name in ("1 kHz loop, browser chart on", "chart-data updates per second", "listing 100 runs",
                 "poll of 100 unchanged runs", "metric, first reply", "live run poll", "saved notebook"):
        assert name in out.stdout, name


@pytest.mark.slow
def test_bench_replay_quick_runs():
    out = quick("bench_replay.py", 600)
    assert "replay vs plain nbclient" in out.stdout


@pytest.mark.slow
@pytest.mark.services
def test_bench_mirror_quick_runs():
    out = quick("bench_mirror.py", 600)
    for name in ("run.log, mirror on/off", "sync 20,000 rows: rows per second", "second sync: uploads",
                 "runs() over 20 mirrored runs, first look"):
        assert name in out.stdout
