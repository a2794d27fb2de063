"""Issue-3 behaviour in a real python3 kernel: nbclient notebooks and a kernel we interrupt and kill."""

from __future__ import annotations

import json
import os
import queue
import signal
import time

import nbformat
import pytest

import nbtracker
from nbtracker.core.files import read_jsonl

from ..nbexec import NOTEBOOKS, execute, notebook, stream_text

pytestmark = pytest.mark.kernel


def test_quickstart_notebook_records_cells_rows_and_code(tmp_path, run_root):
    nb = nbformat.read(NOTEBOOKS / "quickstart.ipynb", as_version=4)
    saved = tmp_path / "quickstart.ipynb"
    execute(nb, cwd=tmp_path, run_root=run_root, save_as=saved)     # JPY_SESSION_NAME, like Jupyter Server
    (run,) = nbtracker.runs(project="quickstart")
    assert run.status == "finished" and run.steps == 40 and run.best[1] > 0.9
    cells = read_jsonl(run.dir / "cells.jsonl")
    assert [c["status"] for c in cells] == ["ok"] * len(cells) and len(cells) == 5
    train = next(c for c in cells if c["rows"])
    assert train["steps"] == [0, 39] and train["rows"] == 40
    assert {r["_cell"] for r in run.history()} == {train["execution_count"]}
    code = run.dir / "code"
    for name in ("history.ipynb", "clean.ipynb"):
        nbformat.validate(nbformat.read(code / name, as_version=4))
    for name in ("history.py", "clean.py"):
        compile((code / name).read_text(), name, "exec")
    assert "# %nbtracker init" in (code / "clean.py").read_text()
    source = json.loads((code / "source.json").read_text())
    assert source["method"] == "JPY_SESSION_NAME" and source["path"] == str(saved)
    assert (code / "notebook.ipynb").read_bytes() == saved.read_bytes()
    assert source["differences"]["cells_in_file_never_run"] == 1          # the cell after finish


def test_statuses_track_and_cell_runs_in_a_kernel(tmp_path, run_root):
    nb = notebook(
        "%load_ext nbtracker\nimport nbtracker",
        "run = nbtracker.init(project='k')\n%track acc",
        "acc = 0.5\nrun.log({'loss': 1.0})",
        "acc = 0.7\n1/0",
        "raise KeyboardInterrupt",
        "acc = 0.7",
        "%%nbtracker run --project cellrun seed=1\nnbtracker.log({'x': 1})",
        "%%nbtracker run --project cellrun seed=2\nnbtracker.log({'x': 2})",
        "run = nbtracker.init(project='k', resume=run.id)\nrun.log({'after': 1})\nrun.finish()",
    )
    execute(nb, cwd=tmp_path, run_root=run_root, allow_errors=True)
    (run,) = nbtracker.runs(project="k")
    cells = read_jsonl(run.dir / "cells.jsonl")
    # init, track, error, interrupt, ok, two cell runs (the notebook's run stays active), resume
    assert [c["status"] for c in cells] == ["ok", "ok", "error", "interrupted", "ok", "ok", "ok", "ok"]
    assert cells[2]["error"]["type"] == "ZeroDivisionError"
    # the counts the frontend shows as In [n] (IPython 8 and 9 count at different moments)
    assert [c["execution_count"] for c in cells] == [c.execution_count for c in nb.cells[1:]]
    assert [c["rows"] for c in cells[5:7]] == [0, 0]           # the cell runs' rows went to their own runs
    rows = run.history()
    tracked = [r["acc"] for r in rows if "acc" in r]
    assert tracked == [0.5, 0.7]                 # one row per cell with a new value; 0.7 twice is one
    assert rows[0]["_cell"] == cells[1]["execution_count"]
    assert rows[-1]["after"] == 1 and run.status == "finished"
    cell_runs = nbtracker.runs(project="cellrun")
    assert sorted(r.config["seed"] for r in cell_runs) == [1, 2] and {r.status for r in cell_runs} == {"finished"}


def test_unwritable_run_root_keeps_the_notebook_working(tmp_path, run_root):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    nb = notebook("%load_ext nbtracker\nimport nbtracker", "run = nbtracker.init()", "print('still', 1 + 1)",
                  "%nbtracker status",
                  # a later run in a writable place works, and is left open when the kernel shuts down
                  f"run = nbtracker.init(project='open', dir={str(run_root)!r})\nrun.log({{'a': 1}})",
                  "run.log({'a': 2})")
    execute(nb, cwd=tmp_path, run_root=blocker / "runs", allow_errors=True)
    assert nb.cells[1].outputs[0]["ename"] == "StorageError"
    assert "still 2" in stream_text(nb.cells[2:3])
    assert "no active run" in stream_text(nb.cells[3:4])
    assert not any(o.get("output_type") == "error" for c in nb.cells[4:] for o in c.outputs)
    (run,) = nbtracker.runs(project="open")
    # nbclient shut the kernel down with the run still open: "crashed", written by the kernel at exit
    doc = json.loads((run.dir / "run.json").read_text())
    assert doc["status"] == "crashed" and doc["end_time"] is not None
    assert [r["a"] for r in run.history()] == [1, 2]
    assert [c["rows"] for c in read_jsonl(run.dir / "cells.jsonl")] == [1, 1]


