"""Reading what runs stored besides rows: checkpoints, saved files, artifacts and registered models.

The files are the contract (docs/run-directory.md); these classes are read-only views of them
that can also restore contents (``checkout``). Writing lives in ``nbtracker/assets/``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .blobs import BlobStore, checkout_entries, store_dir
from .errors import InvalidKeyError, NbtrackerError
from .files import read_json, read_jsonl

CHECKPOINTS_DIR = "checkpoints"
MANIFEST = "manifest.json"
FILES_MANIFEST = "files.json"       # run.save()
OUTPUTS_MANIFEST = "outputs.json"   # scan_outputs_once() / watch_outputs()
ARTIFACTS_LOG = "artifacts.jsonl"   # per run: logged / used / used_by
REFERENCES_LOG = "references.jsonl"  # per run: datasets and pretrained models, not copied

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")


def check_name(name: Any, what: str = "artifact name") -> str:
    """A registry name: 1-100 letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidKeyError(f"{what} {name!r} is not valid: use 1-100 letters, digits, '.', '_' "
                              "or '-', starting with a letter or digit (no '/', no ':')")
    return name


def root_of(run_dir: Path) -> Path:
    """The run root of a run directory (``<root>/<project>/<id>``)."""
    return Path(run_dir).parent.parent


# -- checkpoints ---------------------------------------------------------------------------------
class Checkpoint:
    """One checkpoint of a run: its metrics, extra fields and stored files.

    Attributes
    ----------
    id : str
    step : int or None
    metrics : dict
    time : float
        Wall-clock seconds when it was recorded.
    files : list of str
        Relative paths of the stored files (``manifest`` has size and SHA-256 of each).
    extra : dict
        The keyword arguments given to ``run.checkpoint``.
    path : pathlib.Path
        The folder in the run directory showing the files under their own names.
    run_id, project : str
    """

    def __init__(self, folder: Path, doc: dict[str, Any]) -> None:
        self.dir = folder
        self.id: str = doc["id"]
        self.step = doc.get("step")
        self.time = doc.get("time")
        self.metrics: dict[str, Any] = dict(doc.get("metrics") or {})
        self.extra: dict[str, Any] = dict(doc.get("extra") or {})
        self.manifest: list[dict[str, Any]] = list(doc.get("files") or [])
        self.source = doc.get("source")
        self.primary_metric = doc.get("primary_metric")
        self.run_id: str = doc.get("run") or folder.parent.parent.name
        self.project: str = doc.get("project") or folder.parent.parent.parent.name

    files = property(lambda self: [e["path"] for e in self.manifest])
    path = property(lambda self: self.dir / "files")
    run_dir = property(lambda self: self.dir.parent.parent)

    @property
    def size(self) -> int:
        return sum(int(e.get("size") or 0) for e in self.manifest)

    def metric(self, name: str) -> Any:
        return self.metrics.get(name)

    def checkout(self, dest: str | os.PathLike[str] = ".", replace: bool = False) -> Path:
        """Write the checkpoint's files under ``dest``, byte-identical, as ordinary files.

        An existing file is refused unless ``replace=True``. Returns ``dest``."""
        dest = Path(dest)
        store = BlobStore(root_of(self.run_dir))
        checkout_entries(store, self.manifest, dest, fallback=self.path, replace=replace)
        return dest

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "run": self.run_id, "project": self.project, "step": self.step,
                "time": self.time, "metrics": self.metrics, "extra": self.extra, "files": self.manifest}

    def __repr__(self) -> str:
        m = ", ".join(f"{k}={_fmt(v)}" for k, v in list(self.metrics.items())[:4])
        return (f"<Checkpoint {self.id} of run {self.run_id} step={self.step} {m} "
                f"files={len(self.manifest)}>")


