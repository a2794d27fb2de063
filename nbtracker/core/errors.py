"""The exception and warning types every nbtracker layer raises."""

from __future__ import annotations


class NbtrackerError(Exception):
    """Root of every error nbtracker raises on purpose."""


class InvalidKeyError(NbtrackerError, ValueError):
    """A metric, config or summary key is not allowed (empty, reserved, or not a string)."""


class InvalidValueError(NbtrackerError, TypeError):
    """A value cannot be logged (not a number, a string or None)."""


class RunNotFoundError(NbtrackerError, LookupError):
    """No run with the given id exists under the run root."""


class UnreadableRunError(NbtrackerError, ValueError):
    """A run directory's ``run.json`` is missing pieces, truncated or not a JSON object."""


class RunActiveError(NbtrackerError):
    """The run is being written by another live process, or is already finished."""


class StorageError(NbtrackerError, OSError):
    """The run directory could not be created or written."""


class NbtrackerWarning(UserWarning):
    """Something was stored differently than given, or skipped while reading."""
