"""``Histogram`` and ``Table``: stored as CSV files (pandas, DuckDB and spreadsheets read them)."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from typing import Any

from ..core.errors import InvalidValueError
from ..core.values import valid_text
from .base import Media


def _write(run: Any, rel: str, text: str) -> None:
    path = run.dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8", newline="")
    os.replace(tmp, path)


class Histogram(Media):
    """A distribution to log: ``nbtracker.Histogram(values, bins=64)``, or precomputed with
    ``np_histogram=(counts, edges)``. Stored as CSV with columns ``left, right, count``."""

    extension = "csv"

    def __init__(self, values: Any = None, bins: int = 64, np_histogram: Any = None) -> None:
        import numpy as np

        if np_histogram is not None:
            try:
                counts, edges = (np.asarray(a, dtype=float) for a in np_histogram)
            except (TypeError, ValueError):
                raise InvalidValueError("np_histogram must be (counts, edges), as numpy.histogram returns") from None
            if counts.ndim != 1 or edges.ndim != 1 or len(edges) != len(counts) + 1:
                raise InvalidValueError(f"np_histogram needs len(edges) == len(counts) + 1, got "
                                        f"{counts.shape} counts and {edges.shape} edges")
        else:
            if values is None:
                raise InvalidValueError("Histogram() takes values or np_histogram=(counts, edges)")
            if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= 10_000:
                raise InvalidValueError(f"bins must be an integer from 1 to 10000, not {bins!r}")
            if hasattr(values, "detach") and hasattr(values, "cpu"):
                values = values.detach().cpu().numpy()
            try:
                arr = np.asarray(values, dtype=float).ravel()
            except (TypeError, ValueError):
                raise InvalidValueError(f"Histogram() takes numbers, not {type(values).__name__}") from None
            arr = arr[np.isfinite(arr)]
            if arr.size == 0:
                raise InvalidValueError("Histogram() got no finite values")
            counts, edges = np.histogram(arr, bins=bins)
        if not np.all(np.isfinite(edges)):
            raise InvalidValueError("histogram edges must be finite numbers")
        self.counts = [int(c) if float(c).is_integer() else float(c) for c in counts]
        self.edges = [float(e) for e in edges]

    def store(self, run: Any, rel: str) -> dict[str, Any]:
        lines = ["left,right,count"] + [f"{self.edges[i]!r},{self.edges[i + 1]!r},{c!r}"
                                        for i, c in enumerate(self.counts)]
        _write(run, rel, "\n".join(lines) + "\n")
        return {"_type": "histogram", "path": rel, "bins": len(self.counts),
                "min": self.edges[0], "max": self.edges[-1], "count": sum(self.counts)}


class Table(Media):
    """A table to log: ``nbtracker.Table(columns=[...], data=[[...], ...])`` or
    ``Table(dataframe=df)`` (also ``Table(data=df)``). Stored as CSV with a header row; cells are
    numbers, text, booleans or empty (None); anything else is stored as its ``str``."""

    extension = "csv"

    def __init__(self, columns: Sequence[str] | None = None, data: Any = None, dataframe: Any = None) -> None:
        if dataframe is None and hasattr(data, "columns") and hasattr(data, "itertuples"):
            dataframe, data = data, None
        if dataframe is not None:
            columns = [str(c) for c in dataframe.columns]
            data = [list(r) for r in dataframe.itertuples(index=False, name=None)]
        if columns is None:
            raise InvalidValueError("Table() needs columns=[...] (or a pandas DataFrame)")
        columns = list(columns)
        if not columns or not all(isinstance(c, str) and c and valid_text(c) for c in columns):
            raise InvalidValueError(f"Table columns must be non-empty strings, got {columns!r}")
        rows = []
        for i, row in enumerate(data or []):
            try:
                row = list(row)
            except TypeError:
                raise InvalidValueError(f"Table row {i} is not a list: {row!r}") from None
            if len(row) != len(columns):
                raise InvalidValueError(f"Table row {i} has {len(row)} cells for {len(columns)} columns")
            rows.append([_cell(v) for v in row])
        self.columns, self.data = columns, rows

    def store(self, run: Any, rel: str) -> dict[str, Any]:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.columns)
        w.writerows(self.data)
        _write(run, rel, buf.getvalue())
        return {"_type": "table", "path": rel, "columns": self.columns, "rows": len(self.data)}


def _cell(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v if not isinstance(v, str) or valid_text(v) else v.encode("utf-8", "backslashreplace").decode()
    if isinstance(v, float):
        return "" if math.isnan(v) else v
    item = getattr(v, "item", None)
    if callable(item) and getattr(v, "ndim", None) == 0:
        return _cell(item())
    return str(v)
