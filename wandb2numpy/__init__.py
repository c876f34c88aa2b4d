"""Export Weights & Biases run histories to NumPy arrays and CSV: fast, exact and unattended.

The export entry points come from `pipeline`, which imports wandb (most of a second); they are
loaded on first use, so commands that never talk to a server (`wandb2numpy plot`) start quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "1.0.0.dev0"

from . import _early  # noqa: F401, I001 - first: in the command's own process, Ctrl-C while the imports below load exits cleanly

from .assemble import ExperimentResult, FieldArrays
from .config import ExperimentConfig, load_config, parse_config
from .errors import (
    AuthError,
    ConfigError,
    FetchError,
    ForeignFilesError,
    OutputError,
    OutputExistsError,
    Wandb2NumpyError,
)
from .runner import DEFAULT_CONCURRENCY, RetryPolicy
from .wandb.client import ClientSettings

if TYPE_CHECKING:
    from .pipeline import ExportResult, export, export_async, export_data

_FROM_PIPELINE = frozenset({"ExportResult", "export", "export_async", "export_data"})

__all__ = [
    "AuthError",
    "ClientSettings",
    "ConfigError",
    "DEFAULT_CONCURRENCY",
    "ExperimentConfig",
    "ExperimentResult",
    "ExportResult",
    "FetchError",
    "FieldArrays",
    "ForeignFilesError",
    "OutputError",
    "OutputExistsError",
    "RetryPolicy",
    "Wandb2NumpyError",
    "__version__",
    "export",
    "export_async",
    "export_data",
    "load_config",
    "parse_config",
]


def __getattr__(name: str) -> Any:
    if name in _FROM_PIPELINE:
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
