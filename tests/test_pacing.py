"""The rate gate's control loop on a fake clock: no server, no sleeping."""

from __future__ import annotations

import anyio
import pytest

from wandb2numpy.runner.pacing import RateGate


class Clock:
    """The gate's clock and sleep: time moves only when the gate sleeps or a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.step = 0.01  # the least a sleep advances the clock

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now += max(delay, self.step)
        await anyio.sleep(0)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _deliver(gate: RateGate, clock: Clock, per_second: float, seconds: float, took: float = 1.0) -> None:
    """Successful one-request calls finishing at `per_second` for `seconds`."""
    for _ in range(int(per_second * seconds)):
        clock.now += 1.0 / per_second
        gate.succeeded("page", 1.0, clock.now - took, gate.rate or float("inf"))


def _starts(gate: RateGate, clock: Clock, calls: int, step: float = 0.01) -> list[float]:
    """Start `calls` calls as fast as the gate lets them; the fake clock moves as anyio sleeps."""
    times: list[float] = []

    async def go() -> None:
        clock.step = step
        for _ in range(calls):
            await gate.enter(1.0)
            times.append(clock.now)

    anyio.run(go)
    return times


def test_slow_start_grows_the_window_by_one_per_success(clock: Clock) -> None:
    limiter = anyio.CapacityLimiter(64)
    gate = RateGate(limiter, 64, 1.0, start_window=4, clock=clock, sleep=clock.sleep)
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
    gate = RateGate(anyio.CapacityLimiter(64), 64, 1.0, clock=clock, sleep=clock.sleep)
    _starts(gate, clock, 64)  # the ramp: 8, 16, 32, 64 within a few tenths of a second
    clock.now += 1.0
    gate.rate_limited()
    assert gate.resume_at == pytest.approx(clock.now + 1.0)
    assert gate.rate is not None and gate.rate <= 0.25 * 64  # not the rate that met the 429
    assert gate.limiter.total_tokens == 64  # the rate limits now, not the window


def test_refusals_once_deliveries_are_measured_pace_at_the_delivered_rate(clock: Clock) -> None:
    """A server that refuses delivers exactly its limit: that is where pacing goes, not just 15%
    below a rate that was far too high."""
    gate = RateGate(anyio.CapacityLimiter(64), 64, 1.0, clock=clock, sleep=clock.sleep)

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
    gate = RateGate(anyio.CapacityLimiter(16), 16, 1.0, max_rate=20.0, clock=clock, sleep=clock.sleep)
    assert gate.rate == 20.0
    gate.succeeded("page", 1.0, clock.now - 1.0, 20.0)  # the quickest page: 1 s
    clock.now += 0.5
    gate.succeeded("page", 1.0, clock.now - 2.2, 20.0)  # 1.2 s slower: a hidden 429
    slowed = gate.rate
    assert slowed is not None and slowed < 20.0
    clock.now += 1.5
    gate.succeeded("page", 1.0, clock.now - 1.0, slowed)
    assert gate.rate is not None and slowed < gate.rate <= 20.0  # probing up, capped by max_rate


def test_ramp_doubles_each_period_until_every_worker_is_busy(clock: Clock) -> None:
    gate = RateGate(anyio.CapacityLimiter(64), 64, 1.0, clock=clock, sleep=clock.sleep)
    t0 = clock.now
    times = _starts(gate, clock, 64)
    offsets = [round(t - t0, 2) for t in times]
    assert offsets[:8] == [0.0] * 8  # RAMP_FIRST at once
    assert all(0.09 < o <= 0.12 for o in offsets[8:16])  # then 8 more a period later
    assert max(offsets) <= 0.45  # 8, 16, 32, 64: all started within about four periods
    assert gate.rate is None


def test_a_refusal_in_wandb_cores_log_stops_the_ramp_and_paces(clock: Clock) -> None:
    gate = RateGate(anyio.CapacityLimiter(64), 64, 1.0, clock=clock, sleep=clock.sleep)
    reported: list[float] = []
    gate.refusal_source = lambda: [reported.pop() for _ in range(len(reported))]
    _starts(gate, clock, 8)
    reported += [clock.now, clock.now, clock.now]  # three of the eight were refused
    times = _starts(gate, clock, 10)
    assert gate.log_refusals == 3
    assert gate.rate == pytest.approx(5.0)  # the 5 that got through, per (at least) one second
    # 10 calls at 5/s, after room for wandb-core's 3 retries: about two seconds, not a burst
    assert times[-1] - times[0] >= 1.8
