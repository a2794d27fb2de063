"""MLflow sync against a real ``mlflow server`` (sqlite backend) on 127.0.0.1."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import pytest

import nbtracker
from nbtracker.sync import ship

pytestmark = pytest.mark.services


def _history(srv, run_id, key):
    path = f"/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key={key}&max_results=100000"
    return srv.call("GET", path)["metrics"]


def _find(srv, project, nb_id):
    exp = srv.call("GET", f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={project}")["experiment"]
    found = srv.call("POST", "/api/2.0/mlflow/runs/search",
                     {"experiment_ids": [exp["experiment_id"]], "filter": f"tags.`nbtracker.id` = '{nb_id}'"})
    return found.get("runs") or []


def test_sync_then_grow_then_sync_again_makes_one_run_without_duplicates(mlflow_server, tmp_path):
    srv = mlflow_server
    long = "x" * 7000
    run = nbtracker.init(project="mlf-sync", name="first", config={"lr": 0.1, "opt": {"name": "adam"},
                         "blob": long, "bad key!": 1}, tags=["baseline"], notes="a note",
                         primary_metric="loss:min")
    for i in range(1500):
        run.log({"loss": 1 / (i + 1), "acc": i / 1500, "label": "text", "nan": float("nan") if i == 3 else i})
    run.finish()
    (shipped,) = ship([run.id], to=f"mlflow+{srv.url}")
    assert shipped.error is None, shipped.error
    assert shipped.rows == 1500 * 3
    runs = _find(srv, "mlf-sync", run.id)
    assert len(runs) == 1
    mr = runs[0]
    info, data = mr["info"], mr["data"]
    assert info["status"] == "FINISHED" and info["run_name"] == "first"
    params = {p["key"]: p["value"] for p in data["params"]}
    assert params["lr"] == "0.1" and params["opt.name"] == "adam" and params["bad key_"] == "1"
    assert len(params["blob"]) == 6000 and params["blob"].endswith("[truncated]")
    tags = {t["key"]: t["value"] for t in data["tags"]}
    assert tags["nbtracker.truncated_params"] == "blob"
    assert tags["mlflow.note.content"] == "a note" and json.loads(tags["nbtracker.tags"]) == ["baseline"]
    assert tags["nbtracker.primary_metric"] == "loss (min)"
    loss = _history(srv, info["run_id"], "loss")
    assert len(loss) == 1500 and sorted(m["step"] for m in loss) == list(range(1500))
    nan = [m for m in _history(srv, info["run_id"], "nan") if m["step"] == 3]
    assert nan and (nan[0]["value"] == "NaN" or math.isnan(nan[0]["value"]))

    # The run grows (resumed elsewhere), is synced again: only the new rows, the same MLflow run.
    run2 = nbtracker.init(resume=run.id)
    for i in range(500):
        run2.log({"loss": 0.001})
    run2.finish()
    (again,) = ship([run.id], to=f"mlflow+{srv.url}")
    assert again.error is None and again.rows == 500
    assert len(_find(srv, "mlf-sync", run.id)) == 1
    assert len(_history(srv, info["run_id"], "loss")) == 2000
    (third,) = ship([run.id], to=f"mlflow+{srv.url}")
    assert third.rows == 0 and third.uploads == 0
    assert len(_history(srv, info["run_id"], "loss")) == 2000


def test_statuses_map_to_mlflow(mlflow_server):
    srv = mlflow_server
    ids = {}
    for status in ("failed", "interrupted", "crashed"):
        run = nbtracker.init(project="mlf-status", name=status)
        run.log({"x": 1})
        run.finish(status)
        ids[status] = run.id
    done = ship(list(ids.values()), to=f"mlflow+{srv.url}")
    assert all(d.error is None for d in done)
    want = {"failed": "FAILED", "interrupted": "KILLED", "crashed": "FAILED"}
    for status, nb_id in ids.items():
        assert _find(srv, "mlf-status", nb_id)[0]["info"]["status"] == want[status]


def test_code_and_checkpoints_download_with_mlflows_own_client(mlflow_server, tmp_path, monkeypatch):
    srv = mlflow_server
    weights = tmp_path / "model.bin"
    weights.write_bytes(bytes(range(256)) * 40)
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import nbtracker
        run = nbtracker.init(project="mlf-art", name="with-files")
        run.log({{"loss": 0.5}})
        run.checkpoint({str(weights)!r}, step=0)
        run.finish()
        print(run.id)
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True, cwd=tmp_path)
    nb_id = out.stdout.strip().splitlines()[-1]
    run = nbtracker.load(nb_id)
    (shipped,) = ship([nb_id], to=f"mlflow+{srv.url}")
    assert shipped.error is None and shipped.uploads >= 2
    mr = _find(srv, "mlf-art", nb_id)[0]
    ckpt = run.checkpoints[0]
    got = srv.client(textwrap.dedent(f"""
        import mlflow, pathlib, tempfile
        d = tempfile.mkdtemp()
        p = mlflow.artifacts.download_artifacts(run_id={mr['info']['run_id']!r}, dst_path=d)
        for f in sorted(pathlib.Path(p).rglob('*')):
            if f.is_file():
                print(f.relative_to(p).as_posix(), f.stat().st_size)
    """))
    files = dict(line.rsplit(" ", 1) for line in got.strip().splitlines())
    assert files[f"checkpoints/{ckpt.id}/model.bin"] == str(weights.stat().st_size)
    assert "nbtracker/run.json" in files and "code/git.json" in files
    (again,) = ship([nb_id], to=f"mlflow+{srv.url}")
    assert again.uploads == 0


def test_live_sync_from_init(mlflow_server, tmp_path):
    srv = mlflow_server
    script = tmp_path / "live.py"
    script.write_text(textwrap.dedent(f"""
        import nbtracker, time
        run = nbtracker.init(project="mlf-live", mlflow={srv.url!r}, config={{"lr": 0.01}})
        for i in range(300):
            run.log({{"loss": 1 / (i + 1)}})
            if i % 100 == 0:
                time.sleep(0.3)
        print(run.id, flush=True)
    """))
    env = {**__import__("os").environ, "NBTRACKER_MIRROR_INTERVAL": "0.2"}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    nb_id = out.stdout.split()[0]
    (mr,) = _find(srv, "mlf-live", nb_id)
    assert mr["info"]["status"] == "FINISHED"
    assert len(_history(srv, mr["info"]["run_id"], "loss")) == 300
    assert "nbtracker" not in out.stderr, out.stderr


def test_unreachable_server_is_a_clear_error(tmp_path):
    run = nbtracker.init(project="mlf-down")
    run.log({"x": 1})
    run.finish()
    (shipped,) = ship([run.id], to="mlflow+http://127.0.0.1:9")
    assert shipped.error and "cannot reach the MLflow server" in shipped.error
