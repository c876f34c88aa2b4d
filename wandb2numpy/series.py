"""One field of one run as exact float64 arrays, and the conversion from wire values.

Every history source hands the pipeline `Series`, never row dicts, so this is the only place that
decides what counts as a number; readers that produce rows (wandb's JSON pages) convert here, in
the worker thread, and readers that produce columns (parquet) build `Series` directly.

Exactness: a float that arrives as a Python float is kept bit for bit (including -0.0). Whole
numbers that arrive as ints are converted with ``float()`` semantics (round to nearest, ties
to even), so ints beyond 2**53 lose their low bits exactly as ``float(x)`` would; ints too large
for float64 at all are refused as non-numeric rather than turned into infinity.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "NonNumericValue",
    "ParquetColumns",
    "Series",
    "convert_values",
    "empty_series",
    "merge_series",
    "series_from_rows",
    "series_from_table",
]

# The JSON encoder behind wandb's history sends non-finite floats as these strings. Every other
# string, including "1.5", is text the user logged and must not silently become a number.
_SPECIAL_STRINGS: dict[str, float] = {
    "NaN": math.nan,
    "nan": math.nan,
    "Infinity": math.inf,
    "inf": math.inf,
    "-Infinity": -math.inf,
    "-inf": -math.inf,
}
# np.array(list, dtype=float64) converts these exactly like float() (checked in the tests), at C
# speed; any other type in a column sends it down the per-value path.
_FAST_TYPES = frozenset({float, int, bool})
_FAST_TYPES_AND_STR = _FAST_TYPES | {str}
_ABSENT = object()


class NonNumericValue(ValueError):
    """A field holds something that is not a number, so it cannot become a float64 column."""

    def __init__(self, field: str, example: str) -> None:
        self.field = field
        self.example = example
        super().__init__(f"field '{field}' holds non-numeric values, e.g. {example}")

    def __reduce__(self) -> tuple[Any, ...]:
        # The default would call __init__ with the formatted message only.
        return (type(self), (self.field, self.example))


def _describe(value: Any) -> str:
    """A short description for error messages: media payloads can be megabytes of JSON."""
    if isinstance(value, Mapping):
        kind = value.get("_type")
        return f"{kind} (media)" if isinstance(kind, str) else "a dict"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37] + "...")
    if isinstance(value, int):
        return f"an int of {value.bit_length()} bits (too large for float64)"
    return f"a {type(value).__name__}"


def _convert_one(value: Any, field: str) -> float:
    if isinstance(value, (bool, np.bool_)):
        return 1.0 if value else 0.0
    if isinstance(value, str):
        special = _SPECIAL_STRINGS.get(value)
        if special is None:
            raise NonNumericValue(field, _describe(value))
        return special
    if isinstance(value, (int, float, np.integer, np.floating)):
        try:
            return float(value)
        except OverflowError:
            raise NonNumericValue(field, _describe(value)) from None
    raise NonNumericValue(field, _describe(value))


def convert_values(values: Sequence[Any], field: str) -> np.ndarray:
    """Convert wire values to float64, refusing anything that is not a number.

    Runs on millions of values, so the common all-float/int/bool column takes one C-level
    conversion and only mixed columns pay for a Python call per value.
    """
    if not values:
        return np.empty(0, dtype=np.float64)
    types = set(map(type, values))
    try:
        if _FAST_TYPES.issuperset(types):
            return np.array(values, dtype=np.float64)
        if _FAST_TYPES_AND_STR.issuperset(types):
            # Diverged losses make "NaN" strings common: swap them in place of a full dispatch.
            special = _SPECIAL_STRINGS
            return np.array([special[v] if type(v) is str else v for v in values], dtype=np.float64)
    except (OverflowError, KeyError):
        pass  # an int beyond float64 or a text value: let the slow path name it
    return np.array([_convert_one(v, field) for v in values], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Series:
    """One field of one run: the steps it was logged at and the values, both float64."""

    steps: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        if self.steps.shape != self.values.shape or self.steps.ndim != 1:
            raise ValueError(f"steps {self.steps.shape} and values {self.values.shape} must be equal 1-D shapes")

    def __len__(self) -> int:
        return int(self.values.shape[0])


def empty_series() -> Series:
    return Series(np.empty(0, dtype=np.float64), np.empty(0, dtype=np.float64))


@dataclass(frozen=True, slots=True)
class _Order:
    """Where each row goes when steps are sorted with duplicates dropped (None: nowhere else)."""

    index: np.ndarray | None
    steps: np.ndarray


def _order(steps: np.ndarray) -> _Order:
    """Sort by step, keeping the first occurrence of each step.

    "First" is input order: for overlapping fetch pieces both copies come from the same
    history row, and a stable rule keeps exports reproducible if they ever differ.
    """
    n = steps.shape[0]
    if n > 1 and not bool(np.all(steps[1:] > steps[:-1])):
        order = np.argsort(steps, kind="stable")
        sorted_steps = steps[order]
        keep = np.empty(n, dtype=bool)
        keep[0] = True
        np.not_equal(sorted_steps[1:], sorted_steps[:-1], out=keep[1:])
        if not keep.all():
            order = order[keep]
            sorted_steps = sorted_steps[keep]
        return _Order(order, sorted_steps)
    return _Order(None, steps)


def _like(order: _Order, values: np.ndarray) -> Series:
    return Series(order.steps, values if order.index is None else values[order.index])


def _sorted_unique(steps: np.ndarray, values: np.ndarray) -> Series:
    return _like(_order(steps), values)


def series_from_rows(rows: Iterable[Mapping[str, Any]], field: str, *, step_key: str = "_step") -> Series:
    """Collect one field from history rows.

    Rows without the field (or holding None) are skipped, because wandb returns rows for every
    step a run logged anything, not only steps that logged this field. A row holding the field
    but no finite step is malformed history and raises ValueError: its value has no place in
    the step axis.
    """
    values: list[Any] = []
    steps: list[Any] = []
    add_value = values.append
    add_step = steps.append
    for row in rows:
        value = row.get(field)
        if value is not None:
            add_value(value)
            add_step(row.get(step_key, _ABSENT))
    if not values:
        return empty_series()
    converted = convert_values(values, field)
    if _FAST_TYPES.issuperset(map(type, steps)):
        step_array = np.array(steps, dtype=np.float64)
    else:
        bad = next(s for s in steps if type(s) not in _FAST_TYPES)
        shown = "missing" if bad is _ABSENT else _describe(bad)
        raise ValueError(f"history rows for '{field}' have a bad '{step_key}': {shown}")
    if not bool(np.isfinite(step_array).all()):
        raise ValueError(f"history rows for '{field}' have a non-finite '{step_key}'")
    return _sorted_unique(step_array, converted)


def merge_series(pieces: Sequence[Series]) -> Series:
    """Join pieces fetched for separate step ranges; on overlap the earlier piece wins."""
    pieces = [p for p in pieces if len(p)]
    if not pieces:
        return empty_series()
    if len(pieces) == 1:
        return pieces[0]
    steps = np.concatenate([p.steps for p in pieces])
    values = np.concatenate([p.values for p in pieces])
    return _sorted_unique(steps, values)


class ParquetColumns(NamedTuple):
    """What one exported file gave: a series per numeric key, the reason per non-numeric key,
    and the file's row count."""

    series: dict[str, Series]
    non_numeric: dict[str, str]
    rows: int


