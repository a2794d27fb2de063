"""The content-addressed store of a run root: file contents kept once, by SHA-256, shared by all runs.

Layout (docs/run-directory.md)::

    <root>/.store/blobs/sha256/ab/cdef...   one read-only file per distinct content
    <root>/.store/tmp/                      contents being copied (``*.part``; never read)

A blob is copied in chunks into ``tmp/`` while it is hashed, checked against the source's size
and modification time after the copy (a file that changed meanwhile is refused, never stored
torn), made read-only and renamed into place: a blob path that exists is always complete.
Run directories show the contents under their own names as hard links to the blobs (copies
where the filesystem has no hard links), so deleting a run never deletes a blob another run
uses, and ``nbtracker gc`` removes blobs nothing refers to.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from . import paths as _paths
from .errors import InvalidKeyError, NbtrackerError, StorageError
from .values import valid_text

STORE_DIR = ".store"
CHUNK = 1 << 20
#: Files at least this big are copied by the kernel in a thread while they are hashed.
PARALLEL_MIN = 8 << 20
#: A stat-cache entry is trusted only for files last changed this long before they were hashed
#: (so a write in the same timestamp tick as the hash cannot go unnoticed; see ``hash_file``).
RACY_SECONDS = 2.0
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)

# (dev, ino, size, mtime_ns, ctime_ns) -> sha256, for files that were not racy when hashed.
_stat_cache: dict[tuple[int, int, int, int, int], str] = {}
_cache_lock = threading.Lock()


class ChangedWhileCopying(StorageError):
    """A file changed (size or modification time) while it was being stored."""


def store_dir(root: Path) -> Path:
    return Path(root) / STORE_DIR


def _key(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _remember(st: os.stat_result, digest: str, started: float) -> None:
    # Trust (dev, inode, size, mtime, ctime) only if the file's last change is clearly older
    # than the moment hashing started: any later write moves mtime and ctime (and ctime cannot
    # be set back by a user), so an unchanged key means unchanged bytes. A change within the
    # same timestamp tick as the hash would not move them: such "racy" files are re-hashed.
    newest = max(st.st_mtime_ns, st.st_ctime_ns) / 1e9
    if newest < started - RACY_SECONDS:
        with _cache_lock:
            if len(_stat_cache) > 100_000:
                _stat_cache.clear()
            _stat_cache[_key(st)] = digest


def known_digest(st: os.stat_result) -> str | None:
    """The SHA-256 of a file with this stat, if it was hashed before and is provably unchanged."""
    return _stat_cache.get(_key(st))


class BlobStore:
    """The blobs of one run root."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.dir = store_dir(root)
        self.blobs = self.dir / "blobs" / "sha256"
        self.tmp = self.dir / "tmp"

    def path(self, digest: str) -> Path:
        return self.blobs / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def _prepare(self) -> None:
        try:
            self.tmp.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create the content store {self.dir}: {e.strerror or e}") from e

    def put_file(self, src: Path) -> tuple[str, int]:
        """Store the contents of the regular file ``src``; return ``(sha256, size)``.

        Unchanged files already stored are recognised by their stat (no read, see
        ``_remember``); others are copied in chunks while hashed. Raises ``ChangedWhileCopying``
        if the file changed during the copy and ``StorageError`` if the store cannot be written.
        """
        try:
            st = os.stat(src)
        except FileNotFoundError:
            raise NbtrackerError(f"{src} does not exist") from None
        if not stat.S_ISREG(st.st_mode):
            raise NbtrackerError(f"{src} is not a regular file")
        digest = known_digest(st)
        if digest is not None and self.has(digest):
            return digest, st.st_size
        self._prepare()
        started = time.time()
        h = hashlib.sha256()
        part = self.tmp / f"{os.getpid()}-{threading.get_ident()}-{os.urandom(4).hex()}.part"
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        size = 0
        try:
            with open(src, "rb") as f:
                before = os.fstat(f.fileno())
                if before.st_size >= PARALLEL_MIN:
                    # Two cores: the kernel copies (sendfile, no GIL) while this thread hashes
                    # (hashlib releases the GIL); the stat check below covers both reads.
                    copier = _Copier(src, part)
                    while n := f.readinto(buf):
                        h.update(view[:n])
                        size += n
                    copier.join()
                else:
                    with open(part, "xb") as out:
                        while n := f.readinto(buf):
                            chunk = view[:n]
                            h.update(chunk)
                            out.write(chunk)
                            size += n
                after = os.fstat(f.fileno())
            if before.st_size >= PARALLEL_MIN and os.path.getsize(part) != size:
                raise ChangedWhileCopying(f"{src} changed while it was being stored; nothing was stored")
            if (size != after.st_size or before.st_size != after.st_size
                    or before.st_mtime_ns != after.st_mtime_ns):
                raise ChangedWhileCopying(
                    f"{src} changed while it was being stored ({before.st_size} -> {after.st_size} "
                    "bytes, or its modification time moved); nothing was stored: save it again "
                    "once the writer is done")
            digest = h.hexdigest()
            self._commit(part, digest)
        except BaseException as e:
            _unlink(part)
            _raise_storage(e, f"could not store {src} in {self.dir}")
            raise
        _remember(after, digest, started)
        return digest, size

    def put_bytes(self, data: bytes) -> str:
        """Store ``data``; return its SHA-256."""
        digest = hashlib.sha256(data).hexdigest()
        if self.has(digest):
            return digest
        self._prepare()
        part = self.tmp / f"{os.getpid()}-{threading.get_ident()}-{os.urandom(4).hex()}.part"
        try:
            with open(part, "xb") as out:
                out.write(data)
            self._commit(part, digest)
        except BaseException as e:
            _unlink(part)
            _raise_storage(e, f"could not write to {self.dir}")
            raise
        return digest

    def _commit(self, part: Path, digest: str) -> None:
        final = self.path(digest)
        if final.is_file():       # the same content is already there: keep the old one
            _unlink(part)
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(part, 0o444)     # read-only: a hard link in a run directory must not edit it
        os.replace(part, final)

    def materialize(self, digest: str, dest: Path) -> str:
        """Make ``dest`` show the blob: a hard link, or a copy where links are impossible.

        Returns ``"link"`` or ``"copy"``. ``dest`` must not exist."""
        blob = self.path(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(blob, dest)
            return "link"
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP,
                               errno.EOPNOTSUPP, errno.EACCES):
                raise
        shutil.copyfile(blob, dest)
        os.chmod(dest, 0o444)
        return "copy"

    def iter_blobs(self) -> Iterator[tuple[str, Path]]:
        try:
            prefixes = sorted(os.scandir(self.blobs), key=lambda e: e.name)
        except FileNotFoundError:
            return
        for p in prefixes:
            if not p.is_dir():
                continue
            for e in os.scandir(p.path):
                yield p.name + e.name, Path(e.path)


