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
from .base import ProgressFn, RunOutcome
from .planning import (
    OPEN_END,
    co_logged_groups,
    expected_rows,
    plan_keys,
    range_cost,
    sampling_keeps_all,
    step_ranges,
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
    ) -> list[RunOutcome]:
        outcomes: list[RunOutcome] = [RunOutcome() for _ in runs]
        pieces_per_run = max(1, math.ceil(self.concurrency / max(1, len(runs))))

        async def one(i: int, run: RunInfo) -> None:
            try:
                outcomes[i] = await self._read_run(run, fields, samples, pieces_per_run)
            except AuthError:
                raise
            except Exception as exc:  # noqa: BLE001 - one failed run is recorded, the others go on
                message = self._failures.describe(exc)
                log.error("run %s (%s) failed: %s", run.id, run.name, message)
                outcomes[i] = RunOutcome(error=message)
            if progress is not None:
                progress("run_failed" if outcomes[i].error else "run_done", run, outcomes[i].rows)

        async with task_group() as tg:
            for i, run in enumerate(runs):
                tg.start_soon(one, i, run)
        return outcomes

    async def _read_run(
        self, run: RunInfo, fields: Sequence[str], samples: int | None, pieces: int
    ) -> RunOutcome:
        outcome = RunOutcome()
        wanted = plan_keys(run, fields, outcome.non_numeric)
        if not wanted:
            return outcome

        async def read_group(keys: tuple[str, ...]) -> None:
            got, paged = await self._read_keys(run, keys, samples, pieces, outcome)
            if not _complete(run, keys, got, samples):
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
                    got, _ = await self._read_keys(run, keys, samples, pieces, outcome, core=True)
            outcome.series.update(got)

        async with task_group() as tg:
            for keys in co_logged_groups(run, wanted):
                tg.start_soon(read_group, keys)
        for key in list(outcome.series):
            if key in outcome.non_numeric or len(outcome.series[key].values) == 0:
                del outcome.series[key]
        return outcome

    async def _read_keys(
        self,
        run: RunInfo,
        keys: tuple[str, ...],
        samples: int | None,
        pieces: int,
        outcome: RunOutcome,
        *,
        core: bool = False,
    ) -> tuple[dict[str, Series], bool]:
        """The keys' series, and whether they were read with page queries (`range_history`) rather
        than one sampled request or wandb's own scan (`core`)."""
        label = f"history of run {run.id} ({', '.join(keys)})"
        page_size = self.settings.page_size
        ranges = step_ranges(run, pieces, page_size)
        parts: list[_Read]
        sampled = samples is not None and not (
            len(ranges) > 1 and sampling_keeps_all(run, keys, samples)
        )
        if samples is not None and sampled:
            parts = [await self.runner.call(_sampled, run, keys, samples, what=label)]
        else:
            parts = [({}, {})] * len(ranges)
            scan = core or ranges[0][1] == OPEN_END
            fn = _scanned if scan else _paged
            kind = fn.__name__

            async def piece(j: int, lo: int, hi: int) -> None:
                parts[j] = await self.runner.call(
                    fn, run, keys, lo, hi, page_size,
                    what=label, cost=range_cost(lo, hi, page_size, scan=scan), kind=kind,
                )

            async with task_group() as tg:
                for j, (lo, hi) in enumerate(ranges):
                    tg.start_soon(piece, j, lo, hi)
        merged: dict[str, Series] = {}
        for key in keys:
            found = [p[0][key] for p in parts if key in p[0]]
            for p in parts:
                if key in p[1]:
                    outcome.non_numeric[key] = p[1][key]
            if found and key not in outcome.non_numeric:
                merged[key] = merge_series(found) if len(found) > 1 else found[0]
                self.stats.rows += len(merged[key].values)
        return merged, not (sampled or core or run.last_step < 0)


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


def _paged(
    api: wandb.Api, run: RunInfo, keys: Sequence[str], lo: int, hi: int, page_size: int
) -> _Read:
    return _convert(client.range_history(api, run, keys, lo, hi, page_size), keys)


def _scanned(
    api: wandb.Api, run: RunInfo, keys: Sequence[str], lo: int, hi: int, page_size: int
) -> _Read:
    rows = client.scan_history(api, run, keys, lo, None if hi == OPEN_END else hi, page_size)
    return _convert(rows, keys)
