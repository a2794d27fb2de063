"""The layering of architecture.md, checked on the code: every import of every module, even lazy ones."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import nbtracker

PKG = Path(nbtracker.__file__).parent

# rank: a module may import nbtracker modules of its own rank or lower (capture and display, both
# rank 2, are kept apart by their own test).
LAYERS = {
    "core": 0,
    "run": 1, "mappings": 1, "_version": 1, "lifecycle": 1, "assets": 1, "media": 1,
    "capture": 2, "display": 2, "server": 2, "sync": 2,
    "session": 3, "rerun": 3,
    "cells": 4, "extension": 4, "magics": 4, "cli": 4, "__main__": 4, "__init__": 4,
}
# Jupyter-layer modules next to magics (cell hooks, %track) sit at the session's level or above.
TOP_DEFAULT = 4
STDLIB_ONLY = {"core", "run", "mappings", "_version", "lifecycle", "assets", "media"}
# Optional, lazily imported extras a lower layer may use (module path, top-level import).
OPTIONAL = {("core/query.py", "pandas"),  # RunView.to_pandas
            # media values convert arrays (numpy and Pillow come with matplotlib), imported on use
            ("media/image.py", "numpy"), ("media/image.py", "PIL"), ("media/data.py", "numpy")}
HEAVY = {"IPython", "ipywidgets", "matplotlib", "nbformat", "traitlets", "ipykernel", "numpy", "pandas"}


def _group(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(absolute module name, line, under TYPE_CHECKING) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg_parts = ["nbtracker", *path.relative_to(PKG).parent.parts]
    type_checking_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                type_checking_lines.update(range(sub.lineno, (sub.end_lineno or sub.lineno) + 1))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno, node.lineno in type_checking_lines) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[: len(pkg_parts) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                if not node.module:  # from . import x  -> each name may be a module
                    found += [(f"{mod}.{a.name}", node.lineno, node.lineno in type_checking_lines)
                              for a in node.names]
                    continue
            else:
                mod = node.module or ""
            found.append((mod, node.lineno, node.lineno in type_checking_lines))
    return found


def _rank(group: str) -> int:
    return LAYERS.get(group, TOP_DEFAULT)


def test_every_module_respects_the_layers():
    problems = []
    for path in sorted(PKG.rglob("*.py")):
        group = _group(path)
        for mod, line, typing_only in _imports(path):
            top = mod.split(".")[0]
            where = f"{path.relative_to(PKG.parent)}:{line} imports {mod}"
            if top == "nbtracker":
                parts = mod.split(".")
                if len(parts) == 1:
                    if group != "__main__" and not typing_only:
                        problems.append(f"{where}: import the module you need, not the façade")
                    continue
                target = parts[1]
                if target == group:
                    continue
                if _rank(target) > _rank(group):
                    problems.append(f"{where}: layer {group} may not import {target}")
            elif (group in STDLIB_ONLY and top not in sys.stdlib_module_names and not typing_only
                  and (str(path.relative_to(PKG)), top) not in OPTIONAL):
                problems.append(f"{where}: {group} must use the standard library only")
    assert not problems, "\n".join(problems)


def test_heavy_libraries_stay_out_of_the_lower_layers():
    for path in sorted(PKG.rglob("*.py")):
        group = _group(path)
        if _rank(group) > 1:
            continue
        for mod, line, typing_only in _imports(path):
            top = mod.split(".")[0]
            allowed = typing_only or (str(path.relative_to(PKG)), top) in OPTIONAL
            assert top not in HEAVY or allowed, f"{path}:{line} imports {mod}"


def test_capture_and_display_do_not_import_each_other():
    for path in sorted(PKG.rglob("*.py")):
        group = _group(path)
        other = {"capture": "display", "display": "capture"}.get(group)
        if other:
            for mod, line, _ in _imports(path):
                assert not mod.startswith(f"nbtracker.{other}"), f"{path}:{line} imports {mod}"


def test_the_server_extension_reads_through_core_and_draws_nothing():
    """The jupyter_server extension (architecture.md: server imports core) also reuses the
    display layer's min/max series, a pure numpy module; nothing that draws or needs a kernel."""
    for path in sorted((PKG / "server").rglob("*.py")):
        for mod, line, _ in _imports(path):
            top = mod.split(".")[0]
            if mod.startswith("nbtracker.display"):
                assert mod == "nbtracker.display.downsample", f"{path}:{line} imports {mod}"
            assert top not in {"IPython", "ipywidgets", "matplotlib", "ipykernel", "traitlets"}, \
                f"{path}:{line} imports {mod}"
            assert not mod.startswith(("nbtracker.run", "nbtracker.session", "nbtracker.capture")), \
                f"{path}:{line} imports {mod}: the server only reads"
