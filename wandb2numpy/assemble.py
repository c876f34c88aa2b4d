"""Turn history rows into exact float64 arrays with one row per run.

This stage is the only place that decides what counts as a number, so the writers and the
Python API can assume plain float64 and never look at wandb's wire values again.

Exactness: a float that arrives as a Python float is kept bit for bit (including -0.0). Whole
numbers that arrive as ints are converted with ``float()`` semantics (round to nearest, ties
to even), so ints beyond 2**53 lose their low bits exactly as ``float(x)`` would; ints too large
for float64 at all are refused as non-numeric rather than turned into infinity.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

import numpy as np

from .models import RunInfo

__all__ = [
    "ExperimentResult",
    "FieldArrays",
    "NonNumericValue",
    "Series",
    "assemble_experiment",
    "convert_values",
    "merge_series",
    "series_from_rows",
    "stack_field",
]

log = logging.getLogger(__name__)

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
            return np.array(
                [special[v] if type(v) is str else v for v in values], dtype=np.float64
            )
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
            raise ValueError(
                f"steps {self.steps.shape} and values {self.values.shape} must be equal 1-D shapes"
            )

    def __len__(self) -> int:
        return int(self.values.shape[0])


def _empty_series() -> Series:
    return Series(np.empty(0, dtype=np.float64), np.empty(0, dtype=np.float64))


def _sorted_unique(steps: np.ndarray, values: np.ndarray) -> Series:
    """Sort by step, keeping the first occurrence of each step.

    "First" is input order: for overlapping fetch pieces both copies come from the same
    history row, and a stable rule keeps exports reproducible if they ever differ.
    """
    n = steps.shape[0]
    if n > 1 and not bool(np.all(steps[1:] > steps[:-1])):
        order = np.argsort(steps, kind="stable")
        steps = steps[order]
        values = values[order]
        keep = np.empty(n, dtype=bool)
        keep[0] = True
        np.not_equal(steps[1:], steps[:-1], out=keep[1:])
        if not keep.all():
            steps = steps[keep]
            values = values[keep]
    return Series(steps, values)


def series_from_rows(
    rows: Iterable[Mapping[str, Any]], field: str, *, step_key: str = "_step"
) -> Series:
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
        return _empty_series()
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
        return _empty_series()
    if len(pieces) == 1:
        return pieces[0]
    steps = np.concatenate([p.steps for p in pieces])
    values = np.concatenate([p.values for p in pieces])
    return _sorted_unique(steps, values)


@dataclass(frozen=True, slots=True)
class FieldArrays:
    """One field across runs: row i is run i, padded with NaN after its last value."""

    values: np.ndarray
    steps: np.ndarray


def stack_field(series: Sequence[Series | None]) -> FieldArrays:
    """Stack per-run series into NaN-padded 2-D arrays.

    Padding goes at the end (not aligned by step) so each row keeps exactly the values the run
    logged; the steps array says where each value belongs.
    """
    n = len(series)
    width = max((len(s) for s in series if s is not None), default=0)
    values = np.full((n, width), np.nan, dtype=np.float64)
    steps = np.full((n, width), np.nan, dtype=np.float64)
    for i, s in enumerate(series):
        if s is not None and len(s):
            k = len(s)
            values[i, :k] = s.values
            steps[i, :k] = s.steps
    return FieldArrays(values=values, steps=steps)


@dataclass
class ExperimentResult:
    """Everything the writers need for one experiment; row i of every array is runs[i]."""

    name: str
    runs: list[RunInfo]
    fields: dict[str, FieldArrays]
    skipped_fields: dict[str, str] = dc_field(default_factory=dict)
    failed_runs: dict[str, str] = dc_field(default_factory=dict)


ABSENT_REASON = "absent from every exported run"
NOT_FETCHED_REASON = "history could not be fetched"


def assemble_experiment(
    name: str,
    runs: Sequence[RunInfo],
    per_run: Sequence[Mapping[str, Series] | None],
    fields: Sequence[str],
    *,
    failed: Mapping[str, str] = {},  # noqa: B006 - read only
    skipped: Mapping[str, str] = {},  # noqa: B006 - read only
) -> ExperimentResult:
    """Build the per-experiment arrays with one shared run order.

    A run is exported when it holds at least one requested (not skipped) field, so every
    array row is a run with some data; runs with none of the fields are left out rather than
    becoming all-NaN rows in every file. Runs whose history failed are listed in
    ``failed_runs`` and left out. Fields that are skipped or that no exported run holds are
    reported in ``skipped_fields`` (in config order) instead of being written as empty arrays.
    """
    if len(runs) != len(per_run):
        raise ValueError(f"{len(runs)} runs but {len(per_run)} per-run results")
    wanted = [f for f in dict.fromkeys(fields) if f not in skipped]

    failed_runs = dict(failed)
    exported: list[RunInfo] = []
    exported_data: list[Mapping[str, Series]] = []
    for run, data in zip(runs, per_run):
        if data is None or run.id in failed:
            failed_runs.setdefault(run.id, NOT_FETCHED_REASON)
            continue
        if any((s := data.get(f)) is not None and len(s) for f in wanted):
            exported.append(run)
            exported_data.append(data)
        else:
            log.debug("run %s holds none of the requested fields; not exported", run.id)

    arrays: dict[str, FieldArrays] = {}
    skipped_fields: dict[str, str] = {}
    for f in dict.fromkeys(fields):
        if f in skipped:
            skipped_fields[f] = skipped[f]
            continue
        column = [data.get(f) for data in exported_data]
        if not any(s is not None and len(s) for s in column):
            skipped_fields[f] = ABSENT_REASON
            continue
        arrays[f] = stack_field(column)
    for f, reason in skipped.items():
        skipped_fields.setdefault(f, reason)

    return ExperimentResult(
        name=name,
        runs=exported,
        fields=arrays,
        skipped_fields=skipped_fields,
        failed_runs=failed_runs,
    )
