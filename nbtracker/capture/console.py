"""Console capture: what a run prints (stdout, stderr) copied to ``console.jsonl`` while still shown.

- In a script or terminal IPython the file descriptors 1 and 2 are redirected through pipes, so
  output of C extensions and subprocesses is captured too; a reader thread passes every byte on
  to the original descriptor at once and keeps a copy.
- In a Jupyter kernel, ``sys.stdout``/``sys.stderr`` (ipykernel's streams) are wrapped, so each
  line is tagged with the cell that printed it (output written below Python by C code reaches
  the notebook through ipykernel, but is not captured).

The copy is turned into lines about twice a second, in bulk: a line's carriage-return updates
(progress bars) collapse to the final state. One record per stream, cell and batch:
``{"time", "stream", "cell", "lines": [...]}``. One capture per process: a second run with
``capture_console=True`` takes it over, it never captures twice.
"""

from __future__ import annotations

import codecs
import os
import re
import sys
import threading
import time
from typing import Any

from ..core.files import AppendLog, dumps

CONSOLE_FILE = "console.jsonl"
#: A line longer than this (no newline for that long) is stored in pieces.
MAX_PARTIAL = 1 << 16
_CR = re.compile(r"[^\n]*\r(?=[^\n\r])")

_active: Capture | None = None
_lock = threading.Lock()


class Capture:
    """The capture of one run (see the module doc)."""

    def __init__(self, run: Any, kernel: bool) -> None:
        self.run = run
        self.kernel = kernel
        self.log = AppendLog(run.dir / CONSOLE_FILE)
        self._chunks: list[tuple[str, Any, str]] = []     # (stream, cell, text) since the last drain
        self._partial: dict[str, tuple[Any, str]] = {}    # stream -> (cell, unfinished line)
        self._mutex = threading.Lock()
        self._undo: list[Any] = []
        self.lines = 0
        self.stopped = False

    # -- feeding ---------------------------------------------------------------------------------
    def feed(self, stream: str, text: str) -> None:
        cell = self.run._context.get("_cell") if self.kernel else None
        self._chunks.append((stream, cell, text))    # list.append is atomic: no lock on the hot path

    def drain(self, final: bool = False) -> None:
        """Turn what was written since the last drain into line records and queue them."""
        with self._mutex:
            chunks, self._chunks = self._chunks, []
            groups: list[tuple[str, Any, list[str]]] = []
            for stream, cell, text in chunks:
                if groups and groups[-1][0] == stream and groups[-1][1] == cell:
                    groups[-1][2].append(text)
                else:
                    groups.append((stream, cell, [text]))
            now = time.time()
            for stream, cell, texts in groups:
                pcell, partial = self._partial.pop(stream, (cell, ""))
                if pcell != cell and partial:
                    self._emit(now, stream, pcell, [partial], final=True)
                    partial = ""
                self._emit(now, stream, cell, [partial, *texts], final=False)
            if final:
                for stream, (cell, partial) in list(self._partial.items()):
                    self._emit(now, stream, cell, [partial], final=True)
                self._partial.clear()

    def _emit(self, now: float, stream: str, cell: Any, texts: list[str], final: bool) -> None:
        text = "".join(texts)
        if not text:
            return
        if "\r" in text:
            text = _CR.sub("", text).replace("\r\n", "\n").replace("\r", "")
        lines = text.split("\n")
        rest = lines.pop()
        if final and rest or len(rest) > MAX_PARTIAL:
            lines.append(rest)
            rest = ""
        if rest:
            self._partial[stream] = (cell, rest)
        if lines:
            rec: dict[str, Any] = {"time": now, "stream": stream, "lines": lines}
            if cell is not None:
                rec["cell"] = cell
            self.log.append(dumps(rec))
            self.lines += len(lines)

    def tick(self) -> None:
        if self.stopped:
            return
        self.drain()
        self.log.flush()

    # -- installing --------------------------------------------------------------------------------
    def start(self) -> None:
        if self.kernel:
            for name in ("stdout", "stderr"):
                original = getattr(sys, name)
                tee = _Tee(original, name, self)
                setattr(sys, name, tee)
                self._undo.append((name, tee, original))
        else:
            for fd, name in ((1, "stdout"), (2, "stderr")):
                stream = getattr(sys, name)
                try:
                    on_fd = stream.fileno() == fd
                except (AttributeError, OSError, ValueError):
                    on_fd = False
                self._undo.append(_FdPipe(fd, name, self))
                if not on_fd:   # sys.stdout was replaced (pytest, contextlib.redirect_stdout): wrap it too
                    tee = _Tee(stream, name, self)
                    setattr(sys, name, tee)
                    self._undo.append((name, tee, stream))

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        for item in reversed(self._undo):
            if isinstance(item, _FdPipe):
                item.stop()
            else:
                name, tee, original = item
                if getattr(sys, name) is tee:
                    setattr(sys, name, original)
                else:               # someone wrapped us meanwhile: stop copying, stay in place
                    tee._capture = None
        self._undo.clear()
        self.drain(final=True)
        self.log.flush(fsync=True)
        self.log.close()


