"""Replay: re-run a run's captured code in a fresh kernel and say whether its numbers come back.

``replay(run)`` executes ``code/clean.ipynb`` (``exact=True``: ``code/history.ipynb``, every
execution in its original order) with nbclient in a new kernel, with the run's captured local
modules (``code/modules/``) first on the import path and ``NBTRACKER_REPLAY_OF`` set, so the
code's own ``nbtracker.init`` makes an ordinary run whose ``run.json`` says ``replay_of``. Then
both runs' metrics are compared key by key and step by step (docs/reproducibility.md).
"""

from __future__ import annotations

import difflib
import html
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .core.errors import NbtrackerError
from .core.files import atomic_write_json, read_jsonl
from .core.paths import resolve_root
from .core.query import RunView, load, runs

#: Exit codes of ``nbtracker replay``.
REPRODUCED, DIFFERS, COULD_NOT_RUN = 0, 1, 2


@dataclass
class KeyResult:
    key: str
    status: str                        # "exact", "close", "differs", "missing in replay", "missing in original"
    rows: tuple[int, int]              # rows holding the key: original, replay
    max_rel_diff: float | None = None
    step: Any = None                   # the first step where the runs part
    original: Any = None
    replay: Any = None
    cells: tuple[Any, Any] = (None, None)   # the cells (execution counts) that logged that step
    sources: tuple[str | None, str | None] = (None, None)
    diff: list[str] = field(default_factory=list)


@dataclass
class ReplayReport:
    """What a replay found. ``exit_code``: 0 reproduced, 1 differs, 2 could not run."""

    original: str
    replay: str | None
    mode: str                          # "clean" or "exact"
    status: str                        # "reproduced", "differs", "could not run"
    rtol: float
    seconds: float
    keys: list[KeyResult] = field(default_factory=list)
    rows: tuple[int, int] = (0, 0)
    best: dict[str, Any] | None = None
    error: dict[str, Any] | None = None      # the failing cell, the exception, the hidden-state hint
    hidden_state: list[str] = field(default_factory=list)
    left_out: list[Any] = field(default_factory=list)   # cells that ran but are not in the notebook file

    @property
    def exit_code(self) -> int:
        return {"reproduced": REPRODUCED, "differs": DIFFERS}.get(self.status, COULD_NOT_RUN)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["exit_code"] = self.exit_code
        return _json_safe(d)

    def text(self) -> str:
        lines = [f"replay of {self.original} ({self.mode} code) -> {self.replay or 'no run'}: "
                 f"{self.status.upper()} in {self.seconds:.1f} s"]
        if self.error:
            e = self.error
            lines.append(f"  cell {e.get('cell')} failed: {e.get('ename')}: {e.get('evalue')}")
            if e.get("source"):
                lines += ["    | " + ln for ln in e["source"].splitlines()[:8]]
            if e.get("hint"):
                lines.append(f"  hidden state: {e['hint']}")
        if self.left_out:
            lines.append(f"  left out (ran, but not in the notebook file): cells {', '.join(map(str, self.left_out))}")
        if self.status != "could not run":
            lines.append(f"  rows: original {self.rows[0]}, replay {self.rows[1]}")
        for k in self.keys:
            if k.status in ("exact", "close"):
                extra = "" if k.status == "exact" else f" (max relative difference {k.max_rel_diff:.3g})"
                lines.append(f"  {k.key}: {k.status}{extra}")
            elif k.status == "differs":
                lines.append(f"  {k.key}: DIFFERS at step {k.step}: original {_fmt(k.original)}, replay "
                             f"{_fmt(k.replay)} (logged by cell {k.cells[0]} / replay cell {k.cells[1]})")
                lines += ["    " + ln for ln in k.diff[:12]]
            else:
                lines.append(f"  {k.key}: {k.status} (rows {k.rows[0]} / {k.rows[1]})")
        if self.best:
            b = self.best
            lines.append(f"  best {b['metric']}: original {_fmt(b['original'])}, replay {_fmt(b['replay'])}")
        hint = (self.error or {}).get("hint")
        lines += [f"  hidden state: {h}" for h in self.hidden_state if h != hint]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        e = html.escape
        color = {"reproduced": "#2ca02c", "differs": "#d62728"}.get(self.status, "#ff7f0e")
        rows = "".join(
            f"<tr><td>{e(k.key)}</td><td>{e(k.status)}</td><td>{e(_fmt(k.step))}</td>"
            f"<td>{e(_fmt(k.original))}</td><td>{e(_fmt(k.replay))}</td>"
            f"<td>{e(_fmt(k.cells[0]))} / {e(_fmt(k.cells[1]))}</td></tr>" for k in self.keys)
        parts = [f'<div class="nbtracker-replay"><b>replay of {e(self.original)}</b> '
                 f'({e(self.mode)} code): <b style="color:{color}">{e(self.status)}</b> in {self.seconds:.1f} s'
                 f"{'' if not self.replay else ' → ' + e(self.replay)}"]
        if self.error:
            err = self.error
            parts.append(f"<div>cell {e(str(err.get('cell')))} failed: <code>{e(str(err.get('ename')))}: "
                         f"{e(str(err.get('evalue')))}</code></div>")
            if err.get("source"):
                parts.append(f"<pre>{e(err['source'])}</pre>")
            if err.get("hint"):
                parts.append(f"<div>hidden state: {e(err['hint'])}</div>")
        if self.keys:
            parts.append('<table><thead><tr><th>metric</th><th>result</th><th>first step apart</th>'
                         f"<th>original</th><th>replay</th><th>cells</th></tr></thead><tbody>{rows}</tbody></table>")
        for k in self.keys:
            if k.diff:
                parts.append(f"<div>{e(k.key)}: the cells differ</div><pre>{e(chr(10).join(k.diff))}</pre>")
        parts += [f"<div>hidden state: {e(h)}</div>" for h in self.hidden_state]
        return "".join(parts) + "</div>"

    def __repr__(self) -> str:
        return self.text()


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "-" if v is None else str(v)


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


