"""`--incremental`: a second export fetches only new or changed runs and writes the same arrays.

Against the local server with the unmodified wandb client; request counts come from the server.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wandb2numpy import ClientSettings, ConfigError, export
from wandb2numpy.sources.cache import STATE_DIR
from wandb2numpy.testing import FAST_RETRIES, LocalServer

FAST = dataclasses.replace(FAST_RETRIES, attempts=3, max_wait=0.2)
N_RUNS = 64
STEPS = 50


def run_spec(k: int, *, steps: int = STEPS, state: str = "finished", extra: str | None = None) -> dict[str, Any]:
    rows = []
    for s in range(steps):
        row: dict[str, Any] = {"_step": s, "loss": 1.0 / (s + 1) + k, "acc": s * 0.01 + k / 1000}
        if extra is not None:
            row[extra] = float(s * k)
        rows.append(row)
    return {
        "id": f"r{k:02d}",
        "name": f"run-{k}",
        "group": "g" + str(k % 2),
        "state": state,
        "created_at": f"2024-01-01T{k // 60:02d}:{k % 60:02d}:00Z",
        "heartbeat_at": f"2024-01-02T{k // 60:02d}:{k % 60:02d}:00Z",
        "config": {"seed": k},
        "history": rows,
    }


def project(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"projects": [{"entity": "acme", "name": "inc", "runs": runs}]}


def base_runs() -> list[dict[str, Any]]:
    return [run_spec(k) for k in range(N_RUNS)]


RELOAD_DATA = True  # tests change runs on the server


def project_data() -> dict[str, Any]:
    return project(base_runs())


def config(out: Path, **exp: Any) -> dict[str, Any]:
    base = {"entity": "acme", "project": "inc", "fields": ["loss", "acc"], "output_path": str(out)}
    base.update(exp)
    return {"exp": base}


def run(srv: LocalServer, out: Path, *, incremental: bool = True, **exp: Any) -> Any:
    return export(
        config(out, **exp),
        overwrite=True,
        incremental=incremental,
        settings=ClientSettings(base_url=srv.base_url, api_key=srv.api_key),
        policy=FAST,
    )


def history_requests(srv: LocalServer) -> tuple[int, dict[str, int]]:
    stats = srv.stats()
    return stats["history_requests"], stats["history_requests_by_run"]


def assert_same_output(a: Path, b: Path) -> None:
    """Every file of two exports of `exp` holds the same data (values and steps, NaN == NaN)."""
    files_a = sorted(p.relative_to(a) for p in (a / "exp").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in (b / "exp").rglob("*") if p.is_file())
    assert files_a == files_b
    assert any(".steps." in str(f) for f in files_a)
    for rel in files_a:
        if rel.suffix == ".npy":
            np.testing.assert_array_equal(np.load(a / rel), np.load(b / rel))
        else:
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def assert_same_as_fresh(srv: LocalServer, out: Path, tmp_path: Path, **exp: Any) -> None:
    fresh = tmp_path / "fresh"
    result = run(srv, fresh, incremental=False, **exp)
    assert not (fresh / STATE_DIR).exists()  # a plain export neither reads nor writes state
    assert_same_output(out, fresh)
    assert result.exit_code == 0


def state(out: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((out / STATE_DIR / "exp" / "state.json").read_text())
    return loaded


def cache_file(out: Path, run_id: str) -> Path:
    return out / STATE_DIR / "exp" / "runs" / f"{run_id}.npz"


def test_second_export_fetches_only_the_changed_run(srv: LocalServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run(srv, out)
    h1, by_run_1 = history_requests(srv)
    assert first.exit_code == 0 and first.experiments["exp"].unchanged_runs == 0
    assert len(by_run_1) == N_RUNS  # every run's history asked for (small runs share requests)
    assert len(state(out)["runs"]) == N_RUNS

    runs = base_runs()
    changed = run_spec(17, steps=STEPS + 12)
    changed["heartbeat_at"] = "2024-02-01T00:00:00Z"
    runs[17] = changed
    srv.load(project(runs))
    srv.reset_stats()
    second = run(srv, out)
    h2, by_run = history_requests(srv)
    print(f"\nincremental: first export {h1} history requests, second (1 of {N_RUNS} changed) {h2}")
    assert h2 <= 2  # the changed run's history, in one request per key group
    assert set(by_run) == {"r17"}
    assert second.exit_code == 0
    assert second.experiments["exp"].unchanged_runs == N_RUNS - 1
    assert second.experiments["exp"].result.fields["loss"].values.shape == (N_RUNS, STEPS + 12)
    assert_same_as_fresh(srv, out, tmp_path)

    srv.reset_stats()
    third = run(srv, out)  # nothing changed: nothing fetched
    assert history_requests(srv)[0] == 0
    assert third.experiments["exp"].unchanged_runs == N_RUNS


def test_full_history_mode_and_csv(srv: LocalServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    opts: dict[str, Any] = {"history_samples": "all", "output_data_type": "csv"}
    run(srv, out, **opts)
    runs = base_runs()
    runs[3] = run_spec(3, steps=STEPS + 1)
    srv.load(project(runs))
    srv.reset_stats()
    second = run(srv, out, **opts)
    assert set(history_requests(srv)[1]) == {"r03"}
    assert second.experiments["exp"].unchanged_runs == N_RUNS - 1
    assert_same_as_fresh(srv, out, tmp_path, **opts)


def test_running_run_is_always_fetched_and_never_cached(srv: LocalServer, tmp_path: Path) -> None:
    runs = base_runs()
    runs[5] = run_spec(5, state="running")
    srv.load(project(runs))
    out = tmp_path / "out"
    run(srv, out)
    assert "r05" not in {r["id"] for r in state(out)["runs"]}
    assert not cache_file(out, "r05").exists()
    for _ in range(2):
        srv.reset_stats()
        result = run(srv, out)
        assert set(history_requests(srv)[1]) == {"r05"}
        assert result.experiments["exp"].unchanged_runs == N_RUNS - 1
    assert_same_as_fresh(srv, out, tmp_path)


def test_deleted_run_leaves_the_arrays_and_the_cache(srv: LocalServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(srv, out)
    assert cache_file(out, "r09").exists()
    srv.load(project([r for r in base_runs() if r["id"] != "r09"]))
    srv.reset_stats()
    result = run(srv, out)
    assert history_requests(srv)[0] == 0
    ids = [r.id for r in result.experiments["exp"].result.runs]
    assert "r09" not in ids and len(ids) == N_RUNS - 1
    assert result.experiments["exp"].gone_runs == ["r09"]  # named in the summary, not dropped silently
    assert not cache_file(out, "r09").exists()
    assert "r09" not in {r["id"] for r in state(out)["runs"]}
    assert_same_as_fresh(srv, out, tmp_path)


def test_filtered_out_runs_are_pruned_by_fingerprint(srv: LocalServer, tmp_path: Path, caplog: Any) -> None:
    out = tmp_path / "out"
    run(srv, out)
    srv.reset_stats()
    with caplog.at_level(logging.INFO, logger="wandb2numpy"):
        result = run(srv, out, groups=["g0"])
    assert "cache is dropped" in caplog.text
    assert result.experiments["exp"].unchanged_runs == 0
    assert len(history_requests(srv)[1]) == N_RUNS // 2
    kept = sorted(p.name for p in (out / STATE_DIR / "exp" / "runs").iterdir())
    assert kept == [f"r{k:02d}.npz" for k in range(0, N_RUNS, 2)]


def test_corrupt_cache_files_are_fetched_again(srv: LocalServer, tmp_path: Path, caplog: Any) -> None:
    out = tmp_path / "out"
    run(srv, out)
    cache_file(out, "r11").write_bytes(b"not a zip file")
    good = cache_file(out, "r12").read_bytes()
    cache_file(out, "r12").write_bytes(good[: len(good) // 2])
    cache_file(out, "r13").write_bytes(cache_file(out, "r14").read_bytes())  # another run's data
    cache_file(out, "r15").unlink()
    srv.reset_stats()
    with caplog.at_level(logging.WARNING, logger="wandb2numpy"):
        result = run(srv, out)
    assert result.exit_code == 0
    assert set(history_requests(srv)[1]) == {"r11", "r12", "r13", "r15"}
    assert result.experiments["exp"].unchanged_runs == N_RUNS - 4
    assert "r11" in caplog.text and "r13" in caplog.text
    assert_same_as_fresh(srv, out, tmp_path)
    srv.reset_stats()
    run(srv, out)  # repaired
    assert history_requests(srv)[0] == 0


def test_damaged_state_file_means_a_full_fetch(srv: LocalServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(srv, out)
    (out / STATE_DIR / "exp" / "state.json").write_text("{not json")
    srv.reset_stats()
    result = run(srv, out)
    assert result.exit_code == 0 and result.experiments["exp"].unchanged_runs == 0
    assert len(history_requests(srv)[1]) == N_RUNS
    assert len(state(out)["runs"]) == N_RUNS


def test_changed_field_list_invalidates_the_cache(srv: LocalServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(srv, out, fields=["loss"])
    srv.reset_stats()
    result = run(srv, out, fields=["loss", "acc"])
    assert result.experiments["exp"].unchanged_runs == 0
    assert len(history_requests(srv)[1]) == N_RUNS
    assert state(out)["fingerprint"]["fields"] == ["loss", "acc"]
    assert_same_as_fresh(srv, out, tmp_path)
    srv.reset_stats()
    run(srv, out, fields=["loss", "acc"], history_samples=20)  # samples are in the fingerprint too
    assert len(history_requests(srv)[1]) == N_RUNS


def test_fields_all_fetches_only_runs_holding_a_new_field(srv: LocalServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(srv, out, fields="all")
    runs = base_runs() + [run_spec(N_RUNS, extra="bonus")]  # a new run brings a new field
    srv.load(project(runs))
    srv.reset_stats()
    result = run(srv, out, fields="all")
    assert set(history_requests(srv)[1]) == {f"r{N_RUNS:02d}"}
    assert result.experiments["exp"].unchanged_runs == N_RUNS
    assert sorted(result.experiments["exp"].result.fields) == ["acc", "bonus", "loss"]
    assert_same_as_fresh(srv, out, tmp_path, fields="all")
    # A changed run that gains the new field is fetched again (its history changed anyway).
    runs[2] = run_spec(2, extra="bonus")
    srv.load(project(runs))
    srv.reset_stats()
    run(srv, out, fields="all")
    assert set(history_requests(srv)[1]) == {"r02"}
    assert_same_as_fresh(srv, out, tmp_path, fields="all")


@pytest.mark.slow
def test_failed_run_is_not_cached_and_is_fetched_next_time(srv: LocalServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    srv.set_faults(fail_runs={"r20"})
    first = run(srv, out)
    assert first.exit_code == 3
    assert "r20" in first.experiments["exp"].result.failed_runs
    assert "r20" not in {r["id"] for r in state(out)["runs"]}
    assert not cache_file(out, "r20").exists()
    srv.reset_faults()
    srv.reset_stats()
    second = run(srv, out)
    assert second.exit_code == 0
    assert set(history_requests(srv)[1]) == {"r20"}
    assert second.experiments["exp"].unchanged_runs == N_RUNS - 1
    assert_same_as_fresh(srv, out, tmp_path)


def test_plain_export_then_incremental_starts_empty(srv: LocalServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(srv, out, incremental=False)
    assert not (out / STATE_DIR).exists()
    srv.reset_stats()
    result = run(srv, out)
    assert result.experiments["exp"].unchanged_runs == 0
    assert len(history_requests(srv)[1]) == N_RUNS
    assert (out / ".wandb2numpy.lock").exists() is False  # the lock file is separate and released


def test_incremental_without_write_is_refused(srv: LocalServer, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="incremental"):
        export(
            config(tmp_path / "out"),
            write=False,
            incremental=True,
            settings=ClientSettings(base_url=srv.base_url, api_key=srv.api_key),
            policy=FAST,
        )
    assert srv.stats()["requests"] == 0
    assert not (tmp_path / "out").exists()


def _grown(k: int, steps: int, **change: Any) -> dict[str, Any]:
    spec = run_spec(k, steps=steps)
    spec["heartbeat_at"] = "2024-02-01T00:00:00Z"
    spec.update(change)
    return spec


def test_grown_runs_fetch_only_their_new_steps(srv: LocalServer, tmp_path: Path) -> None:
    """A nightly export of 64 runs of 2,000 steps, each grown by 1%: at most 2 history requests
    per grown run (the new steps and the last cached one, which shows the cache still holds)."""
    out = tmp_path / "out"
    srv.load(project([run_spec(k, steps=2000) for k in range(N_RUNS)]))
    first = run(srv, out, history_samples="all")
    assert first.exit_code == 0
    srv.load(project([_grown(k, 2020) for k in range(N_RUNS)]))
    srv.reset_stats()
    second = run(srv, out, history_samples="all")
    h2, by_run = history_requests(srv)
    print(f"\nincremental tail: {h2} history requests for {N_RUNS} grown runs")
    assert second.exit_code == 0
    assert set(by_run) == {f"r{k:02d}" for k in range(N_RUNS)} and max(by_run.values()) <= 2
    assert srv.stats()["rows_served"] <= N_RUNS * 2 * 21 * 2  # the tails, not the runs
    assert second.experiments["exp"].result.fields["loss"].values.shape == (N_RUNS, 2020)
    assert_same_as_fresh(srv, out, tmp_path, history_samples="all")


def test_a_rewritten_run_is_fetched_whole(srv: LocalServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    srv.load(project([run_spec(k, steps=300) for k in range(4)]))
    run(srv, out, history_samples="all")
    rewritten = _grown(1, 330)
    for row in rewritten["history"]:
        row["loss"] += 1000.0  # every value changed, the last cached one included
    srv.load(project([_grown(0, 330), rewritten, run_spec(2, steps=300), run_spec(3, steps=300)]))
    srv.reset_stats()
    second = run(srv, out, history_samples="all")
    assert second.exit_code == 0
    assert second.experiments["exp"].unchanged_runs == 2
    values = second.experiments["exp"].result.fields["loss"].values
    assert values[1, 0] == 1000.0 + 1.0 + 1  # the new values, not the cached ones
    assert_same_as_fresh(srv, out, tmp_path, history_samples="all")


AST_ERROR = "AST constructor recursion depth mismatch (before=36, after=33)"


def fail_cache_loads(monkeypatch: pytest.MonkeyPatch, message: str, times: int) -> list[str]:
    """`np.load` of run r03's cache file raises SystemError(message) its first `times` calls;
    the list returned names each failed load."""
    real_load = np.load
    failed: list[str] = []

    def load(path: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(path).name == "r03.npz" and len(failed) < times:
            failed.append(str(path))
            raise SystemError(message)
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(np, "load", load)
    return failed


def test_a_spurious_ast_error_while_reading_a_cache_file_is_read_again(
    srv: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """CPython 3.11's AST recursion counter, shared between threads, once failed numpy's header
    parse of a sound cache file in CI: the file is read again, not called unreadable and fetched."""
    out = tmp_path / "out"
    run(srv, out)
    failed = fail_cache_loads(monkeypatch, AST_ERROR, times=1)
    srv.reset_stats()
    with caplog.at_level(logging.WARNING, logger="wandb2numpy"):
        again = run(srv, out)
    assert failed  # the error was met
    assert again.experiments["exp"].unchanged_runs == N_RUNS
    assert history_requests(srv)[0] == 0
    assert "unreadable" not in caplog.text


@pytest.mark.parametrize("message", [AST_ERROR, "something else"], ids=["ast-error-twice", "other-error"])
def test_a_cache_file_that_keeps_failing_is_fetched_again(
    srv: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, message: str
) -> None:
    out = tmp_path / "out"
    run(srv, out)
    fail_cache_loads(monkeypatch, message, times=2)
    srv.reset_stats()
    again = run(srv, out)
    assert again.exit_code == 0
    assert again.experiments["exp"].unchanged_runs == N_RUNS - 1
    assert set(history_requests(srv)[1]) == {"r03"}