def test_kernel_shutdown_with_an_open_run_and_no_extension_marks_it_crashed(tmp_path, run_root):
    nb = notebook("import nbtracker\nrun = nbtracker.init(project='bare')\nrun.log({'a': 1})")
    execute(nb, cwd=tmp_path, run_root=run_root)        # nbclient then shuts the kernel down
    (run,) = nbtracker.runs(project="bare")
    doc = json.loads((run.dir / "run.json").read_text())
    assert doc["status"] == "crashed" and doc["end_time"] and run.history()[0]["a"] == 1


def _wait_idle(kc, msg_id, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"):
            return
    raise TimeoutError("kernel did not become idle")


def _execute_as_lab(kc, code, cell_id):
    """An execute_request the way JupyterLab sends it: the cell id in ``metadata.cellId``."""
    content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
               "allow_stdin": False, "stop_on_error": True}
    msg = kc.session.msg("execute_request", content, metadata={"cellId": cell_id})
    kc.shell_channel.send(msg)
    return msg["header"]["msg_id"]


def test_real_interrupt_then_kill_leaves_a_crashed_run_with_rows(tmp_path, run_root):
    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "NBTRACKER_DIR": str(run_root)}
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(tmp_path))
    try:
        for code in ("%load_ext nbtracker\nimport nbtracker, time", "run = nbtracker.init(project='live')"):
            _wait_idle(kc, kc.execute(code))
        (view,) = nbtracker.runs(project="live")
        loop = "for i in range(10**9):\n    run.log({'i': i})\n    time.sleep(0.001)"
        msg_id = kc.execute(loop)
        time.sleep(1.5)
        km.interrupt_kernel()                                  # a real SIGINT, like the stop button
        _wait_idle(kc, msg_id)
        _wait_idle(kc, _execute_as_lab(kc, "run.log({'after_interrupt': 1})", "lab-cell-7"))
        msg_id = kc.execute(loop)
        deadline = time.time() + 20
        while time.time() < deadline and len(nbtracker.load(view.id).history()) < 1500:
            time.sleep(0.2)
        assert nbtracker.load(view.id).status == "running"
        km.signal_kernel(signal.SIGKILL)                       # no atexit, no finish
        deadline = time.time() + 10
        while km.is_alive() and time.time() < deadline:
            time.sleep(0.05)
    finally:
        kc.stop_channels()
        if km.is_alive():
            km.shutdown_kernel(now=True)
    dead = nbtracker.load(view.id)
    assert dead.status == "crashed"
    cells = read_jsonl(dead.dir / "cells.jsonl")
    assert [c["status"] for c in cells] == ["ok", "interrupted", "ok"]   # the killed cell never ended
    assert [c["cell_id"] for c in cells] == [None, None, "lab-cell-7"]   # ids reach the record from the frontend
    assert cells[1]["error"]["type"] == "KeyboardInterrupt" and cells[1]["rows"] > 100
    rows = dead.history()
    assert any("after_interrupt" in r for r in rows) and len(rows) >= 1500


def test_loaded_from_ipython_config_without_load_ext(tmp_path, run_root):
    nb = notebook("import nbtracker\nrun = nbtracker.init(project='cfg')", "run.log({'a': 1})", "run.finish()")
    execute(nb, cwd=tmp_path, run_root=run_root, kernel_args=["--InteractiveShellApp.extensions=['nbtracker']"])
    (run,) = nbtracker.runs(project="cfg")
    assert [c["status"] for c in read_jsonl(run.dir / "cells.jsonl")] == ["ok", "ok", "ok"]
    assert run.history()[0]["_cell"] == 2


def test_notebook_found_through_a_local_server_sessions_api(tmp_path, run_root, monkeypatch):
    """A stand-in for Jupyter Server's GET /api/sessions (token required), found via jpserver-*.json."""
    import http.server
    import threading

    runtime = tmp_path / "runtime"
    runtime.mkdir()
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))   # kernel connection files land here too
    work = tmp_path / "work"
    work.mkdir()
    nb = notebook("%load_ext nbtracker\nimport nbtracker\nrun = nbtracker.init(project='srv')", "run.finish()")
    nbformat.write(nb, str(work / "found-me.ipynb"))
    seen = []

    class Sessions(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            if "token=s3cret" not in self.path:
                self.send_response(403)
                self.end_headers()
                return
            kernels = [p.stem[len("kernel-"):] for p in runtime.glob("kernel-*.json")]  # what it runs
            body = json.dumps([{"kernel": {"id": k}, "path": "found-me.ipynb"} for k in kernels]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sessions)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # Started the way Jupyter Server starts kernels: connection file runtime/kernel-<id>.json.
    from jupyter_client.manager import KernelManager

    kernel_id = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    km = KernelManager(kernel_name="python3", connection_file=str(runtime / f"kernel-{kernel_id}.json"))
    try:
        (runtime / "jpserver-4242.json").write_text(json.dumps({
            "url": f"http://127.0.0.1:{server.server_port}/", "token": "s3cret", "root_dir": str(work)}))
        km.start_kernel(env={**os.environ, "NBTRACKER_DIR": str(run_root)}, cwd=str(work))
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        for c in nb.cells:
            _wait_idle(kc, kc.execute(c.source))
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=True)
        server.shutdown()
    (run,) = nbtracker.runs(project="srv")
    source = json.loads((run.dir / "code" / "source.json").read_text())
    assert source["method"] == "jupyter server sessions API", source and source["path"] == str(work / "found-me.ipynb")
    assert seen and all(p.startswith("/api/sessions") for p in seen)
    for path in run.dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"s3cret" not in data and str(server.server_port).encode() + b"/" not in data, path
