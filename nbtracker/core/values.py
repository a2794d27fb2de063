"""What may be logged: key rules, number coercion, nested-dict flattening, JSON-safe config."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

from .errors import InvalidKeyError, InvalidValueError, NbtrackerWarning

#: Integers beyond this magnitude are stored as floats, so pandas, DuckDB and jq read them.
INT_LIMIT = 2**63 - 1


def check_key(key: object, what: str = "metric") -> str:
    """Return ``key`` if it is a usable user key, else raise ``InvalidKeyError``."""
    if not isinstance(key, str):
        raise InvalidKeyError(f"{what} keys must be strings, got {type(key).__name__} {key!r}")
    if not key or key.startswith("_"):
        raise InvalidKeyError(
            f"{what} key {key!r} is not allowed: keys are non-empty and names starting with '_' "
            "are reserved for nbtracker's own fields (_step, _time, ...)")
    if "" in key.split("/"):
        raise InvalidKeyError(f"{what} key {key!r} has an empty '/'-separated part")
    if not key.isprintable():
        raise InvalidKeyError(f"{what} key {key!r} contains control characters")
    return key


def coerce_value(key: str, value: Any) -> Any:
    """Turn a logged value into what the row stores: int, float, str; ``None`` means skip.

    Raises ``InvalidValueError`` (a ``TypeError``) naming ``key`` for anything else.
    """
    t = type(value)
    if t is float or t is str:
        return value
    if t is int:
        return value if -INT_LIMIT <= value <= INT_LIMIT else float(value)
    if value is None:
        return None
    if t is bool:
        return int(value)
    if isinstance(value, str):  # str subclasses: numpy.str_, StrEnum members (their text, not str())
        return str.__str__(value)
    item = getattr(value, "item", None)  # numpy scalars and 0-d arrays, torch tensors, jax arrays
    if item is not None and callable(item) and not isinstance(value, (str, bytes)):
        try:
            value = item()
        except (ValueError, TypeError, RuntimeError) as e:
            shape = getattr(value, "shape", None)
            raise InvalidValueError(
                f"cannot log {key!r}: {t.__name__} with shape {shape} is not a single number "
                f"({e}); log a scalar, e.g. x.mean()") from None
        if type(value) in (int, float, bool):
            return coerce_value(key, value)
    elif isinstance(value, (int, float)):  # int/float subclasses, e.g. IntEnum, numpy.float64
        return coerce_value(key, float(value) if isinstance(value, float) else int(value))
    raise InvalidValueError(
        f"cannot log {key!r}: {t.__name__} is not a number or a string "
        "(log ints, floats, bools, numpy/torch scalars, strings; None skips the key)")


def flatten_into(out: dict[str, Any], data: Mapping[Any, Any], prefix: str) -> None:
    """Validate and coerce ``data`` into ``out``, flattening nested mappings to ``a/b`` keys."""
    for k, v in data.items():
        key = prefix + check_key(k) if prefix else check_key(k)
        if isinstance(v, Mapping):
            flatten_into(out, v, key + "/")
            continue
        v = coerce_value(key, v)
        if v is not None:
            out[key] = v


def jsonable(value: Any, where: str) -> Any:
    """Return a JSON-safe copy of a config value; what JSON cannot hold becomes its ``repr``."""
    t = type(value)
    if value is None or t in (str, int, float, bool):
        return value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                warnings.warn(f"config key {k!r} in {where} is not a string; stored as {str(k)!r}",
                              NbtrackerWarning, stacklevel=4)
                k = str(k)
            out[k] = jsonable(v, f"{where}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if isinstance(value, float) else int(value)
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        try:
            return jsonable(item(), where)
        except Exception:  # noqa: BLE001 - any failure falls back to repr below
            pass
    text = repr(value)
    warnings.warn(f"config value {where} of type {t.__name__} is not JSON; stored as its repr {text[:60]!r}",
                  NbtrackerWarning, stacklevel=4)
    return text


def is_finite_number(v: Any) -> bool:
    return (type(v) is float and math.isfinite(v)) or type(v) is int