# -- running --------------------------------------------------------------------------------------
def replay(run: Any, *, exact: bool = False, kernel: str = "python3", timeout: float = 600,
           rtol: float = 1e-6, until: int | None = None, dir: Any = None) -> ReplayReport:
    """Re-execute ``run``'s captured code in a fresh kernel and compare the metrics.

    Parameters
    ----------
    run : Run, RunView, run id, id prefix, name or run directory
    exact : bool
        Replay every execution in its original order (``code/history.ipynb``) instead of the
        last version of each cell (``code/clean.ipynb``).
    kernel : str
        The kernel to run it in (a kernelspec name).
    timeout : float
        Seconds per cell.
    rtol : float
        Relative tolerance for ``close``.
    until : int, optional
        Stop after the cell with this execution count (as in the run's ``cells.jsonl``).
    """
    if not (isinstance(rtol, (int, float)) and rtol >= 0):
        raise NbtrackerError(f"rtol must be a number >= 0, not {rtol!r}")
    original = run if isinstance(run, RunView) else load(getattr(run, "dir", run), dir)
    source = original.dir / "code" / ("history.ipynb" if exact else "clean.ipynb")
    mode = "exact" if exact else "clean"
    started = time.monotonic()
    if not source.is_file():
        return ReplayReport(original.id, None, mode, "could not run", rtol, 0.0,
                            error={"ename": "NoCapturedCode", "evalue": f"{source} does not exist: the run "
                                   "was not made in a notebook or IPython with %load_ext nbtracker"})
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(str(source), as_version=4)
    dropped = [] if exact else _drop_cells_not_in_file(nb, original)
    if until is not None:
        counts = [c.get("execution_count") for c in nb.cells]
        if until not in counts:
            raise NbtrackerError(f"no cell with execution count {until} in {source.name}; its cells: "
                                 f"{', '.join(str(c) for c in counts)}")
        nb.cells = nb.cells[:counts.index(until) + 1]
    originals = [c.get("execution_count") for c in nb.cells]
    workdir = Path(tempfile.mkdtemp(prefix="nbtracker-replay-"))
    modules = original.dir / "code" / "modules"
    path_dir = workdir / "modules"
    if modules.is_dir():
        shutil.copytree(modules, path_dir, ignore=shutil.ignore_patterns(".versions"))
    else:
        path_dir.mkdir()
    setup = nbformat.v4.new_code_cell(
        f"import sys as _nbt_sys\n_nbt_sys.path.insert(0, {str(path_dir)!r})\ndel _nbt_sys")
    nb.cells.insert(0, setup)
    cwd = _working_dir(original, workdir)
    root = resolve_root(original.dir.parent.parent)
    env = {**os.environ, "NBTRACKER_DIR": str(root), "NBTRACKER_REPLAY_OF": original.id,
           "NBTRACKER_LIVE": "0", "NBTRACKER_QUIET": "1"}
    for var in ("NBTRACKER_RENDERER", "NBTRACKER_NOTEBOOK", "JPY_SESSION_NAME"):
        env.pop(var, None)   # the replay kernel runs no notebook file of the caller's
    t0 = time.time()
    error = None
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel, allow_errors=False,
                            resources={"metadata": {"path": str(cwd)}})
    try:
        client.execute(env=env)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
        error = _failure(nb, originals, e)
    except Exception as e:  # noqa: BLE001 - a missing kernel, a kernel that cannot start
        error = {"cell": None, "ename": type(e).__name__, "evalue": str(e)[:2000]}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    hidden = _hidden_state(original)
    made = _replay_run(root, original, t0)
    if error is not None:
        error["hint"] = _hint(error, original)
        report = ReplayReport(original.id, made.id if made else None, mode, "could not run", rtol,
                              time.monotonic() - started, error=error, hidden_state=hidden)
    elif made is None:
        report = ReplayReport(original.id, None, mode, "could not run", rtol, time.monotonic() - started,
                              error={"cell": None, "ename": "NoRun", "evalue": "the replayed code made no "
                                     f"run in project {original.project!r}"}, hidden_state=hidden)
    else:
        report = compare_runs(original, made, rtol=rtol, mode=mode, seconds=time.monotonic() - started,
                              offset=originals)
        report.hidden_state = hidden
    report.left_out = dropped
    if made is not None:
        atomic_write_json(made.dir / "replay.json", report.to_dict())
    return report


