"""Test hygiene shared by every tier: an isolated run root per test, and no run left open."""

from __future__ import annotations

import pytest

import nbtracker
from nbtracker import run as run_module


@pytest.fixture(autouse=True)
def run_root(tmp_path, monkeypatch):
    """Every test writes under its own temporary root (``NBTRACKER_DIR``)."""
    root = tmp_path / "runs"
    monkeypatch.setenv("NBTRACKER_DIR", str(root))
    monkeypatch.setenv("NBTRACKER_QUIET", "1")    # no text view at finish (tests of it unset this)
    monkeypatch.setenv("NBTRACKER_CACHE", str(tmp_path / "cache"))   # local copies of mirrors
    yield root
    leaked = [r for r in list(run_module._open.values())]
    for r in leaked:
        try:
            r.finish()
        except Exception:  # noqa: BLE001 - already failing below
            pass
    assert not leaked, f"test left runs open: {[r.id for r in leaked]}"
    assert nbtracker.current_run() is None


@pytest.fixture
def ip(tmp_path, monkeypatch):
    """The in-process IPython shell with ``%load_ext nbtracker``; checks unload removes the hooks.

    Its working directory is a fresh folder, as a notebook's kernel works in the notebook's
    folder (not in this repository, whose test modules pytest has imported: the local-module
    capture would rightly copy them)."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    from nbtracker import magics

    start_ipython()  # once per process; later calls return None
    shell = get_ipython()
    shell.history_manager.reset(new_session=True)   # each test is its own kernel session
    shell.execution_count = 1
    before = {name: list(shell.events.callbacks[name]) for name in ("pre_run_cell", "post_run_cell")}
    shell.run_line_magic("load_ext", "nbtracker")
    yield shell
    shell.run_line_magic("unload_ext", "nbtracker")
    after = {name: list(shell.events.callbacks[name]) for name in ("pre_run_cell", "post_run_cell")}
    assert after == before, "unload left IPython callbacks behind"
    assert id(shell) not in magics._sessions
