"""Starting runs: create or resume a run directory, and finish open runs when the process exits."""

from __future__ import annotations

import atexit
import errno
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Iterable

from . import _version
from . import run as registry
from .core import events, names, ticker
from .core.errors import InvalidKeyError, InvalidValueError, RunActiveError, RunNotFoundError, StorageError
from .core.files import read_jsonl
from .core.paths import LOCK_FILE, METRICS_FILE, check_project, new_run_id, resolve_root
from .core.query import find_run_dir, read_run_doc
from .core.status import WriterLock, beat
from .core.values import check_key
from .mappings import clean_config
from .run import _GOALS, FORMAT_VERSION, Run, _check_tags, check_text

_process_hooks = False
_uncaught: str | None = None  # status for runs still open at exit, set by the excepthook


# -- creating and resuming -----------------------------------------------------------------
def init(project: str | None = None, name: str | None = None, config: Any = None,
         tags: Iterable[str] | None = None, notes: str | None = None, group: str | None = None,
         dir: str | os.PathLike[str] | None = None, resume: str | None = None,
         primary_metric: tuple[str, str] | str | None = None) -> Run:
    """Start a run (or reopen one with ``resume=``) and make it the current run.

    Parameters
    ----------
    project : str, optional
        Folder under the root that groups runs; default ``"default"``.
    name : str, optional
        Display name; generated (e.g. ``brisk-otter-7``) when omitted.
    config : dict or argparse.Namespace, optional
        Hyperparameters, saved at once and on every later change.
    tags, notes, group
        Free-form labels (a list of strings, a string, a string).
    dir : path, optional
        Run root; default: ``$NBTRACKER_DIR``, ``[tool.nbtracker] dir`` in the nearest
        ``pyproject.toml``, the nearest existing ``nbtracker-runs/`` folder, else
        ``./nbtracker-runs`` (``nbtracker root`` prints which).
    resume : str, optional
        The run to continue: its id, a unique id prefix, its unique name or its directory
        (the same forms ``load()`` takes). Steps go on after the last recorded one.
    primary_metric : (name, goal) or "name:goal", optional
        The metric that ranks runs, with goal ``"min"`` or ``"max"``.

    A run already active in this process is finished first, with a one-line notice. An
    ``init`` that raises changes nothing: the active run stays active, no directory is left.
    """
    # Everything is validated before anything is touched.
    root = resolve_root(dir)
    pm = _check_primary(primary_metric)
    tags_list = _check_tags(tags) if tags is not None else None
    name = check_text(name, "name")
    notes = check_text(notes, "notes")
    group = check_text(group, "group")
    clean = clean_config(config) if config is not None else None
    if project is not None or resume is None:
        project = check_project(project)
    target: Path | None = None
    if resume is not None:
        if not isinstance(resume, (str, os.PathLike)):
            raise InvalidValueError(f"resume= takes a run id, id prefix, name or directory, not {type(resume).__name__}")
        try:
            target = find_run_dir(resume, root, project)
        except RunNotFoundError as e:
            raise RunNotFoundError(f"cannot resume: {e} (resume= takes a run id, a unique id prefix, "
                                   "a unique name or a run directory)") from None
    prev = registry._active
    if target is not None:   # resuming a run this process has open: close it first
        for other in list(registry._open.values()):
            if other.dir.resolve() == target.resolve():
                other.finish()
    if target is not None:
        run = _reopen(target, name, clean, tags_list, notes, group, pm)
    else:
        run = _create(root, project, name, clean, tags_list or [], notes, group, pm)
    if prev is not None and registry._active is prev and not prev._finished:
        print(f"nbtracker: finished run {prev.name!r} ({prev.id}) because a new run started",
              file=sys.stderr)
        try:
            prev.finish()
        except StorageError as e:  # keep it open (retried at exit); the new run works
            print(f"nbtracker: {e}", file=sys.stderr)
    _install_process_hooks()
    registry._open[id(run)] = run
    registry._active = run
    ticker.add(id(run), run._tick)
    if events.has("init"):
        events.emit("init", run)
    return run


def _create(root: Path, project: str, name: str | None, config: dict[str, Any] | None, tags: list[str],
            notes: str | None, group: str | None, pm: dict[str, str] | None) -> Run:
    pdir = root / project
    run_dir: Path | None = None
    lock: WriterLock | None = None
    try:
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
            "name": name,
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
            "argv": _text_list(sys.argv),
            "nbtracker_version": _version.__version__,
        }
        replay_of = os.environ.get("NBTRACKER_REPLAY_OF")
        if replay_of:        # set by nbtracker.replay for the kernel that re-runs a run's code
            doc["replay_of"] = replay_of
        return _first_write(Run(run_dir, doc, lock), config)
    except BaseException:
        # A failed init leaves nothing behind: not a half-made directory, not a held lock.
        if lock is not None:
            lock.release()
        if run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _reopen(run_dir: Path, name: str | None, config: dict[str, Any] | None,
            tags: list[str] | None, notes: str | None, group: str | None,
            pm: dict[str, str] | None) -> Run:
    try:
        lock = WriterLock(run_dir)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES) and (run_dir / LOCK_FILE).is_file() \
                and not (run_dir / LOCK_FILE).is_symlink() and e.filename is None:
            raise RunActiveError(f"run {run_dir.name} is open in another process; finish it there "
                                 "(or wait for that process to end) before resuming") from None
        raise StorageError(f"cannot take the writer lock of {run_dir}: {e.strerror or e}"
                           + (" (.lock is a symlink: refused)" if (run_dir / LOCK_FILE).is_symlink() else "")) from e
    try:
        doc = read_run_doc(run_dir)
        _clean_temp_files(run_dir)
        doc.update(status="running", end_time=None, error=None, pid=os.getpid(),
                   host=_hostname())
        doc["resumes"] = [*doc.get("resumes", []), time.time()]
        for key, value in (("name", name), ("tags", tags), ("notes", notes), ("group", group),
                           ("primary_metric", pm)):
            if value is not None:
                doc[key] = value
        try:
            beat(run_dir)
        except OSError as e:
            raise StorageError(f"cannot write the heartbeat of {run_dir}: {e}") from e
        run = Run(run_dir, doc, lock, read_jsonl(run_dir / METRICS_FILE))
        return _first_write(run, config)
    except BaseException:
        lock.release()
        raise


def _clean_temp_files(run_dir: Path) -> None:
    """Temp files of writers killed mid-write (``.run.json.<pid>.<tid>.tmp``): we hold the lock,
    so nobody else is writing them."""
    for folder in (run_dir, run_dir / "code"):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            if e.name.startswith(".") and e.name.endswith(".tmp") and e.is_file(follow_symlinks=False):
                try:
                    os.unlink(e.path)
                except OSError:
                    pass


def _text_list(items: list[str]) -> list[str]:
    """Command-line words as valid text (argv may hold undecodable bytes as surrogates)."""
    return [a.encode("utf-8", "backslashreplace").decode("utf-8") for a in items]


def _first_write(run: Run, config: dict[str, Any] | None) -> Run:
    """Write run.json once, with the (already validated) config; the caller cleans up on failure."""
    if config:
        run.config._data.update(config)
    run._persist()  # also when the config added nothing (None, {}): run.json must exist
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
