"""``%nbtracker``, ``%%nbtracker run``, ``%track`` and ``%untrack``: thin shells over the Python API."""

from __future__ import annotations

import argparse
import ast
import shlex
import sys
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class

from . import cli, session
from . import run as run_module
from .cells import CellSession
from .core.errors import NbtrackerError
from .core.query import find_run_dir
from .display.text import fmt_value
from .sync import live as live_mirrors

_sessions: dict[int, CellSession] = {}

HELP = """nbtracker: track runs from a notebook.

  %nbtracker init [--project P] [--name N] [--tag T ...] [--notes TEXT] [--group G]
                  [--primary METRIC:max|min] [--resume ID] [--console] [--system]
                  [--mirror s3://bucket/prefix] [--mlflow http://host:5000] [key=value ...]
                               start a run; key=value pairs become config (Python literals)
  %nbtracker finish            finish the current run
  %nbtracker status            current run: steps, last values, last cells, files, mirrors
  %nbtracker runs [--project P] [--sort KEY] [--desc]    table of runs
  %nbtracker code [RUN]        the captured (clean) code of a run
  %nbtracker diff RUN RUN      config, summary and tags side by side
  %nbtracker compare [RUN ...] [--project P] [--metric M] [--x step|time|M] [--log]
                               one metric of several runs in one chart
  %nbtracker live [RUN]        show the current run's live chart here (or a run's chart)
  %%nbtracker run [init options]   run this cell inside its own run
  %track x y ...  /  %untrack [x ...]   log watched variables after every cell
"""


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting the kernel."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> Any:  # type: ignore[override]
        if message:
            print(message, file=sys.stderr)
        raise UsageError(f"{self.prog}: see the help above") if status else _Done()


class _Done(Exception):
    """-h printed the help: nothing else to do."""


def _init_parser(prog: str) -> _Parser:
    p = _Parser(prog=prog, add_help=True)
    p.add_argument("--project", "-p")
    p.add_argument("--name", "-n")
    p.add_argument("--tag", "-t", action="append", dest="tags")
    p.add_argument("--notes")
    p.add_argument("--group", "-g")
    p.add_argument("--primary", help="METRIC:max or METRIC:min")
    p.add_argument("--resume")
    p.add_argument("--dir")
    p.add_argument("--console", action="store_true", help="capture print/tqdm into console.jsonl")
    p.add_argument("--system", action="store_true", help="sample system metrics (needs psutil)")
    p.add_argument("--mirror", help="ship the run live to s3://bucket/prefix (any fsspec URL)")
    p.add_argument("--mlflow", help="sync the run live to an MLflow server, http://host:5000")
    p.add_argument("config", nargs="*", help="key=value pairs")
    return p


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _init_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    config = {}
    for pair in args.config:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"expected key=value, got {pair!r}")
        config[key] = _literal(value)
    return dict(project=args.project, name=args.name, tags=args.tags, notes=args.notes, group=args.group,
                primary_metric=args.primary, resume=args.resume, dir=args.dir, config=config or None,
                capture_console=args.console, system_metrics=args.system, mirror=args.mirror,
                mlflow=args.mlflow)


