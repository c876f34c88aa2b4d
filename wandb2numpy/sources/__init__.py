"""Where history comes from. `base` says what a source is; `service` is the W&B server; `xaxis` and
`cache` wrap any source; `read_plan` reads one experiment's plan through a source."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..config.defaults import DEFAULT_X_AXIS
from ..models import RunInfo
from ..series import Series
from .base import HistorySource, ProgressFn, RunEvent, RunOutcome

if TYPE_CHECKING:
    from ..plan import ExperimentPlan

__all__ = ["HistorySource", "PlanRead", "ProgressFn", "RunEvent", "RunOutcome", "read_plan"]

log = logging.getLogger(__name__)


class ProgressLike(Protocol):
    def advance(self, experiment: str, run: RunInfo, rows: int, failed: bool) -> None: ...


@dataclass
class PlanRead:
    """What reading one experiment's plan gave: per run the outcome and its series (on the x axis
    when the plan has one), and the rows dropped for want of an x value."""

    outcomes: list[RunOutcome]
    series: list[Mapping[str, Series] | None]
    x_dropped: dict[str, int] = field(default_factory=dict)
    runs_without_x: int = 0


async def read_plan(plan: ExperimentPlan, source: HistorySource, progress: ProgressLike | None) -> PlanRead:
    """The plan's history through the source: by `_step`, or joined on the x-axis key."""
    exp = plan.config

    def on_run(event: RunEvent, run: RunInfo, rows: int) -> None:
        if progress is not None:
            progress.advance(exp.name, run, rows, event == "run_failed")

    runs, fields = list(plan.runs), list(plan.fields)
    if exp.x_axis == DEFAULT_X_AXIS:
        outcomes = await source.read_runs(runs, fields, samples=exp.history_samples, progress=on_run)
        return PlanRead(outcomes, [None if o.error else o.series for o in outcomes])

    def reread(n: int) -> None:
        log.info(
            "%s: %d run(s) did not log %s in the rows of every field; reading them in full", exp.name, n, exp.x_axis
        )

    from . import xaxis  # only for exports on another x axis

    on_key = await xaxis.read_runs(
        source, runs, fields, exp.x_axis, samples=exp.history_samples, progress=on_run, on_reread=reread
    )
    if on_key.dropped:
        log.warning(
            "%s: %s row(s) without x_axis '%s' dropped (%s)",
            exp.name,
            f"{sum(on_key.dropped.values()):,}",
            exp.x_axis,
            ", ".join(f"{f} {n:,}" for f, n in on_key.dropped.items()),
        )
    return PlanRead(on_key.outcomes, list(on_key.series), on_key.dropped, on_key.runs_without_key)
