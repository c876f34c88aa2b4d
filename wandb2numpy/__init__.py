"""Export Weights & Biases run histories to NumPy arrays and CSV: fast, exact and unattended."""

from __future__ import annotations

__version__ = "1.0.0.dev0"

from .assemble import ExperimentResult, FieldArrays
from .client import ClientSettings
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
from .fetch import DEFAULT_CONCURRENCY, RetryPolicy
from .pipeline import ExportResult, export, export_async, export_data

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
