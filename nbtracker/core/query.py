"""Reading runs back without a live process: list, filter, sort, load, history."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Iterable, Iterator, overload

import warnings

from . import paths as _paths
from . import reprs
from .errors import NbtrackerError, NbtrackerWarning, RunNotFoundError, UnreadableRunError
from .files import read_json, read_jsonl
from .paths import METRICS_FILE, MIRROR_MARK, RUN_FILE, check_project, check_run_id, reading_root
from .status import STATUSES, effective_status

_META = ("id", "name", "project", "group", "status", "start_time", "end_time", "notes")


_NUM = (int, float)


def _bad_fields(doc: dict[str, Any]) -> list[str]:
    """Names of the fields of a run document whose type is wrong (see docs/run-directory.md).

    Written out field by field: this runs for every run of every listing."""
    g = doc.get
    bad = []
    if "name" in doc and type(doc["name"]) is not str:
        bad.append("name")
    for key in ("group", "notes"):
        v = g(key)
        if v is not None and type(v) is not str:
            bad.append(key)
    if "status" in doc and doc["status"] not in STATUSES:
        bad.append("status")
    for key in ("start_time", "end_time", "updated_time"):
        v = g(key)
        if v is not None and not (type(v) in _NUM and math.isfinite(v)):
            bad.append(key)
    for key in ("config", "summary"):     # JSON object keys are always strings
        if key in doc and type(doc[key]) is not dict:
            bad.append(key)
    v = g("primary_metric")
    if v is not None and not (type(v) is dict and type(v.get("name")) is str and v.get("goal") in ("min", "max")):
        bad.append("primary_metric")
    v = g("rows")
    if v is not None and not (type(v) is int and v >= 0):
        bad.append("rows")
    for key, kinds in (("tags", (str,)), ("summary_manual", (str,)), ("resumes", _NUM)):
        v = g(key)
        if v is not None and not (type(v) is list and all(type(t) in kinds for t in v)):
            bad.append(key)
    v = g("error")
    if v is not None and not (type(v) is dict and type(v.get("type")) is str and type(v.get("message")) is str):
        bad.append("error")
    return bad


_EMPTY: dict[str, Any] = {"config": dict, "summary": dict, "summary_manual": list, "tags": list,
                          "resumes": list, "rows": int}


def validate_doc(run_dir: Path, doc: Any) -> tuple[dict[str, Any], list[str]]:
    """Return ``(doc, problems)``: ``run.json`` with every wrongly typed field replaced by its
    empty value (named in ``problems``). Raises ``UnreadableRunError`` if it is not an object."""
    if type(doc) is not dict:
        raise _unreadable(run_dir, f"is not a run document (a JSON {type(doc).__name__}, expected an object)")
    problems = _bad_fields(doc)
    ident = type(doc.get("id")) is str and doc["id"] and type(doc.get("project")) is str and doc["project"]
    if not problems and ident and type(doc.get("name")) is str:
        return doc, problems            # the common case: nothing to copy
    doc = dict(doc)
    for key in ("id", "project"):
        if type(doc.get(key)) is not str or not doc[key]:
            if key in doc:
                problems.append(key)
            doc[key] = run_dir.name if key == "id" else run_dir.parent.name
    for key in problems:
        if key in _EMPTY:
            doc[key] = _EMPTY[key]()
        elif key not in ("id", "project"):
            doc[key] = None
    if type(doc.get("name")) is not str:
        doc["name"] = doc["id"]
    return doc, problems


def _unreadable(run_dir: Path, reason: str) -> UnreadableRunError:
    error = UnreadableRunError(f"{run_dir / RUN_FILE} {reason}")
    error.reason = f"{RUN_FILE} {reason}"  # type: ignore[attr-defined]  # for listings
    return error


def _load_doc(run_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """``validate_doc`` of ``run_dir``'s run.json. Raises ``RunNotFoundError`` (no file, e.g. a
    run being created) or ``UnreadableRunError`` (not UTF-8, not JSON, not an object)."""
    try:
        raw = read_json(run_dir / RUN_FILE)
    except FileNotFoundError:
        raise RunNotFoundError(f"{run_dir} is not a run directory (no {RUN_FILE})") from None
    except UnicodeDecodeError as e:
        raise _unreadable(run_dir, f"is not UTF-8 text ({e.reason})") from None
    except ValueError as e:
        raise _unreadable(run_dir, f"is not readable JSON ({e}); it may have been truncated "
                                   "or edited by hand") from None
    except OSError as e:
        raise _unreadable(run_dir, f"cannot be read ({e.strerror or e})") from None
    return validate_doc(run_dir, raw)


def read_run_doc(run_dir: Path, warn: bool = True) -> dict[str, Any]:
    """``run.json`` of ``run_dir``, validated (see ``validate_doc``); wrongly typed fields are
    reported in one warning. Raises ``RunNotFoundError`` (no file) or ``UnreadableRunError``."""
    doc, problems = _load_doc(run_dir)
    if problems and warn:
        warnings.warn(f"{run_dir / RUN_FILE}: ignored wrongly typed field(s) {', '.join(problems)}",
                      NbtrackerWarning, stacklevel=3)
    return doc


class RunView:
    """A read-only view of one run directory, finished or live.

    Attributes mirror ``run.json``: ``id``, ``name``, ``project``, ``group``, ``tags``,
    ``notes``, ``config``, ``summary``, ``start_time``, ``end_time``, ``primary_metric``.
    ``status`` is the effective status: a run whose writer died reads as ``"crashed"``.
    """

    #: For a run read from a mirror: fills the local copy of its folder on first use of ``dir``.
    _fill: Any = None

    def __init__(self, path: Path, doc: Mapping[str, Any], validated: bool = False) -> None:
        self._dir = path
        if not validated:
            doc, _ = validate_doc(path, doc)
        self.status: str = effective_status(path, doc.get("status"))
        if self.status == "crashed" and doc.get("status") == "running":
            # The writer may have finished between our read of run.json and the lock probe:
            # it writes its final run.json before it releases the lock, so read it again.
            try:
                fresh = read_run_doc(path, warn=False)
            except NbtrackerError:
                fresh = None
            if fresh is not None and fresh.get("status") != "running":
                doc = fresh
                self.status = effective_status(path, doc.get("status"))
        self._doc = dict(doc)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> "RunView":
        """The run in ``path``; ``RunNotFoundError`` or ``UnreadableRunError`` if there is none."""
        path = Path(path)
        return cls(path, read_run_doc(path), validated=True)

    @property
    def dir(self) -> Path:
        """The run directory (for a run read from a mirror, its local copy)."""
        fill = self._fill
        if fill is not None:
            self._fill = None
            fill(self._dir)
        return self._dir

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

    # -- what the run stored besides rows (core/records.py) ----------------------------------
    @property
    def checkpoints(self) -> list[Any]:
        """The run's complete checkpoints (:class:`nbtracker.Checkpoint`), oldest first."""
        from .records import list_checkpoints

        return list_checkpoints(self.dir)

    def best_checkpoint(self, metric: str | None = None, goal: str | None = None) -> Any:
        """The checkpoint with the best ``metric`` (default: the primary metric), or None."""
        from .records import best_checkpoint, list_checkpoints

        return best_checkpoint(list_checkpoints(self.dir), self.primary_metric, metric, goal)

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        """Files saved with ``run.save``: name -> ``{size, sha256, policy, source, time}``."""
        from .records import FILES_MANIFEST, read_manifest

        return read_manifest(self.dir, FILES_MANIFEST)

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        """Files archived from output folders (``scan_outputs_once`` / ``watch_outputs``)."""
        from .records import OUTPUTS_MANIFEST, read_manifest

        return read_manifest(self.dir, OUTPUTS_MANIFEST)

    @property
    def artifacts(self) -> list[dict[str, Any]]:
        """Artifact events of this run: ``logged``, ``relogged``, ``used``, ``used_by``."""
        from .records import ARTIFACTS_LOG, read_log

        return read_log(self.dir, ARTIFACTS_LOG)

    @property
    def references(self) -> list[dict[str, Any]]:
        """Datasets and pretrained models recorded by reference."""
        from .records import REFERENCES_LOG, read_log

        return read_log(self.dir, REFERENCES_LOG)

    def text_log(self) -> list[dict[str, Any]]:
        """``run.log_text`` and logging-handler records: ``{time, step, level, text, ...}``."""
        from .records import read_log

        return read_log(self.dir, "text.jsonl")

    def console(self) -> list[dict[str, Any]]:
        """Captured console lines, one dict per line: ``{time, stream, cell, line}``."""
        from .records import read_log

        return [{"time": r.get("time"), "stream": r.get("stream"), "cell": r.get("cell"), "line": line}
                for r in read_log(self.dir, "console.jsonl") for line in r.get("lines") or ()]

    def system(self) -> list[dict[str, Any]]:
        """System metric samples (``system/*`` keys with ``_time``)."""
        from .records import read_log

        return read_log(self.dir, "system.jsonl")

    def media(self, key: str | None = None) -> list[dict[str, Any]]:
        """Media references of the history (images, histograms, tables), each with ``key``,
        ``_step`` and an absolute ``file``; a gallery gives one entry per image."""
        out = []
        for row in self.history():
            for k, v in row.items():
                if type(v) is not dict or (key is not None and k != key):
                    continue
                items = v.get("items") if v.get("_type") == "gallery" else [v]
                for item in items or ():
                    if type(item) is dict and isinstance(item.get("path"), str):
                        out.append({**item, "key": k, "_step": row.get("_step"),
                                    "file": str(self.dir / item["path"])})
        return out

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

    def __init__(self, runs: Iterable[RunView], unreadable: Sequence[tuple[Path, str]] = ()) -> None:
        self._runs = list(runs)
        #: ``(run directory, reason)`` of run directories whose run.json could not be read.
        self.unreadable: list[tuple[Path, str]] = list(unreadable)

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

    def top_checkpoints(self, n: int = 10, metric: str | None = None, goal: str | None = None) -> list[Any]:
        """The ``n`` best checkpoints across these runs by ``metric`` (default: the primary
        metric of the first run that has one) and ``goal`` (default: that metric's goal)."""
        from .records import list_checkpoints, rank_checkpoints

        primary = next((r.primary_metric for r in self._runs if r.primary_metric), None)
        if metric is not None and goal is None:
            goal = next((r.primary_metric[1] for r in self._runs
                         if r.primary_metric and r.primary_metric[0] == metric), None)
        cps = [c for r in self._runs for c in list_checkpoints(r.dir)]
        return rank_checkpoints(cps, primary, metric, goal)[:n]

    def top_checkpoint(self, metric: str | None = None, goal: str | None = None) -> Any:
        """The best checkpoint across these runs (see ``top_checkpoints``), or None."""
        top = self.top_checkpoints(1, metric, goal)
        return top[0] if top else None

    def to_records(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self._runs]

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any] | None:
        return reprs.bundle(self, include, exclude)

    def __repr__(self) -> str:
        return reprs.text(self) or f"<RunList: {len(self._runs)} runs>"


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
    root = reading_root(dir)
    fill = _paths.mirrors.fill if _paths.mirrors is not None and (root / MIRROR_MARK).is_file() else None
    found: list[RunView] = []
    unreadable: list[tuple[Path, str]] = []
    damaged: list[str] = []
    for run_dir in run_dirs(root, project):
        try:
            doc, problems = _load_doc(run_dir)
        except RunNotFoundError:
            continue  # being created, or not a run
        except UnreadableRunError as e:
            unreadable.append((run_dir, e.reason))  # type: ignore[attr-defined]
            continue
        if problems:
            damaged.append(f"{run_dir.parent.name}/{run_dir.name} ({', '.join(problems)})")
        view = RunView(run_dir, doc, validated=True)
        view._fill = fill
        if _matches(view, tags, status, config):
            found.append(view)
    if unreadable or damaged:
        parts = [f"{len(unreadable)} unreadable run(s) skipped: "
                 + ", ".join(f"{d.parent.name}/{d.name}" for d, _ in unreadable[:5])] if unreadable else []
        if damaged:
            parts.append("wrongly typed fields ignored in " + ", ".join(damaged[:5]))
        warnings.warn(f"under {root}: " + "; ".join(parts), NbtrackerWarning, stacklevel=2)
    found.sort(key=lambda r: r._doc.get("start_time") or 0, reverse=True)
    return RunList(found, unreadable)


