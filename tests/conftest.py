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
