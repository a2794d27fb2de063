"""Under a run's chart: the latest images (a small, bounded strip), the last text lines and, for a
finished run, its latest tables and histograms. Static HTML, every caption and cell escaped."""

from __future__ import annotations

import base64
import csv
import io
from collections import deque
from pathlib import Path
from typing import Any

from ..core.records import read_log
from .html import FONT, e

STRIP = 6          # images in the strip
THUMB = 96         # pixels, the longer side of a thumbnail
TEXT_LINES = 5
TABLE_ROWS = 10

_thumbs: dict[tuple[str, float], str] = {}


def track(run: Any) -> None:
    """Keep the latest media references and text lines of a live run (bounded)."""
    if "recent" not in run._parts:
        run._parts["recent"] = {"media": deque(maxlen=STRIP * 2), "text": deque(maxlen=TEXT_LINES)}


def on_log(run: Any, row: dict[str, Any]) -> None:
    recent = run._parts.get("recent")
    if recent is None:
        return
    for k, v in row.items():
        if type(v) is dict:
            items = v.get("items") if v.get("_type") == "gallery" else [v]
            for item in items or ():
                recent["media"].append({**item, "key": k, "_step": row.get("_step")})


def on_text(run: Any, record: dict[str, Any]) -> None:
    recent = run._parts.get("recent")
    if recent is not None:
        recent["text"].append(record)


def state(run: Any) -> tuple[int, int]:
    """Changes when what the footer shows changes (cheap)."""
    recent = getattr(run, "_parts", {}).get("recent")
    if recent is None:
        return (0, 0)
    return (len(recent["media"]) and id(recent["media"][-1]), len(recent["text"]) and id(recent["text"][-1]))


def footer(run: Any) -> str:
    """The HTML under the chart ('' when the run has no media and no text)."""
    recent = getattr(run, "_parts", {}).get("recent")
    if recent is not None:                 # a live run: what was logged in this process
        media, texts = list(recent["media"]), list(recent["text"])
        run_dir = run.dir
    elif hasattr(run, "media") and callable(run.media):   # a RunView read from disk
        media, texts = run.media(), read_log(run.dir, "text.jsonl")[-TEXT_LINES:]
        run_dir = run.dir
    else:
        return ""
    parts = []
    images = [m for m in media if m.get("_type") == "image"][-STRIP:]
    if images:
        cells = [_thumb_html(run_dir, m) for m in images]
        parts.append('<div class="nbtracker-images" style="display:flex;gap:8px;flex-wrap:wrap">'
                     + "".join(c for c in cells if c) + "</div>")
    if recent is None:
        for kind, render in (("table", _table_html), ("histogram", _hist_html)):
            latest: dict[str, Any] = {}
            for m in media:
                if m.get("_type") == kind:
                    latest[m["key"]] = m
            for m in list(latest.values())[:3]:
                parts.append(render(run_dir, m))
    if texts:
        lines = "".join(f'<div><span style="color:#888">{e(t.get("level", ""))}'
                        f'{" @" + e(t["step"]) if t.get("step") is not None else ""}</span> '
                        f'{e(str(t.get("text", ""))[:300])}</div>' for t in texts[-TEXT_LINES:])
        parts.append(f'<div class="nbtracker-text" style="font-family:monospace;font-size:12px">{lines}</div>')
    if not parts:
        return ""
    return f'<div class="nbtracker-media" style="{FONT};margin-top:4px">' + "".join(parts) + "</div>"


def _thumb_html(run_dir: Path, m: dict[str, Any]) -> str:
    b64 = _thumbnail(run_dir / m["path"])
    if b64 is None:
        return ""
    label = f'{m.get("key")} @ {m.get("_step")}'
    caption = m.get("caption")
    return (f'<figure style="margin:0;text-align:center"><img src="data:image/png;base64,{b64}" '
            f'alt="{e(caption or label)}" style="max-height:{THUMB}px;image-rendering:pixelated">'
            f'<figcaption style="font-size:11px;color:#555">{e(label)}'
            f'{"<br>" + e(caption[:80]) if caption else ""}</figcaption></figure>')


def _thumbnail(path: Path) -> str | None:
    """A PNG thumbnail (at most ``THUMB`` px) as base64, cached by path and mtime; None if unreadable."""
    try:
        key = (str(path), path.stat().st_mtime)
    except OSError:
        return None          # not written yet (the writer is behind) or removed
    if key in _thumbs:
        return _thumbs[key]
    try:
        from PIL import Image as PILImage

        with PILImage.open(path) as im:
            im.thumbnail((THUMB, THUMB))
            buf = io.BytesIO()
            im.save(buf, format="PNG")
    except Exception:  # noqa: BLE001 - a broken file is left out of the strip
        return None
    if len(_thumbs) > 256:
        _thumbs.clear()
    _thumbs[key] = b64 = base64.b64encode(buf.getvalue()).decode("ascii")
    return b64


def _table_html(run_dir: Path, m: dict[str, Any]) -> str:
    try:
        with open(run_dir / m["path"], newline="", encoding="utf-8") as f:
            rows = list(zip(range(TABLE_ROWS + 1), csv.reader(f)))
    except OSError:
        return ""
    if not rows:
        return ""
    head = "".join(f"<th>{e(c)}</th>" for c in rows[0][1])
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for _, r in rows[1:])
    more = m.get("rows", 0) - (len(rows) - 1)
    note = f'<div style="color:#666">… {more} more rows</div>' if more > 0 else ""
    return (f'<div class="nbtracker-table"><b>{e(m["key"])}</b> @ {e(m.get("_step"))}'
            f'<table style="font-size:12px"><tr>{head}</tr>{body}</table>{note}</div>')


def _hist_html(run_dir: Path, m: dict[str, Any]) -> str:
    try:
        with open(run_dir / m["path"], newline="", encoding="utf-8") as f:
            counts = [float(r["count"]) for r in csv.DictReader(f)]
    except (OSError, ValueError, KeyError):
        return ""
    if not counts:
        return ""
    top = max(counts) or 1.0
    w = 3
    bars = "".join(f'<rect x="{i * w}" y="{40 - 40 * c / top:.1f}" width="{w - 0.5}" height="{40 * c / top:.1f}" '
                   'fill="#4c72b0"/>' for i, c in enumerate(counts))
    return (f'<div class="nbtracker-histogram"><b>{e(m["key"])}</b> @ {e(m.get("_step"))} '
            f'<span style="color:#666">[{e(_num(m.get("min")))}, {e(_num(m.get("max")))}]</span><br>'
            f'<svg width="{len(counts) * w}" height="40">{bars}</svg></div>')


def _num(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