class UnreadableColumn(ValueError):
    """A column of a type the page path would not deliver the same way: read the run by pages."""


def _numeric_type(pa: Any, typ: Any) -> bool:
    return bool(pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_boolean(typ))


def _first_non_numeric(pa: Any, pc: Any, values: Any) -> str | None:
    """How the page path would name the column's first non-numeric value (None: every value is
    a number, or a string the wire uses for one)."""
    typ = values.type
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        special = pc.is_in(values, value_set=pa.array(list(_SPECIAL_STRINGS), typ))
        bad = pc.index(special, False).as_py()
        return None if bad < 0 else _describe(values[bad].as_py())
    if pa.types.is_struct(typ) or pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return _describe(values[0].as_py()) if len(values) else None
    raise UnreadableColumn(f"a column of type {typ}")


def _valid(values: Any) -> np.ndarray:
    """Which rows of a column are not null, from the chunks' validity bitmaps."""
    parts = []
    for chunk in getattr(values, "chunks", [values]):
        n, bitmap = len(chunk), chunk.buffers()[0]
        if bitmap is None or not chunk.null_count:
            parts.append(np.ones(n, bool))
            continue
        bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
        parts.append(bits[chunk.offset : chunk.offset + n].astype(bool))
    return np.concatenate(parts) if parts else np.zeros(0, bool)