def _drop_cells_not_in_file(nb: Any, original: RunView) -> list[Any]:
    """The clean replay re-runs the notebook as it was saved: cells that ran but are no longer
    in the notebook file (deleted, or never saved) are left out. Returns their execution counts."""
    saved_path = original.dir / "code" / "notebook.ipynb"
    if not saved_path.is_file():
        return []
    from .capture.hidden import notebook_cells

    try:
        saved = notebook_cells(saved_path)
    except (OSError, ValueError):
        return []
    ids = {c["id"] for c in saved if c.get("id")}
    sources = {c["source"].strip() for c in saved}
    kept, dropped = [], []
    for cell in nb.cells:
        original_id = (cell.get("metadata") or {}).get("nbtracker", {}).get("cell_id")
        if (original_id and original_id in ids) or cell.source.strip() in sources:
            kept.append(cell)
        else:
            dropped.append(cell.get("execution_count"))
    nb.cells = kept
    return dropped


def _working_dir(original: RunView, fallback: Path) -> Path:
    """Where the original ran (env.json), if it still exists; else a scratch folder."""
    try:
        cwd = Path(json.loads((original.dir / "env.json").read_text(encoding="utf-8"))["cwd"])
        if cwd.is_dir():
            return cwd
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return fallback


def _replay_run(root: Path, original: RunView, since: float) -> RunView | None:
    made = [r for r in runs(original.project, root)
            if r._doc.get("replay_of") == original.id and (r.start_time or 0) >= since - 1]
    made.sort(key=lambda r: r.start_time or 0)
    return made[0] if made else None


def _failure(nb: Any, originals: list[Any], exc: Exception) -> dict[str, Any]:
    """The first cell with an error output: its original execution count, source and error."""
    for i, cell in enumerate(nb.cells[1:]):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return {"cell": originals[i], "ename": out.get("ename"), "evalue": out.get("evalue"),
                        "source": cell.get("source")}
    return {"cell": None, "ename": type(exc).__name__, "evalue": str(exc)[:2000]}


