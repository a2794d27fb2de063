"""What may be logged: key rules, number coercion, nested-dict flattening, JSON-safe config."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

from .errors import InvalidKeyError, InvalidValueError, NbtrackerWarning

#: Integers beyond this magnitude are stored as floats, so pandas, DuckDB and jq read them.
INT_LIMIT = 2**63 - 1
#: Nested dicts and lists deeper than this are refused (a self-containing dict never ends).
MAX_DEPTH = 64


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

    Raises ``InvalidValueError`` (a ``TypeError``) naming ``key`` for anything else, including
    an integer too large for a float and an object whose ``item()``/``__float__`` raises.
    """
    t = type(value)
    if t is float or t is str:
        return value
    if t is int:
        return value if -INT_LIMIT <= value <= INT_LIMIT else _big_int(key, value)
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
        except Exception as e:  # noqa: BLE001 - the user's object: any failure is a bad value
            shape = getattr(value, "shape", None)
            raise InvalidValueError(
                f"cannot log {key!r}: {t.__name__}.item() failed with shape {shape} "
                f"({type(e).__name__}: {e}); log a single number, e.g. x.mean()") from None
        if type(value) in (int, float, bool):
            return coerce_value(key, value)
    elif isinstance(value, (int, float)):  # int/float subclasses, e.g. IntEnum, numpy.float64
        try:
            plain = float(value) if isinstance(value, float) else int(value)
        except Exception as e:  # noqa: BLE001 - a subclass whose __float__/__int__ raises
            raise InvalidValueError(f"cannot log {key!r}: converting the {t.__name__} to a number "
                                    f"failed ({type(e).__name__}: {e})") from None
        return coerce_value(key, plain)
    raise InvalidValueError(
        f"cannot log {key!r}: {t.__name__} is not a number or a string "
        "(log ints, floats, bools, numpy/torch scalars, strings; None skips the key)")


def _big_int(key: str, value: int) -> float:
    try:
        return float(value)
    except OverflowError:
        raise InvalidValueError(f"cannot log {key!r}: the integer has {len(str(abs(value)))} digits, "
                                "too large even for a float (about 1.8e308 at most)") from None


def flatten_into(out: dict[str, Any], data: Mapping[Any, Any], prefix: str, depth: int = 0) -> None:
    """Validate and coerce ``data`` into ``out``, flattening nested mappings to ``a/b`` keys."""
    if depth >= MAX_DEPTH:
        raise InvalidValueError(f"cannot log {prefix.rstrip('/')!r}: dicts nested more than "
                                f"{MAX_DEPTH} levels deep (or a dict that contains itself)")
    for k, v in data.items():
        key = prefix + check_key(k) if prefix else check_key(k)
        if isinstance(v, Mapping):
            flatten_into(out, v, key + "/", depth + 1)
            continue
        v = coerce_value(key, v)
        if v is not None:
            out[key] = v


def jsonable(value: Any, where: str, depth: int = 0) -> Any:
    """Return a JSON-safe copy of a config value; what JSON cannot hold becomes its ``repr``.

    Raises ``InvalidValueError`` for structures nested deeper than ``MAX_DEPTH`` (or containing
    themselves) and for integers too large for JSON readers.
    """
    t = type(value)
    if t is int and not -INT_LIMIT <= value <= INT_LIMIT:
        return _big_int(where, value)
    if value is None or t in (str, int, float, bool):
        if t is str and not valid_text(value):
            warnings.warn(f"{where} holds text that is not valid Unicode (a lone surrogate); "
                          "stored with the bad characters escaped", NbtrackerWarning, stacklevel=4)
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if depth >= MAX_DEPTH:
        raise InvalidValueError(f"{where} is nested more than {MAX_DEPTH} levels deep (or contains itself)")
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                warnings.warn(f"config key {k!r} in {where} is not a string; stored as {str(k)!r}",
                              NbtrackerWarning, stacklevel=4)
                k = str(k)
            out[k] = jsonable(v, f"{where}.{k}", depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return jsonable(float(value) if isinstance(value, float) else int(value), where, depth)
        except InvalidValueError:
            raise
        except Exception:  # noqa: BLE001 - a subclass whose conversion raises: repr below
            pass
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        try:
            return jsonable(item(), where, depth)
        except InvalidValueError:
            raise
        except Exception:  # noqa: BLE001 - any failure falls back to repr below
            pass
    try:
        text = repr(value)
    except Exception as e:  # noqa: BLE001 - a repr that raises: say what it was
        text = f"<{t.__name__} object: repr() failed with {type(e).__name__}>"
    warnings.warn(f"config value {where} of type {t.__name__} is not JSON; stored as its repr {text[:60]!r}",
                  NbtrackerWarning, stacklevel=4)
    return jsonable(text, where, depth)


def valid_text(text: str) -> bool:
    """Whether ``text`` is valid Unicode (no lone surrogates from ``surrogateescape`` decoding)."""
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def is_finite_number(v: Any) -> bool:
    return (type(v) is float and math.isfinite(v)) or type(v) is int


#: Options of a chart (``run.display(...)``, ``compare(...)``) and their defaults.
CHART_OPTIONS = {"metrics": None, "x": "step", "log_y": False, "smoothing": 0.0}


def check_chart_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Validated chart options with defaults filled in: ``metrics`` (a name or names), ``x``
    (``"step"``, ``"time"`` or a metric), ``log_y`` (bool), ``smoothing`` (in [0, 1))."""
    unknown = sorted(set(options) - set(CHART_OPTIONS))
    if unknown:
        raise InvalidKeyError(f"unknown chart option(s) {', '.join(unknown)}; "
                              f"the options are {', '.join(CHART_OPTIONS)}")
    out = {**CHART_OPTIONS, **options}
    metrics = out["metrics"]
    if metrics is not None:
        metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics) if isinstance(metrics, (list, tuple)) else None
        if not metrics or not all(isinstance(m, str) and m for m in metrics):
            raise InvalidValueError("metrics must be a metric name or a list of names")
        out["metrics"] = metrics
    if not isinstance(out["x"], str) or not out["x"]:
        raise InvalidValueError(f"x must be 'step', 'time' or a metric name, not {out['x']!r}")
    if not isinstance(out["log_y"], bool):
        raise InvalidValueError(f"log_y must be True or False, not {out['log_y']!r}")
    smoothing = out["smoothing"]
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)):
        raise InvalidValueError(f"smoothing must be a number in [0, 1), not {smoothing!r}")
    if not 0 <= smoothing < 1:
        raise InvalidKeyError(f"smoothing must be in [0, 1) (0.9 smooths a lot), not {smoothing!r}")
    out["smoothing"] = float(smoothing)
    return out
