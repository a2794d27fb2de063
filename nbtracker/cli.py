"""The ``nbtracker`` command: list, show, diff, export and remove runs (a thin shell over the API)."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import sys
from typing import Any, Sequence

from ._version import __version__
from .core.errors import NbtrackerError
from .core.files import read_jsonl
from .core.paths import METRICS_FILE, find_root, resolve_root
from .core.query import RunView, find_run_dir, runs
from .display.text import flatten_config, fmt_duration, fmt_time, fmt_value, render, runs_columns, term

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _parser() -> Any:
    import argparse

    p = argparse.ArgumentParser(prog="nbtracker", description="Local-first experiment tracker: inspect runs.")
    p.add_argument("--version", action="version", version=f"nbtracker {__version__}")
    p.add_argument("--dir", help="run root (default: `nbtracker root` says which and why)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    root = sub.add_parser("root", help="print the run root and which rule chose it")
    root.add_argument("--json", action="store_true")

    ls = sub.add_parser("ls", help="list runs, newest first")
    ls.add_argument("--project", "-p")
    ls.add_argument("--sort", metavar="KEY", help="sort by a summary, config or meta key")
    order = ls.add_mutually_exclusive_group()
    order.add_argument("--desc", action="store_true", help="sort descending")
    order.add_argument("--asc", action="store_true", help="sort ascending (default)")
    ls.add_argument("--status", action="append", help="only runs with this status (repeatable)")
    ls.add_argument("--tag", action="append", help="only runs carrying this tag (repeatable)")
    ls.add_argument("--json", action="store_true", help="print a JSON array of run documents")

    show = sub.add_parser("show", help="one run: metadata, config, summary, files")
    show.add_argument("run", help="run id, unique id prefix, unique name, or run directory")
    show.add_argument("--project", "-p")
    show.add_argument("--json", action="store_true")

    diff = sub.add_parser("diff", help="two runs side by side: tags, config, summary")
    diff.add_argument("runs", nargs=2, metavar="RUN")
    diff.add_argument("--project", "-p")
    diff.add_argument("--all", action="store_true", help="also show keys that are equal")
    diff.add_argument("--json", action="store_true")

    export = sub.add_parser("export", help="a run's metric history as CSV or JSON Lines")
    export.add_argument("run")
    export.add_argument("--project", "-p")
    export.add_argument("--format", "-f", choices=("csv", "jsonl"), default="csv",
                        help="csv (default) or jsonl")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")

    rm = sub.add_parser("rm", help="delete runs")
    rm.add_argument("runs", nargs="+", metavar="RUN")
    rm.add_argument("--project", "-p")
    rm.add_argument("--yes", "-y", action="store_true", help="do not ask")
    rm.add_argument("--force", action="store_true", help="also delete runs whose writer is alive")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 failed, 2 usage)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:   # bare `nbtracker`: say what it can do
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _safe_streams()
    try:
        return int(_COMMANDS[args.command](args) or EXIT_OK)
    except NbtrackerError as e:
        print(f"nbtracker: {term(e)}", file=sys.stderr)
        return EXIT_FAIL
    except BrokenPipeError:  # `nbtracker ls | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except OSError as e:
        print(f"nbtracker: {term(e)}", file=sys.stderr)
        return EXIT_FAIL


def _safe_streams() -> None:
    """Stored text may hold lone surrogates; printing must never fail on them."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[attr-defined]
        except (AttributeError, ValueError):
            pass


def cmd_root(args: Any) -> int:
    root, why = find_root(args.dir)
    if args.json:
        print(json.dumps({"root": str(root), "why": why, "exists": root.is_dir()}))
    else:
        print(term(root))
        print(f"  because: {term(why)}" + ("" if root.is_dir() else " (not created yet: the first run creates it)"))
    return EXIT_OK


def _view(ref: str, args: Any) -> RunView:
    return RunView.open(find_run_dir(ref, args.dir, args.project))


def cmd_ls(args: Any) -> int:
    found = runs(args.project, args.dir, tags=args.tag, status=args.status)
    if args.sort:
        found.sort(args.sort, descending=args.desc)
    if args.json:
        print(json.dumps(found.to_records(), indent=1))
        return EXIT_OK
    if not found:
        print(f"no runs under {term(resolve_root(args.dir))}"
              + (f" in project {term(repr(args.project))}" if args.project else ""))
    else:
        print(render(*runs_columns(found)))
    for path, reason in found.unreadable:
        print(f"unreadable  {term(path.parent.name)}/{term(path.name)}  {term(reason)}")
    return EXIT_OK


