"""The live mirror's worker process: ``python -m nbtracker.sync.worker`` (started by
:class:`nbtracker.sync.live.LiveMirror`, never by hand).

Its first line of standard input is its configuration (JSON: run directory, run id, URL,
storage options, interval); then it takes ``poke`` (a pass now) and ``final <seconds>`` (the
last passes, then exit). End of input means the run's process is gone (killed, crashed): one
last pass ships what reached the disk, then it exits. It reports on standard output, one JSON
object a line: ``{"status": {...}}`` after every pass, ``{"say": "..."}`` for the run's process
to print, ``{"done": true|false}`` at the end.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from pathlib import Path
from typing import Any

#: Seconds the last pass may take when the run's process vanished without a word.
ORPHAN_FINAL = 10.0
#: The worker's scheduling priority, relative to the run's process (man 2 nice).
NICE = 10


def _emit(msg: dict[str, Any]) -> None:
    try:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass   # nobody listens any more


def main() -> int:
    try:
        os.nice(NICE)   # when cores are scarce, the user's loop goes first
    except (AttributeError, OSError):
        pass
    cfg = json.loads(sys.stdin.readline())
    commands: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in sys.stdin:
            commands.put(line.strip())
        commands.put(None)

    threading.Thread(target=read, daemon=True).start()
    say = lambda text: _emit({"say": text})  # noqa: E731
    from . import target_for
    from .live import Syncer

    try:
        target = target_for(cfg["url"], cfg.get("options"))
    except Exception as e:  # noqa: BLE001 - reported to the run's process, which goes on
        say(f"mirror {cfg['url']}: {e}")
        _emit({"status": {"url": cfg["url"], "state": "failing", "last_error": str(e)}})
        while True:                    # wait for the end, so the run's finish() hears the answer
            command = commands.get()
            if command is None or command.startswith("final"):
                break
        _emit({"done": False})
        return 1
    warm = getattr(target, "warm", None)
    if callable(warm):
        warm()
    syncer = Syncer(Path(cfg["run_dir"]), cfg["run_id"], target, say)
    interval = float(cfg.get("interval") or 5.0)
    wait = 0.0   # the first pass at once: the run shows up on the mirror as it starts
    while True:
        try:
            command = commands.get(timeout=wait)
        except queue.Empty:
            command = "tick"
        if command is None or command.startswith("final"):
            timeout = ORPHAN_FINAL if command is None else float(command.split()[1])
            ok = syncer.final(timeout)
            _emit({"status": syncer.status()})
            _emit({"done": ok})
            return 0 if ok else 1
        ok = syncer.run_pass()
        _emit({"status": syncer.status()})
        wait = syncer.next_wait(ok, interval)


if __name__ == "__main__":
    sys.exit(main())
