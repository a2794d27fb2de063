"""The JupyterLab extension as built and shipped: one version number, its TypeScript unit
tests, and a plain install in a fresh venv that lists both extensions enabled."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import nbtracker

REPO = Path(__file__).resolve().parents[1]
LABEXT = REPO / "labextension"


def _jlpm() -> str:
    found = shutil.which("jlpm", path=str(Path(sys.executable).parent)) or shutil.which("jlpm")
    if not found:
        pytest.fail("jlpm not found: it comes with jupyterlab (jupyter_builder); bash .ci/run installs it")
    return found


def test_one_version_number_for_python_npm_and_the_installed_extension():
    package = json.loads((LABEXT / "package.json").read_text())
    assert package["version"] == nbtracker.__version__
    built = REPO / "nbtracker" / "labextension" / "package.json"
    assert json.loads(built.read_text())["version"] == nbtracker.__version__
    installed = Path(sysconfig.get_path("data")) / "share" / "jupyter" / "labextensions" / "nbtracker" / "package.json"
    assert json.loads(installed.read_text())["version"] == nbtracker.__version__


def test_typescript_unit_tests_pass():
    """format.ts and model.ts (downsampling, smoothing, merging increments, filters, polling
    with back-off) under node's own test runner."""
    if not (LABEXT / "node_modules" / "typescript").is_dir():
        subprocess.run([_jlpm(), "install", "--immutable"], cwd=LABEXT, check=True, timeout=600)
    proc = subprocess.run([_jlpm(), "test"], cwd=LABEXT, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    passed = int(out.split("# pass ")[1].split()[0])
    assert passed >= 13 and "# fail 0" in out, out[-2000:]


@pytest.mark.slow
def test_a_plain_install_in_a_fresh_venv_enables_both_extensions(tmp_path):
    """pip install of the wheel (plus JupyterLab) and nothing else: both extensions listed as enabled."""
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)],
                   check=True, timeout=900)
    (wheel,) = dist.glob("nbtracker-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel), "jupyterlab"], check=True, timeout=900)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "NBTRACKER"))}
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "cfg")
    labext = subprocess.run([str(venv / "bin" / "jupyter"), "labextension", "list"], capture_output=True,
                            text=True, env=env, timeout=300)
    server = subprocess.run([str(venv / "bin" / "jupyter"), "server", "extension", "list"], capture_output=True,
                            text=True, env=env, timeout=300)
    lab_out = _plain(labext.stdout + labext.stderr)
    server_out = _plain(server.stdout + server.stderr)
    version = re.escape(nbtracker.__version__)
    assert re.search(rf"nbtracker v{version} enabled OK \(python, nbtracker\)", lab_out), lab_out
    assert re.search(r"nbtracker\.server enabled", server_out), server_out
    assert re.search(r"nbtracker\.server\s+OK", server_out), server_out
    # the installed package imports without Jupyter being imported
    probe = subprocess.run([str(py), "-c", "import sys, nbtracker; print(sorted(m for m in ('IPython', 'tornado', "
                            "'jupyter_server', 'matplotlib') if m in sys.modules))"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert probe.stdout.strip() == "[]", probe.stdout + probe.stderr


def _plain(text: str) -> str:
    """Without terminal colour codes."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)
