"""The inline display layer: live charts, runs tables and comparisons, static-first.

Installed by ``session.ensure_display`` under IPython. In a Jupyter kernel ("notebook" mode)
a run shows a live chart where it starts; ``Run``, ``RunView`` and ``RunList`` get rich
reprs. In a terminal IPython ("terminal" mode) the same calls print a compact text view.
Nothing here is imported by ``import nbtracker``.
"""

from __future__ import annotations

import os
import time
from typing import Any, Sequence

from ..core import events, reprs
from ..core.errors import NbtrackerError
from ..core.query import RunList, RunView, load
from . import frontend, media
from .sources import make_options
from .table import RunsTable
from .views import CompareView, LiveView, View, add_ticker, remove_ticker, report

__all__ = ["compare", "current_cell", "install", "uninstall", "live_view", "mode"]

_mode: str | None = None            # "notebook", "terminal", or None (not installed)
_shell: Any = None
_live: dict[int, LiveView] = {}     # id(run) -> its live chart
_feeds: dict[int, list[Any]] = {}   # id(run) -> sources fed by its log events
_views: list[View] = []             # views with at least one live source


def mode() -> str | None:
    return _mode


def install(shell: Any) -> None:
    """Subscribe to the run events and register the rich reprs (idempotent)."""
    global _mode, _shell
    _mode = "notebook" if getattr(shell, "kernel", None) is not None else "terminal"
    _shell = shell
    for name, listener in _LISTENERS.items():
        events.on(name, listener)
    shell_events = getattr(shell, "events", None)
    if _mode == "notebook" and shell_events is not None and _at_rest not in shell_events.callbacks["post_run_cell"]:
        shell_events.register("post_run_cell", _at_rest)
    reprs.register("Run", _run_bundle)
    reprs.register("RunView", _view_bundle)
    reprs.register("RunList", _list_bundle)
    if _mode == "notebook":
        try:
            frontend.probe()
        except Exception as e:  # noqa: BLE001 - no comm support: the widget path still works
            report("the renderer probe", e)


def uninstall(shell: Any = None) -> None:
    global _mode, _shell
    for name, listener in _LISTENERS.items():
        events.off(name, listener)
    shell_events = getattr(_shell, "events", None)
    if shell_events is not None:
        try:
            shell_events.unregister("post_run_cell", _at_rest)
        except ValueError:
            pass
    reprs.unregister("Run", _run_bundle)
    reprs.unregister("RunView", _view_bundle)
    reprs.unregister("RunList", _list_bundle)
    for view in list(_views):
        _detach(view)
    _live.clear()
    frontend.reset()
    _mode = _shell = None


# -- live charts ------------------------------------------------------------------------------
def live_view(run: Any) -> LiveView:
    """The run's live chart (one per run; every output showing it is updated)."""
    view = _live.get(id(run))
    if view is None:
        view = LiveView(run, widgets=_mode == "notebook")
        _live[id(run)] = view
        _attach(view)
    return view


def _attach(view: View) -> None:
    live = [s for s in view.sources if s.live]
    if not live:
        return
    for s in live:
        _feeds.setdefault(id(s.run), []).append(s)
    _views.append(view)
    add_ticker(view)


def _detach(view: View) -> None:
    remove_ticker(view)
    if view in _views:
        _views.remove(view)
    for s in view.sources:
        feed = _feeds.get(id(s.run))
        if feed and s in feed:
            feed.remove(s)
            if not feed:
                del _feeds[id(s.run)]


#: Runs of one cell that get a chart by themselves; a sweep in one cell gets a note instead.
AUTO_PER_CELL = 3
_auto: list[Any] = [None, 0]        # [the cell (shell execution count), charts shown in it]


def current_cell() -> Any:
    """The cell being executed (the shell's execution counter), or None outside a kernel."""
    return getattr(_shell, "execution_count", None)


def _at_rest(result: Any = None) -> None:
    """After every cell: each shown view becomes static (see views.py), so what is saved renders."""
    for view in list(_views):
        try:
            view.go_static()
        except Exception as e:  # noqa: BLE001 - never break the user's cell
            report("static output at cell end", e)


def _on_init(run: Any) -> None:
    if _mode != "notebook" or os.environ.get("NBTRACKER_LIVE", "1") == "0":
        return
    media.track(run)
    cell = current_cell()
    if _auto[0] != cell:
        _auto[:] = [cell, 0]
    _auto[1] += 1
    if _auto[1] <= AUTO_PER_CELL:
        live_view(run).show(cell)
    elif _auto[1] == AUTO_PER_CELL + 1:
        print(f"nbtracker: more than {AUTO_PER_CELL} runs started in this cell; their live charts are "
              "not shown (run.display() shows one, nbtracker.compare(...) overlays them)")


