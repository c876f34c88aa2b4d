"""Cost follows the data: history requests are planned by rows, small runs share requests.

Real client, local server; requests are counted with the server's `/_stats`, values and steps are
checked exactly against the data the server holds.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wandb2numpy import ClientSettings, export
from wandb2numpy.testing import FAST_RETRIES, LocalServer

FAST = FAST_RETRIES


def _run(rid: str, i: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": rid,
        "name": rid,
        "group": "g",
        "job_type": "train",
        "state": "finished",
        "created_at": f"2024-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
        "config": {"seed": i},
        "history": rows,
    }


def _project(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"projects": [{"entity": "acme", "name": "plan", "runs": runs}]}


def _rows(steps: np.ndarray, i: int) -> list[dict[str, Any]]:
    return [
        {"_step": int(s), "train/return": float(s) * 0.5 + i, "loss": 1.0 / (k + 1) + i} for k, s in enumerate(steps)
    ]


def _export(srv: LocalServer, tmp_path: Path, samples: Any, **settings: Any) -> Any:
    config = {
        "exp": {
            "entity": "acme",
            "project": "plan",
            "fields": ["train/return", "loss"],
            "history_samples": samples,
            "output_path": str(tmp_path / "out"),
        }
    }
    st = ClientSettings(base_url=srv.base_url, api_key=srv.api_key, timeout=20, **settings)
    srv.reset_stats()
    result = export(config, write=False, settings=st, policy=FAST)
    assert result.exit_code == 0
    return result


def _check_exact(result: Any, steps_per_run: list[np.ndarray]) -> None:
    res = result.experiments["exp"].result
    assert len(res.runs) == len(steps_per_run)
    for row, (run, steps) in enumerate(zip(res.runs, steps_per_run)):
        i = int(run.config["seed"])
        n = len(steps)
        ret = res.fields["train/return"]
        np.testing.assert_array_equal(ret.steps[row, :n], steps.astype(float))
        np.testing.assert_array_equal(ret.values[row, :n], steps * 0.5 + i)
        assert np.isnan(ret.values[row, n:]).all()
        loss = res.fields["loss"]
        np.testing.assert_array_equal(loss.values[row, :n], 1.0 / (np.arange(n) + 1) + i)


STRIDED = [np.arange(1000) * 10_000 for _ in range(4)]  # 1,000 rows, last step 9,990,000


@pytest.fixture(scope="module")
def strided() -> Any:
    runs = [_run(f"s{i}", i, _rows(steps, i)) for i, steps in enumerate(STRIDED)]
    with LocalServer(_project(runs)).start() as srv:
        yield srv


@pytest.mark.parametrize("samples", [12000, "all"])
def test_strided_steps_cost_a_few_requests_not_one_per_empty_window(
    strided: LocalServer, tmp_path: Path, samples: Any
) -> None:
    """RL logging every 10,000 steps: the original tool's sampled mode sends 4 requests; wandb's
    scan sends 39,964 mostly empty page requests. Planned by rows: at most 8, exact."""
    result = _export(strided, tmp_path, samples, parquet=False)
    stats = strided.stats()
    assert stats["history_requests"] <= 8, stats["ops"]
    _check_exact(result, STRIDED)


def test_strided_steps_without_shared_requests(strided: LocalServer, tmp_path: Path) -> None:
    result = _export(strided, tmp_path, "all", batch_small_runs=False, parquet=False)
    assert strided.stats()["history_requests"] <= 8
    _check_exact(result, STRIDED)


@pytest.mark.server
@pytest.mark.parametrize("samples", [12000, "all"])
def test_strided_steps_from_parquet_exports(tmp_path: Path, samples: Any) -> None:
    """The same runs served as exports. Full history: a request for the export's names and one
    per file. Sampled: the pages, as without exports (the files would cost two requests a run)."""
    runs = [_run(f"s{i}", i, _rows(steps, i)) for i, steps in enumerate(STRIDED)]
    with LocalServer(_project(runs), parquet=True).start() as srv:
        result = _export(srv, tmp_path, samples)
        stats = srv.stats()
    if samples == "all":
        assert stats["history_requests"] <= 8 and stats["ops"]["ParquetFile"] == 4, stats["ops"]
    else:
        assert stats["history_requests"] <= 8 and "ParquetFile" not in stats["ops"], stats["ops"]
    _check_exact(result, STRIDED)


UNEVEN = [
    # dense early (3,000 rows in 3,000 steps), sparse late (500 rows 10,000 steps apart)
    np.concatenate([np.arange(3000), 3000 + np.arange(1, 501) * 10_000]),
    # evenly every 1,000 steps, with a burst of 3,000 consecutive steps overfilling one window
    np.unique(np.concatenate([np.arange(5000) * 1000, 2_000_001 + np.arange(3000)])),
]


@pytest.mark.server
@pytest.mark.parametrize("samples", ["all", 12000])
def test_uneven_logging_is_exact(tmp_path: Path, samples: Any) -> None:
    runs = [_run(f"u{i}", i, _rows(steps, i)) for i, steps in enumerate(UNEVEN)]
    with LocalServer(_project(runs)).start() as srv:
        result = _export(srv, tmp_path, samples, page_size=500, parquet=False)
        stats = srv.stats()
    _check_exact(result, UNEVEN)
    assert stats["ops"].get("RunParquetHistory", 0) == 0  # exact without falling back to the scan
    rows = sum(len(s) for s in UNEVEN)
    assert stats["history_requests"] <= 2 * rows / 500 + 20  # splits of overfilled windows only


@pytest.mark.server
@pytest.mark.slow
def test_many_small_runs_share_requests(tmp_path: Path) -> None:
    """2,000 runs x 50 rows, sampled: one request per run and key group would be 2,000. Ten
    listing pages, read as they come (issue 22 item 3): the first and the last over all 16
    workers (17 requests of 12 runs each), the eight between over 4 (4 each): 66 in all."""
    steps = np.arange(50) * 7
    runs = [_run(f"m{i:04d}", i, _rows(steps, i)) for i in range(2000)]
    with LocalServer(_project(runs)).start() as srv:
        result = _export(srv, tmp_path, 12000)
        stats = srv.stats()
    assert stats["history_requests"] <= 70, stats["ops"]
    assert stats["ops"].get("RunSampledHistory", 0) == 0
    _check_exact(result, [steps] * 2000)


@pytest.mark.server
def test_a_failing_run_in_a_shared_request_fails_alone(tmp_path: Path) -> None:
    steps = np.arange(20)
    runs = [_run(f"f{i}", i, _rows(steps, i)) for i in range(6)]
    with LocalServer(_project(runs)).start() as srv:
        srv.set_faults(fail_runs=["f2"])
        config = {
            "exp": {
                "entity": "acme",
                "project": "plan",
                "fields": ["train/return", "loss"],
                "output_path": str(tmp_path / "out"),
            }
        }
        st = ClientSettings(base_url=srv.base_url, api_key=srv.api_key, timeout=20)
        # two attempts are enough to show a failing run fails alone (each costs wandb-core's 1 s retry)
        result = export(config, write=False, settings=st, policy=dataclasses.replace(FAST, attempts=2))
        ops = srv.stats()["ops"]
    res = result.experiments["exp"].result
    assert list(res.failed_runs) == ["f2"]
    assert [r.id for r in res.runs] == ["f0", "f1", "f3", "f4", "f5"]
    assert ops["RunsSampledHistory"] >= 1 and ops["RunSampledHistory"] >= 1  # shared, then alone
