"""Listing overlapped with reading (issue 22, item 3): history of the first listing pages is read
while later pages are still coming, when no later page could block the experiment; the plan of
the whole listing still decides everything, and the export sends what `--dry-run` plans.

The listing page is made small (`ClientSettings.listing_page`), so a project of a few dozen runs
is listed in several pages. Ordering is seen at the server: each request's arrival and the end of
its answer (`request_log`). Each listing page waits `LATENCY_MS` there (history requests do not),
so a page's reads sent ahead arrive well before the listing's last answer, even on a busy
machine; a read sent only after the listing cannot.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

from wandb2numpy import ClientSettings, export
from wandb2numpy.config import ExperimentConfig, resolve_configs
from wandb2numpy.models import KeyInfo, RunInfo
from wandb2numpy.output.load import load
from wandb2numpy.pipeline import plan_export
from wandb2numpy.runner import FetchStats
from wandb2numpy.series import Series
from wandb2numpy.sources.ahead import ReadAhead
from wandb2numpy.sources.base import RunOutcome
from wandb2numpy.testing import FAST_RETRIES, LocalServer

RUNS = 47  # 5 listing pages of 10 runs, the last of 7
PAGE = 10
LATENCY_MS = 150
LATE_KEY = "late/metric"  # logged only by the last run listed


def _rows(i: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{"_step": s, "loss": 1.0 / (s + 1) + i, "acc": s * 0.01 + i} for s in range(20)]
    if i == RUNS - 1:
        rows[-1][LATE_KEY] = float(i)
    return rows


def project_data() -> dict[str, Any]:
    runs = [
        {
            "id": f"r{i:03d}",
            "name": f"r{i:03d}",
            "group": "g",
            "state": "finished",
            "created_at": f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z",
            "config": {"seed": i},
            "history": _rows(i),
        }
        for i in range(RUNS)
    ]
    return {"projects": [{"entity": "acme", "name": "paged", "runs": runs}]}


def _config(tmp_path: Path, **exp: Any) -> dict[str, Any]:
    base = {"entity": "acme", "project": "paged", "fields": ["loss", "acc"], "output_path": str(tmp_path / "out")}
    return {"exp": {**base, **exp}}


def _settings(srv: LocalServer, page: int = PAGE) -> ClientSettings:
    return ClientSettings(base_url=srv.base_url, api_key=srv.api_key, timeout=20, listing_page=page)


def _export(srv: LocalServer, config: dict[str, Any], page: int = PAGE) -> Any:
    srv.set_faults(latency_ms=LATENCY_MS, fault_ops=["Runs"])
    srv.reset_stats()
    return export(config, settings=_settings(srv, page), policy=FAST_RETRIES, concurrency=4, overwrite=True)


def _timeline(srv: LocalServer) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The listing's requests and the history requests, as the server saw them."""
    log = srv.request_log()
    return [e for e in log if e["op"] == "Runs"], [e for e in log if e["op"] == "RunsSampledHistory"]


def test_history_requests_begin_before_the_last_listing_page_is_answered(srv: LocalServer, tmp_path: Path) -> None:
    config = _config(tmp_path)
    result = _export(srv, config)
    assert result.exit_code == 0
    pages, history = _timeline(srv)
    assert len(pages) == 5
    assert history and min(e["t"] for e in history) < max(e["t_end"] for e in pages), (pages, history)
    # a page is read once its answer says another follows: the first ones before the last is asked
    assert any(e["t"] < pages[-1]["t"] for e in history)


def test_the_export_sends_what_the_dry_run_plans_and_writes_what_one_page_would(
    srv: LocalServer, tmp_path: Path
) -> None:
    paged = _config(tmp_path / "paged")
    (planned,) = plan_export(paged, settings=_settings(srv), concurrency=4)
    assert srv.stats()["history_requests"] == 0
    assert planned.reads.batch_requests == 5  # one a listing page: batches never span pages (one page: 2)
    result = _export(srv, paged)
    assert result.exit_code == 0
    assert srv.stats()["history_requests"] == planned.reads.requests, planned.reads
    whole = _config(tmp_path / "whole")
    assert _export(srv, whole, page=1000).exit_code == 0  # one listing page: nothing read ahead
    a, b = (load(Path(c["exp"]["output_path"]) / "exp") for c in (paged, whole))
    assert a.ids == b.ids == [f"r{i:03d}" for i in range(RUNS)]
    for name in ("loss", "acc"):
        np.testing.assert_array_equal(a.fields[name].values, b.fields[name].values)
        np.testing.assert_array_equal(a.fields[name].steps, b.fields[name].steps)


@pytest.mark.parametrize(
    "exp",
    [
        {"fields": ["loss", LATE_KEY]},  # a field no page but the last has logged yet
        {"fields": ["loss", "acc", "los"]},  # mistyped: unlogged, exit 4, the others exported
        {"fields": "all"},  # the fields grow with every page
        {"fields": ["loss"], "x_axis": "acc"},  # an x axis splits its reads over the whole listing
    ],
)
def test_nothing_is_read_ahead_that_a_later_page_could_change(
    srv: LocalServer, tmp_path: Path, exp: dict[str, Any]
) -> None:
    config = _config(tmp_path, **exp)
    (planned,) = plan_export(config, settings=_settings(srv), concurrency=4)
    result = _export(srv, config)
    assert result.exit_code == (4 if planned.problems else 0)
    pages, history = _timeline(srv)
    assert len(pages) == 5 and history
    assert min(e["t"] for e in history) >= max(e["t_end"] for e in pages), (pages, history)
    assert srv.stats()["history_requests"] == planned.reads.requests


