"""The ``nbtracker`` command: list, show, diff, export and remove runs."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    raise SystemExit("nbtracker CLI: not written yet")
