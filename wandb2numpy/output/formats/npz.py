"""``output_data_type: npz``: one compressed ``data.npz`` per experiment, loadable with
``np.load(path)`` (``allow_pickle=False`` included: text is stored as unicode arrays).

Arrays in the file::

    fields                the field names, in config order (1-D unicode)
    x_axis                the history key the steps hold, ``_step`` unless configured (0-d unicode)
    runs.<column>         one per column of ``runs.csv``, a row per run (1-D): ``config.*`` and
                          ``summary.*`` bool, int64 or float64 where every value is one (the rule
                          is in ``formats._types``), else unicode as ``runs.csv`` has it
    <field>               (runs, width) float64 values, NaN-padded at the end of each row
    <field>.steps         the step of each value, NaN where a run has fewer points
    x                     with a grid instead of the ``.steps`` arrays: the shared 1-D x values

Written as `np.savez_compressed` writes it, with every member dated 1980-01-01: two exports of
the same data give the same bytes, as the other formats do.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..._fs import sync_file
from ...assemble import ExperimentResult, FieldArrays
from . import _types
from ._base import AXIS_NAME, RUN_COLUMNS
from ._single import DataFile, RunTable, SingleFileFormat

FIELDS_KEY = "fields"
X_AXIS_KEY = "x_axis"
RUNS_PREFIX = "runs."
STEPS_SUFFIX = ".steps"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip member can have


def _reserved(key: str, *, grid: bool) -> str | None:
    """What the file keeps under `key` besides fields, or None."""
    if key == FIELDS_KEY:
        return "the list of fields"
    if key == X_AXIS_KEY:
        return "the name of the x axis"
    if grid and key == AXIS_NAME:
        return "the grid's x values"
    if key in {RUNS_PREFIX + c for c in RUN_COLUMNS} or key.startswith(
        (RUNS_PREFIX + "config.", RUNS_PREFIX + "summary.")
    ):
        return "a column of the run table"
    return None


class NpzFormat(SingleFileFormat):
    name = "npz"
    file_name = "data.npz"
    description = "data.npz: <field> and <field>.steps arrays (x with a grid), runs.<column> run table"

    def key_problem(self, fields: Sequence[str], *, grid: bool) -> str | None:
        """A field ``a.steps`` next to ``a``, or one called like what the file keeps besides
        fields (``x_axis``, ``runs.id``), would need one array name for two arrays."""
        seen: set[str] = set()
        for f in fields:
            for key in (f,) if grid else (f, f + STEPS_SUFFIX):
                what = _reserved(key, grid=grid)
                if what:
                    return (
                        f"field {f!r} would be stored as '{key}', which holds {what} in "
                        f"{self.file_name}; rename a field"
                    )
                if key in seen:
                    return f"two outputs would both be stored as '{key}' in {self.file_name}; rename a field"
                seen.add(key)
        return None

    def write_data(self, path: Path, result: ExperimentResult, table: RunTable) -> None:
        # "xb" as for every file of an export; the zip is written the way np.savez_compressed
        # writes it (np.lib.format.write_array into ZIP64 deflated members).
        with open(path, "xb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
                for key, array in _arrays(result, table):
                    info = zipfile.ZipInfo(key + ".npy", date_time=_ZIP_DATE)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    with zf.open(info, "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, array, allow_pickle=False)
            sync_file(f)

    def text_run_columns(self, path: Path) -> set[str]:
        with np.load(path, allow_pickle=False) as data:
            names = {str(n) for n in data[FIELDS_KEY]}
            owned = names | {n + STEPS_SUFFIX for n in names}
            return {
                k[len(RUNS_PREFIX) :]
                for k in data.files
                if k.startswith(RUNS_PREFIX) and k not in owned and data[k].dtype.kind == "U"
            }

    def read_data(self, path: Path) -> DataFile:
        with np.load(path, allow_pickle=False) as data:
            names = [str(n) for n in data[FIELDS_KEY]]
            x_axis = str(data[X_AXIS_KEY])
            # With a grid a field cannot be called "x" (key_problem), so "x" is the axis.
            x = data[AXIS_NAME] if AXIS_NAME in data.files and AXIS_NAME not in names else None
            fields: dict[str, FieldArrays] = {}
            for name in names:
                values = data[name]
                steps = np.broadcast_to(x, values.shape) if x is not None else data[name + STEPS_SUFFIX]
                fields[name] = FieldArrays(values=values, steps=steps)
            # A field may be called "runs.count": run columns are the "runs." arrays no field owns.
            owned = set(names) | {n + STEPS_SUFFIX for n in names}
            header = [k[len(RUNS_PREFIX) :] for k in data.files if k.startswith(RUNS_PREFIX) and k not in owned]
            arrays = [data[RUNS_PREFIX + c] for c in header]
        typed = {c: _values(a) for c, a in zip(header, arrays) if a.dtype.kind != "U"}
        text = [[_types.to_text(v) for v in typed[c]] if c in typed else a.tolist() for c, a in zip(header, arrays)]
        runs = [dict(zip(header, row)) for row in zip(*text)]
        columns = {c: typed[c] if c in typed else a.tolist() for c, a in zip(header, arrays)}
        return DataFile(fields=fields, x_axis=x_axis, x=x, run_ids=[r["id"] for r in runs], runs=runs, columns=columns)


def _values(array: np.ndarray) -> list[Any]:
    """A typed run column as Python values; NaN is how npz keeps a null number."""
    values: list[Any] = array.tolist()
    if array.dtype.kind == "f":
        return [None if v != v else v for v in values]
    return values


def _arrays(result: ExperimentResult, table: RunTable) -> Iterator[tuple[str, np.ndarray]]:
    yield FIELDS_KEY, np.array(list(result.fields), dtype=np.str_)
    yield X_AXIS_KEY, np.array(result.x_axis, dtype=np.str_)
    if result.grid is not None:
        yield AXIS_NAME, result.grid
    for j, column in enumerate(table.header):
        yield RUNS_PREFIX + column, _types.to_numpy(table.values[j], table.kinds[j], table.text(j))
    for name, arrays in result.fields.items():
        yield name, arrays.values
        if result.grid is None:
            yield name + STEPS_SUFFIX, arrays.steps
