"""Renderer: PNG bytes from series with matplotlib's object API; no pyplot, bounded size."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from nbtracker.display.render import Chart, Line, Panel, layout, render_png

PNG = b"\x89PNG\r\n\x1a\n"


def width_height(png: bytes) -> tuple[int, int]:
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def chart(n_panels: int, points: int) -> Chart:
    x = np.arange(points, dtype=float)
    panels = [Panel(title=f"m{i}", group="train" if i % 2 else "val",
                    lines=[Line(f"m{i}", x, np.sin(x / 50 + i) + np.random.default_rng(i).normal(0, .1, points))])
              for i in range(n_panels)]
    panels[0].best = (10.0, 1.0, "best 1 @ 10")
    return Chart(panels=sorted(panels, key=lambda p: p.group), title="run · step 9")


def test_png_is_produced_sized_and_deterministic():
    png = render_png(chart(4, 2000))
    assert png.startswith(PNG)
    w, h = width_height(png)
    assert w == 800 and 300 < h < 500          # two rows of three panels
    assert len(png) < 60_000
    assert render_png(chart(4, 2000)) == png   # same input, same bytes (tests compare outputs)


def test_twelve_panels_stay_small():
    png = render_png(chart(12, 2000))
    assert len(png) < 120_000 and width_height(png)[0] == 800


def test_empty_nan_inf_and_log_scale_do_not_fail():
    assert render_png(Chart(panels=[], title="waiting")).startswith(PNG)
    y = np.array([1.0, np.nan, np.inf, -np.inf, 0.0, -1.0])
    c = Chart(panels=[Panel("weird", [Line("w", np.arange(6.0), y)]),
                      Panel("one point", [Line("p", np.array([3.0]), np.array([2.0]))])], log_y=True)
    assert render_png(c).startswith(PNG)


def test_groups_stay_together_in_the_grid():
    ps = [Panel("a", [], group="") , Panel("l", [], group="train"), Panel("a", [], group="train"),
          Panel("x", [], group="val"), Panel("y", [], group="val"), Panel("z", [], group="val")]
    assert layout(ps) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    ps = [Panel("a", [], group="g1"), Panel("b", [], group="g1"), Panel("c", [], group="g2"),
          Panel("d", [], group="g2")]
    assert layout(ps) == [(0, 0), (0, 1), (1, 0), (1, 1)]     # g2 does not fit whole in row 0


def test_no_pyplot_and_no_figure_leak():
    code = ("import numpy as np, sys, gc\n"
            "from nbtracker.display.render import Chart, Line, Panel, render_png\n"
            "import matplotlib.figure\n"
            "for i in range(30):\n"
            "    render_png(Chart(panels=[Panel('a', [Line('a', np.arange(10.), np.arange(10.))])]))\n"
            "gc.collect()\n"
            "alive = [o for o in gc.get_objects() if isinstance(o, matplotlib.figure.Figure)]\n"
            "print('pyplot' in ' '.join(sys.modules), len(alive))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "0"]
