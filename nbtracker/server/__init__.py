"""The jupyter_server extension behind the JupyterLab extension: read-only JSON over the run root.

Enabled by the config file the wheel installs (``etc/jupyter/jupyter_server_config.d/nbtracker.json``),
so ``pip install nbtracker`` is all a user does. The run root is resolved with the same rule as
the kernel side (``core.paths.find_root``), from the server's root directory. Every handler is
an authenticated ``APIHandler`` under ``<base_url>/nbtracker/api/`` and never writes.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nbtracker.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from .handlers import setup

    setup(serverapp)


# jupyter_server < 2 looked the loader up under this name
load_jupyter_server_extension = _load_jupyter_server_extension
