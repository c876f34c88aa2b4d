"""The generic runner and the pipeline against an in-memory history source: no server, no wandb.

These pin what every source gets from `fetch.Runner` (slots, retries, auth abort, request
counting) and that the pipeline and the incremental cache need nothing from a source but the
`HistorySource` interface.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

from wandb2numpy import AuthError, RetryPolicy, export
from wandb2numpy.config import ExperimentConfig
from wandb2numpy.models import KeyInfo, RunInfo
from wandb2numpy.runner import FetchStats, GaveUp, Runner, Verdict, task_group
from wandb2numpy.series import Series
from wandb2numpy.sources import ProgressFn, RunOutcome
from wandb2numpy.sources.base import OutcomeFn

QUICK = RetryPolicy(attempts=4, initial_wait=0.001, max_wait=0.002, rate_limit_pause=0.001)


class Transient(Exception):
    pass


class Refused(Exception):
    pass


class Broken(Exception):
    pass


class Failures:
    def classify(self, exc: BaseException) -> Verdict:
        if isinstance(exc, Transient):
            return "transient"
        if isinstance(exc, Refused):
            return "auth"
        return "fatal"

    def describe(self, exc: BaseException) -> str:
        return f"{type(exc).__name__}: {exc}"


class Slots:
    """One resource per slot (a dict standing in for a client), counted as it is created."""

    def __init__(self) -> None:
        self.made: dict[int, dict[str, int]] = {}
        self._lock = threading.Lock()

    def existing(self, slot: int) -> dict[str, int] | None:
        return self.made.get(slot)

    def for_slot(self, slot: int) -> dict[str, int]:
        with self._lock:
            return self.made.setdefault(slot, {"slot": slot})


def _run(i: int, rows: int = 5) -> RunInfo:
    return RunInfo(
        entity="e",
        project="p",
        id=f"r{i}",
        name=f"run-{i}",
        group="g" if i % 2 else "h",
        history_line_count=rows,
        last_step=rows - 1,
        history_keys={"loss": KeyInfo(types=("number",), count=rows)},
    )


class MemorySource:
    """A `HistorySource` over in-memory runs, read through a `Runner` like a real source.

    `faults[run_id]` is a list of exceptions the next reads of that run raise, in order.
    """

    def __init__(self, runs: Sequence[RunInfo], *, concurrency: int = 3) -> None:
        self.runs = list(runs)
        self.slots = Slots()
        self.runner = Runner(self.slots, Failures(), concurrency=concurrency, policy=QUICK)
        self.faults: dict[str, list[Exception]] = {}
        self.reads: list[str] = []
        self.listed = 0
        self.closed = False

    @property
    def stats(self) -> FetchStats:
        return self.runner.stats

    async def prepare(self) -> None:
        pass

    async def list_runs(self, exp: ExperimentConfig) -> list[RunInfo]:
        self.listed += 1
        return list(self.runs)

    def _read(self, resource: dict[str, int], run: RunInfo, fields: Sequence[str]) -> RunOutcome:
        self.reads.append(run.id)
        pending = self.faults.get(run.id)
        if pending:
            raise pending.pop(0)
        n = run.history_line_count
        steps = np.arange(n, dtype=np.float64)
        index = int(run.id[1:])
        return RunOutcome(series={f: Series(steps, steps * 10 + index) for f in fields if f in run.history_keys})

    async def read_runs(
        self,
        runs: Sequence[RunInfo],
        fields: Sequence[str],
        *,
        samples: int | None,
        progress: ProgressFn | None = None,
        starts: Sequence[int] | None = None,
        on_outcome: OutcomeFn | None = None,
    ) -> list[RunOutcome]:
        assert starts is None or not any(starts)  # these runs never grow
        outcomes = [RunOutcome() for _ in runs]

        async def one(i: int, run: RunInfo) -> None:
            try:
                outcomes[i] = await self.runner.call(self._read, run, fields, what=run.id)
            except AuthError:
                raise
            except Exception as exc:  # noqa: BLE001 - a failed run is recorded, as in the real sources
                outcomes[i] = RunOutcome(error=str(exc))
            if on_outcome is not None:
                on_outcome(run, outcomes[i])
            if progress is not None:
                progress("run_failed" if outcomes[i].error else "run_done", run, outcomes[i].rows)

        async with task_group() as tg:
            for i, run in enumerate(runs):
                tg.start_soon(one, i, run)
        return outcomes

    def close(self) -> None:
        self.closed = True


def test_runner_bounds_calls_in_flight_and_uses_one_resource_per_slot() -> None:
    slots = Slots()
    runner = Runner(slots, Failures(), concurrency=3, policy=QUICK)
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}
    seen: list[int] = []
    release = threading.Event()

    def work(resource: dict[str, int], i: int) -> int:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            seen.append(resource["slot"])
        release.wait(0.05)
        with lock:
            state["now"] -= 1
        return i * 2

    async def main() -> list[int]:
        results = [0] * 12

        async def one(i: int) -> None:
            results[i] = await runner.call(work, i, what=f"call {i}", cost=2.0)

        async with task_group() as tg:
            for i in range(12):
                tg.start_soon(one, i)
        return results

    assert anyio.run(main) == [i * 2 for i in range(12)]
    assert state["peak"] <= 3
    assert set(seen) <= {0, 1, 2} and len(slots.made) <= 3
    assert runner.stats.calls == 12
    assert runner.stats.requests == 24  # the cost each call declared


def test_runner_retries_transient_failures_then_gives_up() -> None:
    runner = Runner(Slots(), Failures(), concurrency=2, policy=QUICK)
    attempts: list[int] = []

    def flaky(resource: Any, fail_times: int) -> str:
        attempts.append(1)
        if len(attempts) <= fail_times:
            raise Transient("try again")
        return "ok"

    assert anyio.run(lambda: runner.call(flaky, 2, what="flaky")) == "ok"
    assert len(attempts) == 3
    assert runner.stats.retries == 2 and runner.stats.transient_errors == 2

    attempts.clear()
    with pytest.raises(GaveUp) as info:
        anyio.run(lambda: runner.call(flaky, 99, what="hopeless"))
    assert len(attempts) == QUICK.attempts
    # the message counts the attempts made, and keeps the last failure's text
    assert isinstance(info.value.__cause__, Transient)
    assert info.value.attempts == QUICK.attempts
    assert f"gave up after {QUICK.attempts} attempt(s)" in str(info.value) and "try again" in str(info.value)


class Answered(Exception):
    """A failure the server answered itself (a 500): it works, this request does not."""


class DownOrAnswered(Failures):
    def classify(self, exc: BaseException) -> Verdict:
        return "transient" if isinstance(exc, (Transient, Answered)) else super().classify(exc)

    def looks_down(self, exc: BaseException) -> bool:
        return not isinstance(exc, Answered)


@pytest.mark.parametrize("error, doubling", [(Transient, True), (Answered, False)])
def test_waits_double_only_while_the_server_looks_down(error: type[Exception], doubling: bool) -> None:
    """An outage backs off (1, 2, 4, ... up to max_wait, 75-100% each); a request the server
    answered with an error is retried after the first wait every time, so a broken run costs
    seconds, not the minutes an outage is given."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    policy = RetryPolicy(attempts=6, initial_wait=1.0, max_wait=30.0)
    runner = Runner(Slots(), DownOrAnswered(), concurrency=1, policy=policy, sleep=sleep)

    def failing(resource: Any) -> None:
        raise error("no")

    with pytest.raises(GaveUp):
        anyio.run(lambda: runner.call(failing, what="failing"))
    nominal = [1.0, 2.0, 4.0, 8.0, 16.0] if doubling else [1.0] * 5
    assert len(waits) == 5
    assert all(0.75 * n <= w <= n for w, n in zip(waits, nominal)), waits


