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