def list_checkpoints(run_dir: Path) -> list[Checkpoint]:
    """The complete checkpoints of a run, oldest first (a folder without its manifest is an
    interrupted checkpoint and is not listed)."""
    folder = Path(run_dir) / CHECKPOINTS_DIR
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for e in entries:
        if e.name.startswith(".") or not e.is_dir(follow_symlinks=False):
            continue
        try:
            doc = read_json(Path(e.path) / MANIFEST)
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and isinstance(doc.get("id"), str):
            out.append(Checkpoint(Path(e.path), doc))
    out.sort(key=lambda c: (c.time or 0, c.id))
    return out


def find_checkpoint(run_dir: Path, ref: str) -> Checkpoint:
    """A checkpoint of the run by id or unique id prefix, or ``"best"``/``"latest"``."""
    cps = list_checkpoints(run_dir)
    if not cps:
        raise NbtrackerError(f"run {Path(run_dir).name} has no checkpoints")
    if ref == "latest":
        return cps[-1]
    if ref == "best":
        best = best_checkpoint(cps, _primary_of(run_dir))
        if best is None:
            raise NbtrackerError(f"run {Path(run_dir).name} has no primary metric, or no checkpoint "
                                 "records it; pass a checkpoint id")
        return best
    hits = [c for c in cps if c.id == ref] or [c for c in cps if c.id.startswith(ref)]
    if len(hits) != 1:
        ids = ", ".join(c.id for c in cps[:8])
        raise NbtrackerError(f"{'no' if not hits else 'more than one'} checkpoint {ref!r} in run "
                             f"{Path(run_dir).name} (its checkpoints: {ids})")
    return hits[0]


def _primary_of(run_dir: Path) -> tuple[str, str] | None:
    from .query import read_run_doc

    try:
        pm = read_run_doc(Path(run_dir), warn=False).get("primary_metric")
    except NbtrackerError:
        return None
    return (pm["name"], pm["goal"]) if pm else None


def best_checkpoint(checkpoints: Iterable[Checkpoint], primary: tuple[str, str] | None,
                    metric: str | None = None, goal: str | None = None) -> Checkpoint | None:
    ranked = rank_checkpoints(checkpoints, primary, metric, goal)
    return ranked[0] if ranked else None


def rank_checkpoints(checkpoints: Iterable[Checkpoint], primary: tuple[str, str] | None,
                     metric: str | None = None, goal: str | None = None) -> list[Checkpoint]:
    """Checkpoints that record ``metric`` (default: the primary metric), best first."""
    metric = metric or (primary[0] if primary else None)
    if metric is None:
        return []
    goal = _goal(goal or (primary[1] if primary and primary[0] == metric else None)
                 or _checkpoint_goal(checkpoints, metric) or "max")
    scored = [(c.metrics[metric], c) for c in checkpoints if _finite(c.metrics.get(metric))]
    scored.sort(key=lambda p: p[0], reverse=goal == "max")
    return [c for _, c in scored]


def _checkpoint_goal(checkpoints: Iterable[Checkpoint], metric: str) -> str | None:
    for c in checkpoints:
        pm = c.primary_metric
        if isinstance(pm, dict) and pm.get("name") == metric:
            return pm.get("goal")
    return None


def _goal(goal: str) -> str:
    g = {"min": "min", "minimize": "min", "max": "max", "maximize": "max"}.get(goal)
    if g is None:
        raise InvalidKeyError(f"goal must be 'min'/'minimize' or 'max'/'maximize', not {goal!r}")
    return g


