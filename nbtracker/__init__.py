"""nbtracker: a Jupyter-native, local-first experiment tracker."""

from __future__ import annotations

from ._version import __version__
from .core.errors import (
    InvalidKeyError,
    InvalidValueError,
    NbtrackerError,
    NbtrackerWarning,
    RunActiveError,
    RunNotFoundError,
    StorageError,
    UnreadableRunError,
)
from .core.query import RunList, RunView
from .extension import load_ipython_extension, unload_ipython_extension
from .run import Run, current_run, finish, log
from .session import compare, init, load, runs

__all__ = [
    "InvalidKeyError",
    "InvalidValueError",
    "NbtrackerError",
    "NbtrackerWarning",
    "Run",
    "RunActiveError",
    "RunList",
    "RunNotFoundError",
    "RunView",
    "StorageError",
    "UnreadableRunError",
    "__version__",
    "compare",
    "current_run",
    "finish",
    "init",
    "load",
    "load_ipython_extension",
    "log",
    "runs",
    "unload_ipython_extension",
]
