"""The seed notebook with images, tables and histograms in JupyterLab: run all, save, shut the
kernel down, reload: the chart, the image strip, the table and the histogram are still there."""

from __future__ import annotations

import shutil
import time

import nbformat

from ..nbexec import NOTEBOOKS
from .conftest import (
    TOKEN,
    artifacts,
    open_and_run_all,
    save_and_shut_down,
    wait_all_ran,
)


def test_media_notebook_reopened_without_a_kernel_shows_images_tables_and_histograms(lab, page):
    base, work, runs = lab
    shutil.copy(NOTEBOOKS / "files_artifacts_media.ipynb", work / "media.ipynb")
    open_and_run_all(page, base, "media.ipynb")
    wait_all_ran(page, timeout=120_000)
    time.sleep(1.0)
    page.screenshot(path=str(artifacts() / "media-live.png"), full_page=True)
    save_and_shut_down(page)
    saved = nbformat.read(str(work / "media.ipynb"), as_version=4)
    assert not [o for c in saved.cells if c.cell_type == "code" for o in c.outputs if o["output_type"] == "error"]

    page.goto(f"{base}/lab/workspaces/media-reopen/tree/media.ipynb?token={TOKEN}")
    page.locator(".nbtracker-media").first.wait_for(timeout=60_000)
    time.sleep(1.0)
    text = " ".join(page.locator(".jp-OutputArea-output").all_inner_texts())
    assert "Error displaying widget" not in text and "model not found" not in text
    strips = page.locator(".nbtracker-images img")
    assert strips.count() >= 6          # the live run's strip and the read run's strip
    assert all(strips.nth(i).evaluate("e => e.complete && e.naturalWidth > 0") for i in range(strips.count()))
    assert page.locator(".nbtracker-table table").count() >= 1
    assert page.locator(".nbtracker-histogram svg rect").count() >= 10
    assert "a <b>" in page.locator(".nbtracker-table").first.inner_text()   # shown as text, escaped
    page.locator(".nbtracker-media").last.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts() / "media-reopened.png"), full_page=True)
