"""History of the first listing pages read while later pages are still coming.

The plan still comes from the whole listing, and alone decides outputs, verdicts, warnings and
exit codes (`--dry-run` prints the same plan). A listing page is read ahead only when no later
page could block the experiment (`plan.may_read_ahead`), and its requests are the plan's own for
that page: reads are planned and sent a listing page at a time (`plan.reads.plan_reads`). The
export's read then takes the page's outcomes instead of reading it again (`AheadSource`). A plan
that comes out blocked anyway, or a page the final listing holds otherwise (the listing was asked
again and changed), has its read cancelled and its outcomes thrown away: nothing of it is written.

Data still flows one way: listing -> (pages read ahead) -> plan -> read -> assemble -> write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import anyio
from anyio.abc import TaskGroup

from ..config import ExperimentConfig
from ..models import RunInfo
from ..runner import FetchStats, task_group
from .base import HistorySource, OutcomeFn, ProgressFn, RunEvent, RunOutcome

__all__ = ["AheadSource", "ReadAhead"]

log = logging.getLogger(__name__)

OnRuns = Callable[[list[RunInfo]], None]


class ListsAhead(HistorySource, Protocol):
    """A source that tells the runs listed so far as each listing page starts, and reads some
    pages of a longer listing as that listing's pages are read (`WandbSource`)."""

    @property
    def listing_page(self) -> int: ...

    async def list_runs_ahead(self, exp: ExperimentConfig, on_runs: OnRuns) -> list[RunInfo]: ...

    async def read_runs(
        self,
        runs: Sequence[RunInfo],
        fields: Sequence[str],
        *,
        samples: int | None,
        progress: ProgressFn | None = None,
        starts: Sequence[int] | None = None,
        on_outcome: OutcomeFn | None = None,
        first_page: int = 0,
        ends_listing: bool = True,
    ) -> list[RunOutcome]: ...


class _Page:
    """One listing page read ahead: its runs, its outcomes once read, and the progress events
    it gave before the export's read took it (replayed then, so bars count every run once)."""

    def __init__(self, index: int, runs: Sequence[RunInfo], fields: Sequence[str], samples: int | None) -> None:
        self.index = index
        self.runs = tuple(runs)
        self.fields = tuple(fields)
        self.samples = samples
        self.outcomes: list[RunOutcome] | None = None
        self.done = anyio.Event()
        self.scope = anyio.CancelScope()
        self._events: list[tuple[RunEvent, RunInfo, int]] = []
        self._forward: ProgressFn | None = None

    def progress(self, event: RunEvent, run: RunInfo, rows: int) -> None:
        if self._forward is not None:
            self._forward(event, run, rows)
        else:
            self._events.append((event, run, rows))

    def attach(self, progress: ProgressFn | None) -> None:
        events, self._events = self._events, []
        self._forward = progress or _ignore
        for event in events:
            self._forward(*event)

    async def read(self, source: ListsAhead) -> None:
        try:
            with self.scope:
                self.outcomes = await source.read_runs(
                    list(self.runs),
                    list(self.fields),
                    samples=self.samples,
                    progress=self.progress,
                    first_page=self.index,
                    ends_listing=False,
                )
        finally:
            self.done.set()


def _ignore(event: RunEvent, run: RunInfo, rows: int) -> None:
    pass


