"""``run.checkpoint``: metrics plus a stored copy of a file or folder, complete or absent."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.blobs import BlobStore, store_tree
from ..core.errors import (
    InvalidKeyError,
    InvalidValueError,
    NbtrackerError,
    StorageError,
)
from ..core.files import atomic_write_json
from ..core.paths import new_run_id
from ..core.records import CHECKPOINTS_DIR, MANIFEST, Checkpoint, root_of
from ..core.values import jsonable

_GOALS = {"min": "min", "minimize": "min", "max": "max", "maximize": "max"}


def primary_pair(primary_metric: Any) -> tuple[str, str] | None:
    """``("val_acc", "maximize")`` or ``"val_acc:max"`` -> ``("val_acc", "max")``."""
    if primary_metric is None:
        return None
    if isinstance(primary_metric, str):
        name, _, goal = primary_metric.partition(":")
        pair: Any = (name, goal or "max")
    else:
        pair = primary_metric
    if (not isinstance(pair, (tuple, list)) or len(pair) != 2 or not isinstance(pair[0], str)
            or pair[1] not in _GOALS):
        raise InvalidKeyError(f"primary_metric must be (name, 'maximize'|'minimize'|'max'|'min'), "
                              f"not {primary_metric!r}")
    return pair[0], _GOALS[pair[1]]


def checkpoint(run: Any, path: Any = None, metrics: Mapping[str, Any] | None = None,
               primary_metric: Any = None, step: int | None = None, **extra: Any) -> Checkpoint:
    """See :meth:`nbtracker.Run.checkpoint`."""
    from ..run import _check_step  # the run layer's own step rule

    run._check_open()
    values, media = run._values(metrics or {})
    if media:
        raise InvalidValueError("checkpoint metrics are numbers and text; log images with run.log()")
    pair = primary_pair(primary_metric)
    extra_doc = jsonable(dict(extra), "checkpoint field") if extra else {}
    if step is not None:
        step = _check_step(step)
    elif values:
        step = run.step
    elif run._rows:
        step = run.step - 1
    src = None
    if path is not None:
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise InvalidValueError(f"path must be a file or folder path, not {path!r}")
        src = Path(path).expanduser()
        if not src.exists():
            raise NbtrackerError(f"checkpoint path {str(path)!r} does not exist (relative paths are "
                                 f"taken from the working directory {os.getcwd()}); nothing was recorded")
    cid = new_run_id()
    folder = run.dir / CHECKPOINTS_DIR
    partial = folder / f".partial-{cid}"
    store = BlobStore(root_of(run.dir))
    try:
        partial.mkdir(parents=True)
        entries = store_tree(store, src, partial / "files") if src is not None else []
        doc = {"id": cid, "run": run.id, "project": run.project, "step": step, "time": time.time(),
               "metrics": values, "extra": extra_doc,
               "primary_metric": ({"name": pair[0], "goal": pair[1]} if pair else
                                  ({"name": run.primary_metric[0], "goal": run.primary_metric[1]}
                                   if run.primary_metric else None)),
               "source": os.path.abspath(src) if src is not None else None,
               "files": entries}
        atomic_write_json(partial / MANIFEST, doc, fsync=True)
        os.rename(partial, folder / cid)   # the commit point: a listed checkpoint is complete
    except BaseException as e:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(e, OSError) and not isinstance(e, NbtrackerError):
            raise StorageError(f"could not store checkpoint in {folder}: {e.strerror or e}; "
                               "nothing was recorded") from e
        raise
    if pair is not None and run.primary_metric is None:
        run.set_primary_metric(*pair)
    if values:
        run._commit(values, step)
    return Checkpoint(folder / cid, doc)
