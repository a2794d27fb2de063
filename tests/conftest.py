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
    yield root
    leaked = [r for r in list(run_module._open.values())]
    for r in leaked:
        try:
            r.finish()
        except Exception:  # noqa: BLE001 - already failing below
            pass
    assert not leaked, f"test left runs open: {[r.id for r in leaked]}"
    assert nbtracker.current_run() is None
