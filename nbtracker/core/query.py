"""Reading runs back without a live process: list, filter, sort, load, history."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Iterable, Iterator, overload

from . import reprs
from .errors import NbtrackerError, RunNotFoundError
from .files import read_json, read_jsonl
from .paths import METRICS_FILE, RUN_FILE, check_project, check_run_id, resolve_root
from .status import effective_status

_META = ("id", "name", "project", "group", "status", "start_time", "end_time", "notes")


class RunView:
    """A read-only view of one run directory, finished or live.

    Attributes mirror ``run.json``: ``id``, ``name``, ``project``, ``group``, ``tags``,
    ``notes``, ``config``, ``summary``, ``start_time``, ``end_time``, ``primary_metric``.
    ``status`` is the effective status: a run whose writer died reads as ``"crashed"``.
    """

    def __init__(self, path: Path, doc: Mapping[str, Any]) -> None:
        self.dir = path
        self.status: str = effective_status(path, doc.get("status"))
        if self.status == "crashed" and doc.get("status") == "running":
            # The writer may have finished between our read of run.json and the lock probe:
            # it writes its final run.json before it releases the lock, so read it again.
            try:
                fresh = read_json(path / RUN_FILE)
            except (OSError, ValueError):
                fresh = None
            if isinstance(fresh, dict) and fresh.get("status") != "running":
                doc = fresh
                self.status = effective_status(path, doc.get("status"))
        self._doc = dict(doc)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> "RunView":
        path = Path(path)
        try:
            return cls(path, read_json(path / RUN_FILE))
        except FileNotFoundError:
            raise RunNotFoundError(f"{path} is not a run directory (no {RUN_FILE})") from None

    def __getattr__(self, name: str) -> Any:
        doc = self.__dict__.get("_doc", {})
        if name in ("id", "name", "project", "group", "notes", "start_time", "end_time"):
            return doc.get(name)
        if name in ("config", "summary"):
            return dict(doc.get(name) or {})
        if name == "tags":
            return list(doc.get("tags") or [])
        if name == "primary_metric":
            pm = doc.get("primary_metric")
            return (pm["name"], pm["goal"]) if pm else None
        raise AttributeError(name)

    @property
    def steps(self) -> int:
        """Number of metric rows recorded (as of the last summary write)."""
        return int(self._doc.get("rows") or 0)

    @property
    def duration(self) -> float | None:
        start = self._doc.get("start_time")
        if start is None:
            return None
        end = self._doc.get("end_time") or self._doc.get("updated_time") or time.time()
        return max(0.0, end - start)

    @property
    def best(self) -> tuple[str, Any, Any] | None:
        """``(metric, best value, step)`` of the primary metric, or None."""
        pm = self._doc.get("primary_metric")
        if not pm:
            return None
        s = self._doc.get("summary") or {}
        return pm["name"], s.get("best/" + pm["name"]), s.get("best_step/" + pm["name"])

    def get(self, key: str, default: Any = None) -> Any:
        """Look ``key`` up in the summary, then the config (dotted or ``/`` paths), then the metadata."""
        summary = self._doc.get("summary") or {}
        if key in summary:
            return summary[key]
        found = _config_lookup(self._doc.get("config") or {}, key)
        if found is not _MISSING:
            return found
        if key in _META:
            return self.status if key == "status" else self._doc.get(key)
        if key in ("steps", "duration"):
            return getattr(self, key)
        return default

    def history(self, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Every metric row as a dict with ``_step`` and ``_time``.

        With ``keys``, only rows holding at least one of them, trimmed to those keys.
        """
        rows = read_jsonl(self.dir / METRICS_FILE, live=self.status == "running")
        if keys is None:
            return rows
        wanted = [keys] if isinstance(keys, str) else list(keys)
        out = []
        for row in rows:
            picked = {k: row[k] for k in wanted if k in row}
            if picked:
                out.append({"_step": row.get("_step"), "_time": row.get("_time"), **picked})
        return out

    def to_pandas(self, keys: Iterable[str] | None = None) -> Any:
        """The history as a ``pandas.DataFrame`` (pandas must be installed)."""
        try:
            import pandas as pd
        except ImportError:
            raise NbtrackerError(
                "to_pandas() needs pandas, which is not installed: pip install pandas "
                "(history() returns the same rows as plain dicts)") from None
        return pd.DataFrame.from_records(self.history(keys))

    def as_dict(self) -> dict[str, Any]:
        """The run document with the effective status (what ``nbtracker ls --json`` prints)."""
        return {**self._doc, "status": self.status, "dir": str(self.dir)}

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any] | None:
        return reprs.bundle(self, include, exclude)

    def __repr__(self) -> str:
        best = self.best
        extra = f", best {best[0]}={_fmt(best[1])}" if best and best[1] is not None else ""
        return f"<RunView {self.name!r} ({self.id}) {self.project} {self.status}, {self.steps} steps{extra}>"


