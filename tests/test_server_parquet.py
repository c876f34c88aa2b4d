"""The `--parquet` mode: finished runs read through exported files, ranged reads answered 206."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from wandb2numpy.testing import LocalServer, synthetic_project  # noqa: E402
from wandb2numpy.testing.parquet import byte_range_reply  # noqa: E402
from wandb2numpy.testing.pytest_plugin import make_api  # noqa: E402

pytestmark = pytest.mark.server  # every test here talks to a local server it starts

FIXTURE = Path(__file__).parent / "data" / "server" / "fixture_project.json"


@pytest.fixture(scope="module")
def server() -> Any:
    srv = LocalServer(FIXTURE, parquet=True)
    srv.load(synthetic_project(runs=7, steps=50, columnar=True))  # run 6 is "running"
    with srv:
        yield srv


@pytest.fixture
def api(server: LocalServer) -> Any:
    server.reset_stats()
    return make_api(server)


def file_requests(server: LocalServer) -> list[dict[str, Any]]:
    return [r["variables"] for r in server.request_log() if r["op"] == "ParquetFile"]


def test_keyed_scan_uses_ranged_reads(api: Any, server: LocalServer) -> None:
    run = api.run("acme/media/m0000001")
    rows = list(run.scan_history(keys=["loss"], use_cache=False))
    assert [r["_step"] for r in rows] == [0, 1, 2, 3, 5, 6]
    assert math.isnan(rows[2]["loss"]) and rows[5]["loss"] == 0.4  # parquet carries a real NaN
    ranges = [r["range"] for r in file_requests(server)]
    assert ranges[0] == "bytes=0-0" and all(r and r.startswith("bytes=") for r in ranges)
    stats = server.stats()
    assert stats["statuses"]["206"] == len(ranges) and stats["ops"]["ParquetFile"] == len(ranges)
    assert "SampledHistoryPage" not in stats["ops"]  # no live pages: everything was exported


def test_unkeyed_scan_downloads_the_whole_file(api: Any, server: LocalServer) -> None:
    rows = list(api.run("acme/media/m0000001").scan_history(use_cache=False))
    assert [r["_step"] for r in rows] == [0, 1, 2, 3, 5, 6]
    assert rows[0]["hist"]["_type"] == "histogram" and rows[3]["done"] is True and rows[3]["phase"] == "train"
    assert rows[4]["img"]["path"] == "media/images/x.png"
    assert [r["range"] for r in file_requests(server)] == [None]
    assert server.stats()["history_requests_by_run"]["m0000001"] >= 3


def test_running_runs_stay_live(api: Any, server: LocalServer) -> None:
    running = [r for r in server.backend.project("demo", "synthetic").runs.values() if r.state == "running"]
    rows = list(api.run(f"demo/synthetic/{running[0].id}").scan_history(keys=["train/loss"], page_size=20))
    assert [r["_step"] for r in rows] == list(range(50))
    assert server.stats()["ops"].get("ParquetFile", 0) == 0 and server.stats()["ops"]["SampledHistoryPage"] == 3


def test_synthetic_values_match_sampled_history(api: Any, server: LocalServer) -> None:
    run_id = server.backend.project("demo", "synthetic").query(None, None)[0].id
    run = api.run(f"demo/synthetic/{run_id}")
    from_file = {r["_step"]: r["train/return"] for r in run.scan_history(keys=["train/return"], use_cache=False)}
    sampled = {r["_step"]: r["train/return"] for r in run.history(keys=["train/return"], samples=100, pandas=False)}
    assert from_file.keys() == sampled.keys() and all(math.isclose(from_file[k], sampled[k]) for k in sampled)


def test_download_history_exports(api: Any, tmp_path: Path) -> None:
    result = api.run("acme/rl/r0000001").download_history_exports(tmp_path)
    assert not result.errors and result.contains_live_data is False and len(result.paths) == 1
    table = pq.read_table(result.paths[0])
    assert table.column("_step").to_pylist() == [0, 1, 2, 3, 4]
    assert table.column("loss").to_pylist()[0] == 1.0


def test_byte_ranges() -> None:
    data = bytes(range(10))
    whole = byte_range_reply(data, None)
    assert (whole.status, whole.body) == (200, data)
    part = byte_range_reply(data, "bytes=2-4")
    assert (part.status, part.body, part.headers["Content-Range"]) == (206, b"\x02\x03\x04", "bytes 2-4/10")
    assert byte_range_reply(data, "bytes=-3").body == b"\x07\x08\x09"
    assert byte_range_reply(data, "bytes=8-").headers["Content-Range"] == "bytes 8-9/10"
    assert byte_range_reply(data, "bytes=20-30").status == 416


@pytest.mark.parametrize("mode", [True, "only"])
def test_an_export_that_lags_lists_its_last_rows_as_live(mode: Any, tmp_path: Path) -> None:
    """`parquet_lag_rows=2`: the file holds all but a finished run's last two rows, which
    `RunParquetHistory` lists as live and the page queries serve (also in the 'only' mode).

    wandb-core 0.31 pages the live part from the scan's own `min_step`, not from the first live
    step, so its scan repeats the exported rows unless pages serve only live rows ('only')."""
    with LocalServer(FIXTURE, parquet=mode, parquet_lag_rows=2) as srv:
        api = make_api(srv)
        run = api.run("acme/rl/r0000001")
        rows = list(run.scan_history(keys=["loss"], use_cache=False))
        by_step = {r["_step"]: r["loss"] for r in rows}
        assert by_step == {0: 1.0, 1: 0.5, 2: 0.3333, 3: 0.25, 4: 0.2}
        assert len(rows) == (5 if mode == "only" else 8)
        ops = srv.stats()["ops"]
        assert ops["ParquetFile"] >= 1 and ops["SampledHistoryPage"] >= 1
        result = run.download_history_exports(tmp_path, require_complete_history=False)
        assert result.contains_live_data is True and len(result.paths) == 1
        assert pq.read_table(result.paths[0]).column("_step").to_pylist() == [0, 1, 2]
        page = srv.protocol._sample(
            srv.backend.run("acme", "rl", "r0000001"),  # type: ignore[union-attr]
            [{"keys": ["_step", "loss"], "minStep": 0, "maxStep": 9, "samples": 10}],
            srv.base_url,
        )[0]
        assert [r["_step"] for r in page] == ([3, 4] if mode == "only" else [0, 1, 2, 3, 4])
    with LocalServer(FIXTURE, parquet=True, parquet_lag_rows=5) as srv:  # no file yet: all live
        rows = list(make_api(srv).run("acme/rl/r0000001").scan_history(keys=["loss"], use_cache=False))
        assert [r["_step"] for r in rows] == [0, 1, 2, 3, 4] and "ParquetFile" not in srv.stats()["ops"]
