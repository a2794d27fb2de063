"""``nbtracker gc``: delete stored contents that no run, artifact or model refers to any more."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..core.blobs import BlobStore
from ..core.files import read_json
from ..core.query import run_dirs
from ..core.records import (
    CHECKPOINTS_DIR,
    FILES_MANIFEST,
    MANIFEST,
    OUTPUTS_MANIFEST,
    artifacts_dir,
    models_dir,
    read_manifest,
)
from ..core.status import writer_gone

#: Contents younger than this are kept even when unreferenced: a checkpoint may be being written.
GRACE = 3600.0


def _digests(entries: Any) -> Iterator[str]:
    if isinstance(entries, dict):
        entries = entries.values()
    for e in entries or ():
        if isinstance(e, dict) and isinstance(e.get("sha256"), str):
            yield e["sha256"]


def referenced(root: Path) -> set[str]:
    """Every content hash a run (checkpoints, saved files, outputs), an artifact or a model uses."""
    used: set[str] = set()
    for run_dir in run_dirs(root, None):
        used.update(_digests(read_manifest(run_dir, FILES_MANIFEST)))
        used.update(_digests(read_manifest(run_dir, OUTPUTS_MANIFEST)))
        cdir = run_dir / CHECKPOINTS_DIR
        if cdir.is_dir():
            for e in os.scandir(cdir):
                try:
                    used.update(_digests(read_json(Path(e.path) / MANIFEST).get("files")))
                except (OSError, ValueError, AttributeError):
                    pass
    for folder in (artifacts_dir(root), models_dir(root)):
        for doc_path in folder.glob("*/v*.json") if folder.is_dir() else ():
            try:
                used.update(_digests(read_json(doc_path).get("files")))
            except (OSError, ValueError, AttributeError):
                pass
    return used


def gc(root: Path, dry_run: bool = False, grace: float = GRACE) -> dict[str, Any]:
    """Delete unreferenced blobs (and leftovers of interrupted copies) older than ``grace`` s.

    A blob is deleted only if no manifest names it and no run directory still links to it
    (its link count is 1). Returns counts and bytes (what would be freed with ``dry_run``)."""
    root = Path(root)
    store = BlobStore(root)
    now = time.time()
    used = referenced(root)
    report: dict[str, Any] = {"blobs": 0, "kept": 0, "deleted": 0, "bytes_freed": 0, "leftovers": 0,
                              "dry_run": dry_run}
    for digest, path in store.iter_blobs():
        report["blobs"] += 1
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        if digest in used or st.st_nlink > 1 or now - st.st_mtime < grace:
            report["kept"] += 1
            continue
        report["deleted"] += 1
        report["bytes_freed"] += st.st_size
        if not dry_run:
            path.unlink(missing_ok=True)
    # Leftovers of copies that were killed: partial blobs, partial checkpoints and artifacts.
    leftovers = list(store.tmp.glob("*.part")) if store.tmp.is_dir() else []
    for run_dir in run_dirs(root, None):
        cdir = run_dir / CHECKPOINTS_DIR
        if cdir.is_dir() and writer_gone(run_dir):
            leftovers += list(cdir.glob(".partial-*"))
    if artifacts_dir(root).is_dir():
        leftovers += list(artifacts_dir(root).glob("*/.v*.partial"))
    for p in leftovers:
        try:
            if now - p.lstat().st_mtime < grace:
                continue
        except FileNotFoundError:
            continue
        report["leftovers"] += 1
        if not dry_run:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
    return report
