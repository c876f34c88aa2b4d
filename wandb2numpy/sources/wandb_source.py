"""History from a W&B server through the unmodified `wandb` client.

Everything that knows the W&B client and its queries for history lives here and in `client.py`
(which holds the wire calls and the error classification): which requests to plan for a run
(co-logged key groups, one sampled request or page-aligned step ranges spread over idle workers),
when an answer is short (re-ask per key, then through wandb's own scan), and what each call costs
in requests for the rate gate. The concurrency itself is the generic `fetch.Runner`'s.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import wandb

from .. import client
from ..client import ApiPool, ClientSettings
from ..config import ExperimentConfig
from ..corelog import CoreLogWatcher
from ..errors import AuthError, FetchError
from ..fetch import DEFAULT_CONCURRENCY, FetchStats, RetryPolicy, Runner, Verdict, task_group
from ..filters import build_filters
from ..models import RunInfo
from ..series import NonNumericValue, Series, merge_series, series_from_rows
from .base import ProgressFn, RunEvent, RunOutcome
from .planning import (
    OPEN_END,
    batches,
    co_logged_groups,
    expected_rows,
    fits_batch,
    plan_keys,
    range_cost,
    row_windows,
    run_rows,
    step_ranges,
    window_samples,
)

__all__ = ["WandbSource"]

log = logging.getLogger(__name__)

# What one call returns: the series it read, and keys found to hold non-numeric values.
_Read = tuple[dict[str, Series], dict[str, str]]


class _Failures:
    """The runner's view of wandb's exceptions, with the API key scrubbed from every message."""

    def __init__(self, api_key: str | None) -> None:
        self._api_key = api_key

    def classify(self, exc: BaseException) -> Verdict:
        return client.classify(exc)

    def describe(self, exc: BaseException) -> str:
        return client.describe(exc, self._api_key)


class _Apis:
    """One `wandb.Api` per worker slot; the first one starts wandb-core, and with it the watch
    over wandb-core's log that tells the rate gate of 429s it retried out of our sight."""

    def __init__(self, settings: ClientSettings, runner: Runner | None = None) -> None:
        self.pool = ApiPool(settings)
        self.runner = runner
        self.watcher: CoreLogWatcher | None = None
        self._lock = threading.Lock()

    def existing(self, slot: int) -> wandb.Api | None:
        api = self.pool.existing(slot)
        if api is not None:
            self._watch()
        return api

    def for_slot(self, slot: int) -> wandb.Api:
        api = self.pool.for_slot(slot)
        self._watch()
        return api

    def _watch(self) -> None:
        if self.watcher is not None:
            return
        with self._lock:
            if self.watcher is None and self.runner is not None:
                watcher = CoreLogWatcher().start()
                self.runner.gate.refusal_source = watcher.drain
                self.watcher = watcher


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
        self._apis = _Apis(settings)
        self._failures = _Failures(settings.api_key)
        self.runner = Runner(self._apis, self._failures, concurrency=concurrency, policy=policy)
        self._apis.runner = self.runner
        # Whether to ask for many small runs' history in one request; off for good once the
        # server shows it does not know the query.
        self._batch_ok = settings.batch_small_runs

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

        Each costs a `Viewer` round trip; made on first use they would delay the first history
        calls of those slots. A failure here is left for the real call to meet and retry.
        """

        async def make(slot: int) -> None:
            try:
                await anyio.to_thread.run_sync(self._apis.pool.for_slot, slot)
            except Exception as exc:  # noqa: BLE001 - the call that needs the slot reports it
                log.debug("creating the Api of slot %d failed: %s", slot, self._failures.describe(exc))

        async with task_group() as tg:
            for slot in range(client.REQUESTS_PER_API, self.concurrency, client.REQUESTS_PER_API):
                tg.start_soon(make, slot)

    async def list_runs(self, exp: ExperimentConfig) -> list[RunInfo]:
        return await self.list_filtered(exp.entity, exp.project, build_filters(exp))

    async def list_filtered(
        self, entity: str, project: str, filters: Mapping[str, Any]
    ) -> list[RunInfo]:
        try:
            return await self.runner.call(
                client.list_runs, entity, project, filters, what=f"listing runs of {entity}/{project}"
            )
        except (AuthError, FetchError):
            raise
        except Exception as exc:
            raise FetchError(
                f"listing runs of {entity}/{project} failed: " + self._failures.describe(exc)
            ) from exc

    async def read_runs(
        self,
        runs: Sequence[RunInfo],
        fields: Sequence[str],
        *,
        samples: int | None,
        progress: ProgressFn | None = None,
        starts: Sequence[int] | None = None,
    ) -> list[RunOutcome]:
        outcomes: list[RunOutcome] = [RunOutcome() for _ in runs]
        first = list(starts) if starts is not None else [0] * len(runs)
        spare = max(1, math.ceil(self.concurrency / max(1, len(runs))))
        plans: list[list[str]] = [plan_keys(run, fields, outcomes[i].non_numeric) for i, run in enumerate(runs)]

        def report(i: int) -> None:
            _drop_empty(outcomes[i])
            if progress is not None:
                event: RunEvent = "run_failed" if outcomes[i].error else "run_done"
                progress(event, runs[i], outcomes[i].rows)

        async def one(i: int) -> None:
            run = runs[i]
            try:
                if plans[i]:
                    await self._read_run(run, plans[i], samples, spare, outcomes[i], first[i])
            except AuthError:
                raise
            except Exception as exc:  # noqa: BLE001 - one failed run is recorded, the others go on
                message = self._failures.describe(exc)
                log.error("run %s (%s) failed: %s", run.id, run.name, message)
                outcomes[i] = RunOutcome(error=message, non_numeric=outcomes[i].non_numeric)
            report(i)

        async def batch(members: list[int]) -> None:
            left = await self._read_batch([runs[i] for i in members], [plans[i] for i in members],
                                          samples, [outcomes[i] for i in members])
            async with task_group() as tg:
                if left is None:  # the request failed: halves, down to runs on their own
                    if len(members) > 1 and self._batch_ok:
                        half = len(members) // 2
                        tg.start_soon(batch, members[:half])
                        tg.start_soon(batch, members[half:])
                    else:
                        for i in members:
                            tg.start_soon(one, i)
                    return
                for j, i in enumerate(members):
                    if j in left:
                        tg.start_soon(one, i)
                    else:
                        report(i)

        small = [
            i for i in range(len(runs)) if plans[i] and not first[i] and self._small(runs[i], plans[i], samples)
        ]
        groups = batches([run_rows(runs[i], plans[i], samples) or 0 for i in small], self.concurrency,
                         self.settings.page_size) if self._batch_ok and len(small) > 1 else []
        batched = {small[j] for g in groups for j in g}
        async with task_group() as tg:
            for g in groups:
                tg.start_soon(batch, [small[j] for j in g])
            for i in range(len(runs)):
                if i not in batched:
                    tg.start_soon(one, i)
        return outcomes

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
        keys = sorted({k for p in plans for k in p})
        cap = samples if samples is not None else self.settings.page_size
        specs = [{"keys": ["_step", key], "samples": cap} for key in keys]
        first = runs[0]
        what = f"history of {len(runs)} small runs of {first.entity}/{first.project}"
        try:
            answer = await self.runner.call(
                _batch, first.entity, first.project, [r.id for r in runs], {}, specs, keys, what=what
            )
        except AuthError:
            raise
        except Exception as exc:  # noqa: BLE001 - the runs are read one by one instead
            if client.is_batch_refusal(exc):
                if self._batch_ok:
                    self._batch_ok = False
                    log.warning("the server does not answer batched history queries; "
                                "reading every run on its own")
            else:
                log.info("%s failed (%s); asking for them in smaller groups", what, self._failures.describe(exc))
            return None
        left: set[int] = set()
        for j, run in enumerate(runs):
            got = answer.get(run.id)
            if got is None:
                left.add(j)
                continue
            series, bad = got
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
                    log.warning("run %s: %s came back short; reading it again with wandb's scan",
                                run.id, keys[0])
                    got, _ = await self._read_keys(run, keys, samples, spare, outcome, core=True)
            outcome.series.update(got)

        async with task_group() as tg:
            for keys in co_logged_groups(run, wanted):
                tg.start_soon(read_group, keys)

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
    ) -> tuple[dict[str, Series], bool]:
        """The keys' series, and whether they were read with window queries (`history_window`)
        rather than one sampled request or wandb's own scan (`core`)."""
        label = f"history of run {run.id} ({', '.join(keys)})"
        page_size = self.settings.page_size
        parts: list[_Read] = []
        rows = min((expected_rows(run, k, samples) or 0) for k in keys) if run.history_keys else None
        if start and rows is not None:  # a tail: about its share of the steps, for planning only
            rows = max(1, round(rows * (run.last_step + 1 - start) / max(1, run.last_step + 1)))
        sampled = samples is not None and (rows is None or rows >= samples)
        if core or run.last_step < 0:
            ranges = step_ranges(run, spare, page_size)
            scan = True

            async def piece(lo: int, hi: int) -> None:
                parts.append(await self.runner.call(
                    _scanned, run, keys, lo, hi, page_size,
                    what=label, cost=range_cost(lo, hi, page_size, scan=scan), kind="_scanned",
                ))

            async with task_group() as tg:
                for lo, hi in ranges:
                    tg.start_soon(piece, lo, hi)
            return self._merge(keys, parts, outcome), False
        windows: list[tuple[int, int]] = []
        if not sampled and rows is not None:
            windows = row_windows(run, rows, page_size, spare, split_for_size=samples is None, start=start)
        if samples is not None and not start and (sampled or len(windows) <= 1):
            parts.append(await self.runner.call(_sampled, run, keys, samples, what=label))
            return self._merge(keys, parts, outcome), False
        if rows is None:  # no counts from the listing: one window per page of steps, as wandb scans
            end = run.last_step + 1
            plan = [(lo, min(lo + page_size, end), min(lo + page_size, end) - lo) for lo in range(start, end, page_size)]
        else:
            plan = [(lo, hi, window_samples(rows, len(windows))) for lo, hi in windows]

        async def window(lo: int, hi: int, cap: int) -> None:
            read, count, mid = await self.runner.call(_window, run, keys, lo, hi, cap, what=label, kind="_window")
            if count >= cap and hi - lo > 1 and rows is not None:
                # Full: the server may have thinned it. Ask for each half instead.
                async with task_group() as tg:
                    tg.start_soon(window, lo, mid, cap)
                    tg.start_soon(window, mid, hi, cap)
                return
            parts.append(read)

        async with task_group() as tg:
            for lo, hi, cap in plan:
                tg.start_soon(window, lo, hi, cap)
        return self._merge(keys, parts, outcome), True

    def _merge(self, keys: Sequence[str], parts: Sequence[_Read], outcome: RunOutcome) -> dict[str, Series]:
        merged: dict[str, Series] = {}
        for key in keys:
            found = [p[0][key] for p in parts if key in p[0]]
            for p in parts:
                if key in p[1]:
                    outcome.non_numeric[key] = p[1][key]
            if found and key not in outcome.non_numeric:
                merged[key] = merge_series(found) if len(found) > 1 else found[0]
                self.stats.rows += len(merged[key].values)
        return merged


