"""What an export hands back: per experiment its arrays and what happened, and the progress
callbacks the CLI draws bars with. Plain data, so the CLI's summary and the JSON record read
them without importing the pipeline's machinery."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .assemble import ExperimentResult
from .config import ExperimentConfig
from .models import RunInfo
from .runner import FetchStats


class Progress(Protocol):
    """Receives progress; the CLI draws tqdm bars with it, the Python API passes none."""

    def start(self, experiment: str, total_runs: int) -> None: ...

    def advance(self, experiment: str, run: RunInfo, rows: int, failed: bool) -> None: ...

    def finish(self, experiment: str) -> None: ...


@dataclass
class ExperimentReport:
    name: str
    result: ExperimentResult
    listed_runs: int
    files: list[Path] = field(default_factory=list)
    filters: Mapping[str, Any] = field(default_factory=dict)
    unchanged_runs: int = 0  # incremental mode: runs taken from the cache, not fetched
    # Why the experiment came back empty, one line each: no run matched its filters, no matched
    # run holds a requested field, or a field it names was logged by no matched run (exit 4).
    problems: list[str] = field(default_factory=list)
    grown_runs: int = 0  # incremental mode: fetched runs that read only their new steps
    # incremental mode: runs the last export cached that the listing no longer shows (deleted on
    # the server, or no longer matching the filters), by id
    gone_runs: list[str] = field(default_factory=list)
    incremental: bool = False
    # x_axis other than _step: rows dropped for want of an x value, per field, and how many
    # runs never logged the x_axis key at all
    x_dropped: dict[str, int] = field(default_factory=dict)
    runs_without_x: int = 0

    @property
    def fetched_runs(self) -> int:
        """Runs whose history was asked for (all of them, unless incremental)."""
        return self.listed_runs - self.unchanged_runs

    @property
    def skipped_runs(self) -> int:
        """Runs that matched the filters but hold none of the requested fields."""
        return self.listed_runs - len(self.result.runs) - len(self.result.failed_runs)


@dataclass
class ExportResult:
    experiments: dict[str, ExperimentReport]
    configs: list[ExperimentConfig]
    stats: FetchStats
    wall_s: float = 0.0

    @property
    def files(self) -> list[Path]:
        return [f for e in self.experiments.values() for f in e.files]

    @property
    def runs_exported(self) -> int:
        return sum(len(e.result.runs) for e in self.experiments.values())

    @property
    def runs_failed(self) -> int:
        return sum(len(e.result.failed_runs) for e in self.experiments.values())

    @property
    def runs_skipped(self) -> int:
        return sum(e.skipped_runs for e in self.experiments.values())

    @property
    def problems(self) -> list[str]:
        return [p for e in self.experiments.values() for p in e.problems]

    @property
    def exit_code(self) -> int:
        """0 done, 3 some runs failed, 4 something asked for came back empty (see `problems`)."""
        return 4 if self.problems else 3 if self.runs_failed else 0
