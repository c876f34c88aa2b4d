"""The original tool's Python entry point, kept so its users' scripts run unchanged."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .config import ConfigSource
from .pipeline import export


def export_data(
    config: ConfigSource,
    experiment_list: Sequence[str] | None = None,
    by_group_and_job_type: bool = False,
    **kwargs: Any,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The original tool's entry point: `(data, configs)` with one array per field per experiment.

    Nothing is written. `data[experiment][field]` is a (runs, steps) float64 array, with
    `by_group_and_job_type` nested as `data[experiment][group][job_type][field]`. `configs` are the
    merged per-experiment config dicts. For run ids, steps and the run table use `export`.
    """
    kwargs.setdefault("write", False)
    result = export(config, experiments=experiment_list, **kwargs)
    data: dict[str, Any] = {}
    for name, report in result.experiments.items():
        res = report.result
        if not by_group_and_job_type:
            data[name] = {f: arr.values for f, arr in res.fields.items()}
            continue
        nested: dict[str, dict[str, dict[str, np.ndarray]]] = {}
        rows_by_key: dict[tuple[Any, Any], list[int]] = {}
        for i, run in enumerate(res.runs):
            rows_by_key.setdefault((run.group, run.job_type), []).append(i)
        for (group, job_type), rows in rows_by_key.items():
            per_field = {}
            for f, arr in res.fields.items():
                steps = arr.steps[rows]
                width = int(np.max(np.sum(~np.isnan(steps), axis=1), initial=0))
                per_field[f] = arr.values[rows, :width]
            nested.setdefault(group, {})[job_type] = per_field
        data[name] = nested
    return data, [dict(c.raw) for c in result.configs]
