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
import random
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
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
)

from ..config.defaults import DEFAULT_CONCURRENCY, DEFAULT_RETRIES, RETRY_MAX_WAIT_S
from ..errors import AuthError, FetchError
from .pacing import RateGate

if sys.version_info < (3, 11):  # pragma: no cover - anyio installs the backport there
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DeadlinePassed",
    "GaveUp",
    "FetchStats",
    "Failures",
    "RetryPolicy",
    "Runner",
    "SlotResources",
    "Verdict",
    "task_group",
]

log = logging.getLogger(__name__)

# wandb-core's count of its own inner attempts, which reads as ours in a message ("giving up
# after 2 attempt(s)" after ten of our attempts): left out, ours is added.
_WANDB_COUNT = re.compile(r"\s*giving up after \d+ attempt\(s\)")

T = TypeVar("T")
R = TypeVar("R", covariant=True)


Verdict = Literal["auth", "rate_limit", "transient", "fatal"]


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How hard to try one call, and how long the whole export may take.

    The defaults ride out a server that is gone for five minutes: while it looks down (no
    answer, or a gateway's 502/503/504) and no call succeeds, a call's waits double from 1 s up
    to 30 s, each between 75% and 100% of its nominal length, so 20 retries wait at least
    0.75 * (1 + 2 + 4 + 8 + 16 + 15 * 30) = 360 s (see `min_total_wait`). While other calls
    succeed, a failure is a passing fault, and an error the server answered for this request
    (a 500) says the server works: both are retried after the first wait, so 20 retries of a
    broken run cost seconds, not minutes."""

    attempts: int = DEFAULT_RETRIES + 1  # per call, the first included (`--retries` + 1)
    initial_wait: float = 1.0
    max_wait: float = RETRY_MAX_WAIT_S
    deadline: float = 1800.0  # seconds per call, waits included: a backstop, the attempts decide
    # Seconds the whole export may take (`--deadline`), counted from the runner's creation; past
    # it no call starts or waits, calls in flight are abandoned, and their runs fail. None: no limit.
    export_deadline: float | None = None
    rate_limit_pause: float = 1.0  # first shared pause after a 429; doubles while 429s continue
    # Requests per second the server allows, if known: calls are then paced from the start. None:
    # learned from the first 429 on (see `pacing.RateGate`).
    max_rate: float | None = None
    # Calls in flight at first, growing by one per success up to the concurrency, instead of the
    # default ramp (8 requests, doubling every 0.1 s until a 429 is reported). The ramp relies on
    # wandb-core's log to hear of a refusal at once; where that log is not found, a small window
    # is the cautious choice against a server with an unknown limit.
    start_window: int | None = None

    def nominal_wait(self, retry: int) -> float:
        """The wait before retry number `retry` (1-based), before jitter."""
        return float(min(self.max_wait, self.initial_wait * 2 ** (retry - 1)))

    def min_total_wait(self) -> float:
        """The shortest time all retries of one call can spend waiting: the outage it survives
        (attempts against a server that is down fail fast, so the waits are most of it)."""
        return sum(JITTER_LOW * self.nominal_wait(n) for n in range(1, self.attempts))


JITTER_LOW = 0.75  # a retry waits between this share and all of its nominal wait


class GaveUp(FetchError):
    """A call that failed on every attempt its budget allowed; the message counts our attempts
    (wandb-core's own text counts only its inner ones: "giving up after 2 attempt(s)")."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class DeadlinePassed(FetchError):
    """The export's deadline passed before the call succeeded."""


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
    waiting: int = 0  # calls sleeping before a retry now (for the progress lines off a terminal)
    last_retry: str = ""  # what the latest retry was of, and why (idem)
    deadline_passed: bool = False


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

    # Optional: `looks_down(exc) -> bool`, whether a retried failure looks like the server being
    # unavailable (waits then double) rather than one request failing (retried after a second).
    # Without it every failure counts as the server being down.


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
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        # `sleep` waits between retries (an argument so that tests can see the waits)
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.resources = resources
        self.failures = failures
        self.concurrency = concurrency
        self.policy = policy or RetryPolicy()
        self.stats = FetchStats()
        self._retry_sleep = sleep
        deadline = self.policy.export_deadline
        self.deadline_at = None if deadline is None else time.monotonic() + deadline
        self._last_success = -float("inf")  # when a call last succeeded
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
        attempts: int | None = None,
    ) -> T:
        """Run `fn(resource, *args)` in a worker thread, retried under the policy.

        `cost` is the number of HTTP requests the call sends (it should be one, so that an
        interrupt never waits for more than one request); `kind` groups calls whose durations are
        comparable, for the gate's detection of hidden rate limiting (default: the function name).
        `attempts`: fewer than the policy's, for a call with a cheaper way out (a batch of runs,
        read one by one when it fails). A call that fails on every attempt raises `GaveUp`; one
        the export's deadline stops raises `DeadlinePassed`.
        """
        policy = self.policy
        failures = self.failures
        first = time.monotonic()
        attempts = attempts or policy.attempts

        def retryable(exc: BaseException) -> bool:
            return isinstance(exc, Exception) and failures.classify(exc) in ("rate_limit", "transient")

        def before_sleep(state: RetryCallState) -> None:
            self.stats.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            self.stats.last_retry = f"{what}: {failures.describe(exc) if exc else '?'}"
            # INFO, counted in the summary: a retry that works is routine, and one that does not
            # ends in a single warning for the run (or an error for the export) further up.
            log.info(
                "retrying %s (attempt %d of %d failed): %s",
                what,
                state.attempt_number,
                attempts,
                failures.describe(exc) if exc else "?",
            )

        level = 0  # how far this call's waits have doubled
        began = first  # when its latest attempt began

        def wait(state: RetryCallState) -> float:
            """Doubling only while the server looks down and answers no one: a failure amid
            successes is a passing fault, and an error the server answered itself (a 500 for
            this request) says the server works: both are retried after the first wait. An
            outage backs off to `max_wait`."""
            nonlocal level
            exc = state.outcome.exception() if state.outcome else None
            down = exc is not None and self._looks_down(exc)
            level = level + 1 if down and self._last_success <= began else 1
            return policy.nominal_wait(level) * random.uniform(JITTER_LOW, 1.0)

        retrying = AsyncRetrying(
            retry=retry_if_exception(retryable),
            wait=wait,
            stop=stop_after_attempt(attempts) | stop_after_delay(policy.deadline),
            before_sleep=before_sleep,
            reraise=True,
            sleep=self._sleep,
        )
        label = (kind or str(getattr(fn, "__name__", fn)), cost)
        made = 0
        try:
            async for attempt in retrying:
                with attempt:
                    self._check_deadline()
                    made += 1
                    began = time.monotonic()
                    return await self._bounded_attempt(fn, args, cost, label)
        except (AuthError, DeadlinePassed):
            raise
        except Exception as exc:
            if not retryable(exc):
                raise
            took = time.monotonic() - first
            text = _WANDB_COUNT.sub("", failures.describe(exc))
            raise GaveUp(f"{text} (gave up after {made} attempt(s) in {took:.0f} s)", made) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _looks_down(self, exc: BaseException) -> bool:
        """Whether a failure looks like the server being unavailable (no answer, a gateway's
        502/503/504, a 429) rather than this request failing on a server that works."""
        check = getattr(self.failures, "looks_down", None)
        return True if check is None else bool(check(exc))

    async def _sleep(self, seconds: float) -> None:
        """A retry's wait, cut short (and the call failed) by the export's deadline."""
        self.stats.waiting += 1
        try:
            if self.deadline_at is not None and time.monotonic() + seconds >= self.deadline_at:
                await anyio.sleep(max(0.0, self.deadline_at - time.monotonic()))
                self._check_deadline()
            await self._retry_sleep(seconds)
        finally:
            self.stats.waiting -= 1

    def _check_deadline(self) -> None:
        if self.deadline_at is not None and time.monotonic() >= self.deadline_at:
            if not self.stats.deadline_passed:
                self.stats.deadline_passed = True
                log.warning(
                    "the export's deadline (%g s) passed: the runs finished are written, the rest listed as failed",
                    self.policy.export_deadline,
                )
            raise DeadlinePassed(f"not finished by the export's deadline ({self.policy.export_deadline:g} s)")

    async def _bounded_attempt(
        self, fn: Callable[..., T], args: tuple[Any, ...], cost: float, label: tuple[str, float]
    ) -> T:
        """One attempt, abandoned when the export's deadline passes (its thread is left to end
        on its own: the request has its own timeout)."""
        if self.deadline_at is None:
            return await self._attempt(fn, args, cost, label)
        with anyio.move_on_after(max(0.0, self.deadline_at - time.monotonic())):
            return await self._attempt(fn, args, cost, label)
        self.deadline_at = min(self.deadline_at, time.monotonic())
        self._check_deadline()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, fn: Callable[..., T], args: tuple[Any, ...], cost: float, label: tuple[str, float]) -> T:
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
            self._last_success = time.monotonic()
            self.gate.succeeded(label, cost, started, rate)
            return result