def _on_log(run: Any, row: dict[str, Any]) -> None:
    if "recent" in run._parts:
        media.on_log(run, row)
    sources = _feeds.get(id(run))
    if sources:
        now = time.monotonic()
        for s in sources:
            s.push(row)
            view = s.view
            view.last_row = now
            if view.mode == "static":
                view.go_live()       # rows again after a cell ended: the widget comes back
            elif now >= view._next and view.live_output():
                view.tick()


def _on_display(run: Any, options: dict[str, Any] | None = None) -> None:
    """``run.display(...)``: the run's chart here (with options: a view of its own)."""
    if options:
        view = LiveView(run, widgets=_mode == "notebook", options=make_options(**options))
        _attach(view)
    else:
        view = live_view(run)
    if _mode == "notebook":
        view.show(current_cell())
    else:
        print(view.text())


def _on_finish(run: Any) -> None:
    for view in [v for v in _views if any(s.run is run for s in v.sources)]:
        view.go_static(force=True)      # the final chart, as the saved notebook will show it
        if not view.changing:
            _detach(view)
            view.close_widget()
    _live.pop(id(run), None)   # terminal IPython: the session prints the text view


_LISTENERS = {"init": _on_init, "log": _on_log, "display": _on_display, "finish": _on_finish,
              "text": media.on_text}


# -- comparison ---------------------------------------------------------------------------------
def compare(runs: Any = None, metric: str | Sequence[str] | None = None, *, project: str | None = None,
            dir: Any = None, x: str = "step", log_y: bool = False, smoothing: float = 0.0) -> CompareView:
    """One chart overlaying ``metric`` across runs, with a legend by run name.

    Parameters
    ----------
    runs : RunList, or a list of runs / run ids / names / paths, optional
        Default: the runs of ``project`` (all projects if None) under ``dir``.
    metric : str or list of str, optional
        The metric(s) to overlay, one panel each. Default: the runs' primary metric.
    x : "step", "time" or a metric name
    log_y, smoothing : the same options as the live chart's controls.

    Returns a view: displayed in a notebook it is a live-updating chart (for runs this kernel
    is writing) that also carries a static PNG and HTML; ``.png()`` and ``.save(path)`` work
    anywhere.
    """
    items = _resolve_runs(runs, project, dir)
    if not items:
        raise NbtrackerError("no runs to compare")
    metrics = _resolve_metrics(metric, items)
    options = make_options(x=x, log_y=log_y, smoothing=smoothing)
    view = CompareView(items, metrics, widgets=_mode == "notebook", options=options)
    present = {m for s in view.sources for m in s.series}
    if not any(m in present for m in metrics):
        known = ", ".join(sorted(present)[:20]) or "none"
        raise NbtrackerError(f"none of the runs logged {', '.join(map(repr, metrics))}; their metrics: {known}")
    _attach(view)
    return view


def _resolve_runs(runs: Any, project: str | None, dir: Any) -> list[Any]:
    from ..core.query import runs as list_runs

    if runs is None:
        return list(list_runs(project, dir))
    if isinstance(runs, (str, os.PathLike)) or hasattr(runs, "_doc"):
        runs = [runs]
    out = []
    for r in runs:
        if isinstance(r, (str, os.PathLike)):
            out.append(load(r, dir, project))
        elif hasattr(r, "log") or isinstance(r, RunView):
            out.append(r)
        else:
            raise TypeError(f"compare() takes runs, run ids or a RunList, not {type(r).__name__}")
    return out


def _resolve_metrics(metric: Any, runs: list[Any]) -> list[str]:
    if metric is None:
        for r in runs:
            if r.primary_metric:
                return [r.primary_metric[0]]
        raise NbtrackerError("compare() needs metric=: none of the runs has a primary metric")
    metrics = [metric] if isinstance(metric, str) else list(metric)
    if not metrics or not all(isinstance(m, str) and m for m in metrics):
        raise TypeError("metric must be a metric name or a list of names")
    return metrics


# -- rich reprs -----------------------------------------------------------------------------------
def _run_bundle(run: Any, include: Any, exclude: Any) -> dict[str, Any] | None:
    if _mode != "notebook":
        return {"text/plain": live_view(run).text()}
    data, _ = live_view(run).bundle(live=False)
    return data


def _view_bundle(view: RunView, include: Any, exclude: Any) -> dict[str, Any] | None:
    chart = LiveView(view, widgets=False)
    data, _ = chart.bundle()
    return data


def _list_bundle(runs: RunList, include: Any, exclude: Any) -> dict[str, Any] | None:
    return RunsTable(runs).bundle()