class _Tee:
    """A stream that writes through to the original and keeps a copy (kernel mode)."""

    def __init__(self, original: Any, name: str, capture: Capture) -> None:
        self._original = original
        self._name = name
        self._capture: Capture | None = capture

    def write(self, text: str) -> int:
        n = self._original.write(text)
        cap = self._capture
        if cap is not None and type(text) is str:
            cap.feed(self._name, text)
        return n

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


class _FdPipe:
    """File descriptor ``fd`` redirected through a pipe; a thread forwards and copies (script mode)."""

    def __init__(self, fd: int, name: str, capture: Capture) -> None:
        self.fd, self.name, self.capture = fd, name, capture
        self.copying = True
        stream = getattr(sys, name, None)
        if stream is not None:
            stream.flush()
        self.saved = os.dup(fd)
        read_end, write_end = os.pipe()
        try:   # a roomy pipe: the writer rarely waits for the copying thread
            import fcntl

            fcntl.fcntl(write_end, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
        except (ImportError, OSError):
            pass
        os.dup2(write_end, fd)
        os.close(write_end)
        self.read_end = read_end
        self.thread = threading.Thread(target=self._pump, name=f"nbtracker-console-{name}", daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while True:
            try:
                data = os.read(self.read_end, 1 << 16)
            except OSError:
                break
            if not data:
                break
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(self.saved, view):]
                except OSError:
                    break
            if self.copying:
                self.capture.feed(self.name, decoder.decode(data))
            if len(data) < 1 << 15:
                # Let more output gather before the next read: fewer wake-ups, each taking the
                # GIL from the printing thread (output is passed on within 2 ms).
                time.sleep(0.002)
        tail = decoder.decode(b"", final=True)
        if tail and self.copying:
            self.capture.feed(self.name, tail)

    def stop(self) -> None:
        stream = getattr(sys, self.name, None)
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self.saved, self.fd)      # the pipe's last write end (ours) closes here
        self.thread.join(timeout=2.0)
        if self.thread.is_alive():
            # A child process still holds the pipe (a worker that outlives the run): keep
            # passing its output on, uncaptured, until it closes; closing the pipe under it
            # would kill it with SIGPIPE.
            self.copying = False
            return
        os.close(self.read_end)
        os.close(self.saved)


def start(run: Any, kernel: bool) -> Capture:
    """Capture the console for ``run`` (taking over from a capture another run holds)."""
    global _active
    with _lock:
        if _active is not None:
            _stop_active()
        cap = Capture(run, kernel)
        cap.start()
        _active = cap
    run._tickers.append(cap.tick)
    run._closers.append(lambda: stop(cap))
    return cap


def stop(cap: Capture) -> None:
    with _lock:
        if _active is cap:
            _stop_active()


def _stop_active() -> None:
    global _active
    cap, _active = _active, None
    if cap is not None:
        cap.stop()
