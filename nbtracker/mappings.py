"""``run.config`` and ``run.summary``: dict-likes that persist themselves when changed."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any, Callable, Iterator

from .core.errors import InvalidValueError
from .core.values import check_key, jsonable


def _as_mapping(obj: Any) -> Mapping[str, Any]:
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return obj
    import argparse  # only here: keeps ``import nbtracker`` light

    if isinstance(obj, argparse.Namespace):
        return vars(obj)
    raise InvalidValueError(f"config must be a dict, an argparse.Namespace or keyword values, "
                            f"not {type(obj).__name__}")


def clean_config(obj: Any) -> dict[str, Any]:
    """Validate a whole config (keys, JSON-safe values) without storing it; raises on bad input."""
    clean = {}
    for k, v in _as_mapping(obj).items():
        check_key(k, "config")
        clean[k] = jsonable(v, f"config[{k!r}]")
    return clean


class Config(MutableMapping[str, Any]):
    """The run's hyperparameters. Every change is written to ``run.json`` at once.

    Values JSON cannot hold are stored as their ``repr`` with a warning, never dropped.
    Keys read as attributes too: ``run.config.lr``.
    """

    def __init__(self, data: Mapping[str, Any] | None, on_change: Callable[[], None]) -> None:
        self._data: dict[str, Any] = dict(data or {})
        self._on_change = on_change

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._on_change()

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_data"][name]
        except KeyError:
            raise AttributeError(f"config has no key {name!r}") from None

    def update(self, other: Any = None, /, **kwargs: Any) -> None:  # type: ignore[override]
        """Merge a dict, an ``argparse.Namespace`` and/or keyword values, then write once."""
        new = {**_as_mapping(other), **kwargs}
        clean = {}
        for k, v in new.items():
            check_key(k, "config")
            clean[k] = jsonable(v, f"config[{k!r}]")
        if clean:
            self._data.update(clean)
            self._on_change()

    def as_dict(self) -> dict[str, Any]:
        return dict(self._data)

    def __repr__(self) -> str:
        return f"Config({self._data!r})"


class Summary(MutableMapping[str, Any]):
    """Final numbers of the run: the last value of every metric unless set by hand.

    ``best/<metric>`` and ``best_step/<metric>`` hold the primary metric's best value and step.
    A key set by hand keeps its value; deleting it falls back to the last logged value.
    """

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.auto: dict[str, Any] = {}
        self.manual: dict[str, Any] = {}
        self._on_change = on_change

    def __getitem__(self, key: str) -> Any:
        if key in self.manual:
            return self.manual[key]
        return self.auto[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        if key in self.manual:
            del self.manual[key]
        elif key in self.auto:
            del self.auto[key]
        else:
            raise KeyError(key)
        self._on_change()

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())

    def update(self, other: Any = None, /, **kwargs: Any) -> None:  # type: ignore[override]
        new = {**_as_mapping(other), **kwargs}
        clean = {}
        for k, v in new.items():
            check_key(k, "summary")
            clean[k] = jsonable(v, f"summary[{k!r}]")
        if clean:
            self.manual.update(clean)
            self._on_change()

    def as_dict(self) -> dict[str, Any]:
        return {**self.auto, **self.manual}

    def __repr__(self) -> str:
        return f"Summary({self.as_dict()!r})"
