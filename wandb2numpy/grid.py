"""Put every run of an experiment on one x axis, so curves average column by column.

Runs log at their own steps (or their own values of an x-axis key such as ``global_step``), so
the raw arrays only line up by row position. A grid resamples each run at shared x values: with
``linear`` interpolation within the run's own range, or ``previous`` (the last value logged at
or before x). Outside a run's own range the value is NaN either way, so a run that started late
or stopped early never seems to have data it did not log, and ``np.nanmean(a, axis=0)`` is the
mean curve over the runs that reached each x.

The grid's range (its ``span``) is either ``common``, where every run has data, so each x
averages every run, or ``all``, from the earliest start to the latest end. Either can mislead
when one run is much shorter than the others (it cuts every curve short, or a tail averages a
few runs), so that case is warned about with the runs named.

Pure functions: the pipeline applies them after assembly and the plot command reuses them on
exported files.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from .config import GridSpec, Method

__all__ = [
    "GridRange",
    "GridSpec",
    "Outlier",
    "common_range",
    "format_x",
    "grid_range",
    "make_grid",
    "outliers",
    "resample",
    "run_label",
    "run_ranges",
    "whole_range",
]

log = logging.getLogger(__name__)


class _Arrays(Protocol):
    """A field's arrays: what `assemble.FieldArrays` and the exported files both provide."""

    @property
    def values(self) -> np.ndarray: ...

    @property
    def steps(self) -> np.ndarray: ...


def run_ranges(fields: Iterable[_Arrays]) -> tuple[np.ndarray, np.ndarray]:
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


def whole_range(starts: np.ndarray, ends: np.ndarray) -> tuple[float, float] | None:
    """[earliest start, latest end] over the runs with data; None when no run has data."""
    ok = ~np.isnan(starts) & ~np.isnan(ends)
    if not ok.any():
        return None
    return float(np.min(starts[ok])), float(np.max(ends[ok]))


def format_x(x: float) -> str:
    """An x value as people read steps: ``243,720`` for whole numbers, ``0.125`` otherwise."""
    if math.isfinite(x) and x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:.6g}"


@dataclass(frozen=True)
class Outlier:
    """A run whose range is much shorter than the median run's: where it starts or ends."""

    run: int  # row index
    label: str
    side: Literal["ends", "starts"]
    x: float


def outliers(starts: np.ndarray, ends: np.ndarray, labels: Sequence[str] | None = None) -> list[Outlier]:
    """Runs that end before the first half of the median run's range is over, or start after
    it: the ones that cut a ``common`` range short, or leave an ``all`` range thinly covered.

    The median run is the median start to the median end, so a few odd runs do not move it.
    """
    ok = ~np.isnan(starts) & ~np.isnan(ends)
    if ok.sum() < 2:
        return []
    med_lo, med_hi = float(np.median(starts[ok])), float(np.median(ends[ok]))
    half = (med_hi - med_lo) / 2
    if half <= 0:
        return []
    names = list(labels) if labels is not None else [str(i) for i in range(len(starts))]
    found = []
    for i in np.flatnonzero(ok):
        if ends[i] < med_hi - half:
            found.append(Outlier(int(i), names[i], "ends", float(ends[i])))
        elif starts[i] > med_lo + half:
            found.append(Outlier(int(i), names[i], "starts", float(starts[i])))
    return found


@dataclass(frozen=True)
class GridRange:
    """Which x range a grid covers and why: for the summary, the JSON summary and the warning."""

    span: str  # "common", "all" or "values"
    lo: float  # NaN when no run has data
    hi: float
    other: tuple[float, float] | None = None  # the range of the other span, when it differs
    outliers: tuple[Outlier, ...] = ()

    def warning(self, experiment: str, x_axis: str, *, shown: int = 5) -> str | None:
        """One line naming the runs that limit (``common``) or thin out (``all``) the range,
        with their last (or first) x, and how to get the other span; None when nothing to say."""
        if not self.outliers or self.span == "values":
            return None
        runs = f"{len(self.outliers)} run(s) cover less than half of the median run's range: {self.short_runs(shown)}"
        other = f" ({format_x(self.other[0])} to {format_x(self.other[1])})" if self.other is not None else ""
        lo, hi = format_x(self.lo), format_x(self.hi)
        if self.span == "common":
            return (
                f"{experiment}: the grid covers only {x_axis} {lo} to {hi}, the range every run "
                f"covers; {runs}. grid: {{span: all}} (plot: --span all) covers every run's whole "
                f"range{other}, NaN where a run has no data"
            )
        return (
            f"{experiment}: the grid covers {x_axis} {lo} to {hi}, but {runs}; where they have "
            f"no data the curves average fewer runs. grid: {{span: common}} (plot: --span common) keeps to "
            f"the range every run covers{other}"
        )

    def short_runs(self, shown: int = 5) -> str:
        """``name [id] (last x 119), ...``: the first `shown` outliers, and how many more."""
        listed = ", ".join(
            f"{o.label} ({'last' if o.side == 'ends' else 'first'} x {format_x(o.x)})" for o in self.outliers[:shown]
        )
        more = f" and {len(self.outliers) - shown} more" if len(self.outliers) > shown else ""
        return listed + more

    def as_json(self) -> dict[str, Any]:
        return {
            "span": self.span,
            "from": None if math.isnan(self.lo) else self.lo,
            "to": None if math.isnan(self.hi) else self.hi,
            "short_runs": [{"run": o.label, o.side: o.x} for o in self.outliers],
        }


def grid_range(spec: GridSpec, starts: np.ndarray, ends: np.ndarray, labels: Sequence[str] | None = None) -> GridRange:
    """The range `spec` covers over runs with these `starts` and `ends`, and the runs whose range
    is much shorter than the median run's."""
    if spec.values is not None:
        return GridRange("values", spec.values[0], spec.values[-1])
    common, whole = common_range(starts, ends), whole_range(starts, ends)
    chosen, other = (whole, common) if spec.span == "all" else (common, whole)
    if chosen is None:
        return GridRange(spec.span, math.nan, math.nan)
    return GridRange(
        spec.span, chosen[0], chosen[1], other if other != chosen else None, tuple(outliers(starts, ends, labels))
    )


def make_grid(spec: GridSpec, starts: np.ndarray, ends: np.ndarray, span: GridRange | None = None) -> np.ndarray:
    """The x values of the grid, ascending, as float64.

    ``points``: N evenly spaced values over the span (`grid_range`, unless given). ``every``: the
    multiples of D inside it, so two experiments exported with the same D share x values.
    ``values``: as given.
    """
    if spec.values is not None:
        return np.asarray(spec.values, dtype=np.float64)
    span = span if span is not None else grid_range(spec, starts, ends)
    if math.isnan(span.lo):
        return np.empty(0, dtype=np.float64)
    lo, hi = span.lo, span.hi
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


def run_label(name: str, run_id: str) -> str:
    """How a warning names a run: its display name, and its id when that differs."""
    return run_id if not name or name == run_id else f"{name} [{run_id}]"
