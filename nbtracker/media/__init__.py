"""Values that turn into files: ``Image``, ``Histogram``, ``Table``; a row holds a reference.

``run.log({"sample": Image(x)})`` writes ``media/<key>/<step>-<n>.png`` (in the background,
see ``image.py``) and records ``{"_type": "image", "path": ..., ...}`` in the row. Histograms
and tables are CSV files pandas reads directly.
"""

from __future__ import annotations

import os
import re
from typing import Any

from .base import Media
from .data import Histogram, Table
from .image import Image, wait_written

__all__ = ["Histogram", "Image", "Media", "Table", "store_media", "wait_written"]

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def media_folder(key: str) -> str:
    """A metric key as a relative folder under ``media/``: unsafe characters become ``_``."""
    parts = [_SAFE.sub("_", p) for p in key.split("/")]
    return "/".join(p if p and p not in (".", "..") else "_" for p in parts)


def store_media(run: Any, values: dict[str, Any], step: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Replace media values by the references of their stored files.

    Returns ``(row values, plain values)``: the second has only what the summary keeps."""
    out: dict[str, Any] = {}
    plain: dict[str, Any] = {}
    for key, v in values.items():
        if isinstance(v, Media):
            out[key] = v.store(run, _slot(run, key, step, v.extension))
        elif isinstance(v, (list, tuple)) and v and all(isinstance(i, Media) for i in v):
            out[key] = {"_type": "gallery", "items": [
                i.store(run, _slot(run, key, step, i.extension)) for i in v]}
        else:
            out[key] = plain[key] = v
    return out, plain


def _slot(run: Any, key: str, step: int, ext: str) -> str:
    """A new relative path ``media/<key>/<step>-<n>.<ext>`` in the run (never reused).

    The names a folder already holds (a resumed run) are listed once; after that no system
    call is made here (a call that releases the GIL would wait on the image writer)."""
    used = run._parts.setdefault("media", {})
    folder = f"media/{media_folder(key)}"
    taken = used.get(folder)
    if taken is None:
        try:
            taken = used[folder] = set(os.listdir(run.dir / folder))
        except OSError:
            taken = used[folder] = set()
    n = 0
    while True:
        name = f"{step}-{n}.{ext}"
        if name not in taken:
            taken.add(name)
            return f"{folder}/{name}"
        n += 1
