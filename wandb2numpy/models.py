"""Plain data passed between the pipeline stages (listing -> plan -> sources -> assemble -> output).

Kept free of wandb and numpy imports so every stage can depend on it without dragging the
others in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True, slots=True)
class KeyInfo:
    """What the server's `historyKeys` says about one history key of one run."""

    types: tuple[str, ...]  # e.g. ("number",), ("string",), ("histogram",)
    count: int  # rows holding this key

    @property
    def numeric(self) -> bool:
        # Bools arrive as "boolean"; NaN/inf arrive as numbers. Anything else is media or text.
        return bool(self.types) and all(t in ("number", "boolean", "nan") for t in self.types)


@dataclass(frozen=True, kw_only=True, slots=True)
class RunInfo:
    """One listed run: the metadata that names an array row, plus what planning the fetch needs."""

    entity: str
    project: str
    id: str  # the run id (wandb's `name`), unique in a project
    name: str  # display name, what the config's `runs` matches
    group: str | None = None
    job_type: str | None = None
    state: str = "finished"
    tags: tuple[str, ...] = ()
    created_at: str | None = None
    heartbeat_at: str | None = None
    history_line_count: int = 0
    last_step: int = -1  # -1: no history
    history_keys: Mapping[str, KeyInfo] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    summary: Mapping[str, Any] = field(default_factory=dict)
    url: str | None = None  # the run's page in the W&B app, for the run table

    @property
    def path(self) -> str:
        return f"{self.entity}/{self.project}/{self.id}"


def type_name(value: Any) -> str:
    """The `historyKeys` type the service reports for one logged value: what a reader of logged
    values (the run-folder source) and the local server call a key's type, so both agree."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        t = value.get("_type")
        return str(t) if t else "map"
    if isinstance(value, (list, tuple)):
        return "list"
    return "unknown"
