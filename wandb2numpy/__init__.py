"""Export Weights & Biases run histories to NumPy, CSV, npz and Parquet: fast, exact and unattended.

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
from .output.load import Experiment, load
from .runner import DEFAULT_CONCURRENCY, RetryPolicy
from .wandb.client import ClientSettings

if TYPE_CHECKING:
    from .compat import export_data
    from .pipeline import export, export_async, plan_export
    from .plan import ExperimentPlan
    from .result import ExportResult

# loaded on first use (the pipeline imports wandb): name -> module
_LAZY = {
    "ExportResult": "result",
    "export": "pipeline",
    "export_async": "pipeline",
    "export_data": "compat",
    "plan_export": "pipeline",
}

__all__ = [
    "AuthError",
    "ClientSettings",
    "ConfigError",
    "DEFAULT_CONCURRENCY",
    "Experiment",
    "ExperimentConfig",
    "ExperimentPlan",
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
    "load",
    "load_config",
    "parse_config",
    "plan_export",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    if name == "ExperimentPlan":
        from .plan import ExperimentPlan

        return ExperimentPlan
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
