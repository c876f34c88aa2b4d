"""Pacing for rate-limited servers: the gate every worker passes before a call.

Kept apart from `fetch.py` because it is a small control loop of its own (slow start, shared
pause, learned request rate) with no knowledge of runs or history.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

log = logging.getLogger(__name__)


class RateGate:
    """What every worker passes before a call: a fast ramp at the start, a shared pause after a
    429, and, once the server has shown a rate limit, pacing at a learned request rate.

    The start ramps instead of throwing every worker at a limit nobody knows yet: the first
    `RAMP_FIRST` calls start at once, and each `RAMP_PERIOD_S` that used its whole allowance doubles
    it, so 64 workers are all busy within a few tenths of a second. The ramp stops at the first
    word of a 429. Word comes fastest from wandb-core's own log (`corelog.CoreLogWatcher`, wired in
    through `refusal_source`): wandb-core retries a 429 once by itself after `Retry-After` and says
    so in its log at once, while Python hears of it only if the retry was refused too. The first
    refusal switches the gate to paced mode: calls then start at a request rate, first what got
    through so far per second (at most one second counted).

    From then on only refusals lower the rate: a 429 we see or one reported from the log, each
    burst of them by `BACKOFF` at most once per `CUT_EVERY_S` (the shared pause of `pause`
    seconds is for the first 429 only: once paced, a pause would leave a second of the limit
    unused each time the rate probes it). Nothing else does: a slow answer, a 5xx or a reset says nothing about a
    limit (reading them as hidden 429s, and capping the rate at what was delivered while a fifth
    of the answers failed, ratcheted the rate down to a twentieth of the limit and held it there).
    After `CALM_S` without a refusal the rate climbs again: by `PROBE_FIRST` per second before
    the first cut after pacing began (the first guess is rough), then by `PROBE_NEAR` per second
    in the first `NEAR_S` seconds of calm after a cut (the limit is near), by `PROBE` once the calm
    lasts longer (the limit is well above, or the server allows more now). The rate so settles just under the limit and comes back when the server allows it. Each refused request is
    sent again by wandb-core, so it also takes a paced call's place. A window (`start_window`:
    calls in flight, one more per success) replaces the ramp when asked for; a known `max_rate`
    paces from the first call and caps what is learned. Rates count HTTP requests, as each call
    declares them (`Runner.call`).
    """

    WINDOW_S = 3.0  # seconds of successes the delivery rate is measured over
    PROBE_FIRST = 1.0  # paced mode: raise the rate by this fraction per calm second until a cut ...
    PROBE = 0.25  # ... this one after a cut, once the calm has lasted `NEAR_S` ...
    PROBE_NEAR = 0.05  # ... or by this one in the first seconds of calm after a cut ...
    NEAR_S = 6.0  # ... (this many), when a cut after pacing began has shown where the limit is ...
    CALM_S = 2.0  # ... once this long has passed without a refusal
    BACKOFF = 0.85  # a refusal lowers the rate to this share ...
    CUT_EVERY_S = 0.5  # ... at most once per this many seconds (one decision per burst)
    FIRST_GUESS = 0.25  # first 429, nothing delivered yet: this share of what was sent per second
    MIN_RATE = 0.5  # requests per second: the rate never goes below
    RAMP_FIRST = 8  # requests the start may send at once ...
    RAMP_PERIOD_S = 0.1  # ... doubling after each such period that used them all

    def __init__(
        self,
        limiter: anyio.CapacityLimiter,
        ceiling: int,
        pause: float,
        *,
        start_window: int | None = None,
        max_rate: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        # The clock and sleep are arguments so that tests drive the control loop on a fake clock.
        self._clock = clock
        self._sleep = sleep
        self.limiter = limiter
        self.ceiling = ceiling
        window = ceiling if max_rate else min(ceiling, start_window or ceiling)
        self.limiter.total_tokens = max(1, window)
        self.base_pause = pause
        self.pause = pause
        self.resume_at = 0.0
        self.max_rate = max_rate
        self.rate: float | None = max_rate  # requests per second; None: not pacing (yet)
        self._next = 0.0  # earliest start of the next paced call
        self._lock: anyio.Lock | None = None
        self._done: deque[tuple[float, float]] = deque()  # (finished, cost) of recent successes
        self._first = 0.0  # when the first call started
        self._probed = 0.0  # when the rate was last raised or lowered
        self._refused = -math.inf  # when the last refusal was heard of
        self._cut = -math.inf  # when a refusal last lowered the rate
        self._in_flight = 0.0  # cost of the calls started and not finished
        self._found = False  # whether a cut after pacing began has shown the limit
        self._before_probe: float | None = None  # the rate before the last raise, until a refusal
        self._held = -math.inf  # when the rate last held a call back
        self.refusal_source: Callable[[], list[float]] | None = None  # drains log-reported 429s
        self.log_refusals = 0  # 429s reported from wandb-core's log
        self._ramp_on = start_window is None and max_rate is None
        self._ramp_limit = self.RAMP_FIRST
        self._period_start = -math.inf
        self._period_count = 0.0
        self._recent: deque[tuple[float, float]] = deque()  # (start, cost) of the last seconds' calls, until pacing

    async def wait(self) -> None:
        """Wait out a shared pause."""
        delay = self.resume_at - self._clock()
        if delay > 0:
            await self._sleep(delay)

    async def enter(self, cost: float) -> tuple[float, float]:
        """Wait for this call's turn; return (start time, rate it was started at)."""
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:  # one waiter at a time, so a changed rate applies to the next call
            while True:
                now = self._clock()
                self._take_refusals(now)
                at = max(self.resume_at, self._next if self.rate else 0.0)
                if self._ramping:
                    at = max(at, self._ramp_at(now))
                if at <= now:
                    break
                if self.rate and at == self._next:
                    self._held = now  # the rate held a call back: raising it would matter
                await self._sleep(min(at - now, 0.02 if self._ramping else 0.25))
            if self.rate:
                self._next = max(self._next, now) + cost / self.rate
            if self._ramping:
                self._period_count += cost
            if self.rate is None:
                self._recent.append((now, cost))
                while self._recent[0][0] < now - 2.0:  # a late report looks back one second at most
                    self._recent.popleft()
        if not self._first:
            self._first = now
        self._in_flight += cost
        return now, self.rate or math.inf

    @property
    def _ramping(self) -> bool:
        """Until the first refusal (pacing) or until the ramp reaches the concurrency."""
        return self._ramp_on and self.rate is None and self._ramp_limit < self.ceiling

    def _ramp_at(self, now: float) -> float:
        """When the ramp lets the next call start."""
        if now - self._period_start >= self.RAMP_PERIOD_S:
            if self._period_count >= self._ramp_limit:
                self._ramp_limit *= 2
                if not self._ramping:
                    return now
            self._period_start, self._period_count = now, 0.0
        if self._period_count < self._ramp_limit:
            return now
        return self._period_start + self.RAMP_PERIOD_S

    def _take_refusals(self, now: float) -> None:
        """Act on the 429s wandb-core reported in its log since the last look."""
        if self.refusal_source is None:
            return
        events = self.refusal_source()
        if not events:
            return
        self.log_refusals += len(events)
        if self.rate is None:
            # The first word of a limit: stop ramping and pace at what got through in the second
            # before the first refusal. Before it *happened*, not before it was heard: on a starved
            # machine the word comes tenths of a second late, and the ramp started a burst meanwhile
            # (counting it paced a 20/s limit at 34/s, and a third of a short export was refused).
            # Nor more than the successes of the last second: on such a machine calls wait in
            # threads after the gate let them go, and reach the server after the first refusal.
            # But not below half of what was sent: calls slower than a second answer few in it,
            # and a rate of 1/s made the room for wandb-core's retries (`_reserve`) seconds long.
            first = min(min(events), now)
            sent = sum(c for t, c in self._recent if first - 1.0 < t <= first)
            self._recent.clear()
            answered = sum(c for t, c in self._done if t > now - 1.0)
            self._pace(max(1.0, min(sent - len(events), max(answered, sent / 2))), now)
            self._refused = self._cut = now
            log.debug("429 in wandb-core's log: pacing at %.2f requests/s", self.rate)
        else:
            self._refusal(now, "429 in wandb-core's log")
        self._reserve(len(events), now)

    def _refusal(self, now: float, what: str) -> None:
        """A refusal while pacing: lower the rate, once per burst."""
        self._refused = now
        if self.rate is None or now - self._cut < self.CUT_EVERY_S:
            return
        # Refused right after a raise: the limit lies below the raised rate, so go back to the
        # rate that held (a doubling cut by 15% would overshoot for seconds), never above a cut.
        lowered = self.rate * self.BACKOFF
        if self._before_probe is not None:
            lowered = min(lowered, self._before_probe)
        self._before_probe = None
        self._set_rate(max(self.MIN_RATE, lowered), now)
        self._cut, self._found = now, True
        log.debug("%s: pacing at %.2f requests/s", what, self.rate)

    def _reserve(self, requests: int, now: float) -> None:
        """wandb-core sends each refused request again after `Retry-After`, all at once: keep room
        for them now, so that a token-bucket limit has saved up for the burst by then (room kept
        at the retries' own time was tried: they met an empty bucket and were refused again)."""
        if self.rate:
            self._next = max(self._next, now) + requests / self.rate

    def delivered(self, now: float) -> float:
        """Requests per second the successful calls of the last `WINDOW_S` seconds made."""
        while self._done and self._done[0][0] < now - self.WINDOW_S:
            self._done.popleft()
        span = min(self.WINDOW_S, now - self._first)
        return sum(c for _, c in self._done) / span if span > 0 else 0.0

    def left(self, cost: float) -> None:
        self._in_flight -= cost

    def rate_limited(self) -> None:
        now = self._clock()
        if self.rate is not None and now >= self.resume_at:
            # Paced: the cut (once per burst) is the answer; a pause on top would leave a second
            # of the limit unused each time the rate probes it.
            self._refusal(now, "429")
            return
        if now < self.resume_at:
            return  # one decision per pause window, not one per refused request
        self.resume_at = now + self.pause
        self.pause = min(self.pause * 2, 30.0)
        if self.rate is None:
            # Nothing measured yet: what was sent since the first call, a quarter of it, or what
            # was delivered, until the calm seconds say better.
            span = max(1.0, now - self._first)
            sent = self._in_flight + sum(c for _, c in self._done)
            self._pace(max(self.delivered(now), self.FIRST_GUESS * sent / span), now)
            self._refused = self._cut = now
        else:
            self._refusal(now, "429")
        log.debug("429: pausing %.1f s, pacing at %.2f requests/s", self.resume_at - now, self.rate)

    def succeeded(self, kind: Any, cost: float, started: float, started_rate: float) -> None:
        """A call that worked. However long it took says nothing of a limit: only the calm
        since the last refusal counts, and raises the rate."""
        now = self._clock()
        self.pause = self.base_pause
        self._done.append((now, cost))
        if self.rate is None:  # slow start
            total = self.limiter.total_tokens
            if total < self.ceiling:
                self.limiter.total_tokens = total + 1
            return
        self._climb(now)

    def _climb(self, now: float) -> None:
        """Raise the rate after a calm period, if it is what holds calls back (a rate nobody
        reaches would grow without bound, and then let a burst through)."""
        calm = now - self._refused
        if calm >= self.CALM_S and now - self._probed >= 1.0 and now - self._held <= 1.0:
            near = self._found and calm < self.NEAR_S
            step = self.PROBE_NEAR if near else self.PROBE if self._found else self.PROBE_FIRST
            self._before_probe = self.rate
            self._set_rate(self.rate * (1 + step) if self.rate else 0.0, now)
            self._probed = now
            log.debug("calm for %.1f s: pacing at %.2f requests/s", now - self._refused, self.rate)

    def _pace(self, rate: float, now: float) -> None:
        """Pace at `rate` from now on; the rate is the limit now, not the window or the ramp."""
        self._set_rate(max(rate, self.MIN_RATE), now)
        self.limiter.total_tokens = self.ceiling

    def _set_rate(self, rate: float, now: float) -> None:
        if self.max_rate is not None:
            rate = min(rate, self.max_rate)
        self.rate = rate
        self._probed = now
