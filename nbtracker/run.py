"""The ``Run``: init, log, config, summary, primary metric, finish; the same in scripts and kernels."""

from __future__ import annotations

import math
import operator
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Iterable

from .core import events, reprs, ticker
from .core.errors import (
    InvalidKeyError,
    NbtrackerWarning,
    InvalidValueError,
    NbtrackerError,
    RunActiveError,
    StorageError,
)
from .core.files import AppendLog, atomic_write_json, dumps, read_jsonl
from .core.paths import (
    METRICS_FILE,
    RUN_FILE,
)
from .core.status import HEARTBEAT_EVERY, WriterLock, beat
from .core.values import INT_LIMIT, check_chart_options, check_key, coerce_value, flatten_into, valid_text
from .assets.methods import RunAssets
from .mappings import Config, Summary

FORMAT_VERSION = 1
_GOALS = {"min": "min", "minimize": "min", "max": "max", "maximize": "max"}
_END_STATUSES = ("finished", "failed", "interrupted", "crashed")

_active: Run | None = None
_open: dict[int, Run] = {}


class Run(RunAssets):
    """One tracked run. Create it with :func:`nbtracker.init`, not directly.

    Attributes
    ----------
    id, name, project, group, notes : str
    tags : list of str
    dir : pathlib.Path
        The run directory (``<root>/<project>/<id>``).
    step : int
        The step the next auto-stepped row will get.
    start_time : float
        Wall-clock seconds.
    status : str
        ``running``, then ``finished``, ``failed``, ``interrupted`` or ``crashed``.
    resumed : bool
        True when this run was reopened with ``resume=``.
    config : Config
    summary : Summary
    """

    def __init__(self, run_dir: Path, doc: dict[str, Any], lock: WriterLock,
                 history: list[dict[str, Any]] | None = None) -> None:
        self._dir = run_dir
        self._doc = doc
        self._writer_lock = lock
        self._doc_lock = threading.RLock()
        self._ok_keys: set[str] = set()
        self._pending: dict[str, Any] | None = None
        self._pending_step: int | None = None
        self._pending_media = False
        #: Jobs of the asset and capture modules: called by the ticker (about twice a second)
        #: and at finish, before the final write; each is guarded.
        self._tickers: list[Callable[[], None]] = []
        self._closers: list[Callable[[], None]] = []
        self._parts: dict[str, Any] = {}   # per-run state of those modules, by module name
        #: Extra fields merged into every row (the Jupyter session sets ``_cell``), and the
        #: [first step, last step, rows] of the rows logged while it is set.
        self._context: dict[str, Any] = {}
        self._cell_span: list[int] | None = None
        self._dirty = False
        self._finished = False
        self._last_beat = 0.0
        #: Status given to the run if the process exits while it is open (the Jupyter session
        #: may change it); an uncaught exception overrides it.
        self._exit_status = "finished"
        self.config = Config(doc.pop("config", None), self._persist)
        self.summary = Summary(self._persist)
        manual_keys = set(doc.pop("summary_manual", ()))
        saved = doc.pop("summary", None) or {}
        self.summary.manual = {k: v for k, v in saved.items() if k in manual_keys}
        pm = doc.get("primary_metric")
        self._pname: str | None = pm["name"] if pm else None
        self._pmax = bool(pm and pm["goal"] == "max")
        self._best: float | None = None
        self._rows = 0
        self._step = 0
        if history:
            self._replay(history)
        self._log = AppendLog(run_dir / METRICS_FILE)

    # -- identity ---------------------------------------------------------------------------
    id = property(lambda self: self._doc["id"], doc="Unique id, also the directory name.")
    name = property(lambda self: self._doc["name"])
    project = property(lambda self: self._doc["project"])
    group = property(lambda self: self._doc.get("group"))
    start_time = property(lambda self: self._doc["start_time"])
    status = property(lambda self: self._doc["status"])
    resumed = property(lambda self: bool(self._doc.get("resumes")))
    dir = property(lambda self: self._dir, doc="The run directory.")
    step = property(lambda self: self._step, doc="Step of the next auto-stepped row.")

    @property
    def tags(self) -> list[str]:
        return list(self._doc.get("tags") or [])

    @tags.setter
    def tags(self, value: Iterable[str]) -> None:
        self._doc["tags"] = _check_tags(value)
        self._persist()

    @property
    def notes(self) -> str | None:
        return self._doc.get("notes")

    @notes.setter
    def notes(self, value: str | None) -> None:
        self._doc["notes"] = check_text(value, "notes")
        self._persist()

    @property
    def primary_metric(self) -> tuple[str, str] | None:
        """``(name, "min" | "max")`` or None."""
        return (self._pname, "max" if self._pmax else "min") if self._pname else None

    # -- logging ----------------------------------------------------------------------------
    def log(self, data: Mapping[str, Any], step: int | None = None, commit: bool = True) -> None:
        """Record one row of metrics.

        Parameters
        ----------
        data : mapping
            Metric name to value: int, float, bool, numpy/torch scalars (numbers), str (text);
            ``None`` skips the key. Nested dicts flatten to ``"outer/inner"`` keys.
        step : int, optional
            This row's step. Default: one more than the highest step seen so far.
        commit : bool
            False merges ``data`` into the next committed row instead of writing a row now.

        Raises
        ------
        TypeError
            ``data`` is not a mapping or a value cannot be logged (the key is named).
        ValueError
            A key is empty, not a string, or starts with ``_`` (reserved).

        A call that raises records nothing.
        """
        if self._finished:
            raise RunActiveError(f"run {self.name!r} ({self.id}) is finished; start a new run "
                                 f"or reopen it with nbtracker.init(resume={self.id!r})")
        values, media = self._values(data)
        if step is not None:
            step = _check_step(step)
        if not commit:
            self._pending = {**self._pending, **values} if self._pending else values
            self._pending_media = self._pending_media or media
            if step is not None:
                self._pending_step = step
            return
        if self._pending is not None:
            values = {**self._pending, **values}
            media = media or self._pending_media
            if step is None:
                step = self._pending_step
            self._pending = self._pending_step = None
            self._pending_media = False
        self._commit(values, step, media)

    def _values(self, data: Any) -> tuple[dict[str, Any], bool]:
        """Checked values of a ``log`` call, and whether any is a media object (Image, ...)."""
        if type(data) is not dict and not isinstance(data, Mapping):
            raise InvalidValueError(f"log() takes a dict of metric name to value, not {type(data).__name__}")
        values: dict[str, Any] = {}
        media = False
        ok = self._ok_keys
        for k, v in data.items():
            t = type(v)
            if k in ok and (t is float or (t is int and -INT_LIMIT <= v <= INT_LIMIT)):
                values[k] = v
            elif getattr(t, "_nbtracker_media", False) or (t in (list, tuple) and _is_gallery(v)):
                values[check_key(k)] = v
                media = True
            elif isinstance(v, Mapping):
                flatten_into(values, v, check_key(k) + "/")
            else:
                v = coerce_value(check_key(k), v)
                ok.add(k)
                if v is not None:
                    values[k] = v
        return values, media

    def _commit(self, values: dict[str, Any], step: int | None, media: bool = False) -> None:
        if step is None:
            step = self._step
            if step > INT_LIMIT:
                raise InvalidKeyError(f"the next step would be {step}, beyond 2**63-1 (what pandas and "
                                      "DuckDB read); pass step= explicitly with a smaller value")
            self._step = step + 1
        elif step >= self._step:
            self._step = step + 1
        row = {"_step": step, "_time": time.time()}
        if self._context:  # inside a notebook cell: tag the row, widen the cell's step span
            row.update(self._context)
            span = self._cell_span
            if span is None:
                self._cell_span = [step, step, 1]
            else:
                span[0] = min(span[0], step)
                span[1] = max(span[1], step)
                span[2] += 1
        if media:   # files are written (in the background), the row holds references
            from .media import store_media

            values, plain = store_media(self, values, step)
        else:
            plain = values
        row.update(values)
        self._log.append(dumps(row))
        self._rows += 1
        self.summary.auto.update(plain)
        if self._pname is not None and self._pname in values:
            self._see_best(values[self._pname], step)
        self._dirty = True
        if events.has("log"):
            events.emit("log", self, row)

    def _see_best(self, v: Any, step: int) -> None:
        if type(v) not in (int, float) or v != v or v in (math.inf, -math.inf):
            return
        best = self._best
        if best is None or (v > best if self._pmax else v < best):
            self._best = v
            self.summary.auto["best/" + self._pname] = v  # type: ignore[operator]
            self.summary.auto["best_step/" + self._pname] = step  # type: ignore[operator]

    def _replay(self, rows: list[dict[str, Any]]) -> None:
        """Rebuild counters, last values and the best value from recorded rows (resume)."""
        auto = self.summary.auto
        for row in rows:
            step = row.get("_step")
            values = {k: v for k, v in row.items() if not k.startswith("_")}
            auto.update(values)
            if isinstance(step, int):
                self._step = max(self._step, step + 1)
                if self._pname is not None and self._pname in values:
                    self._see_best(values[self._pname], step)
        self._rows = len(rows)

    def set_primary_metric(self, name: str, goal: str = "max") -> None:
        """Declare the metric that ranks runs and whose best value the summary keeps.

        ``goal`` is ``"min"``/``"minimize"`` or ``"max"``/``"maximize"``. Rows already
        logged are taken into account.
        """
        check_key(name, "primary metric")
        if goal not in _GOALS:
            raise InvalidKeyError(f"goal must be one of {', '.join(_GOALS)}, not {goal!r}")
        self._doc["primary_metric"] = {"name": name, "goal": _GOALS[goal]}
        for k in [k for k in self.summary.auto if k.startswith(("best/", "best_step/"))]:
            del self.summary.auto[k]
        self._pname, self._pmax, self._best = name, _GOALS[goal] == "max", None
        if self._rows:
            self.flush()
            for row in read_jsonl(self._dir / METRICS_FILE):
                if name in row and isinstance(row.get("_step"), int):
                    self._see_best(row[name], row["_step"])
        self._persist()

    # -- persistence ------------------------------------------------------------------------
    def _document(self) -> dict[str, Any]:
        return {
            **self._doc,
            "rows": self._rows,
            "updated_time": time.time(),
            "config": self.config.as_dict(),
            "summary": self.summary.as_dict(),
            "summary_manual": sorted(self.summary.manual),
        }

    def _persist(self, fsync: bool = False) -> None:
        with self._doc_lock:
            self._dirty = False
            try:
                atomic_write_json(self._dir / RUN_FILE, self._document(), fsync=fsync)
            except OSError as e:
                self._dirty = True
                raise StorageError(f"could not write {self._dir / RUN_FILE}: {e}") from e

    def flush(self, summary: bool = True) -> None:
        """Write queued rows and, unless ``summary=False``, run.json now.

        Both are also written about twice a second by a background thread.
        """
        try:
            self._log.flush()
        except OSError as e:
            raise StorageError(f"could not append to {self._log.path}: {e}; the "
                               f"{self._log.pending} rows stay in memory and are retried") from e
        if self._dirty and summary:
            self._persist()
        if events.has("flush"):
            events.emit("flush", self)

    def _tick(self) -> None:
        if self._finished:
            return
        for job in list(self._tickers):
            _guarded(job, "a background job")
        if self._log.pending or self._dirty:
            self.flush()
        now = time.monotonic()
        if now - self._last_beat >= HEARTBEAT_EVERY:
            self._last_beat = now
            beat(self._dir)

    def finish(self, status: str = "finished") -> None:
        """Write everything durably and close the run. Calling it again does nothing.

        ``status`` is ``"finished"`` (default), ``"failed"``, ``"interrupted"`` or ``"crashed"``.
        If the disk refuses the write, ``StorageError`` is raised, nothing is dropped,
        and ``finish()`` may be called again.
        """
        global _active
        if self._finished:
            return
        if status not in _END_STATUSES:
            raise InvalidKeyError(f"status must be one of {', '.join(_END_STATUSES)}, not {status!r}")
        if self._pending is not None:
            values, step, media = self._pending, self._pending_step, self._pending_media
            self._pending = self._pending_step = None
            self._pending_media = False
            self._commit(values, step, media)
        ticker.remove(id(self))
        while self._closers:   # console, logging, live files, system metrics: last copies, stop
            _guarded(self._closers.pop(), "finishing")
        try:
            self._log.flush(fsync=True)
            self._doc.update(status=status, end_time=time.time())
            self._persist(fsync=True)
        except OSError as e:
            self._doc["status"] = "running"
            ticker.add(id(self), self._tick)
            raise StorageError(f"could not finish run {self.id} in {self._dir}: {e}; nothing was "
                               "dropped, call finish() again once the disk is writable") from e
        self._finished = True
        self._log.close()
        self._writer_lock.release()
        _open.pop(id(self), None)
        if _active is self:
            _active = None
        if events.has("finish"):
            events.emit("finish", self)

    def display(self, **options: Any) -> None:
        """Show this run's chart here.

        In a notebook: the live chart (updated in place while rows arrive, static PNG + HTML at
        rest, so a saved notebook shows it anywhere); one output per cell. Options, as in
        :func:`nbtracker.compare`: ``metrics=[...]`` (which panels), ``x="step"|"time"|<metric>``,
        ``log_y=True``, ``smoothing=0.9``. In a terminal IPython or a script: a compact text
        view (last values, best, sparklines).
        """
        options = check_chart_options(options) if options else {}   # bad options raise here
        if events.has("display"):
            events.emit("display", self, options)
        else:  # no display layer at all (the run was made without nbtracker.init)
            print(repr(self))

    def _ipython_display_(self) -> None:
        self.display()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any] | None:
        return reprs.bundle(self, include, exclude)

    def _set_error(self, exc: BaseException) -> None:
        self._doc["error"] = {"type": type(exc).__name__, "message": str(exc)[:2000]}

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.finish()
        else:
            self._set_error(exc)
            self.finish("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")

    def __repr__(self) -> str:
        return (f"<Run {self.name!r} ({self.id}) project={self.project!r} {self.status}, "
                f"{self._rows} rows, dir={str(self._dir)!r}>")


