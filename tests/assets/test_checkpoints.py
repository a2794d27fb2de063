"""Checkpoints and the content store, with the files as the oracle: byte-identical restores,
dedupe measured on disk, and no checkpoint that looks complete after a kill or an interrupt."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import nbtracker
from nbtracker.core import blobs
from nbtracker.core.blobs import BlobStore


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _blobs(root: Path) -> list[Path]:
    return [p for p in (root / ".store" / "blobs").rglob("*") if p.is_file()]


def _disk(root: Path) -> int:
    """Bytes used on disk, counting each inode once (what `du` counts)."""
    seen, total = set(), 0
    for p in root.rglob("*"):
        st = p.lstat()
        if p.is_file() and not p.is_symlink() and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def test_a_checkpoint_stores_a_file_and_a_folder_and_restores_them_byte_identical(run_root, work):
    (work / "model.pt").write_bytes(os.urandom(300_000))
    (work / "out" / "sub").mkdir(parents=True)
    (work / "out" / "a.bin").write_bytes(os.urandom(5000))
    (work / "out" / "sub" / "b.txt").write_text("hello\n")
    with nbtracker.init(project="k") as run:
        run.log({"loss": 1.0})
        c1 = run.checkpoint("model.pt", metrics={"val_acc": 0.5}, primary_metric=("val_acc", "maximize"),
                            epoch=1, note="first")
        c2 = run.checkpoint(work / "out", metrics={"val_acc": 0.9}, step=10)
        c3 = run.checkpoint(metrics={"val_acc": 0.7})
    assert run.primary_metric == ("val_acc", "max")
    assert (c1.step, c2.step, c3.step) == (1, 10, 11)
    assert c1.extra == {"epoch": 1, "note": "first"} and c1.files == ["model.pt"]
    assert sorted(c2.files) == ["out/a.bin", "out/sub/b.txt"] and c3.files == []
    # the row was logged like any other, and the summary keeps the best value
    rows = nbtracker.load(run.id).history(["val_acc"])
    assert [(r["_step"], r["val_acc"]) for r in rows] == [(1, 0.5), (10, 0.9), (11, 0.7)]
    view = nbtracker.load(run.id)
    assert [c.id for c in view.checkpoints] == [c1.id, c2.id, c3.id]
    assert view.best_checkpoint().id == c2.id == run.best_checkpoint().id
    # a person browsing the run directory sees the files under their own names, plus the manifest
    folder = run.dir / "checkpoints" / c1.id
    assert _sha(folder / "files" / "model.pt") == _sha(work / "model.pt")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["files"] == [{"path": "model.pt", "size": 300_000, "sha256": _sha(work / "model.pt")}]
    # restored byte-identical, as ordinary writable files
    dest = c2.checkout(work / "restored")
    assert _sha(dest / "out" / "a.bin") == _sha(work / "out" / "a.bin")
    assert (dest / "out" / "sub" / "b.txt").read_text() == "hello\n"
    assert os.access(dest / "out" / "a.bin", os.W_OK)
    with pytest.raises(nbtracker.NbtrackerError, match="already exists"):
        c2.checkout(work / "restored")
    c2.checkout(work / "restored", replace=True)


def test_unchanged_contents_cost_no_disk_within_and_across_runs(run_root, work):
    (work / "weights.bin").write_bytes(os.urandom(4_000_000))
    with nbtracker.init(project="k") as a:
        a.checkpoint("weights.bin")
        before = _disk(run_root)
        for _ in range(5):
            a.checkpoint("weights.bin")
    with nbtracker.init(project="k") as b:
        b.checkpoint("weights.bin")
        b.save("weights.bin")
    assert len(_blobs(run_root)) == 1
    assert _disk(run_root) - before < 1_000_000        # 6 more checkpoints + a saved file: metadata only
    blob = _blobs(run_root)[0]
    assert blob.stat().st_nlink == 1 + 6 + 1 + 1       # the store, a's 6, b's checkpoint and saved file
    assert not os.access(blob, os.W_OK) or os.getuid() == 0
    assert blob.stat().st_mode & 0o222 == 0            # read-only: a hard link cannot edit the store


def test_rm_of_a_run_keeps_contents_another_run_uses_and_gc_removes_the_rest(run_root, work):
    from nbtracker.cli import main

    (work / "shared.bin").write_bytes(os.urandom(100_000))
    (work / "only_a.bin").write_bytes(os.urandom(100_000))
    with nbtracker.init(project="k") as a:
        a.checkpoint("shared.bin")
        a.checkpoint("only_a.bin")
    with nbtracker.init(project="k") as b:
        cb = b.checkpoint("shared.bin")
    assert len(_blobs(run_root)) == 2
    assert main(["rm", a.id, "--yes"]) == 0
    assert len(_blobs(run_root)) == 2                   # rm never deletes stored contents
    assert main(["gc", "--grace", "0"]) == 0
    remaining = _blobs(run_root)
    assert [p.parent.name + p.name for p in remaining] == [_sha(work / "shared.bin")]
    cb.checkout(work / "again")
    assert _sha(work / "again" / "shared.bin") == _sha(work / "shared.bin")


def test_a_missing_path_raises_and_records_nothing(run_root, work):
    with nbtracker.init(project="k") as run:
        with pytest.raises(nbtracker.NbtrackerError, match="does not exist"):
            run.checkpoint("nope.pt", metrics={"acc": 1.0})
        with pytest.raises(nbtracker.InvalidValueError):
            run.checkpoint(metrics={"acc": object()})
        with pytest.raises(nbtracker.InvalidKeyError, match="primary_metric"):
            run.checkpoint(metrics={"acc": 1.0}, primary_metric=("acc", "up"))
    assert run.checkpoints == [] and run._rows == 0 and run.primary_metric is None


def test_a_file_that_changes_while_copied_is_refused_not_stored_torn(run_root, work, monkeypatch):
    src = work / "growing.bin"
    src.write_bytes(os.urandom(3 * blobs.CHUNK))
    real = BlobStore._commit
    calls = []

    def append_during_copy(self, part, digest):   # the writer appends before our final stat
        calls.append(1)
        return real(self, part, digest)

    orig_open = open

    class Growing:
        def __init__(self, f):
            self.f, self.n = f, 0

        def readinto(self, buf):
            self.n += 1
            if self.n == 2:
                with orig_open(src, "ab") as g:
                    g.write(b"more")
            return self.f.readinto(buf)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

    def patched_open(path, mode="r", *a, **k):
        f = orig_open(path, mode, *a, **k)
        return Growing(f) if Path(path) == src and mode == "rb" else f

    monkeypatch.setattr(blobs, "open", patched_open, raising=False)
    monkeypatch.setattr(BlobStore, "_commit", append_during_copy)
    with nbtracker.init(project="k") as run:
        with pytest.raises(blobs.ChangedWhileCopying, match="changed while"):
            run.checkpoint(src, metrics={"acc": 1.0})
    assert run.checkpoints == [] and run._rows == 0 and not calls
    assert _blobs(run_root) == [] and not list((run_root / ".store" / "tmp").iterdir())
    assert not list((run.dir / "checkpoints").iterdir())


def test_ctrl_c_mid_copy_leaves_no_checkpoint_and_no_partial_files(run_root, work, monkeypatch):
    (work / "big.bin").write_bytes(os.urandom(4 * blobs.CHUNK))
    real_update = blobs.hashlib.sha256

    class Interrupting:
        def __init__(self):
            self.h, self.n = real_update(), 0

        def update(self, data):
            self.n += 1
            if self.n == 3:
                raise KeyboardInterrupt
            self.h.update(data)

        def hexdigest(self):
            return self.h.hexdigest()

    monkeypatch.setattr(blobs.hashlib, "sha256", Interrupting)
    with nbtracker.init(project="k") as run:
        with pytest.raises(KeyboardInterrupt):
            run.checkpoint("big.bin", metrics={"acc": 1.0})
    assert run.checkpoints == [] and run._rows == 0
    assert _blobs(run_root) == [] and not list((run_root / ".store" / "tmp").iterdir())
    assert not list((run.dir / "checkpoints").iterdir())


KILLED = textwrap.dedent("""
    import sys, time, hashlib
    import nbtracker
    from nbtracker.core import blobs
    real = hashlib.sha256
    class Slow:
        def __init__(self): self.h = real()
        def update(self, d):
            time.sleep(0.05); self.h.update(d)
        def hexdigest(self): return self.h.hexdigest()
    blobs.hashlib = type("H", (), {"sha256": Slow})
    run = nbtracker.init(project="k")
    print(run.id, flush=True)
    run.checkpoint("big.bin", metrics={"acc": 1.0})
    print("DONE", flush=True)
