"""``%load_ext nbtracker``: registers the magics and cell hooks (imported lazily); and where
Jupyter finds the JupyterLab extension and the server extension (``nbtracker.server``)."""

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


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """For ``jupyter labextension develop``: the built extension inside the package (a wheel
    installs it as shared data, so a plain install does not need this)."""
    return [{"src": "labextension", "dest": "nbtracker"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """``jupyter server extension enable nbtracker`` resolves to the server module."""
    return [{"module": "nbtracker.server"}]