# -- module-level shortcuts --------------------------------------------------------------------
def current_run() -> Run | None:
    """The active run of this process, or None."""
    return _active


def log(data: Mapping[str, Any], step: int | None = None, commit: bool = True) -> None:
    """``current_run().log(...)``; raises ``NbtrackerError`` when no run is active."""
    if _active is None:
        raise NbtrackerError("no active run: call nbtracker.init() first")
    _active.log(data, step=step, commit=commit)


def finish(status: str = "finished") -> None:
    """Finish the active run, if any."""
    if _active is not None:
        _active.finish(status)


# -- checks and process hooks ------------------------------------------------------------------
def _is_gallery(items: Any) -> bool:
    return bool(items) and all(getattr(type(i), "_nbtracker_media", False) for i in items)


_reported: set[str] = set()


def _guarded(job: Callable[[], None], what: str) -> None:
    """Run one asset/capture job; a failure is reported once per kind, never raised."""
    try:
        job()
    except Exception as e:  # noqa: BLE001 - a tracker job must not break the user's loop
        kind = f"{what}: {type(e).__name__}"
        if kind not in _reported:
            _reported.add(kind)
            import warnings

            warnings.warn(f"nbtracker: {what} failed ({type(e).__name__}: {e}); the run goes on",
                          NbtrackerWarning, stacklevel=2)


