"""Put every run of an experiment on one x axis, so curves average column by column.

Runs log at their own steps (or their own values of an x-axis key such as ``global_step``), so
the raw arrays only line up by row position. A grid resamples each run at shared x values: with
``linear`` interpolation within the run's own range, or ``previous`` (the last value logged at
or before x). Outside a run's own range the value is NaN either way, so a run that started late
or stopped early never seems to have data it did not log, and ``np.nanmean(a, axis=0)`` is the
mean curve over the runs that reached each x.

Pure functions: the pipeline applies them after assembly and the plot command reuses them on
exported files.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from .assemble import ExperimentResult, FieldArrays
from .config import GridSpec, Method

__all__ = ["GridSpec", "common_range", "make_grid", "apply_grid", "resample", "run_ranges"]

log = logging.getLogger(__name__)



def run_ranges(fields: Iterable[FieldArrays]) -> tuple[np.ndarray, np.ndarray]:
    """Each run's first and last x over all fields (NaN for a run with no point at all).

    A field's padding is NaN steps; a logged NaN value still has its step, but it is no data
    point, so it does not widen the run's range.
    """
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    for arrays in fields:
        steps = np.where(np.isnan(arrays.values), np.nan, arrays.steps)
        with warnings.catch_warnings():  # all-NaN rows (runs without this field) are expected
            warnings.simplefilter("ignore", RuntimeWarning)
            f_lo, f_hi = np.nanmin(steps, axis=1), np.nanmax(steps, axis=1)
        lo = f_lo if lo is None else np.fmin(lo, f_lo)
        hi = f_hi if hi is None else np.fmax(hi, f_hi)
    if lo is None or hi is None:
        return np.empty(0), np.empty(0)
    return lo, hi


def common_range(starts: np.ndarray, ends: np.ndarray) -> tuple[float, float] | None:
    """[latest start, earliest end] over the runs with data: where every run has values.

    When the runs share no x at all (one stopped before another started), the whole span is
    used instead, with a warning, since an empty grid helps nobody. None when no run has data.
    """
    ok = ~np.isnan(starts) & ~np.isnan(ends)
    if not ok.any():
        return None
    lo, hi = float(np.max(starts[ok])), float(np.min(ends[ok]))
    if lo > hi:
        lo, hi = float(np.min(starts[ok])), float(np.max(ends[ok]))
        log.warning("the runs share no common x range; the grid spans all of them (%g to %g)", lo, hi)
    return lo, hi


def make_grid(spec: GridSpec, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The x values of the grid, ascending, as float64.

    ``points``: N evenly spaced values over the runs' common range. ``every``: the multiples of
    D inside that range, so two experiments exported with the same D share x values.
    ``values``: as given.
    """
    if spec.values is not None:
        return np.asarray(spec.values, dtype=np.float64)
    span = common_range(starts, ends)
    if span is None:
        return np.empty(0, dtype=np.float64)
    lo, hi = span
    if spec.points is not None:
        return np.linspace(lo, hi, spec.points, dtype=np.float64)
    if spec.every is not None:
        d = spec.every
        first, last = math.ceil(lo / d), math.floor(hi / d)
        return np.arange(first, last + 1, dtype=np.float64) * d
    raise ValueError("a grid needs points, every or values")


def resample(values: np.ndarray, steps: np.ndarray, x: np.ndarray, method: Method = "linear") -> np.ndarray:
    """Each row of `values` (at its own `steps`, NaN-padded) at the shared `x`: (runs, len(x)).

    Points whose step or value is NaN are left out; when one x was logged twice the later row
    wins, as in the W&B UI. Outside a run's own first..last x the result is NaN.
    """
    out = np.full((values.shape[0], len(x)), np.nan, dtype=np.float64)
    for i in range(values.shape[0]):
        keep = ~np.isnan(steps[i]) & ~np.isnan(values[i])
        s, v = steps[i][keep], values[i][keep]
        if not len(s):
            continue
        order = np.argsort(s, kind="stable")
        s, v = s[order], v[order]
        last = np.append(s[1:] != s[:-1], True)  # the last of each run of equal steps
        s, v = s[last], v[last]
        inside = (x >= s[0]) & (x <= s[-1])
        if method == "linear":
            out[i, inside] = np.interp(x[inside], s, v)
        else:
            idx = np.searchsorted(s, x[inside], side="right") - 1
            out[i, inside] = v[idx]
    return out


def apply_grid(result: ExperimentResult, spec: GridSpec) -> ExperimentResult:
    """`result` with every field resampled on one grid built from all its runs and fields."""
    starts, ends = run_ranges(result.fields.values())
    x = make_grid(spec, starts, ends)
    fields = {}
    for name, arrays in result.fields.items():
        gridded = resample(arrays.values, arrays.steps, x, spec.method)
        steps = np.broadcast_to(x, gridded.shape)
        fields[name] = FieldArrays(values=gridded, steps=steps)
    return replace(result, fields=fields, grid=x)
