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
)
from .core.query import RunList, RunView, load, runs
from .run import Run, current_run, finish, init, log

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
    "__version__",
    "current_run",
    "finish",
    "init",
    "load",
    "log",
    "runs",
]
