"""`python -m wandb2numpy.testing.server` as a user (or a benchmark script) starts it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import wandb

from wandb2numpy.testing import DEFAULT_API_KEY
from wandb2numpy.testing.server import build_parser

pytestmark = pytest.mark.server  # every test here talks to a local server it starts

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "data" / "server" / "fixture_project.json"
# Every option the issue asks for; the help text must document each.
OPTIONS = [
    "--host",
    "--port",
    "--data",
    "--runs",
    "--steps",
    "--metrics",
    "--seed",
    "--eval-every",
    "--entity",
    "--project",
    "--api-key",
    "--latency-ms",
    "--per-row-us",
    "--file-mb-per-s",
    "--rate-limit",
    "--error-rate",
    "--reset-rate",
    "--reset-mode",
    "--spike-rate",
    "--spike-ms",
    "--fault-ops",
    "--fail-runs",
    "--no-batch-history",
    "--parquet",
    "--step-stride",
    "--all-finished",
]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _first_line(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline() if proc.stdout else ""), daemon=True)
    reader.start()
    reader.join(timeout)
    assert box, "the server printed no URL line"
    return box[0].strip()


@pytest.fixture
def start_cli() -> Iterator[object]:
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> tuple[subprocess.Popen[str], str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wandb2numpy.testing.server", *args],
            cwd=REPO,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return proc, _first_line(proc)

    yield start
    for proc in procs:  # only the processes this test started
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_subprocess_serves_the_client_and_stops_on_sigterm(start_cli: object) -> None:
    proc, url = start_cli("--runs", "3", "--steps", "10", "--port", "0")  # type: ignore[operator]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    api = wandb.Api(api_key=DEFAULT_API_KEY, overrides={"base_url": url, "entity": "demo"})
    runs = list(api.runs("demo/synthetic"))
    assert len(runs) == 3
    assert len(runs[0].history(keys=["train/loss"], pandas=False)) == 10
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0


def test_subprocess_with_data_file_and_faults_stops_on_sigint(start_cli: object) -> None:
    proc, url = start_cli(  # type: ignore[operator]
        "--data",
        str(FIXTURE),
        "--latency-ms",
        "1",
        "--fault-ops",
        "Runs,Run",
        "--fail-runs",
        "r0000001",
        "--rate-limit",
        "500",
        "--error-rate",
        "0",
        "--api-key",
        "k-" + "z" * 40,
    )
    with urllib.request.urlopen(url + "/_faults", timeout=10) as resp:
        faults = json.loads(resp.read())
    assert faults["latency_ms"] == 1 and faults["fault_ops"] == ["Run", "Runs"] and faults["fail_runs"] == ["r0000001"]
    assert faults["rate_limit"] == 500
    api = wandb.Api(api_key="k-" + "z" * 40, overrides={"base_url": url, "entity": "acme"})
    assert len(api.runs("acme/rl")) == 8
    with urllib.request.urlopen(url + "/_stats", timeout=10) as resp:
        assert json.loads(resp.read())["ops"]["Runs"] == 1
    proc.send_signal(signal.SIGINT)
    assert proc.wait(20) == 0


def test_bad_data_file_exits_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wandb2numpy.testing.server", "--data", "/nonexistent/x.json"],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "error:" in proc.stderr and proc.stdout == ""


def test_every_option_is_documented() -> None:
    help_text = build_parser().format_help()
    for option in OPTIONS:
        assert option in help_text
    actions = {s for a in build_parser()._actions for s in a.option_strings} - {"-h", "--help"}
    assert actions == set(OPTIONS)
