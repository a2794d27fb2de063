"""Shipping runs to object storage through fsspec (``s3://`` with s3fs, ``gs://``, ``file://``...).

The remote layout is the run directory contract with timelines cut into segments
(:mod:`nbtracker.sync.local`). A sync pass of one run:

1. contents of checkpoints, saved files and outputs: one object per SHA-256 under
   ``.store/blobs/``, uploaded only when the mirror lacks it, create-only;
2. documents and other files: uploaded when their bytes differ from the mirror's (ETag/MD5,
   else size and content), replaced whole;
3. timelines: the whole lines after what the mirror holds, as new segments, create-only
   (a retry of a segment that did reach the mirror is recognised, never doubled);
4. ``heartbeat.json`` while the run is open, then ``run.json`` last.

What the mirror holds is learnt from one listing of the run's prefix; a live mirror keeps it
in memory afterwards. So a second sync of an unchanged run uploads nothing, and a sync that
was killed at any point resumes where the mirror's objects end.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import NbtrackerError
from ..core.paths import RUN_FILE
from .local import (
    HEARTBEAT_DOC,
    SEGMENT_MAX,
    TIMELINES,
    LocalRun,
    blob_key,
    complete_bytes,
    parse_segment,
    registry_files,
    scan,
    segment_name,
)

#: Files up to this size are compared byte for byte when the store gives no checksum.
_COMPARE_MAX = 4 << 20
#: Files larger than this are streamed from disk (multipart), not read into memory.
_STREAM_MIN = 16 << 20
#: The heartbeat's time is shipped when it moved by this much (readers call a run crashed
#: after 45 s without a beat; the writer beats every 5 s).
HEARTBEAT_EVERY = 15.0


class MirrorError(NbtrackerError):
    """The mirror refused or could not be reached; the message says what to check."""


class ConflictError(MirrorError):
    """A segment at the same offset with other bytes is already on the mirror."""


@dataclass
class Stats:
    """What one sync did."""

    uploads: int = 0          # objects created or replaced
    uploaded_bytes: int = 0
    requests: int = 0         # listings, checks and uploads nbtracker made
    rows: int = 0             # complete lines shipped (all timelines)
    skipped: int = 0          # objects already on the mirror

    def add(self, other: "Stats") -> None:
        for k in ("uploads", "uploaded_bytes", "requests", "rows", "skipped"):
            setattr(self, k, getattr(self, k) + getattr(other, k))


@dataclass
class RemoteRun:
    """What the mirror holds of one run (from one listing, then kept up to date by the syncer)."""

    objects: dict[str, tuple[int, str | None]] = field(default_factory=dict)   # rel -> (size, md5)
    offsets: dict[str, int] = field(default_factory=dict)                      # timeline -> bytes shipped
    marks: dict[str, tuple[int, int]] = field(default_factory=dict)            # rel -> local (size, mtime) shipped
    unchecked: dict[str, tuple[int, int, str | None]] = field(default_factory=dict)  # timeline -> last listed segment
    heartbeat: float = 0.0   # the heartbeat time last shipped
    gaps: list[str] = field(default_factory=list)

    @classmethod
    def from_listing(cls, listing: dict[str, dict[str, Any]], prefix: str) -> "RemoteRun":
        state = cls()
        segments: dict[str, list[tuple[int, int]]] = {}
        cut = len(prefix) + 1
        for key, info in listing.items():
            rel = key[cut:]
            size = int(info.get("size") or info.get("Size") or 0)
            state.objects[rel] = (size, checksum_of(info))
            seg = parse_segment(rel)
            if seg:
                segments.setdefault(seg[0], []).append((seg[1], size))
        for timeline, segs in segments.items():
            end = 0
            for start, size in sorted(segs):
                if start == end:
                    state.unchecked[timeline] = (start, size, state.objects[segment_name(timeline, start)][1])
                    end += size
                elif start > end:   # a hole: never made by nbtracker; ship from the hole
                    state.gaps.append(f"{timeline} at byte {end}")
                    break
            state.offsets[timeline] = end
        return state


def checksum_of(info: dict[str, Any]) -> str | None:
    """The MD5 (hex) an object store reports for an object, when it reports one."""
    etag = info.get("ETag") or info.get("etag")
    if isinstance(etag, str):
        etag = etag.strip('"')
        if len(etag) == 32 and "-" not in etag:
            return etag.lower()
    md5 = info.get("md5Hash") or info.get("md5")
    if isinstance(md5, str):
        if len(md5) == 32:
            return md5.lower()
        try:
            import base64

            return base64.b64decode(md5).hex()
        except ValueError:
            return None
    return None


def install_hint(scheme: str, fallback: str | None = None) -> str:
    """What to install for a storage scheme's fsspec backend."""
    if scheme in ("s3", "s3a"):
        return "pip install 'nbtracker[s3]'"
    return fallback or f"install the fsspec backend for {scheme}://"


