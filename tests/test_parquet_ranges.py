"""Parquet files read by byte ranges, and storage-like file downloads at the local server.

A whole-file GET that times out is not sent again: the file is read by its footer and the byte
ranges of the needed columns (`wandb/files.py`), and the arrays must equal those of a server that
answers at once. The local server streams files at `file_mb_per_s` and honours ranges.
"""

from __future__ import annotations

import io
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pq = pytest.importorskip("pyarrow.parquet")

from conftest import same_bits  # noqa: E402

from wandb2numpy import ClientSettings, export  # noqa: E402
from wandb2numpy.testing import FAST_RETRIES, LocalServer, synthetic_project  # noqa: E402
from wandb2numpy.testing.parquet import history_parquet  # noqa: E402
from wandb2numpy.wandb import files  # noqa: E402
from wandb2numpy.wandb.client import ParquetFileError, fetch_file  # noqa: E402

FIELDS = ["train/loss", "eval/return"]


def _project(runs: int = 2, steps: int = 20_000) -> dict[str, Any]:
    return synthetic_project(runs=runs, steps=steps, metrics=4, all_finished=True)


def _file_bytes(steps: int = 20_000) -> bytes:
    srv = LocalServer(_project(1, steps))  # not started: its backend builds the run
    (run,) = list(srv.backend.runs())
    return history_parquet(run.history)


def test_column_ranges_cover_only_the_needed_columns_and_decode_alone() -> None:
    data = _file_bytes()
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    start = len(data) - files.FOOTER_READ
    tail = files.FileTail("http://x/f.parquet", len(data), start, data[start:])
    ranges = files.column_ranges(tail, FIELDS, max_range=50_000, merge_gap=files.SLOW_MERGE_GAP)
    assert ranges and all(0 < hi - lo <= 50_000 for lo, hi in ranges)
    wanted = {"_step", *FIELDS}
    needed = 0
    for g in range(meta.num_row_groups):
        for i in range(meta.num_columns):
            col = meta.row_group(g).column(i)
            if meta.schema.column(i).path in wanted:
                needed += col.total_compressed_size
    fetched = sum(hi - lo for lo, hi in ranges)
    assert fetched <= needed + 2 * files.SLOW_MERGE_GAP * meta.num_row_groups
    assert fetched < 0.6 * len(data)  # train/return, train/entropy, _runtime, _timestamp left out
    got = files.decode(tail, {lo: data[lo:hi] for lo, hi in ranges}, FIELDS)
    whole = files.decode(files.FileTail("u", len(data), 0, data), {}, FIELDS)
    for key in FIELDS:
        assert len(got.series[key]) > 0
        assert same_bits(got.series[key].steps, whole.series[key].steps)
        assert same_bits(got.series[key].values, whole.series[key].values)
    # bytes that were not fetched are an error, never zeros
    lo, hi = ranges[-1]
    with pytest.raises(ParquetFileError):
        files.decode(tail, {lo: data[lo:hi] for lo, hi in ranges[:-1]}, FIELDS)


@pytest.mark.server
def test_files_stream_at_the_bandwidth_and_ranges_take_their_own_bytes_time() -> None:
    with LocalServer(_project(1, 20_000), parquet=True, latency_ms=50, file_mb_per_s=1.0) as srv:
        url = f"{srv.base_url}/files/parquet/demo/synthetic/" + next(iter(srv.backend.runs())).id + ".parquet"
        t0 = time.monotonic()
        status, _, whole = fetch_file(url, 30)
        t_whole = time.monotonic() - t0
        t0 = time.monotonic()
        status_r, headers, part = fetch_file(url, 30, "bytes=0-99999")
        t_part = time.monotonic() - t0
        assert status == 200 and status_r == 206 and part == whole[:100_000]
        assert headers["Content-Range"] == f"bytes 0-99999/{len(whole)}"
        # about 1.07 MB at 1 MB/s after 50 ms, against 0.1 MB: lower bounds only (never upper)
        assert t_whole >= len(whole) / 1e6 * 0.9
        assert t_part < t_whole
        with pytest.raises(ParquetFileError) as caught:
            fetch_file(url, 0.4)
        assert caught.value.timed_out and not caught.value.transient and 0 < caught.value.received < len(whole)