class ReadAhead:
    """The pages read ahead in one export, started in the export's task group."""

    def __init__(self, tg: TaskGroup) -> None:
        self._tg = tg
        self._pages: dict[str, list[_Page]] = {}

    async def list_runs(self, exp: ExperimentConfig, source: HistorySource) -> list[RunInfo]:
        """The experiment's runs, as `source.list_runs` gives them; pages read meanwhile where
        the source tells its listing page by page."""
        if getattr(source, "list_runs_ahead", None) is None:
            return await source.list_runs(exp)
        ahead: ListsAhead = source  # type: ignore[assignment]
        return await ahead.list_runs_ahead(exp, self._on_runs(exp, ahead))

    def _on_runs(self, exp: ExperimentConfig, source: ListsAhead) -> OnRuns:
        pages = self._pages.setdefault(exp.name, [])
        size = source.listing_page

        def on_runs(runs: list[RunInfo]) -> None:
            from ..plan import may_read_ahead  # the plan's rule; plan imports no source

            if not may_read_ahead(exp, runs):
                return
            # Full pages of a listing known to go on past them: it has more than one page, so they
            # are read as a longer listing's pages are. A listing asked again starts over: pages
            # already read are compared with the final listing at the end, not read twice.
            while (len(pages) + 1) * size <= len(runs):
                lo = len(pages) * size
                page = _Page(len(pages), runs[lo : lo + size], exp.fields or (), exp.history_samples)
                pages.append(page)
                self._tg.start_soon(page.read, source)

        return on_runs

    def source_for(self, name: str, blocked: bool, source: HistorySource) -> HistorySource:
        """What the experiment's read goes through: its pages read ahead, then `source`. A blocked
        plan's pages are cancelled: it sends no more requests and writes nothing of them."""
        pages = self._pages.pop(name, [])
        if not pages:
            return source
        if blocked:
            _cancel(pages, f"{name}: the plan is blocked")
            return source
        ahead: ListsAhead = source  # type: ignore[assignment]  # only such a source has pages
        return AheadSource(ahead, pages)


def _cancel(pages: Sequence[_Page], why: str) -> None:
    if pages:
        log.info("%s; %d listing page(s) read ahead are thrown away", why, len(pages))
    for page in pages:
        page.scope.cancel()


class AheadSource:
    """`inner`, with the leading listing pages of an experiment's runs already read ahead."""

    def __init__(self, inner: ListsAhead, pages: Sequence[_Page]) -> None:
        self.inner = inner
        self._pages = list(pages)

    @property
    def stats(self) -> FetchStats:
        return self.inner.stats

    async def prepare(self) -> None:
        await self.inner.prepare()

    async def list_runs(self, exp: ExperimentConfig) -> list[RunInfo]:
        return await self.inner.list_runs(exp)

    def close(self) -> None:
        self.inner.close()

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
        pages, self._pages = self._pages, []
        ready = _taken(pages, runs, fields, samples) if starts is None and on_outcome is None else 0
        _cancel(pages[ready:], "the final listing holds other runs than were read ahead")
        outcomes: list[RunOutcome] = [RunOutcome() for _ in runs]
        lo = sum(len(p.runs) for p in pages[:ready])

        async def take(at: int, page: _Page) -> None:
            page.attach(progress)
            await page.done.wait()
            assert page.outcomes is not None  # a page the listing kept is never cancelled
            outcomes[at : at + len(page.runs)] = page.outcomes

        async def rest() -> None:
            first = None if starts is None else starts[lo:]
            outcomes[lo:] = await self.inner.read_runs(
                runs[lo:],
                fields,
                samples=samples,
                progress=progress,
                starts=first,
                on_outcome=on_outcome,
                first_page=ready,
            )

        async with task_group() as tg:
            at = 0
            for page in pages[:ready]:
                tg.start_soon(take, at, page)
                at += len(page.runs)
            if lo < len(runs):
                tg.start_soon(rest)
        return outcomes


def _taken(pages: Sequence[_Page], runs: Sequence[RunInfo], fields: Sequence[str], samples: int | None) -> int:
    """How many leading pages were read ahead exactly as this read would read them: the same
    runs, fields and samples, and a page that is still not the listing's last (a last page is
    planned over every worker)."""
    at = 0
    for k, page in enumerate(pages):
        end = at + len(page.runs)
        same = tuple(runs[at:end]) == page.runs and end < len(runs)
        if not same or page.fields != tuple(fields) or page.samples != samples:
            return k
        at = end
    return len(pages)
