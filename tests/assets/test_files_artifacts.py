"""run.save / restore, output folders, artifacts with versions, aliases and lineage, references, stream."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

import nbtracker


def test_save_now_end_live_and_restore(run_root, work):
    (work / "cfg").mkdir()
    (work / "cfg" / "a.yaml").write_text("a: 1\n")
    (work / "cfg" / "b.yaml").write_text("b: 2\n")
    (work / "log.txt").write_text("v1")
    with nbtracker.init(project="f") as run:
        assert run.save("cfg/*.yaml") == ["cfg/a.yaml", "cfg/b.yaml"]
        assert run.save(str(work / "cfg" / "*.yaml")) == ["a.yaml", "b.yaml"]   # absolute: its folder
        assert run.save("cfg/a.yaml", base_path="cfg") == ["a.yaml"]
        run.save("log.txt", policy="live")
        run.save("final.txt", policy="end")                 # does not exist yet: picked up at finish
        time.sleep(0.01)
        (work / "log.txt").write_text("v2, longer")
        run._tick()                                          # what the ticker does twice a second
        assert (run.dir / "files" / "log.txt").read_text() == "v2, longer"
        (work / "final.txt").write_text("the end")
        with pytest.raises(nbtracker.NbtrackerError, match="no file matches"):
            run.save("nothing*.bin")
        with pytest.raises(nbtracker.InvalidKeyError, match="outside base_path"):
            run.save("log.txt", base_path="cfg")
        with pytest.raises(nbtracker.InvalidKeyError, match="policy"):
            run.save("log.txt", policy="sometimes")
    files = nbtracker.load(run.id).files
    assert sorted(files) == ["a.yaml", "b.yaml", "cfg/a.yaml", "cfg/b.yaml", "final.txt", "log.txt"]
    assert files["final.txt"]["policy"] == "end" and (run.dir / "files" / "final.txt").read_text() == "the end"
    with nbtracker.restore("cfg/a.yaml", run=run.id, root=work / "back") as f:
        assert f.read() == "a: 1\n"
    (work / "back" / "cfg" / "a.yaml").write_text("edited")
    with nbtracker.restore("cfg/a.yaml", run=run.id, root=work / "back") as f:
        assert f.read() == "edited"                          # an existing file is kept ...
    with nbtracker.restore("cfg/a.yaml", run=run.id, root=work / "back", replace=True) as f:
        assert f.read() == "a: 1\n"                          # ... unless replace=True
    with pytest.raises(nbtracker.NbtrackerError, match="no saved file"):
        nbtracker.restore("missing.txt", run=run.id)
    for bad in ("../../etc/passwd", "/etc/passwd", "a\x00b", "a\\b"):
        with pytest.raises(nbtracker.InvalidKeyError):
            nbtracker.restore(bad, run=run.id)


def test_output_folders_are_archived_once_and_again_when_changed(run_root, work):
    out = work / "outputs"
    out.mkdir()
    (out / "plot.png").write_bytes(b"png1")
    with nbtracker.init(project="f") as run:
        assert run.scan_outputs_once(out) == ["outputs/plot.png"]
        assert run.scan_outputs_once(out) == []
        (out / "plot.png").write_bytes(b"png2!")
        (out / "new.csv").write_text("a\n1\n")
        assert sorted(run.scan_outputs_once([out])) == ["outputs/new.csv", "outputs/plot.png"]
        run.watch_outputs(out, interval=60)
        (out / "late.txt").write_text("late")
    assert sorted(nbtracker.load(run.id).outputs) == ["outputs/late.txt", "outputs/new.csv", "outputs/plot.png"]
    assert (run.dir / "outputs" / "outputs" / "plot.png").read_bytes() == b"png2!"


def test_artifacts_version_by_content_and_record_lineage_in_both_runs(run_root, work):
    data = work / "data"
    data.mkdir()
    (data / "train.csv").write_text("x\n1\n")
    with nbtracker.init(project="a") as producer:
        v0 = producer.log_artifact(data, name="dataset", type="dataset", aliases=["raw"])
        same = producer.log_artifact(data, name="dataset", type="dataset")
        (data / "train.csv").write_text("x\n1\n2\n")
        v1 = producer.log_artifact(data, name="dataset", type="dataset")
        model = producer.log_artifact(data / "train.csv", name="single")
    assert (v0.version, same.version, v1.version) == (0, 0, 1)
    assert v0.aliases == ["latest", "raw"]                 # as it was when logged
    assert nbtracker.get_artifact("dataset:v0").aliases == ["raw"]   # latest moved on to v1
    assert nbtracker.get_artifact("dataset:latest").version == 1
    assert nbtracker.get_artifact("dataset:raw").version == 0
    assert model.files == ["train.csv"]
    assert [a.ref for a in nbtracker.artifacts(type="dataset")] == ["dataset:v0", "dataset:v1"]
    with nbtracker.init(project="b") as consumer:
        used = consumer.use_artifact("dataset:v0")
        assert (used.path / "train.csv").read_text() == "x\n1\n"
        dest = used.download(work / "dl")
        assert (dest / "train.csv").read_text() == "x\n1\n"
        with pytest.raises(nbtracker.NbtrackerError, match="no version or alias 'v9'"):
            consumer.use_artifact("dataset:v9")
    events = [(e["event"], e["artifact"]) for e in nbtracker.load(producer.id).artifacts]
    assert events == [("logged", "dataset:v0"), ("relogged", "dataset:v0"), ("logged", "dataset:v1"),
                      ("logged", "single:v0"), ("used_by", "dataset:v0")]
    used_events = nbtracker.load(consumer.id).artifacts
    assert used_events[0]["event"] == "used" and used_events[0]["producer"]["id"] == producer.id
    stored = {p.name for p in (run_root / ".store" / "blobs").rglob("*") if p.is_file()}
    assert len(stored) == 2                                # two distinct contents, whatever the versions
    with nbtracker.init(project="b") as r:
        for bad in ("../x", "a/b", "", "a:b"):
            with pytest.raises(nbtracker.InvalidKeyError):
                r.log_artifact(data, name=bad)
        with pytest.raises(nbtracker.NbtrackerError, match="does not exist"):
            r.log_artifact(work / "nope")


def test_references_are_fingerprinted_not_copied_and_log_config_merges(run_root, work):
    import argparse

    ds = work / "ds"
    ds.mkdir()
    for i in range(50):
        (ds / f"{i}.bin").write_bytes(b"x" * i)
    with nbtracker.init(project="r") as run:
        a = run.log_dataset("toy", ds, context="train", description="fifty files")
        b = run.log_pretrained("bert", "hf://bert-base-uncased", source_type="huggingface")
        run.log_config(argparse.Namespace(lr=0.1, epochs=3), extra={"note": "x"})
        (ds / "new.bin").write_bytes(b"y")
        c = run.log_dataset("toy", ds)
    assert a["fingerprint"]["files"] == 50 and a["fingerprint"]["bytes"] == sum(range(50))
    assert c["fingerprint"]["sha256"] != a["fingerprint"]["sha256"]
    assert b["uri"] == "hf://bert-base-uncased" and "fingerprint" not in b
    assert not (run.dir / "files").exists() and not (run_root / ".store" / "blobs").exists()
    assert [r["name"] for r in nbtracker.load(run.id).references] == ["toy", "bert", "toy"]
    assert nbtracker.load(run.id).config == {"lr": 0.1, "epochs": 3, "note": "x"}


WRITER = textwrap.dedent("""
    import sys, time, nbtracker
    run = nbtracker.init(project="s")
    print(run.id, flush=True)
    for i in range(30):
        run.log({"loss": 1.0 / (i + 1), "other": i})
        run.flush()
        time.sleep(0.02)
    run.finish()
