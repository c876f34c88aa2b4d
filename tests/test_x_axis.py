"""``x_axis`` and ``grid`` end to end: real client, local server, every way of reading history.

Each run logs ``ret`` on every row; ``global_step`` on every row (run a), on every other row
(run b, the rest dropped and counted) or never (run c). Steps arrays must hold global_step's
value of the same row; grids must match values worked out by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wandb2numpy import ClientSettings, export
from wandb2numpy.cli import main
from wandb2numpy.testing import FAST_RETRIES, LocalServer

N = 40  # rows per run


def _run(rid: str, i: int, rows: list[dict[str, Any]], state: str = "finished") -> dict[str, Any]:
    return {
        "id": rid,
        "name": rid,
        "group": "g",
        "job_type": "train",
        "state": state,
        "created_at": f"2024-01-01T00:00:0{i}Z",
        "config": {"seed": i},
        "history": rows,
    }


def _rows(every: int | None, offset: int) -> list[dict[str, Any]]:
    """ret = k at _step k; global_step = 1000 * k + offset on rows k % every == 0."""
    rows = []
    for k in range(N):
        row: dict[str, Any] = {"_step": k, "ret": float(k)}
        if every is not None and k % every == 0:
            row["global_step"] = 1000 * k + offset
        rows.append(row)
    return rows


def project() -> dict[str, Any]:
    runs = [_run("a", 0, _rows(1, 0)), _run("b", 1, _rows(2, 500)), _run("c", 2, _rows(None, 0))]
    return {"projects": [{"entity": "acme", "name": "xa", "runs": runs}]}


def _export(srv: LocalServer, tmp_path: Path, **keys: Any) -> Any:
    config = {
        "exp": {"entity": "acme", "project": "xa", "fields": ["ret"], "output_path": str(tmp_path / "out"), **keys}
    }
    st = ClientSettings(base_url=srv.base_url, api_key=srv.api_key, timeout=20)
    return export(config, settings=st, policy=FAST_RETRIES, overwrite=True)


def _check(result: Any) -> None:
    report = result.experiments["exp"]
    res = report.result
    assert [r.id for r in res.runs] == ["a", "b"]  # c never logged global_step: no row has an x
    ret = res.fields["ret"]
    k_a = np.arange(N)
    np.testing.assert_array_equal(ret.steps[0], 1000.0 * k_a)
    np.testing.assert_array_equal(ret.values[0], k_a)
    k_b = np.arange(0, N, 2)
    np.testing.assert_array_equal(ret.steps[1, : len(k_b)], 1000.0 * k_b + 500)
    np.testing.assert_array_equal(ret.values[1, : len(k_b)], k_b)
    assert np.isnan(ret.values[1, len(k_b) :]).all() and np.isnan(ret.steps[1, len(k_b) :]).all()
    assert report.x_dropped == {"ret": N // 2 + N}  # b's odd rows and all of c's
    assert report.runs_without_x == 1


@pytest.mark.server
@pytest.mark.parametrize("samples", [12000, "all"])
@pytest.mark.parametrize("parquet", [False, True, "only"])
def test_x_axis_holds_the_keys_value_of_the_same_row(tmp_path: Path, samples: Any, parquet: Any) -> None:
    with LocalServer(project(), parquet=parquet) as srv:
        result = _export(srv, tmp_path, x_axis="global_step", history_samples=samples)
    assert result.exit_code == 0
    _check(result)
    manifest = json.loads((tmp_path / "out" / "exp" / ".wandb2numpy-manifest.json").read_text())
    assert manifest["x_axis"] == "global_step"
    steps = np.load(tmp_path / "out" / "exp" / "ret.steps.npy")
    np.testing.assert_array_equal(steps[0], 1000.0 * np.arange(N))


@pytest.mark.server
def test_sampled_runs_longer_than_the_sample_are_joined_then_thinned(tmp_path: Path) -> None:
    with LocalServer(project()) as srv:
        result = _export(srv, tmp_path, x_axis="global_step", history_samples=5)
    ret = result.experiments["exp"].result.fields["ret"]
    # a: 40 rows, thinned to 5 evenly spaced with first and last kept, each with its own x
    np.testing.assert_array_equal(ret.values[0], [0, 10, 20, 29, 39])
    np.testing.assert_array_equal(ret.steps[0], 1000.0 * ret.values[0])
    # b: 20 rows with an x, thinned to 5: x and value always from one row
    np.testing.assert_array_equal(ret.steps[1], 1000.0 * ret.values[1] + 500)
    assert ret.values[1, 0] == 0 and ret.values[1, -1] == 38


@pytest.mark.server
def test_an_x_axis_no_run_logged_exits_4_with_the_nearest_key(tmp_path: Path, capsys: Any) -> None:
    with LocalServer(project()) as srv:
        result = _export(srv, tmp_path, x_axis="global_stp")
    assert result.exit_code == 4
    assert any(
        "x_axis 'global_stp' is logged by none of the 3 matched run(s); did you mean 'global_step'?" in p
        for p in result.problems
    )
    assert not (tmp_path / "out" / "exp").exists()


@pytest.mark.server
def test_summary_counts_rows_without_the_x_axis(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    cfg = tmp_path / "c.yaml"
    with LocalServer(project()) as srv:
        monkeypatch.setenv("WANDB_API_KEY", srv.api_key)
        cfg.write_text(
            f"exp:\n  entity: acme\n  project: xa\n  fields: [ret]\n  x_axis: global_step\n"
            f"  output_path: {tmp_path / 'out'}\n"
        )
        code = main([str(cfg), "--base-url", srv.base_url])
    out = capsys.readouterr().out
    assert code == 0
    assert (
        f"x_axis global_step: {N // 2 + N} row(s) without it dropped (ret {N // 2 + N}); 1 run(s) never logged it"
        in out
    )


@pytest.mark.server
def test_grid_on_the_x_axis_with_runs_that_start_late_and_end_early(tmp_path: Path) -> None:
    # a: x = 0..39000 (y = x/1000); b: x = 500..38500 every 2000 (y = (x-500)/1000)
    with LocalServer(project()) as srv:
        result = _export(srv, tmp_path, x_axis="global_step", grid={"points": 4})
        res = result.experiments["exp"].result
        assert res.grid is not None
        np.testing.assert_array_equal(res.grid, [500, 13_166 + 2 / 3, 25_833 + 1 / 3, 38_500])
        np.testing.assert_allclose(res.fields["ret"].values[0], res.grid / 1000)
        np.testing.assert_allclose(res.fields["ret"].values[1], (res.grid - 500) / 1000)
        folder = tmp_path / "out" / "exp"
        np.testing.assert_array_equal(np.load(folder / "x.npy"), res.grid)
        assert not list(folder.glob("*.steps.npy"))
        assert np.load(folder / "ret.npy").shape == (2, 4)

        every = _export(srv, tmp_path, x_axis="global_step", grid={"every": 10_000, "method": "previous"})
        res = every.experiments["exp"].result
        assert res.grid is not None and res.grid.tolist() == [10_000, 20_000, 30_000]
        # previous: a logs x = 10000 exactly; b's last x at or before 10000 is 8500 (k = 8)
        np.testing.assert_array_equal(res.fields["ret"].values, [[10, 20, 30], [8, 18, 28]])

        values = _export(srv, tmp_path, x_axis="global_step", grid={"values": [0, 500, 39_000, 40_000]})
        res = values.experiments["exp"].result
        np.testing.assert_array_equal(res.fields["ret"].values, [[0, 0.5, 39, np.nan], [np.nan, 0, np.nan, np.nan]])


@pytest.mark.server
def test_grid_on_step_and_csv(tmp_path: Path) -> None:
    with LocalServer(project()) as srv:
        result = _export(srv, tmp_path, grid={"every": 10}, output_data_type="csv")
    res = result.experiments["exp"].result
    assert res.grid is not None and res.grid.tolist() == [0, 10, 20, 30]
    assert (tmp_path / "out" / "exp" / "x.csv").read_text() == "id,0,1,2,3\nx,0,10,20,30\n"
    from wandb2numpy.output import formats

    back = formats.get("csv").read(tmp_path / "out" / "exp")
    assert back.x is not None and back.x.tolist() == [0, 10, 20, 30]  # type: ignore[union-attr]
    np.testing.assert_array_equal(back.fields["ret"].values, res.fields["ret"].values)  # type: ignore[union-attr]


@pytest.mark.server
def test_incremental_export_on_an_x_axis_matches_a_fresh_one(tmp_path: Path) -> None:
    with LocalServer(project()) as srv:
        st = ClientSettings(base_url=srv.base_url, api_key=srv.api_key, timeout=20)
        config = {
            "exp": {
                "entity": "acme",
                "project": "xa",
                "fields": ["ret"],
                "x_axis": "global_step",
                "history_samples": "all",
                "output_path": str(tmp_path / "out"),
            }
        }
        first = export(config, settings=st, policy=FAST_RETRIES, incremental=True)
        srv.reset_stats()
        again = export(config, settings=st, policy=FAST_RETRIES, incremental=True, overwrite=True)
    assert again.experiments["exp"].unchanged_runs == 3
    _check(first)
    _check(again)


@pytest.mark.server
@pytest.mark.parametrize("data_type", ["npz", "parquet", "csv"])
def test_x_axis_and_grid_in_every_format_read_back_like_numpy(tmp_path: Path, data_type: str) -> None:
    from wandb2numpy.output import formats

    keys = {"x_axis": "global_step", "grid": {"every": 5000}}
    with LocalServer(project()) as srv:
        _export(srv, tmp_path / "npy", **keys)
        _export(srv, tmp_path / data_type, output_data_type=data_type, **keys)
    want = formats.get("numpy").read(tmp_path / "npy" / "out" / "exp")
    got = formats.get(data_type).read(tmp_path / data_type / "out" / "exp")
    assert isinstance(want, formats.StoredExperiment) and isinstance(got, formats.StoredExperiment)
    assert want.x is not None and got.x is not None
    np.testing.assert_array_equal(got.x, want.x)
    assert want.x.tolist() == [5000, 10_000, 15_000, 20_000, 25_000, 30_000, 35_000]  # inside [500, 38500]
    assert got.ids == want.ids == ["a", "b"]
    np.testing.assert_array_equal(got.fields["ret"].values, want.fields["ret"].values)


@pytest.mark.server
def test_incremental_sampled_export_that_reads_some_runs_in_full(tmp_path: Path) -> None:
    """Runs sampling would thin are read in full, the others sampled, both through the cache."""
    with LocalServer(project()) as srv:
        st = ClientSettings(base_url=srv.base_url, api_key=srv.api_key, timeout=20)
        config = {
            "exp": {
                "entity": "acme",
                "project": "xa",
                "fields": ["ret"],
                "x_axis": "global_step",
                "history_samples": 25,
                "output_path": str(tmp_path / "out"),
            }
        }
        first = export(config, settings=st, policy=FAST_RETRIES, incremental=True)
        again = export(config, settings=st, policy=FAST_RETRIES, incremental=True, overwrite=True)
    assert again.experiments["exp"].unchanged_runs == 3
    for result in (first, again):
        ret = result.experiments["exp"].result.fields["ret"]
        assert (~np.isnan(ret.values[0])).sum() == 25  # a: 40 rows with an x, thinned to 25
        np.testing.assert_array_equal(ret.steps[0], 1000.0 * ret.values[0])
        np.testing.assert_array_equal(ret.values[1, :20], np.arange(0, N, 2))  # b: 20 rows, all kept
    np.testing.assert_array_equal(
        first.experiments["exp"].result.fields["ret"].values, again.experiments["exp"].result.fields["ret"].values
    )


@pytest.mark.server
def test_sampled_runs_whose_key_is_co_logged_are_read_sampled_and_a_wrong_guess_in_full(
    tmp_path: Path, caplog: Any
) -> None:
    """e logs global_step with every row: read sampled (one request), the server's sample shared
    by field and key. d logs ret on even rows and global_step on odd ones: the same counts, so
    the same guess, but the join finds no shared row and d is read again in full."""
    e = [{"_step": k, "ret": float(k), "global_step": 100 * k} for k in range(N)]
    d = [{"_step": k, **({"ret": float(k)} if k % 2 == 0 else {"global_step": 100 * k})} for k in range(N)]
    data = {"projects": [{"entity": "acme", "name": "xa", "runs": [_run("e", 0, e), _run("d", 1, d)]}]}
    with LocalServer(data) as srv:
        srv.reset_stats()
        with caplog.at_level("INFO", logger="wandb2numpy"):
            result = _export(srv, tmp_path, x_axis="global_step", history_samples=5)
        by_run = srv.stats()["history_requests_by_run"]
    report = result.experiments["exp"]
    assert [r.id for r in report.result.runs] == ["e"]
    ret = report.result.fields["ret"]
    assert len(ret.values[0]) == 5 and ret.values[0][0] == 0 and ret.values[0][-1] == N - 1
    np.testing.assert_array_equal(ret.steps[0], 100 * ret.values[0])
    assert report.x_dropped == {"ret": N // 2}  # d: no row holds both
    assert by_run["e"] == 1
    assert "did not log global_step in the rows of every field; reading them in full" in caplog.text


@pytest.mark.server
def test_a_non_numeric_field_leaves_the_x_axis_as_configured(tmp_path: Path) -> None:
    rows = [{"_step": k, "ret": float(k), "note": f"text {k}", "global_step": 1000 * k} for k in range(N)]
    data = {"projects": [{"entity": "acme", "name": "xa", "runs": [_run("a", 0, rows)]}]}
    with LocalServer(data) as srv:
        config = {
            "exp": {
                "entity": "acme",
                "project": "xa",
                "fields": ["ret", "note"],
                "x_axis": "global_step",
                "output_path": str(tmp_path / "out"),
            }
        }
        result = export(
            config, settings=ClientSettings(base_url=srv.base_url, api_key=srv.api_key, timeout=20), policy=FAST_RETRIES
        )
    res = result.experiments["exp"].result
    assert res.skipped_fields["note"].startswith("logged as string")
    assert res.x_axis == "global_step"
    np.testing.assert_array_equal(res.fields["ret"].steps[0], 1000.0 * np.arange(N))
    manifest = json.loads((tmp_path / "out" / "exp" / ".wandb2numpy-manifest.json").read_text())
    assert manifest["x_axis"] == "global_step"
