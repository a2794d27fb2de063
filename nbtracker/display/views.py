"""Chart views: a run's live chart and a comparison of runs, static-first (docs/display.md).

A view draws its sources (``sources.py``) into PNG frames (``render.py``) and keeps every
output showing it in step, with one rule: **interactive while it changes, static at rest.**

- While rows arrive, each output carries an ipywidgets view (a header and an ``Image``) that
  a throttled draw updates in place; frames are blitted (a few ms each), and drawing is held
  to ``BUDGET`` of the time on average.
- At the end of every cell, and when its runs finish, each output is replaced (``update_display``)
  by the static bundle alone: PNG, HTML and text. A notebook is saved at rest, so the saved file
  holds outputs every frontend renders, with a fresh kernel or none (JupyterLab does not save
  widget state by default, and its widget renderer would win over the PNG in the same output).
- When rows arrive again, the outputs get the widget back.

A view that cannot change (its runs are finished or read from disk) is static from the start.
How to draw (x axis, log y, smoothing, which metrics) is chosen by arguments, so it is part of
the saved output.
"""

from __future__ import annotations

import base64
import sys
import threading
import time
from dataclasses import astuple, replace
from typing import Any, Callable, Sequence

from ..core import ticker
from . import frontend, html, media
from .render import Chart, Line, Panel, Renderer, fmt
from .sources import MAX_PANELS, Options, Source, stat, xlabel
from .text import format_view, sparkline

#: Drawing may use this share of the time on average (a token bucket: each draw's CPU time is
#: paid from a credit that refills at this rate, up to ``CREDIT``).
BUDGET = 0.04
CREDIT = 0.4
#: And never more often than this (seconds).
MIN_INTERVAL = 0.5
#: The ticker draws a view whose rows stopped arriving this long ago (seconds).
QUIET = 1.0
#: With a browser renderer, chart data is sent at most this often (seconds): no PNG is drawn,
#: an update costs the kernel well under a millisecond per metric.
JSON_INTERVAL = 0.5


