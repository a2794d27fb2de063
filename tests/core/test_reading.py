"""Reading runs back: listing, filters, sorting, load by reference, history, pandas/DuckDB/jq."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
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
    with pytest.warns(nbtracker.NbtrackerWarning, match="1 unreadable run.*p/broken"):
        found = nbtracker.runs()
    assert [r.id for r in found] == [run.id]
    assert [(d.name, "not readable JSON" in why) for d, why in found.unreadable] == [("broken", True)]


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
        whole = subprocess.run(["jq", "-c", ".", str(path)], capture_output=True, text=True, check=True)
        back = [json.loads(line) for line in whole.stdout.splitlines()]   # jq reads every row as is
        assert [r["_step"] for r in back] == [0, 1, 2] and back[0]["s"] == "x"
        assert back[1]["loss"] is None and back[2]["loss"] == 1.7976931348623157e308
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


def test_a_run_finishing_while_it_is_read_is_never_reported_crashed():
    # Regression: a reader that read run.json ("running") just before the writer finished, then
    # probed the released lock, reported the run as "crashed" (seen in listings during writes).
    run = make(values=[{"a": 1.0}])
    stale = {**json.loads((run.dir / "run.json").read_text()), "status": "running", "end_time": None}
    view = nbtracker.RunView(run.dir, stale)
    assert view.status == "finished" and view.end_time is not None


def test_a_really_crashed_run_stays_crashed_after_the_second_look():
    run = make(values=[{"a": 1.0}])
    path = run.dir / "run.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "status": "running"}))
    assert nbtracker.load(run.id).status == "crashed"
    assert nbtracker.runs(status="crashed")[0].id == run.id
    assert len(nbtracker.runs(status="running")) == 0


def test_empty_and_unsafe_references_are_rejected():
    make()                                      # with one run, "" used to match it as a prefix
    with pytest.raises(nbtracker.RunNotFoundError, match="empty"):
        nbtracker.load("")
    for bad in ("..", "../x", "a/b", "x\x00"):
        with pytest.raises(ValueError):
            nbtracker.runs(project=bad)
        with pytest.raises(ValueError):
            nbtracker.load("abc", project=bad)


def test_sort_by_config_and_summary_keys_missing_last_both_ways():
    a = make(config={"lr": 0.1}, values=[{"acc": 0.5}], primary_metric=("acc", "max"))
    b = make(config={"lr": 0.3}, values=[{"acc": 0.9}], primary_metric=("acc", "max"))
    c = make(config={}, values=[{"acc": math.nan}])
    d = make(config={"lr": "auto"}, values=[{"loss": 1.0}])
    ids = lambda lst: [r.id for r in lst]          # noqa: E731
    # runs() is newest first (d, c, b, a); runs without the key keep that order, after the others.
    assert ids(nbtracker.runs().sort("best/acc", descending=True)) == [b.id, a.id, d.id, c.id]
    assert ids(nbtracker.runs().sort("best/acc")) == [a.id, b.id, d.id, c.id]
    assert ids(nbtracker.runs().sort("acc", descending=True)) == [b.id, a.id, d.id, c.id]  # NaN last
    assert ids(nbtracker.runs().sort("lr")) == [a.id, b.id, d.id, c.id]    # numbers, text, missing
    assert ids(nbtracker.runs().sort("lr", descending=True)) == [b.id, a.id, d.id, c.id]
    assert ids(nbtracker.runs().filter(status=["finished", "failed"], config={"lr": 0.3})) == [b.id]
    assert nbtracker.load(b.id).best == ("acc", 0.9, 0)


def test_history_keys_keeps_rows_with_any_of_them():
    run = make(values=[{"loss": 1.0, "x": 1}, {"acc": 0.5}, {"x": 2}, {"loss": 0.5, "acc": 0.7}])
    got = nbtracker.load(run.id).history(keys=["loss", "acc"])
    assert [(r["_step"], {k: v for k, v in r.items() if k != "_time"}) for r in got] == [
        (0, {"_step": 0, "loss": 1.0}), (1, {"_step": 1, "acc": 0.5}),
        (3, {"_step": 3, "loss": 0.5, "acc": 0.7})]
    assert nbtracker.load(run.id).history(keys=["nope"]) == []


def test_to_pandas_without_pandas_is_a_clear_error(run_root):
    run = make(values=[{"a": 1}])
    code = ("import sys; sys.modules['pandas'] = None\n"
            "import nbtracker\n"
            f"try:\n    nbtracker.load({run.id!r}).to_pandas()\n"
            "except nbtracker.NbtrackerError as e:\n    print('ERR', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "NBTRACKER_DIR": str(run_root)})
    assert out.stdout.startswith("ERR") and "pip install pandas" in out.stdout


def test_to_pandas_frame_matches_history():
    pd = pytest.importorskip("pandas")
    run = make(values=[{"loss": 1.0}, {"loss": math.inf, "s": "x"}])
    df = nbtracker.load(run.id).to_pandas()
    assert isinstance(df, pd.DataFrame) and list(df["_step"]) == [0, 1]
    assert df["loss"].tolist() == [1.0, math.inf] and df["s"].isna().tolist() == [True, False]
    assert list(nbtracker.load(run.id).to_pandas(keys=["s"])["s"]) == ["x"]


def test_nothing_is_written_outside_the_root(tmp_path, run_root):
    outside_before = sorted(p for p in tmp_path.rglob("*") if run_root not in p.parents and p != run_root)
    hostile = ["..", "../escape", "/abs", "a/../../b", "..\\x", "x\x00y", "\n", "."]
    for text in hostile:
        with pytest.raises(ValueError):
            nbtracker.init(project=text)
        with pytest.raises(nbtracker.NbtrackerError):   # not an id, not a run directory
            nbtracker.init(resume=text)
    # Names, tags, notes and keys are data, never paths.
    with nbtracker.init(project="safe", name="../../escape", tags=["../t"], notes="/etc/passwd",
                        group="../g", config={"../c": 1}) as run:
        run.log({"../k": 1.0, "a/../../b": 2.0})
        run.summary["../s"] = 1
    assert run.dir.parent == run_root / "safe" and nbtracker.load("../../escape").id == run.id
    outside_after = sorted(p for p in tmp_path.rglob("*") if run_root not in p.parents and p != run_root)
    assert outside_after == outside_before
    assert sorted(p.name for p in run_root.iterdir()) == ["safe"]


def test_documented_recipes_for_a_torn_last_line_in_other_tools():
    duckdb = pytest.importorskip("duckdb")
    run = make(values=[{"loss": 0.5}, {"loss": math.nan}])
    path = run.dir / "metrics.jsonl"
    with open(path, "a") as f:
        f.write('{"_step":2,"_ti')
    got = duckdb.sql(f"select _step, loss from read_json('{path}', ignore_errors=true) "
                     "where _step is not null order by _step").fetchall()
    assert got[0] == (0, 0.5) and got[1][0] == 1 and math.isnan(got[1][1]) and len(got) == 2
    if not shutil.which("jq"):
        pytest.fail("jq is not installed (.ci/run installs it)")
    out = subprocess.run(["jq", "-cR", "fromjson? // empty", str(path)], capture_output=True, text=True,
                         check=True)
    assert [json.loads(line)["_step"] for line in out.stdout.splitlines()] == [0, 1]
    plain = subprocess.run(["jq", "-c", ".", str(path)], capture_output=True, text=True)
    assert plain.returncode != 0 and len(plain.stdout.splitlines()) == 2   # rows, then an error
