"""Planning of history reads from a run listing: pure functions, no server."""

from __future__ import annotations

import pytest

from wandb2numpy.models import KeyInfo, RunInfo
from wandb2numpy.plan.reads import (
    OPEN_END,
    all_numeric_fields,
    co_logged_groups,
    expected_rows,
    plan_keys,
    plan_reads,
    range_cost,
    sampling_keeps_all,
    step_ranges,
)

NUM = ("number",)


def run(last_step: int = 99, **keys: tuple[tuple[str, ...], int]) -> RunInfo:
    return RunInfo(
        entity="e",
        project="p",
        id="r",
        name="r",
        last_step=last_step,
        history_keys={k: KeyInfo(types=t, count=c) for k, (t, c) in keys.items()},
    )


def test_plan_keys_keeps_numeric_keys_and_names_the_others() -> None:
    r = run(loss=(NUM, 10), flag=(("boolean",), 10), note=(("string",), 3), empty=(NUM, 0))
    reasons: dict[str, str] = {}
    assert plan_keys(r, ["loss", "flag", "note", "empty", "absent"], reasons) == ["loss", "flag"]
    assert reasons == {"note": "logged as string"}


def test_plan_keys_without_history_keys_asks_for_everything() -> None:
    reasons: dict[str, str] = {}
    assert plan_keys(run(), ["a", "b"], reasons) == ["a", "b"] and reasons == {}


def test_keys_with_equal_counts_are_asked_for_together() -> None:
    r = run(a=(NUM, 10), b=(NUM, 10), c=(NUM, 5), d=(NUM, 10))
    assert co_logged_groups(r, ["a", "b", "c", "d"]) == [("a", "b", "d"), ("c",)]
    assert co_logged_groups(run(), ["a", "b"]) == [("a",), ("b",)]


def test_expected_rows_caps_at_samples() -> None:
    r = run(a=(NUM, 500))
    assert expected_rows(r, "a", None) == 500
    assert expected_rows(r, "a", 100) == 100
    assert expected_rows(r, "a", 1000) == 500
    assert expected_rows(r, "missing", None) is None


def test_sampling_keeps_all_only_when_every_key_fits_and_the_end_is_known() -> None:
    r = run(a=(NUM, 50), b=(NUM, 80))
    assert sampling_keeps_all(r, ["a", "b"], 80)
    assert not sampling_keeps_all(r, ["a", "b"], 79)
    assert not sampling_keeps_all(r, ["a", "zzz"], 1000)
    assert not sampling_keeps_all(run(last_step=-1, a=(NUM, 5)), ["a"], 10)