def _check_step(step: Any) -> int:
    if isinstance(step, bool):
        raise InvalidValueError("step must be an integer, not a bool")
    try:
        step = operator.index(step)
    except TypeError:
        raise InvalidValueError(f"step must be an integer, not {type(step).__name__}") from None
    if step < 0 or step > INT_LIMIT:  # beyond 2**63-1 pandas cannot read the file
        raise InvalidKeyError(f"step must be between 0 and 2**63-1, got {step}")
    return step


def check_text(value: Any, what: str) -> str | None:
    """``value`` if it is None or valid text (notes, group, name), else ``InvalidValueError``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidValueError(f"{what} must be a string or None, not {type(value).__name__}")
    if not valid_text(value):
        raise InvalidValueError(f"{what} {value!r} is not valid Unicode text (a lone surrogate); "
                                "decode it properly first")
    return value


def _check_tags(tags: Iterable[str]) -> list[str]:
    if isinstance(tags, str):
        tags = [tags]
    try:
        tags = list(tags)
    except TypeError:
        raise InvalidValueError(f"tags must be a list of strings, not {type(tags).__name__}") from None
    out = []
    for t in tags:
        if not isinstance(t, str) or not t:
            raise InvalidKeyError(f"tags must be non-empty strings, got {t!r}")
        check_text(t, "tag")
        if t not in out:
            out.append(t)
    return out
