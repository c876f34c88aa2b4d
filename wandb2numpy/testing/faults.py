"""Fault injection and request accounting.

Decisions come from one seeded generator drawn in request-arrival order, so a sequential client
sees the same faults on every run. Every knob is keyed by operation name (`fault_ops`), so a
test can break only, say, `SampledHistoryPage` while listing stays healthy.
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Operations that read history; parquet file downloads count as "ParquetFile". A runs listing
# that asks for `sampledHistory` on its nodes is a history read under any name; this is the name
# to give it so that `fault_ops` and the docs agree.
HISTORY_OPS = frozenset(
    {
        "RunSampledHistory",
        "RunsSampledHistory",
        "RunFullHistory",
        "HistoryPage",
        "SampledHistoryPage",
        "RunParquetHistory",
        "RunHistoryKeys",
        "ParquetFile",
    }
)
ERROR_STATUSES = (500, 502, 503)


@dataclass(frozen=True, kw_only=True)
class FaultSettings:
    """What to break. Rates are fractions in [0, 1]; `fault_ops=None` targets every operation."""

    latency_ms: float = 0.0  # the whole answer time, building the answer included ...
    per_row_us: float = 0.0  # ... plus this per history row returned (GraphQL answers only)
    # Parquet file GETs are answered as storage answers them: the headers after `latency_ms`
    # (spikes included), then the body at this many MB/s per response (0: as fast as the socket
    # takes it). Ranges are honoured, so a ranged read takes its own bytes' time, not the file's.
    file_mb_per_s: float = 0.0
    rate_limit: float | None = None  # requests per second, burst = max(1, rate)
    error_rate: float = 0.0
    reset_rate: float = 0.0
    reset_mode: str = "body"  # "body": headers + half the body, then RST; "connect": RST at once
    spike_rate: float = 0.0
    spike_ms: float = 0.0
    fault_ops: frozenset[str] | None = None
    fail_runs: frozenset[str] = frozenset()
    seed: int = 0
    # False: refuse `sampledHistory` on the nodes of a runs listing with the schema error an
    # older server gives, so a client's fall-back to per-run queries can be exercised.
    batch_history: bool = True
    # Runs a `Runs` listing counts in `runCount` but leaves out of its pages: a listing that
    # disagrees with its own count, which a client must not take for a complete one.
    unlisted_runs: frozenset[str] = frozenset()

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    def replace(self, **changes: Any) -> FaultSettings:
        unknown = set(changes) - self.field_names()
        if unknown:
            raise TypeError(f"unknown fault settings: {sorted(unknown)}")
        for key in ("fault_ops", "fail_runs", "unlisted_runs"):
            if key in changes and changes[key] is not None:
                val = changes[key]
                changes[key] = frozenset(val.split(",") if isinstance(val, str) else val) - {""}
        if changes.get("reset_mode", "body") not in ("body", "connect"):
            raise ValueError("reset_mode must be 'body' or 'connect'")
        if changes.get("rate_limit") is not None and float(changes["rate_limit"]) <= 0:
            changes["rate_limit"] = None
        return dataclasses.replace(self, **changes)

    def targets(self, op: str) -> bool:
        return self.fault_ops is None or op in self.fault_ops

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["fault_ops"] = sorted(self.fault_ops) if self.fault_ops is not None else None
        out["fail_runs"] = sorted(self.fail_runs)
        out["unlisted_runs"] = sorted(self.unlisted_runs)
        return out


class TokenBucket:
    """Allows `rate` requests per second with a burst of max(1, rate)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> float:
        """0 if a token was taken, else the seconds until one is available."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return 0.0
            return (1.0 - self.tokens) / self.rate


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do to one request, decided before it is served."""

    retry_after: int | None = None  # answer 429
    status: int | None = None  # answer this 5xx
    reset: bool = False  # send part of the response, then RST
    delay_s: float = 0.0  # sleep before answering
    spike: bool = False  # delay_s includes a latency spike
    per_row_s: float = 0.0  # and this much per returned row


