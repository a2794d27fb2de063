"""The Run API, read back from the files it writes."""

from __future__ import annotations

import argparse
import json
import math

import pytest

import nbtracker
from nbtracker.core.files import read_jsonl


def rows(run):
    return read_jsonl(run.dir / "metrics.jsonl")


def doc(run):
    return json.loads((run.dir / "run.json").read_text())


def test_init_properties_and_layout(run_root):
    run = nbtracker.init(project="mnist", config={"lr": 0.01}, tags=["baseline"], notes="first try",
                         group="g1", primary_metric=("val/acc", "max"))
    try:
        assert run.dir == run_root / "mnist" / run.id
        assert run.id.isalnum() and len(run.id) == 8
        assert run.name.count("-") == 2 and run.name.endswith("-1")
        assert (run.project, run.group, run.tags, run.notes) == ("mnist", "g1", ["baseline"], "first try")
        assert run.status == "running" and run.resumed is False and run.step == 0
        assert nbtracker.current_run() is run
        d = doc(run)
        assert d["status"] == "running" and d["config"] == {"lr": 0.01}
        assert d["primary_metric"] == {"name": "val/acc", "goal": "max"}
    finally:
        run.finish()
    assert nbtracker.current_run() is None
    assert doc(run)["status"] == "finished" and doc(run)["end_time"] >= doc(run)["start_time"]


def test_names_count_up_within_a_project(run_root):
    names = []
    for _ in range(3):
        with nbtracker.init(project="p") as run:
            names.append(run.name)
    assert [n.rsplit("-", 1)[1] for n in names] == ["1", "2", "3"]


def test_log_steps_commit_and_flatten():
    with nbtracker.init() as run:
        run.log({"loss": 0.42, "acc": 0.81})
        run.log({"val": {"acc": 0.8, "loss": 0.5}}, step=10)
        run.log({"lr": 0.01}, commit=False)
        run.log({"loss": 0.3})
        run.log({"loss": 0.9}, step=3)          # backwards: recorded as logged
        run.log({"loss": 0.1})
        assert run.step == 13
    got = rows(run)
    assert [r["_step"] for r in got] == [0, 10, 11, 3, 12]
    assert got[1]["val/acc"] == 0.8 and got[1]["val/loss"] == 0.5
    assert got[2]["lr"] == 0.01 and got[2]["loss"] == 0.3
    assert all(isinstance(r["_time"], float) for r in got)
    assert list(got[0]) == ["_step", "_time", "loss", "acc"]


def test_pending_row_is_written_at_finish():
    run = nbtracker.init()
    run.log({"a": 1}, commit=False)
    run.log({"b": 2}, step=7, commit=False)
    run.finish()
    assert rows(run) == [{"_step": 7, "_time": rows(run)[0]["_time"], "a": 1, "b": 2}]


def test_values_coercion_and_round_trip():
    np = pytest.importorskip("numpy")
    with nbtracker.init() as run:
        run.log({"f": np.float32(0.5), "i": np.int64(3), "a0": np.array(2.5), "b": True,
                 "big": 2**70, "nan": math.nan, "inf": math.inf, "ninf": -math.inf,
                 "s": "text ünïcode", "skip": None})
    (row,) = nbtracker.load(run.id).history()
    assert row["f"] == 0.5 and row["i"] == 3 and row["a0"] == 2.5 and row["b"] == 1
    assert row["big"] == float(2**70) and isinstance(row["big"], float)
    assert math.isnan(row["nan"]) and row["inf"] == math.inf and row["ninf"] == -math.inf
    assert row["s"] == "text ünïcode" and "skip" not in row


@pytest.mark.parametrize("bad", [[1, 2], {1, 2}, object(), b"bytes", 3j])
def test_bad_values_raise_typeerror_naming_the_key(bad):
    with nbtracker.init() as run:
        run.log({"ok": 1})
        with pytest.raises(TypeError, match="'weird'"):
            run.log({"fine": 2.0, "weird": bad})
    assert [set(r) - {"_step", "_time"} for r in rows(run)] == [{"ok"}]


def test_multi_element_array_is_rejected():
    np = pytest.importorskip("numpy")
    with nbtracker.init() as run:
        with pytest.raises(TypeError, match="'arr'.*single number"):
            run.log({"arr": np.ones(3)})


@pytest.mark.parametrize("key", ["", "_step", "_mine", 3, None, "a//b", "a/", "tab\tkey"])
def test_bad_keys_raise_valueerror_and_record_nothing(key):
    with nbtracker.init() as run:
        with pytest.raises(ValueError):
            run.log({"good": 1.0, key: 1.0})
        with pytest.raises(ValueError):
            run.log({"outer": {key: 1.0}})
    assert rows(run) == []


