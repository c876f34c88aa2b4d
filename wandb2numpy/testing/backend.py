"""The in-memory W&B backend: entities, projects, runs and their histories.

Knows nothing about GraphQL or HTTP (the protocol layer shapes responses from it). Run metadata
that every listing needs is serialised once, when a run is loaded, so a `Runs` page costs a
string join rather than a JSON encode of every config.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any

from ..config.match import matches, parse_date, sort_docs
from .history import History, to_wire


@dataclass(slots=True)
class RunRecord:
    entity: str
    project: str
    id: str  # wandb's `name`: the run id
    display_name: str
    state: str = "finished"
    group: str | None = None
    job_type: str | None = None
    tags: tuple[str, ...] = ()
    created_at: str = "2024-01-01T00:00:00Z"
    heartbeat_at: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history: History = field(default_factory=History.empty)
    project_id: int = 1
    doc: dict[str, Any] = field(default_factory=dict)  # what filters and ordering see
    light_json: str = ""  # the LightweightRunFragment node, pre-encoded
    full_json: str = ""  # the RunFragment node, pre-encoded

    @property
    def storage_id(self) -> str:
        return base64.b64encode(f"Run:v1:{self.id}:{self.project}:{self.entity}".encode()).decode()

    def finalize(self) -> None:
        """Precomputes the filter document and the encoded GraphQL nodes."""
        self.doc = {
            "name": self.id,
            "id": self.id,
            "display_name": self.display_name,
            "state": self.state,
            "group": self.group,
            "job_type": self.job_type,
            "tags": list(self.tags),
            "created_at": self.created_at,
            "heartbeat_at": self.heartbeat_at,
            "config": self.config,
            "summary_metrics": self.summary,
        }
        light = {
            "projectId": self.project_id,
            "id": self.storage_id,
            "tags": list(self.tags),
            "name": self.id,
            "displayName": self.display_name,
            "sweepName": None,
            "state": self.state,
            "group": self.group,
            "jobType": self.job_type,
            "commit": None,
            "readOnly": False,
            "createdAt": self.created_at,
            "heartbeatAt": self.heartbeat_at,
            "description": None,
            "notes": None,
            "historyLineCount": len(self.history),
            "user": {"name": self.entity, "username": self.entity},
        }
        full = dict(light)
        full["config"] = json.dumps({k: {"value": v, "desc": None} for k, v in self.config.items()})
        full["summaryMetrics"] = json.dumps(self.summary)
        full["systemMetrics"] = "{}"
        full["historyKeys"] = self.history.history_keys()
        self.light_json = json.dumps(light)
        self.full_json = json.dumps(full)


@dataclass(slots=True)
class ProjectRecord:
    entity: str
    name: str
    internal_id: int
    runs: dict[str, RunRecord] = field(default_factory=dict)

    def query(self, filters: Mapping[str, Any] | None, order: str | None) -> list[RunRecord]:
        """Runs matching `filters` in `order`; raises FilterError on filters the service rejects."""
        docs = [r.doc for r in self.runs.values() if matches(r.doc, filters)]
        return [self.runs[d["name"]] for d in sort_docs(docs, order)]


def _epoch(created_at: str) -> float:
    dt = parse_date(created_at)
    if dt is None:
        return 1704067200.0
    return dt.replace(tzinfo=timezone.utc).timestamp()


def run_from_json(entity: str, project: str, spec: Mapping[str, Any], project_id: int) -> RunRecord:
    """One run from the JSON fixture shape; `history` may be row dicts or a ready `History`."""
    run_id = str(spec["id"])
    created = str(spec.get("created_at") or spec.get("createdAt") or "2024-01-01T00:00:00Z")
    hist_in = spec.get("history") or []
    history = hist_in if isinstance(hist_in, History) else History.from_rows(hist_in, start_time=_epoch(created))
    summary = spec.get("summary")
    summary = to_wire(dict(summary)) if summary is not None else history.last_values()
    rec = RunRecord(
        entity=entity,
        project=project,
        id=run_id,
        display_name=str(spec.get("name") or spec.get("display_name") or run_id),
        state=str(spec.get("state", "finished")),
        group=spec.get("group"),
        job_type=spec.get("job_type", spec.get("jobType")),
        tags=tuple(spec.get("tags") or ()),
        created_at=created,
        heartbeat_at=spec.get("heartbeat_at") or spec.get("heartbeatAt") or created,
        config=to_wire(dict(spec.get("config") or {})),
        summary=summary,
        history=history,
        project_id=project_id,
    )
    rec.finalize()
    return rec


class Backend:
    """All loaded projects, safe to read from many request threads while a test reloads data."""

    def __init__(self, *, default_entity: str = "demo") -> None:
        self.default_entity = default_entity
        self._projects: dict[tuple[str, str], ProjectRecord] = {}
        self._lock = threading.Lock()
        self._next_id = 1

    def load(self, data: Mapping[str, Any]) -> list[ProjectRecord]:
        """Adds or replaces the projects in a JSON-shaped dict; returns them."""
        loaded: list[ProjectRecord] = []
        for p in data.get("projects", []):
            entity = str(p.get("entity") or self.default_entity)
            name = str(p["name"])
            with self._lock:
                old = self._projects.get((entity, name))
                pid = old.internal_id if old else self._next_id
                self._next_id += 0 if old else 1
            proj = ProjectRecord(entity, name, pid)
            for spec in p.get("runs", []):
                rec = run_from_json(entity, name, spec, pid)
                proj.runs[rec.id] = rec
            loaded.append(proj)
        with self._lock:  # swap whole projects so readers never see a half-loaded one
            for proj in loaded:
                self._projects[(proj.entity, proj.name)] = proj
        return loaded

    def clear(self) -> None:
        with self._lock:
            self._projects.clear()

    def project(self, entity: str | None, name: str | None) -> ProjectRecord | None:
        return self._projects.get((entity or self.default_entity, name or ""))

    def run(self, entity: str | None, project: str | None, run_id: str | None) -> RunRecord | None:
        proj = self.project(entity, project)
        return proj.runs.get(run_id or "") if proj else None

    def projects(self) -> list[ProjectRecord]:
        return list(self._projects.values())

    def runs(self) -> Iterable[RunRecord]:
        for proj in self.projects():
            yield from proj.runs.values()
