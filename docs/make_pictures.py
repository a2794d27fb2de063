"""Make the pictures of docs/display.md from a real run of notebooks/live_charts.ipynb.

Usage: python docs/make_pictures.py   (needs nbtracker[test]: nbclient, ipykernel)

Writes docs/img/live-chart.png and docs/img/compare.png: the static PNGs that the notebook's
outputs carry (what GitHub shows). docs/img/runs-table.png and docs/img/lab-live-chart.png are
screenshots kept by the browser test (tests/lab, in test-artifacts/browser/), copied here by hand.
"""

from __future__ import annotations

import base64
import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

DOCS = Path(__file__).resolve().parent


def main() -> int:
    nb = nbformat.read(str(DOCS.parent / "notebooks" / "live_charts.ipynb"), as_version=4)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "NBTRACKER_DIR": str(Path(tmp) / "runs")}
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": tmp}}).execute(env=env)
    code = [c for c in nb.cells if c.cell_type == "code"]
    picks = {"live-chart.png": code[1], "compare.png": code[6], "compare-log.png": code[7]}
    (DOCS / "img").mkdir(exist_ok=True)
    for name, cell in picks.items():
        (png,) = [o["data"]["image/png"] for o in cell.outputs if "image/png" in o.get("data", {})]
        (DOCS / "img" / name).write_bytes(base64.b64decode(png))
        print(f"docs/img/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
