"""The environment every benchmark process runs in: wandb's folders in a throw-away place, no
netrc, no telemetry, no credentials or server from the caller's environment (house rule 8), and
our package byte-compiled, as `pip install` leaves it."""

from __future__ import annotations

import compileall
import importlib.util
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


def compile_package() -> None:
    """Byte-compile wandb2numpy where it is imported from, as pip does when it installs a wheel.

    An editable checkout run with PYTHONDONTWRITEBYTECODE=1 (set on these machines) keeps no
    `.pyc`, so every measured process compiled our ~90 modules from source again: 0.17 s more
    start-up for ours than pip's users pay, and none for the peers, whose wandb was compiled at
    install. Up to date files are only checked, so calling this per process costs milliseconds.
    """
    spec = importlib.util.find_spec("wandb2numpy")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        compileall.compile_dir(folder, quiet=1)


def sandbox_env(root: Path, base: Mapping[str, str] | None = None, api_key: str | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) with wandb's folders under `root` (made
    here), and the API key `api_key` or none."""
    compile_package()
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
