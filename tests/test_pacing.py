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


def test_slow_answers_and_failures_never_lower_the_rate(clock: Clock) -> None:
    """Latency spikes, 5xx answers and resets say nothing about a limit: before, a slow call read
    as a hidden 429 and every cut was capped at what was delivered, so a server with faults and
    a limit was paced at a twentieth of that limit."""
    gate = RateGate(anyio.CapacityLimiter(32), 32, 1.0, max_rate=20.0, clock=clock, sleep=clock.sleep)
    gate.succeeded("page", 1.0, clock.now - 0.1, 20.0)  # the quickest page: 0.1 s
    for _ in range(50):
        clock.now += 0.1
        gate.succeeded("page", 1.0, clock.now - 1.6, 20.0)  # 1.5 s slower: a latency spike
        gate.left(1.0)  # and calls that failed with a 5xx only leave
    assert gate.rate == 20.0


def test_a_429_lowers_the_rate_and_a_calm_period_brings_it_back(clock: Clock) -> None:
    gate = RateGate(anyio.CapacityLimiter(32), 32, 0.2, clock=clock, sleep=clock.sleep)
    _starts(gate, clock, 8)
    gate.rate_limited()  # the first 429: paced at a guess
    gate.rate = 10.0
    clock.now += 1.0
    gate.rate_limited()
    cut = gate.rate
    assert cut == pytest.approx(8.5)
    gate.rate_limited()  # the same burst (within the pause): one decision
    assert gate.rate == cut
    # calm: calls held back by the rate and answered, none refused; after CALM_S the rate
    # climbs each second
    times: list[float] = []

    async def calm() -> None:
        clock.step = 0.01
        for _ in range(80):
            started, rate = await gate.enter(1.0)
            times.append(started)
            gate.left(1.0)
            gate.succeeded("page", 1.0, started, rate)

    anyio.run(calm)
    assert times[-1] - times[0] > RateGate.CALM_S + 2
    assert gate.rate is not None and gate.rate > cut * 1.05
    risen = gate.rate
    clock.now += 0.6
    gate.rate_limited()  # the limit met again: lowered, at least by a share, to the rate that held
    # before the last raise when that is lower; never down to the earlier cut or what was delivered
    assert cut < gate.rate <= risen * RateGate.BACKOFF


def test_a_rate_nobody_reaches_does_not_climb(clock: Clock) -> None:
    gate = RateGate(anyio.CapacityLimiter(32), 32, 0.2, max_rate=None, clock=clock, sleep=clock.sleep)
    _starts(gate, clock, 8)
    gate.rate_limited()
    gate.rate = 10.0
    for _ in range(100):  # a call every second for 100 s: the rate never held one back
        clock.now += 1.0
        gate.succeeded("page", 1.0, clock.now - 0.1, 10.0)
    assert gate.rate == 10.0


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
    for _ in range(5):  # five of the eight were answered ...
        gate.succeeded("page", 1.0, clock.now - 0.05, float("inf"))
    reported += [clock.now, clock.now, clock.now]  # ... and three refused
    refused_at = clock.now
    times = _starts(gate, clock, 10)
    assert gate.log_refusals == 3
    assert gate.rate == pytest.approx(5.0)  # the 5 that got through, per (at least) one second
    # 10 calls at 5/s, after room for wandb-core's 3 retries: about two seconds, not a burst
    assert times[0] >= refused_at + 3 * 0.2 - 0.01
    assert times[-1] - times[0] >= 1.8


def test_a_refusal_heard_late_paces_at_what_was_sent_before_it_happened(clock: Clock) -> None:
    """On a starved machine the log's line is read tenths of a second after the refusal, and the
    ramp has started a burst meanwhile: the first rate counts the calls started before the
    refusal happened (its stamp), not before it was heard, and no more than were answered."""
    gate = RateGate(anyio.CapacityLimiter(64), 64, 1.0, clock=clock, sleep=clock.sleep)
    reported: list[float] = []
    gate.refusal_source = lambda: [reported.pop() for _ in range(len(reported))]
    _starts(gate, clock, 24)  # 8 at once, then 16 a period later
    happened = clock.now
    for _ in range(30):
        gate.succeeded("page", 1.0, clock.now - 0.05, float("inf"))
    _starts(gate, clock, 32)  # the ramp's next burst, before the word comes
    reported += [happened, happened + 0.01]
    _starts(gate, clock, 1)
    assert gate.rate == pytest.approx(24 - 2)  # not 24 + 32 - 2
    late = RateGate(anyio.CapacityLimiter(64), 64, 1.0, clock=clock, sleep=clock.sleep)
    late.refusal_source = lambda: [reported.pop() for _ in range(len(reported))]
    _starts(late, clock, 24)
    for _ in range(12):  # the calls wait in threads: only 12 answered so far
        late.succeeded("page", 1.0, clock.now - 0.05, float("inf"))
    reported += [clock.now]
    _starts(late, clock, 1)
    assert late.rate == pytest.approx(12.0)


def test_a_refusal_right_after_a_raise_goes_back_to_the_rate_that_held(clock: Clock) -> None:
    """The first guess doubles per calm second; a 429 right after a doubling means the limit lies
    below it: back to the rate before the raise, not 15% off the doubled one (which overshot the
    limit for seconds and let a third of a short export's requests be refused)."""
    gate = RateGate(anyio.CapacityLimiter(32), 32, 0.2, clock=clock, sleep=clock.sleep)
    _starts(gate, clock, 8)
    gate.rate_limited()  # the first 429: paced at a guess
    gate.rate = 10.0
    rates: list[float] = []

    async def calm() -> None:
        clock.step = 0.01
        while not rates or rates[-1] <= 10.0:
            started, rate = await gate.enter(1.0)
            gate.left(1.0)
            gate.succeeded("page", 1.0, started, rate)
            assert gate.rate is not None
            rates.append(gate.rate)

    anyio.run(calm)
    raised = rates[-1]
    assert raised == pytest.approx(10.0 * (1 + RateGate.PROBE_FIRST))
    clock.now += 0.6
    gate.rate_limited()
    assert gate.rate == pytest.approx(10.0)
