"""Live mirroring: a background thread ships an open run to its mirrors while it is written.

``run.log()`` never waits on the network and nothing is held in memory for the mirror: the
run directory on disk *is* the queue. The thread makes a first pass at once (the run shows up
on the mirror when it starts), then wakes every ``interval`` seconds (and at most
one wake-up is ever pending: the only in-memory queue, of length one), ships what the files
gained since its last pass, and sleeps again. A failed pass is retried with back-off
(2, 4, ... up to 60 seconds), reported once on stderr, and never raised into the user's code;
``%nbtracker status`` and :func:`status` say how far behind each mirror is. When the run
finishes, one last pass ships the final ``run.json`` (bounded by ``finish_timeout``); what it
could not ship is left for ``nbtracker sync``, which resumes exactly there.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from .. import lifecycle
from ..core import events
from .objstore import Stats, explain

#: Seconds between passes (``$NBTRACKER_MIRROR_INTERVAL``): each pass of a growing run makes
#: one new segment per timeline, so this also sets how many segments an hour of logging makes.
DEFAULT_INTERVAL = 5.0
#: Longest one pass may upload before it yields to the next (the rest goes with that one).
PASS_BUDGET = 20.0
#: How long ``finish()`` waits for the last pass (``$NBTRACKER_MIRROR_FINISH_TIMEOUT``).
FINISH_TIMEOUT = 30.0
MAX_BACKOFF = 60.0
#: The most of one core the mirror may use: after a pass that took C seconds of CPU (its own
#: thread and fsspec's I/O thread), the next waits at least C / CPU_SHARE seconds. So a tight
#: training loop never pays more than a few percent for its mirror, however short the interval.
CPU_SHARE = 0.03


class Target(Protocol):
    url: str

    def sync_run(self, run_dir: Path, state: Any = None, *, registry: bool = True,
                 budget: float | None = None) -> tuple[Stats, Any]: ...

    def pending(self, run_dir: Path, state: Any) -> int: ...


def _env_seconds(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


class LiveMirror:
    """Ships one open run to one target from a daemon thread."""

    def __init__(self, run: Any, target: Target, interval: float | None = None) -> None:
        self.run = run
        self.dir = Path(run.dir)
        self.target = target
        self.url = target.url
        self.interval = interval or _env_seconds("NBTRACKER_MIRROR_INTERVAL", DEFAULT_INTERVAL)
        self.state: Any = None
        self.totals = Stats()
        self.passes = 0
        self.failures = 0
        self.error: str | None = None
        self.last_ok: float | None = None      # wall time of the last pass that completed
        self.closed = False
        self.last_cpu = 0.0                    # CPU seconds of the last pass
        self.cpu_total = 0.0                   # ... and of all passes of the thread
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._busy = threading.Lock()
        self._reported = False
        self._thread = threading.Thread(target=self._loop, name=f"nbtracker-mirror-{run.id}", daemon=True)

    def start(self) -> "LiveMirror":
        self._thread.start()
        return self

    def poke(self) -> None:
        self._wake.set()

    # -- the thread ----------------------------------------------------------------------------
    def _loop(self) -> None:
        wait = 0.0   # the first pass at once: the run shows up on the mirror when it starts
        while not self._stop.is_set():
            self._wake.wait(wait)
            self._wake.clear()
            if self._stop.is_set():
                return
            cpu = _CpuClock()
            if not self._pass(budget=PASS_BUDGET):
                delay = min(MAX_BACKOFF, 2.0 ** min(self.failures, 6))
                self._stop.wait(delay)
            self.last_cpu = cpu.elapsed()
            self.cpu_total += self.last_cpu
            wait = min(MAX_BACKOFF, max(self.interval, self.last_cpu / CPU_SHARE))

    def _pass(self, budget: float | None, final: bool = False) -> bool:
        with self._busy:
            try:
                if final and self.state is not None and hasattr(self.state, "marks"):
                    self.state.marks.clear()   # compare every file by content once more
                stats, self.state = self.target.sync_run(self.dir, self.state, registry=final or self.passes == 0,
                                                         budget=budget)
            except Exception as e:  # noqa: BLE001 - a mirror never breaks the user's run
                self.failures += 1
                self.error = str(explain(self.url, e))
                if not self._reported:
                    self._reported = True
                    _say(f"{self.error}. The run goes on and the mirror retries "
                         "in the background; `%nbtracker status` shows how far behind it is.")
                return False
            self.totals.add(stats)
            self.passes += 1
            self.last_ok = time.time()
            if self.error is not None and self._reported:
                _say(f"mirror {self.url} reachable again; catching up.")
                self._reported = False
            self.error = None
            self.failures = 0
            return True

    # -- closing -------------------------------------------------------------------------------
    def close(self, timeout: float | None = None) -> bool:
        """Stop the thread and make one last pass (bounded); True if the mirror has everything."""
        if self.closed:
            return True
        self.closed = True
        timeout = timeout if timeout is not None else _env_seconds("NBTRACKER_MIRROR_FINISH_TIMEOUT",
                                                                   FINISH_TIMEOUT)
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        ok = False
        while not ok and time.monotonic() < deadline:
            ok = self._pass(budget=max(0.1, deadline - time.monotonic()), final=True)
            if ok and self.behind() > 0:
                ok = False     # the budget ran out mid-way: go on while time is left
            if not ok:
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        if not ok:
            _say(f"mirror {self.url} does not have all of run {self.run.id} yet ({self.error or 'out of time'}); "
                 f"`nbtracker sync {self.run.id} --to {self.url}` ships the rest.")
        return ok

    # -- status --------------------------------------------------------------------------------
    def behind(self) -> int:
        if self.state is None:
            return -1
        try:
            return self.target.pending(self.dir, self.state)
        except Exception:  # noqa: BLE001
            return -1

    def status(self) -> dict[str, Any]:
        behind = self.behind()
        return {
            "url": self.url,
            "state": ("failing" if self.error else "closed" if self.closed else
                      "starting" if self.last_ok is None else "live"),
            "behind_bytes": behind if behind >= 0 else None,
            "seconds_since_last_pass": None if self.last_ok is None else round(time.time() - self.last_ok, 1),
            "last_error": self.error,
            "passes": self.passes,
            "uploads": self.totals.uploads,
            "uploaded_bytes": self.totals.uploaded_bytes,
            "rows": self.totals.rows,
            "requests": self.totals.requests,
            "last_pass_cpu_seconds": round(self.last_cpu, 4),
            "cpu_seconds": round(self.cpu_total, 4),
        }


class _CpuClock:
    """CPU time of this thread plus fsspec's I/O thread (where s3fs does its requests)."""

    def __init__(self) -> None:
        self.clocks = []
        for t in [threading.current_thread(), *[t for t in threading.enumerate() if t.name == "fsspecIO"]]:
            try:
                self.clocks.append(time.pthread_getcpuclockid(t.ident))  # type: ignore[arg-type]
            except (AttributeError, OSError, TypeError):
                pass
        self.wall = time.monotonic()
        self.start = self._now()

    def _now(self) -> float:
        total = 0.0
        for c in self.clocks:
            try:
                total += time.clock_gettime(c)
            except OSError:
                pass
        return total

    def elapsed(self) -> float:
        if not self.clocks:
            return time.monotonic() - self.wall
        if len(self.clocks) == 1:   # the I/O thread was started by this pass: not measured, take wall
            return max(self._now() - self.start, min(time.monotonic() - self.wall, 1.0))
        return self._now() - self.start