class RunList(Sequence[RunView]):
    """A list of runs, newest first, that sorts and filters by any summary, config or meta key."""

    def __init__(self, runs: Iterable[RunView]) -> None:
        self._runs = list(runs)

    @overload
    def __getitem__(self, i: int) -> RunView: ...
    @overload
    def __getitem__(self, i: slice) -> "RunList": ...
    def __getitem__(self, i: int | slice) -> RunView | RunList:
        if isinstance(i, slice):
            return RunList(self._runs[i])
        return self._runs[i]

    def __len__(self) -> int:
        return len(self._runs)

    def __iter__(self) -> Iterator[RunView]:
        return iter(self._runs)

    def sort(self, key: str, descending: bool = False) -> "RunList":
        """Sort in place by ``key``: numbers, then text, then runs without it (or NaN); returns self."""
        numbers, texts, missing = [], [], []
        for run in self._runs:
            v = run.get(key)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                missing.append(run)
            elif isinstance(v, (int, float)):
                numbers.append((v, run))
            else:
                texts.append((str(v), run))
        numbers.sort(key=lambda p: p[0], reverse=descending)
        texts.sort(key=lambda p: p[0], reverse=descending)
        self._runs = [r for _, r in numbers] + [r for _, r in texts] + missing
        return self

    def filter(self, *, tags: Iterable[str] | None = None, status: str | Iterable[str] | None = None,
               config: Mapping[str, Any] | None = None) -> "RunList":
        """Runs with all ``tags``, one of ``status``, and every ``config`` key equal to the value."""
        return RunList(r for r in self._runs if _matches(r, tags, status, config))

    def to_records(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self._runs]

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any] | None:
        return reprs.bundle(self, include, exclude)

    def __repr__(self) -> str:
        from .table import runs_table  # text rendering; stdlib only
        return runs_table(self) if self._runs else "<RunList: no runs>"


def runs(project: str | None = None, dir: str | os.PathLike[str] | None = None, *,
         tags: Iterable[str] | None = None, status: str | Iterable[str] | None = None,
         config: Mapping[str, Any] | None = None) -> RunList:
    """List the runs under the root (all projects unless ``project``), newest first.

    Parameters
    ----------
    project : str, optional
        Only this project.
    dir : path, optional
        The run root; default ``$NBTRACKER_DIR`` or ``./nbtracker-runs``.
    tags, status, config
        Filters: runs carrying all ``tags``; whose effective status is ``status`` (or one of
        them); whose config has each given key (``"a.b"`` reaches nested values) equal to the value.
    """
    root = resolve_root(dir)
    found: list[RunView] = []
    for run_dir in _run_dirs(root, project):
        try:
            doc = read_json(run_dir / RUN_FILE)
        except (OSError, ValueError):
            continue  # being created, or not a run
        if isinstance(doc, dict):
            view = RunView(run_dir, doc)
            if _matches(view, tags, status, config):
                found.append(view)
    found.sort(key=lambda r: r._doc.get("start_time") or 0, reverse=True)
    return RunList(found)


def load(run: str | os.PathLike[str], dir: str | os.PathLike[str] | None = None,
         project: str | None = None) -> RunView:
    """Open one run by id, unique id prefix, unique name, or run directory path."""
    return RunView.open(find_run_dir(run, dir, project))


def find_run_dir(ref: str | os.PathLike[str], dir: str | os.PathLike[str] | None = None,
                 project: str | None = None) -> Path:
    """Resolve a run reference to its directory, or raise ``RunNotFoundError``."""
    if not str(ref):
        raise RunNotFoundError("empty run reference: pass a run id, id prefix, name or run directory")
    as_path = Path(ref)
    if (as_path / RUN_FILE).is_file():
        return as_path
    ref = str(ref)
    root = resolve_root(dir)
    if project is not None and _safe_id(ref):
        exact = root / check_project(project) / ref
        if (exact / RUN_FILE).is_file():
            return exact
    dirs = list(_run_dirs(root, project))
    for match in (lambda d: d.name == ref, lambda d: _name_of(d) == ref, lambda d: d.name.startswith(ref)):
        hits = [d for d in dirs if match(d)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            listing = ", ".join(f"{d.parent.name}/{d.name}" for d in hits[:5])
            raise RunNotFoundError(f"{ref!r} matches {len(hits)} runs ({listing}); use a full run id")
    where = f"project {project!r} under {root}" if project else str(root)
    raise RunNotFoundError(f"no run {ref!r} in {where}; `nbtracker ls` lists the runs there")


def _safe_id(ref: str) -> bool:
    try:
        check_run_id(ref)
        return True
    except NbtrackerError:
        return False


def _name_of(run_dir: Path) -> str | None:
    try:
        return read_json(run_dir / RUN_FILE).get("name")
    except (OSError, ValueError, AttributeError):
        return None


def _run_dirs(root: Path, project: str | None) -> Iterator[Path]:
    if project is not None:
        projects = [root / check_project(project)]
    else:
        try:
            projects = [Path(e.path) for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")]
        except (FileNotFoundError, NotADirectoryError):  # no root yet, or a file: no runs
            return
    for p in projects:
        try:
            entries = list(os.scandir(p))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for e in entries:
            if not e.name.startswith(".") and e.is_dir():
                yield Path(e.path)


_MISSING = object()


def _config_lookup(config: Mapping[str, Any], key: str) -> Any:
    if key in config:
        return config[key]
    for sep in (".", "/"):
        if sep in key:
            node: Any = config
            for part in key.split(sep):
                if not isinstance(node, Mapping) or part not in node:
                    break
                node = node[part]
            else:
                return node
    return _MISSING


def _matches(run: RunView, tags: Iterable[str] | None, status: str | Iterable[str] | None,
             config: Mapping[str, Any] | None) -> bool:
    if tags is not None:
        wanted = [tags] if isinstance(tags, str) else list(tags)
        if not set(wanted) <= set(run.tags):
            return False
    if status is not None:
        allowed = {status} if isinstance(status, str) else set(status)
        if run.status not in allowed:
            return False
    if config:
        cfg = run._doc.get("config") or {}
        for k, v in config.items():
            if _config_lookup(cfg, k) != v:
                return False
    return True


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
