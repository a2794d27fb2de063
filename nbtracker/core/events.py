"""A tiny event registry: the run emits, live views and the Jupyter session subscribe."""

from __future__ import annotations

import sys
from typing import Any, Callable

Listener = Callable[..., None]

#: Events and their arguments:
#: ``init(run)``, ``log(run, row)``, ``flush(run)``, ``finish(run)``: emitted by the run;
#: ``display(run)``: reserved for the inline display layer;
#: ``cell_start(run, info)``, ``cell_end(run, record)``: emitted by the Jupyter session around
#: every cell executed while the run is active (``record`` is the dict written to cells.jsonl).
#: ``text(run, record)``: a line of the run's text log (``run.log_text``, the logging handler).
#: ``flush`` may come from the background ticker thread; the others come from the caller's thread.
EVENTS = ("init", "log", "flush", "finish", "display", "cell_start", "cell_end", "text")
_listeners: dict[str, list[Listener]] = {name: [] for name in EVENTS}
_reported: set[tuple[str, str]] = set()


def on(event: str, listener: Listener) -> Listener:
    """Subscribe ``listener`` to ``event``; returns it, so this works as a decorator."""
    if event not in _listeners:
        raise ValueError(f"unknown event {event!r}; known: {', '.join(EVENTS)}")
    if listener not in _listeners[event]:
        _listeners[event].append(listener)
    return listener


def off(event: str, listener: Listener) -> None:
    """Unsubscribe ``listener``; unknown listeners are ignored."""
    try:
        _listeners[event].remove(listener)
    except (KeyError, ValueError):
        pass


def has(event: str) -> bool:
    return bool(_listeners[event])


def emit(event: str, *args: Any) -> None:
    """Call every listener. A failing listener is reported once and never reaches the caller."""
    for listener in tuple(_listeners[event]):
        try:
            listener(*args)
        except Exception as e:  # noqa: BLE001 - a view must never break logging
            key = (event, getattr(listener, "__qualname__", repr(listener)))
            if key not in _reported:
                _reported.add(key)
                print(f"nbtracker: {event} listener {key[1]} failed: {type(e).__name__}: {e} "
                      "(reported once; logging continues)", file=sys.stderr)
