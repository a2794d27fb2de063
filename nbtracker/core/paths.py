"""Where runs live: the root, project names, run ids, and the files inside a run directory."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InvalidKeyError

ENV_DIR = "NBTRACKER_DIR"
#: Default root, relative to the current directory. The hyphen keeps it from shadowing the package.
DEFAULT_DIR = "nbtracker-runs"
DEFAULT_PROJECT = "default"

# Files of the run directory contract (docs/run-directory.md).
RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
HEARTBEAT_FILE = "heartbeat"
LOCK_FILE = ".lock"

_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_BAD_NAME_CHARS = frozenset('/\\:*?"<>|') | frozenset(chr(c) for c in range(32)) | {"\x7f"}


def resolve_root(dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the run root: ``dir``, else ``$NBTRACKER_DIR``, else ``./nbtracker-runs``.

    The environment is read at call time, so tests and notebooks may change it between runs.
    """
    if dir is None:
        dir = os.environ.get(ENV_DIR) or DEFAULT_DIR
    return Path(dir).expanduser().absolute()


def check_project(project: str | None) -> str:
    """Return a project name that is safe as one directory name, or raise ``InvalidKeyError``."""
    if project is None:
        return DEFAULT_PROJECT
    if not isinstance(project, str):
        raise InvalidKeyError(f"project must be a string, got {type(project).__name__}")
    bad = sorted({c for c in project if c in _BAD_NAME_CHARS})
    if not project.strip() or project.startswith(".") or bad or len(project) > 100 or project != project.strip():
        raise InvalidKeyError(
            f"project name {project!r} is not usable as a folder name: use 1-100 characters, "
            "no leading dot or surrounding spaces, none of / \\ : * ? \" < > | or control characters"
        )
    return project


def check_run_id(run_id: object) -> str:
    """Return ``run_id`` if it can name a run directory, else raise ``InvalidKeyError``."""
    if not isinstance(run_id, str) or not run_id or len(run_id) > 64 or not all(
        c.isascii() and (c.isalnum() or c in "-_") for c in run_id
    ):
        raise InvalidKeyError(f"run id {run_id!r} is not valid: ids are 1-64 letters, digits, '-' or '_'")
    return run_id


def new_run_id() -> str:
    """Return a fresh 8-character id (36^8 ~ 2.8e12 values; creation is exclusive, so a clash retries)."""
    # os.urandom, not secrets: the secrets module costs ~4 ms of import time (hashlib, hmac).
    # The modulo bias (256 % 36) is irrelevant for uniqueness, which mkdir enforces anyway.
    return "".join(_ID_ALPHABET[b % 36] for b in os.urandom(8))
