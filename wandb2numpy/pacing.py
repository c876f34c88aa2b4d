"""Pacing for rate-limited servers: the gate every worker passes before a call.

Kept apart from `fetch.py` because it is a small control loop of its own (slow start, shared
pause, learned request rate) with no knowledge of runs or history.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from typing import Any

import anyio

log = logging.getLogger(__name__)


class RateGate:
    """What every worker passes before a call: a shared pause after a 429, a slow start, and, once
    the server has shown a rate limit, pacing at a learned request rate.

    The window of calls in flight starts at `start_window` and grows by one per success up to the
    concurrency, so a cold start does not throw every worker at an unknown limit at once. wandb-core
    retries a 429 once by itself after `Retry-After`, so most 429s never reach us; we see one only
    when both tries were refused. The first one we see switches the gate to paced mode: everyone
    pauses for `pause` seconds (the usual `Retry-After`), then calls start at a request rate: half of
    what was sent since the first call, or what was delivered over the last `WINDOW_S` seconds if
    more. From then on a call that took about a second longer than the quickest call of its kind
    probably met a hidden 429 and lowers the rate a little; a visible 429 lowers it more; each second
    without either raises it a little (faster until the first slow call has shown where the limit
    is). Rates count HTTP requests, estimated per call (`_request_cost`), since a full-history piece
    is several requests. A known `max_rate` paces from the first call and caps what is learned.
    """

    WINDOW_S = 3.0  # seconds of successes the delivery rate is measured over
    SLOW_S = 0.8  # a call this much slower than its kind's quickest probably met a hidden 429
    PROBE = 0.25  # paced mode: raise the rate by this fraction per second ...
    PROBE_NEAR = 0.015  # ... or by this one once a slow call has shown where the limit is
    BACKOFF_HIDDEN = 0.95  # ... lower it to this share of the rate the slow call started at
    BACKOFF_VISIBLE = 0.85  # ... or to this share of the rate after a 429 we saw
    FIRST_GUESS = 0.25  # first 429, nothing delivered yet: this share of what was sent per second

    def __init__(
        self,
        limiter: anyio.CapacityLimiter,
        ceiling: int,
        pause: float,
        *,
        start_window: int | None = None,
        max_rate: float | None = None,
    ) -> None:
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
        self._quickest: dict[Any, float] = {}  # call kind -> shortest successful duration
        self._first = 0.0  # when the first call started
        self._probed = 0.0  # when the rate was last raised or lowered
        self._cut_until = 0.0  # calls started before this were sent at a rate since lowered
        self._in_flight = 0.0  # cost of the calls started and not finished
        self._found = False  # whether a slow call has shown the limit since pacing began

    async def wait(self) -> None:
        """Wait out a shared pause."""
        delay = self.resume_at - time.monotonic()
        if delay > 0:
            await anyio.sleep(delay)

    async def enter(self, cost: float) -> tuple[float, float]:
        """Wait for this call's turn; return (start time, rate it was started at)."""
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:  # one waiter at a time, so a changed rate applies to the next call
            while True:
                now = time.monotonic()
                at = max(self.resume_at, self._next if self.rate else 0.0)
                if at <= now:
                    break
                await anyio.sleep(min(at - now, 0.25))
            if self.rate:
                self._next = max(self._next, now) + cost / self.rate
        if not self._first:
            self._first = now
        self._in_flight += cost
        return now, self.rate or math.inf

    def delivered(self, now: float) -> float:
        """Requests per second the successful calls of the last `WINDOW_S` seconds made."""
        while self._done and self._done[0][0] < now - self.WINDOW_S:
            self._done.popleft()
        span = min(self.WINDOW_S, now - self._first)
        return sum(c for _, c in self._done) / span if span > 0 else 0.0

    def left(self, cost: float) -> None:
        self._in_flight -= cost

    def rate_limited(self) -> None:
        now = time.monotonic()
        if now < self.resume_at:
            return  # one decision per pause window, not one per refused request
        self.resume_at = now + self.pause
        self.pause = min(self.pause * 2, 30.0)
        if self.rate is None:
            # Nothing measured yet: what was sent since the first call, halved, until the first
            # delivery samples say better.
            span = max(1.0, now - self._first)
            sent = self._in_flight + sum(c for _, c in self._done)
            new = max(self.delivered(now), self.FIRST_GUESS * sent / span)
        else:
            new = self._capped(self.rate * self.BACKOFF_VISIBLE, now)
        self._set_rate(max(new, 0.5), now, cut=True)
        self.limiter.total_tokens = self.ceiling  # the rate is the limit now, not the window
        log.debug("429: pausing %.1f s, pacing at %.2f requests/s", self.resume_at - now, self.rate)

    def succeeded(self, kind: Any, cost: float, started: float, started_rate: float) -> None:
        now = time.monotonic()
        self.pause = self.base_pause
        took = now - started
        quickest = self._quickest.get(kind)
        self._quickest[kind] = took if quickest is None else min(quickest, took)
        self._done.append((now, cost))
        if self.rate is None:  # slow start
            total = self.limiter.total_tokens
            if total < self.ceiling:
                self.limiter.total_tokens = total + 1
            return
        if quickest is not None and took > quickest + self.SLOW_S:
            if started >= self._cut_until:
                # Probably a hidden 429: the rate this call started at was too high.
                self._set_rate(self._capped(min(self.rate, started_rate) * self.BACKOFF_HIDDEN, now), now, cut=True)
                self._found = True
                log.debug("slow %s (%.2f s, quickest %.2f): pacing at %.2f requests/s",
                          kind, took, quickest, self.rate)
            return
        if now - self._probed >= 1.0:
            self._set_rate(self.rate * (1 + (self.PROBE_NEAR if self._found else self.PROBE)), now)

    def _capped(self, rate: float, now: float) -> float:
        """A refused server delivers exactly its limit: once a full window of deliveries has been
        measured, never pace above it after a refusal."""
        if now - self._first >= self.WINDOW_S:
            delivered = self.delivered(now)
            if delivered > 0:
                return min(rate, delivered)
        return rate

    def _set_rate(self, rate: float, now: float, cut: bool = False) -> None:
        if self.max_rate is not None:
            rate = min(rate, self.max_rate)
        if cut:
            self._cut_until = now
        self.rate = rate
        self._probed = now
