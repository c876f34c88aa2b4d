"""Export Weights & Biases run histories to NumPy, CSV, npz and Parquet: fast, exact and unattended.

The export entry points come from `pipeline`, which imports wandb (most of a second); they are
loaded on first use, so commands that never talk to a server (`wandb2numpy plot`) start quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "1.0.0.dev0"

from . import _early  # noqa: F401, I001 - first: in the command's own process, Ctrl-C while the imports below load exits cleanly

from .errors import (
    AuthError,
    ConfigError,
    FetchError,
    ForeignFilesError,
    OutputError,
    OutputExistsError,
    Wandb2NumpyError,
)

if TYPE_CHECKING:
    from .assemble import ExperimentResult, FieldArrays
    from .compat import export_data
    from .config import ExperimentConfig, load_config, parse_config
    from .output.load import Experiment, load
    from .pipeline import export, export_async, plan_export
    from .plan import ExperimentPlan
    from .result import ExportResult
    from .runner import DEFAULT_CONCURRENCY, RetryPolicy
    from .wandb.client import ClientSettings

# loaded on first use: name -> module. The pipeline imports wandb (most of a second), and the
# rest numpy, pydantic and the output formats, which the command line loads in its own order
# (its config check first, then wandb, then the export), so `import wandb2numpy.cli` loads none.
_LAZY = {
    "ClientSettings": "wandb.client",
    "DEFAULT_CONCURRENCY": "runner",
    "Experiment": "output.load",
    "ExperimentConfig": "config",
    "ExperimentPlan": "plan",
    "ExperimentResult": "assemble",
    "ExportResult": "result",
    "FieldArrays": "assemble",
    "RetryPolicy": "runner",
    "export": "pipeline",
    "export_async": "pipeline",
    "export_data": "compat",
    "load": "output.load",
    "load_config": "config",
    "parse_config": "config",
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
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
