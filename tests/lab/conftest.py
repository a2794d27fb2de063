"""JupyterLab on 127.0.0.1 driven by headless Chromium (Playwright), for what only a browser shows.

Recipe: ../shared/docs/jupyter-testing.md section 2. The server runs in a temporary root with its
own settings, workspaces, config and runtime dirs; its kernels write runs under ``lab_root/runs``.
Screenshots go to ``test-artifacts/browser/`` (or ``$NBTRACKER_ARTIFACTS``) and are kept.
Missing Chromium, Playwright or JupyterLab is a failure, not a skip: ``.ci/run`` installs them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOKEN = "nbtracker-test-token"
CHROMIUM = os.environ.get("NBTRACKER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def artifacts() -> Path:
    out = Path(os.environ.get("NBTRACKER_ARTIFACTS") or REPO / "test-artifacts") / "browser"
    out.mkdir(parents=True, exist_ok=True)
    return out


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/lab/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


class LabServer:
    """A JupyterLab server in a temporary root; its kernels write runs under ``runs``.

    ``labextension`` / ``server_extension`` False disable nbtracker's JupyterLab extension /
    jupyter_server extension through the server's own config dir (as ``jupyter labextension
    disable`` and ``jupyter server extension disable`` would)."""

    def __init__(self, root: Path, *, labextension: bool = True, server_extension: bool = True) -> None:
        if not Path(CHROMIUM).exists():
            pytest.fail(f"no Chromium at {CHROMIUM}: install it (bash .ci/run does: apt-get install chromium)")
        self.root = root
        self.work, self.runs = root / "work", root / "runs"
        self.work.mkdir()
        settings = root / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        cfg = root / "cfg"
        (cfg / "labconfig").mkdir(parents=True)
        if not labextension:
            (cfg / "labconfig" / "page_config.json").write_text(
                json.dumps({"disabledExtensions": {"nbtracker": True}}))
        if not server_extension:
            (cfg / "jupyter_server_config.json").write_text(
                json.dumps({"ServerApp": {"jpserver_extensions": {"nbtracker.server": False}}}))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(root / "settings"),
               "JUPYTERLAB_WORKSPACES_DIR": str(root / "ws"), "JUPYTER_CONFIG_DIR": str(cfg),
               "JUPYTER_RUNTIME_DIR": str(root / "rt"), "NBTRACKER_DIR": str(self.runs),
               "NBTRACKER_QUIET": "1"}
        env.pop("NBTRACKER_RENDERER", None)
        self.log_path = root / "server.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
             f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={self.work}",
             "--LabApp.expose_app_in_browser=True", "--JupyterNotebookApp.expose_app_in_browser=True",
             "--allow-root"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"JupyterLab exited ({self.proc.returncode}):\n{self.log_path.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{self.base}/api/status?token={TOKEN}", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.proc.terminate()
                    pytest.fail(f"JupyterLab did not start in 90 s:\n{self.log_path.read_text()[-3000:]}")
                time.sleep(0.2)

    def stop(self, name: str) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.copy(self.log_path, artifacts() / f"{name}.log")


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory):
    """JupyterLab with nbtracker's extensions, as ``pip install nbtracker`` leaves it."""
    server = LabServer(tmp_path_factory.mktemp("lab-ext"))
    yield server
    server.stop("server-with-extension")


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """(base url, notebook dir, run root) of a JupyterLab **without** nbtracker's extensions:
    what VS Code, Colab or a Lab where they are disabled show (PNG, HTML, ipywidgets)."""
    server = LabServer(tmp_path_factory.mktemp("lab"), labextension=False, server_extension=False)
    yield server.base, server.work, server.runs
    server.stop("server")


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(60_000)
    yield page
    try:
        page.screenshot(path=str(artifacts() / f"{request.node.name}-final.png"), full_page=True)
    finally:
        page.close()


def open_and_run_all(page, base: str, name: str) -> None:
    """Open ``name`` in a fresh workspace, wait for a truly idle kernel, run all cells.

    The run-all command's promise is not returned to Python: ``page.evaluate`` has no timeout
    and that promise can hang (jupyter-testing.md, pitfall 1)."""
    page.goto(f"{base}/lab/workspaces/t{uuid.uuid4().hex[:8]}/tree/{name}?token={TOKEN}")
    page.wait_for_function(
        """(name) => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
           return !!(w && w.context && w.context.path === name && w.context.isReady
             && w.sessionContext.session && w.sessionContext.session.kernel
             && w.sessionContext.session.kernel.status === 'idle'); }""", arg=name, timeout=90_000)
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def wait_all_ran(page, timeout: int = 90_000) -> None:
    """Every code cell has run and the kernel is idle."""
    page.wait_for_function(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " return w.content.widgets.every(c => c.model.type !== 'code' || c.model.executionCount !== null)"
        " && w.sessionContext.session.kernel.status === 'idle'; }", timeout=timeout)


def save_and_shut_down(page) -> None:
    """Save the notebook through the command, then shut its kernel down and wait until it is gone."""
    time.sleep(1.0)
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=30_000)
    page.evaluate("() => window.jupyterapp.commands.execute('kernelmenu:shutdown')")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.sessionContext.session"
                           " || !window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                           timeout=30_000)
