"""``nbtracker.stream``: follow a run's rows as another process logs them (tailing, not re-reading)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .paths import METRICS_FILE
from .query import find_run_dir, read_run_doc
from .status import effective_status


def stream(run: Any, keys: Iterable[str] | str | None = None, dir: Any = None,
           poll: float = 0.05, max_poll: float = 1.0, timeout: float | None = None) -> Iterator[dict[str, Any]]:
    """Yield the run's rows from the first, then each new one as it is written; stop when the
    run has ended (finished, failed, interrupted, or its writer died) and every row is read.

    Parameters
    ----------
    run : Run, RunView, id, id prefix, name or run directory
    keys : str or list of str, optional
        Only rows holding one of these keys, trimmed to them (plus ``_step`` and ``_time``).
    poll, max_poll : float
        Seconds between looks for new rows: ``poll`` after a row arrived, growing to
        ``max_poll`` while nothing does.
    timeout : float, optional
        Stop after this many seconds without a new row even if the run is still running.

    Only the bytes appended since the last look are read (the file is never re-read); an
    unfinished last line waits for its newline.
    """
    run_dir = Path(run.dir) if hasattr(run, "dir") else find_run_dir(run, dir)
    wanted = None if keys is None else ([keys] if isinstance(keys, str) else list(keys))
    path = run_dir / METRICS_FILE
    offset = 0
    partial = b""
    wait = poll
    quiet_since = time.monotonic()
    while True:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            data = b""
        if data:
            offset += len(data)
            data = partial + data
            lines = data.split(b"\n")
            partial = lines.pop()
            for line in lines:
                row = _parse(line)
                if row is None:
                    continue
                if wanted is not None:
                    picked = {k: row[k] for k in wanted if k in row}
                    if not picked:
                        continue
                    row = {"_step": row.get("_step"), "_time": row.get("_time"), **picked}
                yield row
            wait = poll
            quiet_since = time.monotonic()
            continue
        if _ended(run_dir):
            # The writer writes its last rows before its final run.json: one more look.
            try:
                if os.path.getsize(path) > offset:
                    continue
            except OSError:
                pass
            return
        if timeout is not None and time.monotonic() - quiet_since > timeout:
            return
        time.sleep(wait)
        wait = min(max_poll, wait * 1.5)


def _parse(line: bytes) -> dict[str, Any] | None:
    if not line.strip():
        return None
    try:
        row = json.loads(line)
    except ValueError:
        return None   # a torn line a killed writer left (readers skip it too)
    return row if isinstance(row, dict) else None


def _ended(run_dir: Path) -> bool:
    try:
        doc = read_run_doc(run_dir, warn=False)
    except Exception:  # noqa: BLE001 - being replaced right now: look again later
        return False
    return effective_status(run_dir, doc.get("status")) != "running"



