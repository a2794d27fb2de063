"""Live chart and comparison views with real ipywidgets, no browser: traits, throttle, controls."""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

import nbtracker
from nbtracker.display import inline as display
from nbtracker.core.errors import NbtrackerError
from nbtracker.display import views


@pytest.fixture
def notebook_mode(monkeypatch):
    """The display layer as a kernel installs it (widgets on), without the auto-shown output."""
    monkeypatch.setenv("NBTRACKER_LIVE", "0")
    display.install(SimpleNamespace(kernel=object()))
    yield
    display.uninstall()
    import ipywidgets

    ipywidgets.Widget.close_all()   # not at interpreter exit, where their __del__ complains


def test_image_changes_after_log_and_tick(notebook_mode):
    run = nbtracker.init(project="v", primary_metric="acc")
    view = display.live_view(run)
    assert display.live_view(run) is view                  # one live chart per run
    box = view._build_widget()
    view.mode = "live"
    assert "nbtracker-live" in box._dom_classes and "nbtracker-chart" in view._image._dom_classes
    # one header, the image, the footer (images and text lines; empty here), no controls
    assert [type(c).__name__ for c in box.children] == ["HTML", "Image", "HTML"]
    first = view._image.value
    for i in range(50):
        run.log({"acc": i / 50, "loss": 1 / (i + 1)})
    assert view.draws == 0          # just drawn when built: the throttle waits MIN_INTERVAL
    view._next = 0                  # the wait is over: the next row draws, in the logging thread
    run.log({"acc": 0.5})
    assert bytes(view._image.value) != bytes(first) and view.draws == 1
    assert "step 50 " in view._header.value
    view._next = 0
    view.tick()                                            # nothing new: no draw
    assert view.draws == 1
    data, meta = view.bundle(live=True)
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == box.model_id
    assert meta["nbtracker"]["rows"] == 51 and meta["nbtracker"]["last_step"] == 50
    assert data["image/png"] and "<img src=\"data:image/png;base64," in data["text/html"]
    static, _ = view.bundle()
    assert "application/vnd.jupyter.widget-view+json" not in static   # at rest: what any frontend shows
    run.finish()
    assert view not in display._views                      # detached from the ticker at finish


def test_live_frames_reuse_the_drawn_axes(notebook_mode):
    """Item 2 of the hardening issue: most frames only redraw the lines (blit)."""
    run = nbtracker.init(project="v", primary_metric="val/acc")
    view = display.live_view(run)
    view._build_widget()
    view.mode = "live"
    for i in range(1, 4001):
        run.log({"train/loss": 1 / i, "train/acc": 1 - 1 / i, "val/loss": 2 / i, "val/acc": 1 - 2 / i})
        if i % 100 == 0:
            view.redraw()
    r = view._renderer
    assert r.full_draws <= 12 and r.blits >= 28, (r.blits, r.full_draws)
    start = time.perf_counter()
    run.log({"train/loss": 0.5, "train/acc": 0.5, "val/loss": 0.5, "val/acc": 0.5})
    view.redraw()
    assert r.blits >= 30 and time.perf_counter() - start < 1.0
    run.finish()


def test_throttle_keeps_drawing_within_budget(notebook_mode):
    run = nbtracker.init(project="v")
    view = display.live_view(run)
    view._build_widget()
    view.mode = "live"
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < 3.0:              # ~1 kHz for 3 s, the ticker draws in the background
        run.log({"train/loss": 1 / (i + 1), "train/acc": i % 7, "val/x": i ** 0.5})
        i += 1
        time.sleep(0.001)
    elapsed = time.perf_counter() - start
    run.finish()
    assert view.draws >= 2, "the chart hardly updated while the loop ran"
    assert view.draws <= elapsed / views.MIN_INTERVAL + 1
    # each draw's CPU time is paid from a credit refilled at BUDGET per second (at most CREDIT);
    # a draw starts while the credit is positive, so the last one may overdraw it
    assert view.draw_cpu <= views.BUDGET * elapsed + views.CREDIT + view.max_cost
    assert view.sources[0].rows == i


def test_options_are_arguments_and_a_panel_that_cannot_be_log_says_so(notebook_mode):
    run = nbtracker.init(project="v")
    for i in range(20):
        run.log({**{f"m{k:02d}": (i + 1) * (k + 1) for k in range(15)}, "signed": i - 10})
    default = display.live_view(run)
    assert len(default.chart().panels) == views.MAX_PANELS
    assert "4 more metrics without a panel" in default.header_html()
    assert "run.display(metrics=[...])" in default.header_html()
    run.display(metrics=["m14", "signed"], log_y=True, x="time", smoothing=0.5)
    view = display._views[-1]
    assert view is not default and view.options.log_y and view.options.x == "time"
    chart = view.chart()
    assert [p.title for p in chart.panels] == ["m14", "signed"] and chart.log_y
    fig = view._renderer
    view.png()
    titles = [a["ax"].get_title(loc="left") for a in fig._artists]
    assert titles == ["m14", "signed  (linear: values <= 0)"]
    assert [a["ax"].get_yscale() for a in fig._artists] == ["log", "linear"]
    with pytest.raises(ValueError, match="smoothing must be in"):
        run.display(smoothing=2)
    with pytest.raises(TypeError, match="log_y must be True or False"):
        run.display(log_y="yes")
    with pytest.raises(ValueError, match="unknown chart option"):
        run.display(logy=True)
    run.finish()


