"""Columnar run history: one array per key plus a presence mask, indexed by row.

Rows are kept sorted by `_step` so a step range is two binary searches and a page costs time in
proportion to the rows it returns, however long the run is. Values are stored the way the real
service sends them: non-finite floats become "NaN"/"Infinity"/"-Infinity" on the wire, because
wandb-core parses responses with a strict JSON parser that rejects bare NaN tokens.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..models import type_name

NONFINITE_STRINGS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
RESERVED_KEYS = ("_step", "_runtime", "_timestamp")


def wire_float(value: float) -> float | str:
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def to_wire(value: Any) -> Any:
    """Makes a nested value strict-JSON safe, as the service does for NaN and infinities."""
    if isinstance(value, float):
        return wire_float(value)
    if isinstance(value, Mapping):
        return {str(k): to_wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    if isinstance(value, np.generic):
        return to_wire(value.item())
    return value


@dataclass(slots=True)
class Column:
    """One history key. `values` is an int64/float64 array for numeric keys, else a list."""

    kind: str  # "int" | "float" | "object"
    values: Any
    present: np.ndarray
    type_counts: dict[str, int]

    def wire_values(self, idx: np.ndarray) -> list[Any]:
        if self.kind == "object":
            vals = self.values
            return [vals[i] for i in idx.tolist()]
        sel = self.values[idx]
        if self.kind == "float" and not np.isfinite(sel).all():
            return [wire_float(v) for v in sel.tolist()]
        out: list[Any] = sel.tolist()
        return out

    def last_value(self) -> Any:
        where = np.flatnonzero(self.present)
        if not len(where):
            return None
        return self.wire_values(where[-1:])[0]


def numeric_column(values: np.ndarray, present: np.ndarray | None = None) -> Column:
    """A column from an array; `present=None` means logged on every row."""
    if present is None:
        present = np.ones(len(values), dtype=bool)
    kind = "int" if np.issubdtype(values.dtype, np.integer) else "float"
    arr = values.astype(np.int64 if kind == "int" else np.float64, copy=False)
    return Column(kind, arr, present, {"number": int(present.sum())})


def _build_column(raw: list[Any], present: np.ndarray) -> Column:
    counts: dict[str, int] = {}
    all_int = all_num = True
    for v, p in zip(raw, present.tolist()):
        if not p:
            continue
        t = type_name(v)
        counts[t] = counts.get(t, 0) + 1
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            all_int = all_num = False
        elif isinstance(v, float):
            all_int = False
    if all_num and all_int:
        return Column("int", np.array([v if p else 0 for v, p in zip(raw, present)], np.int64), present, counts)
    if all_num:
        arr = np.array([float(v) if p else 0.0 for v, p in zip(raw, present)], np.float64)
        return Column("float", arr, present, counts)
    return Column("object", [to_wire(v) for v in raw], present, counts)


class History:
    """A run's history, sorted by step; one row per distinct `_step`."""

    def __init__(self, steps: np.ndarray, columns: dict[str, Column]) -> None:
        self.steps = steps.astype(np.int64, copy=False)
        if len(self.steps):
            columns.setdefault("_step", numeric_column(self.steps))
        self.columns = columns
        self.encoded_cache: dict[tuple[str, ...], str] = {}  # JSON of whole-run queries (liveData)

    def __len__(self) -> int:
        return len(self.steps)

    @classmethod
    def empty(cls) -> History:
        return cls(np.zeros(0, np.int64), {})

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]], *, start_time: float = 0.0) -> History:
        """Builds columns from JSON-style rows; later rows for a step overwrite earlier ones."""
        merged: dict[int, dict[str, Any]] = {}
        next_step = 0
        for row in rows:
            step = row.get("_step")
            step = next_step if step is None else int(step)
            next_step = step + 1
            target = merged.setdefault(step, {})
            for k, v in row.items():
                if v is None:
                    continue  # a logged null is the same as not logging the key
                if isinstance(v, str) and v in NONFINITE_STRINGS:
                    v = NONFINITE_STRINGS[v]
                target[str(k)] = v
        steps = sorted(merged)
        keys: dict[str, None] = {}
        for s in steps:
            keys.update(dict.fromkeys(merged[s]))
        for s in steps:  # fill the bookkeeping keys the service always has
            r = merged[s]
            r["_step"] = s
            r.setdefault("_runtime", float(s))
            r.setdefault("_timestamp", start_time + float(r["_runtime"]))
        keys = {"_step": None, "_runtime": None, "_timestamp": None, **keys} if steps else keys
        columns: dict[str, Column] = {}
        for k in keys:
            raw = [merged[s].get(k) for s in steps]
            present = np.array([k in merged[s] for s in steps], dtype=bool)
            columns[k] = _build_column(raw, present)
        return cls(np.array(steps, dtype=np.int64), columns)

    # ---- queries -------------------------------------------------------------------------

    @property
    def last_step(self) -> int:
        return int(self.steps[-1]) if len(self.steps) else -1

    def history_keys(self) -> dict[str, Any]:
        keys = {
            k: {"typeCounts": [{"type": t, "count": n} for t, n in c.type_counts.items()]}
            for k, c in self.columns.items()
        }
        return {"keys": keys, "lastStep": self.last_step}

    def last_values(self) -> dict[str, Any]:
        return {k: c.last_value() for k, c in self.columns.items() if c.present.any()}

    def step_slice(self, min_step: int | None, max_step_excl: int | None) -> tuple[int, int]:
        lo = 0 if min_step is None else int(np.searchsorted(self.steps, min_step, "left"))
        hi = len(self.steps) if max_step_excl is None else int(np.searchsorted(self.steps, max_step_excl, "left"))
        return lo, max(lo, hi)

    def rows_with_all(self, keys: Sequence[str], lo: int, hi: int) -> np.ndarray:
        """Row indices in [lo, hi) holding every key: the service's rule for keyed queries."""
        mask = np.ones(hi - lo, dtype=bool)
        for k in keys:
            col = self.columns.get(k)
            if col is None:
                return np.zeros(0, np.int64)
            mask &= col.present[lo:hi]
        return np.flatnonzero(mask) + lo

    def rows(self, idx: np.ndarray, keys: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Row dicts for the given indices, holding the requested keys that each row has."""
        out: list[dict[str, Any]] = [{} for _ in range(len(idx))]
        names = list(self.columns) if keys is None else list(dict.fromkeys(keys))
        for k in names:
            col = self.columns.get(k)
            if col is None:
                continue
            vals = col.wire_values(idx)
            pres = col.present[idx]
            if pres.all():
                for d, v in zip(out, vals):
                    d[k] = v
            else:
                for d, v, p in zip(out, vals, pres.tolist()):
                    if p:
                        d[k] = v
        return out


def sample_indices(idx: np.ndarray, samples: int) -> np.ndarray:
    """Evenly spread, deterministic subset including first and last; all rows if few enough."""
    n = len(idx)
    if samples <= 0:
        return idx[:0]
    if n <= samples:
        return idx
    if samples == 1:
        return idx[:1]
    pick = np.rint(np.linspace(0, n - 1, samples)).astype(np.int64)
    return idx[pick]
