"""The original tool's algorithm, in our own words, as the benchmark's yardstick.

Runs are listed lazily (`api.runs(path, filters)` with its defaults) and handled one at a time on
one `wandb.Api`. Per run: one `run.history(keys=fields, samples=N, pandas=False)` in sampled mode,
or `run.scan_history()` (no keys, default page size) in full mode; then one array per field.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def field_names(metrics: int) -> list[str]:
    from wandb2numpy.testing.synthetic import metric_names

    return metric_names(metrics)


def _num(v: Any) -> float:
    return _SPECIAL[v] if isinstance(v, str) else float(v)


def export(
    base_url: str, api_key: str, entity: str, project: str, fields: list[str], samples: int | None
) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """{field: {run_id: (steps, values)}} for every run holding the field."""
    import wandb

    api = wandb.Api(api_key=api_key, overrides={"base_url": base_url, "entity": entity})
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {f: {} for f in fields}
    for run in api.runs(f"{entity}/{project}", filters={}):
        if samples is not None:
            rows = run.history(keys=fields, samples=samples, pandas=False)
        else:
            rows = run.scan_history()
        cols: dict[str, tuple[list[float], list[float]]] = {f: ([], []) for f in fields}
        for row in rows:
            for f in fields:
                v = row.get(f)
                if v is not None:
                    cols[f][0].append(float(row["_step"]))
                    cols[f][1].append(_num(v))
        for f, (steps, values) in cols.items():
            if values:
                out[f][run.id] = (np.array(steps), np.array(values, dtype=np.float64))
    return out
