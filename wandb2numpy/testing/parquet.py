"""The `--parquet` mode: finished runs' history served as exported parquet files.

`RunParquetHistory` then names one file per finished run (and no live rows), and the file route
answers whole GETs and the ranged reads of wandb-core's Rust reader (206 + `Content-Range`).
`lag_rows=N` models an export that lags the run: the file holds all but its last N rows, which
`RunParquetHistory` lists as live (a run with no more than N rows has no file yet).
The module imports pyarrow when loaded (a dependency of the package; the rest of the server does
not need it). Files are built on first request and cached until the data changes.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any
from urllib.parse import quote, unquote

from .backend import Backend, RunRecord
from .history import Column, History
from .protocol import Reply

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("the --parquet mode needs pyarrow: pip install pyarrow") from exc

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
ROW_GROUP_SIZE = 10_000


def _object_array(col: Column) -> pa.Array:
    present = col.present.tolist()
    vals = [v if p else None for v, p in zip(col.values, present)]
    kinds = {type(v) for v in vals if v is not None}
    if kinds <= {bool}:
        return pa.array(vals, pa.bool_())
    if kinds <= {str}:
        return pa.array(vals, pa.string())
    if kinds <= {dict}:
        try:
            return pa.array(vals)  # media dicts become a struct column, nulls where absent
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    return pa.array([None if v is None else json.dumps(v) for v in vals], pa.string())


def history_table(history: History, rows: int | None = None) -> pa.Table:
    """The first `rows` rows (all by default) as a table, a column per key, nulls where absent."""
    n = len(history) if rows is None else rows
    arrays, names = [], []
    for name, full in history.columns.items():
        col = Column(full.kind, full.values[:n], full.present[:n], full.type_counts)
        if col.kind == "object":
            arr = _object_array(col)
        else:
            arr = pa.array(col.values, mask=~col.present)
        arrays.append(arr)
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def history_parquet(history: History, rows: int | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(history_table(history, rows), sink, row_group_size=ROW_GROUP_SIZE)
    data: bytes = sink.getvalue().to_pybytes()
    return data


class ParquetExports:
    """Per-run exported files, keyed by (entity, project, run id)."""

    def __init__(self, backend: Backend, lag_rows: int = 0) -> None:
        if lag_rows < 0:
            raise ValueError(f"parquet_lag_rows must be >= 0, not {lag_rows}")
        self.backend = backend
        self.lag_rows = lag_rows
        self._cache: dict[tuple[str, str, str], tuple[bytes, int]] = {}
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    def exported_rows(self, run: RunRecord) -> int:
        """Rows in the run's file: only finished runs are exported; running and crashed ones
        stay live, and so do the last `lag_rows` rows of a finished one."""
        if run.state != "finished":
            return 0
        return max(0, len(run.history) - self.lag_rows)

    def exported(self, run: RunRecord) -> bool:
        return self.exported_rows(run) > 0

    def url_for(self, run: RunRecord, base_url: str) -> str | None:
        if not self.exported(run):
            return None
        parts = (quote(run.entity, safe=""), quote(run.project, safe=""), quote(run.id, safe=""))
        return f"{base_url}/files/parquet/{parts[0]}/{parts[1]}/{parts[2]}.parquet"

    def _file(self, entity: str, project: str, run_id: str) -> tuple[bytes, int] | None:
        key = (entity, project, run_id)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        run = self.backend.run(entity, project, run_id)
        if run is None or not self.exported(run):
            return None
        rows = self.exported_rows(run)
        built = (history_parquet(run.history, rows), rows)
        with self._lock:
            self._cache[key] = built
        return built

    def serve(self, path: str, range_header: str | None) -> Reply:
        parts = path.split("/")  # "", "files", "parquet", entity, project, "<run>.parquet"
        if len(parts) != 6 or parts[2] != "parquet" or not parts[5].endswith(".parquet"):
            return Reply(status=404, body=b"not found", content_type="text/plain")
        found = self._file(unquote(parts[3]), unquote(parts[4]), unquote(parts[5][: -len(".parquet")]))
        if found is None:
            return Reply(status=404, body=b"not found", content_type="text/plain")
        data, nrows = found
        return byte_range_reply(data, range_header, nrows)


def byte_range_reply(data: bytes, range_header: str | None, nrows: int = 0) -> Reply:
    """200 with the whole file, or 206/416 for a single `bytes=` range."""
    size = len(data)
    base: dict[str, Any] = {"Accept-Ranges": "bytes"}
    m = _RANGE_RE.match((range_header or "").strip())
    if not range_header or not m or (not m.group(1) and not m.group(2)):
        return Reply(body=data, rows=nrows, content_type="application/octet-stream", headers=base)
    if m.group(1):
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    else:  # suffix range: the last N bytes
        start, end = max(0, size - int(m.group(2))), size - 1
    if start >= size or start > end:
        headers = {**base, "Content-Range": f"bytes */{size}"}
        return Reply(status=416, body=b"", content_type="application/octet-stream", headers=headers)
    headers = {**base, "Content-Range": f"bytes {start}-{end}/{size}"}
    return Reply(status=206, body=data[start : end + 1], content_type="application/octet-stream", headers=headers)
