"""The code state beyond the notebook: local modules, git, the environment (docs/reproducibility.md).

- ``ModuleCapture``: every module imported from the project (not the standard library, not
  site-packages) while a run is active, copied into ``code/modules/`` with its path and
  SHA-256. A module reloaded during the run (``importlib.reload``, autoreload) is captured
  again; ``code/modules.json`` says which cells ran with which version, and which files were
  edited on disk without being reloaded (the code that ran is not the file's).
- ``git_state``: commit, branch, remote (credentials stripped), dirty files and the
  uncommitted diff (``git diff HEAD``, size-limited) into ``code/git.json`` and ``code/git.diff``.
- ``environment``: Python, platform, installed distributions (``importlib.metadata``) into
  ``env.json``. Never environment variables' values.

All of it runs off the cells' critical path: modules in the session's ticker, git and the
environment in a child process started with the run (``start``, ``main``); the only per-cell
work is ``ModuleCapture.mark``: an identity check per known local module.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

from ..core.files import atomic_write_json

#: Local module files larger than this are listed, not copied.
MAX_MODULE_BYTES = 1 << 20
#: At most this many local modules are captured per run.
MAX_MODULES = 500
#: The uncommitted diff is cut at this size (the record says so).
MAX_DIFF_BYTES = 1 << 20
GIT_TIMEOUT = 10.0


def project_root(cwd: Path) -> Path:
    """The folder local modules come from: the nearest parent of ``cwd`` holding a
    ``pyproject.toml``, ``setup.py`` or ``.git``, else ``cwd`` itself."""
    for folder in (cwd, *cwd.parents):
        if any((folder / marker).exists() for marker in ("pyproject.toml", "setup.py", ".git")):
            return folder
    return cwd


def _excluded_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    out = {os.path.realpath(p) for key, p in paths.items() if key in ("stdlib", "platstdlib", "purelib", "platlib")}
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix}:
        out.add(os.path.realpath(prefix))
    out.add(os.path.realpath(Path(__file__).resolve().parents[1]))   # nbtracker itself
    return sorted(out)


def _under(path: str, folders: list[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip(os.sep) + os.sep) for f in folders)


class ModuleCapture:
    """Local modules of the session, captured into ``<code_dir>/modules`` (see the module doc)."""

    def __init__(self, code_dir: Path, cwd: Path | None = None) -> None:
        self.dir = code_dir / "modules"
        self.index = code_dir / "modules.json"
        cwd = (cwd or Path.cwd()).resolve()
        self.root = project_root(cwd)
        self._roots = sorted({os.path.realpath(cwd), os.path.realpath(self.root)})
        # Never site-packages or the standard library, also when the venv lives in the project
        # (project/.venv); an excluded prefix that *contains* the project is dropped instead.
        self._excluded = [d for d in _excluded_dirs() if not any(_under(r, [d]) for r in self._roots)]
        self._known: dict[str, dict[str, Any]] = {}      # module name -> its current version record
        self._specs: dict[str, int] = {}                  # module name -> id(module.__spec__) captured
        self._reloaded: list[tuple[str, Any, bytes | None]] = []   # (name, cell, source) reloads seen by mark()
        self._done: set[str] = set()                     # module names looked at (captured or not local)
        self._spans: tuple[Any, ...] = ()                 # the cell spans last written
        self.versions: list[dict[str, Any]] = []
        self.skipped: list[dict[str, Any]] = []
        self.edited: dict[str, dict[str, Any]] = {}

    def local(self, module: Any) -> tuple[str, str] | None:
        """``(absolute file, path relative to its import root)`` of a local module, else None."""
        name = getattr(module, "__name__", None)
        file = getattr(module, "__file__", None)
        if not isinstance(name, str) or not isinstance(file, str) or not file.endswith(".py"):
            return None
        real = os.path.realpath(file)
        if not _under(real, self._roots) or _under(real, self._excluded):
            return None
        is_pkg = os.path.basename(real) == "__init__.py"
        rel = name.replace(".", "/") + ("/__init__.py" if is_pkg else ".py")
        if not real.replace(os.sep, "/").endswith("/" + rel):
            return None          # loaded under a name that does not match its path (runpy, exec)
        return real, rel

    def mark(self, cell: Any) -> None:
        """At a cell's end (cheap): note the known local modules that were reloaded."""
        modules = sys.modules
        # list(...) copies: the background capture adds entries while a cell ends
        for name, spec_id in list(self._specs.items()):
            module = modules.get(name)
            spec = getattr(module, "__spec__", None)
            if module is not None and id(spec) != spec_id:
                # Read now (only on a reload): the file may be edited again before the capture runs.
                self._specs[name] = id(spec)
                try:
                    data = Path(self._known[name]["source"]).read_bytes()
                except OSError:
                    data = None
                self._reloaded.append((name, cell, data))
        for record in list(self._known.values()):
            record["cells"][1] = cell

    def update(self, cell: Any) -> bool:
        """Capture new local modules and reloaded versions (the ticker); True if anything changed."""
        changed = False
        pending, self._reloaded = self._reloaded, []
        for name, at, data in pending:          # every reload, in order
            module = sys.modules.get(name)
            found = self.local(module) if module is not None else None
            if found is not None:
                changed = self._capture(name, module, *found, at, reloaded=True, data=data) or changed
        for name, module in list(sys.modules.items()):
            if name in self._known:
                changed = self._check_edit(name) or changed
                continue
            if name in self._done or len(self._known) >= MAX_MODULES:
                continue
            self._done.add(name)
            found = self.local(module)
            if found is not None:
                changed = self._capture(name, module, *found, cell, reloaded=False) or changed
        spans = tuple(tuple(r["cells"]) for r in self._known.values())
        if changed or spans != self._spans:
            self._spans = spans
            self._write_index()
        return changed

    def _capture(self, name: str, module: Any, path: str, rel: str, cell: Any, reloaded: bool,
                 data: bytes | None = None) -> bool:
        try:
            size = len(data) if data is not None else os.stat(path).st_size
            if size > MAX_MODULE_BYTES:
                self.skipped.append({"module": name, "path": rel, "size": size,
                                     "reason": f"larger than {MAX_MODULE_BYTES} bytes"})
                return True
            if data is None:
                data = Path(path).read_bytes()
        except OSError as e:
            self.skipped.append({"module": name, "path": rel, "reason": f"unreadable: {e.strerror or e}"})
            return True
        digest = hashlib.sha256(data).hexdigest()
        old = self._known.get(name)
        if not reloaded:
            self._specs[name] = id(getattr(module, "__spec__", None))
        if old is not None and old["sha256"] == digest:
            return False
        version = 1 + sum(1 for v in self.versions if v["module"] == name)
        # The tree modules/<path> holds the latest version (what replay imports); every version
        # of a module that has more than one is also kept under modules/.versions/<n>/<path>.
        if version == 2:
            first = next(v for v in self.versions if v["module"] == name and v["version"] == 1)
            keep = self.dir / ".versions" / "1" / rel
            keep.parent.mkdir(parents=True, exist_ok=True)
            keep.write_bytes((self.dir / rel).read_bytes())
            first["file"] = f"code/modules/.versions/1/{rel}"
        stored = f"modules/{rel}" if version == 1 else f"modules/.versions/{version}/{rel}"
        for target in {self.dir / rel, self.dir.parent / stored}:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if old is not None:              # the previous version ran up to the cell before
            first_cell = old["cells"][0]
            if isinstance(cell, int) and isinstance(first_cell, int):
                old["cells"][1] = max(first_cell, cell - 1)
        record = {"module": name, "path": rel, "source": path, "sha256": digest, "size": len(data),
                  "version": version, "reloaded": reloaded, "captured": time.time(),
                  "cells": [cell, cell], "file": f"code/{stored}"}
        self.versions.append(record)
        self._known[name] = record
        self.edited.pop(name, None)
        return True

    def _check_edit(self, name: str) -> bool:
        """A captured module's file changed on disk without a reload: the code that ran is the
        captured version, not the file (say so once per change)."""
        record = self._known[name]
        try:
            data = Path(record["source"]).read_bytes()
        except OSError:
            return False
        digest = hashlib.sha256(data).hexdigest()
        if digest == record["sha256"]:
            if self.edited.pop(name, None) is not None:
                return True
            return False
        if self.edited.get(name, {}).get("sha256") == digest:
            return False
        self.edited[name] = {"module": name, "path": record["path"], "sha256": digest,
                             "note": "edited on disk after import and not reloaded: the cells ran the "
                                     f"captured version {record['version']}"}
        return True

    def _write_index(self) -> None:
        atomic_write_json(self.index, {"root": str(self.root), "modules": self.versions,
                                       "skipped": self.skipped, "edited_not_reloaded": list(self.edited.values()),
                                       "limits": {"max_bytes": MAX_MODULE_BYTES, "max_modules": MAX_MODULES}})


