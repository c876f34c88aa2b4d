"""The concurrent part: fan history downloads out over a bounded pool of worker threads.

One `Fetcher` serves a whole export. Every blocking wandb call goes through `Fetcher.call`, which
takes a worker slot (bounded by `concurrency`), runs the call in a thread on that slot's `Api`, and
retries it under one tenacity policy. Rate limits are handled together rather than per call: every
call passes one shared gate (`pacing.RateGate`), which after a 429 pauses every worker and then
paces calls at the rate the server turned out to allow, instead of letting each retry on its own.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import logging
import math
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.abc
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from . import client
from .assemble import NonNumericValue, Series, merge_series, series_from_rows
from .client import ApiPool, ClientSettings
from .corelog import CoreLogWatcher
from .errors import AuthError, FetchError
from .models import RunInfo
from .pacing import RateGate

if sys.version_info < (3, 11):  # pragma: no cover - anyio installs the backport there
    from exceptiongroup import BaseExceptionGroup

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CONCURRENCY = 16
INTERNAL_KEYS = ("_step", "_runtime", "_timestamp")
OPEN_END = -1  # a step range whose end the scan finds out itself


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How hard to try one call. The defaults ride out a server that is gone for a few minutes."""

    attempts: int = 10
    initial_wait: float = 1.0
    max_wait: float = 30.0
    deadline: float = 600.0  # seconds, waits included
    rate_limit_pause: float = 1.0  # first shared pause after a 429; doubles while 429s continue
    # Requests per second the server allows, if known: calls are then paced from the start. None:
    # learned from the first 429 on (see `pacing.RateGate`).
    max_rate: float | None = None
    # Calls in flight at first, growing by one per success up to the concurrency, instead of the
    # default ramp (8 requests, doubling every 0.1 s until a 429 is reported). The ramp relies on
    # wandb-core's log to hear of a refusal at once; where that log is not found, a small window
    # is the cautious choice against a server with an unknown limit.
    start_window: int | None = None


@dataclass
class FetchStats:
    calls: int = 0  # wandb calls made, retries included
    # HTTP requests those calls sent, estimated per call (a full-history piece sends one per page);
    # wandb-core's own single retry of a failed request is not seen.
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    # 429s wandb-core retried by itself, as its log reported them (0 if the log was not found)
    rate_limited_in_core: int = 0
    transient_errors: int = 0
    rows: int = 0


@dataclass
class RunOutcome:
    """What one run produced: a series per field it holds, or the reason it failed."""

    series: dict[str, Series] = field(default_factory=dict)
    error: str | None = None
    non_numeric: dict[str, str] = field(default_factory=dict)


ProgressFn = Callable[[str, RunInfo, int], None]  # (event, run, rows): "run_done" | "run_failed"


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


@contextlib.asynccontextmanager
async def task_group() -> AsyncIterator[anyio.abc.TaskGroup]:
    """A task group that raises its most important failure instead of an exception group.

    Callers decide per exception type (an auth failure ends the export, a run failure is recorded),
    which an `ExceptionGroup` would hide. Interrupts win, then auth failures, then the first error.
    """
    try:
        async with anyio.create_task_group() as tg:
            yield tg
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        first = next((e for e in leaves if not isinstance(e, Exception)), None)
        first = first or next((e for e in leaves if isinstance(e, AuthError)), None) or leaves[0]
        raise first from None


def _request_cost(fn: Callable[..., Any], args: tuple[Any, ...], page_size: int) -> float:
    """About how many HTTP requests one call makes: one per page of `page_size` steps; wandb's own
    scan asks for the run's parquet export first, and for its last step when that is unknown."""
    if fn is _scanned_series or fn is _core_scanned_series:
        lo, hi = args[2], args[3]
        if hi == OPEN_END:
            return 3.0
        pages = max(1, math.ceil((hi - lo) / page_size))
        return float(pages + 1 if fn is _core_scanned_series else pages)
    return 1.0


