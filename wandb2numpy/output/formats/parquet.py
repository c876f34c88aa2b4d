"""``output_data_type: parquet``: one long table per experiment, ``data.parquet``, a row per
logged point, readable as it is by pandas, polars or DuckDB.

Columns::

    id                    the run
    field                 the field name
    step                  the point's step (its x_axis value; with a grid, the grid's x)
    value                 float64; NaN where the run logged NaN
    name, group, ...      the other columns of ``runs.csv``, repeated on each of the run's rows:
                          config.<key> and summary.<key> as bool, int64 or float64 where every
                          value is one (null where a run has none; the rule is in
                          ``formats._types``), else text; history_line_count int64

Every string column is dictionary-encoded (categorical in pandas), so the repeated run columns
cost next to nothing. Rows go field by field, run by run, in step order; the NaN padding at the
end of a run's row in the arrays is left out (a point is padding when its step is NaN and so is
its value; with a grid, when its value is NaN and no later one is not). The schema metadata
holds ``x_axis`` (the history key ``step`` holds) and ``wandb2numpy``: JSON with the run order,
each field's array width and the grid, so reading back gives the arrays the other formats
write, runs without a point and all-NaN columns included.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..._fs import sync_file
from ...assemble import ExperimentResult, FieldArrays
from . import _types
from ._single import DataFile, RunTable, SingleFileFormat

if TYPE_CHECKING:
    import pyarrow as pa

# pyarrow is imported where a file is written or read, not with the module: the format registry
# loads every format, and an export to numpy should not pay pyarrow's import.

POINT_COLUMNS = ("field", "step", "value")  # after "id", before the other run columns
META_KEY = b"wandb2numpy"
X_AXIS_KEY = b"x_axis"
_META_VERSION = 1


class ParquetFormat(SingleFileFormat):
    name = "parquet"
    file_name = "data.parquet"
    description = "data.parquet: one row per point (id, field, step, value and the runs.csv columns)"

    def write_data(self, path: Path, result: ExperimentResult, table: RunTable) -> None:
        import pyarrow.parquet as pq

        long = _long_table(result, table)
        repeated = [c for c in long.column_names if c not in ("step", "value")]
        with open(path, "xb") as f:
            # Dictionary pages only for the run columns: the points stay PLAIN, every bit as written.
            pq.write_table(long, f, use_dictionary=repeated)
            sync_file(f)

    def text_run_columns(self, path: Path) -> set[str]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
        return {
            f.name
            for f in schema
            if f.name not in POINT_COLUMNS and (pa.types.is_dictionary(f.type) or pa.types.is_string(f.type))
        }

    def read_data(self, path: Path) -> DataFile:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        metadata = table.schema.metadata or {}
        meta = json.loads(metadata[META_KEY])
        ids: list[str] = meta["runs"]
        widths: dict[str, int] = meta["fields"]
        x = None if meta["grid"] is None else np.array(meta["grid"], dtype=np.float64)
        n_runs, names = len(ids), list(widths)
        run = _codes(table.column("id"), ids)
        field = _codes(table.column("field"), names)
        step = table.column("step").to_numpy()
        value = table.column("value").to_numpy()
        # Rows of one (field, run) are that run's points in order: their rank is the column.
        key = field.astype(np.int64) * max(n_runs, 1) + run
        order = np.argsort(key, kind="stable")
        key = key[order]
        column = np.arange(len(key)) - np.searchsorted(key, key, side="left")
        bounds = np.searchsorted(field[order], np.arange(len(names) + 1), side="left")
        fields: dict[str, FieldArrays] = {}
        for i, name in enumerate(names):
            rows = order[bounds[i] : bounds[i + 1]]
            r, c = run[rows], column[bounds[i] : bounds[i + 1]]
            values = np.full((n_runs, widths[name]), np.nan)
            values[r, c] = value[rows]
            if x is not None:
                steps = np.broadcast_to(x, values.shape)
            else:
                steps = np.full((n_runs, widths[name]), np.nan)
                steps[r, c] = step[rows]
            fields[name] = FieldArrays(values=values, steps=steps)
        runs, columns = _run_rows(table, ids, run)
        return DataFile(
            fields=fields,
            x_axis=metadata[X_AXIS_KEY].decode("utf-8"),
            x=x,
            run_ids=ids,
            runs=runs,
            columns=columns,
        )


def _arrow_type(kind: str) -> pa.DataType:
    import pyarrow as pa

    return {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(), "null": pa.null()}[kind]


def _long_table(result: ExperimentResult, runs: RunTable) -> pa.Table:
    import pyarrow as pa

    header, rows = runs.header, runs.rows
    grid = result.grid
    run_parts: list[np.ndarray] = []
    field_parts: list[np.ndarray] = []
    step_parts: list[np.ndarray] = []
    value_parts: list[np.ndarray] = []
    for i, arrays in enumerate(result.fields.values()):
        values = arrays.values
        steps = arrays.steps if grid is None else np.broadcast_to(grid, values.shape)
        n, width = values.shape
        present = ~np.isnan(values)
        if grid is None:
            present |= ~np.isnan(steps)
        # Points up to a run's last present one; np.nonzero goes run by run, in column order.
        last = width - np.argmax(present[:, ::-1], axis=1) if width else np.zeros(n, dtype=np.intp)
        last[~present.any(axis=1)] = 0
        r, c = np.nonzero(np.arange(width) < last[:, None])
        run_parts.append(r.astype(np.int32))
        field_parts.append(np.full(len(r), i, dtype=np.int32))
        step_parts.append(steps[r, c])
        value_parts.append(values[r, c])
    run_index = pa.array(_concat(run_parts, np.int32), type=pa.int32())
    columns: dict[str, pa.Array] = {
        "id": _repeat([row[0] for row in rows], run_index),
        "field": pa.DictionaryArray.from_arrays(
            pa.array(_concat(field_parts, np.int32), type=pa.int32()),
            pa.array(list(result.fields), type=pa.string()),
        ),
        "step": pa.array(_concat(step_parts, np.float64), type=pa.float64()),
        "value": pa.array(_concat(value_parts, np.float64), type=pa.float64()),
    }
    for j, name in enumerate(header[1:], start=1):
        kind = runs.kinds[j]
        if kind == "text":
            columns[name] = _repeat(runs.text(j), run_index)
        else:
            columns[name] = pa.array(runs.values[j], type=_arrow_type(kind)).take(run_index)
    meta = {
        "version": _META_VERSION,
        "runs": [row[0] for row in rows],
        "fields": {name: arrays.values.shape[1] for name, arrays in result.fields.items()},
        "grid": None if grid is None else grid.tolist(),  # repr-exact floats in JSON
    }
    schema_meta = {X_AXIS_KEY: result.x_axis.encode("utf-8"), META_KEY: json.dumps(meta).encode("utf-8")}
    return pa.table(columns).replace_schema_metadata(schema_meta)


def _concat(parts: list[np.ndarray], dtype: type[Any]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


def _repeat(per_run: list[str], run_index: pa.Array) -> pa.DictionaryArray:
    """A run column on every row of its run: each distinct text stored once."""
    import pyarrow as pa

    encoded = pa.array(per_run, type=pa.string()).dictionary_encode()
    indices = pa.array(np.asarray(encoded.indices, dtype=np.int32)[run_index.to_numpy()], type=pa.int32())
    return pa.DictionaryArray.from_arrays(indices, encoded.dictionary)


def _codes(column: pa.ChunkedArray, names: list[str]) -> np.ndarray:
    """Each row's position in `names`, read chunk by chunk without turning rows into str."""
    import pyarrow as pa

    lookup = {name: i for i, name in enumerate(names)}
    parts = []
    for chunk in column.chunks:
        if not pa.types.is_dictionary(chunk.type):
            chunk = chunk.dictionary_encode()
        where = np.array([lookup[s] for s in chunk.dictionary.to_pylist()], dtype=np.intp)
        parts.append(where[chunk.indices.to_numpy(zero_copy_only=False)])
    return _concat(parts, np.intp)


def _run_rows(table: pa.Table, ids: list[str], run: np.ndarray) -> tuple[list[dict[str, str]], dict[str, list[Any]]]:
    """The run table as the rows keep it: a run's columns from its first row, only its id when
    it has none (the ``runs.csv`` next to the file holds those runs in full); as ``runs.csv``
    text, and as the stored values column by column (None for null)."""
    columns = ["id", *(c for c in table.column_names[1:] if c not in POINT_COLUMNS)]
    present, first_row = np.unique(run, return_index=True)
    first = dict(zip(present.tolist(), first_row.tolist()))
    values: dict[str, list[Any]] = {}
    for c in columns:
        column = table.column(c)
        values[c] = [
            column[first[r]].as_py() if r in first else (run_id if c == "id" else None) for r, run_id in enumerate(ids)
        ]
    text = {c: [_types.to_text(v) for v in vs] for c, vs in values.items()}
    rows = [{c: text[c][r] for c in columns} for r in range(len(ids))]
    return rows, values
