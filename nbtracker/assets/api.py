"""The root-level entry points of the façade: restore, artifacts, the model registry, gc."""

from __future__ import annotations

import os
from typing import Any

from ..core.paths import resolve_root
from ..core.records import (
    ArtifactVersion,
    Model,
    ModelVersion,
    list_artifacts,
    list_models,
)
from ..core.records import get_model as _get_model
from .files import restore
from .registry import register_model as _register


def register_model(name: str, checkpoint_or_artifact: Any, notes: str | None = None,
                   dir: str | os.PathLike[str] | None = None) -> ModelVersion:
    """Create the next version (1, 2, ...) of the named model, pointing at a checkpoint
    (``run.checkpoint(...)``, ``best_checkpoint()``, ``top_checkpoint()``) or an artifact
    version (``log_artifact(...)``, or ``"name:v1"`` looked up under ``dir``)."""
    return _register(name, checkpoint_or_artifact, notes=notes, dir=dir)


def get_model(name: str, dir: str | os.PathLike[str] | None = None) -> Model:
    """The named model: ``.versions``, ``.latest``, ``.version(n)``; each has ``.checkpoint``,
    ``.files`` and ``.checkout(dest)``."""
    return _get_model(resolve_root(dir), name)


def models(dir: str | os.PathLike[str] | None = None) -> list[Model]:
    """Every registered model under the root."""
    return list_models(resolve_root(dir))


def artifacts(type: str | None = None, dir: str | os.PathLike[str] | None = None) -> list[ArtifactVersion]:
    """Every artifact version under the root (only ``type`` when given), by name then version."""
    return list_artifacts(resolve_root(dir), type)


def get_artifact(ref: str, dir: str | os.PathLike[str] | None = None) -> ArtifactVersion:
    """An artifact version by ``"name:v3"``, ``"name:latest"`` or ``"name:<alias>"``."""
    from ..core.records import get_artifact as _get

    return _get(resolve_root(dir), ref)


__all__ = ["artifacts", "get_artifact", "get_model", "models", "register_model", "restore"]
