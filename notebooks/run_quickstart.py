"""The README's main job: execute notebooks/quickstart.ipynb in a real Jupyter kernel, headlessly,
then print the runs table and where the files are.

    python notebooks/run_quickstart.py [--dir RUN_ROOT] [--output EXECUTED.ipynb]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", default=None,
                   help="run root (default: the usual rule; `nbtracker root` prints it)")
    p.add_argument("--output", default="quickstart.executed.ipynb",
                   help="where to save the executed notebook, outputs included")
    args = p.parse_args()
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError:
        print("this needs nbclient, ipykernel and numpy: pip install -e '.[test]' (or '.[demo]')",
              file=sys.stderr)
        return 1
    import nbtracker
    from nbtracker.core.paths import resolve_root

    root = resolve_root(args.dir)
    source = HERE / "quickstart.ipynb"
    nb = nbformat.read(source, as_version=4)
    env = {**os.environ, "NBTRACKER_DIR": str(root), "NBTRACKER_NOTEBOOK": str(source)}
    print(f"executing {source.name} in a python3 kernel (runs go to {root}) ...")
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE)}}).execute(env=env)
    nbformat.write(nb, args.output)
    runs = nbtracker.runs(project="quickstart", dir=root)
    print()
    print(repr(runs))
    latest = runs[0]
    print(f"\nlatest run: {latest.name} ({latest.id}), status {latest.status}, best val/acc "
          f"{latest.summary.get('best/val/acc')} at step {latest.summary.get('best_step/val/acc')}")
    print(f"its files ({latest.dir}):")
    for path in sorted(latest.dir.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            print(f"  {path.relative_to(latest.dir)}  ({path.stat().st_size} bytes)")
    print(f"\nexecuted notebook saved as {Path(args.output).absolute()}")
    charts = [o for c in nb.cells for o in c.get("outputs", [])
              if o.get("metadata", {}).get("nbtracker", {}).get("kind") == "live"]
    if charts:   # the live chart's static PNG, as GitHub shows the saved notebook
        import base64

        chart = Path(args.output).with_suffix(".chart.png")
        chart.write_bytes(base64.b64decode(charts[-1]["data"]["image/png"]))
        meta = charts[-1]["metadata"]["nbtracker"]
        print(f"its live chart (final state: {meta['status']}, step {meta['last_step']}) saved as {chart.absolute()}")
    bin_dir = Path(sys.executable).parent
    print(f"list the runs: {bin_dir / 'nbtracker'} ls   (the root: {bin_dir / 'nbtracker'} root)")
    print(f"open it interactively: {bin_dir / 'pip'} install jupyterlab && "
          f"{bin_dir / 'jupyter'} lab notebooks/quickstart.ipynb")
    return 0


if __name__ == "__main__":
    sys.exit(main())
