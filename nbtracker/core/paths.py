"""Where runs live: the root, project names, run ids, and the files inside a run directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from .errors import InvalidKeyError, NbtrackerError
from .values import valid_text

ENV_DIR = "NBTRACKER_DIR"
#: Default root, relative to the current directory. The hyphen keeps it from shadowing the package.
DEFAULT_DIR = "nbtracker-runs"
DEFAULT_PROJECT = "default"

# Files of the run directory contract (docs/run-directory.md).
RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
HEARTBEAT_FILE = "heartbeat"
LOCK_FILE = ".lock"

#: Folder names are limited in bytes on most filesystems (255); keep a margin for the OS.
MAX_NAME_BYTES = 200

_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_BAD_NAME_CHARS = frozenset('/\\:*?"<>|') | frozenset(chr(c) for c in range(32)) | {"\x7f"}


def resolve_root(dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the run root (see :func:`find_root` for the rule)."""
    return find_root(dir)[0]


class MirrorHooks(Protocol):
    """How core reads a mirror: set as :data:`mirrors` by ``nbtracker.sync`` when it is
    imported (core knows mirrors only through this)."""

    def open_root(self, url: str) -> Path:
        """Bring the local copy of the mirror's run list up to date; return its folder."""

    def fill(self, run_dir: Path) -> None:
        """Bring one run folder of such a copy up to date with all its files."""

    def fetch_blob(self, root: Path, digest: str) -> bool:
        """Fetch one stored content into the copy's store; False if the mirror lacks it."""


mirrors: MirrorHooks | None = None
#: The file that marks a folder as a local copy of a mirror (docs/teams.md).
MIRROR_MARK = ".mirror.json"


def is_url(value: object) -> bool:
    """True for ``scheme://...`` strings (a mirror), never for a local path."""
    if not isinstance(value, str) or "://" not in value:
        return False
    scheme = value.split("://", 1)[0]
    return bool(scheme) and all(c.isalnum() or c in "+-." for c in scheme) and len(scheme) > 1


def reading_root(dir: str | os.PathLike[str] | None = None) -> Path:
    """The root to read runs from: :func:`resolve_root`, or, for a mirror URL (``dir=`` or
    ``$NBTRACKER_DIR``), a local read-only copy of what the mirror holds."""
    value = dir if dir is not None else os.environ.get(ENV_DIR)
    if is_url(value):
        if mirrors is None:
            raise NbtrackerError(f"reading runs from {value} needs nbtracker.sync (import nbtracker)")
        return mirrors.open_root(str(value))
    return resolve_root(dir)


def find_root(dir: str | os.PathLike[str] | None = None,
              cwd: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Return ``(root, why)``: the run root and which rule chose it.

    1. ``dir`` when given;
    2. else ``$NBTRACKER_DIR``;
    3. else ``[tool.nbtracker] dir`` of the nearest ``pyproject.toml`` in the working directory
       or a parent (relative to that file's folder);
    4. else the nearest existing ``nbtracker-runs/`` folder in the working directory or a parent;
    5. else ``./nbtracker-runs`` (created by the first run).

    So a notebook in ``project/notebooks/`` and a terminal in ``project/`` see the same runs.
    The environment and the working directory are read at call time.
    """
    if dir is not None:
        return _abs(_local(dir, "dir=")), "dir= argument"
    env = os.environ.get(ENV_DIR)
    if env:
        return _abs(_local(env, f"${ENV_DIR}")), f"${ENV_DIR}"
    here = Path(cwd if cwd is not None else os.getcwd()).absolute()
    folders = (here, *here.parents)
    for folder in folders:
        config = folder / "pyproject.toml"
        configured = _pyproject_dir(config) if config.is_file() else None
        if configured is not None:
            return _abs(folder / Path(configured).expanduser()), f"[tool.nbtracker] dir in {config}"
    for folder in folders:
        if (folder / DEFAULT_DIR).is_dir():
            return folder / DEFAULT_DIR, f"nearest existing {DEFAULT_DIR}/ folder above {here}"
    return here / DEFAULT_DIR, f"default: ./{DEFAULT_DIR} in the working directory {here}"


def _local(value: str | os.PathLike[str], what: str) -> str | os.PathLike[str]:
    if is_url(value):
        raise NbtrackerError(f"{what} {value} is a mirror, which is read-only: runs are written to "
                             "a local folder and shipped with mirror= or `nbtracker sync --to`")
    return value


def _abs(path: str | os.PathLike[str] | Path) -> Path:
    return Path(path).expanduser().absolute()


def _pyproject_dir(path: Path) -> str | None:
    """``[tool.nbtracker] dir`` of a pyproject.toml, or None (missing, unreadable, not a string)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if "nbtracker" not in text:   # the common case: no need to parse
        return None
    try:
        import tomllib
    except ImportError:  # Python 3.10: no tomllib; a minimal reader of the one key
        return _scan_toml(text)
    try:
        value = tomllib.loads(text).get("tool", {}).get("nbtracker", {}).get("dir")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def _scan_toml(text: str) -> str | None:
    import re

    section = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[] ")
        elif section == "tool.nbtracker":
            m = re.match(r'dir\s*=\s*["\']([^"\']+)["\']', line)
            if m:
                return m.group(1)
    return None


def check_project(project: str | None) -> str:
    """Return a project name that is safe as one directory name, or raise ``InvalidKeyError``."""
    if project is None:
        return DEFAULT_PROJECT
    if not isinstance(project, str):
        raise InvalidKeyError(f"project must be a string, got {type(project).__name__}")
    bad = sorted({c for c in project if c in _BAD_NAME_CHARS})
    if (not project.strip() or project.startswith(".") or bad or len(project) > 100
            or not valid_text(project) or len(project.encode("utf-8")) > MAX_NAME_BYTES
            or project != project.strip()):
        raise InvalidKeyError(
            f"project name {project!r} is not usable as a folder name: use 1-100 characters "
            f"(at most {MAX_NAME_BYTES} bytes in UTF-8), no leading dot or surrounding spaces, "
            "none of / \\ : * ? \" < > | or control characters, valid Unicode text"
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
