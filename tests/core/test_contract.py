"""The run directory format (docs/run-directory.md) and the public surface, pinned."""

from __future__ import annotations

import json
import subprocess
import sys

import nbtracker

RUN_JSON_TYPES = {
    "format": int, "id": str, "name": str, "project": str, "group": (str, type(None)), "tags": list,
    "notes": (str, type(None)), "status": str, "start_time": float, "end_time": (float, type(None)),
    "primary_metric": (dict, type(None)), "resumes": list, "error": (dict, type(None)), "host": str,
    "pid": int, "python": str, "argv": list, "nbtracker_version": str, "rows": int,
    "updated_time": float, "config": dict, "summary": dict, "summary_manual": list,
}


def test_run_json_keys_and_types():
    with nbtracker.init(project="c", config={"a": 1}, primary_metric="m:min") as run:
        run.log({"m": 1.0})
    doc = json.loads((run.dir / "run.json").read_text())
    assert set(doc) == set(RUN_JSON_TYPES)
    for key, types in RUN_JSON_TYPES.items():
        assert isinstance(doc[key], types), key
    assert doc["format"] == 1 and doc["status"] in ("running", "finished", "failed", "interrupted", "crashed")
    assert doc["primary_metric"] == {"name": "m", "goal": "min"}


def test_run_directory_files_and_metrics_rows():
    with nbtracker.init(project="c") as run:
        run.log({"loss": 0.5, "nested": {"x": 1}})
    names = sorted(p.name for p in run.dir.iterdir())
    assert names == [".lock", "code", "env.json", "heartbeat", "metrics.jsonl", "run.json"]
    # the code state (docs/reproducibility.md): git.json always (here: a work tree or not), env.json
    git = json.loads((run.dir / "code" / "git.json").read_text())
    assert git["git"] in ("ok", "not a git work tree", "not installed")
    env = json.loads((run.dir / "env.json").read_text())
    assert env["python"] == sys.version.split()[0] and "nbtracker" in {k.lower() for k in env["distributions"]}
    assert "environ" not in json.dumps(env).lower()
    line = (run.dir / "metrics.jsonl").read_text()
    assert line.endswith("\n") and line.count("\n") == 1
    row = json.loads(line)
    assert list(row) == ["_step", "_time", "loss", "nested/x"] and row["_step"] == 0


def test_public_names_are_pinned():
    assert nbtracker.__all__ == sorted(nbtracker.__all__)
    assert nbtracker.__all__ == [
        "ArtifactVersion", "Checkpoint", "Histogram", "Image", "InvalidKeyError", "InvalidValueError",
        "Model", "ModelVersion", "NbtrackerError", "NbtrackerWarning", "Run",
        "RunActiveError", "RunList", "RunNotFoundError", "RunView", "StorageError", "Table",
        "UnreadableRunError",
        "__version__",
        "artifacts", "compare", "current_run", "finish", "get_artifact", "get_model", "init", "load",
        "load_ipython_extension", "log", "models", "register_model", "replay", "restore", "runs", "stream",
        "unload_ipython_extension",
    ]
    assert all(hasattr(nbtracker, n) for n in nbtracker.__all__)


def test_errors_are_builtin_kinds_too():
    assert issubclass(nbtracker.InvalidKeyError, ValueError)
    assert issubclass(nbtracker.InvalidValueError, TypeError)
    assert issubclass(nbtracker.RunNotFoundError, LookupError)
    assert issubclass(nbtracker.StorageError, OSError)
    for e in (nbtracker.InvalidKeyError, nbtracker.RunActiveError, nbtracker.StorageError):
        assert issubclass(e, nbtracker.NbtrackerError)


def test_import_is_headless():
    code = ("import sys, nbtracker; heavy = [m for m in ('IPython', 'ipywidgets', 'matplotlib', 'nbformat', "
            "'numpy', 'pandas', 'argparse') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version_is_single_sourced():
    from importlib.metadata import version

    assert version("nbtracker") == nbtracker.__version__


def test_metrics_rows_types_and_non_finite_literals():
    import math

    with nbtracker.init(project="c") as run:
        run.log({"f": 0.5, "i": 3, "b": True, "s": "t\n\"q\"", "nan": math.nan, "inf": math.inf,
                 "ninf": -math.inf, "neg0": -0.0})
        run.log({"f": 1.5}, step=9)
    text = (run.dir / "metrics.jsonl").read_text(encoding="utf-8")
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) == 3                  # every row ends with "\n"
    assert '"nan":NaN' in lines[0] and '"inf":Infinity' in lines[0] and '"ninf":-Infinity' in lines[0]
    assert text.isascii()                                       # non-ASCII is \u-escaped
    first, second = (json.loads(line) for line in lines[:2])
    assert type(first["_step"]) is int and type(first["_time"]) is float
    assert (first["b"], first["i"], first["s"]) == (1, 3, "t\n\"q\"") and type(first["i"]) is int
    assert math.copysign(1, first["neg0"]) == -1
    assert list(second) == ["_step", "_time", "f"] and second["_step"] == 9
    doc = json.loads((run.dir / "run.json").read_text())
    assert doc["rows"] == 2 and doc["summary"]["f"] == 1.5


def test_run_json_error_resumes_and_no_temp_files_left():
    try:
        with nbtracker.init(project="c") as run:
            run.log({"a": 1})
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    again = nbtracker.init(resume=run.id)
    again.finish()
    doc = json.loads((run.dir / "run.json").read_text())
    assert doc["error"] is None and doc["status"] == "finished"    # a resume clears the old error
    assert len(doc["resumes"]) == 1 and isinstance(doc["resumes"][0], float)
    assert doc["resumes"][0] >= doc["start_time"] and doc["end_time"] >= doc["resumes"][0]
    assert sorted(p.name for p in run.dir.iterdir()) == [".lock", "code", "env.json", "heartbeat", "metrics.jsonl", "run.json"]


def test_failed_run_json_records_the_error():
    try:
        with nbtracker.init(project="c") as run:
            raise ValueError("x" * 5000)
    except ValueError:
        pass
    doc = json.loads((run.dir / "run.json").read_text())
    assert doc["status"] == "failed" and doc["error"]["type"] == "ValueError"
    assert len(doc["error"]["message"]) == 2000                  # long messages are cut