def load(run: str | os.PathLike[str], dir: str | os.PathLike[str] | None = None,
         project: str | None = None) -> RunView:
    """Open one run by id, unique id prefix, unique name, or run directory path.

    Raises ``RunNotFoundError`` when nothing matches (or several runs do) and
    ``UnreadableRunError`` when the run's ``run.json`` cannot be read.
    """
    return RunView.open(find_run_dir(run, dir, project))


def find_run_dir(ref: str | os.PathLike[str], dir: str | os.PathLike[str] | None = None,
                 project: str | None = None) -> Path:
    """Resolve a run reference to its directory, or raise ``RunNotFoundError``."""
    if not isinstance(ref, (str, os.PathLike)):
        raise RunNotFoundError(f"a run reference is a run id, id prefix, name or run directory, "
                               f"not {type(ref).__name__}")
    if not str(ref):
        raise RunNotFoundError("empty run reference: pass a run id, id prefix, name or run directory")
    as_path = Path(ref)
    try:
        if (as_path / RUN_FILE).is_file():
            return as_path
    except (OSError, ValueError):   # a name too long for a path, or a NUL byte: not a directory
        pass
    ref = str(ref)
    root = reading_root(dir)
    if _paths.mirrors is not None and (root / MIRROR_MARK).is_file():
        found = _find_in(root, ref, project)
        _paths.mirrors.fill(found)
        return found
    return _find_in(root, ref, project)


