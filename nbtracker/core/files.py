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
    flushes. A failed write (full disk, file size limit) is undone: the file is cut back to its
    length before the write, and only the lines that are not on disk stay queued, so every row
    reaches the disk exactly once. If the file cannot be cut back, the next write starts with a
    newline, so a torn fragment stays on a line of its own (readers skip it) and never merges
    with a later row.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = open_append(path)
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
        """Write queued lines. On error the unwritten lines stay queued and the error propagates."""
        with self._io_lock:
            with self._lock:
                lines, self._lines = self._lines, []
            if lines:
                data = ("\n".join(lines) + "\n").encode("utf-8")
                lead = b"\n" if self._torn else b""
                try:
                    start = os.fstat(self._fd).st_size
                except OSError:
                    start = -1
                try:
                    _write_all(self._fd, lead + data)
                except BaseException as e:
                    self._requeue(lines, start, getattr(e, "written", 0) - len(lead))
                    raise
                self._torn = False
            if fsync:
                os.fsync(self._fd)

    def _requeue(self, lines: list[str], start: int, written: int) -> None:
        """After a failed write of ``lines``: put back exactly what is not on disk."""
        if written <= 0:
            keep = lines          # none of this batch reached the file
            if written < 0 or start < 0:
                self._torn = True   # maybe a part of the leading newline: stay careful
        else:
            try:
                os.ftruncate(self._fd, start)   # undo the partial write; the batch is retried whole
                keep = lines
            except OSError:
                # Keep the lines that reached the disk whole; the torn rest is retried after a newline.
                done, size = 0, 0
                for line in lines:
                    n = len(line.encode("utf-8")) + 1
                    if size + n > written:
                        break
                    size += n
                    done += 1
                keep = lines[done:]
                self._torn = size != written    # a part of the next line is on disk
        with self._lock:
            self._lines[:0] = keep

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def open_append(path: Path) -> int:
    """Open ``path`` for appending, refusing a symlink planted in its place (``O_NOFOLLOW``)."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                   | getattr(os, "O_CLOEXEC", 0), 0o644)


def append_line(path: Path, obj: Any) -> None:
    """Append one JSON line to ``path`` now (``O_APPEND``: a whole line, even with writers in
    other processes); for small, rare records that need no batching."""
    fd = open_append(path)
    try:
        os.write(fd, (dumps(obj) + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> int:
    """Write all of ``data``; on error the exception carries how much was written (``.written``)."""
    view = memoryview(data)
    total = 0
    try:
        while view:
            n = os.write(fd, view)
            total += n
            view = view[n:]
    except BaseException as e:
        try:
            e.written = total  # type: ignore[attr-defined]
        except AttributeError:
            pass
        raise
    return total


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
    rows = _parse_lines(lines)
    return rows if rows is not None else list(_read_lines_slow(path, data, live))


def _parse_lines(lines: list[bytes]) -> list[dict[str, Any]] | None:
    """Every line as a JSON object, or None if one is not. Fast path: chunks of lines parsed as
    JSON arrays (one call per chunk, not per line) with the cyclic GC paused: a million fresh
    dicts otherwise trigger collections that double the cost."""
    rows: list[dict[str, Any]] = []
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        for i in range(0, len(lines), _CHUNK):
            chunk = lines[i:i + _CHUNK]
            parsed = json.loads(b"[" + b",".join(chunk) + b"]")
            if len(parsed) != len(chunk) or not all(type(r) is dict for r in parsed):
                return None
            rows += parsed
        return rows
    except ValueError:
        return None
    finally:
        if gc_was_on:
            gc.enable()


def read_jsonl_tail(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The rows of the complete lines written after byte ``offset``, and the offset to pass
    next time (a reader that follows a growing file reads each byte once).

    An unfinished last line is left for the next call. Lines that do not parse (a torn line a
    killed writer left behind, later followed by new rows) are skipped silently: the caller
    is a poller, and ``read_jsonl`` is what reports damage.
    """
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], 0
    end = data.rfind(b"\n") + 1
    if end == 0:
        return [], offset
    lines = data[:end - 1].split(b"\n")
    rows = _parse_lines(lines)
    if rows is None:        # damage somewhere: the rows of the lines that parse
        rows = []
        for line in lines:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if type(row) is dict:
                rows.append(row)
    return rows, offset + end


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