""")


def test_stream_follows_another_process_and_ends_when_the_run_ends(run_root, tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "NBTRACKER_DIR": str(run_root)})
    run_id = proc.stdout.readline().strip()
    rows = list(nbtracker.stream(run_id, keys=["loss"], poll=0.01))
    proc.wait()
    assert [r["_step"] for r in rows] == list(range(30))
    assert all(set(r) == {"_step", "_time", "loss"} for r in rows)
    assert list(nbtracker.stream(run_id)) == nbtracker.load(run_id).history()   # a finished run: all, then stop


def test_live_files_are_checked_by_stat_and_new_matches_found_by_a_slower_glob(run_root, work, monkeypatch):
    from nbtracker.assets import files

    calls = []
    real = files.matches
    monkeypatch.setattr(files, "matches", lambda *a, **k: calls.append(1) or real(*a, **k))
    (work / "a.log").write_text("1")
    with nbtracker.init(project="f") as run:
        run.save("*.log", policy="live")
        calls.clear()
        for _ in range(5):
            run._tick()
        assert calls == []                                   # no directory walk on every tick
        (work / "a.log").write_text("22")
        run._tick()
        assert (run.dir / "files" / "a.log").read_text() == "22"
        (work / "b.log").write_text("new")
        monkeypatch.setattr(files, "REGLOB", 0.0)
        run._tick()
        assert (run.dir / "files" / "b.log").read_text() == "new" and calls
