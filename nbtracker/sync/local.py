"""What a mirror ships from a local run directory, and where it goes (docs/teams.md).

Every file of a run falls in one of four kinds:

- **timelines** (``metrics.jsonl``, ``cells.jsonl``, ``text.jsonl``, ...): append-only; shipped
  as immutable segments ``<name>.d/<byte offset, 16 digits>.jsonl``, each holding whole lines
  only (a torn or unfinished last line is never shipped), created with create-only semantics;
- **stored contents**: the files of checkpoints, ``run.save()`` and outputs are hard links into
  the root's content store; only their manifests ship with the run, the contents ship once per
  mirror as ``.store/blobs/sha256/<2>/<62>``;
- **documents and other files** (``run.json``, manifests, code, media): replaced whole when
  their bytes changed; ``run.json`` goes last, so a reader that sees a final status sees
  everything the run wrote before it;
- **never shipped**: the writer lock, temporary files, unfinished checkpoints; the heartbeat's
  time ships as ``heartbeat.json`` so a mirror reader can tell a live run from a crashed one.

This module only looks at local files (no network, standard library only).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..core.blobs import BlobStore, check_relpath
from ..core.files import read_json
from ..core.paths import HEARTBEAT_FILE, LOCK_FILE, RUN_FILE
from ..core.records import CHECKPOINTS_DIR, FILES_MANIFEST, MANIFEST, OUTPUTS_MANIFEST

TIMELINES = ("metrics.jsonl", "cells.jsonl", "text.jsonl", "console.jsonl", "system.jsonl",
             "artifacts.jsonl", "references.jsonl")
SEGMENT_DIR = ".d"            # metrics.jsonl -> metrics.jsonl.d/0000000000000000.jsonl
HEARTBEAT_DOC = "heartbeat.json"
#: Largest segment a sync cuts from a timeline (a live mirror ships what arrived since its last pass).
SEGMENT_MAX = int(os.environ.get("NBTRACKER_MIRROR_SEGMENT") or 8 << 20)
_SEGMENT = re.compile(r"(?P<timeline>[a-z]+\.jsonl)\.d/(?P<start>\d{16})\.jsonl\Z")
#: Folders whose files are hard links into the content store (their manifests say which).
_STORED_DIRS = ("files", "outputs")


def segment_name(timeline: str, start: int) -> str:
    return f"{timeline}{SEGMENT_DIR}/{start:016d}.jsonl"


def parse_segment(rel: str) -> tuple[str, int] | None:
    """``(timeline, start offset)`` of a segment's relative path, else None."""
    m = _SEGMENT.match(rel)
    return (m["timeline"], int(m["start"])) if m else None


def blob_key(digest: str) -> str:
    return f".store/blobs/sha256/{digest[:2]}/{digest[2:]}"


@dataclass
class LocalRun:
    """A snapshot of what one run directory holds, in the order a sync ships it."""

    dir: Path
    project: str
    id: str
    blobs: dict[str, tuple[Path, int]] = field(default_factory=dict)   # digest -> (file, size)
    files: list[tuple[str, Path]] = field(default_factory=list)        # documents, code, media
    run_json: Path | None = None                                       # shipped after everything else
    timelines: list[tuple[str, Path]] = field(default_factory=list)
    heartbeat: float | None = None

    @property
    def prefix(self) -> str:
        return f"{self.project}/{self.id}"


def scan(run_dir: Path) -> LocalRun:
    """List what ``run_dir`` holds now; files that vanish meanwhile are simply not listed."""
    run_dir = Path(run_dir)
    run = LocalRun(run_dir, run_dir.parent.name, run_dir.name)
    store = BlobStore(run_dir.parent.parent)
    for manifest, folder in _manifests(run_dir):
        for entry in _entries(manifest):
            digest = entry.get("sha256")
            if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
                continue
            try:
                rel = check_relpath(entry.get("path"), "manifest path")
            except Exception:  # noqa: BLE001 - a damaged entry is not shipped, the rest is
                continue
            blob = store.path(digest)
            source = blob if blob.is_file() else folder / rel
            run.blobs.setdefault(digest, (source, int(entry.get("size") or 0)))
    for rel, path in _walk(run_dir):
        if "/" not in rel and rel in TIMELINES:
            run.timelines.append((rel, path))
        elif rel == RUN_FILE:
            run.run_json = path
        else:
            run.files.append((rel, path))
    run.files.sort(key=lambda item: (item[0].endswith(".json"), item[0]))  # manifests after contents
    try:
        run.heartbeat = os.stat(run_dir / HEARTBEAT_FILE).st_mtime
    except OSError:
        pass
    return run