def _source_note(original: RunView) -> dict[str, Any]:
    try:
        return json.loads((original.dir / "code" / "source.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _hidden_state(original: RunView) -> list[str]:
    from .capture.hidden import summary_lines

    return summary_lines(_source_note(original).get("hidden_state"))


def _hint(error: dict[str, Any], original: RunView) -> str | None:
    """For a NameError, the capture's warning about the same name, if it made one."""
    if error.get("ename") != "NameError":
        return None
    name = str(error.get("evalue") or "").split("'")[1:2]
    hidden = _source_note(original).get("hidden_state") or {}
    for n in hidden.get("names_from_deleted_cells") or []:
        if name and n["name"] == name[0]:
            return n["note"]
    return None


# -- comparing ------------------------------------------------------------------------------------
def _series(view: RunView) -> tuple[dict[str, list[tuple[Any, Any, Any]]], int]:
    out: dict[str, list[tuple[Any, Any, Any]]] = {}
    rows = view.history()
    for row in rows:
        for k, v in row.items():
            if not k.startswith("_"):
                out.setdefault(k, []).append((row.get("_step"), v, row.get("_cell")))
    return out, len(rows)


def _cell_sources(view: RunView) -> dict[Any, str]:
    return {r.get("execution_count"): r.get("source") or "" for r in read_jsonl(view.dir / "cells.jsonl")}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b or (isinstance(a, (int, float)) and isinstance(b, (int, float))
                                            and not isinstance(a, bool) and a == b)


def _close(a: Any, b: Any, rtol: float) -> float | None:
    """The relative difference if both are numbers within ``rtol``, else None."""
    if not (isinstance(a, (int, float)) and isinstance(b, (int, float))) or isinstance(a, bool):
        return None
    if not (math.isfinite(a) and math.isfinite(b)):
        return None
    rel = abs(a - b) / max(abs(a), abs(b), 1e-300)
    return rel if rel <= rtol else None


def compare_runs(original: RunView, replayed: RunView, *, rtol: float = 1e-6, mode: str = "clean",
                 seconds: float = 0.0, offset: list[Any] | None = None) -> ReplayReport:
    """Compare two runs' metrics key by key, step by step (the replay's verdict)."""
    a, rows_a = _series(original)
    b, rows_b = _series(replayed)
    src_a, src_b = _cell_sources(original), _cell_sources(replayed)
    # a replay cell's execution count n is the replayed notebook's cell n (the setup cell is 1)
    to_original = {i + 2: c for i, c in enumerate(offset or [])}
    keys = []
    for key in sorted(set(a) | set(b)):
        if key not in b:
            keys.append(KeyResult(key, "missing in replay", (len(a[key]), 0)))
            continue
        if key not in a:
            keys.append(KeyResult(key, "missing in original", (0, len(b[key]))))
            continue
        result = KeyResult(key, "exact", (len(a[key]), len(b[key])))
        worst = 0.0
        for (sa, va, ca), (sb, vb, cb) in zip(a[key], b[key]):
            if sa == sb and _same(va, vb):
                continue
            rel = _close(va, vb, rtol) if sa == sb else None
            if rel is not None:
                result.status = "close"
                worst = max(worst, rel)
                continue
            result.status = "differs"
            result.step = sa if sa == sb else f"{sa} / {sb}"
            result.original, result.replay = va, vb
            result.cells = (ca, to_original.get(cb, cb))
            s1, s2 = src_a.get(ca), src_b.get(cb)
            result.sources = (s1, s2)
            if s1 is not None and s2 is not None and s1.strip() != s2.strip():
                result.diff = list(difflib.unified_diff(s1.splitlines(), s2.splitlines(), "original cell",
                                                        "replayed cell", lineterm="", n=1))[:40]
            break
        if result.status != "differs" and len(a[key]) != len(b[key]):
            result.status = "differs"
            shorter = min(len(a[key]), len(b[key]))
            longer = a[key] if len(a[key]) > len(b[key]) else b[key]
            result.step = longer[shorter][0]
        result.max_rel_diff = worst if result.status == "close" else None
        keys.append(result)
    best = None
    pm = original.primary_metric
    if pm:
        best = {"metric": pm[0], "original": original.summary.get("best/" + pm[0]),
                "replay": replayed.summary.get("best/" + pm[0])}
    ok = all(k.status in ("exact", "close") for k in keys) and rows_a == rows_b
    return ReplayReport(original.id, replayed.id, mode, "reproduced" if ok else "differs", rtol, seconds,
                        keys=keys, rows=(rows_a, rows_b), best=best)