# -- attaching to runs -------------------------------------------------------------------------
_live: dict[int, list[LiveMirror]] = {}
_lock = threading.Lock()


def start(run: Any, target: Target, interval: float | None = None) -> LiveMirror:
    mirror = LiveMirror(run, target, interval).start()
    with _lock:
        if not _live:
            events.on("finish", _on_finish)
        _live.setdefault(id(run), []).append(mirror)
    _finish_before_shutdown()
    return mirror


_shutdown_hook = False


def _finish_before_shutdown() -> None:
    """Once per process: when the interpreter exits with a mirrored run still open, finish it
    (with the status ``atexit`` would give it) before the interpreter stops thread pools:
    after that, an S3 client cannot even resolve its endpoint's name ("cannot schedule new
    futures after interpreter shutdown"), so the last pass would fail."""
    global _shutdown_hook
    register = getattr(threading, "_register_atexit", None)
    if _shutdown_hook or register is None:
        return
    _shutdown_hook = True

    def finish_mirrored() -> None:
        with _lock:
            runs = [ms[0].run for ms in _live.values() if ms]
        for run in runs:
            try:
                run.finish(lifecycle.exit_status(run))
            except Exception as e:  # noqa: BLE001 - exiting; say it and go on
                _say(f"could not finish run {run.id} at exit: {e}")

    try:
        register(finish_mirrored)
    except RuntimeError:   # already shutting down
        pass


def mirrors_of(run: Any) -> list[LiveMirror]:
    with _lock:
        return list(_live.get(id(run), []))


def status(run: Any) -> list[dict[str, Any]]:
    """How each live mirror of ``run`` is doing (``%nbtracker status`` prints this)."""
    return [m.status() for m in mirrors_of(run)]


def status_lines(run: Any) -> list[str]:
    lines = []
    for s in status(run):
        if s["state"] == "failing":
            lines.append(f"mirror {s['url']}: failing, retrying ({s['last_error']})")
            continue
        behind = s["behind_bytes"]
        lag = ("up to date" if behind == 0 else f"{_size(behind)} behind" if behind else "first pass pending")
        since = s["seconds_since_last_pass"]
        when = f", last pass {since:.0f} s ago" if since is not None else ""
        lines.append(f"mirror {s['url']}: {lag}{when}; {s['uploads']} uploads, {_size(s['uploaded_bytes'])}")
    return lines


def _on_finish(run: Any) -> None:
    with _lock:
        mirrors = _live.pop(id(run), [])
        if not _live:
            events.off("finish", _on_finish)
    for mirror in mirrors:
        try:
            mirror.close()
        except Exception as e:  # noqa: BLE001 - never raised into finish()
            _say(f"mirror {mirror.url}: {type(e).__name__}: {e}")


def _say(text: str) -> None:
    try:
        print(f"nbtracker: {text}", file=sys.stderr, flush=True)
    except Exception:  # noqa: BLE001 - a closed stderr at interpreter exit
        pass


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"