_CREDENTIALS = re.compile(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", re.IGNORECASE)


def strip_credentials(url: str) -> str:
    """``https://user:token@host/x`` -> ``https://host/x``; scp-like ``git@host:x`` is kept."""
    return _CREDENTIALS.sub(r"\1", url.strip())


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "SYSTEMROOT")}
    env["GIT_TERMINAL_PROMPT"] = "0"
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=GIT_TIMEOUT, env=env)


def git_state(cwd: Path) -> tuple[dict[str, Any], bytes | None]:
    """(git.json document, the uncommitted diff or None). Never raises.

    Two or three git calls: ``status --porcelain=v2 --branch`` (commit, branch and changed
    files at once; it fails outside a work tree), the remote's URL, and ``diff HEAD`` when
    something changed."""
    try:
        status = _git(["status", "--porcelain=v2", "--branch", "--untracked-files=normal"], cwd)
    except FileNotFoundError:
        return {"git": "not installed"}, None
    except (OSError, subprocess.SubprocessError) as e:
        return {"git": f"could not run git: {type(e).__name__}"}, None
    if status.returncode != 0:
        return {"git": "not a git work tree", "cwd": str(cwd)}, None
    doc: dict[str, Any] = {"git": "ok", "commit": None, "branch": None}
    changed = untracked = 0
    for line in status.stdout.decode(errors="replace").splitlines():
        if line.startswith("# branch.oid "):
            oid = line[13:].strip()
            doc["commit"] = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line[14:].strip()
            doc["branch"] = None if head == "(detached)" else head
        elif line.startswith("?"):
            untracked += 1
        elif line[:1] in ("1", "2", "u"):
            changed += 1
    doc.update(dirty=bool(changed or untracked), changed_files=changed, untracked_files=untracked)
    try:
        remote = _git(["config", "--get", "remote.origin.url"], cwd)
        doc["remote"] = strip_credentials(remote.stdout.decode(errors="replace")) if remote.returncode == 0 else None
        data = b""
        if changed and doc["commit"]:
            diff = _git(["diff", "HEAD", "--no-color", "--no-ext-diff"], cwd)
            data = diff.stdout if diff.returncode == 0 else b""
        doc["diff_bytes"] = len(data)
        doc["diff_truncated"] = len(data) > MAX_DIFF_BYTES
        return doc, data[:MAX_DIFF_BYTES] if data else None
    except (OSError, subprocess.SubprocessError) as e:
        doc["error"] = f"{type(e).__name__}: {e}"
        return doc, None


