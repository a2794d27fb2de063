"""The run's text log (``text.jsonl``): ``run.log_text`` and a ``logging.Handler`` writing to it."""

from __future__ import annotations

import logging
import time
from typing import Any

from ..core import events
from ..core.errors import InvalidKeyError, InvalidValueError
from ..core.files import AppendLog, dumps
from ..core.values import valid_text

TEXT_FILE = "text.jsonl"
LEVELS = ("debug", "info", "warning", "error", "critical")
MAX_TEXT = 100_000


def text_log(run: Any) -> AppendLog:
    log = run._parts.get("text")
    if log is None:
        log = run._parts["text"] = AppendLog(run.dir / TEXT_FILE)
        run._tickers.append(log.flush)
        run._closers.insert(0, lambda: (log.flush(fsync=True), log.close()))   # runs last
    return log


def log_text(run: Any, text: Any, step: int | None = None, level: str = "info",
             logger: str | None = None) -> None:
    """See :meth:`nbtracker.Run.log_text`."""
    run._check_open()
    if not isinstance(text, str):
        raise InvalidValueError(f"log_text() takes a string, not {type(text).__name__}")
    if level not in LEVELS:
        raise InvalidKeyError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    if not valid_text(text):
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + f"... [{len(text) - MAX_TEXT} characters cut]"
    if step is None:
        step = run.step - 1 if run._rows else None
    else:
        from ..run import _check_step

        step = _check_step(step)
    rec: dict[str, Any] = {"time": time.time(), "step": step, "level": level, "text": text}
    if logger is not None:
        rec["logger"] = logger
    cell = run._context.get("_cell")
    if cell is not None:
        rec["cell"] = cell
    text_log(run).append(dumps(rec))
    if events.has("text"):
        events.emit("text", run, rec)


class RunLogHandler(logging.Handler):
    """A ``logging.Handler`` writing each record to a run's text log (level, logger name, the
    formatted message). Removed from every logger and closed when the run finishes."""

    def __init__(self, run: Any, level: int | str = logging.INFO) -> None:
        super().__init__(level)
        self.run = run
        self._inside = False

    def emit(self, record: logging.LogRecord) -> None:
        if self._inside or self.run._finished:
            return
        self._inside = True   # a log call made while writing (e.g. by a warning) is dropped
        try:
            level = record.levelname.lower()
            log_text(self.run, self.format(record), level=level if level in LEVELS else "info",
                     logger=record.name)
        except Exception:  # noqa: BLE001 - logging's own convention
            self.handleError(record)
        finally:
            self._inside = False


def get_logging_handler(run: Any, level: int | str = logging.INFO) -> RunLogHandler:
    """See :meth:`nbtracker.Run.get_logging_handler`."""
    run._check_open()
    handler = RunLogHandler(run, level)
    handlers = run._parts.setdefault("log_handlers", [])
    if not handlers:
        run._closers.append(lambda: _detach_all(handlers))
    handlers.append(handler)
    return handler


def _detach_all(handlers: list[RunLogHandler]) -> None:
    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    for handler in handlers:
        for lg in loggers:
            if handler in lg.handlers:
                lg.removeHandler(handler)
        handler.close()
    handlers.clear()