class Fetcher:
    def __init__(
        self,
        settings: ClientSettings,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        policy: RetryPolicy | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.settings = settings
        self.concurrency = concurrency
        self.policy = policy or RetryPolicy()
        self.pool = ApiPool(settings)
        self.stats = FetchStats()
        self._slots_limiter = anyio.CapacityLimiter(concurrency)
        self._thread_limiter = anyio.CapacityLimiter(concurrency)
        self._free_slots = list(range(concurrency))
        self._gate = RateGate(
            self._slots_limiter,
            concurrency,
            self.policy.rate_limit_pause,
            start_window=self.policy.start_window,
            max_rate=self.policy.max_rate,
        )
        self._watcher: CoreLogWatcher | None = None

    def close(self) -> None:
        """Stop reading wandb-core's log."""
        if self._watcher is not None:
            self._watcher.stop()
        self.stats.rate_limited_in_core = self._gate.log_refusals

    async def call(self, fn: Callable[..., T], *args: Any, what: str) -> T:
        """Run `fn(api, *args)` in a worker thread, retried under the policy."""
        policy = self.policy

        def retryable(exc: BaseException) -> bool:
            return isinstance(exc, Exception) and client.classify(exc) in ("rate_limit", "transient")

        def before_sleep(state: RetryCallState) -> None:
            self.stats.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "retrying %s (attempt %d): %s",
                what,
                state.attempt_number,
                client.describe(exc, self.settings.api_key) if exc else "?",
            )

        retrying = AsyncRetrying(
            retry=retry_if_exception(retryable),
            wait=wait_random_exponential(multiplier=policy.initial_wait, max=policy.max_wait),
            stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.deadline),
            before_sleep=before_sleep,
            reraise=True,
            sleep=anyio.sleep,
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(fn, args)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        await self._gate.wait()
        async with self._slots_limiter:
            cost = _request_cost(fn, args, self.settings.page_size)
            _, rate = await self._gate.enter(cost)
            slot = heapq.heappop(self._free_slots)
            try:
                api = self.pool.existing(slot) or await anyio.to_thread.run_sync(
                    self.pool.for_slot, slot, limiter=self._thread_limiter
                )
                if self._watcher is None:  # wandb-core runs now, and so does its log
                    self._watcher = CoreLogWatcher().start()
                    self._gate.refusal_source = self._watcher.drain
                self.stats.calls += 1
                self.stats.requests += int(cost)
                started = time.monotonic()
                result = await anyio.to_thread.run_sync(
                    functools.partial(fn, api, *args),
                    limiter=self._thread_limiter,
                    abandon_on_cancel=True,
                )
            except Exception as exc:
                verdict = client.classify(exc)
                if verdict == "rate_limit":
                    self.stats.rate_limited += 1
                    self._gate.rate_limited()
                elif verdict == "transient":
                    self.stats.transient_errors += 1
                elif verdict == "auth":
                    if isinstance(exc, AuthError):
                        raise
                    raise AuthError(
                        "the W&B server refused the API key: "
                        + client.describe(exc, self.settings.api_key)
                    ) from exc
                raise
            finally:
                heapq.heappush(self._free_slots, slot)
                self._gate.left(cost)
            self._gate.succeeded((getattr(fn, "__name__", fn), cost), cost, started, rate)
            return result

    # ----------------------------------------------------------------------------------------

    async def prewarm(self) -> None:
        """Create the `Api` objects of slots 10, 20, ... while the runs are being listed.

        Each costs a `Viewer` round trip; made on first use they would delay the first history
        calls of those slots. A failure here is left for the real call to meet and retry.
        """

        async def make(slot: int) -> None:
            try:
                await anyio.to_thread.run_sync(self.pool.for_slot, slot)
            except Exception as exc:  # noqa: BLE001 - the call that needs the slot reports it
                log.debug("creating the Api of slot %d failed: %s", slot, client.describe(exc, self.settings.api_key))

        async with task_group() as tg:
            for slot in range(client.REQUESTS_PER_API, self.concurrency, client.REQUESTS_PER_API):
                tg.start_soon(make, slot)

    async def list_runs(self, entity: str, project: str, filters: Mapping[str, Any]) -> list[RunInfo]:
        try:
            return await self.call(
                client.list_runs, entity, project, filters, what=f"listing runs of {entity}/{project}"
            )
        except (AuthError, FetchError):
            raise
        except Exception as exc:
            raise FetchError(
                f"listing runs of {entity}/{project} failed: "
                + client.describe(exc, self.settings.api_key)
            ) from exc

    async def fetch_runs(
        self,
        runs: Sequence[RunInfo],
        fields: Sequence[str],
        *,
        samples: int | None,
        progress: ProgressFn | None = None,
    ) -> list[RunOutcome]:
        """History of `fields` for every run, in the order of `runs` whatever the finish order."""
        outcomes: list[RunOutcome] = [RunOutcome() for _ in runs]
        pieces_per_run = max(1, math.ceil(self.concurrency / max(1, len(runs))))

        async def one(i: int, run: RunInfo) -> None:
            try:
                outcomes[i] = await self._fetch_run(run, fields, samples, pieces_per_run)
            except AuthError:
                raise
            except Exception as exc:
                message = client.describe(exc, self.settings.api_key)
                log.error("run %s (%s) failed: %s", run.id, run.name, message)
                outcomes[i] = RunOutcome(error=message)
            if progress is not None:
                rows = sum(len(s.values) for s in outcomes[i].series.values())
                progress("run_failed" if outcomes[i].error else "run_done", run, rows)

        async with task_group() as tg:
            for i, run in enumerate(runs):
                tg.start_soon(one, i, run)
        return outcomes

    async def _fetch_run(
        self, run: RunInfo, fields: Sequence[str], samples: int | None, pieces: int
    ) -> RunOutcome:
        outcome = RunOutcome()
        wanted = plan_keys(run, fields, outcome.non_numeric)
        if not wanted:
            return outcome
        groups = co_logged_groups(run, wanted)

        async def fetch_group(keys: tuple[str, ...]) -> None:
            got, paged = await self._fetch_keys(run, keys, samples, pieces, outcome)
            if not self._complete(run, keys, got, samples):
                if len(keys) > 1:
                    # Not logged on the same steps after all: ask for each key on its own.
                    async with task_group() as tg:
                        for key in keys:
                            tg.start_soon(fetch_group, (key,))
                    return
                if paged:
                    # The page queries returned fewer rows than the run says it logged (history
                    # the server keeps only in exported files?): read it with wandb's own scan.
                    log.warning("run %s: %s came back short; reading it again with wandb's scan",
                                run.id, keys[0])
                    got, _ = await self._fetch_keys(run, keys, samples, pieces, outcome, core=True)
            outcome.series.update(got)

        async with task_group() as tg:
            for keys in groups:
                tg.start_soon(fetch_group, keys)
        for key in list(outcome.series):
            if key in outcome.non_numeric or len(outcome.series[key].values) == 0:
                del outcome.series[key]
        return outcome

    def _complete(
        self, run: RunInfo, keys: tuple[str, ...], got: Mapping[str, Series], samples: int | None
    ) -> bool:
        for key in keys:
            info = run.history_keys.get(key)
            if info is None:
                return False
            expected = info.count if samples is None else min(info.count, samples)
            have = len(got[key].values) if key in got else 0
            if have < expected:
                return False
        return True

    async def _fetch_keys(
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
        ranges = step_ranges(run, pieces, self.settings.page_size)
        parts: list[Any]
        sampled = samples is not None and not (len(ranges) > 1 and _sampling_keeps_all(run, keys, samples))
        if sampled:
            parts = [await self.call(_sampled_series, run, keys, samples, what=label)]
        else:
            parts = [None] * len(ranges)
            fn = _core_scanned_series if core else _scanned_series

            async def piece(j: int, lo: int, hi: int) -> None:
                parts[j] = await self.call(fn, run, keys, lo, hi, self.settings.page_size, what=label)

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


def plan_keys(run: RunInfo, fields: Sequence[str], non_numeric: dict[str, str]) -> list[str]:
    """The requested fields this run can have, judged from its history keys when it sent them."""
    if not run.history_keys:
        return list(fields)
    wanted = []
    for key in fields:
        info = run.history_keys.get(key)
        if info is None or info.count == 0:
            continue
        if not info.numeric:
            non_numeric[key] = f"logged as {'/'.join(info.types) or 'unknown type'}"
            continue
        wanted.append(key)
    return wanted


def co_logged_groups(run: RunInfo, keys: Sequence[str]) -> list[tuple[str, ...]]:
    """Keys with the same row count are probably logged together: ask for them in one request.

    The server returns only rows that hold every requested key, so a wrong guess shows as missing
    rows and is repaired by asking per key (see `Fetcher._complete`).
    """
    if not run.history_keys:
        return [(k,) for k in keys]
    by_count: dict[int, list[str]] = {}
    for key in keys:
        by_count.setdefault(run.history_keys[key].count, []).append(key)
    return [tuple(v) for v in by_count.values()]


def _sampling_keeps_all(run: RunInfo, keys: Sequence[str], samples: int) -> bool:
    """Whether the server would return every row anyway. Then the rows can be fetched as a full
    scan in parallel step ranges instead of one sampled request, with the same result; this
    matters when there are fewer runs than workers."""
    if run.last_step < 0:
        return False
    infos = [run.history_keys.get(k) for k in keys]
    return all(i is not None and i.count <= samples for i in infos)


def step_ranges(run: RunInfo, pieces: int, page_size: int) -> list[tuple[int, int]]:
    """Split [0, last_step] into up to `pieces` page-aligned ranges to fetch in parallel."""
    if run.last_step < 0:  # the listing did not say: let the scan ask the server
        return [(0, OPEN_END)]
    end = run.last_step + 1
    pages = max(1, math.ceil(end / page_size))
    pieces = max(1, min(pieces, pages))
    # Spread the pages evenly (20 pages in 16 pieces: 4 of 2 and 12 of 1), so every piece asked
    # for gets a worker instead of fewer, larger pieces.
    bounds = [round(k * pages / pieces) for k in range(pieces + 1)]
    return [(lo * page_size, min(end, hi * page_size)) for lo, hi in zip(bounds, bounds[1:])]


def _convert(rows: list[dict[str, Any]], keys: Sequence[str]) -> tuple[dict[str, Series], dict[str, str]]:
    series: dict[str, Series] = {}
    bad: dict[str, str] = {}
    for key in keys:
        try:
            series[key] = series_from_rows(rows, key)
        except NonNumericValue as exc:
            bad[key] = f"holds non-numeric values ({exc.example})"
    return series, bad


def _sampled_series(api: Any, run: RunInfo, keys: Sequence[str], samples: int) -> tuple[dict[str, Series], dict[str, str]]:
    # Converting in the worker thread means only arrays, never row dicts, outlive the call.
    return _convert(client.sampled_history(api, run, keys, samples), keys)


def _scanned_series(
    api: Any, run: RunInfo, keys: Sequence[str], lo: int, hi: int, page_size: int
) -> tuple[dict[str, Series], dict[str, str]]:
    if hi == OPEN_END:
        return _core_scanned_series(api, run, keys, lo, hi, page_size)
    return _convert(client.range_history(api, run, keys, lo, hi, page_size), keys)


def _core_scanned_series(
    api: Any, run: RunInfo, keys: Sequence[str], lo: int, hi: int, page_size: int
) -> tuple[dict[str, Series], dict[str, str]]:
    rows = client.scan_history(api, run, keys, lo, None if hi == OPEN_END else hi, page_size)
    return _convert(rows, keys)


def all_numeric_fields(runs: Sequence[RunInfo]) -> list[str]:
    """`fields: all`: every numeric history key of the matched runs, minus wandb's own."""
    names: set[str] = set()
    for run in runs:
        for key, info in run.history_keys.items():
            if key in INTERNAL_KEYS or key.startswith("_wandb") or not info.numeric:
                continue
            names.add(key)
    return sorted(names)
