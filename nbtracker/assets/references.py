"""Runicorn's references: datasets and pretrained models recorded by location and fingerprint, not copied."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from pathlib import Path
from typing import Any

from ..core.blobs import walk_files
from ..core.errors import InvalidValueError
from ..core.files import append_line
from ..core.records import REFERENCES_LOG
from ..core.values import jsonable, valid_text

#: Folders with more files than this get a fingerprint of the first ones only (and say so).
MAX_FILES = 1_000_000


def fingerprint(path: Path) -> dict[str, Any]:
    """A fast fingerprint of a local file or folder: SHA-256 over each file's relative path,
    size and modification time (one ``stat`` per file, no content read), so a 100 GB tree costs
    what listing it costs. It changes when a file is added, removed, resized or rewritten; it
    does not see an edit that keeps size and modification time (say ``method: stat``)."""
    h = hashlib.sha256()
    files = total = 0
    truncated = False
    st = os.stat(path)
    if stat.S_ISREG(st.st_mode):
        items = [(path.name, st)]
    else:
        items = ((rel, s) for rel, _, s in walk_files(path))
    for rel, s in items:
        if files >= MAX_FILES:
            truncated = True
            break
        h.update(f"{rel}\0{s.st_size}\0{s.st_mtime_ns}\n".encode("utf-8", "backslashreplace"))
        files += 1
        total += s.st_size
    out = {"method": "stat", "sha256": h.hexdigest(), "files": files, "bytes": total}
    if truncated:
        out["truncated_at"] = MAX_FILES
    return out


def record(run: Any, kind: str, name: Any, location: Any, **fields: Any) -> dict[str, Any]:
    run._check_open()
    if not isinstance(name, str) or not name or not valid_text(name):
        raise InvalidValueError(f"{kind} name must be a non-empty string, not {name!r}")
    doc: dict[str, Any] = {"kind": kind, "name": name, "time": time.time()}
    if location is not None:
        if not isinstance(location, (str, os.PathLike)) or not str(location):
            raise InvalidValueError(f"{kind} location must be a path or URI string, not {location!r}")
        loc = str(location)
        if "://" in loc:
            doc["uri"] = loc
        else:
            p = Path(loc).expanduser()
            doc["path"] = os.path.abspath(p)
            doc["exists"] = p.exists()
            if p.exists():
                doc["fingerprint"] = fingerprint(p)
    for k, v in fields.items():
        if v is not None:
            doc[k] = jsonable(v, f"{kind} {k}")
    append_line(run.dir / REFERENCES_LOG, doc)
    return doc
