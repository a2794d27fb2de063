"""Mirrors for teams (docs/teams.md): object storage through fsspec, and an MLflow tracking server.

The local run directory stays authoritative; a mirror is a copy other people can read.
Importing this package costs nothing: fsspec, s3fs and the MLflow client code are loaded on
first use, never by ``import nbtracker``.

- ``init(mirror="s3://bucket/prefix")`` / ``$NBTRACKER_MIRROR``: live mirroring of a run
  (``nbtracker.sync.live``); ``init(mlflow="mlflow+http://host:5000")`` / ``$NBTRACKER_MLFLOW``.
- :func:`ship` / ``nbtracker sync RUN ... --to URL``: ship finished or running runs, resumable.
- ``runs(dir="s3://...")``, ``load``, ``compare`` and ``--root s3://...`` read a mirror
  (``nbtracker.sync.remote``).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..core import paths as _paths
from ..core.errors import InvalidValueError, NbtrackerError
from ..core.paths import is_url

ENV_MIRROR = "NBTRACKER_MIRROR"
ENV_MLFLOW = "NBTRACKER_MLFLOW"
#: Runs shipped at once by ``ship(all=True)`` / ``nbtracker sync --all``.
SHIP_THREADS = 8


class _Hooks:
    """core's door to mirrors (core/paths.py ``MirrorHooks``); imports the reader on first use."""

    def open_root(self, url: str) -> Path:
        from . import remote

        return remote.open_root(url)

    def fill(self, run_dir: Path) -> None:
        from . import remote

        remote.fill(run_dir)

    def fetch_blob(self, root: Path, digest: str) -> bool:
        from . import remote

        return remote.fetch_blob(root, digest)


_paths.mirrors = _Hooks()


def target_for(url: Any, options: dict[str, Any] | None = None) -> Any:
    """The shipping target for a URL: ``mlflow+http(s)://`` is an MLflow server, any other
    ``scheme://`` an fsspec store. Raises a clear error for anything else."""
    _check_url(url, options)
    if url_is_mlflow(url):
        from .mlflow import MlflowTarget

        return MlflowTarget(url)
    from .objstore import ObjectMirror

    return ObjectMirror(url, options)


def live_targets(mirror: Any = None, mirror_options: dict[str, Any] | None = None,
                 mlflow: Any = None) -> list[tuple[str, dict[str, Any] | None]]:
    """``(url, storage options)`` of the live mirrors ``init`` starts: the arguments, else
    ``$NBTRACKER_MIRROR`` / ``$NBTRACKER_MLFLOW``; ``False`` turns one off. Checked before the
    run is created (a bad URL or a missing backend raises here), without importing the backend:
    the passes run in a worker process (``nbtracker.sync.worker``)."""
    out: list[tuple[str, dict[str, Any] | None]] = []
    if mirror is None:
        mirror = os.environ.get(ENV_MIRROR) or None
    if mirror is not None and mirror is not False:
        _check_url(mirror, mirror_options)
        _check_backend(mirror, mirror_options)
        if url_is_mlflow(mirror):
            raise InvalidValueError("mirror= takes object storage (s3://...); an MLflow server goes in mlflow=")
        out.append((mirror, mirror_options))
    if mlflow is None:
        mlflow = os.environ.get(ENV_MLFLOW) or None
    if mlflow is not None and mlflow is not False:
        if isinstance(mlflow, str) and mlflow.startswith(("http://", "https://")):
            mlflow = "mlflow+" + mlflow
        _check_url(mlflow, None)
        if not url_is_mlflow(mlflow):
            raise InvalidValueError(f"mlflow= takes an MLflow server URL (http://host:5000), not {mlflow!r}")
        out.append((mlflow, None))
    return out


def _check_url(url: Any, options: Any) -> None:
    if not isinstance(url, str) or not is_url(url):
        raise InvalidValueError(f"a mirror is a URL such as s3://bucket/prefix or mlflow+http://host:5000, "
                                f"not {url!r}")
    if options is not None and not isinstance(options, dict):
        raise InvalidValueError(f"mirror_options must be a dict of storage options, not {type(options).__name__}")
    if url.startswith("mlflow") and not url_is_mlflow(url):
        raise InvalidValueError(f"{url}: an MLflow server is given as mlflow+http://host:port or mlflow+https://...")