@magics_class
class NbtrackerMagics(Magics):
    @line_cell_magic
    def nbtracker(self, line: str, cell: str | None = None) -> Any:
        """Track runs from a notebook. `%nbtracker help` (or `%nbtracker?`) lists the commands."""
        __tracebackhide__ = True  # noqa: F841 - a failing %%nbtracker run cell shows the user's frames
        try:
            argv = shlex.split(line)
        except ValueError as e:
            raise UsageError(str(e)) from None
        if cell is not None:
            if not argv or argv[0] != "run":
                raise UsageError("cell magic usage: %%nbtracker run [init options]")
            return self._run_cell(argv[1:], cell)
        command, rest = (argv[0], argv[1:]) if argv else ("help", [])
        handler = getattr(self, f"_cmd_{command}", None)
        if handler is None:
            raise UsageError(f"unknown command {command!r}\n\n{HELP}")
        try:
            return handler(rest)
        except _Done:
            return None
        except NbtrackerError as e:  # the command could not do its job: fail the cell, in one line
            raise UsageError(f"nbtracker: {e}") from None

    nbtracker.__doc__ = HELP

    def _cmd_help(self, argv: list[str]) -> None:
        print(HELP)

    def _cmd_init(self, argv: list[str]) -> run_module.Run:
        args = _init_parser("%nbtracker init").parse_args(argv)
        run = session.init(**_init_kwargs(args))
        print(f"nbtracker: run {run.name!r} ({run.id}) started in {run.dir}")
        return run

    def _cmd_finish(self, argv: list[str]) -> None:
        run = run_module.current_run()
        if run is None:
            print("nbtracker: no active run")
            return
        run.finish()
        print(f"nbtracker: run {run.name!r} ({run.id}) finished; files in {run.dir}")

    def _cmd_status(self, argv: list[str]) -> None:
        run = run_module.current_run()
        if run is None:
            print("nbtracker: no active run (start one with %nbtracker init)")
            return
        lines = [f"run      {run.name} ({run.id})  project {run.project}  status {run.status}",
                 f"steps    {run._rows} rows, next step {run.step}",
                 f"files    {run.dir}"]
        summary = run.summary.as_dict()
        if summary:
            lines.append("last     " + ", ".join(f"{k}={fmt_value(v)}" for k, v in list(summary.items())[:12]))
        state = _sessions.get(id(self.shell))
        for e in (state.executions if state else [])[-3:]:
            lines.append(f"cell     [{e['execution_count']}] {e['status']}")
        lines += _hidden_state_lines(run.dir)
        lines += [f"mirror   {line[len('mirror '):]}" for line in live_mirrors.status_lines(run)]
        print("\n".join(lines))

    def _cmd_runs(self, argv: list[str]) -> Any:
        p = _Parser(prog="%nbtracker runs")
        p.add_argument("--project", "-p")
        p.add_argument("--sort")
        p.add_argument("--desc", action="store_true")
        p.add_argument("--dir")
        args = p.parse_args(argv)
        found = session.runs(args.project, args.dir)
        if args.sort:
            found.sort(args.sort, descending=args.desc)
        return found

    def _cmd_code(self, argv: list[str]) -> None:
        run = run_module.current_run()
        path = find_run_dir(argv[0]) if argv else (run.dir if run else None)
        if path is None:
            raise UsageError("no active run: name one, e.g. %nbtracker code <run id>")
        code = path / "code" / "clean.py"
        if not code.exists():
            print(f"nbtracker: no captured code in {path}")
            return
        print(code.read_text(encoding="utf-8"))

    def _cmd_diff(self, argv: list[str]) -> None:
        if len(argv) != 2:
            raise UsageError("usage: %nbtracker diff RUN RUN")
        try:
            cli.main(["diff", *argv])
        except SystemExit:  # the CLI's own argument errors must not end up exiting the kernel
            raise UsageError("usage: %nbtracker diff RUN RUN") from None

    def _cmd_compare(self, argv: list[str]) -> None:
        p = _Parser(prog="%nbtracker compare")
        p.add_argument("runs", nargs="*", help="run ids or names (default: the runs of --project)")
        p.add_argument("--metric", "-m", action="append", help="metric to overlay (repeatable; "
                       "default: the primary metric)")
        p.add_argument("--project", "-p")
        p.add_argument("--dir")
        p.add_argument("--x", default="step", help="x axis: step, time or a metric name")
        p.add_argument("--log", action="store_true", help="log-scale y axis")
        args = p.parse_args(argv)
        targets: Any = args.runs or None
        if targets is None and not session.runs(args.project, args.dir):
            raise UsageError("no runs to compare: name them, e.g. %nbtracker compare RUN RUN --metric loss")
        view = session.compare(targets, args.metric, project=args.project, dir=args.dir, x=args.x,
                               log_y=args.log)
        _show(view)

    def _cmd_live(self, argv: list[str]) -> None:
        if len(argv) > 1:
            raise UsageError("usage: %nbtracker live [RUN]")
        if argv:
            _show(session.load(argv[0]))
            return
        run = run_module.current_run()
        if run is None:
            print("nbtracker: no active run (start one with %nbtracker init, or name a run: "
                  "%nbtracker live RUN)")
            return
        run.display()

    def _run_cell(self, argv: list[str], cell: str) -> Any:
        __tracebackhide__ = True  # noqa: F841 - IPython leaves this frame out of tracebacks
        try:
            args = _init_parser("%%nbtracker run").parse_args(argv)
        except _Done:
            return None
        # The cell's run does not end a run the notebook already has: that one is set aside
        # for the cell and is the current run again afterwards.
        outer = run_module.current_run()
        run_module._active = None
        try:
            try:
                run = session.init(**_init_kwargs(args))
            except NbtrackerError as e:
                raise UsageError(f"nbtracker: {e}") from None
            try:
                value = _execute_body(self.shell, argv, cell)
            except KeyboardInterrupt as e:
                run._set_error(e)
                run.finish("interrupted")
                raise
            except BaseException as e:
                run._set_error(e)
                run.finish("failed")
                raise
            run.finish()
            return value
        finally:
            if outer is not None and not outer._finished:
                run_module._active = outer

    @line_magic
    def track(self, line: str) -> None:
        """%track x y ...: after every cell in which a watched variable holds a new number, log it."""
        names = line.split()
        if not names:
            raise UsageError("usage: %track NAME [NAME ...]")
        state = _sessions[id(self.shell)]
        for name in names:
            if not name.isidentifier():
                raise UsageError(f"{name!r} is not a variable name")
            state.tracked.setdefault(name, None)
        print(f"nbtracker: tracking {', '.join(state.tracked)}")

    @line_magic
    def untrack(self, line: str) -> None:
        """%untrack [x ...]: stop watching these variables (all when none are named)."""
        state = _sessions[id(self.shell)]
        for name in line.split() or list(state.tracked):
            state.tracked.pop(name, None)


