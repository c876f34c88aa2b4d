"""What the pipeline asks of a history source, and what a source hands back.

A source lists an experiment's runs and reads fields of those runs into `Series` (arrays, never
row dicts). The pipeline, the incremental cache and the writers see only this interface, so a new
way of reading history (parquet exports, batched listing reads, offline run folders) is one new
module in this package.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from ..config import ExperimentConfig
from ..models import RunInfo
from ..runner import FetchStats
from ..series import Series

__all__ = ["HistorySource", "OutcomeFn", "ProgressFn", "RunEvent", "RunOutcome"]

RunEvent = Literal["run_done", "run_failed"]
ProgressFn = Callable[[RunEvent, RunInfo, int], None]  # (event, run, rows)
# Each run's outcome as soon as it is complete (the incremental cache saves it then, so an
# interrupted export keeps what it read).
OutcomeFn = Callable[[RunInfo, "RunOutcome"], None]


@dataclass
class RunOutcome:
    """What one run produced: a series per field it holds, or the reason it failed."""

    series: dict[str, Series] = field(default_factory=dict)
    error: str | None = None
    # fields the run holds but not as numbers, with the reason (shown in the summary)
    non_numeric: dict[str, str] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(len(s) for s in self.series.values())


class HistorySource(Protocol):
    """One export's access to run histories. Created per export, closed at its end."""

    @property
    def stats(self) -> FetchStats:
        """Requests, retries and rows so far, for the summary and the benchmarks."""

    async def prepare(self) -> None:
        """Work worth starting while the runs are being listed (connections, sessions)."""

    async def list_runs(self, exp: ExperimentConfig) -> list[RunInfo]:
        """The runs matching the experiment's filters, in the order the arrays get their rows."""

    async def read_runs(
        self,
        runs: Sequence[RunInfo],
        fields: Sequence[str],
        *,
        samples: int | None,
        progress: ProgressFn | None = None,
        starts: Sequence[int] | None = None,
        on_outcome: OutcomeFn | None = None,
    ) -> list[RunOutcome]:
        """History of `fields` for every run, in the order of `runs`; a run that fails gets an
        outcome with `error` set instead of failing the others. `samples`: None for every row,
        otherwise at most that many rows per field, sampled as the source's server samples.
        `starts`: per run, the first step to read (the incremental cache holds the steps before);
        the caller then checks completeness, as the listing's counts cover the whole run.
        `on_outcome`: called with each run's outcome as soon as that run is complete."""

    def close(self) -> None:
        """Release what the source holds (threads watching logs, sessions)."""
