"""pytest fixtures for the local W&B server.

Activate with `pytest_plugins = ["wandb2numpy.testing.pytest_plugin"]` in a conftest.py. The
server is started once per session; `wandb_server_reset` hands tests the same server with its
stats and faults cleared, so tests stay independent without paying a start-up each.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .handle import LocalServer, local_server


@pytest.fixture(scope="session")
def wandb_server() -> Iterator[LocalServer]:
    """A started server holding the default synthetic project (demo/synthetic, 12 runs)."""
    with local_server() as server:
        yield server


@pytest.fixture
def wandb_server_reset(wandb_server: LocalServer) -> LocalServer:
    """The session server with stats, request log and faults cleared for this test."""
    wandb_server.reset_faults()
    wandb_server.reset_stats()
    return wandb_server


@pytest.fixture
def wandb_api(wandb_server_reset: LocalServer) -> Any:
    """A fresh `wandb.Api` bound to the session server (its own wandb-core API session)."""
    return make_api(wandb_server_reset)


def make_api(server: LocalServer, **overrides: Any) -> Any:
    """A `wandb.Api` for `server`; each call opens its own wandb-core API session."""
    import wandb

    return wandb.Api(
        api_key=overrides.pop("api_key", server.api_key),
        overrides={"base_url": server.base_url, "entity": server.entity, **overrides},
    )


@pytest.fixture
def wandb_api_factory() -> Any:
    """`factory(server, **overrides)` -> a fresh `wandb.Api` bound to that server."""
    return make_api
