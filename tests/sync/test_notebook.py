"""notebooks/teams.ipynb in a real kernel (nbclient), mirroring to the real SeaweedFS."""

from __future__ import annotations

from pathlib import Path

import pytest

import nbtracker

from ..nbexec import execute, outputs, stream_text

pytestmark = [pytest.mark.services, pytest.mark.kernel, pytest.mark.timeout(300)]
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def test_teams_notebook_mirrors_to_s3_and_reads_back(s3, seaweed, tmp_path, run_root):
    env = {k: v for k, v in seaweed.environ().items() if k.startswith("AWS_")}
    nb = execute(NOTEBOOKS / "teams.ipynb", cwd=tmp_path, run_root=run_root, timeout=240,
                 env={**env, "TEAM_MIRROR": s3, "NBTRACKER_MIRROR_INTERVAL": "0.3",
                      "NBTRACKER_CACHE": str(tmp_path / "kernel-cache")})
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    (run,) = nbtracker.runs(project="teams")
    status = stream_text([code[3]])
    assert f"mirror   {s3}" in status and ("up to date" in status or "behind" in status), status
    assert "nbtracker:" not in stream_text(code, "stderr")       # the mirror never complained
    table = outputs(code[5], "text/html")[0]["data"]["text/html"]
    assert run.id in table
    chart = outputs(code[6], "image/png")
    assert chart and outputs(code[6], "application/vnd.nbtracker.chart+json")
    assert run.id in stream_text([code[7]])
    assert f"rows; best loss {run.summary['loss']}" in stream_text([code[8]])
    remote = nbtracker.load(run.id, dir=s3)
    assert remote.history() == run.history() and remote.status == "finished"
