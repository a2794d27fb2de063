"""Reading runs back: listing, filters, sorting, load by reference, history, pandas/DuckDB/jq."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time

import pytest

import nbtracker


def make(project="p", config=None, tags=(), values=(), status=None, **kw):
    run = nbtracker.init(project=project, config=config, tags=list(tags), **kw)
    for v in values:
        run.log(v)
    if status == "failed":
        run._set_error(RuntimeError("boom"))
    run.finish(status or "finished")
    return run


def test_runs_newest_first_filters_and_sort():
    a = make(config={"lr": 0.1, "opt": {"name": "sgd"}}, tags=["x"], values=[{"acc": 0.5}])
    time.sleep(0.01)
    b = make(config={"lr": 0.01, "opt": {"name": "adam"}}, tags=["x", "y"], values=[{"acc": 0.9}], status="failed")
    time.sleep(0.01)
    c = make(project="q", config={"lr": 0.5}, values=[{"loss": 1.0}])
    assert [r.id for r in nbtracker.runs()] == [c.id, b.id, a.id]
    assert [r.id for r in nbtracker.runs(project="p")] == [b.id, a.id]
    assert [r.id for r in nbtracker.runs(tags=["y"])] == [b.id]
    assert [r.id for r in nbtracker.runs(status="failed")] == [b.id]
    assert [r.id for r in nbtracker.runs(config={"opt.name": "sgd"})] == [a.id]
    listed = nbtracker.runs()
    assert listed.sort("acc", descending=True) is listed
    assert [r.id for r in listed] == [b.id, a.id, c.id]          # missing values last
    assert [r.id for r in nbtracker.runs().sort("lr")] == [b.id, a.id, c.id]
    assert [r.id for r in nbtracker.runs().sort("name")] == sorted([a.id, b.id, c.id],
                                                                    key=lambda i: nbtracker.load(i).name)
    assert isinstance(listed[:2], nbtracker.RunList) and len(listed[:2]) == 2
    text = repr(nbtracker.runs())
    assert a.name in text and "failed" in text and "config.lr" in text


def test_load_by_id_prefix_name_and_path():
    run = make(name="unique-name", values=[{"a": 1}])
    for ref in (run.id, run.id[:5], "unique-name", str(run.dir)):
        assert nbtracker.load(ref).id == run.id
    with pytest.raises(nbtracker.RunNotFoundError, match="nbtracker ls"):
        nbtracker.load("no-such-run")
    make(name="twin")
    make(name="twin")
    with pytest.raises(nbtracker.RunNotFoundError, match="matches 2 runs"):
        nbtracker.load("twin")


def test_history_keys_and_pandas():
    pytest.importorskip("pandas")
    run = make(values=[{"loss": 1.0}, {"acc": 0.5}, {"loss": 0.5, "acc": 0.7}])
    view = nbtracker.load(run.id)
    assert [r["loss"] for r in view.history(keys=["loss"])] == [1.0, 0.5]
    assert view.history("acc")[0] == {"_step": 1, "_time": view.history()[1]["_time"], "acc": 0.5}
    df = view.to_pandas()
    assert list(df.columns[:2]) == ["_step", "_time"] and len(df) == 3


def test_listing_skips_half_created_and_foreign_directories(run_root):
    run = make()
    (run_root / "p" / "half-made").mkdir()                      # no run.json yet
    (run_root / "p" / "broken").mkdir()
    (run_root / "p" / "broken" / "run.json").write_text("{not json")
    (run_root / "notes.txt").write_text("a stray file")
    assert [r.id for r in nbtracker.runs()] == [run.id]


def test_empty_or_missing_root():
    assert len(nbtracker.runs()) == 0 and repr(nbtracker.runs()) == "<RunList: no runs>"


def test_other_tools_read_the_files_as_they_are():
    pd = pytest.importorskip("pandas")
    duckdb = pytest.importorskip("duckdb")
    run = make(values=[{"loss": 0.5, "s": "x"}, {"loss": math.nan}, {"loss": math.inf}])
    path = run.dir / "metrics.jsonl"
    df = pd.read_json(path, lines=True)
    assert df["loss"].iloc[0] == 0.5 and math.isnan(df["loss"].iloc[1]) and df["loss"].iloc[2] == math.inf
    got = duckdb.sql(f"select _step, loss from read_json('{path}') order by _step").fetchall()
    assert got[0] == (0, 0.5) and math.isnan(got[1][1]) and got[2][1] == math.inf
    assert duckdb.sql(f"select config.lr from read_json('{run.dir / 'run.json'}')").fetchall() == [(None,)]
    if shutil.which("jq"):
        out = subprocess.run(["jq", "-c", "[._step, .loss]", str(path)], capture_output=True, text=True, check=True)
        assert out.stdout.split() == ["[0,0.5]", "[1,null]", "[2,1.7976931348623157e+308]"]
        summary = subprocess.run(["jq", "-r", ".summary.s", str(run.dir / "run.json")],
                                 capture_output=True, text=True, check=True)
        assert summary.stdout.strip() == "x"
    else:
        pytest.fail("jq is not installed (.ci/run installs it)")


@pytest.mark.parametrize("project", ["..", ".", "../x", "a/b", "a\\b", "", " ", ".hidden", "x\x00", "a:b", 3])
def test_project_names_cannot_escape_the_root(project, run_root):
    with pytest.raises(ValueError):
        nbtracker.init(project=project)
    assert not run_root.exists() or not any(run_root.parent.glob("x*"))


def test_run_document_is_plain_json(run_root):
    run = make(config={"lr": 0.1})
    d = json.loads((run.dir / "run.json").read_text())
    assert d["id"] == run.id