def test_log_rejects_non_mappings_and_bad_steps():
    with nbtracker.init() as run:
        for bad in ([("a", 1)], "a=1", 3):
            with pytest.raises(TypeError):
                run.log(bad)
        with pytest.raises(TypeError):
            run.log({"a": 1}, step=1.5)
        with pytest.raises(ValueError):
            run.log({"a": 1}, step=-1)
        run.log({"a": 1}, step=__import__("numpy").int64(4))
    assert [r["_step"] for r in rows(run)] == [4]


def test_config_sources_and_repr_fallback():
    ns = argparse.Namespace(lr=0.1, layers=[64, 32])
    with nbtracker.init(config=ns) as run:
        run.config["batch_size"] = 64
        run.config.update({"opt": {"name": "adam", "betas": (0.9, 0.99)}}, seed=1)
        with pytest.warns(nbtracker.NbtrackerWarning, match="repr"):
            run.config["fn"] = len
        assert run.config.lr == 0.1
        assert doc(run)["config"] == {"lr": 0.1, "layers": [64, 32], "batch_size": 64,
                                      "opt": {"name": "adam", "betas": [0.9, 0.99]}, "seed": 1,
                                      "fn": "<built-in function len>"}
        with pytest.raises(ValueError):
            run.config["_private"] = 1
        with pytest.raises(TypeError):
            run.config.update([1, 2])


def test_summary_last_values_unless_set_by_hand():
    with nbtracker.init() as run:
        run.log({"loss": 1.0, "acc": 0.1})
        run.summary["loss"] = 0.0
        run.summary["final_note"] = "ok"
        run.log({"loss": 0.5, "acc": 0.2})
        assert run.summary["loss"] == 0.0 and run.summary["acc"] == 0.2
    s = doc(run)["summary"]
    assert s == {"loss": 0.0, "acc": 0.2, "final_note": "ok"}
    assert nbtracker.load(run.id).summary == s


@pytest.mark.parametrize("goal,best,step", [("max", 0.9, 2), ("maximize", 0.9, 2), ("min", 0.2, 1), ("minimize", 0.2, 1)])
def test_primary_metric_best_value_and_step(goal, best, step):
    with nbtracker.init(primary_metric=("val/acc", goal)) as run:
        for v in (0.5, 0.2, 0.9, math.nan, 0.4):
            run.log({"val/acc": v})
    s = doc(run)["summary"]
    assert s["best/val/acc"] == best and s["best_step/val/acc"] == step
    assert nbtracker.load(run.id).best == ("val/acc", best, step)


def test_set_primary_metric_after_rows_exist():
    with nbtracker.init() as run:
        for v in (3.0, 1.0, 2.0):
            run.log({"loss": v})
        run.set_primary_metric("loss", "min")
        run.log({"loss": 1.5})
        with pytest.raises(ValueError):
            run.set_primary_metric("loss", "smallest")
    s = doc(run)["summary"]
    assert (s["best/loss"], s["best_step/loss"]) == (1.0, 1)
    assert doc(run)["primary_metric"] == {"name": "loss", "goal": "min"}


def test_finish_is_idempotent_and_log_after_finish_raises():
    run = nbtracker.init()
    run.finish()
    run.finish()
    with pytest.raises(nbtracker.NbtrackerError, match="finished"):
        run.log({"a": 1})


def test_context_manager_statuses():
    with pytest.raises(ZeroDivisionError):
        with nbtracker.init() as failed:
            1 / 0
    with pytest.raises(KeyboardInterrupt):
        with nbtracker.init() as interrupted:
            raise KeyboardInterrupt
    assert doc(failed)["status"] == "failed"
    assert doc(failed)["error"]["type"] == "ZeroDivisionError"
    assert doc(interrupted)["status"] == "interrupted"
    assert nbtracker.load(failed.id).status == "failed"


def test_module_level_shortcuts(capsys):
    with pytest.raises(nbtracker.NbtrackerError, match="init"):
        nbtracker.log({"a": 1})
    first = nbtracker.init()
    nbtracker.log({"a": 1})
    second = nbtracker.init()               # finishes the first, with a notice
    assert "finished run" in capsys.readouterr().err
    assert doc(first)["status"] == "finished" and nbtracker.current_run() is second
    nbtracker.finish()
    assert nbtracker.current_run() is None and doc(second)["status"] == "finished"
    nbtracker.finish()                      # nothing active: no error


def test_tags_and_notes_setters_persist():
    with nbtracker.init(tags="one") as run:
        run.tags = ["one", "two", "two"]
        run.notes = "changed"
    assert doc(run)["tags"] == ["one", "two"] and doc(run)["notes"] == "changed"
