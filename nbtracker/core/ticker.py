"""One daemon thread that calls registered jobs about twice a second (flushes, heartbeats)."""

from __future__ import annotations

import os
import sys
import threading
from typing import Callable

INTERVAL = 0.5

_jobs: dict[int, Callable[[], None]] = {}
_lock = threading.Lock()
_thread: threading.Thread | None = None
_wake = threading.Event()
_failed: set[int] = set()
_fork_hook = False


def add(key: int, job: Callable[[], None]) -> None:
    """Run ``job`` every ``INTERVAL`` seconds until ``remove(key)``."""
    global _thread, _fork_hook
    with _lock:
        if not _fork_hook and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork)
            _fork_hook = True
        _jobs[key] = job
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_loop, name="nbtracker-ticker", daemon=True)
            _thread.start()


def remove(key: int) -> None:
    """Stop calling the job; the thread ends at its next tick once no job is left."""
    with _lock:
        _jobs.pop(key, None)
        _failed.discard(key)
        if not _jobs:
            _wake.set()


def alive() -> bool:
    """Whether the ticker thread is running (it runs only while jobs are registered)."""
    return _thread is not None and _thread.is_alive()


def _loop() -> None:
    global _thread
    while True:
        _wake.wait(INTERVAL)
        _wake.clear()
        with _lock:
            jobs = list(_jobs.items())
            if not jobs:   # idle: end the thread; add() starts a new one
                if _thread is threading.current_thread():
                    _thread = None
                return
        for key, job in jobs:
            try:
                job()
                _failed.discard(key)
            except Exception as e:  # noqa: BLE001 - keep ticking; the run reports its own errors
                if key not in _failed:
                    _failed.add(key)
                    print(f"nbtracker: background write failed: {type(e).__name__}: {e} "
                          "(rows stay in memory and are retried)", file=sys.stderr)


def _after_fork() -> None:
    # A forked child has no ticker thread and must not write its parent's runs.
    global _thread
    _jobs.clear()
    _thread = None