def open_fs(url: str, options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """``(filesystem, base path)`` for a mirror URL; a clear error for a missing backend."""
    try:
        import fsspec
    except ImportError:
        raise MirrorError(f"mirroring to {url} needs fsspec and the backend for it: "
                          "pip install 'nbtracker[s3]' (s3fs) or the fsspec backend of your store") from None
    try:
        # A fresh filesystem object each time: fsspec's instance cache would keep credentials
        # read from the environment before they were changed.
        fs, base = fsspec.core.url_to_fs(url, **{"skip_instance_cache": True, **(options or {})})
    except ImportError as e:
        hint = install_hint(url.split("://", 1)[0])
        raise MirrorError(f"mirroring to {url} needs a library that is not installed ({e}): {hint}") from None
    except ValueError as e:
        raise MirrorError(f"{url} is not a storage URL fsspec knows: {e}") from None
    if getattr(fs, "protocol", None) in ("file", "local", ("file", "local")) or "local" in str(type(fs)).lower():
        fs.auto_mkdir = True    # a folder mirror (file://, tests, a shared drive) makes its folders
    return fs, base.rstrip("/")


def explain(url: str, e: BaseException) -> MirrorError:
    """A network or store error as one sentence that says what to check."""
    if isinstance(e, MirrorError):
        return e
    text = f"{type(e).__name__}: {e}"
    low = text.lower()
    if isinstance(e, PermissionError) or "signature" in low or "accessdenied" in low or "forbidden" in low \
            or "invalidaccesskeyid" in low:
        return MirrorError(f"{url} refused the credentials ({e}); check AWS_ACCESS_KEY_ID and "
                           "AWS_SECRET_ACCESS_KEY (or the mirror's storage options)")
    if isinstance(e, FileNotFoundError) or "nosuchbucket" in low:
        return MirrorError(f"{url}: the bucket or folder does not exist ({e}); create it first")
    if "connect" in low or "timeout" in low or "timed out" in low or isinstance(e, (ConnectionError, TimeoutError)):
        return MirrorError(f"cannot reach {url} ({text}); check the endpoint (AWS_ENDPOINT_URL) and the network")
    return MirrorError(f"{url}: {text}")


def _byte_at(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(1)
    except OSError:
        return b""


def _exists_error(e: BaseException) -> bool:
    text = str(e).lower().replace("-", "")
    return isinstance(e, FileExistsError) or "precondition" in text or "412" in text or "already exists" in text


class ObjectMirror:
    """Ships run directories to one fsspec URL."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.fs, self.base = open_fs(self.url, options)
        self._blobs: set[str] = set()          # blobs known to be on the mirror
        self._registry: dict[str, tuple[int, str | None]] | None = None

    def _key(self, rel: str) -> str:
        return f"{self.base}/{rel}"

    def warm(self) -> None:
        """Build the store's client now (s3fs: about 0.1 s of CPU, no network), so that a live
        mirror's first pass does not spend it in the middle of the user's loop."""
        connect = getattr(self.fs, "connect", None)
        if callable(connect):
            try:
                connect()
            except Exception:  # noqa: BLE001 - the first pass reports whatever is wrong
                pass

    # -- reading the mirror's state ------------------------------------------------------------
    def remote_state(self, local: LocalRun, stats: Stats) -> RemoteRun:
        prefix = self._key(local.prefix)
        stats.requests += 1
        try:
            self.fs.invalidate_cache(prefix)
            listing = self.fs.find(prefix, detail=True, withdirs=False)
        except FileNotFoundError:
            listing = {}
        except Exception as e:  # noqa: BLE001 - reported as a MirrorError that says what to check
            raise explain(self.url, e) from e
        return RemoteRun.from_listing(listing, prefix)

    # -- one pass ------------------------------------------------------------------------------
    def sync_run(self, run_dir: Path, state: RemoteRun | None = None, *, registry: bool = True,
                 budget: float | None = None) -> tuple[Stats, RemoteRun]:
        """Ship what the mirror lacks of ``run_dir``; returns what was done and the mirror's
        state afterwards (pass it back in for the next pass of a live mirror). ``budget``
        seconds bound the pass: whatever is left goes with the next one."""
        stats = Stats()
        local = scan(run_dir)
        if state is None:
            state = self.remote_state(local, stats)
        deadline = None if budget is None else time.monotonic() + budget
        try:
            for digest, (path, size) in local.blobs.items():
                self._ship_blob(digest, path, size, stats)
            if registry:
                self._ship_registry(run_dir.parent.parent, stats)
            for rel, path in local.files:
                self._ship_file(local, state, rel, path, stats)
            for rel, path in local.timelines:
                self._ship_timeline(local, state, rel, path, stats, deadline)
            if local.heartbeat is not None and local.heartbeat - state.heartbeat >= HEARTBEAT_EVERY:
                doc = json.dumps({"time": local.heartbeat}).encode()
                self._put_doc(local, state, HEARTBEAT_DOC, doc, stats)
                state.heartbeat = local.heartbeat
            if local.run_json is not None:
                self._ship_file(local, state, RUN_FILE, local.run_json, stats)
        except MirrorError:
            raise
        except Exception as e:  # noqa: BLE001 - every store error reads as one MirrorError
            raise explain(self.url, e) from e
        return stats, state

    def pending(self, run_dir: Path, state: RemoteRun) -> int:
        """Bytes of timelines not yet on the mirror (what a live mirror is behind by)."""
        behind = 0
        for rel in TIMELINES:
            try:
                behind += max(0, (Path(run_dir) / rel).stat().st_size - state.offsets.get(rel, 0))
            except OSError:
                pass
        return behind

    # -- the kinds -----------------------------------------------------------------------------
    def _ship_blob(self, digest: str, path: Path, size: int, stats: Stats) -> None:
        if digest in self._blobs:
            return
        key = self._key(blob_key(digest))
        stats.requests += 1
        if self.fs.exists(key):
            stats.skipped += 1
        else:
            self._create(key, path, stats)
        self._blobs.add(digest)

    def _create(self, key: str, source: Path | bytes, stats: Stats) -> bool:
        """Create ``key`` only if absent; False if it was there already."""
        stats.requests += 1
        try:
            if isinstance(source, bytes):
                self.fs.pipe_file(key, source, mode="create")
                size = len(source)
            else:
                size = source.stat().st_size
                if size >= _STREAM_MIN:
                    self.fs.put_file(str(source), key, mode="create")
                else:
                    self.fs.pipe_file(key, source.read_bytes(), mode="create")
        except Exception as e:  # noqa: BLE001
            if _exists_error(e):
                stats.skipped += 1
                return False
            raise
        stats.uploads += 1
        stats.uploaded_bytes += size
        return True

    def _ship_file(self, local: LocalRun, state: RemoteRun, rel: str, path: Path, stats: Stats) -> None:
        try:
            st = path.stat()
            if state.marks.get(rel) == (st.st_size, st.st_mtime_ns) and rel in state.objects:
                return   # shipped by this syncer and untouched since: not even read again
            data = path.read_bytes()
        except OSError:
            return   # removed meanwhile (a replaced document is renamed over, never absent)
        self._put_doc(local, state, rel, data, stats)
        state.marks[rel] = (st.st_size, st.st_mtime_ns)

    def _put_doc(self, local: LocalRun, state: RemoteRun, rel: str, data: bytes, stats: Stats) -> None:
        self._replace(f"{local.prefix}/{rel}", data, state.objects, rel, stats)

    def _replace(self, key: str, data: bytes, known: dict[str, tuple[int, str | None]], name: str,
                 stats: Stats) -> None:
        """Upload ``data`` to ``key`` unless the mirror holds these bytes already."""
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        have = known.get(name)
        if have is not None and have[0] == len(data):
            if have[1] == md5:
                stats.skipped += 1
                return
            if have[1] is None and len(data) <= _COMPARE_MAX:   # a store without checksums
                stats.requests += 1
                try:
                    same = self.fs.cat_file(self._key(key)) == data
                except FileNotFoundError:
                    same = False
                if same:
                    known[name] = (len(data), md5)
                    stats.skipped += 1
                    return
        stats.requests += 1
        self.fs.pipe_file(self._key(key), data)
        known[name] = (len(data), md5)
        stats.uploads += 1
        stats.uploaded_bytes += len(data)

    def _check_resume(self, local: LocalRun, state: RemoteRun, rel: str, path: Path, stats: Stats) -> None:
        """Before resuming a timeline from a listing: the mirror's last segment must hold the
        same bytes as the local file there (else it is another writer's, and nothing is shipped)."""
        start, size, md5 = state.unchecked.pop(rel)
        with open(path, "rb") as f:
            f.seek(start)
            mine = f.read(size)
        if md5 is None:
            stats.requests += 1
            same = self.fs.cat_file(self._key(f"{local.prefix}/{segment_name(rel, start)}")) == mine
        else:
            same = hashlib.md5(mine, usedforsecurity=False).hexdigest() == md5
        if not same:
            raise ConflictError(f"{self.url}/{local.prefix}/{segment_name(rel, start)} holds other bytes than "
                                f"{path} there: another writer ships this run to the same mirror; nothing "
                                "more of it is shipped")

    def _ship_timeline(self, local: LocalRun, state: RemoteRun, rel: str, path: Path, stats: Stats,
                       deadline: float | None) -> None:
        if rel in state.unchecked:
            self._check_resume(local, state, rel, path, stats)
        start = state.offsets.get(rel, 0)
        try:
            size = path.stat().st_size
        except OSError:
            return
        if size < start:
            raise MirrorError(f"{path} is shorter ({size} bytes) than what {self.url} holds of it "
                              f"({start} bytes); it was rewritten, so it is not shipped")
        while start < size:
            data = complete_bytes(path, start, SEGMENT_MAX)
            if not data:
                return   # only an unfinished line so far
            seg = segment_name(rel, start)
            key = self._key(f"{local.prefix}/{seg}")
            length = len(data)
            if self._create(key, data, stats):
                stats.rows += data.count(b"\n")
            else:
                # Already there: our own earlier attempt (a retry after a lost reply), or another
                # syncer of this run (a live mirror and `nbtracker sync` at once) that cut its
                # segment at another line. Either way it holds this file's bytes from ``start``:
                # go on after them.
                length = self._size_of_existing(key, stats)
                if length != len(data) and (length <= 0 or start + length > size
                                            or _byte_at(path, start + length - 1) != b"\n"):
                    raise ConflictError(f"{key} already exists with other contents; another "
                                        "writer ships this run to the same mirror")
            state.objects[seg] = (length, None)
            start += length
            state.offsets[rel] = start
            if deadline is not None and time.monotonic() > deadline:
                return

    def _size_of_existing(self, key: str, stats: Stats) -> int:
        """The size of an object a create-only upload found there. The other upload may still
        be in flight (a store can refuse ours before it shows theirs): wait for it, briefly."""
        for attempt in range(50):
            stats.requests += 1
            try:
                self.fs.invalidate_cache(key)
                return int(self.fs.info(key).get("size") or 0)
            except FileNotFoundError:
                if attempt == 49:
                    raise
                time.sleep(0.1)
        return 0

    def _ship_registry(self, root: Path, stats: Stats) -> None:
        """The root's artifact and model documents (and the contents they list)."""
        items = list(registry_files(root))
        if not items:
            return
        if self._registry is None:
            listing: dict[str, Any] = {}
            for kind in ("artifacts", "models"):
                stats.requests += 1
                try:
                    listing.update(self.fs.find(self._key(f".store/{kind}"), detail=True, withdirs=False))
                except FileNotFoundError:
                    pass
            cut = len(self.base) + 1
            self._registry = {k[cut:]: (int(v.get("size") or 0), checksum_of(v)) for k, v in listing.items()}
        for key, path, entries in items:
            for entry in entries:
                digest = entry.get("sha256")
                if isinstance(digest, str) and len(digest) == 64:
                    blob = root / ".store" / "blobs" / "sha256" / digest[:2] / digest[2:]
                    if blob.is_file():
                        self._ship_blob(digest, blob, int(entry.get("size") or 0), stats)
            try:
                data = path.read_bytes()
            except OSError:
                continue
            self._replace(key, data, self._registry, key, stats)
