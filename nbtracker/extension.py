"""``%load_ext nbtracker``: registers the magics and cell hooks (imported lazily)."""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    """Called by ``%load_ext nbtracker``; loading twice is harmless."""
    from .magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Called by ``%unload_ext nbtracker``; removes exactly what loading added."""
    from .magics import unload

    unload(ipython)
