"""Images, histograms, tables, the text log, the logging handler, console capture and system metrics."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

import nbtracker


def _png_pixels(path):
    from PIL import Image as PILImage

    with PILImage.open(path) as im:
        return np.asarray(im)


def test_images_from_arrays_pil_figures_and_files_round_trip(run_root, tmp_path):
    from matplotlib.figure import Figure
    from PIL import Image as PILImage

    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    gray = np.linspace(0, 1, 64).reshape(8, 8)
    chw = np.zeros((3, 5, 7), dtype=np.float32)
    chw[0] = 1.0
    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([1, 2])
    PILImage.fromarray(rgb).save(tmp_path / "x.jpg")
    with nbtracker.init(project="m") as run:
        run.log({"rgb": nbtracker.Image(rgb, caption="<script>alert(1)</script>"), "loss": 0.5})
        run.log_image("gray", gray, step=5)
        run.log_image("chw", chw)
        run.log({"pil": nbtracker.Image(PILImage.fromarray(rgb).convert("RGBA")), "fig": nbtracker.Image(fig)})
        run.log({"file": nbtracker.Image(tmp_path / "x.jpg")})
        run.log_image("gallery", [rgb, gray])
        for bad in (np.zeros((2, 2, 7)), np.array(["a"]), "nope.png", tmp_path / "x.txt", np.zeros((0, 3))):
            with pytest.raises(nbtracker.InvalidValueError):
                nbtracker.Image(bad)
    view = nbtracker.load(run.id)
    media = {m["key"]: m for m in view.media()}
    assert np.array_equal(_png_pixels(media["rgb"]["file"]), rgb)
    assert media["rgb"]["caption"] == "<script>alert(1)</script>" and view.history()[0]["loss"] == 0.5
    assert np.array_equal(_png_pixels(media["gray"]["file"]), (gray * 255).round().astype(np.uint8))
    assert media["gray"]["_step"] == 5
    chw_px = _png_pixels(media["chw"]["file"])
    assert chw_px.shape == (5, 7, 3) and (chw_px[..., 0] == 255).all() and (chw_px[..., 1] == 0).all()
    assert _png_pixels(media["pil"]["file"]).shape == (20, 30, 4)
    assert media["fig"]["width"] == 200 and media["file"]["path"].endswith(".jpg")
    assert [m["key"] for m in view.media("gallery")] == ["gallery", "gallery"]
    assert "rgb" not in view.summary and view.summary["loss"] == 0.5   # references stay out of the summary
    row = json.loads((run.dir / "metrics.jsonl").read_text().splitlines()[0])
    assert row["rgb"] == {"_type": "image", "path": "media/rgb/0-0.png", "width": 30, "height": 20,
                          "caption": "<script>alert(1)</script>"}


def test_histograms_and_tables_are_csv_files_pandas_reads(run_root):
    import pandas as pd

    values = np.random.default_rng(1).normal(size=1000)
    df = pd.DataFrame({"name": ["a,b", 'quote"d', None], "score": [1.5, 2.0, float("nan")]})
    with nbtracker.init(project="m") as run:
        run.log({"h": nbtracker.Histogram(values, bins=10),
                 "pre": nbtracker.Histogram(np_histogram=np.histogram([1, 2, 2, 3], bins=3)),
                 "t": nbtracker.Table(columns=["x", "y"], data=[[1, "one"], [2, "two"]]),
                 "df": nbtracker.Table(dataframe=df)})
        for bad in (lambda: nbtracker.Histogram([]), lambda: nbtracker.Histogram([1], bins=0),
                    lambda: nbtracker.Histogram(np_histogram=([1, 2], [0, 1])),
                    lambda: nbtracker.Table(columns=["a"], data=[[1, 2]]), lambda: nbtracker.Table(data=[[1]])):
            with pytest.raises(nbtracker.InvalidValueError):
                bad()
    media = {m["key"]: m for m in nbtracker.load(run.id).media()}
    h = pd.read_csv(media["h"]["file"])
    assert list(h.columns) == ["left", "right", "count"] and h["count"].sum() == 1000 == media["h"]["count"]
    assert list(pd.read_csv(media["pre"]["file"])["count"]) == [1, 2, 1]
    t = pd.read_csv(media["t"]["file"])
    assert t.to_dict("list") == {"x": [1, 2], "y": ["one", "two"]}
    back = pd.read_csv(media["df"]["file"])
    assert list(back["name"][:2]) == ["a,b", 'quote"d'] and back["score"][:2].tolist() == [1.5, 2.0]


def test_text_log_and_logging_handler(run_root):
    logger = logging.getLogger("nbtracker-test")
    logger.setLevel(logging.DEBUG)
    with nbtracker.init(project="t") as run:
        run.log_text("before any row")
        run.log({"x": 1}, step=7)
        run.log_text("warned", level="warning")
        run.log_text("at 3", step=3)
        handler = run.get_logging_handler(logging.INFO)
        assert run.logging_handler is handler
        logger.addHandler(handler)
        logger.debug("not recorded")
        logger.info("epoch %d done", 1)
        logger.error("bad\x00thing")
        with pytest.raises(nbtracker.InvalidKeyError):
            run.log_text("x", level="loud")
        with pytest.raises(nbtracker.InvalidValueError):
            run.log_text(b"bytes")
    assert handler not in logger.handlers                   # removed and closed at finish
    logger.info("after finish")                              # nothing happens, nothing raises
    records = nbtracker.load(run.id).text_log()
    assert [(r["step"], r["level"], r["text"]) for r in records] == [
        (None, "info", "before any row"), (7, "warning", "warned"), (3, "info", "at 3"),
        (7, "info", "epoch 1 done"), (7, "error", "bad\x00thing")]
    assert records[3]["logger"] == "nbtracker-test"


SCRIPT = textwrap.dedent("""
    import ctypes, os, sys, warnings, nbtracker
    from tqdm import tqdm
    run = nbtracker.init(project="c", capture_console=True)
    print("hello from print")
    for i in tqdm(range(200), mininterval=0):
        pass
    warnings.warn("careful")
    ctypes.CDLL(None).puts(b"from C")
    os.system("echo from a child process")
    sys.stdout.write("no newline at the end")
    run.finish()
    print("after finish")
    r2 = nbtracker.init(project="c", capture_console=True)
    r3 = nbtracker.init(project="c", capture_console=True)   # takes over: never captured twice
    print("third run")
    r3.finish()
    print(run.id, r2.id, r3.id)
