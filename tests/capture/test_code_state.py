"""The code-state capture's pure parts: hidden-state rules on given histories, git without git."""

from __future__ import annotations

import os

from nbtracker.capture.hidden import bound_and_read, hidden_state, summary_lines
from nbtracker.capture.state import git_state, strip_credentials


def ex(count, source, cell_id=None):
    return {"execution_count": count, "cell_id": cell_id, "source": source, "status": "ok"}


def rec(count, source, rows, cell_id=None):
    return {"execution_count": count, "cell_id": cell_id, "source": source, "rows": rows}


def test_bound_and_read_follows_python_and_ipython_syntax():
    bound, read = bound_and_read("%matplotlib inline\nimport numpy as np\nfrom a.b import c\n"
                                 "x = y + 1\nfor i in range(z):\n    t = i\ndef f(q):\n    return q + w\n"
                                 "with open(p) as fh:\n    pass\nv = [k for k in u]")
    assert {"np", "c", "x", "i", "t", "f", "fh", "v"} <= bound
    assert {"y", "z", "p", "u"} <= read and not {"np", "x", "i", "k", "q", "range", "open"} & read
    assert "w" in read           # read inside a function body: still a name the cell needs


def test_hidden_state_with_cell_ids_finds_every_kind():
    history = [ex(1, "import nbtracker", "a"), ex(2, "lr = 0.1", "b"), ex(3, "run.log({'x': lr})", "c"),
               ex(4, "x = 1", "d"), ex(5, "run.log({'y': 2})", "e"), ex(6, "x = 2", "d")]
    records = [rec(3, "run.log({'x': lr})", 1, "c"), rec(5, "run.log({'y': 2})", 1, "e")]
    saved = [{"id": "a", "source": "import nbtracker"}, {"id": "d", "source": "x = 2"},
             {"id": "c", "source": "run.log({'x': lr * 2})"}]          # b and e deleted, c edited
    state = hidden_state(history, records, saved)
    assert state["cell_ids"] and state["found"]
    assert state["changed_after_run"] == [{"execution_count": 3, "cell_id": "c", "rows": 1}]
    assert state["rows_from_missing_cells"] == [{"execution_count": 5, "cell_id": "e", "rows": 1}]
    assert [(n["name"], n["used_in"], n["defined_in"]) for n in state["names_from_deleted_cells"]] == [("lr", 3, [2])]
    assert [o["execution_count"] for o in state["out_of_order"]] == [4]    # d (2nd in the file) after c (3rd)
    lines = summary_lines(state)
    assert any("edited in the notebook since" in ln for ln in lines) and any("'lr'" in ln for ln in lines)


def test_a_clean_session_has_no_hidden_state():
    history = [ex(1, "import nbtracker", "a"), ex(2, "lr = 0.1", "b"), ex(3, "run.log({'x': lr})", "c")]
    saved = [{"id": c["cell_id"], "source": c["source"]} for c in history]
    state = hidden_state(history, [rec(3, "run.log({'x': lr})", 2, "c")], saved)
    assert not state["found"] and summary_lines(state) == []


def test_git_state_without_git_or_outside_a_repository(tmp_path, monkeypatch):
    assert git_state(tmp_path)[0]["git"] in ("not a git work tree", "not installed")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert git_state(tmp_path) == ({"git": "not installed"}, None)
    monkeypatch.setenv("PATH", os.defpath)


def test_remote_credentials_are_stripped():
    assert strip_credentials("https://alice:tok@github.com/x/y.git\n") == "https://github.com/x/y.git"
    assert strip_credentials("ssh://git@host:22/x") == "ssh://host:22/x"
    assert strip_credentials("git@github.com:x/y.git") == "git@github.com:x/y.git"


def test_site_packages_and_the_standard_library_are_never_local_even_inside_the_project(tmp_path):
    """A project whose venv lives in it (project/.venv): its packages are not local modules."""
    import json as stdlib_module
    import sys
    import sysconfig
    from pathlib import Path

    import numpy

    from nbtracker.capture.state import ModuleCapture

    venv_parent = Path(sysconfig.get_paths()["purelib"]).parents[3]    # <project>/.venv/lib/pythonX/site-packages
    capture = ModuleCapture(tmp_path, cwd=venv_parent)
    assert capture.local(numpy) is None and capture.local(stdlib_module) is None
    mine = tmp_path / "proj"
    mine.mkdir()
    (mine / "localthing.py").write_text("X = 1\n")
    sys.path.insert(0, str(mine))
    try:
        import localthing

        assert ModuleCapture(tmp_path, cwd=mine).local(localthing) == (str((mine / "localthing.py").resolve()),
                                                                       "localthing.py")
    finally:
        sys.path.remove(str(mine))
        sys.modules.pop("localthing", None)
