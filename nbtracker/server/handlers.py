"""The HTTP API of the server extension: authenticated, read-only, never outside the run root.

Routes (under ``<base_url>/nbtracker/api``)::

    GET /runs                         the listing (?project, offset, limit; ?since=<generation>)
    GET /runs/<project>/<id>          one run: its document, effective status, what it holds
    GET /runs/<project>/<id>/metrics  series (?keys=<json list>, ?have=<json {key: points}>)
    GET /runs/<project>/<id>/cells    the cell timeline (cells.jsonl) with each cell's rows
    GET /runs/<project>/<id>/code     captured code: clean and history .py, source.json
    GET /runs/<project>/<id>/assets   checkpoints, saved files, images, text and console tails
    GET /runs/<project>/<id>/file     one file of the run (?path=<relative path>)

Paths come only from validated project names and run ids (``core.paths``) and relative paths
checked like the writer checks them (``core.blobs.check_relpath``); the resolved path must stay
under the run root and no component may be a symlink. Files are served with ``nosniff`` and,
unless they are raster images, as attachments, so nothing in a run directory can run script
in the Jupyter origin.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

from ..core.blobs import check_relpath, walk_files
from ..core.errors import NbtrackerError
from ..core.files import read_jsonl
from ..core.paths import RUN_FILE, check_project, check_run_id, find_root
from ..core.query import RunView, read_run_doc
from ..core.records import FILES_MANIFEST, OUTPUTS_MANIFEST, list_checkpoints, read_log, read_manifest
from .index import RunIndex, clean
from .series import SeriesCache

#: Raster image types served inline; anything else is a download.
INLINE = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
          ".webp": "image/webp"}
#: Lines of text.jsonl / console.jsonl sent with a run's assets (the newest).
TAIL = 500
#: Images listed per media key (the newest).
IMAGES_PER_KEY = 60
#: Largest code file sent (bytes).
MAX_CODE = 2_000_000


class Api:
    """What the handlers share: the root, the run listing and the series cache."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.index = RunIndex(root)
        self.series = SeriesCache()

    def run_dir(self, project: str, run_id: str) -> Path:
        """The run directory for a request, or ``LookupError`` (404) / ``PermissionError`` (403)."""
        try:
            check_project(project)
            check_run_id(run_id)
        except NbtrackerError as e:
            raise PermissionError(str(e)) from None
        run_dir = self.root / project / run_id
        for node in (self.root / project, run_dir):
            try:
                if stat.S_ISLNK(os.lstat(node).st_mode):
                    raise PermissionError(f"{node.name} is a symlink")
            except FileNotFoundError:
                raise LookupError(f"no run {project}/{run_id}") from None
        if not (run_dir / RUN_FILE).is_file():
            raise LookupError(f"no run {project}/{run_id}")
        _inside(run_dir, self.root)
        return run_dir

    def run_file(self, run_dir: Path, rel: str) -> Path:
        try:
            rel = check_relpath(rel, "path")
        except NbtrackerError as e:
            raise PermissionError(str(e)) from None
        node = run_dir
        for part in rel.split("/"):
            node = node / part
            try:
                mode = os.lstat(node).st_mode
            except FileNotFoundError:
                raise LookupError(f"no file {rel}") from None
            if stat.S_ISLNK(mode):
                raise PermissionError(f"{rel} goes through a symlink")
        if not stat.S_ISREG(mode):
            raise LookupError(f"{rel} is not a file")
        _inside(node, run_dir)
        return node


def _inside(path: Path, root: Path) -> None:
    real, base = os.path.realpath(path), os.path.realpath(root)
    if real != base and not real.startswith(base.rstrip(os.sep) + os.sep):
        raise PermissionError("outside the run root")


# -- what each route returns (plain functions: tested without a server too) -------------------
def run_document(api: Api, run_dir: Path) -> dict[str, Any]:
    view = RunView(run_dir, read_run_doc(run_dir, warn=False), validated=True)
    doc = view.as_dict()
    doc.pop("dir", None)
    doc["key"] = f"{run_dir.parent.name}/{run_dir.name}"
    doc["has"] = {name: (run_dir / name).exists() for name in
                  ("cells.jsonl", "code", "checkpoints", FILES_MANIFEST, OUTPUTS_MANIFEST, "media",
                   "text.jsonl", "console.jsonl", "system.jsonl")}
    return clean(doc)


def cells(run_dir: Path) -> dict[str, Any]:
    return clean({"cells": read_jsonl(run_dir / "cells.jsonl")})


