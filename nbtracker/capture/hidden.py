"""Hidden state: what the notebook file no longer says about how a run's numbers were made.

Compared at capture time (``code/source.json``, ``hidden_state``), between the kernel's history
(every execution, with the frontend's cell ids when it sends them), ``cells.jsonl`` (which cells
logged rows) and the notebook file's code cells:

- ``out_of_order``: executions of a cell placed *above* the cell executed just before it;
- ``changed_after_run``: a cell that logged rows and whose source in the file differs from the
  source that ran (needs cell ids: JupyterLab, Notebook 7 and VS Code send them);
- ``rows_from_missing_cells``: rows logged by a cell that is not in the file (deleted, or
  without ids, edited);
- ``names_from_deleted_cells``: names a logging cell read that only cells missing from the file
  defined (assignments, ``def``, ``class``, imports, ``for`` targets). Best effort, from the
  sources alone: names bound by ``exec``, ``globals()[...]``, ``%run``, star imports or a
  module's side effects are not seen, and attribute or item changes (``model.lr = 0.1``) are
  not bindings.
"""

from __future__ import annotations

import ast
import builtins
import functools
import json
from pathlib import Path
from typing import Any

_BUILTINS = set(dir(builtins)) | {"get_ipython", "display", "In", "Out", "exit", "quit", "_", "__"}


def notebook_cells(path: Path) -> list[dict[str, Any]]:
    """The code cells of a notebook file: ``{"id", "source"}`` in order."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for cell in nb.get("cells") or []:
        if cell.get("cell_type") != "code":
            continue
        src = cell.get("source") or ""
        out.append({"id": cell.get("id"), "source": "".join(src) if isinstance(src, list) else str(src)})
    return out


def _python(source: str) -> ast.AST | None:
    """The cell as Python (IPython magics and shell lines turned into calls), or None."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        source = TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - fall back to dropping magic lines
        source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    try:
        return ast.parse(source)
    except SyntaxError:
        return None


def _scope_reads(node: ast.AST) -> set[str]:
    """Names a function, lambda, class or comprehension reads from outside itself."""
    stores, loads = set(), set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            (stores if isinstance(n.ctx, (ast.Store, ast.Del)) else loads).add(n.id)
        elif isinstance(n, ast.arg):
            stores.add(n.arg)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n is not node:
            stores.add(n.name)
    return loads - stores


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ListComp, ast.SetComp,
           ast.DictComp, ast.GeneratorExp, ast.ClassDef)


@functools.lru_cache(maxsize=4096)
def bound_and_read(source: str) -> tuple[frozenset[str], frozenset[str]]:
    """(names the cell binds at top level, names it reads before binding them itself).

    Cached by source: the capture re-checks the whole history after every cell."""
    tree = _python(source)
    if tree is None:
        return frozenset(), frozenset()
    bound: set[str] = set()
    read: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, _SCOPES):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for d in node.decorator_list:
                    visit(d)
                bound.add(node.name)
            read.update(_scope_reads(node) - bound)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name != "*":
                    bound.add((alias.asname or alias.name).split(".")[0])
            return
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Store):
                bound.add(node.id)
            elif isinstance(node.ctx, ast.Load) and node.id not in bound:
                read.add(node.id)
            return
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):   # the value is read first
            if node.value is not None:
                visit(node.value)
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                if isinstance(node, ast.AugAssign) and isinstance(t, ast.Name) and t.id not in bound:
                    read.add(t.id)
                visit(t)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    for stmt in tree.body:  # type: ignore[attr-defined]
        visit(stmt)
    return frozenset(bound), frozenset(read - _BUILTINS)


def _key(e: dict[str, Any], with_ids: bool) -> Any:
    return ("id", e.get("cell_id")) if with_ids and e.get("cell_id") else ("src", e["source"].strip())


def hidden_state(history: list[dict[str, Any]], records: list[dict[str, Any]],
                 saved: list[dict[str, Any]]) -> dict[str, Any]:
    """See the module doc. ``history``: executions in order; ``records``: cells.jsonl;
    ``saved``: ``notebook_cells`` of the file."""
    with_ids = any(e.get("cell_id") for e in history) and any(c.get("id") for c in saved)
    position: dict[Any, int] = {}
    for i, c in enumerate(saved):
        position.setdefault(("id", c["id"]) if with_ids and c.get("id") else ("src", c["source"].strip()), i)
    file_sources = {c["source"].strip() for c in saved}
    by_id = {c["id"]: c["source"] for c in saved if c.get("id")}

    out_of_order = []
    prev_key, prev_pos = None, None
    for e in history:
        key = _key(e, with_ids)
        pos = position.get(key)
        if pos is None and not with_ids:
            pos = position.get(("src", e["source"].strip()))
        if pos is not None and prev_pos is not None and key != prev_key and pos < prev_pos:
            out_of_order.append({"execution_count": e["execution_count"], "cell": pos + 1, "after_cell": prev_pos + 1})
        if pos is not None:
            prev_key, prev_pos = key, pos

    logging = [r for r in records if (r.get("rows") or 0) > 0]
    changed, missing = [], []
    for r in logging:
        cid = r.get("cell_id")
        if with_ids and cid and cid in by_id:
            if by_id[cid].strip() != (r.get("source") or "").strip():
                changed.append({"execution_count": r["execution_count"], "cell_id": cid, "rows": r["rows"]})
        elif (r.get("source") or "").strip() not in file_sources:
            missing.append({"execution_count": r["execution_count"], "cell_id": cid, "rows": r["rows"]})

    def in_file(e: dict[str, Any]) -> bool:
        if with_ids and e.get("cell_id"):
            return e["cell_id"] in by_id
        return e["source"].strip() in file_sources

    names = []
    binds = [(e, bound_and_read(e["source"])[0]) for e in history]
    for r in logging:
        count = r["execution_count"]
        _, read = bound_and_read(r.get("source") or "")
        earlier = [(e, b) for e, b in binds
                   if isinstance(e.get("execution_count"), int) and e["execution_count"] < count]
        for name in sorted(read):
            definers = [e for e, b in earlier if name in b]
            if definers and not any(in_file(e) for e in definers):
                counts = [e["execution_count"] for e in definers]
                where = ", ".join(f"[{c}]" for c in counts)
                names.append({"name": name, "used_in": count, "defined_in": counts,
                              "note": f"{name!r} is read by cell [{count}], which logged rows, and only "
                                      f"defined by cell(s) {where} that are not in the notebook file"})
    found = bool(out_of_order or changed or missing or names)
    return {"checked": True, "cell_ids": with_ids, "found": found, "out_of_order": out_of_order,
            "changed_after_run": changed, "rows_from_missing_cells": missing,
            "names_from_deleted_cells": names}


def summary_lines(state: dict[str, Any] | None) -> list[str]:
    """One line per finding, for ``%nbtracker status`` and the replay report."""
    if not state or not state.get("checked"):
        return []
    lines = []
    for o in state["out_of_order"]:
        lines.append(f"cell [{o['execution_count']}] ran out of order "
                     f"(notebook cell {o['cell']} after cell {o['after_cell']})")
    for c in state["changed_after_run"]:
        lines.append(f"cell [{c['execution_count']}] logged {c['rows']} rows and was edited in the notebook since")
    for m in state["rows_from_missing_cells"]:
        lines.append(f"cell [{m['execution_count']}] logged {m['rows']} rows and is not in the notebook file")
    for n in state["names_from_deleted_cells"]:
        lines.append(n["note"])
    return lines
