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

import functools  # noqa: E402  (after the environment above: these import wandb)
import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

from wandb2numpy import RetryPolicy  # noqa: E402
from wandb2numpy.testing import LocalServer  # noqa: E402

# Retry waits shortened through the policy's own parameters (tests override with their own FAST).
FAST = RetryPolicy(attempts=6, initial_wait=0.05, max_wait=0.3, rate_limit_pause=0.2)


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
        export_module = sys.modules["wandb2numpy.pipeline"]
        policy = getattr(module, "FAST", FAST)
        monkeypatch.setattr(export_module, "export", functools.partial(export_module.export, policy=policy))
    return server