def _finite(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


# -- saved files -----------------------------------------------------------------------------------
def read_manifest(run_dir: Path, name: str = FILES_MANIFEST) -> dict[str, dict[str, Any]]:
    """``files.json`` / ``outputs.json``: relative path -> ``{size, sha256, ...}``."""
    try:
        doc = read_json(Path(run_dir) / name)
    except (OSError, ValueError):
        return {}
    files = doc.get("files") if isinstance(doc, dict) else None
    return files if isinstance(files, dict) else {}


# -- artifacts -----------------------------------------------------------------------------------
def artifacts_dir(root: Path) -> Path:
    return store_dir(root) / "artifacts"


def models_dir(root: Path) -> Path:
    return store_dir(root) / "models"


def parse_ref(ref: str, what: str = "artifact") -> tuple[str, str]:
    """``"name:v3"`` / ``"name:latest"`` / ``"name"`` -> ``(name, version or alias)``."""
    if not isinstance(ref, str):
        raise InvalidKeyError(f"{what} reference must be a string like 'name:latest', not {ref!r}")
    name, _, tag = ref.partition(":")
    return check_name(name, f"{what} name"), tag or "latest"


class ArtifactVersion:
    """One version of an artifact: ``name``, ``version`` (0, 1, ...), ``type``, ``aliases``,
    ``files`` and ``path``, the folder showing its files (read-only; ``download`` copies them)."""

    def __init__(self, root: Path, doc: dict[str, Any], aliases: list[str]) -> None:
        self.root = root
        self.name: str = doc["name"]
        self.version: int = doc["version"]
        self.type = doc.get("type")
        self.digest = doc.get("digest")
        self.manifest: list[dict[str, Any]] = list(doc.get("files") or [])
        self.created_time = doc.get("created_time")
        self.run = doc.get("run") or {}
        self.metadata = doc.get("metadata") or {}
        self.aliases = aliases

    ref = property(lambda self: f"{self.name}:v{self.version}")
    files = property(lambda self: [e["path"] for e in self.manifest])
    path = property(lambda self: artifacts_dir(self.root) / self.name / f"v{self.version}")

    @property
    def size(self) -> int:
        return sum(int(e.get("size") or 0) for e in self.manifest)

    def download(self, dest: str | os.PathLike[str] = ".", replace: bool = False) -> Path:
        """Copy the files under ``dest`` as ordinary writable files; returns ``dest``."""
        dest = Path(dest)
        checkout_entries(BlobStore(self.root), self.manifest, dest, fallback=self.path, replace=replace)
        return dest

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "ref": self.ref, "type": self.type,
                "aliases": self.aliases, "digest": self.digest, "size": self.size,
                "files": self.manifest, "run": self.run, "created_time": self.created_time}

    def __repr__(self) -> str:
        al = f" ({', '.join(self.aliases)})" if self.aliases else ""
        return f"<Artifact {self.ref}{al} type={self.type!r} files={len(self.manifest)} size={self.size}>"


def _versions(folder: Path) -> Iterator[tuple[int, Path]]:
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for e in entries:
        m = re.fullmatch(r"v(\d+)\.json", e.name)
        if m:
            yield int(m.group(1)), Path(e.path)


def read_aliases(folder: Path) -> dict[str, int]:
    try:
        doc = read_json(folder / "aliases.json")
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in doc.items() if isinstance(v, int)} if isinstance(doc, dict) else {}


def artifact_versions(root: Path, name: str) -> list[ArtifactVersion]:
    folder = artifacts_dir(root) / name
    aliases = read_aliases(folder)
    out = []
    for n, path in sorted(_versions(folder)):
        try:
            doc = read_json(path)
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict):
            out.append(ArtifactVersion(root, doc, sorted(a for a, v in aliases.items() if v == n)))
    return out


def get_artifact(root: Path, ref: str) -> ArtifactVersion:
    name, tag = parse_ref(ref)
    versions = artifact_versions(root, name)
    if not versions:
        raise NbtrackerError(f"no artifact {name!r} under {root}; `nbtracker.artifacts()` lists them")
    if re.fullmatch(r"v\d+", tag):
        wanted = int(tag[1:])
        hits = [v for v in versions if v.version == wanted]
    else:
        hits = [v for v in versions if tag in v.aliases]
    if not hits:
        known = ", ".join(f"v{v.version}" for v in versions) + "; aliases " + ", ".join(
            sorted({a for v in versions for a in v.aliases}))
        raise NbtrackerError(f"artifact {name!r} has no version or alias {tag!r} (it has {known})")
    return hits[0]


def list_artifacts(root: Path, type: str | None = None) -> list[ArtifactVersion]:
    folder = artifacts_dir(root)
    try:
        names = sorted(e.name for e in os.scandir(folder) if e.is_dir())
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        out += [v for v in artifact_versions(root, name) if type is None or v.type == type]
    return out


