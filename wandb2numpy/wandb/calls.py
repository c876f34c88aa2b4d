"""The wandb client's side of each history call: one function per request kind, run in a worker
thread with that slot's `wandb.Api`, turning rows into arrays before they leave the thread (so only
arrays, never row dicts, outlive a call). The only module of the sources that touches wandb objects.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import wandb

from ..errors import FetchError, Wandb2NumpyError
from ..models import RunInfo
from ..plan.reads import OPEN_END
from ..runner import DeadlinePassed, GaveUp, Runner, Verdict
from ..series import NonNumericValue, ParquetColumns, Series, series_from_rows
from . import client, files
from .client import ApiPool, ClientSettings
from .corelog import CoreLogWatcher

# What one call returns: the series it read, and keys found to hold non-numeric values.
Read = tuple[dict[str, Series], dict[str, str]]


class Failures:
    """The runner's view of wandb's exceptions, with the API key scrubbed from every message."""

    def __init__(self, api_key: str | None) -> None:
        self._api_key = api_key

    def classify(self, exc: BaseException) -> Verdict:
        return client.classify(exc)

    def looks_down(self, exc: BaseException) -> bool:
        return client.looks_down(exc)

    def describe(self, exc: BaseException) -> str:
        if isinstance(exc, (GaveUp, DeadlinePassed)):  # worded, and scrubbed, by the runner
            return client.scrub(str(exc), self._api_key)
        return client.describe(exc, self._api_key)

    def to_error(self, exc: BaseException, what: str) -> Wandb2NumpyError:
        """Ours, for a failure that ends a call (the one reading of wandb's exceptions: `errors`)."""
        if isinstance(exc, GaveUp):  # the runner's count of attempts, named after what failed
            return FetchError(f"{what} failed: {self.describe(exc)}")
        return client.to_error(exc, what, self._api_key)


class Apis:
    """One `wandb.Api` per worker slot; the first one starts wandb-core, and with it the watch
    over wandb-core's log that tells the rate gate of 429s it retried out of our sight."""

    def __init__(self, settings: ClientSettings, runner: Runner | None = None) -> None:
        self.pool = ApiPool.take(settings)  # the CLI may have begun connecting (`client.connect_early`)
        self.runner = runner
        self.watcher: CoreLogWatcher | None = None
        self._lock = threading.Lock()

    def existing(self, slot: int) -> wandb.Api | None:
        api = self.pool.existing(slot)
        if api is not None:
            self._watch()
        return api

    def for_slot(self, slot: int) -> wandb.Api:
        api = self.pool.for_slot(slot)
        self._watch()
        return api

    def _watch(self) -> None:
        if self.watcher is not None:
            return
        with self._lock:
            if self.watcher is None and self.runner is not None:
                watcher = CoreLogWatcher().start()
                self.runner.gate.refusal_source = watcher.drain
                self.watcher = watcher


# The calls below run in worker threads. Converting rows to arrays there means only arrays, never
# row dicts, outlive a call.


def convert(rows: list[dict[str, Any]], keys: Sequence[str]) -> Read:
    series: dict[str, Series] = {}
    bad: dict[str, str] = {}
    for key in keys:
        try:
            series[key] = series_from_rows(rows, key)
        except NonNumericValue as exc:
            bad[key] = f"holds non-numeric values ({exc.example})"
    return series, bad


def sampled(api: wandb.Api, run: RunInfo, keys: Sequence[str], samples: int) -> Read:
    return convert(client.sampled_history(api, run, keys, samples), keys)


def window(api: wandb.Api, run: RunInfo, keys: Sequence[str], lo: int, hi: int, samples: int) -> tuple[Read, int, int]:
    """The window's series, its row count, and where to split it should it be full: the median
    step of the answer, since the server thins evenly over the rows, so the halves hold about
    equal rows (a step midpoint would take many splits to find a dense stretch)."""
    rows = client.history_window(api, run, keys, lo, hi, samples)
    middle = rows[len(rows) // 2].get("_step") if rows else None
    split = int(middle) if isinstance(middle, (int, float)) and lo < middle < hi else (lo + hi) // 2
    return convert(rows, keys), len(rows), split


def batch(
    api: wandb.Api,
    entity: str,
    project: str,
    run_ids: Sequence[str],
    specs: Sequence[Mapping[str, Any]],
    groups: Sequence[tuple[str, ...]],
) -> dict[str, list[Read]]:
    """Per run, the series read by each spec (one spec per key group, in `groups` order)."""
    answer = client.batch_history(api, entity, project, run_ids, specs)
    return {
        run_id: [convert(rows, group) for group, rows in zip(groups, per_spec)] for run_id, per_spec in answer.items()
    }


def scanned(api: wandb.Api, run: RunInfo, keys: Sequence[str], lo: int, hi: int, page_size: int) -> Read:
    rows = client.scan_history(api, run, keys, lo, None if hi == OPEN_END else hi, page_size)
    return convert(rows, keys)


def parquet_file(api: wandb.Api, url: str, keys: Sequence[str], timeout: float) -> ParquetColumns:
    """One exported file's columns: one GET, no wandb request (the slot's `Api` goes unused)."""
    return client.read_parquet_columns(url, keys, timeout)


def parquet_footer(api: wandb.Api, url: str, timeout: float, size: int) -> files.FileTail:
    """The end of an exported file, its footer among it: one ranged GET."""
    return files.read_footer(url, timeout, size)


def parquet_range(api: wandb.Api, url: str, start: int, end: int, timeout: float) -> bytes:
    """Bytes [start, end) of an exported file: one ranged GET."""
    return files.read_range(url, start, end, timeout)


def parquet_plan(api: wandb.Api, run: RunInfo, switch: threading.Event) -> client.ParquetPlan | None:
    """The run's export plan, or None without a request once asking was switched off."""
    if not switch.is_set():
        return None
    return client.parquet_history(api, run)