def _manifests(run_dir: Path) -> Iterator[tuple[Path, Path]]:
    """(manifest file, folder showing its files) of every complete manifest of the run."""
    yield run_dir / FILES_MANIFEST, run_dir / "files"
    yield run_dir / OUTPUTS_MANIFEST, run_dir / "outputs"
    try:
        ids = [e.name for e in os.scandir(run_dir / CHECKPOINTS_DIR)
               if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")]
    except OSError:
        ids = []
    for cid in sorted(ids):
        folder = run_dir / CHECKPOINTS_DIR / cid
        yield folder / MANIFEST, folder / "files"


def _entries(manifest: Path) -> list[dict[str, Any]]:
    try:
        doc = read_json(manifest)
    except (OSError, ValueError):
        return []
    files = doc.get("files") if isinstance(doc, dict) else None
    if isinstance(files, dict):        # files.json / outputs.json: {path: {size, sha256, ...}}
        return [dict(v, path=k) for k, v in files.items() if isinstance(v, dict)]
    if isinstance(files, list):        # checkpoint manifest: [{path, size, sha256}, ...]
        return [e for e in files if isinstance(e, dict)]
    return []


def _skip(rel: str, name: str) -> bool:
    return (name in (LOCK_FILE, HEARTBEAT_FILE) and "/" not in rel) or name.endswith((".tmp", ".part")) \
        or name.startswith(".partial")


def _walk(run_dir: Path, rel: str = "") -> Iterator[tuple[str, Path]]:
    """Relative POSIX paths of the regular files to ship (symlinks are never followed)."""
    try:
        entries = sorted(os.scandir(run_dir / rel if rel else run_dir), key=lambda e: e.name)
    except OSError:
        return
    for e in entries:
        sub = f"{rel}/{e.name}" if rel else e.name
        if _skip(sub, e.name):
            continue
        if e.is_dir(follow_symlinks=False):
            if sub in _STORED_DIRS or (sub.startswith(CHECKPOINTS_DIR + "/") and sub.count("/") == 2
                                       and e.name == "files"):
                continue   # hard links into the store: shipped by hash from the manifests
            yield from _walk(run_dir, sub)
        elif e.is_file(follow_symlinks=False):
            yield sub, Path(e.path)


def complete_bytes(path: Path, start: int, limit: int = SEGMENT_MAX) -> bytes:
    """The whole lines of ``path`` from byte ``start``: at most ``limit`` bytes unless a single
    line is longer; empty when no complete line follows ``start``."""
    try:
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(limit)
            end = data.rfind(b"\n")
            if end < 0 and len(data) == limit:   # one line longer than the limit: read it whole
                more = f.readline()
                data += more
                end = len(data) - 1 if data.endswith(b"\n") else -1
    except OSError:
        return b""
    return data[:end + 1] if end >= 0 else b""


def registry_files(root: Path) -> Iterator[tuple[str, Path, list[dict[str, Any]]]]:
    """The documents of the root's artifact and model registry: ``(key under the mirror,
    file, the manifest entries whose contents it needs)``; version folders (hard links) are
    represented by their documents' ``files``."""
    for kind in ("artifacts", "models"):
        base = Path(root) / ".store" / kind
        try:
            names = sorted(e.name for e in os.scandir(base) if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
        for name in names:
            folder = base / name
            try:
                docs = sorted(e.name for e in os.scandir(folder)
                              if e.is_file(follow_symlinks=False) and e.name.endswith(".json"))
            except OSError:
                continue
            for doc in docs:
                path = folder / doc
                entries = _entries(path) if doc.startswith("v") else []
                yield f".store/{kind}/{name}/{doc}", path, entries
