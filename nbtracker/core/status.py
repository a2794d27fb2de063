"""Liveness of a run's writer: an OS lock held while the run is open, plus a heartbeat file."""

from __future__ import annotations

import os
import time
from pathlib import Path

from .paths import HEARTBEAT_FILE, LOCK_FILE

try:
    import fcntl
except ImportError:  # Windows: the heartbeat alone decides
    fcntl = None  # type: ignore[assignment]

#: The live run touches its heartbeat file this often (seconds).
HEARTBEAT_EVERY = 5.0
#: A "running" run whose heartbeat is older than this is reported as crashed.
STALE_AFTER = 45.0

STATUSES = ("running", "finished", "failed", "interrupted", "crashed")


class WriterLock:
    """An exclusive ``flock`` on ``<run>/.lock``, held by the process writing the run.

    The OS drops it when that process dies, however it dies, which lets a reader on the same
    machine see a dead writer at once; the heartbeat covers other machines and filesystems
    without ``flock``.
    """

    def __init__(self, run_dir: Path) -> None:
        self._fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is None:
            return
        for attempt in range(10):  # a reader's probe holds a shared lock for microseconds
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError:
                if attempt == 9:
                    os.close(self._fd)
                    self._fd = -1
                    raise
                time.sleep(0.02)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing drops the flock
            self._fd = -1


def writer_gone(run_dir: Path) -> bool:
    """True if we can tell that no process holds the run's writer lock."""
    if fcntl is None:
        return False
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return False  # held: the writer is alive
    else:
        return True
    finally:
        os.close(fd)


def beat(run_dir: Path) -> None:
    """Refresh the heartbeat (its modification time is the beat)."""
    path = run_dir / HEARTBEAT_FILE
    try:
        os.utime(path)
    except FileNotFoundError:
        path.touch()


def heartbeat_age(run_dir: Path, now: float | None = None) -> float | None:
    try:
        mtime = os.stat(run_dir / HEARTBEAT_FILE).st_mtime
    except OSError:
        return None
    return (time.time() if now is None else now) - mtime


def effective_status(run_dir: Path, recorded: str | None, now: float | None = None) -> str:
    """The status readers show: a "running" run with a dead writer is "crashed"."""
    if recorded != "running":
        return recorded or "crashed"
    if writer_gone(run_dir):
        return "crashed"
    age = heartbeat_age(run_dir, now)
    if age is None or age > STALE_AFTER:
        return "crashed"
    return "running"
