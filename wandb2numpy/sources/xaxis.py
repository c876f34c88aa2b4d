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
for finished ones). A run read sampled whose join then drops rows (KEY and the fields had equal
counts but not the same rows) is read again in full. `read_runs` does all of this on top of any
`HistorySource`; the pipeline only calls it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import anyio
import numpy as np

from ..models import RunInfo
from ..series import Series
from .base import HistorySource, ProgressFn, RunOutcome

__all__ = ["DEFAULT_X_AXIS", "XRead", "Realigned", "read_in_full", "read_runs", "realign", "thin", "thinned"]

from ..config.defaults import DEFAULT_X_AXIS
from ..plan.reads import read_in_full, thinned


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


def realign(series: Mapping[str, Series], key: str, fields: Sequence[str], *, samples: int | None = None) -> Realigned:
    """`fields` of one run with KEY's value of the same row as their steps.

    Row order is kept (by ``_step``), so an x axis that goes back (a counter reset on resume)
    shows as it was logged. With `samples`, each field is then thinned to that many rows.
    """
    x = series.get(key)
    out = Realigned(series={}, has_key=x is not None and len(x) > 0)
    if x is not None and len(x) > 1 and not bool(np.all(x.steps[1:] > x.steps[:-1])):
        order = np.argsort(x.steps, kind="stable")
        x = Series(steps=x.steps[order], values=x.values[order])
    for name in fields:
        s = series.get(name)
        if s is None:
            continue
        if x is None or not len(x):
            out.dropped[name] = len(s)
            continue
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


@dataclass
class XRead:
    """An experiment's runs read for an x axis."""

    outcomes: list[RunOutcome]  # as the source returned them, by _step (the incremental cache keeps these)
    series: list[dict[str, Series] | None]  # per run on the x axis; None where the run failed
    dropped: dict[str, int]  # rows without an x, per field
    runs_without_key: int  # runs that logged fields but never KEY


async def read_runs(
    source: HistorySource,
    runs: Sequence[RunInfo],
    fields: Sequence[str],
    key: str,
    *,
    samples: int | None,
    progress: ProgressFn | None = None,
    on_reread: Callable[[int], None] | None = None,
) -> XRead:
    """Read `fields` and KEY of `runs` and put the fields on KEY (see the module docstring).
    `on_reread` hears how many runs are read again in full, before they are."""
    read_fields = list(fields) if key in fields else [*fields, key]
    in_full = [read_in_full(r, key, fields, samples) for r in runs]
    outcomes = await _read_parts(source, runs, read_fields, in_full, samples, progress)

    def moved(o: RunOutcome) -> Realigned | None:
        # Thinning is a no-op for runs the server sampled already.
        return None if o.error else realign(o.series, key, fields, samples=samples)

    joined = [moved(o) for o in outcomes]
    # Read sampled on the guess that KEY and the fields share their rows: a join that drops rows
    # says the guess was wrong.
    again = [
        i
        for i, m in enumerate(joined)
        if m is not None and m.dropped and not in_full[i] and thinned(runs[i], read_fields, samples)
    ]
    if again:
        if on_reread is not None:
            on_reread(len(again))
        full = await source.read_runs([runs[i] for i in again], read_fields, samples=None)
        for i, o in zip(again, full):
            outcomes[i], joined[i] = o, moved(o)
    dropped: dict[str, int] = {}
    for m in joined:
        for name, n in (m.dropped if m is not None else {}).items():
            dropped[name] = dropped.get(name, 0) + n
    without = sum(1 for o, m in zip(outcomes, joined) if m is not None and not m.has_key and o.series)
    return XRead(outcomes, [m.series if m is not None else None for m in joined], dropped, without)


async def _read_parts(
    source: HistorySource,
    runs: Sequence[RunInfo],
    fields: Sequence[str],
    in_full: Sequence[bool],
    samples: int | None,
    progress: ProgressFn | None,
) -> list[RunOutcome]:
    """The runs marked `in_full` with full history and the others sampled, side by side on the
    same workers; one call when all are read alike."""
    if not any(in_full):
        return await source.read_runs(runs, fields, samples=samples, progress=progress)
    outcomes: list[RunOutcome] = [RunOutcome() for _ in runs]

    async def read(full: bool) -> None:
        indices = [i for i, f in enumerate(in_full) if f is full]
        if indices:
            got = await source.read_runs(
                [runs[i] for i in indices], fields, samples=None if full else samples, progress=progress
            )
            for i, o in zip(indices, got):
                outcomes[i] = o

    async with anyio.create_task_group() as tg:
        tg.start_soon(read, True)
        tg.start_soon(read, False)
    return outcomes
