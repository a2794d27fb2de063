"""Whether the frontend draws nbtracker charts itself (the JupyterLab extension), and the data it draws.

How the kernel knows (docs/jupyterlab.md, "How the kernel knows"):

1. **A hint at start.** nbtracker's server extension sets ``NBTRACKER_RENDERER=jupyterlab`` in
   the Jupyter server's environment, which the kernels it starts inherit: the frontend served
   by that server has the extension (both come from the same ``pip install``).
2. **An answer from the browser.** When the display layer is installed, the kernel opens a comm
   with target ``nbtracker``. The extension registers that target on every notebook kernel and
   answers; a frontend without it closes the comm. The answer overrides the hint. Comm messages
   are handled between cells, so it counts from the next cell on. The probe is only sent when
   the hint is there (a kernel that no Jupyter server with nbtracker started keeps quiet).

With a renderer, a live chart is JSON updates (``application/vnd.nbtracker.chart+json``: the
downsampled series) sent with ``update_display``, and no PNG frames are drawn while rows arrive;
without one, the ipywidgets path (PNG frames) is used. Either way the static PNG/HTML is drawn
at the end of each cell and at finish, next to the chart data, so every frontend shows it.
``NBTRACKER_RENDERER=0`` forces the widget path.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

CHART_MIME = "application/vnd.nbtracker.chart+json"
RUNS_MIME = "application/vnd.nbtracker.runs+json"
COMM_TARGET = "nbtracker"
ENV = "NBTRACKER_RENDERER"
#: Payload format; the renderer refuses nothing, but says so when it meets a newer one.
VERSION = 1

_answer: list[bool | None] = [None]    # True: the extension answered; False: the comm was closed
_comm: list[Any] = [None]


def browser_draws() -> bool:
    """Whether live charts go to the browser as data (see the module doc)."""
    env = os.environ.get(ENV, "")
    if env == "0":
        return False
    if _answer[0] is not None:
        return _answer[0]
    return bool(env)


def probe() -> None:
    """Open the ``nbtracker`` comm once per kernel (the extension answers it), when a Jupyter
    server with nbtracker's extension started this kernel: elsewhere (nbclient, nbconvert,
    VS Code's own kernels) nobody would answer, and some clients log the unknown target."""
    env = os.environ.get(ENV, "")
    if _comm[0] is not None or not env or env == "0":
        return
    from comm import create_comm

    def answered(msg: Any) -> None:
        data = (msg.get("content") or {}).get("data") or {}
        if data.get("renderer") == "nbtracker":
            _answer[0] = True

    def closed(msg: Any) -> None:
        if _answer[0] is None:
            _answer[0] = False

    c = create_comm(target_name=COMM_TARGET, data={"probe": VERSION})
    c.on_msg(answered)
    c.on_close(closed)
    _comm[0] = c


def reset() -> None:
    """Forget the answer and the comm (uninstall, tests)."""
    c, _comm[0] = _comm[0], None
    _answer[0] = None
    if c is not None:
        try:
            c.close()
        except Exception:  # noqa: BLE001 - the kernel may be shutting down
            pass


def numbers(a: np.ndarray, digits: int = 6) -> list[float | int | None]:
    """JSON-safe, compact numbers: ``digits`` significant digits, integers as integers, null
    for NaN and infinities (a gap). Vectorized: a few microseconds per hundred points."""
    a = np.asarray(a, dtype=float)
    finite = np.isfinite(a)
    clean = np.where(finite, a, 0.0)
    if np.all(clean == np.round(clean)) and np.all(np.abs(clean) < 2 ** 53):
        out: list[Any] = clean.astype(np.int64).tolist()
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            mag = np.where(clean != 0, np.floor(np.log10(np.abs(clean))), 0.0)
            scale = 10.0 ** (digits - 1 - mag)
            out = (np.round(clean * scale) / scale).tolist()
    if not finite.all():
        out = [v if ok else None for v, ok in zip(out, finite.tolist())]
    return out


#: Buckets per line in the chart data (min and max of each: at most about 1,026 points; a chart
#: is a few hundred pixels wide). The kernel's series keep 1,024 buckets; this halves them, so
#: a saved notebook stays small.
BUCKETS = 512


def thin(x: np.ndarray, y: np.ndarray, buckets: int = BUCKETS) -> tuple[np.ndarray, np.ndarray]:
    """Min/max downsampling of already sampled points (extremes survive a second pass)."""
    n = len(y)
    if n <= 2 * buckets:
        return x, y
    w = -(-n // buckets)
    pad = buckets * w - n
    lo = np.concatenate([np.where(np.isnan(y), np.inf, y), np.full(pad, np.inf)]).reshape(buckets, w)
    hi = np.concatenate([np.where(np.isnan(y), -np.inf, y), np.full(pad, -np.inf)]).reshape(buckets, w)
    base = np.arange(buckets) * w
    idx = np.concatenate([base + lo.argmin(axis=1), base + hi.argmax(axis=1), [0, n - 1]])
    idx = np.unique(idx[idx < n])
    return x[idx], y[idx]


def chart_payload(chart: Any, *, kind: str, title: str, status: str | None, smoothing: float,
                  header: str = "", footer: str = "", note: str = "") -> dict[str, Any]:
    """The renderer's data for a ``render.Chart`` drawn without smoothing (the browser smooths)."""
    panels = []
    for p in chart.panels:
        best = None
        if p.best is not None:
            best = [numbers(np.array([p.best[0]]))[0], numbers(np.array([p.best[1]]))[0], p.best[2]]
        panels.append({"title": f"{p.group}/{p.title}" if p.group else p.title, "group": p.group, "best": best,
                       "lines": [_line(line) for line in p.lines]})
    return {"version": VERSION, "kind": kind, "title": title, "status": status, "xlabel": chart.xlabel,
            "options": {"log_y": bool(chart.log_y), "smoothing": smoothing}, "header": header,
            "footer": footer, "note": note or chart.note, "panels": panels}


def _line(line: Any) -> dict[str, Any]:
    x, y = thin(np.asarray(line.x, dtype=float), np.asarray(line.y, dtype=float))
    return {"name": line.label, "x": numbers(x), "y": numbers(y)}
