"""notebooks/teams.ipynb in JupyterLab (with nbtracker's extensions), headless Chromium: the
run is mirrored live (to a folder mirror next to the notebook, the notebook's default), the
status line shows the mirror, and what is read back *from the mirror* (the runs table, the
comparison chart) is drawn like any local run's; still there after save, shutdown, reopen."""

from __future__ import annotations

import shutil
import uuid

import nbformat

import nbtracker

from ..nbexec import NOTEBOOKS
from .conftest import TOKEN, artifacts, open_and_run_all, save_and_shut_down, wait_all_ran


def test_teams_notebook_in_lab(lab_server, page):
    shutil.copy(NOTEBOOKS / "teams.ipynb", lab_server.work / "teams.ipynb")
    open_and_run_all(page, lab_server.base, "teams.ipynb")
    wait_all_ran(page, timeout=180_000)
    cells = page.locator(".jp-Notebook .jp-CodeCell")
    status = cells.nth(3).locator(".jp-OutputArea-output").inner_text()
    mirror = (lab_server.work / "team-mirror").as_uri()
    assert f"mirror   {mirror}" in status and ("up to date" in status or "behind" in status), status
    table = cells.nth(5).locator(".nbtracker-runs-output table.nbt-table")
    table.locator("tbody tr").first.wait_for()
    chart = cells.nth(6).locator(".nbtracker-chart-output")
    chart.locator("canvas").first.wait_for()
    assert "segments, 600 rows" in cells.nth(8).inner_text()
    assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
    page.screenshot(path=str(artifacts() / "teams-in-lab.png"), full_page=True)
    cells.nth(3).scroll_into_view_if_needed()
    cells.nth(3).screenshot(path=str(artifacts() / "teams-in-lab-status.png"))
    (run,) = nbtracker.runs(dir=lab_server.runs, project="teams")
    assert nbtracker.load(run.id, dir=mirror).history() == run.history()
    save_and_shut_down(page)
    saved = nbformat.read(str(lab_server.work / "teams.ipynb"), as_version=4)
    assert not [o for c in saved.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    page.goto(f"{lab_server.base}/lab/workspaces/t{uuid.uuid4().hex[:8]}/tree/teams.ipynb?token={TOKEN}")
    reopened = page.locator(".jp-Notebook .jp-CodeCell").nth(6).locator(".nbtracker-chart-output")
    reopened.locator("canvas").first.wait_for()
    page.screenshot(path=str(artifacts() / "teams-in-lab-reopened.png"), full_page=True)
