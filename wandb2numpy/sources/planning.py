"""Pure planning of history reads from what a run listing says: which keys, in which groups, in
which step ranges, at what request cost.

No I/O here, so every decision is unit-tested directly (tests/test_planning.py) and any source
that lists runs with history-key counts (W&B, a parquet reader, run folders) can share it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..models import RunInfo

__all__ = [
    "INTERNAL_KEYS",
    "OPEN_END",
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
