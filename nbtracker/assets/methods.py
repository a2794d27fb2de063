"""The ``Run`` methods for checkpoints, files, artifacts, references, media and text.

Each is a thin entry point (argument docs) that delegates to its module, imported on first
use, so ``import nbtracker`` stays cheap. ``Run`` inherits them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.errors import InvalidValueError, RunActiveError


class RunAssets:
    """Mixed into :class:`nbtracker.Run` (see the module doc)."""

    _finished: bool
    _dir: Any
    _parts: dict[str, Any]
    config: Any
    primary_metric: Any
    name: str
    id: str

    # -- checkpoints, files, artifacts, references (nbtracker/assets/) -----------------------------
    def _check_open(self) -> None:
        if self._finished:
            raise RunActiveError(f"run {self.name!r} ({self.id}) is finished; start a new run "
                                 f"or reopen it with nbtracker.init(resume={self.id!r})")

    def checkpoint(self, path: Any = None, metrics: Mapping[str, Any] | None = None,
                   primary_metric: Any = None, step: int | None = None, **kwargs: Any) -> Any:
        """Record a checkpoint: ``metrics`` as a logged row and, with ``path``, a stored copy of
        that file or folder (relative to the working directory, or absolute).

        Contents are stored once per root (content-addressed; an unchanged file costs no disk)
        and shown in ``checkpoints/<id>/files/``; a checkpoint is listed only once complete.
        ``primary_metric=("val_acc", "maximize")`` (or ``"minimize"``, ``"max"``, ``"min"``)
        sets the run's primary metric if none is set. Extra keyword arguments are recorded with
        the checkpoint. Returns a :class:`nbtracker.Checkpoint`; a call that raises records nothing.
        """
        from .checkpoints import checkpoint

        return checkpoint(self, path, metrics, primary_metric, step, **kwargs)

    @property
    def checkpoints(self) -> list[Any]:
        """The run's complete checkpoints, oldest first."""
        from ..core.records import list_checkpoints

        return list_checkpoints(self._dir)

    def best_checkpoint(self, metric: str | None = None, goal: str | None = None) -> Any:
        """The checkpoint with the best value of ``metric`` (default: the primary metric), or None."""
        from ..core.records import best_checkpoint, list_checkpoints

        return best_checkpoint(list_checkpoints(self._dir), self.primary_metric, metric, goal)

    def save(self, glob: Any, base_path: Any = None, policy: str = "now") -> list[str]:
        """Copy the files matching ``glob`` into the run's ``files/``, keeping their paths
        relative to ``base_path`` (default: the working directory, or the folder part of an
        absolute pattern). ``policy``: ``"now"``; ``"end"`` (copied at finish); ``"live"``
        (copied now and again whenever a file changes, checked about twice a second by its
        stat). Returns the saved names. ``nbtracker.restore(name, run=...)`` gives a file back."""
        from .files import save

        return save(self, glob, base_path, policy)

    def scan_outputs_once(self, paths: Any) -> list[str]:
        """Archive new or changed files of the output folder(s) ``paths`` into ``outputs/<folder>/``."""
        from .files import scan_outputs_once

        return scan_outputs_once(self, paths)

    def watch_outputs(self, paths: Any, interval: float = 10.0) -> None:
        """Archive the output folder(s) now, every ``interval`` seconds in the background, and at finish."""
        from .files import watch_outputs

        watch_outputs(self, paths, interval)

    def log_artifact(self, path: Any, name: str | None = None, type: str | None = None,
                     aliases: Any = None, metadata: Any = None) -> Any:
        """Store a file or folder as the next version of artifact ``name`` (``name:v0``, ``v1``,
        ...; ``latest`` follows the newest). Identical content returns the existing version."""
        from .registry import log_artifact

        return log_artifact(self, path, name, type, aliases, metadata)

    def use_artifact(self, ref: str) -> Any:
        """Resolve ``"name:latest"`` / ``"name:v3"`` / ``"name:<alias>"`` and record that this run
        used it (in both runs' ``artifacts.jsonl``). The result has ``path`` and ``download(dest)``."""
        from .registry import use_artifact

        return use_artifact(self, ref)

    def log_dataset(self, name: str, path_or_uri: Any, context: str | None = None,
                    description: str | None = None) -> dict[str, Any]:
        """Record a dataset by reference (not copied), with a fingerprint for a local path."""
        from .references import record

        return record(self, "dataset", name, path_or_uri, context=context, description=description)

    def log_pretrained(self, name: str, path_or_uri: Any = None, source_type: str | None = None) -> dict[str, Any]:
        """Record a pretrained model by reference (not copied), with a fingerprint for a local path."""
        from .references import record

        return record(self, "pretrained", name, path_or_uri, source_type=source_type)

    def log_config(self, args: Any = None, extra: Mapping[str, Any] | None = None) -> None:
        """Merge an argparse namespace (or a dict) and ``extra`` into the config."""
        self._check_open()
        merged: dict[str, Any] = {}
        for part, what in ((args, "args"), (extra, "extra")):
            if part is None:
                continue
            if not isinstance(part, Mapping):
                if not hasattr(part, "__dict__"):
                    raise InvalidValueError(f"log_config {what} must be a dict or an argparse "
                                            f"namespace, not {type(part).__name__}")
                part = vars(part)
            merged.update(part)
        self.config.update(merged)

    # -- media and text (nbtracker/media/) -------------------------------------------------------
    def log_image(self, key: str, x: Any, step: int | None = None, caption: str | None = None) -> None:
        """``run.log({key: nbtracker.Image(x, caption=caption)}, step=step)``; a list logs a gallery."""
        from ..media import Image

        image = [Image(i, caption=caption) for i in x] if isinstance(x, list) else Image(x, caption=caption)
        self.log({key: image}, step=step)

    def log_text(self, text: str, step: int | None = None, level: str = "info") -> None:
        """Append ``text`` to the run's text log (``text.jsonl``) with the time, the step (default:
        the last logged step) and ``level`` (debug, info, warning, error, critical)."""
        from ..media.text import log_text

        log_text(self, text, step, level)

    def get_logging_handler(self, level: int | str = 20) -> Any:
        """A ``logging.Handler`` writing records to the run's text log; removed and closed at finish.

        ``logging.getLogger().addHandler(run.get_logging_handler())``."""
        from ..media.text import get_logging_handler

        return get_logging_handler(self, level)

    @property
    def logging_handler(self) -> Any:
        """The run's logging handler (made on first use, at level INFO)."""
        handlers = self._parts.get("log_handlers")
        return handlers[0] if handlers else self.get_logging_handler()
