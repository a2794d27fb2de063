"""The common base of media values."""

from __future__ import annotations

from typing import Any

from ..core.errors import InvalidValueError
from ..core.values import valid_text


class Media:
    """A value ``run.log`` stores as a file, recording a reference in the row."""

    _nbtracker_media = True
    extension = "bin"

    def store(self, run: Any, rel: str) -> dict[str, Any]:   # pragma: no cover - abstract
        raise NotImplementedError


def check_caption(caption: Any) -> str | None:
    if caption is None:
        return None
    if not isinstance(caption, str) or not valid_text(caption):
        raise InvalidValueError(f"caption must be a string, not {type(caption).__name__}")
    return caption[:1000]
