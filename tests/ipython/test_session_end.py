"""How a terminal IPython session or a script that ends with a run still open leaves it (real processes).

A Jupyter kernel gives ``crashed`` instead: tests/kernel/test_jupyter_kernel.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

import nbtracker


@pytest.mark.parametrize("load_ext", [False, True])
def test_terminal_ipython_exit_with_an_open_run_marks_it_finished(run_root, load_ext):
    """Leaving terminal IPython (or ``ipython script.py`` ending) is the program's own end."""
    code = ("%load_ext nbtracker\n" if load_ext else "") + (
        "import nbtracker\nrun = nbtracker.init(project='end')\nrun.log({'a': 1})\n")
    done = subprocess.run([sys.executable, "-m", "IPython", "--quick", "--no-banner", "--colors=nocolor"],
                          input=code, text=True, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (run,) = nbtracker.runs(project="end")
    assert run.status == "finished" and run.history()[0]["a"] == 1


def test_plain_script_exit_with_an_open_run_marks_it_finished(run_root):
    code = "import nbtracker\nrun = nbtracker.init(project='end')\nrun.log({'a': 1})\n"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    (run,) = nbtracker.runs(project="end")
    assert run.status == "finished"


def test_terminal_ipython_gets_the_text_view(run_root):
    import os

    code = ("import nbtracker\nrun = nbtracker.init(project='tv', primary_metric='acc')\n"
            "for i in range(30): run.log({'acc': i / 30, 'loss': 1 / (i + 1)})\n"
            "run.display()\nrun\nrun.finish()\n")
    done = subprocess.run([sys.executable, "-m", "IPython", "--quick", "--no-banner", "--colors=nocolor"],
                          input=code, text=True, capture_output=True, timeout=60,
                          env={**os.environ, "NBTRACKER_QUIET": "0"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("running, 30 rows") == 2          # run.display() and the value `run`
    assert "finished, 30 rows" in done.stdout and "best 0.9667 @ step 29 (max)" in done.stdout
    assert "▁" in done.stdout and "matplotlib" not in done.stderr