def code(run_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("clean.py", "history.py"):
        path = run_dir / "code" / name
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode) or path.stat().st_size > MAX_CODE:
                out[name] = None
                continue
            out[name] = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            out[name] = None
    for name, key in (("source.json", "source"), ("modules.json", "modules"), ("git.json", "git")):
        try:
            out[key] = json.loads((run_dir / "code" / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            out[key] = None
    if isinstance(out["modules"], dict):          # local paths of the machine: not needed here
        for m in out["modules"].get("modules") or []:
            m.pop("source", None)
    return clean(out)


def assets(run_dir: Path) -> dict[str, Any]:
    ckpts = [{"id": c.id, "step": c.step, "time": c.time, "metrics": c.metrics,
              "files": [{"path": e["path"], "size": e.get("size")} for e in c.manifest if "sha256" in e]}
             for c in list_checkpoints(run_dir)]
    files = [{"path": name, **{k: v for k, v in meta.items() if k in ("size", "time", "policy")}}
             for name, meta in read_manifest(run_dir, FILES_MANIFEST).items()]
    outputs = [{"path": name, **{k: v for k, v in meta.items() if k in ("size", "time")}}
               for name, meta in read_manifest(run_dir, OUTPUTS_MANIFEST).items()]
    images: dict[str, list[dict[str, Any]]] = {}
    media = run_dir / "media"
    if media.is_dir() and not media.is_symlink():
        for rel, _, st in walk_files(media):
            if not stat.S_ISREG(st.st_mode) or Path(rel).suffix.lower() not in INLINE:
                continue
            key, _, fname = rel.rpartition("/")
            step = fname.split("-", 1)[0]
            images.setdefault(key, []).append({"path": f"media/{rel}", "step": int(step) if step.isdigit() else None})
        for key, items in images.items():
            items.sort(key=lambda i: (i["step"] is None, i["step"] or 0, i["path"]))
            images[key] = items[-IMAGES_PER_KEY:]
    console = [{"time": r.get("time"), "stream": r.get("stream"), "cell": r.get("cell"), "line": line}
               for r in read_log(run_dir, "console.jsonl") for line in r.get("lines") or ()]
    return clean({"checkpoints": ckpts, "files": files, "outputs": outputs, "images": images,
                  "text": read_log(run_dir, "text.jsonl")[-TAIL:], "console": console[-TAIL:]})


# -- tornado --------------------------------------------------------------------------------------
def setup(serverapp: Any) -> None:
    from jupyter_server.utils import url_path_join

    root, why = find_root(cwd=serverapp.root_dir)
    # Kernels this server starts inherit its environment: tell them the frontend it serves
    # draws nbtracker charts (display/frontend.py; the extension's answer overrides this hint).
    os.environ.setdefault("NBTRACKER_RENDERER", "jupyterlab")
    api = Api(root)
    base = url_path_join(serverapp.web_app.settings["base_url"], "nbtracker", "api")
    run = r"/runs/(?P<project>[^/]+)/(?P<run_id>[^/]+)"
    h = _handlers()
    serverapp.web_app.add_handlers(".*$", [
        (base + r"/runs/?", h["runs"], {"api": api}),
        (base + run + r"/?", h["run"], {"api": api}),
        (base + run + r"/metrics", h["metrics"], {"api": api}),
        (base + run + r"/cells", h["cells"], {"api": api}),
        (base + run + r"/code", h["code"], {"api": api}),
        (base + run + r"/assets", h["assets"], {"api": api}),
        (base + run + r"/file", h["file"], {"api": api}),
    ])
    # Read every run.json once in the background now, so the Runs panel's first listing is a
    # refresh (one stat per run), not 10,000 JSON parses while the user waits.
    threading.Thread(target=_warm, args=(api, serverapp.log), name="nbtracker-index", daemon=True).start()
    serverapp.log.info("nbtracker server extension loaded: runs under %s (%s)", root, why)


def _warm(api: Api, log: Any) -> None:
    try:
        api.index.refresh(force=True)
    except Exception as e:  # noqa: BLE001 - a request will retry and report
        log.warning("nbtracker: could not list the runs under %s: %s", api.root, e)


def _handlers() -> dict[str, type]:
    import tornado.web
    from jupyter_server.base.handlers import APIHandler

    class Base(APIHandler):
        def initialize(self, api: Api) -> None:
            self.api = api

        def reply(self, obj: Any) -> None:
            self.set_header("Content-Type", "application/json")
            self.set_header("Cache-Control", "no-store")
            self.finish(json.dumps(obj, allow_nan=False, separators=(",", ":")))

        def resolve(self, project: str, run_id: str) -> Path:
            try:
                return self.api.run_dir(project, run_id)
            except PermissionError as e:
                raise tornado.web.HTTPError(403, reason=_reason(e)) from None
            except LookupError as e:
                raise tornado.web.HTTPError(404, reason=_reason(e)) from None

        def int_arg(self, name: str, default: int | None, lo: int, hi: int) -> int | None:
            raw = self.get_argument(name, None)
            if raw is None:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise tornado.web.HTTPError(400, reason=f"{name} must be an integer") from None
            if not lo <= value <= hi:
                raise tornado.web.HTTPError(400, reason=f"{name} must be in [{lo}, {hi}]")
            return value

        def json_arg(self, name: str, kind: type) -> Any:
            raw = self.get_argument(name, None)
            if raw is None:
                return None
            try:
                value = json.loads(raw)
            except ValueError:
                raise tornado.web.HTTPError(400, reason=f"{name} must be JSON") from None
            if not isinstance(value, kind):
                raise tornado.web.HTTPError(400, reason=f"{name} must be a JSON {kind.__name__}")
            return value

    class Runs(Base):
        @tornado.web.authenticated
        def get(self) -> None:
            project = self.get_argument("project", None) or None
            if project is not None:
                try:
                    check_project(project)
                except NbtrackerError as e:
                    raise tornado.web.HTTPError(400, reason=_reason(e)) from None
            self.reply(self.api.index.page(project, offset=self.int_arg("offset", 0, 0, 10**9),
                                           limit=self.int_arg("limit", 500, 1, 20_000),
                                           since=self.int_arg("since", None, 0, 10**12)))

    class Run(Base):
        @tornado.web.authenticated
        def get(self, project: str, run_id: str) -> None:
            run_dir = self.resolve(project, run_id)
            try:
                self.reply(run_document(self.api, run_dir))
            except NbtrackerError as e:
                raise tornado.web.HTTPError(404, reason=_reason(e)) from None

    class Metrics(Base):
        @tornado.web.authenticated
        def get(self, project: str, run_id: str) -> None:
            run_dir = self.resolve(project, run_id)
            keys = self.json_arg("keys", list)
            have = self.json_arg("have", dict) or {}
            if keys is not None and not all(isinstance(k, str) for k in keys):
                raise tornado.web.HTTPError(400, reason="keys must be a list of metric names")
            if not all(isinstance(v, int) and v >= 0 for v in have.values()):
                raise tornado.web.HTTPError(400, reason="have must map metric names to point counts")
            t0 = None
            try:
                t0 = read_run_doc(run_dir, warn=False).get("start_time")
            except NbtrackerError:
                pass
            rs = self.api.series.get(run_dir)
            with rs.lock:
                self.reply(rs.payload(keys, have, t0))

    class Cells(Base):
        @tornado.web.authenticated
        def get(self, project: str, run_id: str) -> None:
            self.reply(cells(self.resolve(project, run_id)))

    class Code(Base):
        @tornado.web.authenticated
        def get(self, project: str, run_id: str) -> None:
            self.reply(code(self.resolve(project, run_id)))

    class Assets(Base):
        @tornado.web.authenticated
        def get(self, project: str, run_id: str) -> None:
            self.reply(assets(self.resolve(project, run_id)))

    class File(Base):
        @tornado.web.authenticated
        def get(self, project: str, run_id: str) -> None:
            run_dir = self.resolve(project, run_id)
            # the raw argument: tornado's get_argument turns control characters (NUL) into
            # spaces, and a path with a NUL must be refused, not looked up under another name
            raw = (self.request.query_arguments.get("path") or [b""])[-1]
            try:
                path = self.api.run_file(run_dir, raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise tornado.web.HTTPError(403, reason="path is not UTF-8") from None
            except PermissionError as e:
                raise tornado.web.HTTPError(403, reason=_reason(e)) from None
            except LookupError as e:
                raise tornado.web.HTTPError(404, reason=_reason(e)) from None
            suffix = path.suffix.lower()
            self.set_header("X-Content-Type-Options", "nosniff")
            self.set_header("Content-Security-Policy", "default-src 'none'; sandbox")
            ctype = INLINE.get(suffix, "application/octet-stream")
            if suffix not in INLINE:
                self.set_header("Content-Disposition", "attachment")
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    self.write(chunk)
            self.finish(set_content_type=ctype)

    return {"runs": Runs, "run": Run, "metrics": Metrics, "cells": Cells, "code": Code,
            "assets": Assets, "file": File}


def _reason(e: BaseException) -> str:
    """An HTTP reason phrase: one line of printable ASCII."""
    text = " ".join(str(e).split())
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)[:200]