# -- models --------------------------------------------------------------------------------------
class ModelVersion:
    """Version ``n`` of a registered model: what it points at (a checkpoint or an artifact
    version), its files, notes and time."""

    def __init__(self, root: Path, doc: dict[str, Any]) -> None:
        self.root = root
        self.name: str = doc["name"]
        self.version: int = doc["version"]
        self.notes = doc.get("notes")
        self.time = doc.get("time")
        self.source: dict[str, Any] = doc.get("source") or {}
        self.manifest: list[dict[str, Any]] = list(doc.get("files") or [])
        self.metrics: dict[str, Any] = doc.get("metrics") or {}

    files = property(lambda self: [e["path"] for e in self.manifest])

    @property
    def checkpoint(self) -> Checkpoint | None:
        """The checkpoint this version points at (None for an artifact, or if its run is gone)."""
        s = self.source
        if s.get("kind") != "checkpoint":
            return None
        run_dir = self.root / str(s.get("project")) / str(s.get("run"))
        for c in list_checkpoints(run_dir):
            if c.id == s.get("id"):
                return c
        return None

    @property
    def artifact(self) -> ArtifactVersion | None:
        if self.source.get("kind") != "artifact":
            return None
        return get_artifact(self.root, self.source["ref"])

    def checkout(self, dest: str | os.PathLike[str] = ".", replace: bool = False) -> Path:
        """Write this version's files under ``dest``, byte-identical (from the content store,
        so it works even after the checkpoint's run was deleted)."""
        dest = Path(dest)
        cp = self.checkpoint
        checkout_entries(BlobStore(self.root), self.manifest, dest,
                         fallback=cp.path if cp is not None else None, replace=replace)
        return dest

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "notes": self.notes, "time": self.time,
                "source": self.source, "metrics": self.metrics, "files": self.manifest}

    def __repr__(self) -> str:
        s = self.source
        what = (f"checkpoint {s.get('id')} of run {s.get('run')}" if s.get("kind") == "checkpoint"
                else f"artifact {s.get('ref')}")
        return f"<ModelVersion {self.name} v{self.version}: {what}>"


class Model:
    """A named model with versions 1, 2, ...: ``versions``, ``latest``, ``version(n)``."""

    def __init__(self, root: Path, name: str, versions: list[ModelVersion]) -> None:
        self.root, self.name, self.versions = root, name, versions

    @property
    def latest(self) -> ModelVersion:
        return self.versions[-1]

    def version(self, n: int) -> ModelVersion:
        for v in self.versions:
            if v.version == n:
                return v
        raise NbtrackerError(f"model {self.name!r} has no version {n} (it has "
                             f"{', '.join(str(v.version) for v in self.versions)})")

    def __repr__(self) -> str:
        return f"<Model {self.name!r}: {len(self.versions)} version(s), latest v{self.latest.version}>"


def model_versions(root: Path, name: str) -> list[ModelVersion]:
    out = []
    for n, path in sorted(_versions(models_dir(root) / name)):
        try:
            doc = read_json(path)
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict):
            out.append(ModelVersion(root, doc))
    return out


def get_model(root: Path, name: str) -> Model:
    check_name(name, "model name")
    versions = model_versions(root, name)
    if not versions:
        raise NbtrackerError(f"no model {name!r} under {root}; nbtracker.register_model() creates one")
    return Model(root, name, versions)


def list_models(root: Path) -> list[Model]:
    try:
        names = sorted(e.name for e in os.scandir(models_dir(root)) if e.is_dir())
    except FileNotFoundError:
        return []
    return [Model(root, n, vs) for n in names if (vs := model_versions(root, n))]


def read_log(run_dir: Path, name: str) -> list[dict[str, Any]]:
    """A small per-run JSON Lines log (artifacts.jsonl, references.jsonl, text.jsonl, ...)."""
    path = Path(run_dir) / name
    if not path.is_file():
        return []
    return read_jsonl(path, live=True)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