def test_runner_does_not_retry_a_fatal_error() -> None:
    runner = Runner(Slots(), Failures(), concurrency=2, policy=QUICK)
    calls: list[int] = []

    def broken(resource: Any) -> None:
        calls.append(1)
        raise Broken("no")

    with pytest.raises(Broken):
        anyio.run(lambda: runner.call(broken, what="broken"))
    assert len(calls) == 1 and runner.stats.retries == 0


def test_runner_turns_a_refused_credential_into_auth_error_with_the_sources_words() -> None:
    runner = Runner(Slots(), Failures(), concurrency=2, policy=QUICK)

    def refused(resource: Any) -> None:
        raise Refused("401 for key")

    with pytest.raises(AuthError, match="Refused: 401 for key"):
        anyio.run(lambda: runner.call(refused, what="refused"))


def test_pipeline_runs_on_any_source_keeping_order_and_recording_failures(tmp_path: Path) -> None:
    runs = [_run(i, rows=3 + i) for i in range(6)]
    source = MemorySource(runs)
    source.faults["r2"] = [Transient("blip")]  # retried: exported
    source.faults["r4"] = [Broken("gone")]  # not retried: a failed run, the others exported
    config = {"exp": {"entity": "e", "project": "p", "fields": ["loss"], "output_path": str(tmp_path)}}
    result = export(config, source=source)
    res = result.experiments["exp"].result
    assert [r.id for r in res.runs] == ["r0", "r1", "r2", "r3", "r5"]
    assert res.failed_runs == {"r4": "gone"}
    values = res.fields["loss"].values
    for row, i in enumerate([0, 1, 2, 3, 5]):
        n = 3 + i
        np.testing.assert_array_equal(values[row, :n], np.arange(n) * 10.0 + i)
        assert np.isnan(values[row, n:]).all()
    assert np.load(tmp_path / "exp" / "loss.npy").shape == values.shape
    assert result.exit_code == 3
    assert not source.closed  # a source passed in belongs to its owner


def test_incremental_cache_wraps_any_source(tmp_path: Path) -> None:
    runs = [_run(i) for i in range(4)]
    config = {"exp": {"entity": "e", "project": "p", "fields": ["loss"], "output_path": str(tmp_path)}}
    first = MemorySource(runs)
    export(config, source=first, incremental=True)
    assert sorted(first.reads) == ["r0", "r1", "r2", "r3"]

    grown = [*runs[:3], _run(3, rows=9), _run(4)]  # r3 grew, r4 is new
    second = MemorySource(grown)
    result = export(config, source=second, incremental=True)
    assert sorted(second.reads) == ["r3", "r4"]
    assert result.experiments["exp"].unchanged_runs == 3
    values = np.load(tmp_path / "exp" / "loss.npy")
    assert values.shape == (5, 9)
    np.testing.assert_array_equal(values[3], np.arange(9) * 10.0 + 3)


def test_the_export_result_is_never_turned_into_text_on_the_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leaving `asyncio.run`, Python 3.11 formats the repr of its SIGINT handler, which holds the
    main task and so the task's result: the repr of every exported array (0.3 s of a 1.6M-row
    export's CPU). The result must come back some other way."""
    from wandb2numpy.result import ExportResult

    made: list[str] = []
    monkeypatch.setattr(ExportResult, "__repr__", lambda self: made.append("repr") or "ExportResult(...)")
    config = {"exp": {"entity": "e", "project": "p", "fields": ["loss"], "output_path": str(tmp_path)}}
    result = export(config, source=MemorySource([_run(i) for i in range(3)]), write=False)
    assert result.exit_code == 0 and len(result.experiments["exp"].result.runs) == 3
    assert made == []