class View:
    """Common machinery of the live chart and the comparison (see the module doc)."""

    kind = "view"

    def __init__(self, sources: list[Source], *, widgets: bool, options: Options | None = None) -> None:
        self.sources = sources
        for s in sources:
            s.view = self
        self.options = options or Options()
        self.use_widgets = widgets
        self.display_id = f"nbtracker-{self.kind}-{id(self):x}"
        self.draws = 0                 # widget frames drawn (for tests and benchmarks)
        self.draw_seconds = 0.0        # wall time spent drawing them
        self.draw_cpu = 0.0            # their CPU time (what the budget counts)
        self.max_cost = 0.0            # the most CPU time one frame took
        self.frame_times: list[float] = []   # monotonic times of the last frames (benchmarks)
        self.last_row = 0.0            # monotonic time of the last row seen by the log event
        self.mode: str | None = None   # what the outputs carry: "live" (widget), "static", None (not shown)
        self._lock = threading.RLock()
        self._credit = CREDIT
        self._refilled = time.monotonic()
        self._next = 0.0               # monotonic time before which no frame is drawn
        self._drawn_rows = -1          # rows (all sources) behind the widget image
        self._png_key: Any = None
        self._png: bytes | None = None
        self._last_static: Any = None  # (state, data, metadata, png) of the last static bundle
        self._json = False             # live outputs carry chart data for the browser, not a widget
        self.updates = 0               # chart-data updates sent (for tests and benchmarks)
        self._renderer = Renderer()
        self._cells: set[Any] = set()  # cells with an output of this view (one per cell)
        self.widget: Any = None
        self._header: Any = None
        self._footer: Any = None
        self._image: Any = None        # set last: a built widget is a complete widget

    # -- what to draw ---------------------------------------------------------------------------
    def chart(self, title: bool = False, options: Options | None = None) -> Chart:
        raise NotImplementedError

    def payload(self) -> dict[str, Any]:
        """The browser renderer's data: the downsampled series without smoothing (the browser
        smooths), the initial options, and the header and footer HTML."""
        chart = self.chart(options=replace(self.options, smoothing=0.0))
        return frontend.chart_payload(chart, kind=self.kind, title=self.title(), status=self._status(),
                                      smoothing=self.options.smoothing, header=self.header_html(),
                                      footer=self.footer_html())

    def _status(self) -> str | None:
        return None

    def header_html(self) -> str:
        raise NotImplementedError

    def text(self) -> str:
        raise NotImplementedError

    def footer_html(self) -> str:
        """What shows under the chart (images, text lines); '' for none."""
        return ""

    def title(self) -> str:
        return ""

    def rows(self) -> int:
        return sum(s.rows for s in self.sources)

    @property
    def changing(self) -> bool:
        """Whether rows can still arrive (a source is a run this process is writing)."""
        return any(s.live for s in self.sources)

    def _digest(self) -> bool:
        changed = False
        for s in self.sources:
            changed = s.digest() or changed
        return changed

    def _state(self) -> Any:
        return (self.rows(), astuple(self.options), tuple(getattr(s.run, "status", None) for s in self.sources))

    def png(self, title: bool = False) -> bytes:
        """The chart as it is now, with tight axes (drawn only if something changed)."""
        with self._lock:
            self._digest()
            key = (self._state(), title)
            if self._png is None or key != self._png_key:
                self._png = self._renderer.png(self.chart(title=title))
                self._png_key = key
            return self._png

    # -- outputs --------------------------------------------------------------------------------
    def bundle(self, live: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
        """(data, metadata) of an output: PNG, HTML, text and the chart data, plus the widget
        view when ``live``."""
        with self._lock:
            png = self.png()
            b64 = base64.b64encode(png).decode("ascii")
            data: dict[str, Any] = {
                frontend.CHART_MIME: self.payload(),
                "image/png": b64,
                "text/html": self.header_html() + html.img(b64, self.alt()) + self.footer_html(),
                "text/plain": self.text(),
            }
            if live:
                widget = self._build_widget()
                data["application/vnd.jupyter.widget-view+json"] = {
                    "version_major": 2, "version_minor": 0, "model_id": widget.model_id}
            meta = {"image/png": {"width": _png_width(png)}, "nbtracker": self.meta()}
            if not live:
                self._last_static = (self._state(), data, meta, png)
            return data, meta

    def json_bundle(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """A live output for a browser renderer: fresh chart data, and the PNG, HTML and text of
        the last static bundle (what other frontends keep showing until the cell ends). Draws
        nothing with matplotlib."""
        with self._lock:
            self._digest()
            data: dict[str, Any] = {frontend.CHART_MIME: self.payload()}
            meta: dict[str, Any] = {"nbtracker": self.meta()}
            last = self._last_static
            if last is not None:
                data.update({k: v for k, v in last[1].items() if k != frontend.CHART_MIME})
                meta.update({k: v for k, v in last[2].items() if k != "nbtracker"})
            else:
                data.update({"text/html": self.header_html() + self.footer_html(), "text/plain": self.title()})
            return data, meta

    def meta(self) -> dict[str, Any]:
        return {"kind": self.kind, "runs": [s.id for s in self.sources], "options": self._options_meta(),
                "rows": self.rows(), "last_step": [s.last_step for s in self.sources]}

    def _options_meta(self) -> dict[str, Any]:
        o = self.options
        return {"metrics": list(o.metrics) if o.metrics else None, "x": o.x, "log_y": o.log_y,
                "smoothing": o.smoothing}

    def alt(self) -> str:
        return "nbtracker chart"

    def show(self, cell: Any = None) -> bool:
        """Add an output of this view to the current cell, unless ``cell`` already has one.

        Every output of a view is updated together (one ``display_id``). Returns whether an
        output was added."""
        from IPython.display import display

        with self._lock:
            if cell is not None and cell in self._cells:
                return False
            live = self.use_widgets and self.changing
            self._json = live and frontend.browser_draws()
            # With a browser renderer the first output is the static bundle (a PNG for frontends
            # that turn out not to have it); chart data follows as rows arrive.
            data, meta = self.bundle(live=live and not self._json)
            display(data, metadata=meta, raw=True, display_id=self.display_id)
            if cell is not None:
                self._cells.add(cell)
            self.mode = "live" if live else "static"
            return True

    def go_static(self, force: bool = False) -> bool:
        """Replace every output by the static bundle (at the end of a cell, at finish), if it
        carries the widget or shows an older state."""
        with self._lock:
            if self.mode is None:
                return False
            self._digest()
            if not force and self.mode == "static" and self._last_static[0] == self._state():
                return False
            from IPython.display import update_display

            data, meta = self.bundle(live=False)
            update_display(data, metadata=meta, raw=True, display_id=self.display_id)
            self.mode = "static"
            return True

    def go_live(self) -> bool:
        """Give the outputs their widget back (rows arrive again after a cell ended).

        Runs inside the first ``run.log`` of a cell, so it draws nothing: the widget shows the
        static picture sent at the end of the last cell, and the throttle draws the next frame.
        """
        if self.mode != "static" or not self.use_widgets or not self.changing:
            return False
        with self._lock:
            if self.mode != "static":
                return False
            from IPython.display import update_display

            self._json = frontend.browser_draws()
            if self._json:
                self.mode = "live"
                self._next = time.monotonic() + JSON_INTERVAL
                self._drawn_rows = -1
                return True
            if self._last_static is None or self.widget is None or self._image is None:
                data, meta = self.bundle(live=True)
            else:
                _, static, meta, png = self._last_static
                self._image.value = png
                data = {**static, "application/vnd.jupyter.widget-view+json": {
                    "version_major": 2, "version_minor": 0, "model_id": self.widget.model_id}}
            update_display(data, metadata=meta, raw=True, display_id=self.display_id)
            self.mode = "live"
            self._next = time.monotonic() + MIN_INTERVAL
            self._drawn_rows = self.rows()
            return True

    def close_widget(self) -> None:
        """Drop the widget of a view that can no longer change (its outputs are static)."""
        with self._lock:
            widget, self._image, self._header, self.widget = self.widget, None, None, None
        if widget is not None:
            for child in widget.children:
                child.close()
            widget.close()

    # -- the live widget ------------------------------------------------------------------------
    def _build_widget(self) -> Any:
        """The widget (built once): a header and the image, drawn now with live axes."""
        if self.widget is not None:
            self.redraw()
            return self.widget
        import ipywidgets as w

        png = self._renderer.png(self.chart(), live=True)
        image = w.Image(format="png", value=png, width=str(_png_width(png)),
                        layout=w.Layout(max_width="100%", height="auto"))
        image.add_class("nbtracker-chart")
        header = w.HTML(self.header_html())
        header.add_class("nbtracker-header")
        footer = w.HTML(self.footer_html())
        footer.add_class("nbtracker-footer")
        self._footer = footer
        box = w.VBox([header, image, footer])
        box.add_class(f"nbtracker-{self.kind}")
        self._drawn_rows = self.rows()
        self._next = time.monotonic() + MIN_INTERVAL   # just drawn
        # Published last, in this order: the throttle checks _image, then uses _header.
        self.widget, self._header, self._image = box, header, image
        return box

    def redraw(self) -> None:
        """Draw a widget frame now (cheap when the data fits the drawn axes)."""
        with self._lock:
            if self._image is None:
                return
            self._digest()
            png = self._renderer.png(self.chart(), live=True)
            self._image.value = png
            width = str(_png_width(png))
            if self._image.width != width:
                self._image.width = width
            self._header.value = self.header_html()
            footer = self.footer_html()
            if self._footer is not None and self._footer.value != footer:
                self._footer.value = footer
            self._drawn_rows = self.rows()

    def live_output(self) -> bool:
        """Whether the outputs take live updates (a widget, or chart data for the browser)."""
        return self.mode == "live" and (self._json or self._image is not None)

    def due(self) -> bool:
        """Whether a frame may be drawn now (cheap: called on every logged row)."""
        return self.live_output() and time.monotonic() >= self._next

    def send_data(self) -> None:
        """A live update for the browser renderer: chart data only (``json_bundle``)."""
        from IPython.display import update_display

        with self._lock:
            data, meta = self.json_bundle()
            update_display(data, metadata=meta, raw=True, display_id=self.display_id)
            self._drawn_rows = self.rows()
            self.updates += 1

    def tick(self) -> None:
        """Draw a widget frame if rows arrived and the throttle allows it.

        Called from ``run.log`` (the logging thread: no second thread fights the loop for the
        GIL) and by the background ticker once rows stop, so a loop's last rows show up too.
        """
        if not self.due():
            return
        if not self._lock.acquire(blocking=False):
            return   # another thread is drawing this view
        try:
            now = time.monotonic()
            self._credit = min(CREDIT, self._credit + (now - self._refilled) * BUDGET)
            self._refilled = now
            if self._credit < 0:
                self._next = now + min(5.0, -self._credit / BUDGET)
                return
            self._digest()
            if self.rows() == self._drawn_rows:
                return
            self._next = now + 10 * MIN_INTERVAL   # a draw that raises is not retried on every row
            cpu, wall = time.thread_time(), time.perf_counter()
            if self._json:
                self.send_data()
            else:
                self.redraw()
            cost = time.thread_time() - cpu
            self.draws += 1
            self.draw_seconds += time.perf_counter() - wall
            self.draw_cpu += cost
            self.max_cost = max(self.max_cost, cost)
            self.frame_times.append(time.monotonic())
            del self.frame_times[:-1000]
            self._credit -= cost
            self._next = time.monotonic() + (JSON_INTERVAL if self._json else MIN_INTERVAL)
        finally:
            self._lock.release()

    # -- elsewhere ------------------------------------------------------------------------------
    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict, dict]:
        return self.bundle(live=False)

    def _ipython_display_(self) -> None:
        # display(view) or a cell's value: an output that the view keeps up to date
        from . import inline

        self.show(inline.current_cell())

    def __repr__(self) -> str:
        return self.text()

    def save(self, path: Any) -> None:
        """Write the chart as a PNG file (with its title)."""
        from pathlib import Path

        Path(path).write_bytes(self.png(title=True))


class LiveView(View):
    """One run: a panel per metric, grouped by prefix (``train/*``, ``val/*``), primary first."""

    kind = "live"

    def __init__(self, run: Any, *, widgets: bool, options: Options | None = None) -> None:
        super().__init__([Source(run)], widgets=widgets, options=options)
        self.run = run
        suffix = "" if options is None else f"-{id(self):x}"
        self.display_id = f"nbtracker-live-{run.id}{suffix}"

    def chart(self, title: bool = False, options: Options | None = None) -> Chart:
        o = options or self.options
        src = self.sources[0]
        names = src.metric_names()
        chosen = [n for n in (o.metrics or names[:MAX_PANELS]) if n in src.series]
        panels = []
        for name in chosen:
            x, y = src.xy(name, o)
            group, _, leaf = name.rpartition("/")
            panels.append(Panel(title=leaf if group else name, group=group,
                                lines=[Line(name, x, y)], best=src.best(name, o)))
        hidden = self.hidden()
        note = ""
        if hidden:
            shown = ", ".join(hidden[:4]) + (", ..." if len(hidden) > 4 else "")
            note = f"{len(hidden)} more metrics ({shown}): run.display(metrics=[...]) picks the panels"
        return Chart(panels=panels, title=self.title() if title else "", xlabel=xlabel(o, src),
                     log_y=o.log_y, note=note if title else "",
                     empty="waiting for the first run.log()")

    def _status(self) -> str | None:
        return self.run.status

    def title(self) -> str:
        src = self.sources[0]
        step = "" if src.last_step is None else f" · step {src.last_step}"
        return f"{self.run.name} · {self.run.status}{step} · {src.rows} rows"

    def hidden(self) -> list[str]:
        """Metrics that have no panel (past ``MAX_PANELS``, or not in ``metrics=``)."""
        names = self.sources[0].metric_names()
        chosen = set(self.options.metrics or names[:MAX_PANELS])
        return [n for n in names if n not in chosen]

    def header_html(self) -> str:
        return html.run_summary(self.run, self.sources[0], hidden=self.hidden())

    def footer_html(self) -> str:
        return media.footer(self.run)

    def bundle(self, live: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
        """A run that ended without a single row has no chart to show: its header (and any
        images or text) only, not an empty frame saying it waits for rows."""
        if not live and not self.changing and self.rows() == 0:
            with self._lock:
                data = {"text/html": self.header_html() + self.footer_html(), "text/plain": self.text()}
                meta = {"nbtracker": self.meta()}
                self._last_static = (self._state(), data, meta, None)
                return data, meta
        return super().bundle(live)

    def _state(self) -> Any:
        return (super()._state(), media.state(self.run))

    def text(self) -> str:
        src = self.sources[0]
        with self._lock:
            src.digest()
            stats = {name: stat(src.series[name]) for name in src.metric_names()}
        return format_view(self.run, src.rows, stats)

    def alt(self) -> str:
        return f"metrics of run {self.run.name}"

    def meta(self) -> dict[str, Any]:
        src = self.sources[0]
        return {"kind": "live", "run": src.id, "status": self.run.status, "rows": src.rows,
                "last_step": src.last_step, "options": self._options_meta()}


class CompareView(View):
    """Several runs: one panel per metric, a line per run, a legend by run name."""

    kind = "compare"

    def __init__(self, runs: Sequence[Any], metrics: Sequence[str], *, widgets: bool,
                 options: Options | None = None) -> None:
        super().__init__([Source(r) for r in runs], widgets=widgets, options=options)
        self.metrics = list(metrics)

    def chart(self, title: bool = False, options: Options | None = None) -> Chart:
        o = options or self.options
        panels = []
        chosen = o.metrics or tuple(self.metrics)
        for name in chosen:
            lines = [Line(s.name, *s.xy(name, o)) for s in self.sources if name in s.series]
            panels.append(Panel(title=name, lines=lines, legend=True))
        missing = [s.name for s in self.sources if not any(m in s.series for m in chosen)]
        note = f"no {', '.join(chosen)} in: {', '.join(missing)}" if missing else ""
        return Chart(panels=panels, title=self.title() if title else "",
                     xlabel=xlabel(o, self.sources[0]) if self.sources else "step",
                     log_y=o.log_y, note=note if title else "", empty="no runs to compare")

    def title(self) -> str:
        return f"{', '.join(self.metrics)} across {len(self.sources)} runs"

    def header_html(self) -> str:
        return html.compare_summary(self.sources, self.metrics)

    def text(self) -> str:
        lines = [self.title()]
        self._digest()
        for s in self.sources:
            for m in self.metrics:
                if m in s.series:
                    last, means, _, _ = stat(s.series[m])
                    lines.append(f"  {s.name}  {m}  {fmt(last)}  {sparkline(means)}")
                else:
                    lines.append(f"  {s.name}  {m}  -")
        return "\n".join(lines)

    def alt(self) -> str:
        return f"{', '.join(self.metrics)} of {len(self.sources)} runs"


def _png_width(png: bytes) -> int:
    return int.from_bytes(png[16:20], "big") if png[:8] == b"\x89PNG\r\n\x1a\n" else 0


_reported: set[str] = set()


def report(where: str, exc: BaseException) -> None:
    """Say once per place that a display step failed; the user's cell is not affected."""
    if where not in _reported:
        _reported.add(where)
        print(f"nbtracker: display {where} failed ({type(exc).__name__}: {exc}); "
              "your cell ran normally (reported once)", file=sys.stderr)


def add_ticker(view: View) -> None:
    ticker.add(id(view), _guard(view))


def remove_ticker(view: View) -> None:
    ticker.remove(id(view))


def _guard(view: View) -> Callable[[], None]:
    def job() -> None:
        try:
            if view.due() and time.monotonic() - view.last_row >= QUIET:
                view.tick()
            elif not view.live_output():
                view._digest()   # keep the feed short even when nothing is shown
        except Exception as e:  # noqa: BLE001
            report("live update", e)
    return job
