"""Artifacts (versioned, content-addressed, with aliases and lineage) and the model registry.

Both live at the root, shared by its runs: ``<root>/.store/artifacts/<name>/v<N>.json`` (and the
folder ``v<N>/`` showing the files), ``aliases.json``; ``<root>/.store/models/<name>/v<N>.json``.
A version document is created whole and exclusively (written aside, then hard-linked to its
name, which fails if it exists), so two processes never make the same version twice.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..core.blobs import BlobStore, digest_of, store_tree
from ..core.errors import InvalidValueError, NbtrackerError, StorageError
from ..core.files import append_line, atomic_write_json
from ..core.records import (
    ARTIFACTS_LOG,
    ArtifactVersion,
    Checkpoint,
    ModelVersion,
    artifact_versions,
    artifacts_dir,
    check_name,
    get_artifact,
    model_versions,
    models_dir,
    read_aliases,
    root_of,
)
from ..core.values import jsonable

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: exclusive creation still prevents clashes
    fcntl = None  # type: ignore[assignment]


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _create_exclusive(path: Path, doc: dict[str, Any]) -> bool:
    """Write ``doc`` to ``path`` only if it does not exist; readers never see half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(3).hex()}")
    tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def _next_version(folder: Path) -> int:
    nums = [int(p.name[1:-5]) for p in folder.glob("v*.json") if p.name[1:-5].isdigit()]
    return max(nums) + 1 if nums else 0


def append_event(run_dir: Path, event: dict[str, Any]) -> None:
    """One line in a run's ``artifacts.jsonl`` (also of another run: whole lines, O_APPEND)."""
    append_line(run_dir / ARTIFACTS_LOG, event)


# -- artifacts -------------------------------------------------------------------------------------
def log_artifact(run: Any, path: Any, name: str | None = None, type: str | None = None,
                 aliases: Any = None, metadata: Any = None) -> ArtifactVersion:
    """See :meth:`nbtracker.Run.log_artifact`."""
    run._check_open()
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise InvalidValueError(f"log_artifact() takes a file or folder path, not {path!r}")
    src = Path(path).expanduser()
    if not src.exists():
        raise NbtrackerError(f"{str(path)!r} does not exist (relative to {os.getcwd()}); nothing was logged")
    name = check_name(name if name is not None else _default_name(src))
    type = "artifact" if type is None else type
    if not isinstance(type, str) or not type:
        raise InvalidValueError(f"type must be a non-empty string, not {type!r}")
    aliases = [aliases] if isinstance(aliases, str) else list(aliases or [])
    for a in aliases:
        check_name(a, "alias")
        if a.startswith("v") and a[1:].isdigit():
            raise InvalidValueError(f"alias {a!r} looks like a version number; choose another")
    meta = jsonable(dict(metadata), "artifact metadata") if metadata else {}
    root = root_of(run.dir)
    store = BlobStore(root)
    entries = store_tree(store, src, None, name="content")
    if src.is_dir():   # a folder's files are named inside it; a single file keeps its name
        entries = [{**e, "path": e["path"][len("content/"):]} for e in entries]
    else:
        entries = [{**e, "path": src.name} for e in entries]
    digest = digest_of(entries)
    folder = artifacts_dir(root) / name
    try:
        with _locked(folder):
            existing = [v for v in artifact_versions(root, name) if v.digest == digest]
            if existing:
                version = existing[0].version
                created = False
            else:
                version = _next_version(folder)
                shown = folder / f"v{version}"
                partial = folder / f".v{version}.partial"
                shutil.rmtree(partial, ignore_errors=True)
                for e in entries:
                    if "sha256" in e:
                        store.materialize(e["sha256"], partial / e["path"])
                partial.mkdir(parents=True, exist_ok=True)
                os.replace(partial, shown)
                doc = {"name": name, "version": version, "type": type, "digest": digest,
                       "files": entries, "metadata": meta, "created_time": time.time(),
                       "run": {"id": run.id, "project": run.project}}
                if not _create_exclusive(folder / f"v{version}.json", doc):  # pragma: no cover - lock held
                    raise StorageError(f"artifact {name}:v{version} appeared while creating it")
                created = True
            table = read_aliases(folder)
            table["latest"] = max([version] + list(table.values()))
            for a in aliases:
                table[a] = version
            atomic_write_json(folder / "aliases.json", table)
    except OSError as e:
        if isinstance(e, NbtrackerError):
            raise
        raise StorageError(f"could not store artifact {name!r} under {folder}: {e.strerror or e}") from e
    append_event(run.dir, {"event": "logged" if created else "relogged", "artifact": f"{name}:v{version}",
                           "type": type, "digest": digest, "time": time.time()})
    return get_artifact(root, f"{name}:v{version}")


def _default_name(src: Path) -> str:
    base = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "-" for c in src.resolve().name)
    return base.strip("-._") or "artifact"


def use_artifact(run: Any, ref: str) -> ArtifactVersion:
    """See :meth:`nbtracker.Run.use_artifact`."""
    run._check_open()
    root = root_of(run.dir)
    art = get_artifact(root, ref)
    now = time.time()
    append_event(run.dir, {"event": "used", "artifact": art.ref, "type": art.type,
                           "producer": art.run, "time": now})
    producer = art.run
    if producer.get("id") and producer.get("id") != run.id:
        pdir = root / str(producer.get("project")) / str(producer["id"])
        if (pdir / "run.json").is_file():
            append_event(pdir, {"event": "used_by", "artifact": art.ref,
                                "run": {"id": run.id, "project": run.project}, "time": now})
    return art


# -- models ----------------------------------------------------------------------------------------
def register_model(name: str, source: Any, notes: str | None = None, dir: Any = None) -> ModelVersion:
    """See :func:`nbtracker.register_model`."""
    from ..core.paths import resolve_root

    name = check_name(name, "model name")
    if notes is not None and not isinstance(notes, str):
        raise InvalidValueError(f"notes must be a string or None, not {type(notes).__name__}")
    if isinstance(source, Checkpoint):
        root = root_of(source.run_dir)
        src = {"kind": "checkpoint", "run": source.run_id, "project": source.project, "id": source.id,
               "step": source.step}
        files, metrics = source.manifest, source.metrics
    elif isinstance(source, ArtifactVersion):
        root = source.root
        src = {"kind": "artifact", "ref": source.ref, "type": source.type}
        files, metrics = source.manifest, {}
    elif isinstance(source, str):
        root = resolve_root(dir)
        art = get_artifact(root, source)
        src = {"kind": "artifact", "ref": art.ref, "type": art.type}
        files, metrics = art.manifest, {}
    else:
        raise InvalidValueError("register_model() takes a Checkpoint (run.checkpoint(), "
                                "best_checkpoint()) or an artifact (log_artifact(), 'name:v1'), "
                                f"not {type(source).__name__}")
    folder = models_dir(root) / name
    try:
        with _locked(folder):
            version = max([v.version for v in model_versions(root, name)] + [0]) + 1
            doc = {"name": name, "version": version, "notes": notes, "time": time.time(),
                   "source": src, "metrics": metrics, "files": files}
            if not _create_exclusive(folder / f"v{version}.json", doc):  # pragma: no cover - lock held
                raise StorageError(f"model {name} v{version} appeared while registering it")
    except OSError as e:
        if isinstance(e, NbtrackerError):
            raise
        raise StorageError(f"could not register model {name!r} under {folder}: {e.strerror or e}") from e
    return ModelVersion(root, doc)
