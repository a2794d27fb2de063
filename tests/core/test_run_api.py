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


def test_identity_properties_are_typed_and_path_safe(run_root):
    import time
    from pathlib import Path

    before = time.time()
    run = nbtracker.init(project="props", primary_metric="loss:minimize")
    try:
        assert isinstance(run.dir, Path) and run.dir.parent.parent == run_root
        assert run.dir.name == run.id and all(c in "0123456789abcdefghijklmnopqrstuvwxyz" for c in run.id)
        assert before <= run.start_time <= time.time() and doc(run)["start_time"] == run.start_time
        assert run.primary_metric == ("loss", "min") and run.group is None and run.notes is None
        assert run.tags == [] and run.config == {} and dict(run.summary) == {}
        other = nbtracker.init(project="props")
        assert other.id != run.id and run.status == "finished" and other.status == "running"
        other.finish()
    finally:
        run.finish()


def test_run_json_exists_right_after_init_even_with_an_empty_config():
    # Regression: init(config={}) wrote no run.json until the first log, so the run was invisible.
    for config in ({}, argparse.Namespace(), None):
        run = nbtracker.init(config=config)
        try:
            assert nbtracker.load(run.id).status == "running"
            assert doc(run)["config"] == {}
        finally:
            run.finish()


def test_config_non_json_values_through_init_warn_and_are_stored_as_repr():
    class Opaque:
        def __repr__(self):
            return "Opaque()"

    with pytest.warns(nbtracker.NbtrackerWarning, match="Opaque"):
        run = nbtracker.init(config={"obj": Opaque(), "lr": 0.1})
    with run:
        with pytest.warns(nbtracker.NbtrackerWarning, match="repr"):
            run.config.update(fn=len, n=3)
        assert run.config["obj"] == "Opaque()"
    assert doc(run)["config"] == {"obj": "Opaque()", "lr": 0.1, "fn": "<built-in function len>", "n": 3}
    assert nbtracker.load(run.id).config == doc(run)["config"]


def test_config_numpy_values_become_plain_json():
    np = pytest.importorskip("numpy")
    with nbtracker.init(config={"lr": np.float32(0.5), "n": np.int64(3), "flag": np.bool_(True)}) as run:
        pass
    assert doc(run)["config"] == {"lr": 0.5, "n": 3, "flag": True}
    assert type(doc(run)["config"]["n"]) is int


def test_summary_hand_set_value_deleted_falls_back_to_last_logged():
    with nbtracker.init() as run:
        run.log({"loss": 1.0})
        run.summary["loss"] = -1.0
        run.log({"loss": 0.5})
        assert run.summary["loss"] == -1.0
        del run.summary["loss"]
        assert run.summary["loss"] == 0.5
        run.summary.update({"note": "x"}, extra=2)
    assert doc(run)["summary"] == {"loss": 0.5, "note": "x", "extra": 2}
    assert sorted(doc(run)["summary_manual"]) == ["extra", "note"]


@pytest.mark.parametrize("goal,best,step", [("max", 3.0, 0), ("min", 1.0, 1)])
def test_set_primary_metric_after_rows_for_both_goals(goal, best, step):
    with nbtracker.init() as run:
        for v in (3.0, 1.0, 2.0):
            run.log({"m": v})
        run.set_primary_metric("m", goal)
        assert (run.summary["best/m"], run.summary["best_step/m"]) == (best, step)
        run.log({"m": 0.0 if goal == "min" else 9.0})
    s = nbtracker.load(run.id).summary
    assert (s["best/m"], s["best_step/m"]) == ((0.0, 3) if goal == "min" else (9.0, 3))


def test_primary_metric_best_step_follows_explicit_steps():
    with nbtracker.init(primary_metric=("acc", "max")) as run:
        run.log({"acc": 0.1}, step=100)
        run.log({"acc": 0.7}, step=5)        # backwards, and the best
        run.log({"acc": 0.3})
    assert doc(run)["summary"]["best_step/acc"] == 5 and doc(run)["summary"]["best/acc"] == 0.7


def test_interrupted_run_records_the_error_too():
    with pytest.raises(KeyboardInterrupt):
        with nbtracker.init() as run:
            run.log({"a": 1})
            raise KeyboardInterrupt
    d = doc(run)
    assert d["status"] == "interrupted" and d["error"]["type"] == "KeyboardInterrupt"
    assert nbtracker.load(run.id).status == "interrupted" and len(rows(run)) == 1


def test_context_manager_exception_message_is_recorded():
    with pytest.raises(RuntimeError):
        with nbtracker.init() as run:
            raise RuntimeError("out of memory on step 7")
    assert doc(run)["error"] == {"type": "RuntimeError", "message": "out of memory on step 7"}


def test_a_rejected_init_leaves_the_active_run_running(capsys):
    # Regression: the active run was finished before the new init's arguments were checked.
    run = nbtracker.init()
    try:
        for bad in ({"project": "../x"}, {"primary_metric": ("m", "up")}, {"tags": [""]},
                    {"resume": "../etc"}):
            with pytest.raises(nbtracker.NbtrackerError):
                nbtracker.init(**bad)
            assert nbtracker.current_run() is run and run.status == "running"
        assert "finished run" not in capsys.readouterr().err
    finally:
        run.finish()


def test_log_after_finish_raises_and_records_nothing():
    run = nbtracker.init()
    run.log({"a": 1})
    run.finish()
    with pytest.raises(nbtracker.RunActiveError, match="resume="):
        run.log({"a": 2})
    with pytest.raises(nbtracker.NbtrackerError, match="no active run"):
        nbtracker.log({"a": 3})
    assert [r["a"] for r in rows(run)] == [1]


def test_module_level_log_passes_step_and_commit():
    run = nbtracker.init()
    nbtracker.log({"a": 1}, commit=False)
    nbtracker.log({"b": 2}, step=5)
    nbtracker.log({"c": 3})
    nbtracker.finish()
    got = rows(run)
    assert [(r["_step"], set(r) - {"_step", "_time"}) for r in got] == [(5, {"a", "b"}), (6, {"c"})]
    assert run.status == "finished"
