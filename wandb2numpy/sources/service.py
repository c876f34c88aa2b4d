"""History from a W&B server through the unmodified `wandb` client.

Everything that knows the W&B client and its queries for history lives here and in `client.py`
(which holds the wire calls and the error classification): which requests to plan for a run
(co-logged key groups, one sampled request or page-aligned step ranges spread over idle workers),
when an answer is short (re-ask per key, then through wandb's own scan), and what each call costs
in requests for the rate gate. The concurrency itself is the generic `fetch.Runner`'s.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio

from ..config import ExperimentConfig
from ..config.filters import build_filters
from ..errors import AuthError
from ..models import RunInfo
from ..plan.reads import (
    batch_groups,
    co_logged_groups,
    expected_rows,
    fits_batch,
    group_read,
    listing_pages,
    page_workers,
    parquet_eligible,
    plan_keys,
    range_cost,
    spare_workers,
)
from ..runner import DEFAULT_CONCURRENCY, DeadlinePassed, FetchStats, RetryPolicy, Runner, task_group
from ..series import ParquetColumns, Series, merge_series
from ..wandb import calls, client
from ..wandb import files as wfiles
from ..wandb.client import ClientSettings
from .base import OutcomeFn, ProgressFn, RunEvent, RunOutcome

__all__ = ["WandbSource"]

log = logging.getLogger(__name__)

# Finished runs asked for their export, all without files, after which the export stops asking.
PARQUET_MISSES = 8
# Tries of a batched request before its runs are read one by one: a run that always fails would
# otherwise cost the whole per-request budget twice (in the batch, then on its own).
BATCH_ATTEMPTS = 2


class WandbSource:
    """The W&B server as a `HistorySource`, read over a bounded pool of worker slots."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self._apis = calls.Apis(settings)
        self._failures = calls.Failures(settings.api_key)
        self.runner = Runner(self._apis, self._failures, concurrency=concurrency, policy=policy)
        self._apis.runner = self.runner
        # Whether to ask for many small runs' history in one request; off for good once the
        # server shows it does not know the query.
        self._batch_ok = settings.batch_small_runs
        # Whether to ask finished runs for their parquet export; off for this export once the
        # server named none for the first `PARQUET_MISSES` runs asked (a server without exports).
        self._parquet_ok = settings.parquet
        self._parquet_answers = [0, 0]  # runs asked that had files, that had none
        self._parquet_switch = threading.Event()  # set: still asking (seen by calls in threads)
        if self._parquet_ok:
            self._parquet_switch.set()
        # Runs that failed after their retries, by id, with the message: another experiment of
        # the same export that reads them records the same failure without a request.
        self._failed: dict[str, str] = {}
        self._run_locks: dict[str, anyio.Lock] = {}

    @property
    def stats(self) -> FetchStats:
        return self.runner.stats

    @property
    def concurrency(self) -> int:
        return self.runner.concurrency

    def close(self) -> None:
        """Stop reading wandb-core's log."""
        if self._apis.watcher is not None:
            self._apis.watcher.stop()
        self.runner.close()

    async def prepare(self) -> None:
        """Create the `Api` objects of slots 10, 20, ... while the runs are being listed.

        The first one sends the `Viewer` query; the others cost no request, only a moment of
        local work that would otherwise fall on the first history calls of those slots. A failure
        here is left for the real call to meet and retry.
        """

        # Slot 0's first (made once, under the pool's lock, shared with the listing): until one
        # start-up query has worked the address is unproven, and more of them sent to a wrong one
        # in parallel only hold up the one-line diagnosis (wandb-core retried those for a minute).
        try:
            await anyio.to_thread.run_sync(self._apis.pool.for_slot, 0)
        except Exception as exc:  # noqa: BLE001 - the listing meets the same failure and reports it
            log.debug("creating the first Api failed: %s", self._failures.describe(exc))
            return

        async def make(slot: int) -> None:
            try:
                await anyio.to_thread.run_sync(self._apis.pool.for_slot, slot)
            except Exception as exc:  # noqa: BLE001 - the call that needs the slot reports it
                log.debug("creating the Api of slot %d failed: %s", slot, self._failures.describe(exc))

        async with task_group() as tg:
            for slot in range(client.REQUESTS_PER_API, self.concurrency, client.REQUESTS_PER_API):
                tg.start_soon(make, slot)

    @property
    def listing_page(self) -> int:
        return self.settings.listing_page

    async def list_runs(self, exp: ExperimentConfig) -> list[RunInfo]:
        return await self.list_filtered(exp.entity, exp.project, build_filters(exp))

    async def list_runs_ahead(self, exp: ExperimentConfig, on_runs: Callable[[list[RunInfo]], None]) -> list[RunInfo]:
        """`list_runs`, telling `on_runs` (in the event loop) the runs listed so far whenever the
        listing is known to go on past them, while it goes on (`sources.ahead`)."""

        def from_thread(runs: list[RunInfo]) -> None:
            anyio.from_thread.run_sync(on_runs, runs)

        return await self.list_filtered(exp.entity, exp.project, build_filters(exp), on_runs=from_thread)

    async def list_filtered(
        self,
        entity: str,
        project: str,
        filters: Mapping[str, Any],
        *,
        on_runs: Callable[[list[RunInfo]], None] | None = None,
    ) -> list[RunInfo]:
        try:
            return await self.runner.call(
                functools.partial(client.list_runs, per_page=self.settings.listing_page, on_runs=on_runs),
                entity,
                project,
                filters,
                what=f"listing runs of {entity}/{project}",
                kind="list_runs",
            )
        except (AuthError, DeadlinePassed):
            raise
        except Exception as exc:
            error = self._failures.to_error(exc, f"listing runs of {entity}/{project}")
            if error is exc:
                raise
            raise error from exc

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
    ) -> list[RunOutcome]:
        """A listing page of runs at a time, side by side, each read as if it were all the runs on
        its share of the workers (as `plan_reads` plans them): one page's requests never wait for,
        or depend on, another's. `first_page`: the listing page the runs begin with, and
        `ends_listing`: whether their last page is the listing's (other pages were read ahead,
        `sources.ahead`)."""
        pages = listing_pages(len(runs), self.settings.listing_page)
        outcomes: list[RunOutcome] = [RunOutcome() for _ in runs]

        async def page(k: int, lo: int, hi: int) -> None:
            workers = page_workers(self.concurrency, first_page + k, ends_listing and k == len(pages) - 1)
            first = None if starts is None else starts[lo:hi]
            outcomes[lo:hi] = await self._read_page(runs[lo:hi], fields, samples, progress, first, on_outcome, workers)

        if len(pages) == 1:
            await page(0, 0, len(runs))
            return outcomes
        async with task_group() as tg:
            for k, (lo, hi) in enumerate(pages):
                tg.start_soon(page, k, lo, hi)
        return outcomes

    async def _read_page(
        self,
        runs: Sequence[RunInfo],
        fields: Sequence[str],
        samples: int | None,
        progress: ProgressFn | None,
        starts: Sequence[int] | None,
        on_outcome: OutcomeFn | None,
        workers: int,
    ) -> list[RunOutcome]:
        outcomes: list[RunOutcome] = [RunOutcome() for _ in runs]
        first = list(starts) if starts is not None else [0] * len(runs)
        spare = spare_workers(workers, len(runs))
        plans: list[list[str]] = [plan_keys(run, fields, outcomes[i].non_numeric) for i, run in enumerate(runs)]

        def report(i: int) -> None:
            _drop_empty(outcomes[i])
            if on_outcome is not None:
                on_outcome(runs[i], outcomes[i])
            if progress is not None:
                event: RunEvent = "run_failed" if outcomes[i].error else "run_done"
                progress(event, runs[i], outcomes[i].rows)

        async def one(i: int) -> None:
            run = runs[i]
            # One experiment at a time reads a run on its own, so a run that fails for one is
            # known failed before another starts on it: recorded again, without a request.
            async with self._run_lock(run.id):
                await read_one(i, run)

        async def read_one(i: int, run: RunInfo) -> None:
            if run.id in self._failed:
                outcomes[i] = RunOutcome(error=self._failed[run.id], non_numeric=outcomes[i].non_numeric)
                report(i)
                return
            try:
                if plans[i]:
                    await self._read_run(run, plans[i], samples, spare, outcomes[i], first[i])
            except AuthError:
                raise
            except Exception as exc:  # noqa: BLE001 - one failed run is recorded, the others go on
                message = self._failures.describe(exc)
                # the one line per failed run: its retries were logged at INFO (runs the deadline
                # cut short share the runner's one warning)
                log.log(
                    logging.INFO if isinstance(exc, DeadlinePassed) else logging.WARNING,
                    "run %s (%s) failed: %s",
                    run.id,
                    run.name,
                    message,
                )
                outcomes[i] = RunOutcome(error=message, non_numeric=outcomes[i].non_numeric)
                self._failed.setdefault(run.id, message)
            report(i)

        async def batch(members: list[int]) -> None:
            left = await self._read_batch(
                [runs[i] for i in members], [plans[i] for i in members], samples, [outcomes[i] for i in members]
            )
            async with task_group() as tg:
                if left is None:  # the request failed: each run on its own, at once, so a broken
                    for i in members:  # run costs its own retry budget and no one else's
                        tg.start_soon(one, i)
                    return
                for j, i in enumerate(members):
                    if j in left:
                        tg.start_soon(one, i)
                    else:
                        report(i)

        groups = (
            batch_groups(runs, plans, samples, workers=workers, page_size=self.settings.page_size, starts=first)
            if self._batch_ok
            else []
        )
        # runs that failed for another experiment of this export are recorded without a request
        groups = [kept for g in groups if (kept := [i for i in g if runs[i].id not in self._failed])]
        batched = {i for g in groups for i in g}
        async with task_group() as tg:
            for g in groups:
                tg.start_soon(batch, g)
            for i in range(len(runs)):
                if i not in batched:
                    tg.start_soon(one, i)
        return outcomes

    def _run_lock(self, run_id: str) -> anyio.Lock:
        lock = self._run_locks.get(run_id)
        if lock is None:
            lock = self._run_locks[run_id] = anyio.Lock()
        return lock

    def _small(self, run: RunInfo, keys: Sequence[str], samples: int | None) -> bool:
        return fits_batch(run, keys, samples, self.settings.page_size)

    async def _read_batch(
        self,
        runs: Sequence[RunInfo],
        plans: Sequence[Sequence[str]],
        samples: int | None,
        outcomes: Sequence[RunOutcome],
    ) -> set[int] | None:
        """Read small runs in one request; the indices of runs still to read on their own (not in
        the answer, or short), or None if the request failed or the server refuses batches."""
        if not self._batch_ok:
            return None
        # One spec per co-logged key group found among the runs (usually the same for all runs of
        # a project): the server then sends each row once, not once per key.
        own = [co_logged_groups(run, plan) for run, plan in zip(runs, plans)]
        groups = list(dict.fromkeys(g for gs in own for g in gs))
        cap = samples if samples is not None else self.settings.page_size
        specs = [{"keys": ["_step", *group], "samples": cap} for group in groups]
        first = runs[0]
        what = f"history of {len(runs)} small runs of {first.entity}/{first.project}"
        try:
            answer = await self.runner.call(
                calls.batch,
                first.entity,
                first.project,
                [r.id for r in runs],
                specs,
                groups,
                what=what,
                attempts=BATCH_ATTEMPTS,
            )
        except AuthError:
            raise
        except Exception as exc:  # noqa: BLE001 - the runs are read one by one instead
            if client.is_batch_refusal(exc):
                if self._batch_ok:
                    self._batch_ok = False
                    log.warning("the server does not answer batched history queries; reading every run on its own")
            else:
                log.info("%s failed (%s); reading each on its own", what, self._failures.describe(exc))
            return None
        left: set[int] = set()
        for j, run in enumerate(runs):
            got = answer.get(run.id)
            if got is None:
                left.add(j)
                continue
            series: dict[str, Series] = {}
            bad: dict[str, str] = {}
            for group in own[j]:  # the answers for this run's own key groups
                one, one_bad = got[groups.index(group)]
                series.update(one)
                bad.update(one_bad)
            wanted = tuple(plans[j])
            if not _complete(run, tuple(k for k in wanted if k not in bad), series, samples):
                left.add(j)
                continue
            outcomes[j].non_numeric.update({k: v for k, v in bad.items() if k in wanted})
            outcomes[j].series.update({k: v for k, v in series.items() if k in wanted and k not in bad})
            self.stats.rows += sum(len(v) for k, v in series.items() if k in wanted)
        return left

    async def _read_run(
        self,
        run: RunInfo,
        wanted: Sequence[str],
        samples: int | None,
        spare: int,
        outcome: RunOutcome,
        start: int = 0,
    ) -> None:
        if (
            not start
            and self._parquet_eligible(run, wanted, samples)
            and await self._read_parquet(run, wanted, spare, outcome)
        ):
            return

        async def read_group(keys: tuple[str, ...]) -> None:
            got, paged = await self._read_keys(run, keys, samples, spare, outcome, start=start)
            if start == 0 and not _complete(run, keys, got, samples):
                if len(keys) > 1:
                    # Not logged on the same steps after all: ask for each key on its own.
                    async with task_group() as tg:
                        for key in keys:
                            tg.start_soon(read_group, (key,))
                    return
                if paged:
                    # The page queries returned fewer rows than the run says it logged (history
                    # the server keeps only in exported files?): read it with wandb's own scan.
                    log.warning("run %s: %s came back short; reading it again with wandb's scan", run.id, keys[0])
                    got, _ = await self._read_keys(run, keys, samples, spare, outcome, core=True)
            outcome.series.update(got)

        async with task_group() as tg:
            for keys in co_logged_groups(run, wanted):
                tg.start_soon(read_group, keys)

    def _parquet_eligible(self, run: RunInfo, wanted: Sequence[str], samples: int | None) -> bool:
        return self._parquet_ok and parquet_eligible(run, wanted, samples, self.settings.page_size)

    async def _read_parquet(self, run: RunInfo, wanted: Sequence[str], spare: int, outcome: RunOutcome) -> bool:
        """Read the run from its exported files (a request each) and its live tail (row-sized
        pages from the first live step). False, with `outcome` untouched: read it by pages
        instead (no export, counts that disagree with the listing, or any error)."""
        label = f"parquet history of run {run.id}"
        plan: client.ParquetPlan | None = None
        try:
            plan = await self.runner.call(
                calls.parquet_plan, run, self._parquet_switch, what=label, kind="parquet_plan"
            )
            if plan is None:  # switched off while the call waited for a slot: nothing was sent
                self.stats.requests -= 1
                return False
            self._parquet_seen(bool(plan.urls))
            if not plan.urls:
                log.info("run %s has no parquet export; reading its history by pages", run.id)
                return False
            files: list[ParquetColumns] = []

            async def one_file(url: str) -> None:
                if wfiles.ranges_pay(run.history_keys, wanted):
                    files.append(await self._read_parquet_ranges(url, wanted, label))
                    return
                try:
                    got = await self.runner.call(
                        calls.parquet_file, url, tuple(wanted), self.settings.timeout, what=label, kind="parquet_file"
                    )
                except client.ParquetFileError as exc:
                    if not exc.timed_out:
                        raise
                    log.info("%s: %s; reading its columns by ranges", label, exc)
                    got = await self._read_parquet_ranges(url, wanted, label, timed_out=exc.received)
                files.append(got)

            async with task_group() as tg:
                for url in plan.urls:
                    tg.start_soon(one_file, url)
        except AuthError:
            raise
        except Exception as exc:  # noqa: BLE001 - the pages still hold the history
            if plan is None:  # the query itself failed (a server without the field, say)
                self._parquet_seen(False)
            log.info("%s failed (%s); reading it by pages", label, self._failures.describe(exc))
            return False
        live = plan.live_min_step
        non_numeric: dict[str, str] = {}
        pieces: dict[str, list[Series]] = {k: [] for k in wanted}
        for got in files:
            non_numeric.update({k: v for k, v in got.non_numeric.items() if k not in non_numeric})
            for key, found in got.series.items():
                if live is not None and len(found) and found.steps[-1] >= live:
                    keep = found.steps < live  # the live pages serve these steps
                    found = Series(found.steps[keep], found.values[keep])
                pieces[key].append(found)
        if non_numeric:
            # The listing calls these numeric: a file that stores them otherwise (mixed bools
            # and numbers as text, say) is not to be second-guessed; the pages decide.
            log.info(
                "run %s: its parquet export stores %s as non-numeric; reading it by pages",
                run.id,
                ", ".join(sorted(non_numeric)),
            )
            return False
        numeric = list(wanted)
        in_files = {k: sum(len(p) for p in pieces[k]) for k in numeric}
        tail = {k: run.history_keys[k].count - in_files[k] for k in numeric}
        if any(n < 0 for n in tail.values()) or (live is None and any(tail.values())):
            log.info(
                "run %s: its parquet export holds %s rows where the listing counts %s; reading it by pages",
                run.id,
                in_files,
                {k: run.history_keys[k].count for k in numeric},
            )
            return False
        if live is not None and any(tail.values()):
            scratch = RunOutcome()
            if not await self._read_tail(run, tail, live, spare, scratch):
                log.info("run %s: its live rows after the parquet export came back short; reading it by pages", run.id)
                return False
            non_numeric.update(scratch.non_numeric)
            for key, found in scratch.series.items():
                pieces[key].append(found)
        outcome.non_numeric.update(non_numeric)
        for key in wanted:
            if key in non_numeric:
                continue
            merged = merge_series(pieces[key])
            outcome.series[key] = merged
            self.stats.rows += len(merged)
        return True

    async def _read_parquet_ranges(
        self, url: str, wanted: Sequence[str], label: str, timed_out: int | None = None
    ) -> ParquetColumns:
        """The file's footer, then only the needed columns' byte ranges (see `wandb/files.py`).

        `timed_out`: the file's whole GET timed out after that many bytes. It is never sent
        again as it was: the footer read is smaller, and each range is sized to arrive in half
        the timeout at the rate the GET showed. In both cases a range that times out is split
        in two, down to `files.MIN_RANGE`."""
        timeout = self.settings.timeout
        first = wfiles.FOOTER_READ if timed_out is None else wfiles.SLOW_FOOTER_READ
        tail = await self.runner.call(calls.parquet_footer, url, timeout, first, what=label, kind="parquet_range")
        if tail.start == 0:  # a small file, or a host that answered the whole file
            return await anyio.to_thread.run_sync(wfiles.decode, tail, {}, tuple(wanted))
        if timed_out is None:
            ranges = wfiles.column_ranges(tail, wanted)
        else:
            max_range = timed_out // 2 if timed_out else tail.size // 4
            ranges = wfiles.column_ranges(tail, wanted, max(wfiles.MIN_RANGE, max_range), wfiles.SLOW_MERGE_GAP)
        pieces: dict[int, bytes] = {}

        async def fetch(lo: int, hi: int) -> None:
            try:
                pieces[lo] = await self.runner.call(
                    calls.parquet_range, url, lo, hi, timeout, what=label, kind="parquet_range"
                )
            except client.ParquetFileError as exc:
                if not exc.timed_out or hi - lo <= wfiles.MIN_RANGE:
                    raise
                mid = (lo + hi) // 2
                async with task_group() as tg:
                    tg.start_soon(fetch, lo, mid)
                    tg.start_soon(fetch, mid, hi)

        async with task_group() as tg:
            for lo, hi in ranges:
                tg.start_soon(fetch, lo, hi)
        return await anyio.to_thread.run_sync(wfiles.decode, tail, pieces, tuple(wanted))

    def _parquet_seen(self, found: bool) -> None:
        """Count a run's export answer; no export among the first `PARQUET_MISSES` runs asked
        means a server without exports: stop asking (the pages were read all along anyway)."""
        self._parquet_answers[0 if found else 1] += 1
        if self._parquet_ok and self._parquet_answers == [0, PARQUET_MISSES]:
            self._parquet_ok = False
            self._parquet_switch.clear()
            log.info(
                "the server named no parquet export for %d finished runs; reading the others by pages without asking",
                PARQUET_MISSES,
            )

    async def _read_tail(
        self, run: RunInfo, tail: Mapping[str, int], start: int, spare: int, outcome: RunOutcome
    ) -> bool:
        """The rows at steps >= `start` of every key with rows there (`tail`: how many), keys
        with as many tail rows asked together and then one by one, as the page path does.
        False: some key came back short."""
        complete = True

        async def read_group(keys: tuple[str, ...]) -> None:
            nonlocal complete
            got, _ = await self._read_keys(run, keys, None, spare, outcome, tail=(start, tail[keys[0]]))
            short = [k for k in keys if k not in outcome.non_numeric and len(got.get(k, ())) != tail[k]]
            if short:
                if len(keys) > 1:
                    async with task_group() as tg:
                        for key in keys:
                            tg.start_soon(read_group, (key,))
                    return
                complete = False
            outcome.series.update(got)

        groups: dict[int, list[str]] = {}
        for key, n in tail.items():
            if n > 0:
                groups.setdefault(n, []).append(key)
        async with task_group() as tg:
            for keys in groups.values():
                tg.start_soon(read_group, tuple(keys))
        return complete

    async def _read_keys(
        self,
        run: RunInfo,
        keys: tuple[str, ...],
        samples: int | None,
        spare: int,
        outcome: RunOutcome,
        *,
        core: bool = False,
        start: int = 0,
        tail: tuple[int, int] | None = None,
    ) -> tuple[dict[str, Series], bool]:
        """The keys' series, and whether they were read with window queries (`history_window`)
        rather than one sampled request or wandb's own scan (`core`). `start`: an incremental tail,
        the steps from there on. `tail`: read only the steps from `tail[0]` on, expected to hold
        `tail[1]` rows of each key (the live rows after a parquet export)."""
        label = f"history of run {run.id} ({', '.join(keys)})"
        page_size = self.settings.page_size
        parts: list[calls.Read] = []
        plan = group_read(run, keys, samples, spare, page_size, start=start, tail=tail, core=core)
        if plan.kind == "scan":

            async def piece(lo: int, hi: int) -> None:
                parts.append(
                    await self.runner.call(
                        calls.scanned,
                        run,
                        keys,
                        lo,
                        hi,
                        page_size,
                        what=label,
                        cost=range_cost(lo, hi, page_size, scan=True),
                        kind="scanned",
                    )
                )

            async with task_group() as tg:
                for lo, hi, _ in plan.ranges:
                    tg.start_soon(piece, lo, hi)
            return self._merge(keys, parts, outcome), False
        if plan.kind == "sampled":
            parts.append(await self.runner.call(calls.sampled, run, keys, samples, what=label, kind="sampled"))
            return self._merge(keys, parts, outcome), False
        rows = plan.rows

        async def window(lo: int, hi: int, cap: int) -> None:
            read, count, mid = await self.runner.call(calls.window, run, keys, lo, hi, cap, what=label, kind="window")
            if count >= cap and hi - lo > 1 and rows is not None:
                # Full: the server may have thinned it. Ask for each half instead.
                async with task_group() as tg:
                    tg.start_soon(window, lo, mid, cap)
                    tg.start_soon(window, mid, hi, cap)
                return
            parts.append(read)

        async with task_group() as tg:
            for lo, hi, cap in plan.ranges:
                tg.start_soon(window, lo, hi, cap)
        return self._merge(keys, parts, outcome, count=tail is None), True

    def _merge(
        self, keys: Sequence[str], parts: Sequence[calls.Read], outcome: RunOutcome, *, count: bool = True
    ) -> dict[str, Series]:
        merged: dict[str, Series] = {}
        for key in keys:
            found = [p[0][key] for p in parts if key in p[0]]
            for p in parts:
                if key in p[1]:
                    outcome.non_numeric[key] = p[1][key]
            if found and key not in outcome.non_numeric:
                merged[key] = merge_series(found) if len(found) > 1 else found[0]
                if count:
                    self.stats.rows += len(merged[key].values)
        return merged


def _drop_empty(outcome: RunOutcome) -> None:
    for key in list(outcome.series):
        if key in outcome.non_numeric or len(outcome.series[key].values) == 0:
            del outcome.series[key]


def _complete(run: RunInfo, keys: tuple[str, ...], got: Mapping[str, Series], samples: int | None) -> bool:
    for key in keys:
        expected = expected_rows(run, key, samples)
        if expected is None:
            return False
        if (len(got[key].values) if key in got else 0) < expected:
            return False
    return True
