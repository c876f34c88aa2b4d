"""The concurrent part: run blocking calls over a bounded pool of worker slots, retried and paced.

`Runner` is what every history source shares and knows nothing of wandb: a call is a blocking
function of a slot's resource (for W&B, that slot's `wandb.Api`), an estimated request cost, and a
label for logs. The runner takes a slot (bounded by `concurrency`), runs the call in a thread,
retries it under one tenacity policy, and passes every call through one shared gate
(`pacing.RateGate`), which after a 429 pauses every worker and then paces calls at the rate the
server turned out to allow, instead of letting each retry on its own. What a failure means
(retry, pause for a rate limit, give up, refused credentials) is the source's `Failures` to say.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

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

from ..config.defaults import DEFAULT_CONCURRENCY
from ..errors import AuthError
from .pacing import RateGate

if sys.version_info < (3, 11):  # pragma: no cover - anyio installs the backport there
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "DEFAULT_CONCURRENCY",
    "FetchStats",
    "Failures",
    "RetryPolicy",
    "Runner",
    "SlotResources",
    "Verdict",
    "task_group",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R", covariant=True)


Verdict = Literal["auth", "rate_limit", "transient", "fatal"]


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
    calls: int = 0  # calls made, retries included
    # HTTP requests those calls sent, as estimated by the source per call; wandb-core's own single
    # retry of a failed request is not seen.
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    # 429s retried below us without our seeing them (wandb-core's own retries, from its log)
    rate_limited_in_core: int = 0
    transient_errors: int = 0
    rows: int = 0


class SlotResources(Protocol[R]):
    """What a call runs against, per worker slot (for W&B: the slot's `wandb.Api`)."""

    def existing(self, slot: int) -> R | None:
        """The slot's resource if it exists already, so the call needs no extra thread hop."""

    def for_slot(self, slot: int) -> R:
        """The slot's resource, created if needed (blocking: may make a request)."""


class Failures(Protocol):
    """The source's reading of its own exceptions: the one place that knows its error types."""

    def classify(self, exc: BaseException) -> Verdict: ...

    def describe(self, exc: BaseException) -> str:
        """A one-line message, scrubbed of secrets."""


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


class Runner:
    """Slots, retries and the shared rate gate for one export, whatever the source."""

    def __init__(
        self,
        resources: SlotResources[Any],
        failures: Failures,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        policy: RetryPolicy | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.resources = resources
        self.failures = failures
        self.concurrency = concurrency
        self.policy = policy or RetryPolicy()
        self.stats = FetchStats()
        self._slots_limiter = anyio.CapacityLimiter(concurrency)
        self._thread_limiter = anyio.CapacityLimiter(concurrency)
        self._free_slots = list(range(concurrency))
        self.gate = RateGate(
            self._slots_limiter,
            concurrency,
            self.policy.rate_limit_pause,
            start_window=self.policy.start_window,
            max_rate=self.policy.max_rate,
        )

    @property
    def thread_limiter(self) -> anyio.CapacityLimiter:
        """For blocking work of the source's own outside `call` (creating resources ahead)."""
        return self._thread_limiter

    def close(self) -> None:
        self.stats.rate_limited_in_core = self.gate.log_refusals

    async def call(
        self,
        fn: Callable[..., T],
        *args: Any,
        what: str,
        cost: float = 1.0,
        kind: str | None = None,
    ) -> T:
        """Run `fn(resource, *args)` in a worker thread, retried under the policy.

        `cost` is the number of HTTP requests the call sends (it should be one, so that an
        interrupt never waits for more than one request); `kind` groups calls whose durations are
        comparable, for the gate's detection of hidden rate limiting (default: the function name).
        """
        policy = self.policy
        failures = self.failures

        def retryable(exc: BaseException) -> bool:
            return isinstance(exc, Exception) and failures.classify(exc) in ("rate_limit", "transient")

        def before_sleep(state: RetryCallState) -> None:
            self.stats.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            # INFO, counted in the summary: a retry that works is routine, and one that does not
            # ends in a single warning for the run (or an error for the export) further up.
            log.info(
                "retrying %s (attempt %d): %s",
                what,
                state.attempt_number,
                failures.describe(exc) if exc else "?",
            )

        retrying = AsyncRetrying(
            retry=retry_if_exception(retryable),
            wait=wait_random_exponential(multiplier=policy.initial_wait, max=policy.max_wait),
            stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.deadline),
            before_sleep=before_sleep,
            reraise=True,
            sleep=anyio.sleep,
        )
        label = (kind or str(getattr(fn, "__name__", fn)), cost)
        async for attempt in retrying:
            with attempt:
                return await self._attempt(fn, args, cost, label)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self, fn: Callable[..., T], args: tuple[Any, ...], cost: float, label: tuple[str, float]
    ) -> T:
        await self.gate.wait()
        async with self._slots_limiter:
            _, rate = await self.gate.enter(cost)
            slot = heapq.heappop(self._free_slots)
            try:
                resource = self.resources.existing(slot)
                if resource is None:
                    resource = await anyio.to_thread.run_sync(
                        self.resources.for_slot, slot, limiter=self._thread_limiter
                    )
                self.stats.calls += 1
                self.stats.requests += int(cost)
                started = time.monotonic()
                result = await anyio.to_thread.run_sync(
                    functools.partial(fn, resource, *args),
                    limiter=self._thread_limiter,
                    abandon_on_cancel=True,
                )
            except Exception as exc:
                verdict = self.failures.classify(exc)
                if verdict == "rate_limit":
                    self.stats.rate_limited += 1
                    self.gate.rate_limited()
                elif verdict == "transient":
                    self.stats.transient_errors += 1
                elif verdict == "auth":
                    if isinstance(exc, AuthError):
                        raise
                    raise AuthError(
                        "the W&B server refused the API key (set WANDB_API_KEY or run "
                        "`wandb login`): " + self.failures.describe(exc)
                    ) from exc
                raise
            finally:
                heapq.heappush(self._free_slots, slot)
                self.gate.left(cost)
            self.gate.succeeded(label, cost, started, rate)
            return result
