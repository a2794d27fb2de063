"""A registry of rich-repr renderers, filled by the display layer so core never imports it."""

from __future__ import annotations

from typing import Any, Callable

Renderer = Callable[[Any, Any, Any], "dict[str, Any] | None"]
_renderers: dict[str, Renderer] = {}


def register(type_name: str, renderer: Renderer) -> None:
    """Render objects whose class is named ``type_name`` (``Run``, ``RunView``, ``RunList``)."""
    _renderers[type_name] = renderer


def unregister(type_name: str, renderer: Renderer | None = None) -> None:
    if renderer is None or _renderers.get(type_name) is renderer:
        _renderers.pop(type_name, None)


def bundle(obj: Any, include: Any = None, exclude: Any = None) -> dict[str, Any] | None:
    """The mime bundle for ``obj``, or None (IPython then falls back to ``repr``)."""
    renderer = _renderers.get(type(obj).__name__)
    if renderer is None:
        return None
    return renderer(obj, include, exclude)


_texts: dict[str, Callable[[Any], str]] = {}


def register_text(type_name: str, renderer: Callable[[Any], str]) -> None:
    """The plain-text ``repr`` of objects whose class is named ``type_name`` (e.g. ``RunList``)."""
    _texts[type_name] = renderer


def text(obj: Any) -> str | None:
    renderer = _texts.get(type(obj).__name__)
    return None if renderer is None else renderer(obj)
