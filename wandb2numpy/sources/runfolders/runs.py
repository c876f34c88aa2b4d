"""Runs from decoded run files: the files of one run (a run resumed, offline, writes a new folder
with the same run id) merged in order, and described as the W&B service lists a run."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from ...models import KeyInfo, RunInfo
from .decode import KeyRows, ParsedFile, last_wins

__all__ = ["LIVE_SECONDS", "Run", "build_runs", "filter_doc"]

# A run without an exit record whose file changed this recently is taken as still running (the
# W&B service calls a run crashed once its heartbeats stop for some minutes).
LIVE_SECONDS = 300.0
# Config keys wandb keeps for itself; the public API moves them aside too.
_INTERNAL_CONFIG = ("_wandb", "wandb_version")


@dataclass
class Run:
    """One run: its listing entry, its history keys' rows, and what to warn about."""

    info: RunInfo
    keys: dict[str, KeyRows]
    files: list[ParsedFile]
    started: float  # for ordering: creation time to the nanosecond
    warnings: list[str]


def _iso(seconds: float) -> str:
    """Creation and heartbeat times as the service writes them (UTC, to the second)."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _wire(value: Any) -> Any:
    """Config and summary values as the service sends them: non-finite floats as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {str(k): _wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return value


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        old = out.get(k)
        out[k] = _deep_merge(old, v) if isinstance(old, dict) and isinstance(v, Mapping) else v
    return out


def _merge_keys(files: Sequence[ParsedFile]) -> dict[str, KeyRows]:
    """Every key's rows over the run's files, in file order, the later row of a step winning.
    Files remembered from an earlier listing hold counts only: their rows are added up."""
    if len(files) == 1:
        return dict(files[0].keys)
    names = list(dict.fromkeys(n for f in files for n in f.keys))
    out: dict[str, KeyRows] = {}
    for name in names:
        pieces = [f.keys[name] for f in files if name in f.keys]
        types: dict[str, int] = {}
        for p in pieces:
            for t, n in p.types.items():
                types[t] = types.get(t, 0) + n
        example = next((p.example for p in pieces if p.example is not None), None)
        if any(p.steps is None for p in pieces):
            lasts = [p.last for p in pieces if p.last is not None]
            out[name] = KeyRows(None, None, types, example, sum(p.count for p in pieces), max(lasts, default=None))
            continue
        steps = np.concatenate([p.steps for p in pieces if p.steps is not None])
        values = None
        if example is None and all(p.values is not None for p in pieces):
            values = np.concatenate([p.values for p in pieces if p.values is not None])
        s, v = last_wins(steps, values)
        out[name] = KeyRows.of(s, v, types, example)
    return out


def _state(last: ParsedFile, now: float) -> str:
    code = last.meta.exit_code
    if code is not None:
        return "finished" if code == 0 else "failed"
    return "running" if now - last.mtime < LIVE_SECONDS else "crashed"


def _describe_end(files: Sequence[ParsedFile], state: str) -> list[str]:
    """What to tell about a run that has not finished or whose files are damaged."""
    out = []
    for f in files:
        if f.damage.damaged:
            out.append(f"{f.path}: {f.damage.describe()}")
    last = files[-1]
    if last.meta.exit_code is None:
        cut = (
            f"; its last {last.damage.truncated_bytes} bytes are an unfinished record"
            if last.damage.truncated_bytes
            else ""
        )
        why = "is still being written" if state == "running" else "ended without an exit record (a killed job?)"
        out.append(f"{last.path} {why}: read up to its last whole record{cut}; state {state}")
    return out


def build_runs(files: Sequence[ParsedFile], *, now: float) -> list[Run]:
    """Runs from their files (grouped by project and run id), ordered as the service lists them:
    by creation time, then run id. Files without a run record (a writer that had not got that
    far) are left out: nothing names their run."""
    groups: dict[tuple[str, str], list[ParsedFile]] = {}
    for f in files:
        if f.meta.run_id:
            groups.setdefault((f.meta.project, f.meta.run_id), []).append(f)
    runs = [_build(sorted(g, key=lambda f: (f.meta.start_time or f.mtime, f.path)), now) for g in groups.values()]
    runs.sort(key=lambda r: (r.started, r.info.id))
    return runs


def _build(files: list[ParsedFile], now: float) -> Run:
    metas = [f.meta for f in files]
    last = metas[-1]

    def latest(attr: str) -> Any:
        for m in reversed(metas):
            value = getattr(m, attr)
            if value:
                return value
        return getattr(last, attr)

    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    for f in files:
        config = _deep_merge(config, f.meta.config)
        summary = _deep_merge(summary, f.summary)
    keys = _merge_keys(files)
    step = keys.get("_step")
    started = next((m.start_time for m in metas if m.start_time is not None), min(f.mtime for f in files))
    state = _state(files[-1], now)
    info = RunInfo(
        entity=latest("entity"),
        project=latest("project"),
        id=last.run_id,
        name=latest("display_name") or last.run_id,
        group=latest("group") or None,
        job_type=latest("job_type") or None,
        state=state,
        tags=tuple(latest("tags")),
        created_at=_iso(started),
        heartbeat_at=_iso(max(f.mtime for f in files)),
        history_line_count=step.count if step is not None else 0,
        last_step=int(step.last) if step is not None and step.last is not None else -1,
        history_keys={
            name: KeyInfo(types=tuple(sorted(k.types)) or ("number",), count=k.count) for name, k in keys.items()
        },
        config={k: _wire(v) for k, v in config.items() if k not in _INTERNAL_CONFIG},
        summary=_wire(summary),
        url=None,
    )
    return Run(info, keys, files, started, _describe_end(files, state))


def filter_doc(info: RunInfo) -> dict[str, Any]:
    """The run as the service's filters see it (the shape the local server evaluates)."""
    return {
        "name": info.id,
        "id": info.id,
        "display_name": info.name,
        "state": info.state,
        "group": info.group,
        "job_type": info.job_type,
        "tags": list(info.tags),
        "created_at": info.created_at,
        "heartbeat_at": info.heartbeat_at,
        "config": dict(info.config),
        "summary_metrics": dict(info.summary),
    }