def _drop_empty(outcome: RunOutcome) -> None:
    for key in list(outcome.series):
        if key in outcome.non_numeric or len(outcome.series[key].values) == 0:
            del outcome.series[key]


def _complete(
    run: RunInfo, keys: tuple[str, ...], got: Mapping[str, Series], samples: int | None
) -> bool:
    for key in keys:
        expected = expected_rows(run, key, samples)
        if expected is None:
            return False
        if (len(got[key].values) if key in got else 0) < expected:
            return False
    return True


# The calls below run in worker threads. Converting rows to arrays there means only arrays, never
# row dicts, outlive a call.

def _convert(rows: list[dict[str, Any]], keys: Sequence[str]) -> _Read:
    series: dict[str, Series] = {}
    bad: dict[str, str] = {}
    for key in keys:
        try:
            series[key] = series_from_rows(rows, key)
        except NonNumericValue as exc:
            bad[key] = f"holds non-numeric values ({exc.example})"
    return series, bad


def _sampled(api: wandb.Api, run: RunInfo, keys: Sequence[str], samples: int) -> _Read:
    return _convert(client.sampled_history(api, run, keys, samples), keys)


def _window(
    api: wandb.Api, run: RunInfo, keys: Sequence[str], lo: int, hi: int, samples: int
) -> tuple[_Read, int, int]:
    """The window's series, its row count, and where to split it should it be full: the median
    step of the answer, since the server thins evenly over the rows, so the halves hold about
    equal rows (a step midpoint would take many splits to find a dense stretch)."""
    rows = client.history_window(api, run, keys, lo, hi, samples)
    middle = rows[len(rows) // 2].get("_step") if rows else None
    split = int(middle) if isinstance(middle, (int, float)) and lo < middle < hi else (lo + hi) // 2
    return _convert(rows, keys), len(rows), split


def _batch(
    api: wandb.Api,
    entity: str,
    project: str,
    run_ids: Sequence[str],
    filters: Mapping[str, Any],
    specs: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
) -> dict[str, _Read]:
    """Per run, the series of every key (one spec per key, in `keys` order)."""
    answer = client.batch_history(api, entity, project, run_ids, filters, specs)
    out: dict[str, _Read] = {}
    for run_id, per_spec in answer.items():
        series: dict[str, Series] = {}
        bad: dict[str, str] = {}
        for key, rows in zip(keys, per_spec):
            one, one_bad = _convert(rows, (key,))
            series.update(one)
            bad.update(one_bad)
        out[run_id] = (series, bad)
    return out


def _scanned(
    api: wandb.Api, run: RunInfo, keys: Sequence[str], lo: int, hi: int, page_size: int
) -> _Read:
    rows = client.scan_history(api, run, keys, lo, None if hi == OPEN_END else hi, page_size)
    return _convert(rows, keys)
