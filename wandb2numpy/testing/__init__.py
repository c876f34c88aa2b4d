"""A W&B-compatible local server for tests, benchmarks and demos.

The unmodified `wandb` client talks to it over HTTP on 127.0.0.1, so everything between
`wandb.Api()` and the wire (wandb-core, its retries, its concurrency limit) is exercised for
real. Layout follows moto: `backend` (projects, runs, columnar history) <- `protocol` (GraphQL
operations) <- `httpserver` (threads, auth, faults, control routes) <- `server` (handle, CLI).
"""

from __future__ import annotations

from ..runner import RetryPolicy
from .faults import FaultSettings
from .handle import DEFAULT_API_KEY, DEFAULT_HOST, LocalServer, local_server
from .synthetic import synthetic_project

# Retry waits for tests and demos against this server, shortened through the policy's own
# parameters (never by patching internals). A suite that needs fewer attempts derives from it with
# `dataclasses.replace(FAST_RETRIES, attempts=3)`.
FAST_RETRIES = RetryPolicy(attempts=6, initial_wait=0.05, max_wait=0.3, rate_limit_pause=0.2)

__all__ = [
    "DEFAULT_API_KEY",
    "FAST_RETRIES",
    "DEFAULT_HOST",
    "FaultSettings",
    "LocalServer",
    "local_server",
    "synthetic_project",
]
