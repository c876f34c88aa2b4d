"""Which history source each experiment reads: the run folders its `source:` names, else the W&B
server, or the one source a caller hands the pipeline for every experiment.

One reader per distinct `source:` path, shared by the experiments that name it (they decode its
files once); one W&B source for all the others, created only if some experiment needs it, so an
export of run folders alone never starts wandb-core or imports wandb.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from ..config import ExperimentConfig
from ..runner import FetchStats
from .base import HistorySource

__all__ = ["Sources"]


class Sources:
    """The sources of one export's experiments; closes the ones it made."""

    def __init__(
        self,
        configs: Sequence[ExperimentConfig],
        *,
        service: Callable[[], HistorySource],
        given: HistorySource | None = None,
        incremental: bool = False,
    ) -> None:
        self._given = given
        self._service: HistorySource | None = None
        self._folders: dict[str, HistorySource] = {}
        self._stats = FetchStats()  # the run-folder readers count rows into one
        if given is not None:
            return
        if any(c.run_folders is None for c in configs):
            self._service = service()
        for c in configs:
            if c.run_folders is not None and c.run_folders not in self._folders:
                from .runfolders.source import RunFolderSource

                self._folders[c.run_folders] = RunFolderSource(
                    c.run_folders, stats=self._stats, listing_cache=incremental
                )

    def of(self, exp: ExperimentConfig) -> HistorySource:
        if self._given is not None:
            return self._given
        if exp.run_folders is not None:
            return self._folders[exp.run_folders]
        assert self._service is not None
        return self._service

    @property
    def primary(self) -> HistorySource:
        """The source whose shape plans the reads and whose stats the progress bars show."""
        if self._given is not None:
            return self._given
        if self._service is not None:
            return self._service
        return next(iter(self._folders.values()))

    @property
    def stats(self) -> FetchStats:
        """Requests and rows of every source, summed."""
        if self._given is not None:
            return self._given.stats
        if self._service is None:
            return self._stats
        total = dataclasses.replace(self._service.stats)
        total.rows += self._stats.rows
        return total

    async def prepare(self) -> None:
        if self._given is not None:
            await self._given.prepare()
        elif self._service is not None:
            await self._service.prepare()

    def close(self) -> None:
        """Close the sources made here (a given one belongs to its caller)."""
        made = [*self._folders.values(), *([self._service] if self._service is not None else [])]
        for source in made:
            source.close()