def _execute_body(shell: Any, argv: list[str], body: str) -> Any:
    """Run a cell magic's body the way IPython runs a cell: tracebacks point at the user's
    lines ("Cell In[n], line 2", with the source), and the value of a last expression is
    returned (so it is displayed as the cell's value)."""
    __tracebackhide__ = True  # noqa: F841
    header = "%%nbtracker " + " ".join(shlex.quote(a) for a in ["run", *argv])
    number = _cell_number(shell)
    # Cache the cell as the user wrote it, so line 2 of a traceback is line 2 of the cell.
    name = shell.compile.cache(f"{header}\n{body}", number, raw_code=f"{header}\n{body}")
    tree = shell.compile.ast_parse(shell.transform_cell(body), filename=name)
    ast.increment_lineno(tree, 1)
    tree = shell.transform_ast(tree)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
        ast.copy_location(last, last.body)
    exec(shell.compile(tree, name, "exec"), shell.user_global_ns, shell.user_ns)
    if last is not None:
        return eval(shell.compile(last, name, "eval"), shell.user_global_ns, shell.user_ns)
    return None


def _cell_number(shell: Any) -> int:
    """The execution count of the cell running now (IPython 9 counts up before it, 8 after)."""
    state = _sessions.get(id(shell))
    cell = getattr(state, "_cell", None)
    if cell is not None:
        return int(cell["execution_count"])
    import IPython

    return shell.execution_count - (1 if IPython.version_info[0] >= 9 else 0)


def _show(obj: Any) -> None:
    from IPython.display import display

    display(obj)


def load(shell: Any) -> None:
    """Register the magics and the cell hooks once per shell."""
    if id(shell) in _sessions:
        return
    recorder = CellSession(shell)
    shell.register_magics(NbtrackerMagics)
    recorder.register()
    _sessions[id(shell)] = recorder
    try:
        session.ensure_display(shell)
    except Exception as e:  # noqa: BLE001 - charts are a nicety; tracking works without them
        recorder.report("inline display setup", e)


def unload(shell: Any) -> None:
    """Remove exactly what load added."""
    recorder = _sessions.pop(id(shell), None)
    if recorder is None:
        return
    recorder.unregister()
    magics = shell.magics_manager.magics
    for kind, names in (("line", ("nbtracker", "track", "untrack")), ("cell", ("nbtracker",))):
        for name in names:
            magics[kind].pop(name, None)
    shell.magics_manager.registry.pop(NbtrackerMagics.__name__, None)
    session.remove_display(shell)



def _hidden_state_lines(run_dir: Any) -> list[str]:
    """What the code capture found the notebook file no longer says (docs/reproducibility.md)."""
    import json

    from .capture.hidden import summary_lines

    try:
        note = json.loads((run_dir / "code" / "source.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    hidden = summary_lines(note.get("hidden_state"))
    try:
        modules = json.loads((run_dir / "code" / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        modules = {}
    hidden += [f"{e['path']}: {e['note']}" for e in modules.get("edited_not_reloaded") or []]
    return [f"hidden   {line}" for line in hidden]
