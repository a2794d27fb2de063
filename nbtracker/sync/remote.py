"""Reading runs from a mirror: ``runs(dir="s3://...")``, ``load``, ``compare``, ``--root s3://``.

A mirror is read through a local copy that has the run directory layout, so every reader of
nbtracker works on it unchanged: ``<cache>/mirrors/<hash of the URL>/`` (``$NBTRACKER_CACHE``,
else ``$XDG_CACHE_HOME/nbtracker``, else ``~/.cache/nbtracker``), marked by ``.mirror.json``.

- Listing the runs costs one listing per project (paged by the store, 1,000 keys a page) and one
  GET per ``run.json`` that changed since the last look (fetched concurrently).
- A run's other files are fetched when it is first used (``history()``, ``load()``, a chart):
  documents whose checksum changed, and the timeline segments after what the copy holds,
  appended in order (segments never change, so each is fetched once).
- Stored contents (checkpoint files) are fetched when something checks them out.

The copy is the reader's own: nothing is ever written to the mirror.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from ..core.files import atomic_write_json
from ..core.paths import HEARTBEAT_FILE, MIRROR_MARK, RUN_FILE
from .local import HEARTBEAT_DOC, blob_key, parse_segment
from .objstore import MirrorError, checksum_of, explain, open_fs

_FETCHED = ".fetched.json"


def cache_home() -> Path:
    env = os.environ.get("NBTRACKER_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "nbtracker"


class MirrorCopy:
    """The local copy of one mirror URL."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.fs, self.base = open_fs(self.url, options)
        self.dir = cache_home() / "mirrors" / hashlib.sha256(self.url.encode()).hexdigest()[:16]
        self.listings: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self.requests = 0
        self._lock = threading.Lock()

    # -- the run list --------------------------------------------------------------------------
    def refresh(self) -> Path:
        """List the mirror, fetch the ``run.json`` (and heartbeat) of every run that changed,
        drop runs the mirror no longer has; return the copy's folder."""
        try:
            with self._lock:
                self._refresh()
        except MirrorError:
            raise
        except Exception as e:  # noqa: BLE001 - one clear sentence for any store error
            raise explain(self.url, e) from e
        return self.dir

    def _refresh(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.dir / MIRROR_MARK, {"url": self.url, "note": "a local read-only copy of a "
                                                   "mirror, made by nbtracker; safe to delete"})
        self.fs.invalidate_cache()
        self.requests += 1
        try:
            tops = self.fs.ls(self.base, detail=True)
        except FileNotFoundError:
            tops = []
        projects = [t["name"].rstrip("/").rsplit("/", 1)[-1] for t in tops if t.get("type") == "directory"]
        projects = [p for p in projects if not p.startswith(".")]
        listings: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        for project in projects:
            prefix = f"{self.base}/{project}/"
            self.requests += 1
            for key, info in self.fs.find(prefix.rstrip("/"), detail=True, withdirs=False).items():
                rest = key[len(prefix):]
                if "/" not in rest:
                    continue
                run_id, rel = rest.split("/", 1)
                if run_id.startswith("."):
                    continue
                listings.setdefault((project, run_id), {})[rel] = info
        self.listings = {k: v for k, v in listings.items() if RUN_FILE in v}
        # run.json of every run that changed; then the heartbeat of the runs that say "running"
        # (a finished run's status is final: its heartbeat is not needed to tell it apart).
        for rel in (RUN_FILE, HEARTBEAT_DOC):
            want: list[tuple[Path, str, dict[str, Any]]] = []
            for (project, run_id), listing in self.listings.items():
                run_dir = self.dir / project / run_id
                info = listing.get(rel)
                if info is None or _same(_read_fetched(run_dir).get(rel), info):
                    continue
                if rel == HEARTBEAT_DOC and not _says_running(run_dir):
                    continue
                want.append((run_dir, rel, info))
            self._fetch_docs(want)
        for project_dir in _dirs(self.dir):
            for run_dir in _dirs(project_dir):
                if (project_dir.name, run_dir.name) not in self.listings:
                    shutil.rmtree(run_dir, ignore_errors=True)
            if not any(project_dir.iterdir()):
                project_dir.rmdir()

    def _fetch_docs(self, want: list[tuple[Path, str, dict[str, Any]]]) -> None:
        if not want:
            return
        keys = [f"{self.base}/{d.parent.name}/{d.name}/{rel}" for d, rel, _ in want]
        self.requests += len(keys)
        got = self.fs.cat(keys, on_error="return")
        by_dir: dict[Path, dict[str, Any]] = {}
        for (run_dir, rel, info), key in zip(want, keys):
            data = got.get(key)
            if not isinstance(data, bytes):
                continue   # vanished between the listing and the GET: the next look sees why
            run_dir.mkdir(parents=True, exist_ok=True)
            fetched = by_dir.setdefault(run_dir, _read_fetched(run_dir))
            if rel == HEARTBEAT_DOC:
                _set_heartbeat(run_dir, data)
            else:
                _write(run_dir / rel, data)
            fetched[rel] = _mark(info)
        for run_dir, fetched in by_dir.items():
            _write(run_dir / _FETCHED, json.dumps(fetched).encode())

    # -- one run, whole ------------------------------------------------------------------------
    def fill(self, run_dir: Path) -> None:
        """Bring ``run_dir`` (a run folder of this copy) up to date with all its files."""
        listing = self.listings.get((run_dir.parent.name, run_dir.name))
        if listing is None:
            return
        try:
            with self._lock:
                self._fill(run_dir, listing)
        except MirrorError:
            raise
        except Exception as e:  # noqa: BLE001
            raise explain(self.url, e) from e

    def _fill(self, run_dir: Path, listing: dict[str, dict[str, Any]]) -> None:
        fetched = _read_fetched(run_dir)
        docs = []
        segments: dict[str, list[tuple[int, int]]] = {}
        for rel, info in listing.items():
            seg = parse_segment(rel)
            if seg:
                segments.setdefault(seg[0], []).append((seg[1], int(info.get("size") or 0)))
            elif rel not in (RUN_FILE, HEARTBEAT_DOC) and _safe(rel) and not _same(fetched.get(rel), info):
                docs.append((run_dir, rel, info))
        self._fetch_docs(docs)
        fetched = _read_fetched(run_dir)
        offsets = fetched.setdefault("offsets", {})
        wanted: list[tuple[str, int]] = []
        for timeline, segs in segments.items():
            have = int(offsets.get(timeline, 0))
            if have and not (run_dir / timeline).is_file():
                have = 0
            for start, size in sorted(segs):
                if start == have:
                    wanted.append((timeline, start))
                    have += size
                elif start > have:
                    break
        if wanted:
            keys = [f"{self.base}/{run_dir.parent.name}/{run_dir.name}/{t}.d/{s:016d}.jsonl" for t, s in wanted]
            self.requests += len(keys)
            got = self.fs.cat(keys, on_error="return")
            for (timeline, start), key in zip(wanted, keys):
                data = got.get(key)
                if not isinstance(data, bytes):
                    break
                path = run_dir / timeline
                mode = "r+b" if path.exists() else "wb"
                with open(path, mode) as f:   # append at the segment's offset, whatever was there
                    f.seek(start)
                    f.write(data)
                    f.truncate()
                offsets[timeline] = start + len(data)
        _write(run_dir / _FETCHED, json.dumps(fetched).encode())

    def fetch_blob(self, digest: str) -> bool:
        target = self.dir / blob_key(digest)
        if target.is_file():
            return True
        try:
            self.requests += 1
            data = self.fs.cat_file(f"{self.base}/{blob_key(digest)}")
        except FileNotFoundError:
            return False
        except Exception as e:  # noqa: BLE001
            raise explain(self.url, e) from e
        if hashlib.sha256(data).hexdigest() != digest:
            raise MirrorError(f"{self.url}: the stored content {digest[:12]}... does not match its hash")
        _write(target, data)
        return True