""")


def test_sigkill_mid_copy_leaves_no_checkpoint_that_looks_complete_and_no_corrupt_blob(run_root, work):
    (work / "big.bin").write_bytes(os.urandom(64 * blobs.CHUNK))
    proc = subprocess.Popen([sys.executable, "-c", KILLED], cwd=work, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "NBTRACKER_DIR": str(run_root)})
    run_id = proc.stdout.readline().strip()
    tmp = run_root / ".store" / "tmp"
    deadline = time.monotonic() + 30
    while not (tmp.is_dir() and any(tmp.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    view = nbtracker.load(run_id)
    assert view.status == "crashed" and view.checkpoints == [] and view.history() == []
    assert list((view.dir / "checkpoints").glob(".partial-*"))   # the interrupted copy, not listed
    for blob in _blobs(run_root):                                  # every blob is whole
        assert blob.parent.name + blob.name == _sha(blob)
    assert any(tmp.glob("*.part"))
    from nbtracker.assets.gc import gc

    report = gc(run_root, grace=0)
    assert report["leftovers"] == 2
    assert not any(tmp.glob("*.part")) and not list((view.dir / "checkpoints").glob(".partial-*"))


def test_a_full_disk_is_a_storage_error_and_nothing_is_half_registered(run_root, work):
    (work / "big.bin").write_bytes(os.urandom(2_000_000))
    with nbtracker.init(project="k") as run:
        run.log({"x": 1})
        run.flush()
        old = resource.getrlimit(resource.RLIMIT_FSIZE)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, old[1]))
        try:
            with pytest.raises(nbtracker.StorageError, match="could not store"):
                run.checkpoint("big.bin", metrics={"acc": 1.0})
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, old)
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        assert run.checkpoints == [] and _blobs(run_root) == []
        assert not list((run_root / ".store" / "tmp").iterdir())
        c = run.checkpoint("big.bin", metrics={"acc": 1.0})   # works again once there is room
    assert [r.get("acc") for r in nbtracker.load(run.id).history()] == [None, 1.0]
    assert _sha(run.dir / "checkpoints" / c.id / "files" / "big.bin") == _sha(work / "big.bin")


def test_symlinks_in_a_saved_folder_are_recorded_never_followed(run_root, work, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (work / "ck").mkdir()
    (work / "ck" / "w.bin").write_bytes(b"w")
    os.symlink(outside, work / "ck" / "out_link")
    os.symlink("w.bin", work / "ck" / "in_link")
    with nbtracker.init(project="k") as run:
        c = run.checkpoint("ck")
    entries = {e["path"]: e for e in c.manifest}
    assert entries["ck/out_link"] == {"path": "ck/out_link", "symlink": str(outside)}
    assert entries["ck/in_link"] == {"path": "ck/in_link", "symlink": "w.bin"}
    assert not (run.dir / "checkpoints" / c.id / "files" / "ck" / "out_link").exists()
    dest = c.checkout(tmp_path / "co")
    assert (dest / "ck" / "in_link").is_symlink()                # stays inside: recreated
    assert not (dest / "ck" / "out_link").is_symlink()           # points out: never recreated


def test_top_checkpoints_across_runs_and_the_model_registry(run_root, work):
    (work / "m.bin").write_bytes(b"m0")
    runs = []
    for accs in ([0.1, 0.5], [0.3, 0.9], [0.2]):
        with nbtracker.init(project="det", primary_metric=("val_acc", "max")) as run:
            for i, acc in enumerate(accs):
                (work / "m.bin").write_bytes(f"{run.id}-{i}".encode())
                run.checkpoint("m.bin", metrics={"val_acc": acc, "loss": 1 - acc})
        runs.append(run)
    listed = nbtracker.runs(project="det")
    top = listed.top_checkpoint()
    assert top.metrics["val_acc"] == 0.9 and top.run_id == runs[1].id
    assert [c.metrics["val_acc"] for c in listed.top_checkpoints(3)] == [0.9, 0.5, 0.3]
    assert listed.top_checkpoint("loss", "min").metrics["loss"] == pytest.approx(0.1)
    v1 = nbtracker.register_model("classifier", top, notes="best so far")
    v2 = nbtracker.register_model("classifier", listed.top_checkpoints(2)[1])
    model = nbtracker.get_model("classifier")
    assert [v.version for v in model.versions] == [1, 2] and model.latest.version == 2 == v2.version
    assert model.version(1).checkpoint.id == top.id and model.version(1).notes == "best so far"
    assert [m.name for m in nbtracker.models()] == ["classifier"]
    # the registry keeps the files even after the checkpoint's run is deleted
    from nbtracker.cli import main

    assert main(["rm", runs[1].id, "--yes"]) == 0
    assert main(["gc", "--grace", "0"]) == 0
    assert model.version(1).checkpoint is None
    v1.checkout(work / "deployed")
    assert (work / "deployed" / "m.bin").read_bytes() == f"{runs[1].id}-1".encode()
    with pytest.raises(nbtracker.NbtrackerError, match="no version 7"):
        model.version(7)
    with pytest.raises(nbtracker.InvalidKeyError):
        nbtracker.register_model("../evil", top)


def test_unchanged_re_checkpoint_skips_hashing_only_when_provably_safe(run_root, work):
    path = work / "w.bin"
    path.write_bytes(os.urandom(1000))
    old = time.time() - 10
    os.utime(path, (old, old))        # sets mtime; ctime moves to now, so the file is still "racy"
    store = BlobStore(run_root)
    store.put_file(path)
    assert blobs.known_digest(path.stat()) is None           # changed within RACY_SECONDS: re-hash
    st = path.stat()
    blobs._remember(st, "x" * 64, time.time() + 2 * blobs.RACY_SECONDS)
    assert blobs.known_digest(st) == "x" * 64                # an old, untouched file: trusted
    path.write_bytes(os.urandom(1000))                       # same size, new bytes: new key
    assert blobs.known_digest(path.stat()) is None


REGISTER = textwrap.dedent("""
    import sys, nbtracker
    run_id = sys.argv[1]
    cp = nbtracker.load(run_id).checkpoints[0]
    for _ in range(10):
        nbtracker.register_model("shared", cp)
""")


def test_two_processes_registering_at_once_never_make_the_same_version(run_root, work):
    (work / "m.bin").write_bytes(b"m")
    with nbtracker.init(project="k") as run:
        run.checkpoint("m.bin")
    procs = [subprocess.Popen([sys.executable, "-c", REGISTER, run.id],
                              env={**os.environ, "NBTRACKER_DIR": str(run_root)}) for _ in range(2)]
    assert [p.wait() for p in procs] == [0, 0]
    assert [v.version for v in nbtracker.get_model("shared").versions] == list(range(1, 21))
