"""``run.save`` / ``nbtracker.restore`` and output-folder archiving (``scan_outputs_once``,
``watch_outputs``): files copied into the run under their relative paths, contents in the store."""

from __future__ import annotations

import glob as globmod
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from ..core.blobs import (
    BlobStore,
    ChangedWhileCopying,
    check_relpath,
    checkout_entries,
    no_symlink_parents,
    walk_files,
)
from ..core.errors import InvalidKeyError, InvalidValueError, NbtrackerError
from ..core.files import atomic_write_json
from ..core.records import FILES_MANIFEST, OUTPUTS_MANIFEST, read_manifest, root_of

POLICIES = ("now", "end", "live")
#: Seconds between new matches of the live patterns (changed files are seen at every tick).
REGLOB = 5.0


class FileSet:
    """The files of one run area (``files/`` or ``outputs/``) and their manifest."""

    def __init__(self, run: Any, area: str, manifest: str) -> None:
        self.run = run
        self.area = run.dir / area
        self.manifest_path = run.dir / manifest
        self.store = BlobStore(root_of(run.dir))
        self.entries: dict[str, dict[str, Any]] = read_manifest(run.dir, manifest)
        self.seen: dict[str, tuple[int, int, int]] = {}     # rel -> (size, mtime_ns, ino) copied
        self.patterns: list[tuple[str, str, str]] = []       # (glob, base, policy) for end/live
        self.lock = threading.RLock()
        self.globbed = time.monotonic()

    def add(self, rel: str, src: Path, policy: str) -> bool:
        """Store ``src`` as ``rel`` unless its stat says it is already there; True if copied."""
        st = os.stat(src)
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        with self.lock:
            if self.seen.get(rel) == key and rel in self.entries:
                return False
            digest, size = self.store.put_file(src)
            old = self.entries.get(rel)
            if old is None or old.get("sha256") != digest or not (self.area / rel).exists():
                dest = self.area / rel
                no_symlink_parents(self.area, rel)
                tmp = dest.with_name(f".{dest.name}.{os.getpid()}.new")
                if tmp.exists() or tmp.is_symlink():
                    tmp.unlink()
                self.store.materialize(digest, tmp)
                os.replace(tmp, dest)
            self.entries[rel] = {"size": size, "sha256": digest, "policy": policy,
                                 "source": os.path.abspath(src), "time": time.time()}
            self.seen[rel] = key
            atomic_write_json(self.manifest_path, {"files": self.entries})
            return old is None or old.get("sha256") != digest

    def sweep(self, policies: Iterable[str]) -> None:
        """Copy again what matches the end/live patterns now (new or changed files)."""
        wanted = set(policies)
        for pattern, base, policy in list(self.patterns):
            if policy not in wanted:
                continue
            for rel, src in matches(pattern, base, quiet=True):
                self._try_add(rel, src, policy)
        self.globbed = time.monotonic()

    def tick(self) -> None:
        """The live check, about twice a second: one ``stat`` per live file; the patterns are
        matched again (a directory walk) only every ``REGLOB`` seconds, for new files."""
        if time.monotonic() - self.globbed >= REGLOB:
            self.sweep(("live",))
            return
        for rel, entry in list(self.entries.items()):
            if entry.get("policy") == "live":
                self._try_add(rel, Path(entry["source"]), "live")

    def _try_add(self, rel: str, src: Path, policy: str) -> None:
        try:
            self.add(rel, src, policy)
        except (ChangedWhileCopying, FileNotFoundError):
            pass   # being written or removed: the next check tries again


def fileset(run: Any, area: str = "files") -> FileSet:
    fs = run._parts.get(area)
    if fs is None:
        fs = run._parts[area] = FileSet(run, area, FILES_MANIFEST if area == "files" else OUTPUTS_MANIFEST)
    return fs


def _split_glob(pattern: str) -> str:
    """The folder part of ``pattern`` before its first wildcard."""
    parts = Path(pattern).parts
    fixed = []
    for p in parts:
        if globmod.has_magic(p):
            break
        fixed.append(p)
    else:
        fixed = fixed[:-1]
    return str(Path(*fixed)) if fixed else ("/" if pattern.startswith("/") else ".")


def matches(pattern: str, base: str, quiet: bool = False) -> list[tuple[str, Path]]:
    """``(relative name, path)`` of the files ``pattern`` matches (folders: their files)."""
    paths: list[Path] = []
    for hit in sorted(globmod.glob(pattern, recursive=True)):
        path = Path(hit)
        if path.is_dir():
            paths += [p for _, p, st in walk_files(path) if not p.is_symlink()]
        elif path.is_file():
            paths.append(path)
    result = []
    for path in paths:
        rel = os.path.relpath(os.path.abspath(path), base)
        if rel.startswith(".."):
            if quiet:
                continue
            raise InvalidKeyError(f"{path} is outside base_path {base}; pass a base_path that contains it")
        result.append((check_relpath(rel.replace(os.sep, "/"), "saved file name"), path))
    return result