class _Copier(threading.Thread):
    """``shutil.copyfile`` in a thread; ``join`` re-raises its error."""

    def __init__(self, src: Path, dest: Path) -> None:
        super().__init__(name="nbtracker-copy", daemon=True)
        self.src, self.dest, self.error = src, dest, None
        with open(dest, "xb"):
            pass   # claimed exclusively, like the sequential path
        self.start()

    def run(self) -> None:
        try:
            shutil.copyfile(self.src, self.dest)
        except BaseException as e:  # noqa: BLE001 - handed to join()
            self.error = e

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.error is not None:
            raise self.error


def _raise_storage(e: BaseException, what: str) -> None:
    """An OS error (full disk, permissions) becomes a ``StorageError`` saying ``what``."""
    if isinstance(e, OSError) and not isinstance(e, NbtrackerError):
        raise StorageError(f"{what}: {e.strerror or e}") from e


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# -- paths inside a run: checked, relative, never escaping ------------------------------------------
def check_relpath(name: Any, what: str = "file name") -> str:
    """``name`` as a clean relative POSIX path, or ``InvalidKeyError`` saying why not.

    Refused: empty names, absolute paths, ``..`` or ``.`` components, NUL and control
    characters, backslashes, invalid Unicode, components over 255 bytes."""
    if not isinstance(name, str) or not name:
        raise InvalidKeyError(f"{what} must be a non-empty string, not {name!r}")
    if not valid_text(name) or any(ord(c) < 32 or c == "\x7f" for c in name):
        raise InvalidKeyError(f"{what} {name!r} contains control characters or invalid Unicode")
    if "\\" in name:
        raise InvalidKeyError(f"{what} {name!r} contains a backslash; use / between folders")
    if name.startswith("/"):
        raise InvalidKeyError(f"{what} {name!r} is absolute; give a path relative to the run")
    parts = PurePosixPath(name).parts
    if not parts or any(p in ("..", ".") for p in name.split("/")):
        raise InvalidKeyError(f"{what} {name!r} leaves its folder ('..' or '.'); nothing is written "
                              "outside the run")
    if any(len(p.encode("utf-8")) > 255 for p in parts):
        raise InvalidKeyError(f"{what} {name!r} has a path component longer than 255 bytes")
    return "/".join(parts)


