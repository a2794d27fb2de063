"""The ``nbtracker`` command: list, show, diff, export, check out and remove runs; models,
artifacts and the content store's gc (a thin shell over the API)."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

from ._version import __version__
from .core.errors import NbtrackerError
from .core.files import read_jsonl
from .core.paths import METRICS_FILE, find_root, is_url, resolve_root
from .core.query import RunView, find_run_dir, runs
from .core.records import best_checkpoint, find_checkpoint, get_model, list_artifacts, list_models
from .display.text import flatten_config, fmt_bytes, fmt_duration, fmt_time, fmt_value, render, runs_columns, term

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _parser() -> Any:
    import argparse

    p = argparse.ArgumentParser(prog="nbtracker", description="Local-first experiment tracker: inspect runs.")
    p.add_argument("--version", action="version", version=f"nbtracker {__version__}")
    p.add_argument("--dir", "--root", dest="dir",
                   help="run root (default: `nbtracker root` says which and why); a mirror URL "
                        "(s3://bucket/prefix) reads the runs there, read-only")
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

    co = sub.add_parser("checkout", help="restore a run's captured code and a checkpoint's files")
    co.add_argument("run")
    co.add_argument("--project", "-p")
    co.add_argument("--checkpoint", "-c", default=None, metavar="ID",
                    help="checkpoint id or prefix, 'best' or 'latest' (default: best if the run "
                         "has a primary metric, else latest)")
    co.add_argument("--output", "-o", metavar="DIR", help="folder to write (default: ./checkout-<run id>)")

    rp = sub.add_parser("replay", help="re-run a run's captured code in a fresh kernel and compare its metrics "
                                       "(exit 0 reproduced, 1 differs, 2 could not run)")
    rp.add_argument("run")
    rp.add_argument("--project", "-p")
    rp.add_argument("--exact", action="store_true",
                    help="every execution in its original order (code/history.ipynb), not the clean version")
    rp.add_argument("--kernel", default="python3", help="kernel name (default python3)")
    rp.add_argument("--timeout", type=float, default=600.0, metavar="S", help="seconds per cell (default 600)")
    rp.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance for 'close' (default 1e-6)")
    rp.add_argument("--until", type=int, metavar="CELL", help="stop after the cell with this execution count")
    rp.add_argument("--json", action="store_true", help="print the report as JSON")

    sy = sub.add_parser("sync", help="ship runs to a mirror: object storage (s3://...) or an MLflow server "
                                     "(mlflow+http://...); resumable, uploads only what is missing")
    sy.add_argument("runs", nargs="*", metavar="RUN")
    sy.add_argument("--all", action="store_true", help="every run under the root (of --project)")
    sy.add_argument("--project", "-p")
    sy.add_argument("--to", required=True, metavar="URL",
                    help="s3://bucket/prefix (any fsspec URL) or mlflow+http://host:port")
    sy.add_argument("--json", action="store_true", help="print one JSON object per run")

    models = sub.add_parser("models", help="registered models and their versions")
    models.add_argument("name", nargs="?")
    models.add_argument("--json", action="store_true")

    arts = sub.add_parser("artifacts", help="artifact versions")
    arts.add_argument("--type")
    arts.add_argument("--json", action="store_true")

    gc = sub.add_parser("gc", help="delete stored contents no run, artifact or model uses")
    gc.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    gc.add_argument("--grace", type=float, default=3600.0, metavar="SECONDS",
                    help="keep contents younger than this (default 3600: a copy may be in progress)")

    rm = sub.add_parser("rm", help="delete runs (stored contents other runs use are never touched)")
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
        print(f"no runs under {term(args.dir if is_url(args.dir) else resolve_root(args.dir))}"
              + (f" in project {term(repr(args.project))}" if args.project else ""))
    else:
        header, rows = runs_columns(found)
        # (not for a mirror: a run's checkpoints would fetch the whole run)
        checkpoints = [] if is_url(args.dir) else [r.checkpoints for r in found]
        if any(checkpoints):   # Keepsake's ls: how many checkpoints, and the best one
            header += ["ckpts", "best ckpt"]
            for row, run, cps in zip(rows, found, checkpoints):
                best = best_checkpoint(cps, run.primary_metric)
                row += [str(len(cps)), best.id if best else "-"]
        print(render(header, rows))
    for path, reason in found.unreadable:
        print(f"unreadable  {term(path.parent.name)}/{term(path.name)}  {term(reason)}")
    return EXIT_OK


def cmd_show(args: Any) -> int:
    run = _view(args.run, args)
    folded = ("checkpoints", "media", "files", "outputs")   # listed by what they hold, below
    files = sorted(str(p.relative_to(run.dir)) for p in run.dir.rglob("*")
                   if p.is_file() and not p.name.startswith(".")
                   and p.relative_to(run.dir).parts[0] not in folded)
    checkpoints = run.checkpoints
    if args.json:
        print(json.dumps({**run.as_dict(), "run_files": files,
                          "checkpoints": [c.as_dict() for c in checkpoints],
                          "saved_files": run.files, "outputs": run.outputs, "artifacts": run.artifacts,
                          "references": run.references, "media": len(run.media())}, indent=1))
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
    lines.append("run files:")
    lines += [f"  {t(f)}" for f in files]
    lines += _assets_lines(run, checkpoints)
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


def cmd_sync(args: Any) -> int:
    from .sync import ship

    if not args.runs and not args.all:
        print("nbtracker: name the runs to sync, or pass --all", file=sys.stderr)
        return EXIT_USAGE
    if args.runs and args.all:
        print("nbtracker: give run names or --all, not both", file=sys.stderr)
        return EXIT_USAGE
    done = ship(args.runs or None, to=args.to, all=args.all, project=args.project, dir=args.dir)
    failed = 0
    for r in done:
        if args.json:
            print(json.dumps(r.as_dict()))
        elif r.error:
            print(f"{term(r.project)}/{r.id}  failed: {term(r.error)}", file=sys.stderr)
        else:
            what = (f"{r.uploads} uploads ({fmt_bytes(r.uploaded_bytes)}), {r.rows} rows" if r.uploads or r.rows
                    else "up to date")
            print(f"{term(r.project)}/{r.id}  {term(r.name or '')}  {what}; {r.requests} requests, {r.seconds:.1f} s")
            for note in r.notes:
                print(f"  note: {term(note)}")
        failed += bool(r.error)
    if not done:
        print("no runs to sync" + (f" in project {term(repr(args.project))}" if args.project else ""))
    return EXIT_FAIL if failed else EXIT_OK


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


def _assets_lines(run: RunView, checkpoints: list[Any]) -> list[str]:
    t = term
    lines = []
    if checkpoints:
        best = run.best_checkpoint()
        lines.append(f"checkpoints: {len(checkpoints)}" + (f" (best {best.id})" if best else ""))
        for c in checkpoints:
            metrics = " ".join(f"{t(k)}={fmt_value(v)}" for k, v in list(c.metrics.items())[:4])
            lines.append(f"  {'*' if best is c or (best and best.id == c.id) else ' '} {c.id}  step "
                         f"{fmt_value(c.step)}  {metrics}  {len(c.files)} file(s), {fmt_bytes(c.size)}")
    for title, mapping in (("saved files", run.files), ("outputs", run.outputs)):
        if mapping:
            lines.append(f"{title}: {len(mapping)}")
            lines += [f"  {t(k)}  {fmt_bytes(v.get('size') or 0)}  ({t(v.get('policy', ''))})"
                      for k, v in sorted(mapping.items())]
    if run.artifacts:
        lines.append("artifacts:")
        for e in run.artifacts:
            other = e.get("run") or e.get("producer") or {}
            who = f" by {t(other.get('project'))}/{t(other.get('id'))}" if e.get("event") == "used_by" else ""
            lines.append(f"  {t(e.get('event'))}  {t(e.get('artifact'))}{who}")
    if run.references:
        lines.append("references:")
        for r in run.references:
            where = r.get("uri") or r.get("path") or ""
            fp = r.get("fingerprint")
            lines.append(f"  {t(r.get('kind'))}  {t(r.get('name'))}  {t(where)}"
                         + (f"  ({fp['files']} files, {fmt_bytes(fp['bytes'])})" if fp else ""))
    media = run.media()
    if media:
        kinds: dict[str, int] = {}
        for m in media:
            kinds[m.get("_type", "?")] = kinds.get(m.get("_type", "?"), 0) + 1
        lines.append("media: " + ", ".join(f"{n} {k}(s)" for k, n in sorted(kinds.items())))
    return lines


def cmd_checkout(args: Any) -> int:
    run = _view(args.run, args)
    out = Path(args.output or f"checkout-{run.id}")
    if out.exists() and any(out.iterdir()):
        raise NbtrackerError(f"{out} is not empty; choose a new folder with -o")
    written = []
    code = run.dir / "code"
    if code.is_dir():
        for p in sorted(code.rglob("*")):
            if p.is_file() and not p.is_symlink():
                dest = out / "code" / p.relative_to(code)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(p, dest)
                written.append(dest)
    modules = code / "modules"
    if modules.is_dir():   # captured local modules next to clean.py / clean.ipynb, importable from there
        for p in sorted(modules.rglob("*.py")):
            rel = p.relative_to(modules)
            if rel.parts[0] == ".versions" or p.is_symlink():
                continue
            dest = out / "code" / rel
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(p, dest)
                written.append(dest)
    cps = run.checkpoints
    if cps:
        ref = args.checkpoint or ("best" if run.best_checkpoint() else "latest")
        cp = find_checkpoint(run.dir, ref)
        cp.checkout(out)
        print(f"checkpoint {cp.id} (step {fmt_value(cp.step)}): {len(cp.files)} file(s) -> {term(out)}")
    elif args.checkpoint:
        raise NbtrackerError(f"run {run.id} has no checkpoints")
    print(f"code: {len(written)} file(s) -> {term(out / 'code')}" if written else "code: none captured")
    return EXIT_OK


def cmd_replay(args: Any) -> int:
    from .rerun import replay

    run = _view(args.run, args)
    report = replay(run, exact=args.exact, kernel=args.kernel, timeout=args.timeout, rtol=args.rtol,
                    until=args.until)
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    else:   # term() per line: stored text is made terminal-safe, the report's own newlines kept
        print("\n".join(term(line) for line in report.text().splitlines()))
    return report.exit_code


def cmd_models(args: Any) -> int:
    root = resolve_root(args.dir)
    found = [get_model(root, args.name)] if args.name else list_models(root)
    if args.json:
        print(json.dumps([{"name": m.name, "versions": [v.as_dict() for v in m.versions]} for m in found], indent=1))
        return EXIT_OK
    if not found:
        print(f"no models under {term(root)}")
    rows = []
    for m in found:
        for v in m.versions:
            s = v.source
            what = (f"checkpoint {s.get('project')}/{s.get('run')}/{s.get('id')}" if s.get("kind") == "checkpoint"
                    else f"artifact {s.get('ref')}")
            rows.append([m.name, f"v{v.version}", fmt_time(v.time), what, v.notes or ""])
    if rows:
        print(render(["model", "version", "registered", "points at", "notes"], rows))
    return EXIT_OK


def cmd_artifacts(args: Any) -> int:
    found = list_artifacts(resolve_root(args.dir), args.type)
    if args.json:
        print(json.dumps([a.as_dict() for a in found], indent=1))
        return EXIT_OK
    rows = [[a.ref, a.type or "", ", ".join(a.aliases), str(len(a.files)), fmt_bytes(a.size),
             f"{a.run.get('project')}/{a.run.get('id')}", fmt_time(a.created_time)] for a in found]
    print(render(["artifact", "type", "aliases", "files", "size", "run", "created"], rows) if rows
          else f"no artifacts under {term(resolve_root(args.dir))}")
    return EXIT_OK


def cmd_gc(args: Any) -> int:
    from .assets.gc import gc

    report = gc(resolve_root(args.dir), dry_run=args.dry_run, grace=args.grace)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{report['blobs']} stored contents, {report['kept']} in use or recent; {verb} "
          f"{report['deleted']} ({fmt_bytes(report['bytes_freed'])}) and {report['leftovers']} "
          "leftover(s) of interrupted copies")
    return EXIT_OK


_COMMANDS = {"root": cmd_root, "ls": cmd_ls, "show": cmd_show, "diff": cmd_diff, "export": cmd_export,
             "rm": cmd_rm, "checkout": cmd_checkout, "models": cmd_models, "artifacts": cmd_artifacts,
             "gc": cmd_gc, "replay": cmd_replay, "sync": cmd_sync}


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
