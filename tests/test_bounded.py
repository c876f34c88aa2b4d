"""Bounded under faults (issue 18): every wait has an end the operator can predict.

Through the command line in subprocesses, as an operator meets it: a server that accepts
connections but never answers is named at start-up; SIGINT and SIGTERM, once or repeatedly, end
the process within seconds in every state, with the right exit code, no traceback and the previous
export intact; `--retries` and `--deadline` bound what one broken run costs, counted at the
server's `/_stats`; an outage longer than the old tolerance is ridden out. Time bounds are
generous upper bounds for a loaded CI machine; the figures they guard are stated beside them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import files_under, outage
from conftest import server_process as _server_process

from wandb2numpy import ClientSettings, export
from wandb2numpy.cli.report import LineProgress
from wandb2numpy.output.folder import MANIFEST_FILE
from wandb2numpy.runner import FetchStats, RetryPolicy
from wandb2numpy.testing import DEFAULT_API_KEY, LocalServer, synthetic_project
from wandb2numpy.testing.silent import SilentServer

N_RUNS = 6
pytestmark = pytest.mark.server


def project() -> dict[str, Any]:
    return synthetic_project(runs=N_RUNS, steps=200, metrics=2, seed=3)


project_data = project
RUN_IDS = [r["id"] for r in project()["projects"][0]["runs"]]


def two_experiments(out: Path) -> dict[str, Any]:
    """Two experiments over the same runs: sampled history to NumPy, full history to CSV."""
    return {
        "DEFAULT": {"entity": "demo", "project": "synthetic", "output_path": str(out)},
        "sampled": {"fields": ["train/return"]},
        "full": {"fields": ["train/loss"], "history_samples": "all", "output_data_type": "csv"},
    }


def _env() -> dict[str, str]:
    return dict(os.environ, WANDB_API_KEY=DEFAULT_API_KEY)


def _cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "wandb2numpy.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def _finish(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str, float]:
    """Wait for the process; its output and how long it took. Killed (and failed) past `timeout`."""
    started = time.monotonic()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"still running after {timeout} s; stderr: {err[-2000:]}")
    return out, err, time.monotonic() - started


def _clean(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "Exception ignored" not in stderr, stderr
    assert "unhandled exception" not in stderr, stderr


def _write_config(tmp_path: Path, cfg: dict[str, Any]) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


# ------------------------------------------------------------------------- a silent server


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    with SilentServer() as srv:
        yield srv


def test_silent_server_is_named_at_start_up(silent: SilentServer, tmp_path: Path) -> None:
    cfg = _write_config(tmp_path, two_experiments(tmp_path / "out"))
    proc = _cli(str(cfg), "--base-url", silent.base_url, "--json-summary", str(tmp_path / "s.json"))
    # about 10 s plus the imports; before, nothing for ten minutes
    _, err, took = _finish(proc, timeout=60)
    assert proc.returncode == 1, err
    assert f"connected to 127.0.0.1:{silent.port}, no answer in 10 s" in err
    _clean(err)
    assert took < 40
    assert json.loads((tmp_path / "s.json").read_text())["exit_code"] == 1
    assert not (tmp_path / "out").exists()


SIGNALS = {
    "SIGINT": ([signal.SIGINT], 130),
    "SIGTERM": ([signal.SIGTERM], 143),
    "two SIGINTs": ([signal.SIGINT, signal.SIGINT], 130),
    "SIGTERM then SIGINT, SIGTERM": ([signal.SIGTERM, signal.SIGINT, signal.SIGTERM], 143),
}


def _send(proc: subprocess.Popen[str], sigs: list[int]) -> None:
    for sig in sigs:
        proc.send_signal(sig)
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(SIGNALS))
def test_signals_at_start_up_against_a_silent_server(silent: SilentServer, tmp_path: Path, case: str) -> None:
    sigs, code = SIGNALS[case]
    cfg = _write_config(tmp_path, two_experiments(tmp_path / "out"))
    summary = tmp_path / "s.json"
    proc = _cli(str(cfg), "--base-url", silent.base_url, "--json-summary", str(summary))
    deadline = time.monotonic() + 30
    while silent.accepted == 0 and time.monotonic() < deadline:  # wandb-core's first request is out
        time.sleep(0.05)
    assert silent.accepted, "the export never connected"
    time.sleep(0.5)
    _send(proc, sigs)
    _, err, took = _finish(proc, timeout=30)
    assert proc.returncode == code, err
    assert took < 5  # 2 s promised; before: 30 to 111 s
    _clean(err)
    assert json.loads(summary.read_text())["exit_code"] == code


@pytest.fixture(scope="module")
def slow_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("slow") / "project.json"
    data.write_text(json.dumps(project()))
    with _server_process("--data", str(data), "--latency-ms", "700") as url:
        yield url


def _previous_export(out: Path) -> dict[str, bytes]:
    """An earlier complete export of both experiments, with contents no new export produces."""
    for exp, name in (("sampled", "train/return.npy"), ("full", "train/loss.csv")):
        path = out / exp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"previous export of " + exp.encode())
        doc = {"wandb2numpy_manifest": 1, "data_type": "numpy", "files": [{"path": name, "size": path.stat().st_size}]}
        (out / exp / MANIFEST_FILE).write_text(json.dumps(doc))
    return files_under(out)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["two SIGINTs", "SIGTERM then SIGINT, SIGTERM"])
def test_repeated_signals_mid_export_end_it_in_time(slow_url: str, tmp_path: Path, case: str) -> None:
    sigs, code = SIGNALS[case]
    out = tmp_path / "out"
    before = _previous_export(out)
    cfg = _write_config(tmp_path, two_experiments(out))
    proc = _cli(str(cfg), "-o", "--base-url", slow_url, "--concurrency", "4")
    deadline = time.monotonic() + 30
    while not (out / ".wandb2numpy.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)  # history requests (0.7 s each) in flight
    assert proc.poll() is None, "the export finished before the signal"
    _send(proc, sigs)
    _, err, took = _finish(proc, timeout=30)
    assert proc.returncode == code, err
    assert took < 5
    _clean(err)
    after = files_under(out)
    for exp in ("sampled", "full"):
        assert {k: v for k, v in after.items() if k.startswith(exp)} == {
            k: v for k, v in before.items() if k.startswith(exp)
        }
    assert [p for p in out.rglob("*") if ".tmp-" in p.name or ".old-" in p.name] == []


# ------------------------------------------------------------------------- the retry budget


@pytest.mark.slow
def test_retries_bound_a_failing_run_shared_by_two_experiments(server: LocalServer, tmp_path: Path) -> None:
    bad = RUN_IDS[2]
    server.reset_stats()
    server.set_faults(fail_runs=bad)
    try:
        cfg = _write_config(tmp_path, two_experiments(tmp_path / "out"))
        summary = tmp_path / "s.json"
        proc = _cli(str(cfg), "--base-url", server.base_url, "--retries", "2", "--json-summary", str(summary))
        _, err, took = _finish(proc, timeout=120)
        stats = server.stats()
    finally:
        server.reset_faults()
    assert proc.returncode == 3, err
    doc = json.loads(summary.read_text())
    assert doc["retries_per_request"] == 2
    assert doc["runs_failed"] == 2 and doc["runs_exported"] == 2 * (N_RUNS - 1)
    for name in ("sampled", "full"):
        assert list(doc["experiments"][name]["failed_runs"]) == [bad]
    message = doc["experiments"]["sampled"]["failed_runs"][bad]
    assert "gave up after 3 attempt(s)" in message and "giving up after" not in message
    # The bad run's history requests, wandb-core's own single retry of each included: the
    # batches of both experiments (they run side by side) tried twice each, then the run alone
    # three times (--retries 2) by the first experiment to read it; the second experiment records
    # the failure without a request. Before: each batch halved four times, and each experiment
    # spent the whole budget on the run again.
    asked = stats["history_requests_by_run"][bad]
    assert asked <= 2 * (2 + 2 + 3), stats["history_requests_by_run"]
    assert took < 60  # about 10 s; before: minutes


@pytest.mark.slow
def test_deadline_writes_finished_runs_and_fails_the_rest(server: LocalServer, tmp_path: Path) -> None:
    bad = RUN_IDS[4]
    server.set_faults(fail_runs=bad)
    try:
        out = tmp_path / "out"
        cfg = _write_config(tmp_path, {"sampled": {**two_experiments(out)["DEFAULT"], "fields": ["train/return"]}})
        summary = tmp_path / "s.json"
        proc = _cli(str(cfg), "--base-url", server.base_url, "--deadline", "6s", "--json-summary", str(summary))
        _, err, took = _finish(proc, timeout=120)
    finally:
        server.reset_faults()
    assert proc.returncode == 3, err
    doc = json.loads(summary.read_text())
    assert doc["deadline_passed"] is True and doc["deadline_s"] == 6
    exp = doc["experiments"]["sampled"]
    assert list(exp["failed_runs"]) == [bad] and "deadline" in exp["failed_runs"][bad]
    assert exp["runs_exported"] == N_RUNS - 1
    assert (out / "sampled" / "train" / "return.npy").exists()
    assert took < 40  # the deadline (6 s) plus start-up; with the default 20 retries, 6 minutes


@pytest.mark.slow
def test_deadline_does_not_wait_for_requests_in_flight(server: LocalServer, tmp_path: Path) -> None:
    """Every history request answers after 30 s: at the deadline they are abandoned, and the
    process ends without joining the threads that wait for them."""
    server.set_faults(latency_ms=30_000, fault_ops="RunsSampledHistory,RunSampledHistory,SampledHistoryPage")
    try:
        out = tmp_path / "out"
        cfg = _write_config(tmp_path, {"sampled": {**two_experiments(out)["DEFAULT"], "fields": ["train/return"]}})
        proc = _cli(str(cfg), "--base-url", server.base_url, "--deadline", "4s", "-q")
        _, err, took = _finish(proc, timeout=120)
    finally:
        server.reset_faults()
    assert proc.returncode == 3, err
    _clean(err)
    assert took < 20  # 4 s and the start-up; before the abandoned requests' 30 s held the exit


# ------------------------------------------------------------------------- outages


@pytest.mark.slow
def test_an_outage_longer_than_the_old_tolerance_is_ridden_out(tmp_path: Path) -> None:
    """The server process stopped for 12 s mid-export, with the default budget's shape scaled
    down 30 times (waits doubling from 0.05 s to 1 s, 20 retries: at least 12.7 s of waiting).
    The old policy at that scale (10 attempts, full jitter up to 1 s) gave up after about 2.5 s
    of waits on average, as at full scale it lost runs after a minute or so."""
    srv = LocalServer(synthetic_project(runs=12, steps=200, metrics=2, seed=4)).start()
    policy = RetryPolicy(initial_wait=0.05, max_wait=1.0, rate_limit_pause=0.2)
    assert policy.min_total_wait() > 12
    settings = ClientSettings(base_url=srv.base_url, api_key=srv.api_key, timeout=10, batch_small_runs=False)
    reference = export(two_experiments(tmp_path / "ref"), settings=settings, policy=policy, concurrency=4)
    assert reference.exit_code == 0
    srv.set_faults(latency_ms=300)  # two requests in flight: the export outlasts the outage's start
    with outage(srv, 0.8, 12.8) as events:
        result = export(two_experiments(tmp_path / "out"), settings=settings, policy=policy, concurrency=2)
    assert events == ["stopped", "started"]
    assert result.wall_s > 12.8, "the export ended before the outage did"
    assert result.exit_code == 0 and result.runs_failed == 0
    assert result.stats.retries >= 1
    assert files_under(tmp_path / "out") == files_under(tmp_path / "ref")


def test_the_default_budget_outlasts_a_five_minute_outage() -> None:
    policy = RetryPolicy()
    assert policy.attempts == 21
    assert policy.min_total_wait() >= 300  # 360 s: waits 1, 2, 4, 8, 16, then 15 x 30 s, at 75% at least


# ------------------------------------------------------------------------- off a terminal


def test_a_progress_line_while_retries_run_and_none_while_all_is_well() -> None:
    stats = FetchStats()
    progress = LineProgress(every=30)
    progress.begin(["a", "b"], stats)
    progress.close()
    progress.start("a", 3)
    progress.start("b", 2)
    assert progress.line() is None  # nothing retried: nothing to say
    stats.retries = 4
    stats.waiting = 2
    stats.last_retry = "history of run r (loss): HTTP 503"
    progress.advance("a", _run(), 10, failed=False)
    line = progress.line()
    assert line is not None and "1 of 5 run(s) done" in line and "4 request(s) retried" in line
    assert "2 waiting" in line and "latest: history of run r (loss): HTTP 503" in line
    stats.waiting = 0
    assert progress.line() is None  # no retry since the last line


def _run() -> Any:
    from wandb2numpy.models import RunInfo

    return RunInfo(entity="e", project="p", id="r", name="r")
