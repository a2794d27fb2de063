"""Starting runs: create or resume a run directory, and finish open runs when the process exits."""

from __future__ import annotations

import atexit
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable

from . import _version
from . import run as registry
from .core import events, names, ticker
from .core.errors import InvalidKeyError, RunActiveError, RunNotFoundError, StorageError
from .core.files import read_json, read_jsonl
from .core.paths import METRICS_FILE, RUN_FILE, check_project, check_run_id, new_run_id, resolve_root
from .core.status import WriterLock, beat
from .core.values import check_key
from .run import _GOALS, FORMAT_VERSION, Run, _check_tags

_process_hooks = False
_uncaught: str | None = None  # status for runs still open at exit, set by the excepthook


# -- creating and resuming -----------------------------------------------------------------
def init(project: str | None = None, name: str | None = None, config: Any = None,
         tags: Iterable[str] | None = None, notes: str | None = None, group: str | None = None,
         dir: str | os.PathLike[str] | None = None, resume: str | None = None,
         primary_metric: tuple[str, str] | str | None = None) -> Run:
    """Start a run (or reopen one with ``resume=<run id>``) and make it the current run.

    Parameters
    ----------
    project : str, optional
        Folder under the root that groups runs; default ``"default"``.
    name : str, optional
        Display name; generated (e.g. ``brisk-otter-7``) when omitted.
    config : dict or argparse.Namespace, optional
        Hyperparameters, saved at once and on every later change.
    tags, notes, group
        Free-form labels.
    dir : path, optional
        Run root; default ``$NBTRACKER_DIR`` or ``./nbtracker-runs``.
    resume : str, optional
        Id of an existing run to continue: steps go on after the last recorded one.
    primary_metric : (name, goal) or "name:goal", optional
        The metric that ranks runs, with goal ``"min"`` or ``"max"``.

    A run already active in this process is finished first, with a one-line notice.
    """
    root = resolve_root(dir)
    # Validate before finishing the active run: a rejected init must leave it running.
    pm = _check_primary(primary_metric)
    tags_list = _check_tags(tags) if tags is not None else None
    if resume is not None:
        check_run_id(resume)
    if project is not None or resume is None:
        project = check_project(project)
    if registry._active is not None:
        prev = registry._active
        print(f"nbtracker: finished run {prev.name!r} ({prev.id}) because a new run started",
              file=sys.stderr)
        try:
            prev.finish()
        except StorageError as e:  # keep it open (retried at exit); the new run may still work
            print(f"nbtracker: {e}", file=sys.stderr)
            registry._active = None
    if resume is not None:
        run = _reopen(root, project, resume, name, config, tags_list, notes, group, pm)
    else:
        run = _create(root, project, name, config, tags_list or [], notes, group, pm)
    _install_process_hooks()
    registry._open[id(run)] = run
    registry._active = run
    ticker.add(id(run), run._tick)
    if events.has("init"):
        events.emit("init", run)
    return run


def _create(root: Path, project: str, name: str | None, config: Any, tags: list[str],
            notes: str | None, group: str | None, pm: dict[str, str] | None) -> Run:
    pdir = root / project
    try:
        pdir.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            run_id = new_run_id()
            try:
                (pdir / run_id).mkdir()
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover - 20 clashes in 2.8e12 ids
            raise StorageError(f"could not find a free run id in {pdir}")
        run_dir = pdir / run_id
        lock = WriterLock(run_dir)
        beat(run_dir)
    except OSError as e:
        raise StorageError(f"cannot create a run directory under {pdir}: {e}; pass dir= or set "
                           "NBTRACKER_DIR to a writable folder") from e
    if name is None:
        name = names.generate(sum(1 for e in os.scandir(pdir) if not e.name.startswith(".")))
    doc = {
        "format": FORMAT_VERSION,
        "id": run_id,
        "name": str(name),
        "project": project,
        "group": group,
        "tags": tags,
        "notes": notes,
        "status": "running",
        "start_time": time.time(),
        "end_time": None,
        "primary_metric": pm,
        "resumes": [],
        "error": None,
        "host": _hostname(),
        "pid": os.getpid(),
        "python": sys.version.split()[0],
        "argv": list(sys.argv),
        "nbtracker_version": _version.__version__,
    }
    return _first_write(Run(run_dir, doc, lock), lock, config)


