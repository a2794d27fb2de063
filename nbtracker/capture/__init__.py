"""Code capture: the kernel's history as .py and .ipynb, a clean version, and the notebook file.

Written under ``<run>/code/`` (docs/code-capture.md):
``history.py`` / ``history.ipynb`` every execution in order, re-runs and failures included;
``clean.py`` / ``clean.ipynb`` the last version of each cell, in execution order;
``notebook.ipynb`` the notebook file when it can be found; ``source.json`` how it was found and
what differs between the clean code and the notebook file.
"""

from __future__ import annotations

import difflib
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

from ..core.files import atomic_write_json
from . import convert
from ..core.files import read_jsonl
from .hidden import hidden_state, notebook_cells
from .identity import find_notebook
from .state import ModuleCapture

CODE_DIR = "code"


class CodeCapture:
    """Keeps ``<run_dir>/code/`` in step with the kernel session."""

    def __init__(self, run_dir: Path, shell: Any) -> None:
        self.dir = run_dir / CODE_DIR
        self.dir.mkdir(exist_ok=True)
        self.run_dir = run_dir
        self.shell = shell
        self._lock = threading.Lock()
        self._notebook: tuple[Path | None, dict[str, Any]] | None = None
        self._written: tuple[int, int] | None = None
        self.modules = ModuleCapture(self.dir)
        # The modules imported before the run started, now (once, in the run's first cell): a
        # reload in the very next cell must find them known, whatever the background pace.
        self.modules.update(getattr(shell, "execution_count", None))

    def mark(self, cell: Any) -> None:
        """At a cell's end: the cheap part of the local-module capture (reload detection)."""
        self.modules.mark(cell)

    def update(self, executions: list[dict[str, Any]]) -> None:
        """(Re)write the code files for ``executions`` plus the session's earlier history."""
        with self._lock:
            history = self._with_earlier_history(executions)
            last = history[-1]["execution_count"] if history else None
            modules_changed = self.modules.update(last)
            key = (len(history), hash(tuple(e["execution_count"] for e in history)))
            notebook_mtime = self._notebook_mtime()
            if key == self._written and notebook_mtime is None and not modules_changed:
                return
            version = sys.version.split()[0]
            clean = clean_version(history)
            self._write("history.py", convert.to_py(history, "Every execution of the kernel session, in order"))
            self._write("history.ipynb", convert.to_ipynb(history, version))
            self._write("clean.py", convert.to_py(clean, "The last version of each cell, in execution order"))
            self._write("clean.ipynb", convert.to_ipynb(clean, version))
            self._write_notebook(clean, history)
            self._written = key

    def _with_earlier_history(self, executions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Prepend inputs executed before the extension loaded (status unknown)."""
        seen = {e["execution_count"] for e in executions}
        first = min(seen) if seen else None
        earlier = []
        hm = getattr(self.shell, "history_manager", None)
        raw = getattr(hm, "input_hist_raw", None) or []
        for count, source in enumerate(raw):
            if count == 0 or count in seen or (first is not None and count >= first) or not source.strip():
                continue
            earlier.append({"execution_count": count, "cell_id": None, "source": source, "status": "unknown"})
        return earlier + list(executions)

    def _notebook_mtime(self) -> float | None:
        if self._notebook is None:  # looked up once, lazily: the server query may take a second
            ns = getattr(self.shell, "user_ns", None)
            self._notebook = find_notebook(ns)
        path = self._notebook[0]
        try:
            return path.stat().st_mtime if path is not None else None
        except OSError:
            return None

    def _write_notebook(self, clean: list[dict[str, Any]], history: list[dict[str, Any]]) -> None:
        path, note = self._notebook or (None, {})
        note = dict(note)
        if path is not None:
            try:
                shutil.copyfile(path, self.dir / "notebook.ipynb")
                saved = convert.notebook_code((self.dir / "notebook.ipynb").read_text(encoding="utf-8"))
                note["differences"] = differences(clean, saved)
                note["hidden_state"] = hidden_state(history, read_jsonl(self.run_dir / "cells.jsonl"),
                                                    notebook_cells(self.dir / "notebook.ipynb"))
            except (OSError, ValueError) as e:
                note["error"] = f"could not copy the notebook file: {type(e).__name__}: {e}"
        else:
            note["differences"] = None
            note["hidden_state"] = {"checked": False, "reason": "the notebook file was not found"}
        atomic_write_json(self.dir / "source.json", note)

    def _write(self, name: str, text: str) -> None:
        tmp = self.dir / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(self.dir / name)


def clean_version(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last execution of each cell, ordered by when that last execution ran.

    A cell is its ``cell_id`` when the frontend sent one; without ids (terminal IPython) an
    execution is identified by its source text, so identical re-runs collapse to the last one.
    """
    last: dict[Any, dict[str, Any]] = {}
    for e in history:
        key = ("id", e["cell_id"]) if e.get("cell_id") else ("src", e["source"])
        last.pop(key, None)  # re-insert so dict order follows the latest execution
        last[key] = e
    return list(last.values())


def differences(clean: list[dict[str, Any]], saved: list[str]) -> dict[str, Any]:
    """What differs between the code that ran (clean version) and the notebook file's code cells."""
    ran = [e["source"].strip() for e in clean]
    on_disk = [s.strip() for s in saved]
    diff = list(difflib.unified_diff("\n\n".join(on_disk).splitlines(), "\n\n".join(ran).splitlines(),
                                     "notebook file", "code that ran", lineterm="", n=1))
    return {
        "cells_in_file_never_run": sum(1 for s in on_disk if s and s not in ran),
        "cells_run_not_in_file": sum(1 for s in ran if s and s not in on_disk),
        "identical": not diff,
        "diff": diff[:400],
    }