def _to_float64(values: Any) -> np.ndarray:
    """A numeric or boolean column as float64 (a null reads as whatever its slot holds: the
    caller keeps the `_valid` rows). numpy's int64 -> float64 cast rounds to nearest, ties to
    even, exactly as ``float()`` does for the ints of a JSON page.

    The chunks' data buffers are read as they are: pyarrow's own ``to_numpy`` imports pandas on
    first use (0.3-0.4 s of CPU), which an export never otherwise needs."""
    if not len(values):
        return np.empty(0, dtype=np.float64)
    chunks = getattr(values, "chunks", [values])
    parts = [_chunk_float64(chunk) for chunk in chunks if len(chunk)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _chunk_float64(chunk: Any) -> np.ndarray:
    typ = chunk.type
    data = chunk.buffers()[1]
    n, offset = len(chunk), chunk.offset
    if str(typ) == "bool":  # bit-packed, least significant bit first
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
        return bits[offset : offset + n].astype(np.float64)
    dtype = _NUMPY_TYPES.get(str(typ))
    if dtype is None:
        raise UnreadableColumn(f"a column of type {typ}")
    return np.frombuffer(data, dtype=dtype, count=n, offset=offset * dtype.itemsize).astype(np.float64, copy=False)


# pyarrow's type names (str(type)) of the numeric types `_numeric_type` accepts; Arrow is little-endian.
_NUMPY_TYPES = {
    name: np.dtype(code)
    for name, code in zip(
        ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "halffloat", "float", "double"],
        ["<i1", "<i2", "<i4", "<i8", "<u1", "<u2", "<u4", "<u8", "<f2", "<f4", "<f8"],
    )
}


def series_from_table(table: Any, keys: Sequence[str], *, step_key: str = "_step") -> ParquetColumns:
    """Each key's rows from a pyarrow table (an exported history file), with no Python object
    per row: the rows holding the key (not null), as a page query for that key alone returns
    them, with the same values bit for bit (NaN and infinities kept, bools as 0/1, ints rounded
    as ``float()`` does). Non-numeric columns get the reason the page path would give.
    """
    import pyarrow as pa  # pyarrow.compute (0.1 s of import) only for text columns

    names = set(table.column_names)
    if step_key not in names:
        raise UnreadableColumn(f"the file has no '{step_key}' column")
    steps_col = table.column(step_key)
    if not _numeric_type(pa, steps_col.type) or pa.types.is_boolean(steps_col.type):
        raise UnreadableColumn(f"'{step_key}' is stored as {steps_col.type}")
    series: dict[str, Series] = {}
    bad: dict[str, str] = {}
    # Keys without nulls share the whole `_step` column: convert and check it once per file, and
    # let their series share the one array (it is never written to).
    whole_steps: _Order | None = None
    for key in dict.fromkeys(keys):
        if key not in names or pa.types.is_null(table.column(key).type):
            series[key] = empty_series()
            continue
        col = table.column(key)
        steps = steps_col
        valid = _valid(col) if col.null_count else None  # the rows holding the key
        if not _numeric_type(pa, col.type):
            import pyarrow.compute as pc

            if valid is not None:
                col = pc.filter(col, pa.array(valid))
            example = _first_non_numeric(pa, pc, col)
            if example is not None:
                bad[key] = f"holds non-numeric values ({example})"
                continue
            values = np.array([_SPECIAL_STRINGS[v] for v in col.to_pylist()], dtype=np.float64)
        else:
            values = _to_float64(col) if valid is None else _to_float64(col)[valid]
        if valid is None and whole_steps is not None:
            series[key] = _like(whole_steps, values)
            continue
        if steps.null_count and (valid is None or not _valid(steps)[valid].all()):
            raise ValueError(f"history rows for '{key}' have a bad '{step_key}': missing")
        step_array = _to_float64(steps) if valid is None else _to_float64(steps)[valid]
        if not bool(np.isfinite(step_array).all()):
            raise ValueError(f"history rows for '{key}' have a non-finite '{step_key}'")
        order = _order(step_array)
        series[key] = _like(order, values)
        if valid is None:
            whole_steps = order
    return ParquetColumns(series, bad, int(table.num_rows))
