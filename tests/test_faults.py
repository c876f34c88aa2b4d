"""Robustness (issue 5): an export under server faults ends with the same bytes as a healthy one.

Every fault runs the same config against the local server's fault injection and compares every
file under `output_path` with a fault-free export of that config. Retries are shortened through
the policy's own parameters (`RetryPolicy`), never by patching internals.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import files_under as tree
from conftest import outage
from conftest import server_process as _server_process

from wandb2numpy import ClientSettings, export
from wandb2numpy.cli import main
from wandb2numpy.output.folder import MANIFEST_FILE
from wandb2numpy.testing import FAST_RETRIES, LocalServer, synthetic_project

FAST = dataclasses.replace(FAST_RETRIES, attempts=8, max_wait=0.5)
HISTORY_OPS = "HistoryPage,SampledHistoryPage,RunSampledHistory,RunFullHistory"
N_RUNS = 6


def project() -> dict[str, Any]:
    return synthetic_project(runs=N_RUNS, steps=300, metrics=3, seed=0)


RUN_IDS = [r["id"] for r in project()["projects"][0]["runs"]]


def config(out: Path) -> dict[str, Any]:
    """Two experiments: sampled history to NumPy, full (scanned) history to CSV."""
    return {
        "DEFAULT": {"entity": "demo", "project": "synthetic", "output_path": str(out)},
        "sampled": {"fields": ["train/return"]},  # (eval/return, logged by no run, now exits 4)
        "full": {"fields": ["train/loss"], "history_samples": "all", "output_data_type": "csv"},
    }


def server_neutral(files: dict[str, bytes]) -> dict[str, bytes]:
    """The files with the local server's address (the run URLs of runs.csv) made the same for
    every server, to compare an export from a server of its own with the reference."""
    return {name: re.sub(rb"http://127\.0\.0\.1:\d+/", b"http://SERVER/", data) for name, data in files.items()}


project_data = project
DRIVES_CLI = True  # the failing-run test drives the CLI (see conftest's `srv`)


@pytest.fixture(scope="module")
def reference(server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    server.reset_faults()
    out = tmp_path_factory.mktemp("reference") / "out"
    result = export(config(out), settings=_settings(server), policy=FAST)
    assert result.exit_code == 0
    files = tree(out)
    assert "sampled/train/return.npy" in files and "full/train/loss.csv" in files
    assert not any("failed_runs" in name for name in files)
    return files


def _settings(srv: LocalServer, timeout: float = 20) -> ClientSettings:
    # One request per run and key group (no shared requests for small runs): these tiny runs then
    # send enough requests for every fault to be met, as a real export of large runs does.
    return ClientSettings(base_url=srv.base_url, api_key=srv.api_key, timeout=timeout, batch_small_runs=False)


def _faulty_export(srv: LocalServer, tmp_path: Path, timeout: float = 20) -> tuple[Any, dict[str, bytes]]:
    out = tmp_path / "out"
    result = export(config(out), settings=_settings(srv, timeout), policy=FAST, concurrency=4)
    return result, tree(out)


# ------------------------------------------------------------------------------- the fault matrix


# fault settings, the server stat that shows the fault was injected, and the per-call timeout
FAULT_MATRIX = {
    # token bucket: 429 with Retry-After once the burst is spent; wandb-core's one inner retry or
    # our shared pause absorbs them
    "429 storm with Retry-After": (dict(rate_limit=4), "injected_429", 3, 20),
    "20% of requests answered 5xx": (dict(error_rate=0.2, seed=7), "injected_5xx", 2, 20),
    "10% of connections reset mid-response": (dict(reset_rate=0.1, seed=3), "injected_resets", 1, 20),
    "10% reset before any byte": (dict(reset_rate=0.1, reset_mode="connect", seed=5), "injected_resets", 1, 20),
    "latency spikes past the call timeout": (
        dict(spike_rate=0.25, spike_ms=4000, fault_ops=HISTORY_OPS, seed=11),
        "injected_spikes",
        1,
        2,
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(FAULT_MATRIX))
def test_fault_matrix_output_identical(
    srv: LocalServer, reference: dict[str, bytes], tmp_path: Path, fault: str
) -> None:
    faults, stat, minimum, timeout = FAULT_MATRIX[fault]
    srv.set_faults(**faults)
    result, files = _faulty_export(srv, tmp_path, timeout=timeout)
    stats = srv.stats()
    assert stats[stat] >= minimum, stats
    assert result.exit_code == 0
    assert files == reference


@pytest.mark.server
@pytest.mark.slow
def test_server_gone_and_back_within_the_retry_budget(reference: dict[str, bytes], tmp_path: Path) -> None:
    srv = LocalServer(project(), latency_ms=150).start()
    with outage(srv, 0.6, 2.6) as events:
        result, files = _faulty_export(srv, tmp_path)
    assert events == ["stopped", "started"]
    assert result.exit_code == 0
    assert result.stats.retries >= 1  # the outage was actually hit, not waited out
    assert server_neutral(files) == server_neutral(reference)


@pytest.mark.slow
def test_one_run_always_failing(
    srv: LocalServer, reference: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = RUN_IDS[2]
    srv.set_faults(fail_runs=bad)
    # two attempts show the failing run recorded after retries (each costs wandb-core's 1 s retry)
    import wandb2numpy.pipeline as pipeline

    monkeypatch.setattr(
        pipeline, "export", functools.partial(pipeline.export, policy=dataclasses.replace(FAST, attempts=2))
    )
    out = tmp_path / "out"
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(json.dumps(config(out)))  # JSON is YAML
    summary_file = tmp_path / "summary.json"
    code = main([str(cfg_file), "--base-url", srv.base_url, "-q", "--json-summary", str(summary_file)])
    assert code == 3
    summary = json.loads(summary_file.read_text())
    assert summary["exit_code"] == 3
    assert summary["runs_failed"] == 2  # the bad run, once per experiment
    assert summary["runs_exported"] == 2 * (N_RUNS - 1)
    for name in ("sampled", "full"):
        exp = summary["experiments"][name]
        assert list(exp["failed_runs"]) == [bad]
        assert exp["runs_exported"] == N_RUNS - 1
        failed_csv = (out / name / "failed_runs.csv").read_text().splitlines()
        assert failed_csv[0] == "id,error"
        assert [line.split(",")[0] for line in failed_csv[1:]] == [bad]
        runs_csv = (out / name / "runs.csv").read_text()
        assert bad not in runs_csv
        for rid in RUN_IDS:
            if rid != bad:
                assert rid in runs_csv
    loss = (out / "full" / "train" / "loss.csv").read_text().splitlines()
    assert len(loss) == N_RUNS  # header + every healthy run
    # the healthy runs' rows are byte-identical to the fault-free export
    ref_rows = {line for line in reference["full/train/loss.csv"].decode().splitlines()}
    assert set(loss) <= ref_rows


# ------------------------------------------------------------------------------- signals


def _wait_for(predicate: Any, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server in its own process, slow enough that an export is mid-flight for seconds."""
    data = tmp_path_factory.mktemp("slow") / "project.json"
    data.write_text(json.dumps(project()))
    with _server_process("--data", str(data), "--latency-ms", "400") as url:
        yield url


