"""Code capture from a real in-process IPython history: order, clean version, formats, identity."""

from __future__ import annotations

import json
import os

import nbformat
import pytest

import nbtracker
from nbtracker.capture import CodeCapture, clean_version
from nbtracker.capture.convert import py_source
from nbtracker.capture.identity import find_notebook

from ..ipshell import cell


@pytest.mark.parametrize("src,expected", [
    ("%timeit f()", "# %timeit f()"),
    ("x = !ls\ny = 1", "# x = !ls\ny = 1"),
    ("!pip install foo", "# !pip install foo"),
    ("len?", "# len?"),
    ("%%bash\necho hi", "# %%bash\n# echo hi"),
    ("a = 1\nb = a + 1", "a = 1\nb = a + 1"),
])
def test_ipython_lines_become_comments(src, expected):
    assert py_source(src) == expected


def test_invalid_python_is_kept_as_a_comment():
    out = py_source("def broken(:\n    pass")
    assert out.startswith("# nbtracker: not valid Python") and compile(out, "x", "exec")


def test_clean_version_keeps_the_last_version_of_each_cell_in_execution_order():
    h = [{"execution_count": 1, "cell_id": "a", "source": "x = 1", "status": "ok"},
         {"execution_count": 2, "cell_id": "b", "source": "y = x", "status": "error"},
         {"execution_count": 3, "cell_id": "a", "source": "x = 2", "status": "ok"},
         {"execution_count": 4, "cell_id": None, "source": "print(x)", "status": "ok"},
         {"execution_count": 5, "cell_id": None, "source": "print(x)", "status": "ok"}]
    assert [e["execution_count"] for e in clean_version(h)] == [2, 3, 5]


def test_session_capture_with_reruns_failures_and_earlier_history(ip, tmp_path, monkeypatch):
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.delenv("NBTRACKER_NOTEBOOK", raising=False)
    ip.run_line_magic("unload_ext", "nbtracker")
    cell(ip, "before_load = 1")            # ran before %load_ext: in the history, status unknown
    ip.run_line_magic("load_ext", "nbtracker")
    cell(ip, "import nbtracker\nrun = nbtracker.init()", "init")
    cell(ip, "x = 1", "a")
    cell(ip, "%time y = 2", "m")
    cell(ip, "1/0", "b")
    cell(ip, "x = 3", "a")                 # a re-run of cell a with new source
    run = ip.user_ns["run"]
    cell(ip, "run.finish()", "fin")
    code = run.dir / "code"
    history = (code / "history.py").read_text()
    assert history.index("x = 1") < history.index("1/0") < history.index("x = 3")
    assert "status: error" in history and "# %time y = 2" in history
    clean = (code / "clean.py").read_text()
    assert "x = 1" not in clean and "x = 3" in clean and "before_load = 1" in clean
    nb = nbformat.read(code / "history.ipynb", as_version=4)
    nbformat.validate(nb)
    statuses = [c.metadata["nbtracker"]["status"] for c in nb.cells]
    assert "error" in statuses and statuses.count("unknown") >= 1
    nbformat.validate(nbformat.read(code / "clean.ipynb", as_version=4))
    for name in ("history.py", "clean.py"):
        compile((code / name).read_text(), name, "exec")
    source = json.loads((code / "source.json").read_text())
    assert source["path"] is None and source["method"] is None and source["tried"]


def _nb_file(path, *sources):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, str(path))
    return path


def test_identity_order(tmp_path, monkeypatch):
    a, b, c = (_nb_file(tmp_path / f"{n}.ipynb", "1") for n in "abc")
    monkeypatch.setenv("NBTRACKER_NOTEBOOK", str(a))
    monkeypatch.setenv("JPY_SESSION_NAME", str(b))
    assert find_notebook({"__vsc_ipynb_file__": str(c)})[0] == a
    monkeypatch.delenv("NBTRACKER_NOTEBOOK")
    assert find_notebook({"__vsc_ipynb_file__": str(c)}) == (b, {"method": "JPY_SESSION_NAME", "path": str(b),
                                                                "tried": ["NBTRACKER_NOTEBOOK: not set"]})
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "missing.ipynb"))
    path, note = find_notebook({"__vsc_ipynb_file__": str(c)})
    assert path == c and note["method"] == "__vsc_ipynb_file__"
    monkeypatch.delenv("JPY_SESSION_NAME")
    assert find_notebook({})[0] is None


def test_notebook_file_is_copied_with_differences(ip, tmp_path, monkeypatch):
    nbfile = _nb_file(tmp_path / "work.ipynb", "import nbtracker\nrun = nbtracker.init()", "x = 1", "never_run()")
    monkeypatch.setenv("NBTRACKER_NOTEBOOK", str(nbfile))
    cell(ip, "import nbtracker\nrun = nbtracker.init()", "c1")
    cell(ip, "x = 1", "c2")
    cell(ip, "run.finish()", "c3")
    code = ip.user_ns["run"].dir / "code"
    assert (code / "notebook.ipynb").read_bytes() == nbfile.read_bytes()
    diff = json.loads((code / "source.json").read_text())["differences"]
    assert diff["cells_in_file_never_run"] == 1 and diff["cells_run_not_in_file"] == 1
    assert any("never_run()" in line for line in diff["diff"])


def test_capture_outside_a_kernel_without_history(tmp_path):
    run = nbtracker.init()
    try:
        cap = CodeCapture(run.dir, shell=None)
        cap.update([{"execution_count": 1, "cell_id": None, "source": "a = 1", "status": "ok"}])
        assert "a = 1" in (run.dir / "code" / "clean.py").read_text()
    finally:
        run.finish()


def test_no_secret_reaches_the_run(ip, tmp_path, monkeypatch):
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / "jpserver-1.json").write_text(json.dumps(
        {"url": "http://127.0.0.1:9/", "token": "s3cr3t-token", "root_dir": str(tmp_path)}))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    for name in ("NBTRACKER_NOTEBOOK", "JPY_SESSION_NAME"):
        monkeypatch.delenv(name, raising=False)
    cell(ip, "import nbtracker\nrun = nbtracker.init()")
    cell(ip, "run.finish()")
    for path in ip.user_ns["run"].dir.rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            assert b"s3cr3t-token" not in text and b"127.0.0.1:9" not in text, path
    assert os.environ.get("JUPYTER_RUNTIME_DIR") == str(runtime)
