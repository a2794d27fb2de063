"""Live mirroring: a worker process ships an open run to its mirror while it is written.

``run.log()`` never waits on the network and nothing is held in memory for the mirror: the
run directory on disk *is* the queue. The passes run in a separate process
(``python -m nbtracker.sync.worker``, started by ``init``), so neither the network nor the
store's client library (s3fs and botocore are CPU-hungry) competes with the user's loop for
the GIL. The worker makes a first pass at once (the run shows up on the mirror as it starts),
then one every ``interval`` seconds; it holds at most one pending wake-up (its only in-memory
queue, of length one). A failed pass is retried with back-off (2, 4, ... up to 60 seconds),
reported once (printed by the run's process, under the running cell), and never raised into
the user's code; ``%nbtracker status`` and :func:`status` say how far behind each mirror is.
When the run finishes, the last passes ship the final ``run.json`` (bounded by
``$NBTRACKER_MIRROR_FINISH_TIMEOUT``); what they could not ship is left for ``nbtracker sync``,
which resumes exactly there. If the run's process dies, the worker sees its input close,
ships what reached the disk, and exits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from ..core import events
from ..display.text import fmt_bytes
from .objstore import Stats, explain

#: Seconds between passes (``$NBTRACKER_MIRROR_INTERVAL``): each pass of a growing run makes
#: one new segment per timeline, so this also sets how many segments an hour of logging makes.
DEFAULT_INTERVAL = 5.0
#: Longest one pass may upload before it yields to the next (the rest goes with that one).
PASS_BUDGET = 20.0
#: How long ``finish()`` waits for the last pass (``$NBTRACKER_MIRROR_FINISH_TIMEOUT``).
FINISH_TIMEOUT = 30.0
MAX_BACKOFF = 60.0
#: The most of one core the worker may use: after a pass that took C seconds of CPU, the next
#: waits at least C / CPU_SHARE seconds (on a machine whose cores are all busy, the mirror
#: takes no more than a few percent of them, however short the interval).
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


class Syncer:
    """The passes of one live mirror (run by the worker process, nbtracker/sync/worker.py)."""

    def __init__(self, run_dir: Path, run_id: str, target: Target, say: Any) -> None:
        self.dir = Path(run_dir)
        self.run_id = run_id
        self.target = target
        self.url = target.url
        self.say = say
        self.state: Any = None
        self.totals = Stats()
        self.passes = 0
        self.failures = 0
        self.error: str | None = None
        self.last_ok: float | None = None      # wall time of the last pass that completed
        self.last_cpu = 0.0                    # CPU seconds of the last pass
        self.cpu_total = 0.0                   # ... and of all passes
        self._reported = False

    def run_pass(self, budget: float | None = PASS_BUDGET, final: bool = False) -> bool:
        cpu = time.process_time()
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
                self.say(f"{self.error}. The run goes on and the mirror retries "
                         "in the background; `%nbtracker status` shows how far behind it is.")
            return False
        finally:
            self.last_cpu = time.process_time() - cpu
            self.cpu_total += self.last_cpu
        self.totals.add(stats)
        self.passes += 1
        self.last_ok = time.time()
        if self.error is not None and self._reported:
            self.say(f"mirror {self.url} reachable again; catching up.")
            self._reported = False
        self.error = None
        self.failures = 0
        return True

    def next_wait(self, ok: bool, interval: float) -> float:
        if not ok:
            return min(MAX_BACKOFF, 2.0 ** min(self.failures, 6))
        return min(MAX_BACKOFF, max(interval, self.last_cpu / CPU_SHARE))

    def final(self, timeout: float) -> bool:
        """Passes until the mirror has everything or ``timeout`` seconds are spent."""
        deadline = time.monotonic() + timeout
        ok = False
        while not ok and time.monotonic() < deadline:
            ok = self.run_pass(budget=max(0.1, deadline - time.monotonic()), final=True)
            if ok and self.behind() > 0:
                ok = False     # the budget ran out mid-way: go on while time is left
            if not ok:
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        if not ok:
            self.say(f"mirror {self.url} does not have all of run {self.run_id} yet ({self.error or 'out of time'}); "
                     f"`nbtracker sync {self.run_id} --to {self.url}` ships the rest.")
        return ok

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
            "state": "failing" if self.error else "starting" if self.last_ok is None else "live",
            "behind_bytes": behind if behind >= 0 else None,
            "last_ok": self.last_ok,
            "last_error": self.error,
            "passes": self.passes,
            "uploads": self.totals.uploads,
            "uploaded_bytes": self.totals.uploaded_bytes,
            "rows": self.totals.rows,
            "requests": self.totals.requests,
            "last_pass_cpu_seconds": round(self.last_cpu, 4),
            "cpu_seconds": round(self.cpu_total, 4),
        }


class LiveMirror:
    """One open run's live mirror, seen from the run's process: a worker process does the
    passes (``python -m nbtracker.sync.worker``), so neither the network nor the store's client
    library ever competes with the user's loop for the GIL. It reads the run directory only;
    commands go to it on its standard input, its reports come back on its standard output."""

    def __init__(self, run: Any, url: str, options: dict[str, Any] | None = None,
                 interval: float | None = None) -> None:
        self.run = run
        self.url = url
        self.options = options
        self.interval = interval or _env_seconds("NBTRACKER_MIRROR_INTERVAL", DEFAULT_INTERVAL)
        self.closed = False
        self._status: dict[str, Any] = {"url": url, "state": "starting", "behind_bytes": None, "last_ok": None,
                                        "last_error": None, "passes": 0, "uploads": 0, "uploaded_bytes": 0,
                                        "rows": 0, "requests": 0, "last_pass_cpu_seconds": 0.0, "cpu_seconds": 0.0}
        self._done = threading.Event()
        self._ok = False
        self._send_lock = threading.Lock()
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> "LiveMirror":
        here = str(Path(__file__).resolve().parents[2])   # the folder holding the nbtracker package
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)}
        self.proc = subprocess.Popen([sys.executable, "-m", "nbtracker.sync.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
                                     env=env, start_new_session=True)
        self._send(json.dumps({"run_dir": str(self.run.dir), "run_id": self.run.id, "url": self.url,
                               "options": self.options, "interval": self.interval}))
        threading.Thread(target=self._read, name=f"nbtracker-mirror-{self.run.id}", daemon=True).start()
        return self

    def _send(self, line: str) -> None:
        with self._send_lock:
            try:
                assert self.proc is not None and self.proc.stdin is not None
                self.proc.stdin.write(line + "\n")
                self.proc.stdin.flush()
            except (OSError, ValueError):
                pass   # the worker is gone: its last status says why

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "status" in msg:
                self._status = msg["status"]
            if "say" in msg:
                _say(msg["say"])
            if "done" in msg:
                self._ok = bool(msg["done"])
                self._done.set()
        code = self.proc.wait()   # reap it at once (a kernel shutting down kills unreaped children)
        if not self._done.is_set():   # it died without its last word
            self._status = {**self._status, "state": "failing",
                            "last_error": f"the mirror's worker process exited with code {code}"}
            _say(f"mirror {self.url}: the worker process exited (code {code}); "
                 f"`nbtracker sync {self.run.id} --to {self.url}` ships the run")
        self._done.set()

    def poke(self) -> None:
        self._send("poke")

    def close(self, timeout: float | None = None) -> bool:
        """The last pass (bounded by ``timeout``); True if the mirror has everything."""
        if self.closed:
            return self._ok
        self.closed = True
        timeout = timeout if timeout is not None else _env_seconds("NBTRACKER_MIRROR_FINISH_TIMEOUT",
                                                                   FINISH_TIMEOUT)
        self._send(f"final {timeout}")
        if not self._done.wait(timeout + 10):
            _say(f"mirror {self.url}: the worker did not answer; `nbtracker sync {self.run.id} --to {self.url}` "
                 "ships what it did not")
            if self.proc is not None:
                self.proc.kill()
        if self.proc is not None and self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        return self._ok

    def status(self) -> dict[str, Any]:
        out = dict(self._status)
        last_ok = out.pop("last_ok", None)
        out["seconds_since_last_pass"] = None if last_ok is None else round(time.time() - last_ok, 1)
        if self.closed:
            out["state"] = "closed" if self._ok else "failing"
        return out


# -- attaching to runs -------------------------------------------------------------------------
_live: dict[int, list[LiveMirror]] = {}
_lock = threading.Lock()


def start(run: Any, url: str, options: dict[str, Any] | None = None, interval: float | None = None) -> LiveMirror:
    mirror = LiveMirror(run, url, options, interval).start()
    with _lock:
        if not _live:
            events.on("finish", _on_finish)
        _live.setdefault(id(run), []).append(mirror)
    return mirror


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
        lag = ("up to date" if behind == 0 else f"{fmt_bytes(behind)} behind" if behind else "first pass pending")
        since = s["seconds_since_last_pass"]
        when = f", last pass {since:.0f} s ago" if since is not None else ""
        lines.append(f"mirror {s['url']}: {lag}{when}; {s['uploads']} uploads, {fmt_bytes(s['uploaded_bytes'])}")
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
