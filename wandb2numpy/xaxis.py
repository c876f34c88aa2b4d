"""``x_axis: KEY``: steps arrays that hold a logged key (``global_step``, ``env_steps``) instead of
``_step``.

Every source returns each field by ``_step``; the x value of a row is KEY's value in the same
row, found by joining the two series on ``_step``. Rows where KEY was not logged (or logged as
NaN) have no x and are dropped, and counted, so the summary can say how many.

The server samples each request on its own, so in sampled mode a field's sample and KEY's sample
need not share rows. Runs that sampling would thin are therefore read in full and thinned here,
after the join, to the same number of evenly spaced rows; runs that fit in ``history_samples``
are read as before. That costs more rows on long runs; parquet reads keep it cheap for finished
ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .models import RunInfo
from .series import Series

__all__ = ["DEFAULT_X_AXIS", "Realigned", "read_in_full", "realign", "thin"]

DEFAULT_X_AXIS = "_step"


def read_in_full(run: RunInfo, keys: Sequence[str], samples: int | None) -> bool:
    """Whether the server's sampling could thin this run's rows of `keys` (then join first, thin
    after). Without history-key counts in the listing, assume it could."""
    if samples is None:
        return False
    if not run.history_keys:
        return True
    return any((info := run.history_keys.get(k)) is not None and info.count > samples for k in keys)


@dataclass
class Realigned:
    """One run's fields on the x axis, with the rows dropped for want of an x, per field."""

    series: dict[str, Series]
    dropped: dict[str, int] = field(default_factory=dict)
    has_key: bool = True  # the run logged KEY at all


def thin(s: Series, samples: int) -> Series:
    """At most `samples` evenly spaced rows, first and last kept, like the server's sampling."""
    n = len(s)
    if n <= samples:
        return s
    idx = np.unique(np.round(np.linspace(0, n - 1, samples)).astype(np.int64))
    return Series(steps=s.steps[idx], values=s.values[idx])


def realign(
    series: Mapping[str, Series], key: str, fields: Sequence[str], *, samples: int | None = None
) -> Realigned:
    """`fields` of one run with KEY's value of the same row as their steps.

    Row order is kept (by ``_step``), so an x axis that goes back (a counter reset on resume)
    shows as it was logged. With `samples`, each field is then thinned to that many rows.
    """
    x = series.get(key)
    out = Realigned(series={}, has_key=x is not None and len(x) > 0)
    for name in fields:
        s = series.get(name)
        if s is None:
            continue
        if x is None or not len(x):
            out.dropped[name] = len(s)
            continue
        if len(x) > 1 and not bool(np.all(x.steps[1:] > x.steps[:-1])):
            order = np.argsort(x.steps, kind="stable")
            x = Series(steps=x.steps[order], values=x.values[order])
        pos = np.searchsorted(x.steps, s.steps)
        pos = np.minimum(pos, len(x) - 1)
        match = x.steps[pos] == s.steps
        xs = x.values[pos]
        match &= ~np.isnan(xs)
        got = Series(steps=xs[match], values=s.values[match])
        if samples is not None:
            got = thin(got, samples)
        dropped = int(len(s) - np.count_nonzero(match))
        if dropped:
            out.dropped[name] = dropped
        if len(got):
            out.series[name] = got
    return out