def cmd_show(args: Any) -> int:
    run = _view(args.run, args)
    files = sorted(str(p.relative_to(run.dir)) for p in run.dir.rglob("*")
                   if p.is_file() and not p.name.startswith("."))
    if args.json:
        print(json.dumps({**run.as_dict(), "files": files}, indent=1))
        return EXIT_OK
    best = run.best
    t = term
    error = run._doc.get("error")
    lines = [
        f"run       {t(run.name)} ({t(run.id)})",
        f"project   {t(run.project)}" + (f"  group {t(run.group)}" if run.group else ""),
        f"status    {run.status}" + (f"  ({t(error['type'])}: {t(error['message'])})" if error else ""),
        f"started   {fmt_time(run.start_time)}  duration {fmt_duration(run.duration)}  rows {run.steps}",
        f"dir       {t(run.dir)}",
    ]
    if run.tags:
        lines.append(f"tags      {', '.join(map(t, run.tags))}")
    if run.notes:
        lines.append(f"notes     {t(run.notes)}")
    if best:
        lines.append(f"primary   {t(best[0])} ({run.primary_metric[1]}): best {fmt_value(best[1])} at step {fmt_value(best[2])}")
    for title, mapping in (("config", flatten_config(run.config)), ("summary", run.summary)):
        lines.append(f"{title}:" if mapping else f"{title}: (empty)")
        lines += [f"  {t(k)} = {fmt_value(v)}" for k, v in mapping.items()]
    lines.append("files:")
    lines += [f"  {t(f)}" for f in files]
    print("\n".join(lines))
    return EXIT_OK


def cmd_diff(args: Any) -> int:
    a, b = (_view(r, args) for r in args.runs)
    sections = {
        "tags": ({t: True for t in a.tags}, {t: True for t in b.tags}),
        "config": (flatten_config(a.config), flatten_config(b.config)),
        "summary": (a.summary, b.summary),
    }
    result: dict[str, list[dict[str, Any]]] = {}
    for name, (left, right) in sections.items():
        keys = list(dict.fromkeys([*left, *right]))
        result[name] = [{"key": k, "a": left.get(k), "b": right.get(k), "differs": not _same(left.get(k), right.get(k))}
                        for k in keys]
    if args.json:
        print(json.dumps({"a": a.id, "b": b.id, **result}, indent=1))
        return EXIT_OK
    header = ["", "key", f"{a.name} ({a.id})", f"{b.name} ({b.id})"]
    for name, rows in result.items():
        shown = [r for r in rows if r["differs"] or args.all]
        print(f"{name}: {sum(r['differs'] for r in rows)} of {len(rows)} differ")   # cells escaped by render
        if shown:
            table = [["*" if r["differs"] else " ", r["key"], fmt_value(r["a"]), fmt_value(r["b"])] for r in shown]
            print("\n".join("  " + line for line in render(header, table).splitlines()))
    return EXIT_OK


def cmd_export(args: Any) -> int:
    run = _view(args.run, args)
    rows = read_jsonl(run.dir / METRICS_FILE)
    out = (open(args.output, "w", newline="", encoding="utf-8", errors="backslashreplace")
           if args.output else sys.stdout)
    try:
        if args.format == "jsonl":
            for row in rows:
                out.write(json.dumps(row) + "\n")
        else:
            columns = list(dict.fromkeys(["_step", "_time", *(k for row in rows for k in row)]))
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(columns)
            for row in rows:
                writer.writerow([_csv_cell(row.get(c)) for c in columns])
    finally:
        if out is not sys.stdout:
            out.close()
    return EXIT_OK


def cmd_rm(args: Any) -> int:
    root = resolve_root(args.dir).resolve()
    targets = [_view(r, args) for r in args.runs]
    for run in targets:
        path = run.dir.resolve()
        if root not in path.parents or path.parent.parent != root:
            raise NbtrackerError(f"refusing to delete {path}: it is not a run directory under {root}")
        if run.status == "running" and not args.force:
            raise NbtrackerError(f"run {run.id} is running (its process is alive); use --force to delete it anyway")
    if not args.yes:
        if not sys.stdin.isatty():
            print("nbtracker: rm needs --yes when not run in a terminal", file=sys.stderr)
            return EXIT_USAGE
        names = ", ".join(f"{term(r.name)} ({term(r.id)})" for r in targets)
        if input(f"delete {len(targets)} run(s): {names}? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return EXIT_FAIL
    for run in targets:
        shutil.rmtree(run.dir)
        print(f"deleted {term(run.project)}/{term(run.id)} ({term(run.name)})")
    return EXIT_OK


_COMMANDS = {"root": cmd_root, "ls": cmd_ls, "show": cmd_show, "diff": cmd_diff, "export": cmd_export, "rm": cmd_rm}


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")  # what pandas.read_csv reads
    return v


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    return x == y and type(x) is type(y)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