class FaultInjector:
    def __init__(self, settings: FaultSettings | None = None) -> None:
        self._lock = threading.Lock()
        self.settings = settings or FaultSettings()
        self._rng = random.Random(self.settings.seed)
        self._bucket = TokenBucket(self.settings.rate_limit) if self.settings.rate_limit else None

    def configure(self, **changes: Any) -> FaultSettings:
        """Changes settings at runtime; a new seed or rate restarts the generator or bucket."""
        with self._lock:
            new = self.settings.replace(**changes)
            if "seed" in changes:
                self._rng = random.Random(new.seed)
            if new.rate_limit != self.settings.rate_limit or "rate_limit" in changes:
                self._bucket = TokenBucket(new.rate_limit) if new.rate_limit else None
            self.settings = new
            return new

    def decide(
        self, op: str, run_id: str | None, *, history: bool | None = None, page_runs: Iterable[str] = ()
    ) -> Decision:
        """`history` says whether the request reads history (default: `op in HISTORY_OPS`);
        `page_runs` are the runs a batched history request reads: one in `fail_runs` fails it all."""
        s = self.settings
        if not s.targets(op):
            return Decision()
        if history is None:
            history = op in HISTORY_OPS
        if history and s.fail_runs and (run_id in s.fail_runs or not s.fail_runs.isdisjoint(page_runs)):
            return Decision(status=500, delay_s=s.latency_ms / 1000.0)
        if self._bucket is not None:
            wait = self._bucket.take()
            if wait > 0:
                return Decision(retry_after=max(1, math.ceil(wait)))
        with self._lock:
            err, rst, spike, pick = (self._rng.random() for _ in range(4))
        delay = s.latency_ms / 1000.0
        if spike < s.spike_rate:
            delay += s.spike_ms / 1000.0
        status = ERROR_STATUSES[int(pick * len(ERROR_STATUSES))] if err < s.error_rate else None
        return Decision(
            status=status,
            reset=status is None and rst < s.reset_rate,
            delay_s=delay,
            spike=spike < s.spike_rate,
            per_row_s=s.per_row_us / 1e6,
        )


class Stats:
    """Counters for `GET /_stats`; the in-flight gauge covers /graphql and file GETs only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.ops: dict[str, int] = {}
            self.statuses: dict[str, int] = {}
            self.rows_served = 0
            self.bytes_sent = 0
            self.bytes_by_op: dict[str, int] = {}
            self.injected_429 = 0
            self.injected_5xx = 0
            self.injected_resets = 0
            self.auth_failures = 0
            self.in_flight = 0
            self.max_in_flight = 0
            self.history_requests = 0
            self.history_requests_by_run: dict[str, int] = {}
            self.spikes = 0

    def begin(
        self, op: str, run_key: str | None, *, history: bool | None = None, page_runs: Iterable[str] = ()
    ) -> None:
        """A batched history request counts once in `history_requests`, and once under each run
        of its page in `history_requests_by_run` (which runs' history was asked for)."""
        with self._lock:
            self.requests += 1
            self.ops[op] = self.ops.get(op, 0) + 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if op in HISTORY_OPS if history is None else history:
                self.history_requests += 1
                for key in [run_key] if run_key else page_runs:
                    self.history_requests_by_run[key] = self.history_requests_by_run.get(key, 0) + 1

    def end(
        self, status: int, *, rows: int = 0, nbytes: int = 0, decision: Decision | None = None, op: str | None = None
    ) -> None:
        with self._lock:
            if op is not None:
                self.bytes_by_op[op] = self.bytes_by_op.get(op, 0) + nbytes
            self.in_flight -= 1
            label = str(status) if status else "reset"
            self.statuses[label] = self.statuses.get(label, 0) + 1
            self.rows_served += rows
            self.bytes_sent += nbytes
            if decision is not None:
                self.spikes += decision.spike
                if decision.retry_after is not None:
                    self.injected_429 += 1
                elif decision.reset:
                    self.injected_resets += 1
                elif decision.status is not None:
                    self.injected_5xx += 1
            if status == 401:
                self.auth_failures += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "ops": dict(self.ops),
                "statuses": dict(self.statuses),
                "rows_served": self.rows_served,
                "bytes_sent": self.bytes_sent,
                "bytes_by_op": dict(self.bytes_by_op),
                "injected_429": self.injected_429,
                "injected_5xx": self.injected_5xx,
                "injected_resets": self.injected_resets,
                "injected_spikes": self.spikes,
                "auth_failures": self.auth_failures,
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "history_requests": self.history_requests,
                "history_requests_by_run": dict(self.history_requests_by_run),
            }


def parse_fault_json(body: Mapping[str, Any], allowed: Iterable[str]) -> dict[str, Any]:
    """Validates a `POST /_faults` body: known keys only."""
    allowed = set(allowed)
    unknown = set(body) - allowed
    if unknown:
        raise ValueError(f"unknown fault settings: {sorted(unknown)}")
    return dict(body)