# -- what core calls, through nbtracker.sync (core/paths.py MirrorHooks) -------------------
_copies: dict[tuple[str, Path], MirrorCopy] = {}
_copies_lock = threading.Lock()


def copy_for(url: str, options: dict[str, Any] | None = None) -> MirrorCopy:
    key = (url.rstrip("/"), cache_home())
    with _copies_lock:
        copy = _copies.get(key)
        if copy is None or options:
            copy = _copies[key] = MirrorCopy(key[0], options)
        return copy


def open_root(url: str) -> Path:
    """Bring the local copy of ``url``'s run list up to date; its folder."""
    return copy_for(url).refresh()


def fill(run_dir: Path) -> None:
    """Bring one run folder of a local copy up to date with all its files."""
    copy = _copy_of(Path(run_dir).parent.parent)
    if copy is not None:
        copy.fill(Path(run_dir))


def fetch_blob(root: Path, digest: str) -> bool:
    """Fetch one stored content into a local copy's store; False if the mirror lacks it."""
    copy = _copy_of(Path(root))
    return copy.fetch_blob(digest) if copy is not None else False


def _copy_of(root: Path) -> MirrorCopy | None:
    try:
        url = json.loads((root / MIRROR_MARK).read_bytes())["url"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    copy = copy_for(url)
    if not copy.listings:
        copy.refresh()
    return copy


# -- small helpers -----------------------------------------------------------------------------
def _mark(info: dict[str, Any]) -> list[Any]:
    return [int(info.get("size") or 0), checksum_of(info), str(info.get("LastModified") or info.get("mtime") or "")]


def _same(mark: Any, info: dict[str, Any]) -> bool:
    if not isinstance(mark, list) or len(mark) != 3:
        return False
    now = _mark(info)
    if now[1] is not None or mark[1] is not None:
        return mark[:2] == now[:2]
    return mark == now and bool(now[2])   # no checksum: size and modification time


def _safe(rel: str) -> bool:
    parts = rel.split("/")
    return all(p and p not in (".", "..") and "\\" not in p for p in parts) and parts[-1] != _FETCHED


def _says_running(run_dir: Path) -> bool:
    try:
        return json.loads((run_dir / RUN_FILE).read_bytes()).get("status") == "running"
    except (OSError, ValueError, AttributeError):
        return True


def _read_fetched(run_dir: Path) -> dict[str, Any]:
    try:
        doc = json.loads((run_dir / _FETCHED).read_bytes())
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _set_heartbeat(run_dir: Path, data: bytes) -> None:
    try:
        when = float(json.loads(data)["time"])
    except (ValueError, KeyError, TypeError):
        return
    path = run_dir / HEARTBEAT_FILE
    path.touch()
    os.utime(path, (when, when))


def _dirs(folder: Path) -> list[Path]:
    try:
        return [e for e in folder.iterdir() if e.is_dir() and not e.name.startswith(".")]
    except OSError:
        return []
