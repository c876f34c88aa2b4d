"""Pure planning of history reads from what a run listing says: which keys, in which groups, in
which step ranges, at what request cost.

No I/O here, so every decision is unit-tested directly (tests/test_planning.py) and any source
that lists runs with history-key counts (W&B, a parquet reader, run folders) can share it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Literal

from ..models import RunInfo

__all__ = [
    "BATCH_ROWS",
    "GroupRead",
    "batch_groups",
    "parquet_eligible",
    "read_in_full",
    "thinned",
    "group_read",
    "spare_workers",
    "ReadPlan",
    "fits_batch",
    "plan_reads",
    "INTERNAL_KEYS",
    "listing_pages",
    "page_workers",
    "PAGES_IN_FLIGHT",
    "MAX_SAMPLES",
    "OPEN_END",
    "batches",
    "row_windows",
    "run_rows",
    "window_samples",
    "all_numeric_fields",
    "co_logged_groups",
    "expected_rows",
    "plan_keys",
    "range_cost",
    "sampling_keeps_all",
    "step_ranges",
]

INTERNAL_KEYS = ("_step", "_runtime", "_timestamp")
OPEN_END = -1  # a step range whose end the reader finds out itself
# Very large `samples` have answered HTTP 500 on the real service (wandb issue #8291).
MAX_SAMPLES = 10_000
# Rows one batched answer may hold, at most (many small runs in one request).
BATCH_ROWS = 100_000
# A listing of several pages is read a page at a time, pages side by side, each page as if it
# were all the runs on its share of the workers. The first page, read while the rest is still
# being listed, and the last, read once the listing is whole, spread over every worker: the one
# fills the pool at once, the other evens out the end. Pages between spread over this share,
# as a few of them in flight keep every worker busy with fewer, larger requests (each costs the
# server's fixed latency once; 2,000 small runs: 66 requests, not 170).
PAGES_IN_FLIGHT = 4


def plan_keys(run: RunInfo, fields: Sequence[str], non_numeric: dict[str, str]) -> list[str]:
    """The requested fields this run can have, judged from its history keys when it sent them.

    Fields the listing shows as non-numeric are recorded in `non_numeric` with the reason, so the
    summary can say why a field is missing instead of fetching it to find out.
    """
    if not run.history_keys:
        return list(fields)
    wanted = []
    for key in fields:
        info = run.history_keys.get(key)
        if info is None or info.count == 0:
            continue
        if not info.numeric:
            non_numeric[key] = f"logged as {'/'.join(info.types) or 'unknown type'}"
            continue
        wanted.append(key)
    return wanted


def co_logged_groups(run: RunInfo, keys: Sequence[str]) -> list[tuple[str, ...]]:
    """Keys with the same row count are probably logged together: ask for them in one request.

    The server returns only rows that hold every requested key, so a wrong guess shows as missing
    rows (see `expected_rows`) and is repaired by asking per key.
    """
    if not run.history_keys:
        return [(k,) for k in keys]
    by_count: dict[int, list[str]] = {}
    for key in keys:
        by_count.setdefault(run.history_keys[key].count, []).append(key)
    return [tuple(v) for v in by_count.values()]


def expected_rows(run: RunInfo, key: str, samples: int | None) -> int | None:
    """Rows a complete read of `key` returns (None: the listing did not say)."""
    info = run.history_keys.get(key)
    if info is None:
        return None
    return info.count if samples is None else min(info.count, samples)


def sampling_keeps_all(run: RunInfo, keys: Sequence[str], samples: int) -> bool:
    """Whether the server would return every row anyway. Then the rows can be fetched as a full
    scan in parallel step ranges instead of one sampled request, with the same result; this
    matters when there are fewer runs than workers."""
    if run.last_step < 0:
        return False
    infos = [run.history_keys.get(k) for k in keys]
    return all(i is not None and i.count <= samples for i in infos)


def step_ranges(run: RunInfo, pieces: int, page_size: int) -> list[tuple[int, int]]:
    """Split [0, last_step] into up to `pieces` page-aligned ranges to fetch in parallel."""
    if run.last_step < 0:  # the listing did not say: let the reader ask the server
        return [(0, OPEN_END)]
    end = run.last_step + 1
    pages = max(1, math.ceil(end / page_size))
    pieces = max(1, min(pieces, pages))
    # Spread the pages evenly (20 pages in 16 pieces: 4 of 2 and 12 of 1), so every piece asked
    # for gets a worker instead of fewer, larger pieces.
    bounds = [round(k * pages / pieces) for k in range(pieces + 1)]
    return [(lo * page_size, min(end, hi * page_size)) for lo, hi in zip(bounds, bounds[1:])]


def range_cost(lo: int, hi: int, page_size: int, *, scan: bool) -> float:
    """About how many HTTP requests reading [lo, hi) sends: one per page of `page_size` steps;
    wandb's own scan (`scan`) asks for the run's parquet export first, and for its last step when
    that is unknown (`hi == OPEN_END`)."""
    if hi == OPEN_END:
        return 3.0
    pages = max(1, math.ceil((hi - lo) / page_size))
    return float(pages + 1 if scan else pages)


def all_numeric_fields(runs: Sequence[RunInfo]) -> list[str]:
    """`fields: all`: every numeric history key of the matched runs, minus wandb's own."""
    names: set[str] = set()
    for run in runs:
        for key, info in run.history_keys.items():
            if key in INTERNAL_KEYS or key.startswith("_wandb") or not info.numeric:
                continue
            names.add(key)
    return sorted(names)