@pytest.mark.parametrize(
    ("last_step", "pieces", "page", "expected"),
    [
        (-1, 4, 10, [(0, OPEN_END)]),
        (9, 4, 10, [(0, 10)]),
        (99, 1, 10, [(0, 100)]),
        (99, 4, 10, [(0, 20), (20, 50), (50, 80), (80, 100)]),
        (104, 2, 10, [(0, 60), (60, 105)]),
        (199, 16, 10, None),  # 20 pages in 16 pieces: checked below
    ],
)
def test_step_ranges_are_page_aligned_and_cover_every_step(
    last_step: int, pieces: int, page: int, expected: list[tuple[int, int]] | None
) -> None:
    ranges = step_ranges(run(last_step=last_step), pieces, page)
    if expected is not None:
        assert ranges == expected
    if last_step >= 0:
        assert ranges[0][0] == 0 and ranges[-1][1] == last_step + 1
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        assert all(lo % page == 0 for lo, _ in ranges)
        assert len(ranges) == min(pieces, -(-(last_step + 1) // page))
    if expected is None:
        sizes = sorted((hi - lo) // page for lo, hi in ranges)
        assert sizes == [1] * 12 + [2] * 4


def test_range_cost_counts_pages_and_the_scans_extra_request() -> None:
    assert range_cost(0, 1000, 1000, scan=False) == 1.0
    assert range_cost(0, 1001, 1000, scan=False) == 2.0
    assert range_cost(0, 1001, 1000, scan=True) == 3.0
    assert range_cost(0, OPEN_END, 1000, scan=True) == 3.0


def test_all_numeric_fields_leaves_out_internal_and_non_numeric_keys() -> None:
    a = run(loss=(NUM, 3), _step=(NUM, 3), _runtime=(NUM, 3), _wandb_x=(NUM, 1), txt=(("string",), 3))
    b = run(acc=(NUM, 3), loss=(NUM, 1))
    assert all_numeric_fields([a, b]) == ["acc", "loss"]


def many(n: int, rows: int, last_step: int | None = None, **extra: tuple[tuple[str, ...], int]) -> list[RunInfo]:
    keys = {"loss": KeyInfo(types=NUM, count=rows), **{k: KeyInfo(types=t, count=c) for k, (t, c) in extra.items()}}
    return [
        RunInfo(
            entity="e",
            project="p",
            id=f"r{i}",
            name=f"r{i}",
            last_step=rows - 1 if last_step is None else last_step,
            history_keys=keys,
        )
        for i in range(n)
    ]


def test_plan_reads_puts_small_runs_in_shared_requests() -> None:
    plan = plan_reads(many(40, 50), ["loss"], samples=12000, workers=4, page_size=1000)
    assert (plan.runs, plan.empty_runs, plan.rows, plan.unknown_runs) == (40, 0, 2000, 0)
    assert plan.batched_runs == 40 and plan.single_runs == 0
    assert plan.batch_requests == 2  # 2,000 rows over 4 workers, but never less than a page a request
    assert plan.requests == plan.batch_requests
    off = plan_reads(many(40, 50), ["loss"], samples=12000, workers=4, page_size=1000, batch=False)
    assert (off.batched_runs, off.single_runs, off.single_requests) == (0, 40, 40)


def test_plan_reads_plans_each_listing_page_as_if_it_were_all_the_runs() -> None:
    """A page's reads may be sent before the next page is listed (`sources.ahead`), so they must
    not depend on it: batches never span pages, and each page spreads over its share of the
    workers: the first and the last over all, those between over a quarter (PAGES_IN_FLIGHT)."""
    runs = many(450, 50)
    paged = plan_reads(runs, ["loss"], samples=12000, workers=16, page_size=1000, listing_page=200)
    pages = [
        plan_reads(runs[lo:hi], ["loss"], samples=12000, workers=w, page_size=1000)
        for (lo, hi), w in zip(LISTED, (16, 4, 16))
    ]
    assert paged == pages[0] + pages[1] + pages[2]
    assert paged.runs == 450 and paged.batched_runs == 450
    # 10,000 rows of a page over 16 workers, but a page (1,000) a request at least; over 4 workers
    # 2,500 a request; the last page's 2,500 rows in requests of a page
    assert paged.batch_requests == 10 + 4 + 3
    one_page = plan_reads(runs[:200], ["loss"], samples=12000, workers=16, page_size=1000)
    assert plan_reads(runs[:200], ["loss"], samples=12000, workers=16, page_size=1000, listing_page=200) == one_page
    assert one_page.batch_requests == 10  # one page alone: as before


LISTED = [(0, 200), (200, 400), (400, 450)]


def test_plan_reads_large_runs_one_sampled_request_or_row_windows() -> None:
    runs = many(2, 5000, last_step=5_000_000)  # strided steps: planned by rows, not steps
    sampled = plan_reads(runs, ["loss"], samples=12000, workers=2, page_size=1000)
    assert (sampled.batched_runs, sampled.single_runs, sampled.single_requests) == (0, 2, 2)
    full = plan_reads(runs, ["loss"], samples=None, workers=2, page_size=1000)
    assert full.single_requests == 2 * 5 and full.rows == 10_000


def test_plan_reads_counts_runs_without_the_fields_and_without_counts() -> None:
    runs = [*many(1, 10), run(other=(NUM, 5)), RunInfo(entity="e", project="p", id="x", name="x", last_step=99)]
    plan = plan_reads(runs, ["loss", "absent"], samples=None, workers=1, page_size=1000)
    assert plan.empty_runs == 1  # listed keys, none of them asked for
    assert plan.unknown_runs == 1 and plan.rows == 10  # no history keys in the listing: asked blind
    assert plan.single_runs == 2 and plan.requests == 1 + 2  # blind: one request per key