def _check_backend(url: str, options: dict[str, Any] | None) -> None:
    """What a live mirror's worker process will need, checked in the run's process without
    importing the backend: JSON options, fsspec and the scheme's implementation installed."""
    try:
        json.dumps(options)
    except (TypeError, ValueError):
        raise InvalidValueError("mirror_options must hold JSON values only (strings, numbers, dicts): "
                                "they go to the mirror's worker process") from None
    if url_is_mlflow(url):
        return
    from importlib.util import find_spec

    from .objstore import MirrorError, install_hint

    if find_spec("fsspec") is None:
        raise MirrorError(f"mirroring to {url} needs fsspec and the backend for it: "
                          "pip install 'nbtracker[s3]' (s3fs) or the fsspec backend of your store")
    from fsspec.registry import known_implementations, registry

    scheme = url.split("://", 1)[0]
    if scheme in registry:
        return
    known = known_implementations.get(scheme)
    if known is None:
        raise MirrorError(f"{url} is not a storage URL fsspec knows (no backend for {scheme}://)")
    module = known["class"].split(".", 1)[0]
    if find_spec(module) is None:
        hint = install_hint(scheme, known.get("err"))
        raise MirrorError(f"mirroring to {url} needs {module}, which is not installed: {hint}")


def url_is_mlflow(url: str) -> bool:
    return url.startswith(("mlflow+http://", "mlflow+https://"))


@dataclass
class Shipped:
    """One run's sync: what was done, or why it failed."""

    project: str
    id: str
    name: str | None
    seconds: float
    uploads: int = 0
    uploaded_bytes: int = 0
    requests: int = 0
    rows: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def ship(runs: Iterable[str | os.PathLike[str]] | None = None, to: str | None = None, *,
         all: bool = False, project: str | None = None, dir: str | os.PathLike[str] | None = None,
         options: dict[str, Any] | None = None) -> list[Shipped]:
    """Ship runs to a mirror (what ``nbtracker sync`` does); returns one :class:`Shipped` each.

    ``runs`` are ids, id prefixes, names or run directories; ``all=True`` ships every run under
    the root (of ``project``). Safe to repeat and to interrupt: a second call uploads only what
    the mirror lacks. Errors are recorded per run (``Shipped.error``), never half-applied.
    """
    from ..core.paths import resolve_root
    from ..core.query import find_run_dir, run_dirs

    if to is None:
        raise InvalidValueError("ship() needs to=URL: s3://bucket/prefix, file:///path or mlflow+http://host:port")
    target = target_for(to, options)
    if all:
        dirs = sorted(run_dirs(resolve_root(dir), project))
    else:
        if not runs:
            raise InvalidValueError("name the runs to ship, or pass all=True")
        if isinstance(runs, (str, os.PathLike)):
            runs = [runs]
        dirs = [find_run_dir(r, dir, project) for r in runs]
    if len(dirs) <= 1:
        return [_ship_one(target, Path(d)) for d in dirs]
    # Runs are independent: several at once hide the store's latency (each run's own
    # requests stay in order).
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(SHIP_THREADS, len(dirs)), thread_name_prefix="nbtracker-sync") as pool:
        return list(pool.map(lambda d: _ship_one(target, Path(d)), dirs))


def _ship_one(target: Any, run_dir: Path) -> Shipped:
    from ..core.files import read_json

    try:
        name = read_json(run_dir / "run.json").get("name")
    except (OSError, ValueError, AttributeError):
        name = None
    t0 = time.perf_counter()
    shipped = Shipped(run_dir.parent.name, run_dir.name, name if isinstance(name, str) else None, 0.0)
    try:
        stats, state = target.sync_run(run_dir)
    except NbtrackerError as e:
        shipped.error = str(e)
    else:
        for k in ("uploads", "uploaded_bytes", "requests", "rows"):
            setattr(shipped, k, getattr(stats, k))
        shipped.notes = list(getattr(state, "notes", []) or [])
    shipped.seconds = round(time.perf_counter() - t0, 3)
    return shipped
