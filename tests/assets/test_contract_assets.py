"""The run directory contract for the files added by checkpoints, files, artifacts, media and
capture (docs/run-directory.md), read with json, jq and DuckDB, not with nbtracker."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess

import numpy as np
import pytest

import nbtracker

HEX = set("0123456789abcdef")


def _entry_ok(e):
    if "symlink" in e:
        return set(e) == {"path", "symlink"}
    return (set(e) == {"path", "size", "sha256"} and isinstance(e["size"], int) and len(e["sha256"]) == 64
            and set(e["sha256"]) <= HEX and ".." not in e["path"].split("/") and not e["path"].startswith("/"))


def test_every_new_file_has_the_documented_shape(run_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.bin").write_bytes(b"weights")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "o.txt").write_text("o")
    with nbtracker.init(project="c", capture_console=True) as run:
        run.log({"loss": 0.5})
        cp = run.checkpoint("w.bin", metrics={"acc": 0.5}, primary_metric="acc:max", epoch=1)
        run.save("w.bin")
        run.scan_outputs_once("out")
        run.log({"img": nbtracker.Image(np.zeros((4, 4, 3), np.uint8)),
                 "h": nbtracker.Histogram([1, 2, 3], bins=2),
                 "t": nbtracker.Table(columns=["a"], data=[[1]])})
        run.log_text("hi")
        logging.getLogger("c").addHandler(run.get_logging_handler())
        art = run.log_artifact("w.bin", name="weights", type="model")
        run.use_artifact("weights:latest")
        run.log_dataset("d", "out")
        print("a line")
    nbtracker.register_model("m", cp)
    d = run.dir
    store = run_root / ".store"
    manifest = json.loads((d / "checkpoints" / cp.id / "manifest.json").read_text())
    assert set(manifest) == {"id", "run", "project", "step", "time", "metrics", "extra", "primary_metric",
                             "source", "files"}
    assert manifest["primary_metric"] == {"name": "acc", "goal": "max"} and manifest["extra"] == {"epoch": 1}
    for entries in (manifest["files"], json.loads((store / "artifacts" / "weights" / "v0.json").read_text())["files"],
                    json.loads((store / "models" / "m" / "v1.json").read_text())["files"]):
        assert entries and all(_entry_ok(e) for e in entries)
        for e in entries:
            blob = store / "blobs" / "sha256" / e["sha256"][:2] / e["sha256"][2:]
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == e["sha256"]
    for name in ("files.json", "outputs.json"):
        doc = json.loads((d / name).read_text())
        assert all(set(v) == {"size", "sha256", "policy", "source", "time"} for v in doc["files"].values())
    rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    refs = rows[-1]
    assert refs["img"]["_type"] == "image" and (d / refs["img"]["path"]).is_file()
    assert (d / refs["h"]["path"]).read_text().splitlines()[0] == "left,right,count"
    assert (d / refs["t"]["path"]).read_text() == "a\n1\n"
    text = [json.loads(line) for line in (d / "text.jsonl").read_text().splitlines()]
    assert set(text[0]) == {"time", "step", "level", "text"}
    console = [json.loads(line) for line in (d / "console.jsonl").read_text().splitlines()]
    assert all(set(r) <= {"time", "stream", "cell", "lines"} and isinstance(r["lines"], list) for r in console)
    events = [json.loads(line) for line in (d / "artifacts.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["logged", "used"]
    assert json.loads((store / "artifacts" / "weights" / "aliases.json").read_text()) == {"latest": 0}
    model = json.loads((store / "models" / "m" / "v1.json").read_text())
    assert model["source"] == {"kind": "checkpoint", "run": run.id, "project": "c", "id": cp.id, "step": cp.step}
    ref = json.loads((d / "references.jsonl").read_text())
    assert ref["fingerprint"]["method"] == "stat" and ref["fingerprint"]["files"] == 1
    # other tools read them without nbtracker
    if shutil.which("jq"):
        out = subprocess.run(["jq", "-r", ".lines[]", str(d / "console.jsonl")], capture_output=True, text=True)
        assert "a line" in out.stdout.splitlines()
    duckdb = pytest.importorskip("duckdb")
    assert duckdb.sql(f"select count(*) from read_csv('{d / refs['h']['path']}')").fetchall() == [(2,)]
    assert art.ref == "weights:v0"
