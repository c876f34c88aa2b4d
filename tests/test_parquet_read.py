"""Finished runs read from their parquet exports, a column at a time, against the page path.

The arrays must equal bit for bit those a server without exports gives, whatever the export
looks like (complete, lagging with live rows after it, missing, broken, short); only the
requests change.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")

from wandb2numpy import ClientSettings, export  # noqa: E402
from wandb2numpy.series import (  # noqa: E402
    NonNumericValue,
    UnreadableColumn,
    convert_values,
    series_from_rows,
    series_from_table,
)
from wandb2numpy.testing import FAST_RETRIES, LocalServer  # noqa: E402
from wandb2numpy.testing.parquet import history_parquet  # noqa: E402

pytestmark = pytest.mark.server  # every test here talks to a local server it starts

PAGE = 40  # runs of 100+ rows are then several pages, so not batched
FIELDS = ["loss", "flag", "eval", "big", "note"]
FINISHED = ["f1", "f2", "f3", "f4"]
BIG = 2**53 + 1  # not a float64: rounds to 2**53 (ties to even), as float() does


def _history(i: int) -> list[dict[str, Any]]:
    rows = []
    stride = 3 if i % 2 else 1
    for k in range(100 + 10 * i):
        row: dict[str, Any] = {"_step": k * stride, "loss": 1.0 / (k + 1) + i, "flag": k % 2 == 0, "note": f"text {k}"}
        if k % 7 == 3:
            row["eval"] = k * 0.25 - i
        if i == 0:
            row["big"] = BIG + 2 * k
        rows.append(row)
    rows[5]["loss"] = "NaN"
    rows[6]["loss"] = "Infinity"
    rows[7]["loss"] = "-Infinity"
    rows[8]["loss"] = -0.0
    return rows


def project_data() -> dict[str, Any]:
    runs = []
    for i, rid in enumerate([*FINISHED, "r1"]):
        runs.append(
            {
                "id": rid,
                "name": f"run-{rid}",
                "state": "running" if rid == "r1" else "finished",
                "created_at": f"2024-01-01T00:0{i}:00Z",
                "history": _history(i),
            }
        )
    return {"projects": [{"entity": "acme", "name": "pq", "runs": runs}]}


def config(tmp_path: Path, samples: Any = "all") -> dict[str, Any]:
    return {
        "exp": {
            "entity": "acme",
            "project": "pq",
            "fields": FIELDS,
            "history_samples": samples,
            "output_path": str(tmp_path / "out"),
        }
    }


def settings(srv: LocalServer, **extra: Any) -> ClientSettings:
    return ClientSettings(base_url=srv.base_url, api_key=srv.api_key, timeout=20, page_size=PAGE, **extra)


def run(srv: LocalServer, tmp_path: Path, samples: Any = "all", **extra: Any) -> Any:
    result = export(
        config(tmp_path, samples), write=False, concurrency=4, settings=settings(srv, **extra), policy=FAST_RETRIES
    )
    assert result.exit_code == 0
    return result.experiments["exp"].result


@pytest.fixture(scope="module")
def plain() -> dict[Any, Any]:
    """What the page path gives, per history_samples setting."""
    out = {}
    with LocalServer(project_data()) as srv:
        for samples in ("all", 12000, 50):
            out[samples] = run(srv, Path("/nonexistent"), samples)
    return out


def assert_same(got: Any, want: Any) -> None:
    assert [r.id for r in got.runs] == [r.id for r in want.runs]
    assert got.skipped_fields == want.skipped_fields and got.failed_runs == want.failed_runs
    assert sorted(got.fields) == sorted(want.fields) == ["big", "eval", "flag", "loss"]
    for name, arrays in want.fields.items():
        other = got.fields[name]
        assert other.steps.dtype == arrays.steps.dtype and other.values.dtype == arrays.values.dtype
        assert other.steps.tobytes() == arrays.steps.tobytes(), name  # bit for bit: NaN, -0.0
        assert other.values.tobytes() == arrays.values.tobytes(), name


def pages_by_run(srv: LocalServer) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for item in srv.request_log():
        if item["op"] == "SampledHistoryPage":
            out.setdefault(item["variables"]["run"], []).append(item["variables"])
    return out


def parquet_runs(srv: LocalServer) -> list[str]:
    return sorted(i["variables"]["runName"] for i in srv.request_log() if i["op"] == "RunParquetHistory")


@pytest.mark.parametrize("mode", [True, "only"])
@pytest.mark.parametrize("samples", ["all", 12000])
def test_exported_runs_read_as_columns_equal_the_page_path(plain: Any, tmp_path: Path, mode: Any, samples: Any) -> None:
    """Sampled mode whose sample keeps every row reads the files too: same rows either way."""
    with LocalServer(project_data(), parquet=mode) as srv:
        got = run(srv, tmp_path, samples)
        ops = srv.stats()["ops"]
        by_run = srv.stats()["history_requests_by_run"]
        assert parquet_runs(srv) == FINISHED  # the running run is not asked for an export
    assert_same(got, plain[samples])
    assert got.skipped_fields["note"].startswith("logged as string")
    assert got.fields["big"].values[0, 0] == float(BIG) == 2.0**53
    assert ops["RunParquetHistory"] == 4 and ops["ParquetFile"] == 4
    # A fully exported run costs two requests, its export's names and its one file; no pages.
    assert {rid: by_run[rid] for rid in FINISHED} == dict.fromkeys(FINISHED, 2) and by_run["r1"] >= 1


def test_sampled_mode_keeps_the_servers_sampling_for_larger_runs(plain: Any, tmp_path: Path) -> None:
    with LocalServer(project_data(), parquet=True) as srv:
        got = run(srv, tmp_path, 50)
        ops = srv.stats()["ops"]
    assert_same(got, plain[50])
    assert "RunParquetHistory" not in ops and "ParquetFile" not in ops


@pytest.mark.parametrize("mode", [True, "only"])
def test_an_export_with_live_rows_after_it_is_exact(plain: Any, tmp_path: Path, mode: Any) -> None:
    """The last 15 rows are not in the file yet: they are read with pages from the first live
    step on, sized by the rows the files lack."""
    with LocalServer(project_data(), parquet=mode, parquet_lag_rows=15) as srv:
        got = run(srv, tmp_path)
        pages = pages_by_run(srv)
        ops = srv.stats()["ops"]
    assert_same(got, plain["all"])
    assert ops["ParquetFile"] == 4
    for i, rid in enumerate(FINISHED):
        history = _history(i)
        first_live = history[-15]["_step"]
        assert pages[rid] and all(__import__("json").loads(p["spec"])["minStep"] >= first_live for p in pages[rid])


def test_switched_off_reads_pages_only(plain: Any, tmp_path: Path) -> None:
    with LocalServer(project_data(), parquet=True) as srv:
        got = run(srv, tmp_path, parquet=False)
        ops = srv.stats()["ops"]
    assert_same(got, plain["all"])
    assert "RunParquetHistory" not in ops and "ParquetFile" not in ops


def test_runs_without_an_export_yet_are_read_by_pages(plain: Any, tmp_path: Path) -> None:
    with LocalServer(project_data(), parquet=True, parquet_lag_rows=1000) as srv:  # no run has a file
        got = run(srv, tmp_path)
        ops = srv.stats()["ops"]
        pages = pages_by_run(srv)
    assert_same(got, plain["all"])
    assert ops["RunParquetHistory"] == 4 and "ParquetFile" not in ops and set(pages) == {*FINISHED, "r1"}


def test_a_server_without_exports_is_asked_a_few_times_only(tmp_path: Path) -> None:
    """12 finished runs on a server that exports none: after 8 answers without files the rest
    are read by pages without asking (at most one more question already waiting for a slot)."""
    runs = [
        {
            "id": f"n{i:02d}",
            "name": f"n{i:02d}",
            "state": "finished",
            "created_at": f"2024-01-01T00:{i:02d}:00Z",
            "history": [{"_step": k, "loss": k * 0.5 + i} for k in range(60)],
        }
        for i in range(12)
    ]
    data = {"projects": [{"entity": "acme", "name": "pq", "runs": runs}]}
    cfg = {
        "exp": {
            "entity": "acme",
            "project": "pq",
            "fields": ["loss"],
            "history_samples": "all",
            "output_path": str(tmp_path / "out"),
        }
    }
    with LocalServer(data) as srv:
        results = [
            export(cfg, write=False, concurrency=2, settings=settings(srv, parquet=on), policy=FAST_RETRIES)
            for on in (False, True)
        ]
        asked = srv.stats()["ops"]["RunParquetHistory"]
    assert 8 <= asked <= 9
    off, on = (r.experiments["exp"].result.fields["loss"] for r in results)
    assert on.values.tobytes() == off.values.tobytes() and on.steps.tobytes() == off.steps.tobytes()
    assert results[1].stats.requests == results[0].stats.requests + asked


def test_broken_short_and_failing_files_fall_back_to_pages(plain: Any, tmp_path: Path) -> None:
    """f2: not a parquet file; f3: a file short of the listing's count, with no live rows;
    f4: a file its host keeps failing (500, retried, then given up). f1 reads its file."""
    with LocalServer(project_data(), parquet=True) as srv:
        assert srv.parquet is not None
        f3 = srv.backend.run("acme", "pq", "f3")
        assert f3 is not None
        srv.parquet._cache[("acme", "pq", "f2")] = (b"PAR1 not really", 3)
        srv.parquet._cache[("acme", "pq", "f3")] = (history_parquet(f3.history, len(f3.history) - 4), 1)
        srv.set_faults(fault_ops={"ParquetFile"}, fail_runs=frozenset({"f4"}))
        got = run(srv, tmp_path)
        pages = pages_by_run(srv)
        by_run = srv.stats()["history_requests_by_run"]
    assert_same(got, plain["all"])
    assert set(pages) == {"f2", "f3", "f4", "r1"}
    assert by_run["f4"] > by_run["f3"]  # the failing file was asked for again before giving up


# ---------------------------------------------------------------------------------- conversion


def table(**columns: Any) -> Any:
    return pa.table(columns)


def rows_of(tbl: Any) -> list[dict[str, Any]]:
    """The table as page rows: absent keys left out, as `sampledHistory` leaves them out."""
    return [{k: v for k, v in r.items() if v is not None} for r in tbl.to_pylist()]


def test_ints_beyond_2_53_round_as_the_page_path_does() -> None:
    ints = [2**53 + 1, 2**53 + 3, -(2**63), 2**63 - 1, 2**60 + 12345, -1, 0]
    tbl = table(_step=pa.array(range(len(ints)), pa.int64()), x=pa.array(ints, pa.int64()))
    got = series_from_table(tbl, ["x"]).series["x"]
    want = series_from_rows(rows_of(tbl), "x")
    assert got.values.tobytes() == want.values.tobytes() == np.array([float(v) for v in ints]).tobytes()
    assert got.steps.tobytes() == want.steps.tobytes()


def test_nulls_are_rows_without_the_key_and_floats_stay_bit_for_bit() -> None:
    x = [math.nan, None, math.inf, -math.inf, -0.0, None, 1e-310, 5.0]
    tbl = table(
        _step=pa.array([0.0, 1, 2, 3, 4, 5, 6, 9], pa.float64()),
        x=pa.array(x, pa.float64()),
        b=pa.array([True, False, None, True, None, None, False, True]),
        empty=pa.array([None] * 8, pa.null()),
    )
    got = series_from_table(tbl, ["x", "b", "empty", "absent"])
    assert got.rows == 8 and not got.non_numeric
    assert got.series["x"].steps.tolist() == [0, 2, 3, 4, 6, 9]
    assert got.series["x"].values.tobytes() == np.array([v for v in x if v is not None]).tobytes()
    assert got.series["b"].values.tolist() == [1.0, 0.0, 1.0, 0.0, 1.0]
    assert got.series["b"].steps.tolist() == [0, 1, 3, 6, 9]
    assert len(got.series["empty"]) == 0 and len(got.series["absent"]) == 0
    for key in ("x", "b"):
        want = series_from_rows(rows_of(tbl), key)
        assert got.series[key].values.tobytes() == want.values.tobytes()
        assert got.series[key].steps.tobytes() == want.steps.tobytes()


def test_non_numeric_columns_get_the_page_paths_reason() -> None:
    texts = ["NaN", None, "Infinity", "oops", "x"]
    media = [None, {"_type": "histogram", "bins": [1]}, None, None, None]
    tbl = table(
        _step=pa.array(range(5)),
        t=pa.array(texts),
        m=pa.array(media),
        ok=pa.array(["NaN", "-inf", None, None, "Infinity"]),
        lst=pa.array([None, [1, 2], None, None, None]),
    )
    got = series_from_table(tbl, ["t", "m", "ok", "lst"])
    for key in ("t", "m", "lst"):
        with pytest.raises(NonNumericValue) as info:
            convert_values([r[key] for r in rows_of(tbl) if key in r], key)
        assert got.non_numeric[key] == f"holds non-numeric values ({info.value.example})"
    assert got.non_numeric["m"] == "holds non-numeric values (histogram (media))"
    assert got.series["ok"].values.tolist()[1:] == [-math.inf, math.inf] and math.isnan(got.series["ok"].values[0])


def test_steps_are_sorted_and_checked() -> None:
    tbl = table(_step=pa.array([3, 1, 2], pa.int32()), x=pa.array([30.0, 10.0, 20.0]))
    got = series_from_table(tbl, ["x"]).series["x"]
    assert got.steps.tolist() == [1, 2, 3] and got.values.tolist() == [10.0, 20.0, 30.0]
    with pytest.raises(ValueError, match="bad '_step'"):
        series_from_table(table(_step=pa.array([0, None]), x=pa.array([1.0, 2.0])), ["x"])
    with pytest.raises(ValueError, match="non-finite"):
        series_from_table(table(_step=pa.array([0.0, math.nan]), x=pa.array([1.0, 2.0])), ["x"])
    with pytest.raises(UnreadableColumn):
        series_from_table(table(x=pa.array([1.0])), ["x"])
    with pytest.raises(UnreadableColumn):  # a type the page path would send otherwise
        series_from_table(table(_step=pa.array([0]), x=pa.array([np.datetime64("2024-01-01", "ms")])), ["x"])
