"""The run listing the Runs panel polls: one summary per run, re-read only when its run.json changes.

A refresh walks the root (one ``scandir`` per project and one ``stat`` per run) and re-reads
only the ``run.json`` files whose size or modification time changed, so polling 10,000 runs
costs a directory walk, not 10,000 JSON parses. Every change bumps a generation number; a
client that passes the generation it has gets only the runs that changed since (and the ids
of runs that disappeared). Histories (``metrics.jsonl``) are never read here.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import NbtrackerError
from ..core.paths import RUN_FILE
from ..core.query import _load_doc, run_entries
from ..core.status import effective_status

#: A refresh is shared by every request within this many seconds.
MIN_REFRESH = 0.5


def clean(value: Any) -> Any:
    """``value`` with non-finite floats as the strings JSON cannot hold natively ("NaN", ...)."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def _scalar(value: Any) -> Any:
    """A summary value as the listing sends it: JSON-safe, and nothing bulky."""
    if isinstance(value, float) and not math.isfinite(value):
        return clean(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return None


def summarize(run_dir: Path, doc: dict[str, Any]) -> dict[str, Any]:
    """What the listing shows of one run (small: no config, no full summary)."""
    summary = doc.get("summary") or {}
    pm = doc.get("primary_metric")
    primary = None
    if pm:
        name = pm["name"]
        primary = {"name": name, "goal": pm["goal"], "last": _scalar(summary.get(name)),
                   "best": _scalar(summary.get("best/" + name)),
                   "best_step": _scalar(summary.get("best_step/" + name))}
    return {
        "key": f"{run_dir.parent.name}/{run_dir.name}",
        "id": doc.get("id") or run_dir.name,
        "project": run_dir.parent.name,
        "name": doc.get("name") or run_dir.name,
        "status": effective_status(run_dir, doc.get("status")),
        "group": doc.get("group"),
        "tags": list(doc.get("tags") or []),
        "start_time": doc.get("start_time"),
        "end_time": doc.get("end_time"),
        "updated_time": _scalar(doc.get("updated_time")),
        "rows": int(doc.get("rows") or 0),
        "primary": primary,
        "replay_of": _scalar(doc.get("replay_of")),
    }


@dataclass
class _Entry:
    stamp: tuple[int, int]
    summary: dict[str, Any]
    generation: int


@dataclass
class RunIndex:
    """Summaries of every run under ``root``, kept current by ``refresh``."""

    root: Path
    generation: int = 0
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _removed: dict[str, int] = field(default_factory=dict)
    _unreadable: dict[str, str] = field(default_factory=dict)
    _refreshed: float = -math.inf
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self, force: bool = False) -> None:
        with self._lock:
            now = time.monotonic()
            if not force and now - self._refreshed < MIN_REFRESH:
                return
            self._refreshed = now
            seen = set()
            for project, name, path in run_entries(self.root):
                key = f"{project}/{name}"
                try:
                    st = os.stat(os.path.join(path, RUN_FILE))
                except OSError:
                    continue          # being created, or not a run
                seen.add(key)
                run_dir = Path(path)
                stamp = (st.st_mtime_ns, st.st_size)
                entry = self._entries.get(key)
                if entry is not None and entry.stamp == stamp:
                    if entry.summary["status"] == "running":
                        status = effective_status(run_dir, "running")   # its writer may have died
                        if status != "running":
                            self.generation += 1
                            entry.summary = {**entry.summary, "status": status}
                            entry.generation = self.generation
                    continue
                try:
                    doc, _ = _load_doc(run_dir)
                except NbtrackerError as e:
                    self._unreadable[key] = str(e)
                    continue
                self._unreadable.pop(key, None)
                self.generation += 1
                self._entries[key] = _Entry(stamp, summarize(run_dir, doc), self.generation)
                self._removed.pop(key, None)
            for key in [k for k in self._entries if k not in seen]:
                self.generation += 1
                del self._entries[key]
                self._removed[key] = self.generation

    def page(self, project: str | None = None, offset: int = 0, limit: int = 500,
             since: int | None = None) -> dict[str, Any]:
        """Newest first. With ``since`` (a generation a client has): only what changed after it.

        The first page of a full listing is always current; polls and later pages share a
        refresh made less than ``MIN_REFRESH`` seconds ago."""
        self.refresh(force=since is None and offset == 0)
        with self._lock:
            entries = [e for e in self._entries.values()
                       if project is None or e.summary["project"] == project]
            out: dict[str, Any] = {"root": str(self.root), "generation": self.generation,
                                   "total": len(entries),
                                   "projects": sorted({e.summary["project"] for e in self._entries.values()}),
                                   "unreadable": len(self._unreadable)}
            if since is not None and since <= self.generation:
                fresh = [e for e in entries if e.generation > since]
                out["changed"] = [e.summary for e in sorted(fresh, key=_newest)][:limit]
                out["removed"] = [k for k, g in self._removed.items() if g > since]
                out["complete"] = len(fresh) <= limit
                return out
            entries.sort(key=_newest)
            out["offset"] = offset
            out["runs"] = [e.summary for e in entries[offset:offset + limit]]
            return out


def _newest(entry: _Entry) -> tuple[float, str]:
    start = entry.summary.get("start_time")
    return (-(start if isinstance(start, (int, float)) else 0.0), entry.summary["key"])
