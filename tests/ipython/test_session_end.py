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
