"""Helpers for the in-process IPython tests (the ``ip`` fixture lives in tests/conftest.py)."""

from __future__ import annotations


def cell(ip, source, cell_id=None):
    """Run one cell the way a frontend does (history stored, cell id passed)."""
    return ip.run_cell(source, store_history=True, cell_id=cell_id)