def _find_in(root: Path, ref: str, project: str | None) -> Path:
    if project is not None and _safe_id(ref):
        exact = root / check_project(project) / ref
        if (exact / RUN_FILE).is_file():
            return exact
    dirs = list(run_dirs(root, project))
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
        name = read_json(run_dir / RUN_FILE).get("name")
    except (OSError, ValueError, AttributeError):
        return None
    return name if type(name) is str else None


def run_dirs(root: Path, project: str | None) -> Iterator[Path]:
    """Every run directory under the root (of one project), without reading them."""
    return (Path(path) for _, _, path in run_entries(root, project))


def run_entries(root: str | os.PathLike[str],
                project: str | None = None) -> Iterator[tuple[str, str, str]]:
    """``(project, run id, path)`` of every run directory, as plain strings (a caller listing
    10,000 runs pays more for ``Path`` objects than for the directory walk)."""
    if project is not None:
        projects = [(check_project(project), os.path.join(root, project))]
    else:
        try:
            projects = [(e.name, e.path) for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")]
        except (FileNotFoundError, NotADirectoryError):  # no root yet, or a file: no runs
            return
    for name, path in projects:
        try:
            entries = list(os.scandir(path))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for e in entries:
            if not e.name.startswith(".") and e.is_dir():
                yield name, e.name, e.path


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