def environment(kernel: dict[str, Any] | None = None, path: list[str] | None = None) -> dict[str, Any]:
    """env.json: the interpreter, the platform and the installed distributions (no env values);
    ``path``: where to look for distributions (default ``sys.path``)."""
    from importlib import metadata

    dists = {}
    for d in metadata.distributions(path=path if path is not None else sys.path):
        # The header lines only (``d.metadata`` runs the e-mail parser over the whole file,
        # long descriptions included: 10x slower, and this runs beside the user's loop).
        try:
            text = d.read_text("METADATA") or d.read_text("PKG-INFO") or ""
        except Exception:  # noqa: BLE001 - a broken dist-info must not stop the capture
            continue
        name = version = None
        for line in text.partition("\n\n")[0].splitlines():
            if line.startswith("Name:"):
                name = line[5:].strip()
            elif line.startswith("Version:"):
                version = line[8:].strip()
        if name:
            dists[name] = version
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cwd": os.getcwd(),
        "kernel": kernel,
        "distributions": dict(sorted(dists.items(), key=lambda kv: kv[0].lower())),
        "captured": time.time(),
    }


def kernel_info() -> dict[str, Any]:
    """The kernel of a notebook: ipykernel's version, and the kernelspec name that the notebook
    file (from ``NBTRACKER_NOTEBOOK`` / ``JPY_SESSION_NAME``) asks for."""
    import json

    info: dict[str, Any] = {"name": None}
    try:
        from importlib import metadata

        info["ipykernel"] = metadata.version("ipykernel")
    except Exception:  # noqa: BLE001
        info["ipykernel"] = None
    for var in ("NBTRACKER_NOTEBOOK", "JPY_SESSION_NAME"):
        value = os.environ.get(var)
        if value and value.endswith(".ipynb"):
            try:
                meta = json.loads(Path(value).read_text(encoding="utf-8")).get("metadata") or {}
                info["name"] = (meta.get("kernelspec") or {}).get("name")
                break
            except (OSError, ValueError, AttributeError):
                continue
    return info


def start(run_dir: Path, in_kernel: bool) -> subprocess.Popen | None:
    """Write the start state from a child process (``main``): the distribution scan and git run
    on another core, not beside the user's loop under the GIL. Returns the process (``finish``
    waits for it), or None if it could not be started."""
    import json

    code = "import sys; from nbtracker.capture.state import main; sys.exit(main(sys.argv[1:]))"
    try:
        return subprocess.Popen([sys.executable, "-c", code, str(run_dir), "1" if in_kernel else "0",
                                 json.dumps(sys.path)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, close_fds=True)
    except OSError:
        return None


def main(argv: list[str]) -> int:
    """``start``'s child: env.json, code/git.json, code/git.diff of the run in ``argv[0]``."""
    import json

    run_dir, in_kernel, path = Path(argv[0]), argv[1] == "1", json.loads(argv[2])
    atomic_write_json(run_dir / "env.json", environment(kernel_info() if in_kernel else None, path))
    doc, diff = git_state(Path.cwd())
    code = run_dir / "code"
    code.mkdir(exist_ok=True)
    if diff:
        (code / "git.diff").write_bytes(diff)
    atomic_write_json(code / "git.json", doc)
    return 0