def walk_files(src: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    """``(relative path, path, lstat)`` of every file and symlink under the folder ``src``,
    sorted; symlinks are reported, never followed."""
    stack = [("", src)]
    while stack:
        prefix, folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            raise StorageError(f"cannot read the folder {folder}: {e.strerror or e}") from e
        subdirs = []
        for e in entries:
            rel = prefix + e.name
            st = e.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                subdirs.append((rel + "/", Path(e.path)))
            elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                yield rel, Path(e.path), st
        stack.extend(reversed(subdirs))


def store_tree(store: BlobStore, src: Path, dest: Path | None, name: str | None = None) -> list[dict[str, Any]]:
    """Store the file or folder ``src``; return its manifest entries.

    Each entry is ``{"path", "size", "sha256"}``, or ``{"path", "symlink": target}`` for a
    symlink inside a folder (recorded, never followed). Paths start with ``name`` (default: the
    last component of ``src``): ``model.pt``, or ``outdir/sub/a.bin`` for a folder. With
    ``dest``, each stored file is also materialized under ``dest/<path>``."""
    src = Path(src)
    try:
        st = os.stat(src)
    except FileNotFoundError:
        raise NbtrackerError(f"{src} does not exist (relative paths are taken from the working "
                             f"directory {os.getcwd()}); nothing was recorded") from None
    entries: list[dict[str, Any]] = []
    base = name or Path(os.path.abspath(src)).name
    if stat.S_ISREG(st.st_mode):
        items: Iterable[tuple[str, Path, os.stat_result]] = [("", src, st)]
    elif stat.S_ISDIR(st.st_mode):
        items = walk_files(src)
    else:
        raise NbtrackerError(f"{src} is neither a file nor a folder")
    for rel, path, lst in items:
        rel = check_relpath(f"{base}/{rel}" if rel else base, "file name")
        if stat.S_ISLNK(lst.st_mode):
            entries.append({"path": rel, "symlink": os.readlink(path)})
            continue
        digest, size = store.put_file(path)
        entries.append({"path": rel, "size": size, "sha256": digest})
        if dest is not None:
            store.materialize(digest, dest / rel)
    return entries


def checkout_entries(store: BlobStore, entries: Iterable[dict[str, Any]], dest: Path,
                     fallback: Path | None = None, replace: bool = False) -> list[Path]:
    """Write manifest ``entries`` under ``dest`` as ordinary writable files, byte-identical.

    Contents come from the store, else from ``fallback/<path>`` (the run's own copy). Symlinks
    are recreated last, only when they stay inside ``dest``. Returns the files written."""
    dest = Path(dest)
    written = []
    links = []
    for entry in entries:
        rel = check_relpath(entry.get("path"), "manifest path")
        target = dest / rel
        if "symlink" in entry:
            links.append((rel, entry["symlink"]))
            continue
        source = store.path(entry["sha256"])
        if not source.is_file() and _paths.mirrors is not None and (store.root / _paths.MIRROR_MARK).is_file():
            _paths.mirrors.fetch_blob(store.root, entry["sha256"])   # a copy of a mirror: fetch on use
        if not source.is_file() and fallback is not None and (fallback / rel).is_file():
            source = fallback / rel
        if not source.is_file():
            raise NbtrackerError(f"the contents of {rel} ({entry['sha256'][:12]}) are gone from "
                                 f"{store.dir}; it cannot be restored")
        no_symlink_parents(dest, rel)
        if target.exists() or target.is_symlink():
            if not replace:
                raise NbtrackerError(f"{target} already exists; pass replace=True (CLI: choose an "
                                     "empty folder) to overwrite it")
            target.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        written.append(target)
    for rel, link in links:
        resolved = os.path.normpath(os.path.join(os.path.dirname(rel), link))
        if os.path.isabs(link) or resolved.startswith(".."):
            continue   # a link out of the folder is recorded, but never recreated
        target = dest / rel
        if not target.exists() and not target.is_symlink():
            no_symlink_parents(dest, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(link, target)
    return written


def no_symlink_parents(dest: Path, rel: str) -> None:
    node = dest
    for part in rel.split("/")[:-1]:
        node = node / part
        if node.is_symlink():
            raise NbtrackerError(f"{node} is a symlink; refusing to write through it")


def digest_of(entries: Iterable[dict[str, Any]]) -> str:
    """One SHA-256 naming a whole manifest (paths, contents and links)."""
    h = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e["path"]):
        h.update(e["path"].encode("utf-8") + b"\0")
        h.update((e.get("sha256") or "link:" + e.get("symlink", "")).encode("utf-8") + b"\n")
    return h.hexdigest()
