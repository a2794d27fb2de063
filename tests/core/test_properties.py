"""Property tests: whatever valid dict is logged reads back exactly; invalid input changes nothing."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nbtracker
from nbtracker.core.files import read_jsonl

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

segment = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="/"),
                  min_size=1, max_size=8).filter(lambda s: not s.startswith("_") and s.isprintable())
keys = st.builds(lambda parts: "/".join(parts), st.lists(segment, min_size=1, max_size=3))
values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**63 + 1, 2**63 - 1),
                   st.text(max_size=20), st.booleans())


def same(a, b):
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b and type(a) is type(b)


@SETTINGS
@given(st.lists(st.dictionaries(keys, values, min_size=1, max_size=5), min_size=1, max_size=5))
def test_any_valid_rows_round_trip(batch):
    with nbtracker.init(project="prop") as run:
        for row in batch:
            run.log(row)
    got = nbtracker.load(run.id, project="prop").history()
    assert len(got) == len(batch)
    for sent, back in zip(batch, got):
        expected = {k: int(v) if isinstance(v, bool) else v for k, v in sent.items()}
        assert set(back) - {"_step", "_time"} == set(expected)
        assert all(same(expected[k], back[k]) for k in expected), (expected, back)


bad_values = st.one_of(st.lists(st.integers(), min_size=1), st.binary(), st.complex_numbers(), st.sets(st.integers()))
bad_keys = st.one_of(st.just(""), st.text(min_size=1).map(lambda s: "_" + s), st.integers(), st.just("a//b"))


@SETTINGS
@given(st.dictionaries(keys, st.floats(allow_nan=False), min_size=1, max_size=3),
       st.one_of(st.tuples(keys, bad_values), st.tuples(bad_keys, st.floats())))
def test_invalid_rows_raise_and_leave_the_file_unchanged(good, bad):
    with nbtracker.init(project="prop") as run:
        run.log(good)
        run.flush()
        before = (run.dir / "metrics.jsonl").read_bytes()
        try:
            run.log({**good, bad[0]: bad[1]})
        except (TypeError, ValueError):
            pass
        else:
            raise AssertionError(f"accepted {bad!r}")
        run.flush()
        assert (run.dir / "metrics.jsonl").read_bytes() == before
    assert len(read_jsonl(run.dir / "metrics.jsonl")) == 1


@SETTINGS
@given(st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 50)), st.booleans()), min_size=1, max_size=30))
def test_steps_follow_the_model(calls):
    """Auto steps continue after the highest step seen; commit=False rows merge into the next one."""
    expected, next_step, pending_step, pending = [], 0, None, False
    with nbtracker.init(project="prop") as run:
        for n, (step, commit) in enumerate(calls):
            run.log({f"k{n}": n}, step=step, commit=commit)
            if not commit:
                pending = True
                pending_step = step if step is not None else pending_step
                continue
            s = step if step is not None else pending_step
            pending, pending_step = False, None
            if s is None:
                s = next_step
            next_step = max(next_step, s + 1)
            expected.append(s)
        assert run.step == next_step
    if pending:       # finish() commits what commit=False left behind
        s = pending_step if pending_step is not None else next_step
        expected.append(s)
    got = read_jsonl(run.dir / "metrics.jsonl")
    assert [r["_step"] for r in got] == expected
    assert sum(len(r) - 2 for r in got) == len(calls)      # every value landed in exactly one row


@SETTINGS
@given(st.dictionaries(segment, st.one_of(values, st.dictionaries(segment, values, max_size=3)),
                       min_size=1, max_size=4),
       st.integers(-2**80, 2**80))
def test_nested_dicts_flatten_and_huge_ints_become_floats(data, big):
    data.pop("big", None)
    with nbtracker.init(project="prop") as run:
        run.log({**data, "big": big})
    (back,) = nbtracker.load(run.id, project="prop").history()
    flat = {}
    for k, v in data.items():
        if isinstance(v, dict):
            flat.update({f"{k}/{kk}": vv for kk, vv in v.items()})
        else:
            flat[k] = v
    flat["big"] = big if -2**63 < big < 2**63 else float(big)
    expected = {k: int(v) if isinstance(v, bool) else v for k, v in flat.items()}
    assert set(back) - {"_step", "_time"} == set(expected)
    assert all(same(expected[k], back[k]) for k in expected), (expected, back)