def save(run: Any, glob: Any, base_path: Any = None, policy: str = "now") -> list[str]:
    """See :meth:`nbtracker.Run.save`."""
    run._check_open()
    if not isinstance(glob, (str, os.PathLike)) or not str(glob):
        raise InvalidValueError(f"save() takes a file name or glob pattern, not {glob!r}")
    if policy not in POLICIES:
        raise InvalidKeyError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
    pattern = os.path.expanduser(str(glob))
    if base_path is None:
        base = os.getcwd() if not os.path.isabs(pattern) else _split_glob(pattern)
    else:
        base = os.path.abspath(os.path.expanduser(str(base_path)))
    if not os.path.isabs(pattern):
        pattern = os.path.join(os.getcwd(), pattern)
    found = matches(pattern, base)
    if not found and policy == "now":
        raise NbtrackerError(f"no file matches {str(glob)!r} (relative to {os.getcwd()}); nothing "
                             "was saved (policy='end' or 'live' also picks up files created later)")
    fs = fileset(run)
    saved = []
    for rel, src in found:
        fs.add(rel, src, policy)
        saved.append(rel)
    if policy != "now":
        with fs.lock:
            if not fs.patterns:
                run._closers.append(lambda: fs.sweep(("end", "live")))
                run._tickers.append(fs.tick)
            fs.patterns.append((pattern, base, policy))
    return saved


def restore(name: str, run: Any = None, root: Any = None, replace: bool = False,
            dir: Any = None) -> IO[str]:
    """See :func:`nbtracker.restore`."""
    from ..core.query import find_run_dir
    from ..run import current_run

    rel = check_relpath(name, "file name")
    if run is None:
        run = current_run()
        if run is None:
            raise NbtrackerError("restore() needs run=: no run is active")
    run_dir = Path(run.dir) if hasattr(run, "dir") else find_run_dir(run, dir)
    entries = read_manifest(run_dir, FILES_MANIFEST)
    entry = entries.get(rel)
    if entry is None:
        known = ", ".join(sorted(entries)[:10]) or "none"
        raise NbtrackerError(f"run {run_dir.name} has no saved file {rel!r} (its files: {known})")
    dest_root = Path(root) if root is not None else Path.cwd()
    dest = dest_root / rel
    if replace or not dest.exists():
        checkout_entries(BlobStore(root_of(run_dir)), [{"path": rel, **entry}], dest_root,
                         fallback=run_dir / "files", replace=True)
    return open(dest, "r")


# -- output folders (Runicorn) -------------------------------------------------------------------
def scan_outputs_once(run: Any, paths: Any) -> list[str]:
    """See :meth:`nbtracker.Run.scan_outputs_once`."""
    run._check_open()
    folders = _folders(paths)
    fs = fileset(run, "outputs")
    copied = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for rel, p, st in walk_files(folder):
            if p.is_symlink():
                continue
            name = check_relpath(f"{folder.resolve().name}/{rel}", "output file name")
            try:
                if fs.add(name, p, "outputs"):
                    copied.append(name)
            except (ChangedWhileCopying, FileNotFoundError):
                continue   # still being written: the next scan takes it
    return copied


def watch_outputs(run: Any, paths: Any, interval: float = 10.0) -> None:
    """See :meth:`nbtracker.Run.watch_outputs`."""
    run._check_open()
    folders = _folders(paths)
    if not isinstance(interval, (int, float)) or not interval > 0:
        raise InvalidValueError(f"interval must be a positive number of seconds, not {interval!r}")
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            try:
                scan_outputs_once(run, folders)
            except Exception:  # noqa: BLE001 - a watcher never breaks the run; finish scans again
                pass

    thread = threading.Thread(target=loop, name="nbtracker-outputs", daemon=True)
    scan_outputs_once(run, folders)

    def close() -> None:
        stop.set()
        thread.join(timeout=5)
        scan_outputs_once(run, folders)   # the last state of the folders

    run._closers.append(close)
    thread.start()


def _folders(paths: Any) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    try:
        folders = [Path(os.path.expanduser(str(p))) for p in paths]
    except TypeError:
        raise InvalidValueError(f"paths must be a folder or a list of folders, not {paths!r}") from None
    for f in folders:
        if f.exists() and not f.is_dir():
            raise InvalidValueError(f"{f} is not a folder")
    return folders