""")


def test_console_capture_in_a_script_keeps_showing_output_and_stores_final_lines(run_root, tmp_path):
    pytest.importorskip("tqdm")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "NBTRACKER_DIR": str(run_root)}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    a, b, c = out[-1].split()
    for shown in ("hello from print", "from C", "from a child process", "after finish", "third run"):
        assert any(shown in line for line in out), shown     # still shown while captured
    assert "100%" in proc.stderr and "careful" in proc.stderr
    lines = nbtracker.load(a).console()
    text = [(r["stream"], r["line"]) for r in lines]
    assert ("stdout", "hello from print") in text and ("stdout", "from C") in text
    assert ("stdout", "from a child process") in text and ("stdout", "no newline at the end") in text
    bars = [line for s, line in text if s == "stderr" and "it/s" in line or "100%" in line]
    assert len(bars) == 1 and "200/200" in bars[0]           # one final line, not 200 partial ones
    assert any("careful" in line for _, line in text)
    assert not any("after finish" in r["line"] for r in lines)
    assert all("because a new run started" in r["line"] for r in nbtracker.load(b).console())
    assert [r["line"] for r in nbtracker.load(c).console()] == ["third run"]


def test_capture_console_and_system_metrics_arguments_are_checked_before_a_run_exists(run_root):
    with pytest.raises(nbtracker.InvalidValueError):
        nbtracker.init(capture_console="yes")
    with pytest.raises(nbtracker.InvalidValueError):
        nbtracker.init(system_metrics=-1)
    assert not run_root.exists() or not any(run_root.iterdir())


def test_system_metrics_sample_into_their_own_file_with_a_fake_gpu(run_root, monkeypatch):
    pytest.importorskip("psutil")
    fake = types.ModuleType("pynvml")
    fake.NVML_TEMPERATURE_GPU = 0
    fake.nvmlInit = lambda: None
    fake.nvmlShutdown = lambda: None
    fake.nvmlDeviceGetCount = lambda: 2
    fake.nvmlDeviceGetHandleByIndex = lambda i: i
    fake.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=50 + h)
    fake.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=2**30, total=2**32)
    fake.nvmlDeviceGetTemperature = lambda h, kind: 60
    fake.nvmlDeviceGetPowerUsage = lambda h: 150_000
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    with nbtracker.init(project="sys", system_metrics=0.05) as run:
        run.log({"loss": 1.0})
        import time

        time.sleep(0.3)
    samples = nbtracker.load(run.id).system()
    assert len(samples) >= 3
    s = samples[-1]
    assert 0 <= s["system/cpu_percent"] <= 100 * os.cpu_count() and s["system/memory_used_gb"] > 0
    assert s["system/gpu.1.utilization_percent"] == 51 and s["system/gpu.0.power_w"] == 150.0
    assert s["system/gpu.0.memory_percent"] == 25.0
    assert [list(r) for r in nbtracker.load(run.id).history()] == [["_step", "_time", "loss"]]


def test_no_gpu_is_a_quiet_no_op(run_root, monkeypatch):
    pytest.importorskip("psutil")
    fake = types.ModuleType("pynvml")

    def no_driver():
        raise RuntimeError("NVML Shared Library Not Found")

    fake.nvmlInit = no_driver
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    with nbtracker.init(project="sys", system_metrics=True) as run:
        pass
    assert not any(k.startswith("system/gpu") for s in nbtracker.load(run.id).system() for k in s)


OUTLIVES = textwrap.dedent("""
    import subprocess, sys, nbtracker
    run = nbtracker.init(project="c", capture_console=True)
    child = subprocess.Popen([sys.executable, "-c",
        "import time\\nfor i in range(8):\\n    print('child', i, flush=True)\\n    time.sleep(0.5)"])
    print("parent", flush=True)
    run.finish()
    print(child.wait(), flush=True)
""")


def test_a_child_that_outlives_the_capture_keeps_writing_and_is_not_killed(run_root, tmp_path):
    proc = subprocess.run([sys.executable, "-c", OUTLIVES], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NBTRACKER_DIR": str(run_root)})
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and lines[-1] == "0", proc.stderr     # the child exited normally
    assert [f"child {i}" for i in range(8)] == [line for line in lines if line.startswith("child")]
