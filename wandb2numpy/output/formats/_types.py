"""The type of a run-table column in the typed formats (npz, parquet); ``runs.csv`` stays text.

The rule, per ``config.*`` and ``summary.*`` column, over the runs that hold a value (a run
without the key, or with null, holds none):

- every value a bool: ``bool``
- every value an integer (not a bool) within int64: ``int64``
- every value a number (not a bool): ``float64`` (NaN and infinities included)
- no value at all: ``null``
- anything else (text, lists, a mix such as numbers and text, numbers and bools): text, each
  cell as ``runs.csv`` writes it

``history_line_count`` is ``int64``; the other run columns (id, name, tags as JSON, ...) text.
Parquet keeps null as null in any type. npz has no null: a null number is NaN (so an integer
column with a run lacking the key is float64), and a bool or all-null column with a null stays
text, as in ``runs.csv``.

The same rule reads ``runs.csv`` back into types (`load`), taking each cell as JSON, so every
format gives the same typed table wherever the text is unambiguous.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

Kind = Literal["bool", "int", "float", "null", "text"]
TYPED_PREFIXES = ("config.", "summary.")
INT_COLUMNS = ("history_line_count",)
_INT64 = (-(2**63), 2**63 - 1)


def kind_of(values: Sequence[Any]) -> Kind:
    """The column type of these Python values (None: no value), by the rule above."""
    present = [v for v in values if v is not None]
    if not present:
        return "null"
    types = set(map(type, present))
    if types == {bool}:
        return "bool"
    if types == {int}:
        return "int" if all(_INT64[0] <= v <= _INT64[1] for v in present) else "text"
    if types <= {int, float}:
        return "float"
    return "text"


def typed(column: str) -> bool:
    """Whether `column` of the run table follows the rule (the others stay text)."""
    return column.startswith(TYPED_PREFIXES) or column in INT_COLUMNS


def to_numpy(values: Sequence[Any], kind: Kind, text: Sequence[str]) -> np.ndarray:
    """The column as npz stores it: bool, int64 or float64 without null (a null number as NaN),
    else the ``runs.csv`` text as unicode."""
    nulls = any(v is None for v in values)
    if kind == "int" and not nulls:
        return np.array(values, dtype=np.int64)
    if kind in ("int", "float"):
        return np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    if kind == "bool" and not nulls:
        return np.array(values, dtype=np.bool_)
    return np.array(list(text), dtype=np.str_)


def from_text(cell: str) -> Any:
    """A ``runs.csv`` cell back as the value it was written from, where the text says so:
    JSON numbers, true/false and null; ``""`` (no such key) is None; anything else is text."""
    if cell == "":
        return None
    if cell in ("true", "false", "null", "NaN", "Infinity", "-Infinity") or cell[0] in "-0123456789":
        try:
            value = json.loads(cell)
        except ValueError:
            return cell
        if value is None or isinstance(value, (bool, int, float)):
            return value
    return cell


def to_text(value: Any) -> str:
    """A typed cell as ``runs.csv`` writes it (null as ``""``, the cell of a missing key)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def column_values(cells: Sequence[str]) -> tuple[Kind, list[Any]]:
    """A text column of ``runs.csv`` (a typed one) back as its kind and Python values."""
    values = [from_text(c) for c in cells]
    kind = kind_of(values)
    if kind == "text":
        return kind, [c if c != "" else None for c in cells]
    if kind == "float":
        values = [None if v is None else float(v) for v in values]
    return kind, values
