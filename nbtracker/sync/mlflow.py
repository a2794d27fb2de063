"""Syncing runs to an MLflow tracking server through its documented REST API (docs/teams.md).

Why REST and not ``mlflow-skinny``: the REST API (``/api/2.0/mlflow/...`` and the artifact
proxy ``/api/2.0/mlflow-artifacts/...``) is what MLflow's own client speaks, it is stable and
documented, and it needs nothing but the standard library's ``urllib``. ``mlflow-skinny`` pulls
in about 30 packages (protobuf, opentelemetry, databricks-sdk, sqlparse, ...) and takes about
a second to import; a tracker that sits in every notebook should not pay that to send JSON.

Mapping (one nbtracker run -> one MLflow run, found again by its ``nbtracker.id`` tag):

- experiment = the project (created when missing); run name = the run's name;
- tags: ``nbtracker.id``, ``nbtracker.project``, each nbtracker tag (also all of them as
  ``nbtracker.tags``), the group, the primary metric and its best value, notes as
  ``mlflow.note.content``;
- params: the config flattened with ``.``; values over 6,000 characters are cut and listed in
  the ``nbtracker.truncated_params`` tag; a value changed after it was sent cannot be changed
  in MLflow (params are immutable there) and is listed in ``nbtracker.changed_params``;
- metrics: every numeric value of ``metrics.jsonl`` with its ``_step`` and ``_time``, in
  batches of at most 1,000 (the server's limit). Each batch also sets the tag
  ``nbtracker.metrics_offset`` (how many bytes of ``metrics.jsonl`` MLflow has), in the same
  request, so a sync that grew or was interrupted sends exactly the rows after it;
- status: finished -> FINISHED, failed and crashed -> FAILED, interrupted -> KILLED;
- artifacts: the captured code under ``code/``, ``run.json`` under ``nbtracker/``, checkpoint
  files under ``checkpoints/<id>/``; each uploaded when MLflow lacks it or it changed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.blobs import BlobStore
from ..core.query import RunView
from ..core.records import list_checkpoints
from .local import SEGMENT_MAX, complete_bytes
from .objstore import MirrorError, Stats

MAX_METRICS = 1000
MAX_PARAMS = 100
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250
_STATUS = {"finished": "FINISHED", "failed": "FAILED", "crashed": "FAILED", "interrupted": "KILLED"}
_OFFSET_TAG = "nbtracker.metrics_offset"
_KEY_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-. /")


@dataclass
class MlflowState:
    run_id: str = ""
    experiment_id: str = ""
    artifact_root: str | None = None
    offset: int = 0
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)   # path -> md5 or size (as MLflow lists it)
    marks: dict[str, tuple[int, int]] = field(default_factory=dict)
    status: str = "RUNNING"
    notes: list[str] = field(default_factory=list)


def _key(key: str) -> str:
    """An MLflow-valid name (letters, digits, ``_-. /``, at most 250 characters)."""
    clean = "".join(c if c in _KEY_OK else "_" for c in key)[:MAX_KEY]
    return clean or "_"


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(config, dict):
        for k, v in config.items():
            name = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                out.update(flatten(v, name))
            else:
                out[name] = v
    return out


def _param_value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


class MlflowTarget:
    """Syncs run directories to one MLflow tracking server."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.api = self.url[len("mlflow+"):]
        self.timeout = timeout
        self._headers = {"Content-Type": "application/json"}
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        elif user and password:
            self._headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self._experiments: dict[str, str] = {}

    # -- HTTP ----------------------------------------------------------------------------------
    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
             ctype: str | None = None, stats: Stats | None = None, ok: tuple[str, ...] = ()) -> Any:
        """One REST call, retried on 429/5xx and connection errors; an error response whose
        ``error_code`` is in ``ok`` is returned as ``{"error_code": ...}``."""
        data = raw if raw is not None else (json.dumps(body, allow_nan=False).encode() if body is not None else None)
        headers = dict(self._headers)
        if ctype:
            headers["Content-Type"] = ctype
        delay = 0.5
        for attempt in range(4):
            if stats is not None:
                stats.requests += 1
            req = urllib.request.Request(self.api + path, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    text = resp.read()
                return json.loads(text) if text.strip() else {}
            except urllib.error.HTTPError as e:
                text = e.read().decode(errors="replace")
                try:
                    err = json.loads(text)
                except ValueError:
                    err = {"message": text[:300]}
                if err.get("error_code") in ok:
                    return err
                if (e.code == 429 or e.code >= 500) and attempt < 3:
                    time.sleep(delay)
                    delay *= 2
                    continue
                if e.code in (401, 403):
                    raise MirrorError(f"{self.url} refused the credentials (HTTP {e.code}); set "
                                      "MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD") from None
                raise MirrorError(f"{self.url}{path.split('?')[0]}: HTTP {e.code} "
                                  f"{err.get('error_code', '')} {err.get('message', '')[:500]}".strip()) from None
            except (urllib.error.URLError, OSError) as e:
                if attempt < 3:
                    time.sleep(delay)
                    delay *= 2
                    continue
                reason = getattr(e, "reason", e)
                raise MirrorError(f"cannot reach the MLflow server {self.url} ({reason})") from None
        raise AssertionError("unreachable")

    # -- the run -------------------------------------------------------------------------------
    def _experiment(self, name: str, stats: Stats) -> str:
        if name in self._experiments:
            return self._experiments[name]
        q = urllib.parse.urlencode({"experiment_name": name})
        got = self.call("GET", f"/api/2.0/mlflow/experiments/get-by-name?{q}", stats=stats,
                        ok=("RESOURCE_DOES_NOT_EXIST",))
        if "experiment" not in got:
            made = self.call("POST", "/api/2.0/mlflow/experiments/create", {"name": name}, stats=stats,
                             ok=("RESOURCE_ALREADY_EXISTS",))
            if "experiment_id" in made:
                self._experiments[name] = made["experiment_id"]
                return made["experiment_id"]
            got = self.call("GET", f"/api/2.0/mlflow/experiments/get-by-name?{q}", stats=stats)
        self._experiments[name] = got["experiment"]["experiment_id"]
        return self._experiments[name]

    def find_run(self, project: str, run_id: str, stats: Stats | None = None) -> dict[str, Any] | None:
        """The MLflow run carrying ``nbtracker.id = run_id`` in the project's experiment."""
        stats = stats or Stats()
        exp = self._experiment(project, stats)
        found = self.call("POST", "/api/2.0/mlflow/runs/search",
                          {"experiment_ids": [exp], "filter": f"tags.`nbtracker.id` = '{run_id}'",
                           "max_results": 2}, stats=stats)
        runs = found.get("runs") or []
        return runs[0] if runs else None

    def _open(self, view: RunView, stats: Stats) -> MlflowState:
        state = MlflowState()
        state.experiment_id = self._experiment(view.project, stats)
        found = self.find_run(view.project, view.id, stats)
        if found is None:
            made = self.call("POST", "/api/2.0/mlflow/runs/create", {
                "experiment_id": state.experiment_id, "run_name": view.name or view.id,
                "start_time": int((view.start_time or time.time()) * 1000),
                "tags": [{"key": "nbtracker.id", "value": view.id},
                         {"key": "nbtracker.project", "value": view.project}]}, stats=stats)
            found = made["run"]
        info = found["info"]
        state.run_id = info["run_id"]
        state.status = info.get("status", "RUNNING")
        state.artifact_root = info.get("artifact_uri")
        data = found.get("data") or {}
        state.params = {p["key"]: p.get("value", "") for p in data.get("params") or []}
        state.tags = {t["key"]: t.get("value", "") for t in data.get("tags") or []}
        try:
            state.offset = int(state.tags.get(_OFFSET_TAG, 0))
        except ValueError:
            state.offset = 0
        state.artifacts = self._list_artifacts(state, "", stats)
        return state

    def sync_run(self, run_dir: Path, state: MlflowState | None = None, *, registry: bool = True,
                 budget: float | None = None) -> tuple[Stats, MlflowState]:
        stats = Stats()
        run_dir = Path(run_dir)
        view = RunView.open(run_dir)
        deadline = None if budget is None else time.monotonic() + budget
        if state is None:
            state = self._open(view, stats)
        self._tags_and_params(view, state, stats)
        done = self._metrics(run_dir, state, stats, deadline)
        if done and (deadline is None or time.monotonic() < deadline):
            self._artifacts(run_dir, view, state, stats)
            status = _STATUS.get(view.status)
            if status and state.status != status:
                end = view.end_time or view._doc.get("updated_time") or time.time()
                self.call("POST", "/api/2.0/mlflow/runs/update",
                          {"run_id": state.run_id, "status": status, "end_time": int(end * 1000)}, stats=stats)
                state.status = status
        return stats, state

    def pending(self, run_dir: Path, state: MlflowState) -> int:
        try:
            return max(0, (Path(run_dir) / "metrics.jsonl").stat().st_size - state.offset)
        except OSError:
            return 0

    # -- pieces --------------------------------------------------------------------------------
    def _tags_and_params(self, view: RunView, state: MlflowState, stats: Stats) -> None:
        tags = {"nbtracker.id": view.id, "nbtracker.project": view.project, "mlflow.runName": view.name or view.id}
        if view.tags:
            tags["nbtracker.tags"] = json.dumps(view.tags)
            for t in view.tags:
                tags.setdefault(_key(t), "")
        if view.group:
            tags["nbtracker.group"] = view.group
        if view.notes:
            tags["mlflow.note.content"] = view.notes
        if view.primary_metric:
            name, goal = view.primary_metric
            tags["nbtracker.primary_metric"] = f"{name} ({goal})"
            best = view.best
            if best and best[1] is not None:
                tags["nbtracker.best"] = f"{best[1]} at step {best[2]}"
        params: dict[str, str] = {}
        truncated, changed = [], []
        for k, v in flatten(view.config).items():
            key = _key(k)
            value = _param_value(v)
            if len(value) > MAX_PARAM_VALUE:
                value = value[:MAX_PARAM_VALUE - 14] + "...[truncated]"
                truncated.append(key)
            if key in state.params:
                if state.params[key] != value:
                    changed.append(key)
                continue
            params[key] = value
        if truncated:
            tags["nbtracker.truncated_params"] = ", ".join(truncated)[:MAX_TAG_VALUE]
        if changed:
            tags["nbtracker.changed_params"] = ", ".join(changed)[:MAX_TAG_VALUE]
            note = f"config keys changed after they were sent (MLflow params are immutable): {', '.join(changed[:5])}"
            if note not in state.notes:
                state.notes.append(note)
        tags = {k: v[:MAX_TAG_VALUE] for k, v in tags.items() if state.tags.get(k) != v[:MAX_TAG_VALUE]}
        items_p = list(params.items())
        items_t = list(tags.items())
        while items_p or items_t:
            batch_p, items_p = items_p[:MAX_PARAMS], items_p[MAX_PARAMS:]
            batch_t, items_t = items_t[:MAX_PARAMS], items_t[MAX_PARAMS:]
            self.call("POST", "/api/2.0/mlflow/runs/log-batch", {
                "run_id": state.run_id,
                "params": [{"key": k, "value": v} for k, v in batch_p],
                "tags": [{"key": k, "value": v} for k, v in batch_t]}, stats=stats)
            state.params.update(batch_p)
            state.tags.update(batch_t)

    def _metrics(self, run_dir: Path, state: MlflowState, stats: Stats, deadline: float | None) -> bool:
        """Send the rows after ``state.offset``; False if the time budget ran out first."""
        path = run_dir / "metrics.jsonl"
        batch: list[dict[str, Any]] = []
        batch_end = state.offset
        pos = state.offset
        while True:
            data = complete_bytes(path, pos, SEGMENT_MAX)
            if not data:
                break
            for line in data.splitlines(keepends=True):
                pos += len(line)
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(row, dict):
                    continue
                entries = _row_metrics(row)
                while len(batch) + len(entries) > MAX_METRICS:
                    if batch:
                        self._send(state, batch, batch_end, stats)
                        batch = []
                        if deadline is not None and time.monotonic() > deadline:
                            return False
                    else:   # one row with more values than a batch holds: send it in parts
                        self._send(state, entries[:MAX_METRICS], None, stats)
                        entries = entries[MAX_METRICS:]
                batch.extend(entries)
                batch_end = pos
        if batch or batch_end != state.offset:
            self._send(state, batch, batch_end, stats)
        return True

    def _send(self, state: MlflowState, metrics: list[dict[str, Any]], end: int | None, stats: Stats) -> None:
        body: dict[str, Any] = {"run_id": state.run_id, "metrics": metrics}
        if end is not None:
            body["tags"] = [{"key": _OFFSET_TAG, "value": str(end)}]
        self.call("POST", "/api/2.0/mlflow/runs/log-batch", body, stats=stats)
        stats.rows += len(metrics)
        if end is not None:
            state.offset = end
            state.tags[_OFFSET_TAG] = str(end)

    # -- artifacts -----------------------------------------------------------------------------
    def _artifact_base(self, state: MlflowState) -> str | None:
        root = state.artifact_root or ""
        if root.startswith("mlflow-artifacts:"):
            rest = root[len("mlflow-artifacts:"):].lstrip("/")
            # mlflow-artifacts://host:port/path or mlflow-artifacts:/path
            if root.startswith("mlflow-artifacts://"):
                rest = rest.split("/", 1)[1] if "/" in rest else ""
            return rest.strip("/")
        return None

    def _list_artifacts(self, state: MlflowState, sub: str, stats: Stats) -> dict[str, Any]:
        base = self._artifact_base(state)
        if base is None:
            return {}
        out: dict[str, Any] = {}
        q = urllib.parse.urlencode({"path": f"{base}/{sub}".rstrip("/")})
        got = self.call("GET", f"/api/2.0/mlflow-artifacts/artifacts?{q}", stats=stats,
                        ok=("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"))
        for f in got.get("files") or []:
            rel = f"{sub}/{f['path'].rsplit('/', 1)[-1]}".lstrip("/")
            if f.get("is_dir"):
                out.update(self._list_artifacts(state, rel, stats))
            else:
                out[rel] = int(f.get("file_size") or 0)
        return out

    def _artifacts(self, run_dir: Path, view: RunView, state: MlflowState, stats: Stats) -> None:
        base = self._artifact_base(state)
        if base is None:
            note = (f"artifacts not uploaded: the server stores them at {state.artifact_root}, not through "
                    "its artifact proxy (start it with --serve-artifacts)")
            if note not in state.notes:
                state.notes.append(note)
            return
        files: list[tuple[str, Path]] = [("nbtracker/run.json", run_dir / "run.json")]
        code = run_dir / "code"
        if code.is_dir():
            for path in sorted(code.rglob("*")):
                if path.is_file() and not path.is_symlink() and not path.name.endswith(".tmp"):
                    files.append((f"code/{path.relative_to(code).as_posix()}", path))
        store = BlobStore(run_dir.parent.parent)
        for ckpt in list_checkpoints(run_dir):
            for entry in ckpt.manifest:
                if "sha256" in entry:
                    blob = store.path(entry["sha256"])
                    files.append((f"checkpoints/{ckpt.id}/{entry['path']}",
                                  blob if blob.is_file() else ckpt.path / entry["path"]))
        for rel, path in files:
            try:
                st = path.stat()
            except OSError:
                continue
            if state.marks.get(rel) == (st.st_size, st.st_mtime_ns):
                continue
            have = state.artifacts.get(rel)
            data = path.read_bytes()
            md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
            # MLflow lists sizes only: a file of the same size it already has is taken as the same.
            if have == md5 or (isinstance(have, int) and have == len(data)):
                state.marks[rel] = (st.st_size, st.st_mtime_ns)
                state.artifacts[rel] = md5
                continue
            quoted = urllib.parse.quote(f"{base}/{rel}")
            self.call("PUT", f"/api/2.0/mlflow-artifacts/artifacts/{quoted}", raw=data,
                      ctype="application/octet-stream", stats=stats)
            stats.uploads += 1
            stats.uploaded_bytes += len(data)
            state.artifacts[rel] = md5
            state.marks[rel] = (st.st_size, st.st_mtime_ns)


def _row_metrics(row: dict[str, Any]) -> list[dict[str, Any]]:
    step = row.get("_step")
    when = row.get("_time")
    if not isinstance(step, int):
        return []
    ts = int(when * 1000) if isinstance(when, (int, float)) and math.isfinite(when) else 0
    out = []
    for k, v in row.items():
        if k.startswith("_") or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue   # nbtracker's own keys, strings and media references are not metrics
        x = float(v)
        # Non-finite values as protobuf's JSON spells them ("NaN", "Infinity"): a bare NaN
        # literal makes the server drop the rest of the batch.
        value: Any = x if math.isfinite(x) else ("NaN" if x != x else "Infinity" if x > 0 else "-Infinity")
        out.append({"key": _key(k), "value": value, "timestamp": ts, "step": step})
    return out
