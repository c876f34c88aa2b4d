"""Shared test set-up.

The wandb client is pointed at throw-away folders before anything imports it, so no test reads or
writes the user's ~/.netrc, ~/.config/wandb or the real W&B settings (house rule 8).
"""

from __future__ import annotations

import os
import tempfile

_SANDBOX = tempfile.mkdtemp(prefix="w2n-tests-")
for _var, _sub in (
    ("WANDB_DIR", "wandb"),
    ("WANDB_CACHE_DIR", "cache"),
    ("WANDB_CONFIG_DIR", "config"),
    ("WANDB_DATA_DIR", "data"),
    ("WANDB_ARTIFACT_DIR", "artifacts"),
):
    os.environ[_var] = os.path.join(_SANDBOX, _sub)
    os.makedirs(os.environ[_var], exist_ok=True)
os.environ["NETRC"] = os.path.join(_SANDBOX, "netrc")
os.environ["WANDB_ERROR_REPORTING"] = "false"
os.environ["WANDB_SILENT"] = "true"
os.environ.pop("WANDB_API_KEY", None)
os.environ.pop("WANDB_BASE_URL", None)
os.environ.pop("WANDB_ENTITY", None)

# Copies of ../shared/seed: the original tool's example configs and configs real researchers wrote.
# Every one must load unchanged.
SEED_CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "seed_configs")

# wandb-core reads these once, when it starts (one per test process). One inner retry one second
# apart, as the exporter sets them itself, so the exporter's own retry policy is what tests exercise.
os.environ.setdefault("WANDB__GRAPHQL_RETRY_MAX", "1")
os.environ.setdefault("WANDB__GRAPHQL_RETRY_WAIT_MIN_SECONDS", "1")
os.environ.setdefault("WANDB__GRAPHQL_RETRY_WAIT_MAX_SECONDS", "1")
os.environ.setdefault("WANDB__GRAPHQL_TIMEOUT_SECONDS", "20")

pytest_plugins = ["wandb2numpy.testing.pytest_plugin"]

import contextlib  # noqa: E402  (after the environment above: these import wandb)
import functools  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from wandb2numpy.models import RunInfo  # noqa: E402
from wandb2numpy.testing import FAST_RETRIES, LocalServer  # noqa: E402

# Retry waits shortened through the policy's own parameters (tests override with their own FAST).
FAST = FAST_RETRIES


@pytest.fixture(autouse=True)
def _package_logger_restored() -> Iterator[None]:
    """The CLI, called in-process, points the package logger at stderr and stops it
    propagating; put it back, so a later test's `caplog` still hears it (tests passed or failed
    by module order otherwise)."""
    logger = logging.getLogger("wandb2numpy")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    """One local server per test module, holding the module's `project_data()` (a dict in the
    fixture shape, or the path of a JSON file)."""
    srv = LocalServer(request.module.project_data()).start()
    yield srv
    srv.stop()


@pytest.fixture
def srv(server: LocalServer, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> LocalServer:
    """The module's server with faults and stats cleared (and its data reloaded where the module
    changes it). In modules that set `DRIVES_CLI = True`, the CLI is pointed at it: the API key in
    the environment, and the module's short retry policy handed to `export` as an argument, since
    the CLI has no retry option."""
    module = request.module
    if getattr(module, "RELOAD_DATA", False):
        server.load(module.project_data())
    server.reset_faults()
    server.reset_stats()
    if getattr(module, "DRIVES_CLI", False):
        monkeypatch.setenv("WANDB_API_KEY", server.api_key)
        export_module = importlib.import_module("wandb2numpy.pipeline")  # the package loads it lazily
        policy = getattr(module, "FAST", FAST)
        monkeypatch.setattr(export_module, "export", functools.partial(export_module.export, policy=policy))
    return server


# ------------------------------------------------------------------------------------ helpers
# Plain functions several test modules use (`from conftest import ...`), kept in one place.


def files_under(root: Path) -> dict[str, bytes]:
    """Every file under `root` (relative path -> bytes), the output lock aside."""
    from wandb2numpy.output.lock import LOCK_NAME

    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != LOCK_NAME
    }


def cli(srv: LocalServer, *args: str) -> int:
    """The command line against `srv` (the `srv` fixture of a DRIVES_CLI module sets the key)."""
    from wandb2numpy.cli import main

    return main([*args, "--base-url", srv.base_url])


def write_cli_config(tmp_path: Path, out: Path | None = None, **overrides: Any) -> Path:
    """Two experiments of the synthetic project: ``curves`` (numpy; `overrides` go here) and
    ``losses`` (csv)."""
    exp: dict[str, Any] = {"fields": ["train/return", "train/loss"], **overrides}
    data = {
        "DEFAULT": {"entity": "demo", "project": "synthetic", "output_path": str(out or tmp_path / "out")},
        "curves": exp,
        "losses": {"fields": ["train/loss"], "output_data_type": "csv"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(data, indent=1))
    return path


def make_run(run_id: str, **kw: Any) -> RunInfo:
    """A listed run for unit tests of assembly and formats."""
    kw.setdefault("name", f"name-{run_id}")
    return RunInfo(entity="e", project="p", id=run_id, **kw)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shape and dtype, NaN in the same places, every other value bit for bit."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    return bool((nan_a == nan_b).all()) and a[~nan_a].view(np.uint64).tolist() == b[~nan_b].view(np.uint64).tolist()


# ------------------------------------------------------------------------------------ markers

SERVER_FIXTURES = frozenset({"server", "srv", "wandb_server", "wandb_server_reset", "wandb_api"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that takes a server fixture is a `server` test by that declaration; one that starts
    a server itself says so with `@pytest.mark.server` (or its module's `pytestmark`), which
    `_servers_are_declared` enforces. So `pytest -m "not server"` runs the unit tests alone."""
    for item in items:
        if set(getattr(item, "fixturenames", ())) & SERVER_FIXTURES:
            item.add_marker(pytest.mark.server)


@pytest.fixture(autouse=True)
def _servers_are_declared(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test not marked `server` that starts a local server fails, naming the missing mark."""
    if request.node.get_closest_marker("server") is not None:
        return

    def undeclared(self: LocalServer, *args: Any, **kwargs: Any) -> LocalServer:
        raise AssertionError(f"{request.node.nodeid} starts a local server: mark it @pytest.mark.server")

    monkeypatch.setattr(LocalServer, "start", undeclared)


@contextlib.contextmanager
def server_process(*args: str) -> Iterator[str]:
    """`python -m wandb2numpy.testing.server ARGS` in its own process (so a signal to an export under
    test never reaches it); yields its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "wandb2numpy.testing.server", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def outage(srv: LocalServer, down_at: float, up_at: float) -> Iterator[list[str]]:
    """Stop `srv` `down_at` seconds from now and start it again at `up_at`; yields the events
    ("stopped", "started") as they happen. On leaving, the timers are cancelled and the server
    stopped."""
    import threading

    events: list[str] = []

    def stop() -> None:
        srv.stop()
        events.append("stopped")

    def restart() -> None:
        srv.start()
        events.append("started")

    timers = [threading.Timer(down_at, stop), threading.Timer(up_at, restart)]
    try:
        for timer in timers:
            timer.start()
        yield events
        for timer in timers:
            timer.join()
    finally:
        for timer in timers:
            timer.cancel()
        srv.stop()
