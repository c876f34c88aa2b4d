"""Turn an experiment's selection into the one Mongo-style filter sent with `api.runs(...)`.

Filtering on the server means one listing request per experiment instead of fetching every run
of a project and sorting them out locally. The filter is kept canonical (no empty `$and`, no
one-element `$or`) so logs stay readable and tests can compare dicts literally.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import ExperimentConfig, Selection, ValueFilter

__all__ = ["build_filters", "describe_filters"]

Filter = dict[str, Any]


def _all_of(clauses: Sequence[Filter]) -> Filter:
    if not clauses:
        return {}
    if len(clauses) == 1:
        return clauses[0]
    return {"$and": list(clauses)}


def _selection_clauses(sel: Selection) -> list[Filter]:
    clauses: list[Filter] = []
    if sel.group is not None:
        clauses.append({"group": sel.group})
    for key, names in (("jobType", sel.job_types), ("display_name", sel.runs), ("tags", sel.tags)):
        if names is not None:
            # For `tags` (a list on the run) `$in` means "has any of these".
            clauses.append({key: {"$in": list(names)}})
    return clauses


def _value_clause(key: str, vf: ValueFilter) -> Filter:
    ops: dict[str, Any] = {}
    if vf.values is not None:
        ops["$in"] = list(vf.values)
    if vf.min is not None:
        ops["$gte"] = vf.min
    if vf.max is not None:
        ops["$lte"] = vf.max
    return {key: ops}


def build_filters(exp: ExperimentConfig) -> dict[str, Any]:
    """The run filter for one experiment: (selection OR selection ...) AND config AND summary.

    Unlike the original tool, `job_types`, `runs` and `tags` also apply without `groups`, and
    every selection branch keeps its own job types, runs and tags.
    """
    branches = [_selection_clauses(sel) for sel in exp.selections]
    clauses: list[Filter] = []
    if len(branches) == 1:
        clauses.extend(branches[0])  # flattened into the top-level $and
    elif branches and all(branches):  # an unconstrained branch would make the whole $or true
        clauses.append({"$or": [_all_of(b) for b in branches]})
    clauses += [_value_clause(f"config.{k}", vf) for k, vf in exp.config_filters.items()]
    clauses += [_value_clause(f"summary_metrics.{k}", vf) for k, vf in exp.summary_filters.items()]
    return _all_of(clauses)


# --------------------------------------------------------------------------- for logs


def _names(items: Sequence[Any], limit: int = 3) -> str:
    shown = ", ".join(str(x) for x in items[:limit])
    more = f", ... (+{len(items) - limit})" if len(items) > limit else ""
    return f"[{shown}{more}]"


def _describe_selection(sel: Selection) -> str:
    parts = []
    if sel.group is not None:
        parts.append(f"group={sel.group}")
    if sel.job_types is not None:
        parts.append(f"job_type in {_names(sel.job_types)}")
    if sel.runs is not None:
        parts.append(f"run in {_names(sel.runs)}")
    if sel.tags is not None:
        parts.append(f"tags any of {_names(sel.tags)}")
    return " and ".join(parts)


def _describe_values(prefix: str, filters: Mapping[str, ValueFilter]) -> list[str]:
    out = []
    for key, vf in filters.items():
        name = f"{prefix}.{key}"
        if vf.values is not None:
            out.append(f"{name} in {_names(vf.values)}")
        if vf.min is not None and vf.max is not None:
            out.append(f"{vf.min} <= {name} <= {vf.max}")
        elif vf.min is not None:
            out.append(f"{name} >= {vf.min}")
        elif vf.max is not None:
            out.append(f"{name} <= {vf.max}")
    return out


def describe_filters(exp: ExperimentConfig) -> str:
    """A one-line, human version of `build_filters(exp)` for log messages."""
    branches = [_describe_selection(s) for s in exp.selections]
    parts: list[str] = []
    if len(branches) == 1 and branches[0]:
        parts.append(branches[0])
    elif len(branches) > 1 and all(branches):
        parts.append(" or ".join(f"({b})" if " and " in b else b for b in branches))
    parts += _describe_values("config", exp.config_filters)
    parts += _describe_values("summary", exp.summary_filters)
    return "; ".join(parts) if parts else "all runs"
