"""Which notebook file is this kernel running? Env vars, IPython/VS Code hints, then the server."""

from __future__ import annotations

import glob
import json
import os
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0", ""}
SERVER_TIMEOUT = 1.0


def find_notebook(user_ns: dict[str, Any] | None) -> tuple[Path | None, dict[str, Any]]:
    """Return ``(path or None, note)``; the note says which method found it or why none did.

    The note never holds a token, a password or a server URL.
    """
    ns = user_ns or {}
    tried = []
    for method, value in (("NBTRACKER_NOTEBOOK", os.environ.get("NBTRACKER_NOTEBOOK")),
                          ("JPY_SESSION_NAME", os.environ.get("JPY_SESSION_NAME")),
                          ("__session__", ns.get("__session__")),
                          ("__vsc_ipynb_file__", ns.get("__vsc_ipynb_file__"))):
        if not value:
            tried.append(f"{method}: not set")
            continue
        path = Path(str(value)).expanduser()
        if path.suffix == ".ipynb" and path.is_file():
            return path.absolute(), {"method": method, "path": str(path.absolute()), "tried": tried}
        tried.append(f"{method}: {path.name!r} is not an existing .ipynb file")
    try:
        path = _from_server_sessions()
    except Exception as e:  # noqa: BLE001 - the lookup is best effort and must never raise
        path = None
        tried.append(f"jupyter server sessions: {type(e).__name__}")
    else:
        if path is not None:
            return path, {"method": "jupyter server sessions API", "path": str(path), "tried": tried}
        tried.append("jupyter server sessions: no local server lists this kernel")
    return None, {"method": None, "path": None, "tried": tried}


def _kernel_id() -> str | None:
    try:
        from ipykernel import get_connection_file  # only inside a kernel
    except ImportError:
        return None
    try:
        name = Path(get_connection_file()).stem
    except Exception:  # noqa: BLE001 - not running in a kernel
        return None
    return name[len("kernel-"):] if name.startswith("kernel-") else None


def _runtime_dirs() -> list[str]:
    dirs = []
    if os.environ.get("JUPYTER_RUNTIME_DIR"):
        dirs.append(os.environ["JUPYTER_RUNTIME_DIR"])
    try:
        from jupyter_core.paths import jupyter_runtime_dir

        dirs.append(jupyter_runtime_dir())
    except ImportError:
        pass
    return list(dict.fromkeys(dirs))


def _from_server_sessions() -> Path | None:
    kernel_id = _kernel_id()
    if kernel_id is None:
        return None
    for runtime in _runtime_dirs():
        for info_file in sorted(glob.glob(os.path.join(runtime, "jpserver-*.json"))):
            try:
                with open(info_file, encoding="utf-8") as f:
                    info = json.load(f)
            except (OSError, ValueError):
                continue
            url = info.get("url") or ""
            if urllib.parse.urlparse(url).hostname not in LOCAL_HOSTS:
                continue  # only ever ask a server on this machine
            query = urllib.parse.urlencode({"token": info["token"]}) if info.get("token") else ""
            api = urllib.parse.urljoin(url if url.endswith("/") else url + "/", "api/sessions")
            try:
                with urllib.request.urlopen(f"{api}?{query}" if query else api, timeout=SERVER_TIMEOUT) as r:
                    sessions = json.load(r)
            except (OSError, ValueError):
                continue
            for s in sessions:
                if (s.get("kernel") or {}).get("id") == kernel_id and s.get("path", "").endswith(".ipynb"):
                    root = info.get("root_dir") or info.get("notebook_dir") or ""
                    path = Path(root, s["path"])
                    if path.is_file():
                        return path.absolute()
    return None
