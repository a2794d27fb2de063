"""Step and value semantics of ``log``, read back from the metrics file it writes."""

from __future__ import annotations

import math

import pytest

import nbtracker
from nbtracker.core.files import read_jsonl


def rows(run):
    return read_jsonl(run.dir / "metrics.jsonl")


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


def test_auto_steps_continue_after_the_highest_step_seen():
    with nbtracker.init() as run:
        run.log({"a": 0})                      # 0
        run.log({"a": 1}, step=50)             # 50
        run.log({"a": 2}, step=7)              # 7 (backwards; kept)
        run.log({"a": 3})                      # 51, not 8
        run.log({"a": 4}, step=51)             # a repeated step is kept too
        run.log({"a": 5}, commit=False)
        run.log({"b": 6}, commit=False, step=20)
        run.log({"c": 7})                      # merged row at step 20
        assert run.step == 52
    got = rows(run)
    assert [r["_step"] for r in got] == [0, 50, 7, 51, 51, 20]
    assert got[-1]["a"] == 5 and got[-1]["b"] == 6 and got[-1]["c"] == 7
    assert all(list(r)[:2] == ["_step", "_time"] and type(r["_time"]) is float for r in got)
    times = [r["_time"] for r in got]
    assert times == sorted(times)


def test_steps_beyond_int64_are_rejected():
    # Regression: step=2**70 was written as is and pandas.read_json could not read the file.
    with nbtracker.init() as run:
        with pytest.raises(ValueError, match="2\\*\\*63-1"):
            run.log({"a": 1}, step=2**70)
        run.log({"a": 1}, step=2**63 - 1)
    assert rows(run)[0]["_step"] == 2**63 - 1


def test_string_subclasses_are_logged_as_text():
    # Regression: numpy.str_ and StrEnum members were rejected as "not a string".
    import enum

    np = pytest.importorskip("numpy")

    class Mode(str, enum.Enum):
        TRAIN = "train"

    with nbtracker.init() as run:
        run.log({"mode": Mode.TRAIN, "label": np.str_("cat")})
    (row,) = nbtracker.load(run.id).history()
    assert row["mode"] == "train" and row["label"] == "cat"
    assert type(row["mode"]) is str


def test_objects_with_item_are_numbers_like_torch_tensors():
    class Scalar:               # the protocol torch/jax scalars follow
        def __init__(self, v):
            self.v = v

        def item(self):
            return self.v

    class NotScalar:
        shape = (3,)

        def item(self):
            raise ValueError("only one element tensors can be converted to Python scalars")

    with nbtracker.init() as run:
        run.log({"t": Scalar(0.25), "n": Scalar(7), "b": Scalar(False)})
        with pytest.raises(TypeError, match="'vec'.*single number"):
            run.log({"vec": NotScalar()})
    (row,) = rows(run)
    assert (row["t"], row["n"], row["b"]) == (0.25, 7, 0) and type(row["n"]) is int


def test_a_failing_log_keeps_earlier_rows_and_pending_values_intact():
    with nbtracker.init() as run:
        run.log({"a": 1.0})
        run.log({"lr": 0.1}, commit=False)
        with pytest.raises(TypeError, match="'bad'"):
            run.log({"b": 2.0, "bad": object()})
        with pytest.raises(ValueError):
            run.log({"c": 3.0, "_step": 5}, commit=False)
        assert run.step == 1
        run.log({"d": 4.0})
    got = rows(run)
    assert [{k: v for k, v in r.items() if k != "_time"} for r in got] == [
        {"_step": 0, "a": 1.0}, {"_step": 1, "lr": 0.1, "d": 4.0}]
