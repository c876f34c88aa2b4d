"""The rate gate's control loop on a fake clock: no server, no sleeping."""

from __future__ import annotations

import anyio
import pytest

from wandb2numpy import pacing
from wandb2numpy.pacing import RateGate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(pacing.time, "monotonic", c)
    return c


def _deliver(gate: RateGate, clock: Clock, per_second: float, seconds: float, took: float = 1.0) -> None:
    """Successful one-request calls finishing at `per_second` for `seconds`."""
    for _ in range(int(per_second * seconds)):
        clock.now += 1.0 / per_second
        gate.succeeded("page", 1.0, clock.now - took, gate.rate or float("inf"))


def test_slow_start_grows_the_window_by_one_per_success(clock: Clock) -> None:
    limiter = anyio.CapacityLimiter(64)
    gate = RateGate(limiter, 64, 1.0, start_window=4)
    assert limiter.total_tokens == 4
    _deliver(gate, clock, 10, 1.0)
    assert limiter.total_tokens == 14
    _deliver(gate, clock, 10, 10.0)
    assert limiter.total_tokens == 64  # never past the concurrency


def test_no_start_window_opens_every_slot() -> None:
    limiter = anyio.CapacityLimiter(64)
    RateGate(limiter, 64, 1.0)
    assert limiter.total_tokens == 64


def test_first_429_pauses_and_paces_below_what_was_sent(clock: Clock) -> None:
    gate = RateGate(anyio.CapacityLimiter(64), 64, 1.0)

    async def fan_out() -> None:
        for _ in range(64):
            await gate.enter(1.0)

    anyio.run(fan_out)
    clock.now += 1.0
    gate.rate_limited()
    assert gate.resume_at == pytest.approx(clock.now + 1.0)
    assert gate.rate is not None and gate.rate <= 0.25 * 64  # not the rate that met the 429
    assert gate.limiter.total_tokens == 64  # the rate limits now, not the window


def test_refusals_once_deliveries_are_measured_pace_at_the_delivered_rate(clock: Clock) -> None:
    """A server that refuses delivers exactly its limit: that is where pacing goes, not just 15%
    below a rate that was far too high."""
    gate = RateGate(anyio.CapacityLimiter(64), 64, 1.0)

    async def one() -> None:
        await gate.enter(1.0)

    anyio.run(one)
    gate.rate_limited()
    gate.rate = 40.0  # pacing far above what the server takes
    clock.now += 2.0  # past the pause
    _deliver(gate, clock, 10, 4.0)
    gate.rate_limited()
    assert gate.rate == pytest.approx(10.0, rel=0.1)


def test_a_slow_call_lowers_the_rate_and_quiet_seconds_raise_it(clock: Clock) -> None:
    gate = RateGate(anyio.CapacityLimiter(16), 16, 1.0, max_rate=20.0)
    assert gate.rate == 20.0
    gate.succeeded("page", 1.0, clock.now - 1.0, 20.0)  # the quickest page: 1 s
    clock.now += 0.5
    gate.succeeded("page", 1.0, clock.now - 2.2, 20.0)  # 1.2 s slower: a hidden 429
    slowed = gate.rate
    assert slowed is not None and slowed < 20.0
    clock.now += 1.5
    gate.succeeded("page", 1.0, clock.now - 1.0, slowed)
    assert gate.rate is not None and slowed < gate.rate <= 20.0  # probing up, capped by max_rate