def _manifest(folder: Path) -> None:
    """Make the files of `folder` those of an earlier export, so `-o` may replace them."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)
    doc = {
        "wandb2numpy_manifest": 1,
        "data_type": "numpy",
        "files": [{"path": p.relative_to(folder).as_posix(), "size": p.stat().st_size} for p in files],
    }
    (folder / MANIFEST_FILE).write_text(json.dumps(doc))


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_export_leaves_previous_export_intact(
    slow_server: str, reference: dict[str, bytes], tmp_path: Path, sig: int, code: int
) -> None:
    from wandb2numpy.testing import DEFAULT_API_KEY

    out = tmp_path / "out"
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(json.dumps(config(out)))
    # The previous complete export, with contents a new export cannot produce.
    for rel in reference:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(b"previous export of " + rel.encode())
    for exp in ("sampled", "full"):
        _manifest(out / exp)
    before = tree(out)
    env = dict(os.environ, WANDB_API_KEY=DEFAULT_API_KEY)
    summary_file = tmp_path / "summary.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wandb2numpy.cli",
            str(cfg_file),
            "-o",
            "--base-url",
            slow_server,
            "--json-summary",
            str(summary_file),
            "-v",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        # mid-flight: the lock is held, so the export has started; the server is slow
        assert _wait_for(lambda: (out / ".wandb2numpy.lock").exists(), 30), "export never started"
        time.sleep(1.0)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    after = tree(out)
    # Each experiment is either entirely the previous export or entirely a complete new one;
    # no file is torn, half old and half new, or left over from staging.
    for exp in ("sampled", "full"):
        old = {k: v for k, v in before.items() if k.startswith(exp + "/")}
        now = {k: v for k, v in after.items() if k.startswith(exp + "/")}
        new = {k: v for k, v in reference.items() if k.startswith(exp + "/")}
        assert now in (old, new), f"{exp}: neither the previous nor a complete new export"
    assert set(after) <= set(before)
    leftovers = [str(p) for p in out.rglob("*") if ".tmp-" in p.name or ".old-" in p.name]
    assert leftovers == []
    assert not (out / ".wandb2numpy.lock").exists()
    summary = json.loads(summary_file.read_text())
    assert summary["exit_code"] == code


@pytest.fixture(scope="module")
def long_server() -> Iterator[str]:
    """8 runs x 30,000 steps behind a 1 s latency: every request of a full-history export is slow."""
    with _server_process(
        "--runs", "8", "--steps", "30000", "--metrics", "1", "--eval-every", "1", "--latency-ms", "1000"
    ) as url:
        yield url


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_ends_a_long_full_history_export_within_about_one_request(
    long_server: str, tmp_path: Path, sig: int, code: int
) -> None:
    """Every call handed to a worker thread is one request, so an interrupt waits for at most the
    requests in flight (1 s each here), not for whole multi-page reads of 30,000 steps."""
    from wandb2numpy.testing import DEFAULT_API_KEY

    out = tmp_path / "out"
    previous = out / "long" / "previous.txt"
    previous.parent.mkdir(parents=True)
    previous.write_text("an earlier export")
    _manifest(previous.parent)
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(
        json.dumps(
            {
                "long": {
                    "entity": "demo",
                    "project": "synthetic",
                    "fields": ["train/return"],
                    "history_samples": "all",
                    "output_path": str(out),
                }
            }
        )
    )
    env = dict(os.environ, WANDB_API_KEY=DEFAULT_API_KEY)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wandb2numpy.cli",
            str(cfg_file),
            "-o",
            "-q",
            "--concurrency",
            "8",
            "--base-url",
            long_server,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert _wait_for(lambda: (out / ".wandb2numpy.lock").exists(), 30), "export never started"
        time.sleep(3.0)  # history requests in flight on every worker
        assert proc.poll() is None, "the export finished before the signal: make it longer"
        sent = time.monotonic()
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, stderr
    # Generous: a request in flight (1 s) plus interpreter exit; before, whole multi-page calls
    # (30 pages of 1 s each) held the exit for tens of seconds.
    assert took < 10, f"took {took:.1f} s to stop"
    assert previous.read_text() == "an earlier export"
    assert not (out / ".wandb2numpy.lock").exists()
    assert [p for p in out.rglob("*") if ".tmp-" in p.name or ".old-" in p.name] == []