def _reopen(root: Path, project: str | None, run_id: str, name: str | None, config: Any,
            tags: list[str] | None, notes: str | None, group: str | None,
            pm: dict[str, str] | None) -> Run:
    check_run_id(run_id)
    if project is not None:
        candidates = [root / check_project(project) / run_id]
    else:
        try:
            candidates = [Path(e.path) / run_id for e in os.scandir(root) if e.is_dir()]
        except (FileNotFoundError, NotADirectoryError):
            candidates = []
    found = [c for c in candidates if (c / RUN_FILE).is_file()]
    if not found:
        where = f"project {project!r}" if project else "any project"
        raise RunNotFoundError(f"cannot resume: no run with id {run_id!r} in {where} under {root}")
    run_dir = found[0]
    try:
        lock = WriterLock(run_dir)
    except OSError:
        raise RunActiveError(f"run {run_id} is open in another process; finish it there "
                             "(or wait for that process to end) before resuming") from None
    try:
        doc = read_json(run_dir / RUN_FILE)
        doc.update(status="running", end_time=None, error=None, pid=os.getpid(),
                   host=_hostname())
        doc["resumes"] = [*doc.get("resumes", []), time.time()]
        for key, value in (("name", name), ("tags", tags), ("notes", notes), ("group", group),
                           ("primary_metric", pm)):
            if value is not None:
                doc[key] = value
        beat(run_dir)
        run = Run(run_dir, doc, lock, read_jsonl(run_dir / METRICS_FILE))
    except BaseException:
        lock.release()
        raise
    return _first_write(run, lock, config)


def _first_write(run: Run, lock: WriterLock, config: Any) -> Run:
    """Write run.json once (with the config, if any); on failure give the directory back."""
    try:
        if config is not None:
            run.config.update(config)
        run._persist()  # also when the config added nothing (None, {}): run.json must exist
    except BaseException:
        lock.release()
        raise
    return run


def _check_primary(pm: Any) -> dict[str, str] | None:
    if pm is None:
        return None
    if isinstance(pm, str):
        name, _, goal = pm.rpartition(":") if ":" in pm else (pm, "", "max")
    else:
        try:
            name, goal = pm
        except (TypeError, ValueError):
            raise InvalidKeyError(f"primary_metric must be (name, 'min'|'max') or 'name:goal', not {pm!r}") from None
    check_key(name, "primary metric")
    if goal not in _GOALS:
        raise InvalidKeyError(f"primary metric goal must be one of {', '.join(_GOALS)}, not {goal!r}")
    return {"name": name, "goal": _GOALS[goal]}


def _hostname() -> str:
    try:
        return os.uname().nodename
    except AttributeError:  # Windows
        import socket

        return socket.gethostname()


def _install_process_hooks() -> None:
    """Once per process: finish open runs at exit, with the status an uncaught exception implies."""
    global _process_hooks
    if _process_hooks:
        return
    _process_hooks = True
    atexit.register(_finish_at_exit)
    if hasattr(os, "register_at_fork"):
        # A forked child must not finish (at its exit) or re-write its parent's runs.
        os.register_at_fork(after_in_child=_forget_runs_in_child)
    previous = sys.excepthook

    def excepthook(exc_type: Any, exc: Any, tb: Any) -> None:
        global _uncaught
        _uncaught = "interrupted" if issubclass(exc_type, KeyboardInterrupt) else "failed"
        for run in list(registry._open.values()):
            run._set_error(exc)
        previous(exc_type, exc, tb)

    sys.excepthook = excepthook


def _forget_runs_in_child() -> None:
    # The parent writes its runs (and their queued rows); the child's exit must not finish them.
    registry._open.clear()
    registry._active = None


def _finish_at_exit() -> None:
    for run in list(registry._open.values()):
        try:
            run.finish(_uncaught or run._exit_status)
        except Exception as e:  # noqa: BLE001 - exiting; say what happened and go on
            print(f"nbtracker: could not finish run {run.id} at exit: {e}", file=sys.stderr)
