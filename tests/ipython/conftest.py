"""An in-process IPython shell with nbtracker loaded, and a guard that nothing is left behind."""

from __future__ import annotations

import pytest
from IPython import get_ipython
from IPython.testing.globalipapp import start_ipython

from nbtracker import magics


@pytest.fixture
def ip():
    start_ipython()  # once per process; later calls return None
    shell = get_ipython()
    shell.history_manager.reset(new_session=True)   # each test is its own kernel session
    shell.execution_count = 1
    before = {name: list(shell.events.callbacks[name]) for name in ("pre_run_cell", "post_run_cell")}
    shell.run_line_magic("load_ext", "nbtracker")
    yield shell
    shell.run_line_magic("unload_ext", "nbtracker")
    after = {name: list(shell.events.callbacks[name]) for name in ("pre_run_cell", "post_run_cell")}
    assert after == before, "unload left IPython callbacks behind"
    assert id(shell) not in magics._sessions


def cell(ip, source, cell_id=None):
    """Run one cell the way a frontend does (history stored, cell id passed)."""
    return ip.run_cell(source, store_history=True, cell_id=cell_id)
