"""Cell provenance: IPython hooks that record every cell executed while a run is active.

Every callback is guarded: an internal failure is reported once (one line, with where the
traceback went) and the user's cell runs on. Rows logged in a cell carry ``_cell`` (its
execution count) and reach the disk when the cell ends.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import run as run_module
from . import session
from .core import events, ticker
from .core.files import AppendLog, dumps

if TYPE_CHECKING:
    from .run import Run

CELLS_FILE = "cells.jsonl"


class RunCells:
    """What the session keeps per run: its cells.jsonl and its code capture."""

    def __init__(self, run: Run, shell: Any, report: Callable[[str, BaseException], None]) -> None:
        self.run = run
        self.log = AppendLog(run.dir / CELLS_FILE)
        self.capture: Any = None
        self.code_dirty = True
        try:
            from .capture import CodeCapture

            self.capture = CodeCapture(run.dir, shell)
        except Exception as e:  # noqa: BLE001 - capture is optional; provenance still works
            report("code capture", e)

    def close(self) -> None:
        self.log.close()


class CellSession:
    """The per-shell recorder behind ``%load_ext nbtracker``."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        #: Every cell executed since the extension loaded (what code capture needs).
        self.executions: list[dict[str, Any]] = []
        self.runs: dict[int, RunCells] = {}
        self.tracked: dict[str, Any] = {}   # %track: name -> last logged value
        self._cell: dict[str, Any] | None = None
        self._reported: set[str] = set()
        self._failures: dict[str, int] = {}
        self._error_log: Path | None = None
        self._listeners = {"init": self._on_init, "finish": self._on_finish}
        self._ticker_key = id(self)
        # IPython 9 increments execution_count before pre_run_cell, IPython 8 after the cell.
        # Guess from the version, then learn it from every post_run_cell's result.
        import IPython

        self._count_offset = 1 if IPython.version_info[0] >= 9 else 0

    # -- wiring -----------------------------------------------------------------------------
    def register(self) -> None:
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        self.shell.events.register("post_run_cell", self.post_run_cell)
        for name, fn in self._listeners.items():
            events.on(name, fn)
        ticker.add(self._ticker_key, self._write_code)
        run = run_module.current_run()
        if run is not None:  # a run started before %load_ext
            self._on_init(run)

    def unregister(self) -> None:
        for name, fn in (("pre_run_cell", self.pre_run_cell), ("post_run_cell", self.post_run_cell)):
            try:
                self.shell.events.unregister(name, fn)
            except ValueError:
                pass
        for name, fn in self._listeners.items():
            events.off(name, fn)
        ticker.remove(self._ticker_key)
        for state in self.runs.values():
            state.run._context.pop("_cell", None)
            try:  # the code so far stays with the run; later cells are no longer captured
                if state.code_dirty:
                    self._capture(state)
            except Exception as e:  # noqa: BLE001
                self.report("code capture at unload", e)
            state.close()
        self.runs.clear()

    def report(self, where: str, exc: BaseException) -> None:
        """Say once per place that something inside nbtracker failed; the cell is not affected."""
        count = self._failures[where] = self._failures.get(where, 0) + 1
        try:
            if self._error_log is None:  # a fresh private file (mkstemp), not a guessable name in /tmp
                fd, name = tempfile.mkstemp(prefix="nbtracker-errors-", suffix=".log")
                os.close(fd)
                self._error_log = Path(name)
            if count <= 20:  # a hook failing on every cell must not fill the disk
                with open(self._error_log, "a", encoding="utf-8") as f:
                    f.write(f"--- {time.ctime()} {where} (failure {count})\n")
                    f.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        except OSError:
            pass
        if where not in self._reported:
            self._reported.add(where)
            reason = " ".join(str(exc).split())[:300]   # one line, whatever the message holds
            print(f"nbtracker: {where} failed ({type(exc).__name__}: {reason}); your cell ran normally. "
                  f"Details: {self._error_log} (reported once)", file=sys.stderr)

    # -- hooks ------------------------------------------------------------------------------
    def pre_run_cell(self, info: Any) -> None:
        try:
            raw_count = self.shell.execution_count
            store = getattr(info, "store_history", True)
            self._cell = {
                "execution_count": raw_count - self._count_offset if store else raw_count,
                "raw_count": raw_count,
                "store_history": store,
                "cell_id": getattr(info, "cell_id", None),
                "source": info.raw_cell,
                "start": time.time(),
                "t0": time.perf_counter(),
                "runs": [],
            }
            run = run_module.current_run()
            if run is not None:
                self._enter(run, info)
        except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - a stop click landing here too
            self.report("pre_run_cell", e)

    def _enter(self, run: Run, info: Any = None) -> None:
        cell = self._cell
        if cell is None or run in cell["runs"]:
            return
        cell["runs"].append(run)
        run._context["_cell"] = cell["execution_count"]
        run._cell_span = None
        if id(run) not in self.runs:
            self.runs[id(run)] = RunCells(run, self.shell, self.report)
        if events.has("cell_start"):
            events.emit("cell_start", run, info)

    def post_run_cell(self, result: Any) -> None:
        try:
            self._post(result)
        except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - a stop click landing here too
            self.report("post_run_cell", e)

    def _post(self, result: Any) -> None:
        cell, self._cell = self._cell, None
        if cell is None:
            return
        err = result.error_in_exec or result.error_before_exec
        status = "ok" if err is None else ("interrupted" if isinstance(err, KeyboardInterrupt) else "error")
        count = result.execution_count if result.execution_count is not None else cell["execution_count"]
        if cell["store_history"] and result.execution_count is not None:
            self._count_offset = cell["raw_count"] - result.execution_count
        self.executions.append({"execution_count": count, "cell_id": cell["cell_id"],
                                "source": cell["source"], "status": status})
        if self.tracked:
            try:
                self._log_tracked()
            except Exception as e:  # noqa: BLE001 - the cell record below must still be written
                self.report("%track", e)
        record = {
            "execution_count": count,
            "cell_id": cell["cell_id"],
            "source": cell["source"],
            "start": cell["start"],
            "duration": time.perf_counter() - cell["t0"],
            "status": status,
            "error": None if err is None else {"type": type(err).__name__, "message": str(err)[:2000]},
            "steps": None,
            "rows": 0,
        }
        recorded: set[str] = set()
        for run in cell["runs"]:  # a run finished and resumed in one cell: one record for it
            try:  # one run's failed write must not cost the other runs their records
                self._leave(run, record, write=run.id not in recorded)
            except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
                self.report("post_run_cell", e)
            recorded.add(run.id)
            if run._finished:
                self._close(run)

    def _leave(self, run: Run, record: dict[str, Any], write: bool = True) -> None:
        span, run._cell_span = run._cell_span, None
        run._context.pop("_cell", None)
        rec = dict(record, steps=span[:2] if span else None, rows=span[2] if span else 0)
        state = self.runs.get(id(run))
        try:
            if state is not None and write:
                state.log.append(dumps(rec))
                state.log.flush()
                state.code_dirty = True
                if state.capture is not None:
                    state.capture.mark(rec["execution_count"])
            if not run._finished:
                run.flush(summary=False)  # rows now; run.json follows within half a second
        finally:
            if events.has("cell_end"):
                events.emit("cell_end", run, rec)

    # -- run lifecycle ------------------------------------------------------------------------
    def _on_init(self, run: Run) -> None:
        try:
            session.mark_kernel_run(run, self.shell)   # open at kernel exit: "crashed"
            if self._cell is not None:
                self._enter(run)
            elif id(run) not in self.runs:
                self.runs[id(run)] = RunCells(run, self.shell, self.report)
        except Exception as e:  # noqa: BLE001
            self.report("run start", e)

    def _on_finish(self, run: Run) -> None:
        # A run finished inside a cell is wrapped up at post_run_cell, after its cell record.
        if self._cell is None or run not in self._cell["runs"]:
            self._close(run)

    def _close(self, run: Run) -> None:
        state = self.runs.pop(id(run), None)
        if state is None:
            return
        try:
            self._capture(state)
        except Exception as e:  # noqa: BLE001
            self.report("code capture at finish", e)
        finally:
            state.close()

    def _capture(self, state: RunCells) -> None:
        if state.capture is not None:
            state.code_dirty = False
            state.capture.update(list(self.executions))

    def _write_code(self) -> None:
        """Ticker job: refresh code captures marked dirty, off the cells' critical path."""
        for state in list(self.runs.values()):
            if state.code_dirty and state.capture is not None:
                try:
                    self._capture(state)
                except Exception as e:  # noqa: BLE001
                    self.report("code capture", e)

    # -- %track ---------------------------------------------------------------------------------
    def _log_tracked(self) -> None:
        run = run_module.current_run()
        if run is None:
            return
        from .core.values import coerce_value

        row = {}
        ns = self.shell.user_ns
        for name, last in self.tracked.items():
            if name not in ns:
                continue
            try:
                value = coerce_value(name, ns[name])
            except TypeError:
                continue
            if isinstance(value, (int, float)) and not _same(value, last):
                row[name] = value
        if row:
            self.tracked.update(row)
            run.log(row)


def _same(a: Any, b: Any) -> bool:
    return a == b or (a != a and b != b)
