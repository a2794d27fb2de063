"""Atomic JSON documents and append-only JSON Lines files that survive a killed process."""

from __future__ import annotations

import gc
import json
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Iterator

from .errors import NbtrackerWarning

_CHUNK = 20_000
_encode = json.JSONEncoder(separators=(",", ":")).encode


def dumps(obj: Any) -> str:
    """Compact JSON. NaN and +-inf are written as ``NaN``/``Infinity``, which pandas, DuckDB
    and Python read back exactly (jq reads them as null and +-1.8e308)."""
    return _encode(obj)


def atomic_write_json(path: Path, obj: Any, *, fsync: bool = False) -> None:
    """Write ``obj`` to ``path`` so a reader sees the old document or the new one, never half."""
    data = json.dumps(obj, indent=1).encode("utf-8")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_json(path: Path) -> Any:
    """Read one JSON document."""
    with open(path, "rb") as f:
        return json.loads(f.read())


class AppendLog:
    """An append-only JSON Lines file written in batches.

    ``append`` only queues an encoded line (no syscall); ``flush`` writes everything queued in
    one ``write``. The queue is a list swapped under a lock, so one thread may log while another
    flushes. After a failed write the next write starts with a newline, so a torn fragment stays
    on a line of its own and never merges with a later row.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._torn = _ends_torn(path)

    def append(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)

    @property
    def pending(self) -> int:
        return len(self._lines)

    def flush(self, fsync: bool = False) -> None:
        """Write queued lines. On error the lines stay queued and the error propagates."""
        with self._io_lock:
            with self._lock:
                lines, self._lines = self._lines, []
            if lines:
                data = ("\n".join(lines) + "\n").encode("utf-8")
                if self._torn:
                    data = b"\n" + data
                try:
                    _write_all(self._fd, data)
                except BaseException:
                    self._torn = True
                    with self._lock:
                        self._lines[:0] = lines
                    raise
                self._torn = False
            if fsync:
                os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _ends_torn(path: Path) -> bool:
    """True if the file is non-empty and its last byte is not a newline (a killed writer)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except OSError:
        return False


def read_jsonl(path: Path, live: bool = False) -> list[dict[str, Any]]:
    """Read every row of a JSON Lines file, skipping (with one warning) lines that do not parse.

    A torn last line is what a killed writer leaves; it is skipped and reported, never fatal.
    With ``live=True`` (the writer is alive) an unfinished last line is a write in flight:
    it is skipped without a warning.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    if not data:
        return []
    lines = data.split(b"\n")
    if not lines[-1]:
        lines.pop()
    # Fast path: parse chunks of lines as JSON arrays (one call per chunk, not per line) with the
    # cyclic GC paused: a million fresh dicts otherwise trigger collections that double the cost.
    rows: list[dict[str, Any]] = []
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        for i in range(0, len(lines), _CHUNK):
            chunk = lines[i:i + _CHUNK]
            parsed = json.loads(b"[" + b",".join(chunk) + b"]")
            if len(parsed) != len(chunk) or not all(type(r) is dict for r in parsed):
                raise ValueError("not one object per line")
            rows += parsed
        return rows
    except ValueError:
        pass
    finally:
        if gc_was_on:
            gc.enable()
    return list(_read_lines_slow(path, data, live))


def _read_lines_slow(path: Path, data: bytes, live: bool) -> Iterator[dict[str, Any]]:
    bad: list[int] = []
    lines = data.split(b"\n")
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            bad.append(lineno)
            continue
        if type(row) is dict:
            yield row
        else:
            bad.append(lineno)
    last = len(lines) - (1 if data.endswith(b"\n") else 0)
    if live and bad and bad[-1] == last and not data.endswith(b"\n"):
        bad.pop()  # the writer is still writing that line
    if bad:
        what = "a torn last line" if bad == [last] else f"{len(bad)} unreadable line(s) ({_span(bad)})"
        warnings.warn(f"{path}: skipped {what}; the writer was probably killed mid-write",
                      NbtrackerWarning, stacklevel=3)


def _span(nums: list[int]) -> str:
    shown = ", ".join(map(str, nums[:5]))
    return f"lines {shown}{', ...' if len(nums) > 5 else ''}"
