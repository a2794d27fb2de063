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
from .assets.api import artifacts, get_artifact, get_model, models, register_model, restore
from .core.query import RunList, RunView
from .core.records import ArtifactVersion, Checkpoint, Model, ModelVersion
from .core.stream import stream
from .media import Histogram, Image, Table
from .extension import (
    _jupyter_labextension_paths as _jupyter_labextension_paths,
    _jupyter_server_extension_points as _jupyter_server_extension_points,
    load_ipython_extension,
    unload_ipython_extension,
)
from .run import Run, current_run, finish, log
from .session import compare, init, load, replay, runs

__all__ = [
    "ArtifactVersion",
    "Checkpoint",
    "Histogram",
    "Image",
    "InvalidKeyError",
    "InvalidValueError",
    "Model",
    "ModelVersion",
    "NbtrackerError",
    "NbtrackerWarning",
    "Run",
    "RunActiveError",
    "RunList",
    "RunNotFoundError",
    "RunView",
    "StorageError",
    "Table",
    "UnreadableRunError",
    "__version__",
    "artifacts",
    "compare",
    "current_run",
    "finish",
    "get_artifact",
    "get_model",
    "init",
    "load",
    "load_ipython_extension",
    "log",
    "models",
    "register_model",
    "replay",
    "restore",
    "runs",
    "stream",
    "unload_ipython_extension",
]
