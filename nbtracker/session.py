"""Composes a Run with code capture and inline display for the current environment.

This is what the façade exports: in a plain script it is exactly the run layer; under IPython
it also installs the display layer (lazily, so ``import nbtracker`` stays headless).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from . import lifecycle as _lifecycle
from . import run as _run
from . import sync as _sync
from .core import events as _events
from .core import query as _query
from .core import reprs as _reprs
from .display import text as _text

# A run list prints as a text table anywhere (a script's print(), a terminal, the CLI).
_reprs.register_text("RunList", _text.runs_table)

_display_installed = False
_display_missing = False


def _shell() -> Any:
    """The running IPython shell, or None (never imports IPython itself)."""
    if "IPython" not in sys.modules:
        return None
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return None
    return get_ipython()


def ensure_display(shell: Any = None) -> None:
    """Install the display layer once, when running under IPython."""
    global _display_installed, _display_missing
    if _display_installed or _display_missing:
        return
    shell = shell if shell is not None else _shell()
    if shell is None:
        return
    try:
        from .display import inline
    except ImportError:  # no display layer in this version: do not look again
        _display_missing = True
        return
    inline.install(shell)
    _display_installed = True


def remove_display(shell: Any = None) -> None:
    global _display_installed
    if _display_installed:
        from .display import inline

        inline.uninstall(shell)
        _display_installed = False


def init(*args: Any, capture_console: bool = False, system_metrics: Any = False,
         mirror: Any = None, mirror_options: dict[str, Any] | None = None, mlflow: Any = None,
         **kwargs: Any) -> _run.Run:
    console, interval = _check_capture(capture_console, system_metrics)
    targets = _sync.live_targets(mirror, mirror_options, mlflow)   # bad URLs raise before any run exists
    ensure_display()
    if not in_kernel():
        _install_text_summary()
    run = _lifecycle.init(*args, **kwargs)
    mark_kernel_run(run)
    _capture_start_state(run)
    try:
        for url, options in targets:
            from .sync import live as _live

            _live.start(run, url, options)
        if console:
            from .capture import console as _console

            _console.start(run, kernel=in_kernel())
        if interval:
            from .capture import system as _system

            _system.start(run, interval)
    except BaseException:
        run.finish("failed")
        raise
    return run


def _capture_start_state(run: _run.Run) -> None:
    """env.json and the git state, written by a child process (docs/reproducibility.md), so
    the scan of installed distributions and the git calls never compete with the user's loop;
    ``finish`` waits for it at most 5 s. Failures are reported once (``run._guarded``, which
    also runs the closers) and never touch the run."""
    import threading

    from .capture.state import start

    started: list[Any] = []
    _run._guarded(lambda: started.append(start(run.dir, in_kernel())), "code state capture")
    proc = started[0] if started else None
    if proc is None:
        return
    # Reap the child as soon as it exits (a waiting thread holds no GIL): a kernel that shuts
    # down with an unreaped child is killed by ipykernel's child-process cleanup before its
    # atexit handlers run, and its open run would not be marked "crashed".
    result: list[bytes] = []
    reaper = threading.Thread(target=lambda: result.append(proc.communicate()[1] or b""),
                              name="nbtracker-code-state", daemon=True)
    reaper.start()

    def wait() -> None:
        reaper.join(5.0)
        if reaper.is_alive():
            proc.kill()
            raise TimeoutError("git or the distribution scan took over 5 s")
        if proc.returncode:
            last = b"".join(result).decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
            raise RuntimeError(f"code state capture: {last[0]}")

    run._closers.append(wait)


def _check_capture(console: Any, system: Any) -> tuple[bool, float | None]:
    """Validated ``capture_console`` and ``system_metrics`` (before any run is made)."""
    from .core.errors import InvalidValueError, NbtrackerError

    if not isinstance(console, bool):
        raise InvalidValueError(f"capture_console must be True or False, not {console!r}")
    if system is False or system is None:
        return console, None
    if system is True:
        interval = 10.0
    elif isinstance(system, (int, float)) and not isinstance(system, bool) and system > 0:
        interval = float(system)
    else:
        raise InvalidValueError("system_metrics must be True, False or a sampling interval in "
                                f"seconds, not {system!r}")
    try:
        import psutil  # noqa: F401 - checked here so a missing extra creates no run
    except ImportError:
        raise NbtrackerError("system_metrics=True needs psutil, which is not installed: "
                             "pip install 'nbtracker[system]' (or pip install psutil)") from None
    return console, interval


# -- the text view in scripts and terminal IPython ---------------------------------------------
# Each run's numbers are folded into a bounded ``TextStats`` as they are logged, so the summary
# printed at finish() costs the same at a thousand rows and at millions (no history re-read).
_text_stats: dict[int, Any] = {}
_text_listeners: dict[str, Any] = {}


def _install_text_summary() -> None:
    """Outside a kernel, print each run's text view to stderr when it finishes
    (``NBTRACKER_QUIET=1`` turns it off), and on ``run.display()`` in a script."""
    if _text_listeners:
        return
    from .display.text import TextStats, format_view

    def started(run: _run.Run) -> None:
        if in_kernel():
            return
        stats = _text_stats[id(run)] = TextStats()
        if run._rows:   # a resumed run: its earlier rows count too (read once, as resume does)
            from .core.files import read_jsonl
            from .core.paths import METRICS_FILE

            for row in read_jsonl(run.dir / METRICS_FILE):
                stats.push(row)

    def logged(run: _run.Run, row: dict[str, Any]) -> None:
        stats = _text_stats.get(id(run))
        if stats is not None:
            stats.push(row)

    def view(run: _run.Run) -> str:
        stats = _text_stats.get(id(run))
        return format_view(run, run._rows, stats.stats() if stats is not None else {})

    def finished(run: _run.Run) -> None:
        try:
            if run._rows and os.environ.get("NBTRACKER_QUIET", "0") == "0" and id(run) in _text_stats:
                # a script keeps its stdout for its own output; a terminal IPython shows it inline
                print(view(run), file=sys.stdout if _shell() is not None else sys.stderr)
        finally:
            _text_stats.pop(id(run), None)

    def displayed(run: _run.Run, options: Any = None) -> None:
        if not _display_installed:   # under IPython the display layer shows it
            print(view(run))

    _text_listeners.update(init=started, log=logged, finish=finished, display=displayed)
    for name, fn in _text_listeners.items():
        _events.on(name, fn)


def in_kernel(shell: Any = None) -> bool:
    """True inside a Jupyter kernel (not a terminal IPython, not a plain script)."""
    shell = shell if shell is not None else _shell()
    return shell is not None and getattr(shell, "kernel", None) is not None


def mark_kernel_run(run: _run.Run, shell: Any = None) -> None:
    """In a kernel, a run still open when the process exits ends as ``crashed``.

    A kernel's end (shutdown, restart, death) is never the end of the notebook's code, so the
    numbers may stop mid-training, and the status must not depend on how the kernel went away
    (a SIGKILL already reads as crashed). A script or terminal IPython session reaching its
    end keeps ``finished``: the end of the program is the end of its code.
    """
    if in_kernel(shell):
        run._exit_status = "crashed"


def compare(runs: Any = None, metric: Any = None, **kwargs: Any) -> Any:
    """See :func:`nbtracker.display.inline.compare` (imports matplotlib on first use)."""
    ensure_display()
    from .display.inline import compare as _compare

    return _compare(runs, metric, **kwargs)


def runs(*args: Any, **kwargs: Any) -> _query.RunList:
    ensure_display()
    return _query.runs(*args, **kwargs)


def load(*args: Any, **kwargs: Any) -> _query.RunView:
    ensure_display()
    return _query.load(*args, **kwargs)


def _lazy_compare_doc() -> str:
    return ("Overlay a metric across runs in one chart (the display layer's ``compare``).\n\n"
            "``nbtracker.compare(runs, metric='val/acc', x='step', log_y=False, smoothing=0.0)``; ``runs`` is a "
            "RunList or a list of runs, ids or names (default: all runs, or those of ``project=``).")


compare.__doc__ = _lazy_compare_doc()
init.__doc__ = (_lifecycle.init.__doc__ or "") + """
    capture_console : bool
        Copy what the run prints (stdout, stderr; progress bars as their final line) into
        ``console.jsonl`` while still showing it; stops at finish. Default False.
    system_metrics : bool or float
        Sample CPU, memory, disk, network (and NVIDIA GPUs when ``nvidia-ml-py`` is installed)
        every 10 s (or every ``system_metrics`` seconds) into ``system.jsonl``. Needs psutil
        (``pip install 'nbtracker[system]'``). Default False.
    mirror : str, optional
        Ship the run live to object storage (``s3://bucket/prefix``, any fsspec URL) from a
        worker process while it is written; default ``$NBTRACKER_MIRROR``, ``False`` turns
        it off. Needs ``pip install 'nbtracker[s3]'`` for S3. See docs/teams.md.
    mirror_options : dict, optional
        fsspec storage options for ``mirror`` (credentials, ``endpoint_url``...).
    mlflow : str, optional
        Sync the run live to an MLflow tracking server (``http://host:5000`` or
        ``mlflow+http://host:5000``); default ``$NBTRACKER_MLFLOW``.
"""
runs.__doc__ = _query.runs.__doc__
load.__doc__ = _query.load.__doc__



def replay(run: Any, **kwargs: Any) -> Any:
    """Re-run ``run``'s captured code in a fresh kernel and compare its metrics; returns a
    :class:`nbtracker.rerun.ReplayReport` (see ``nbtracker.rerun.replay`` for the options)."""
    from .rerun import replay as _replay

    return _replay(run, **kwargs)