def run_rows(run: RunInfo, keys: Sequence[str], samples: int | None) -> int | None:
    """Rows a complete read of `keys` returns, summed over keys (None: the listing did not say)."""
    total = 0
    for key in keys:
        n = expected_rows(run, key, samples)
        if n is None:
            return None
        total += n
    return total


def row_windows(
    run: RunInfo, rows: int, page_size: int, spare: int, *, split_for_size: bool, start: int = 0
) -> list[tuple[int, int]]:
    """Step windows of [start, last_step] to read `rows` rows in, each expected to hold about a page.

    Planned by rows, never by steps: a run that logged 1,000 rows 10,000 steps apart is one
    window, not 10,000 empty ones. Windows split the step range evenly, so uneven logging can
    overfill one; its answer then comes back full and the reader splits it (see
    `window_samples`). `split_for_size`: split a run larger than a page (full history); sampled
    mode keeps one request per key group, as the server's sampling decides what it returns.
    `spare`: workers this run may use beyond that, for which it is split further, but never into
    requests of less than half a page. `start`: the first step to read (an incremental tail).
    """
    end = run.last_step + 1
    if end <= 0:
        return [(0, OPEN_END)]
    if start >= end:  # a tail after the last step: nothing to read
        return []
    k = max(1, math.ceil(rows / page_size)) if split_for_size else 1
    if spare > k:
        k = max(k, min(spare, rows // max(1, page_size // 2)))
    k = max(1, min(k, end - start))
    bounds = [start + round(i * (end - start) / k) for i in range(k + 1)]
    return [(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]


def window_samples(rows: int, windows: int) -> int:
    """The `samples` of a window request: twice the rows it is expected to hold, so uneven logging
    rarely overfills it. An answer with exactly this many rows may have been thinned by the server
    and is split; any shorter answer is complete."""
    return min(MAX_SAMPLES, max(2, 2 * math.ceil(rows / max(1, windows))))


def batches(sizes: Sequence[int], workers: int, page_size: int) -> list[list[int]]:
    """Consecutive groups of small runs (indices into `sizes`, their rows) to read a group a request.

    A group holds at most `BATCH_ROWS` rows and about an equal share of all rows per worker (so
    the workers have something to do), but never less than a page.
    """
    total = sum(sizes)
    target = min(BATCH_ROWS, max(page_size, math.ceil(total / max(1, workers))))
    out: list[list[int]] = []
    current: list[int] = []
    held = 0
    for i, n in enumerate(sizes):
        if current and held + n > target:
            out.append(current)
            current, held = [], 0
        current.append(i)
        held += n
    if current:
        out.append(current)
    return out


def fits_batch(run: RunInfo, keys: Sequence[str], samples: int | None, page_size: int) -> bool:
    """Whether the run's rows fit one sample of a batched request (and the listing said so)."""
    rows = run_rows(run, keys, samples)
    if rows is None or rows > page_size:
        return False
    return samples is not None or all(run.history_keys[k].count < page_size for k in keys)


def parquet_eligible(run: RunInfo, wanted: Sequence[str], samples: int | None, page_size: int) -> bool:
    """Whether to read the run from its parquet export: finished (only those are exported),
    too large for a batched request, with counts from the listing to check the files
    against, and read in full (sampled mode only when the server's sampling would return
    every row anyway: otherwise its sampling decides which rows come back; and only when
    the keys need two or more sampled requests, since the files cost two requests, the
    export's names and the file, and sampled mode sends no more than one per key group)."""
    if run.state != "finished" or not run.history_keys or run.last_step < 0:
        return False
    if not wanted or any(k not in run.history_keys for k in wanted):
        return False
    if samples is not None and (not sampling_keeps_all(run, wanted, samples) or len(co_logged_groups(run, wanted)) < 2):
        return False
    return not fits_batch(run, wanted, samples, page_size)


def thinned(run: RunInfo, keys: Sequence[str], samples: int | None) -> bool:
    """Whether the server's sampling could thin this run's rows of `keys` (without history-key
    counts in the listing, assume it could)."""
    if samples is None:
        return False
    if not run.history_keys:
        return True
    return any((info := run.history_keys.get(k)) is not None and info.count > samples for k in keys)


def read_in_full(run: RunInfo, key: str, fields: Sequence[str], samples: int | None) -> bool:
    """With an x axis other than `_step`: whether to read this run in full and thin it after the join.

    Not when sampling keeps every row, and not when KEY has the same row count as every field
    (``global_step`` logged with every metric, the usual case): the sources ask for keys with
    equal counts in one request, which the server samples as one, so field and KEY come from the
    same rows. Should that guess be wrong, the join drops rows and the run is read again in full.
    """
    if not thinned(run, [key, *fields], samples):
        return False
    info = run.history_keys.get(key)
    if info is None:
        return True
    return any((f_info := run.history_keys.get(f)) is not None and f_info.count != info.count for f in fields)


def listing_pages(runs: int, listing_page: int | None) -> list[tuple[int, int]]:
    """[lo, hi) of each listing page of `runs` runs: the units reads are planned and sent in."""
    size = listing_page if listing_page and listing_page > 0 else max(1, runs)
    return [(lo, min(runs, lo + size)) for lo in range(0, runs, size)] or [(0, 0)]


def page_workers(workers: int, index: int, last: bool) -> int:
    """The workers listing page `index` (from 0) is planned on; `last`: the listing's last page."""
    return workers if index == 0 or last else max(1, workers // PAGES_IN_FLIGHT)


def spare_workers(workers: int, runs: int) -> int:
    """Workers each run may use beyond its own: few runs are split further to keep all busy."""
    return max(1, math.ceil(workers / max(1, runs)))


def batch_groups(
    runs: Sequence[RunInfo],
    keys: Sequence[Sequence[str]],
    samples: int | None,
    *,
    workers: int,
    page_size: int,
    starts: Sequence[int] | None = None,
) -> list[list[int]]:
    """Which runs share a batched request (indices into `runs`): small runs with counts from the
    listing, read from their first step. The one decision the source executes and the plan shows."""
    first = list(starts) if starts is not None else [0] * len(runs)
    small = [
        i for i, run in enumerate(runs) if keys[i] and not first[i] and fits_batch(run, keys[i], samples, page_size)
    ]
    if len(small) < 2:
        return []
    groups = batches([run_rows(runs[i], keys[i], samples) or 0 for i in small], workers, page_size)
    return [[small[j] for j in g] for g in groups]


ReadKind = Literal["sampled", "windows", "pages", "scan"]


@dataclass(frozen=True, kw_only=True)
class GroupRead:
    """How one co-logged key group of one run is read, request by request: decided from the
    listing, executed as it stands by the source (answers that come back full are split then,
    which no listing can foresee).

    `ranges` holds one (first step, end step, samples cap) per request; a sampled request has
    one range (0, 0, samples). `rows` is what the listing says the reads return (None: unknown).
    """

    keys: tuple[str, ...]
    kind: ReadKind
    ranges: tuple[tuple[int, int, int], ...]
    rows: int | None

    @property
    def requests(self) -> int:
        return len(self.ranges)


def group_read(
    run: RunInfo,
    keys: Sequence[str],
    samples: int | None,
    spare: int,
    page_size: int,
    *,
    start: int = 0,
    tail: tuple[int, int] | None = None,
    core: bool = False,
) -> GroupRead:
    """The requests for `keys` of `run`: one sampled request, row-sized step windows, one window
    per page of steps (no counts), or wandb's own scan in step ranges (`core`, or no last step).
    `start`: an incremental tail, the steps from there on. `tail`: the live rows after a parquet
    export, (first step, rows of each key)."""
    keys = tuple(keys)
    rows: int | None
    if tail is not None:
        start, rows = tail
        sampled = False
    else:
        rows = min((expected_rows(run, k, samples) or 0) for k in keys) if run.history_keys else None
        if start and rows is not None:  # an incremental tail: its share of the steps, for planning only
            rows = max(1, round(rows * (run.last_step + 1 - start) / max(1, run.last_step + 1)))
        sampled = samples is not None and (rows is None or rows >= samples)
    if tail is None and (core or run.last_step < 0):
        ranges = tuple((lo, hi, page_size) for lo, hi in step_ranges(run, spare, page_size))
        return GroupRead(keys=keys, kind="scan", ranges=ranges, rows=rows)
    windows: list[tuple[int, int]] = []
    if not sampled and rows is not None:
        windows = row_windows(run, rows, page_size, spare, split_for_size=samples is None, start=start)
    if tail is None and not start and samples is not None and (sampled or len(windows) <= 1):
        return GroupRead(keys=keys, kind="sampled", ranges=((0, 0, samples),), rows=rows)
    if rows is None:  # no counts from the listing: one window per page of steps, as wandb scans
        end = run.last_step + 1
        pages = tuple(
            (lo, min(lo + page_size, end), min(lo + page_size, end) - lo) for lo in range(start, end, page_size)
        )
        return GroupRead(keys=keys, kind="pages", ranges=pages, rows=rows)
    cap = window_samples(rows, len(windows))
    return GroupRead(keys=keys, kind="windows", ranges=tuple((lo, hi, cap) for lo, hi in windows), rows=rows)


@dataclass(frozen=True, kw_only=True)
class ReadPlan:
    """What reading an experiment's history is planned to cost, from the listing alone (what
    `--dry-run` shows). Runs without any requested field cost nothing."""

    runs: int
    empty_runs: int  # hold none of the requested (numeric) fields
    rows: int  # rows expected back, as far as the listing says
    unknown_runs: int  # runs whose listing gave no row counts: `rows` leaves them out
    batched_runs: int  # small runs read many to a shared request
    batch_requests: int
    single_runs: int  # runs read on their own
    single_requests: int
    # finished runs read from their parquet export: two requests each (the export's file names,
    # then its file) when the export is one file with no live rows after it; the names say more
    parquet_runs: int = 0
    cached_runs: int = 0  # incremental: runs served from the cache, no request

    @property
    def requests(self) -> int:
        return self.batch_requests + self.single_requests + 2 * self.parquet_runs

    def __add__(self, other: ReadPlan) -> ReadPlan:
        """Two reads of one experiment side by side (an x axis reads some runs in full)."""
        return ReadPlan(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})


def plan_reads(
    runs: Sequence[RunInfo],
    fields: Sequence[str],
    *,
    samples: int | None,
    workers: int,
    page_size: int,
    batch: bool = True,
    parquet: bool = False,
    starts: Sequence[int] | None = None,
    listing_page: int | None = None,
) -> ReadPlan:
    """The requests `WandbSource.read_runs` sends for these runs, from the same decisions it
    executes (`plan_keys`, `batch_groups`, `co_logged_groups`, `group_read`), without sending
    any. Splits of answers that come back full or short are not foreseen.

    `listing_page`: runs are read (and so planned) a listing page at a time, each page as if it
    were all the runs on its share of the workers (`listing_pages`, `page_workers`): a page's
    requests then depend on no later page, and may be sent while later pages are still coming."""
    pages = listing_pages(len(runs), listing_page)
    if len(pages) > 1:
        parts = [
            plan_reads(
                runs[lo:hi],
                fields,
                samples=samples,
                workers=page_workers(workers, k, k == len(pages) - 1),
                page_size=page_size,
                batch=batch,
                parquet=parquet,
                starts=None if starts is None else starts[lo:hi],
            )
            for k, (lo, hi) in enumerate(pages)
        ]
        return sum(parts[1:], parts[0])
    plans = [plan_keys(run, fields, {}) for run in runs]
    spare = spare_workers(workers, len(runs))
    first = list(starts) if starts is not None else [0] * len(runs)
    groups = batch_groups(runs, plans, samples, workers=workers, page_size=page_size, starts=first) if batch else []
    batched = {i for g in groups for i in g}
    single_runs = single_requests = rows = unknown = parquet_runs = 0
    for i, run in enumerate(runs):
        if not plans[i]:
            continue
        n = run_rows(run, plans[i], samples)
        if n is None:
            unknown += 1
        else:
            rows += n
        if i in batched:
            continue
        if parquet and not first[i] and parquet_eligible(run, plans[i], samples, page_size):
            parquet_runs += 1
            continue
        single_runs += 1
        single_requests += sum(
            group_read(run, keys, samples, spare, page_size, start=first[i]).requests
            for keys in co_logged_groups(run, plans[i])
        )
    return ReadPlan(
        runs=len(runs),
        empty_runs=sum(1 for p in plans if not p),
        rows=rows,
        unknown_runs=unknown,
        batched_runs=len(batched),
        batch_requests=len(groups),
        single_runs=single_runs,
        single_requests=single_requests,
        parquet_runs=parquet_runs,
    )