def test_compare_overlays_runs_and_reports_bad_input(notebook_mode):
    for lr in (0.1, 0.2):
        with nbtracker.init(project="c", config={"lr": lr}) as r:
            for i in range(30):
                r.log({"val/acc": lr * i})
    listed = nbtracker.runs(project="c")
    view = nbtracker.compare(listed, metric="val/acc")
    chart = view.chart()
    assert [ln.label for ln in chart.panels[0].lines] == [r.name for r in listed]
    assert chart.panels[0].legend
    assert nbtracker.compare(project="c", metric=["val/acc"]).sources[0].id == listed[0].id
    assert len(nbtracker.compare([listed[0].id, listed[1].name], "val/acc").sources) == 2
    with pytest.raises(NbtrackerError, match="none of the runs logged 'nope'"):
        nbtracker.compare(listed, "nope")
    with pytest.raises(NbtrackerError, match="needs metric="):
        nbtracker.compare(listed)
    with pytest.raises(TypeError):
        nbtracker.compare(listed, 3)
    with pytest.raises(TypeError):
        nbtracker.compare([3.5], "val/acc")
    with pytest.raises(ValueError):
        nbtracker.compare(listed, "val/acc", smoothing=1.5)
    with pytest.raises(NbtrackerError, match="no runs"):
        nbtracker.compare(project="empty", metric="x")


def test_compare_follows_a_live_run(notebook_mode):
    with nbtracker.init(project="c") as done:
        done.log({"loss": 1.0})
    run = nbtracker.init(project="c")
    run.log({"loss": 0.5})
    view = nbtracker.compare([done, run], "loss", log_y=True)
    assert view.options.log_y                      # the argument is what is drawn
    view._build_widget()
    view.mode = "live"
    run.log({"loss": 0.25})
    view._next = 0
    view.tick()
    assert view.sources[1].rows == 2 and view.draws == 1 and "0.25" in view._header.value
    run.finish()
    assert view not in display._views


def test_terminal_mode_prints_the_text_view_at_finish(monkeypatch, capsys):
    monkeypatch.setenv("NBTRACKER_QUIET", "0")
    display.install(SimpleNamespace())
    try:
        run = nbtracker.init(project="term", primary_metric=("acc", "max"))
        for i in range(40):
            run.log({"acc": i / 40, "loss": 1 / (i + 1)})
        run.display()
        shown = capsys.readouterr().out
        run.finish()
        at_end = "".join(capsys.readouterr())   # stderr in a script, stdout in a terminal IPython
    finally:
        display.uninstall()
    assert "running, 40 rows" in shown and "▁" in shown and "best 0.975 @ step 39 (max)" in shown
    assert f"run {run.name} ({run.id}) finished, 40 rows" in at_end


def test_plain_script_text_view(run_root):
    code = ("import nbtracker\nrun = nbtracker.init(project='s', primary_metric='acc')\n"
            "for i in range(10): run.log({'acc': i, 'loss': 10 - i})\nrun.display()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**__import__('os').environ, "NBTRACKER_QUIET": "0"}, check=True)
    assert "running, 10 rows" in done.stdout and "best 9 @ step 9 (max)" in done.stdout
    assert "finished, 10 rows" in done.stderr and "loss" in done.stderr     # printed at exit
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                           env={**__import__('os').environ, "NBTRACKER_QUIET": "1"}, check=True)
    assert quiet.stderr == ""
    assert "import matplotlib" not in code and "matplotlib" not in quiet.stdout


def test_a_failing_draw_never_reaches_the_loop_and_is_reported_once(notebook_mode, capsys):
    run = nbtracker.init(project="v")
    view = display.live_view(run)
    view._build_widget()
    view.mode = "live"
    calls = []

    def broken(chart, live=False):
        calls.append(1)
        raise RuntimeError("renderer exploded")

    view._renderer.png = broken
    view._next = 0
    start = time.perf_counter()
    for i in range(2000):
        run.log({"loss": 1.0 / (i + 1)})                  # never raises
    assert time.perf_counter() - start < 5
    assert len(calls) == 1                                # not retried on every row
    err = capsys.readouterr().err
    assert err.count("renderer exploded") == 1 and "logging continues" in err
    del view._renderer.png
    run.finish()
    assert [r["loss"] for r in nbtracker.load(run.id).history()][-1] == 1 / 2000   # nothing lost


def test_a_draw_never_sees_a_half_built_widget(notebook_mode, monkeypatch):
    """Hardening item 8: a row logged while the widget was being built drew with ``_image``
    set and ``_header`` not yet ('LiveView' object has no attribute '_header'). Here a draw
    is attempted from inside the build, where the logging thread's could land."""
    run = nbtracker.init(project="race")
    run.log({"loss": 1.0})
    view = display.live_view(run)
    summary = views.html.run_summary
    attempts = []

    def summary_during_build(*args, **kwargs):
        run.log({"loss": 0.5})
        view._next, view.mode = 0, "live"
        attempts.append(view.due())
        view.tick()                      # must not draw a half-built widget (nor raise)
        return summary(*args, **kwargs)

    monkeypatch.setattr(views.html, "run_summary", summary_during_build)
    view.bundle(live=True)
    monkeypatch.setattr(views.html, "run_summary", summary)
    assert attempts and not any(attempts)    # not drawable until complete
    assert view._header is not None and view._image is not None
    run.finish()
    assert view.widget is None               # closed at finish: its outputs are static
