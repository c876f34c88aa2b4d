"""The environment every benchmark process runs in: wandb's folders in a throw-away place, no
netrc, no telemetry, no credentials or server from the caller's environment (house rule 8)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["sandbox_env"]

WANDB_DIRS = (
    ("WANDB_DIR", "wandb"),
    ("WANDB_CACHE_DIR", "cache"),
    ("WANDB_CONFIG_DIR", "config"),
    ("WANDB_DATA_DIR", "data"),
    ("WANDB_ARTIFACT_DIR", "artifacts"),
)


def sandbox_env(root: Path, base: Mapping[str, str] | None = None, api_key: str | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) with wandb's folders under `root` (made
    here), and the API key `api_key` or none."""
    env = dict(os.environ if base is None else base)
    for var, sub in WANDB_DIRS:
        (root / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(root / sub)
    env.update(NETRC=str(root / "netrc"), WANDB_ERROR_REPORTING="false", WANDB_SILENT="true")
    for var in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_ENTITY", "WANDB_PROJECT"):
        env.pop(var, None)
    if api_key is not None:
        env["WANDB_API_KEY"] = api_key
    return env
