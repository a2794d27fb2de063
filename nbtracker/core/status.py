"""Liveness of a run's writer: an OS lock held while the run is open, plus a heartbeat file."""

from __future__ import annotations

import os
import threading
import time
import weakref
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

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
#: Locks held by this process; a forked child closes its copies (see ``_close_in_child``).
_held: "weakref.WeakSet[WriterLock]" = weakref.WeakSet()
_fork_hook = threading.Lock()
_hooked = False


class WriterLock:
    """An exclusive ``flock`` on ``<run>/.lock``, held by the process writing the run.

    The OS drops it when that process dies, however it dies, which lets a reader on the same
    machine see a dead writer at once; the heartbeat covers other machines and filesystems
    without ``flock``.
    """

    def __init__(self, run_dir: Path) -> None:
        # O_NOFOLLOW: a symlink planted as .lock must not make us create files outside the run.
        self._fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
        _install_fork_hook()
        if fcntl is None:
            _held.add(self)
            return
        for attempt in range(10):  # a reader's probe holds a shared lock for microseconds
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                _held.add(self)
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
        _held.discard(self)


def _install_fork_hook() -> None:
    global _hooked
    with _fork_hook:
        if not _hooked and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_close_in_child)
            _hooked = True


def _close_in_child() -> None:
    """A forked child (``multiprocessing`` with fork, ``os.fork``) shares the parent's open lock
    file; if it kept it open, a parent killed later would still look alive while the child runs.
    The child never writes its parent's runs, so it closes its copies."""
    for lock in list(_held):
        if lock._fd >= 0:
            try:
                os.close(lock._fd)
            except OSError:
                pass
            lock._fd = -1
    _held.clear()


def writer_gone(run_dir: Path) -> bool:
    """True if we can tell that no process holds the run's writer lock."""
    if fcntl is None:
        return False
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDONLY | _NOFOLLOW)
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
    fd = os.open(run_dir / HEARTBEAT_FILE, os.O_WRONLY | os.O_CREAT | _NOFOLLOW, 0o644)
    try:
        os.utime(fd)
    finally:
        os.close(fd)


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