def test_a_mistyped_x_axis_of_a_long_listing_sends_no_history_request(srv: LocalServer, tmp_path: Path) -> None:
    result = _export(srv, _config(tmp_path, x_axis="acc_typo"))
    assert result.exit_code == 4
    pages, history = _timeline(srv)
    assert len(pages) == 5 and history == []
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------
# The bookkeeping of pages read ahead, on a fake paged source (no server): which pages the
# export's read takes, which it reads again, and that a blocked plan cancels them.


class PagedSource:
    """Lists `listing` two runs a page, saying after each full page that more follow; its final
    answer is `final` (a listing asked again that changed). Records every read."""

    listing_page = 2

    def __init__(self, listing: list[RunInfo], final: list[RunInfo] | None = None) -> None:
        self.listing, self.final = listing, final if final is not None else listing
        self.reads: list[tuple[list[str], int, bool]] = []
        self.stats = FetchStats()

    async def prepare(self) -> None:
        pass

    def close(self) -> None:
        pass

    async def list_runs(self, exp: ExperimentConfig) -> list[RunInfo]:
        return list(self.final)

    async def list_runs_ahead(self, exp: ExperimentConfig, on_runs: Callable[[list[RunInfo]], None]) -> list[RunInfo]:
        for n in range(2, len(self.listing), 2):
            on_runs(self.listing[:n])
            await anyio.sleep(0)
        return list(self.final)

    async def read_runs(
        self,
        runs: Sequence[RunInfo],
        fields: Sequence[str],
        *,
        samples: int | None,
        progress: Any = None,
        starts: Sequence[int] | None = None,
        on_outcome: Any = None,
        first_page: int = 0,
        ends_listing: bool = True,
    ) -> list[RunOutcome]:
        self.reads.append(([r.id for r in runs], first_page, ends_listing))
        await anyio.sleep(0)
        out = []
        for run in runs:
            series = Series(np.arange(3.0), np.full(3, float(run.id[1:])))
            out.append(RunOutcome(series={f: series for f in fields}))
            if progress is not None:
                progress("run_done", run, 3)
        return out


def _info(i: int, keys: Sequence[str] = ("loss", "acc")) -> RunInfo:
    return RunInfo(
        entity="acme",
        project="paged",
        id=f"r{i}",
        name=f"r{i}",
        last_step=2,
        history_keys={k: KeyInfo(types=("number",), count=3) for k in keys},
    )


def _exp(**over: Any) -> ExperimentConfig:
    (exp,) = resolve_configs({"exp": {**_config(Path("unused"))["exp"], **over}}, None)
    return exp


async def _read_ahead(
    source: PagedSource, exp: ExperimentConfig, *, blocked: bool = False
) -> tuple[list[RunOutcome], list[tuple[str, int]]]:
    events: list[tuple[str, int]] = []
    async with anyio.create_task_group() as tg:
        ahead = ReadAhead(tg)
        runs = await ahead.list_runs(exp, source)
        reader = ahead.source_for(exp.name, blocked, source)
        if blocked:
            return [], events
        got = await reader.read_runs(
            runs, list(exp.fields or ()), samples=exp.history_samples, progress=lambda e, r, n: events.append((r.id, n))
        )
    return got, events


def test_pages_read_ahead_are_taken_and_the_rest_read_as_the_listing_s_last_pages() -> None:
    source = PagedSource([_info(i) for i in range(7)])
    got, events = anyio.run(_read_ahead, source, _exp())
    # pages 0-2 read ahead as pages of a longer listing, the last (r6) once the listing is whole
    assert source.reads == [
        (["r0", "r1"], 0, False),
        (["r2", "r3"], 1, False),
        (["r4", "r5"], 2, False),
        (["r6"], 3, True),
    ]
    assert [o.series["loss"].values[0] for o in got] == [float(i) for i in range(7)]
    assert sorted(events) == [(f"r{i}", 3) for i in range(7)]  # every run's progress, once


def test_a_page_the_final_listing_holds_otherwise_is_read_again_from_there() -> None:
    first = [_info(i) for i in range(7)]
    final = [*first[:2], _info(9), *first[2:]]  # a run came in on the second page
    source = PagedSource(first, final)
    got, _ = anyio.run(_read_ahead, source, _exp())
    assert source.reads[0] == (["r0", "r1"], 0, False)
    assert source.reads[-1] == (["r9", "r2", "r3", "r4", "r5", "r6"], 1, True)
    assert [o.series["loss"].values[0] for o in got] == [0.0, 1.0, 9.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_a_blocked_plan_cancels_its_pages_and_nothing_is_read_ahead_that_could_block() -> None:
    source = PagedSource([_info(i) for i in range(7)])
    anyio.run(functools.partial(_read_ahead, source, _exp(), blocked=True))
    assert all(not ends for _, _, ends in source.reads)  # only pages read ahead, none taken
    late = PagedSource([*(_info(i, ("loss",)) for i in range(6)), _info(6)])  # 'acc' only on the last page
    anyio.run(_read_ahead, late, _exp())
    assert late.reads == [([f"r{i}" for i in range(7)], 0, True)]


def test_a_page_read_ahead_that_ends_the_final_listing_is_read_again() -> None:
    """The listing asked again came back shorter: the page read as a middle page is now the last,
    which the plan spreads over every worker, so it is read again as the plan says."""
    source = PagedSource([_info(i) for i in range(5)], [_info(i) for i in range(4)])
    got, _ = anyio.run(_read_ahead, source, _exp())
    assert source.reads[-1] == (["r2", "r3"], 1, True)
    assert len(got) == 4
