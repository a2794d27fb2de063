"""Composes a Run with code capture and inline display for the current environment.

This is what the façade exports: in a plain script it is exactly the run layer; under IPython
it also installs the display layer (lazily, so ``import nbtracker`` stays headless).
"""

from __future__ import annotations

import sys
from typing import Any

from . import lifecycle as _lifecycle
from . import run as _run
from .core import query as _query

_display_installed = False
_display_missing = False


def _shell() -> Any:
    """The running IPython shell, or None (never imports IPython itself)."""
    if "IPython" not in sys.modules:
        return None
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return None
    return get_ipython()


def ensure_display(shell: Any = None) -> None:
    """Install the display layer once, when running under IPython."""
    global _display_installed, _display_missing
    if _display_installed or _display_missing:
        return
    shell = shell if shell is not None else _shell()
    if shell is None:
        return
    try:
        from . import display
    except ImportError:  # no display layer in this version: do not look again
        _display_missing = True
        return
    display.install(shell)
    _display_installed = True


def remove_display(shell: Any = None) -> None:
    global _display_installed
    if _display_installed:
        from . import display

        display.uninstall(shell)
        _display_installed = False


def init(*args: Any, **kwargs: Any) -> _run.Run:
    ensure_display()
    run = _lifecycle.init(*args, **kwargs)
    mark_kernel_run(run)
    return run


def in_kernel(shell: Any = None) -> bool:
    """True inside a Jupyter kernel (not a terminal IPython, not a plain script)."""
    shell = shell if shell is not None else _shell()
    return shell is not None and getattr(shell, "kernel", None) is not None


def mark_kernel_run(run: _run.Run, shell: Any = None) -> None:
    """In a kernel, a run still open when the process exits ends as ``crashed``.

    A kernel's end (shutdown, restart, death) is never the end of the notebook's code, so the
    numbers may stop mid-training, and the status must not depend on how the kernel went away
    (a SIGKILL already reads as crashed). A script or terminal IPython session reaching its
    end keeps ``finished``: the end of the program is the end of its code.
    """
    if in_kernel(shell):
        run._exit_status = "crashed"


def runs(*args: Any, **kwargs: Any) -> _query.RunList:
    ensure_display()
    return _query.runs(*args, **kwargs)


def load(*args: Any, **kwargs: Any) -> _query.RunView:
    ensure_display()
    return _query.load(*args, **kwargs)


init.__doc__ = _lifecycle.init.__doc__
runs.__doc__ = _query.runs.__doc__
load.__doc__ = _query.load.__doc__