def _arrays(srv: LocalServer, tmp_path: Path, timeout: float, fields: list[str]) -> dict[str, Any]:
    config = {
        "e": {
            "entity": "demo",
            "project": "synthetic",
            "fields": fields,
            "history_samples": "all",
            "output_path": str(tmp_path / "out"),
        }
    }
    settings = ClientSettings(base_url=srv.base_url, api_key=srv.api_key, timeout=timeout)
    result = export(config, write=False, settings=settings, concurrency=4, policy=FAST_RETRIES)
    assert result.exit_code == 0 and result.runs_failed == 0
    return {k: (v.steps, v.values) for k, v in result.experiments["e"].result.fields.items()}


ALL_METRICS = ["train/return", "train/loss", "train/entropy", "eval/return"]


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize(
    "fields, whole_gets",
    [(ALL_METRICS, 2), (FIELDS, 0)],
    ids=["most columns: a whole GET first", "few columns: ranges from the start"],
)
def test_a_file_slower_than_the_timeout_ends_exact_without_a_request_sent_twice(
    tmp_path: Path, fields: list[str], whole_gets: int
) -> None:
    """Each 1.07 MB file takes about 4.3 s at 0.25 MB/s; the timeout is 2 s. Asked for most of
    its columns, the client GETs the file whole, which times out; then it reads the footer and
    the needed columns' ranges, sized to arrive in time. Asked for few, it reads ranges from the
    start, and a range that times out is split. Either way the arrays equal those of a server
    answering at once, no request is sent twice, and no run falls back to pages."""
    with LocalServer(_project(), parquet=True) as fast:
        expected = _arrays(fast, tmp_path / "fast", 20, fields)
    with LocalServer(_project(), parquet=True, file_mb_per_s=0.25) as slow:
        got = _arrays(slow, tmp_path / "slow", 2, fields)
        log = [r["variables"] for r in slow.request_log() if r["op"] == "ParquetFile"]
        ops = slow.stats()["ops"]
    assert set(got) == set(expected) == set(fields)
    for key in expected:
        assert same_bits(got[key][0], expected[key][0]) and same_bits(got[key][1], expected[key][1])
    sent = Counter((r["path"], r["range"]) for r in log)
    assert max(sent.values()) == 1, sent  # no request sent twice
    whole = [r for r in log if r["range"] is None]
    assert len(whole) == whole_gets
    assert len({r["path"] for r in log if r["range"] and not r["range"].startswith("bytes=-")}) == 2  # ranges
    assert not any(op in ops for op in ("SampledHistoryPage", "HistoryPage"))  # no fall-back to pages
    assert np.isfinite(got[fields[0]][1]).any()


@pytest.mark.server
def test_a_wide_file_serves_only_the_requested_columns_bytes(tmp_path: Path) -> None:
    """24 metrics logged, 1 asked for: the client reads the footer, then only the byte ranges of
    `_step` and that metric (chunks a little apart read as one range), counted at the server."""
    project = synthetic_project(runs=2, steps=30_000, metrics=24, all_finished=True)
    with LocalServer(project, parquet=True) as srv:
        (run, *_) = sorted(srv.backend.runs(), key=lambda r: r.id)
        data = history_parquet(run.history)
        got = _arrays(srv, tmp_path, 20, ["train/return"])
        served = srv.stats()["bytes_by_op"]["ParquetFile"]
        log = [r["variables"] for r in srv.request_log() if r["op"] == "ParquetFile"]
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    needed = sum(
        meta.row_group(g).column(i).total_compressed_size
        for g in range(meta.num_row_groups)
        for i in range(meta.num_columns)
        if meta.schema.column(i).path in ("_step", "train/return")
    )
    gaps = sum(  # _runtime and _timestamp lie between _step and train/return in each row group
        meta.row_group(g).column(i).total_compressed_size
        for g in range(meta.num_row_groups)
        for i in range(meta.num_columns)
        if meta.schema.column(i).path in ("_runtime", "_timestamp")
    )
    per_file = needed + gaps + files.FOOTER_READ
    assert len(data) > 3 * per_file  # the other 23 metrics are most of the file
    assert served <= 2 * per_file * 1.1, (served, per_file, len(data))  # two runs, similar files
    assert all(r["range"] for r in log)  # never a whole-file GET
    assert len(got["train/return"][0]) == 2
    with LocalServer(synthetic_project(runs=2, steps=30_000, metrics=24, all_finished=True)) as pages:
        expected = _arrays(pages, tmp_path / "pages", 20, ["train/return"])
    assert same_bits(got["train/return"][0], expected["train/return"][0])
    assert same_bits(got["train/return"][1], expected["train/return"][1])
