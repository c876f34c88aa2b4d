"""``x_axis: KEY``: steps arrays that hold a logged key (``global_step``, ``env_steps``) instead of
``_step``.

Every source returns each field by ``_step``; the x value of a row is KEY's value in the same
row, found by joining the two series on ``_step``. Rows where KEY was not logged (or logged as
NaN) have no x and are dropped, and counted, so the summary can say how many.

The server samples each request on its own, so in sampled mode a field's sample and KEY's sample
share rows only when they come from one request. Keys logged in the same rows (equal counts) are
asked for together, so a run whose KEY has every field's row count is read sampled as usual.
Other runs that sampling would thin are read in full and thinned here, after the join, to the
same number of evenly spaced rows; that costs more rows on long runs (parquet reads keep it cheap
for finished ones).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .models import RunInfo
from .series import Series

__all__ = ["DEFAULT_X_AXIS", "Realigned", "read_in_full", "realign", "thin", "thinned"]

DEFAULT_X_AXIS = "_step"


def thinned(run: RunInfo, keys: Sequence[str], samples: int | None) -> bool:
    """Whether the server's sampling could thin this run's rows of `keys` (without history-key
    counts in the listing, assume it could)."""
    if samples is None:
        return False
    if not run.history_keys:
        return True
    return any((info := run.history_keys.get(k)) is not None and info.count > samples for k in keys)


def read_in_full(run: RunInfo, key: str, fields: Sequence[str], samples: int | None) -> bool:
    """Whether to read this run in full and thin it after the join.

    Not when sampling keeps every row, and not when KEY has the same row count as every field
    (``global_step`` logged with every metric, the usual case): the sources ask for keys with
    equal counts in one request, which the server samples as one, so field and KEY come from the
    same rows. Should that guess be wrong, the join drops rows and the pipeline reads the run
    again in full (see `needs_full_read`).
    """
    if not thinned(run, [key, *fields], samples):
        return False
    info = run.history_keys.get(key)
    if info is None:
        return True
    return any((f_info := run.history_keys.get(f)) is not None and f_info.count != info.count for f in fields)


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
