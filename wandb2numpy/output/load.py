"""`wandb2numpy.load`: an experiment folder of any format back as one object, for notebooks.

Each format already reads itself back (`Format.read`); this puts what they give into one shape,
whatever format wrote the folder: the run table with typed columns, each field's values and
steps (or the grid's shared x), the x-axis name. pandas and xarray are imported only when
`to_pandas` or `to_xarray` is called, so loading needs neither, and a missing one is named
with the extra that installs it.

Run table types follow the typed formats' rule (``formats._types``): ``config.*`` and
``summary.*`` columns are bool, int64 or float64 where every value is one (float64 with NaN
for a missing number; a bool column with a missing value stays an object column of
True/False/None), other columns text (an object array of ``runs.csv``'s text). The values are
read from ``runs.csv``, which every format writes; a column npz or parquet stored as text stays
text, so a config value logged as the string ``"3"`` is not taken for a number there.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..assemble import FieldArrays
from ..config.defaults import DEFAULT_X_AXIS
from ..errors import ConfigError, OutputError
from . import formats
from .folder import read_manifest
from .formats import RUNS_FILE, StoredExperiment, _types

if TYPE_CHECKING:
    import pandas
    import xarray

__all__ = ["Experiment", "MISSING_PANDAS", "MISSING_XARRAY", "load", "load_stored"]

# Not "pip install 'wandb2numpy[pandas]'": from a checkout that installs an unrelated package.
MISSING_PANDAS = (
    "pandas is not installed: pip install pandas (the 'pandas' extra; from a checkout: pip install '.[pandas]')"
)
MISSING_XARRAY = (
    "xarray is not installed: pip install xarray pandas (the 'xarray' extra; from a checkout: pip install '.[xarray]')"
)
Layout = Literal["long", "wide"]


@dataclass(frozen=True)
class Experiment:
    """An exported experiment read back. Row i of every array is run ``ids[i]``.

    `fields` maps each field to its (runs, width) values and steps, NaN-padded; with a grid the
    steps are `x` broadcast, and `x` is the grid's 1-D x values (None without a grid).
    `runs` is the run table column by column (typed, see the module docs); `run_rows` the same
    rows as ``runs.csv`` text. `x_axis` names the history key the steps hold.
    """

    folder: Path
    data_type: str
    x_axis: str
    ids: list[str]
    runs: dict[str, np.ndarray]
    fields: dict[str, FieldArrays]
    x: np.ndarray | None = None
    failed_runs: dict[str, str] = field(default_factory=dict)
    run_rows: list[dict[str, str]] = field(default_factory=list)

    def __repr__(self) -> str:
        axis = f"grid of {len(self.x)} x" if self.x is not None else "steps per field"
        return (
            f"<Experiment {self.folder.name!r} ({self.data_type}): {len(self.ids)} run(s), "
            f"{len(self.fields)} field(s), {axis} of {self.x_axis}>"
        )

    # ------------------------------------------------------------------ pandas

    def to_pandas(
        self, layout: Layout = "long", *, fields: Sequence[str] | None = None, runs: bool | Sequence[str] = True
    ) -> pandas.DataFrame:
        """The points as a DataFrame.

        ``long``: a row per point (``id``, ``field``, ``step``, ``value``), as data.parquet has
        them. ``wide``: a row per run and step (``id``, ``step``), a column per field, NaN where
        a field has no value at that step. Padding is left out; with a grid every (run, x) is a
        row, NaN included, so the wide table is the arrays. `runs` adds the run table's columns
        (all, or the ones named; text as categorical). ``df.attrs["x_axis"]`` names the step.
        """
        pd = _pandas()
        if layout not in ("long", "wide"):
            raise ValueError(f"layout must be 'long' or 'wide'; found {layout!r}")
        names = self._fields(fields)
        run_parts, field_parts, step_parts, value_parts = [], [], [], []
        for i, name in enumerate(names):
            arrays = self.fields[name]
            steps = np.asarray(arrays.steps)
            keep = np.ones(arrays.values.shape, dtype=bool) if self.x is not None else ~np.isnan(steps)
            r, c = np.nonzero(keep)  # run by run, each in step order
            run_parts.append(r)
            field_parts.append(np.full(len(r), i, dtype=np.intp))
            step_parts.append(steps[r, c])
            value_parts.append(arrays.values[r, c])
        run = np.concatenate(run_parts) if run_parts else np.empty(0, dtype=np.intp)
        step = np.concatenate(step_parts) if step_parts else np.empty(0)
        if layout == "long":
            df = pd.DataFrame(
                {
                    "id": pd.Categorical.from_codes(run, categories=self.ids),
                    "field": pd.Categorical.from_codes(
                        np.concatenate(field_parts) if field_parts else run, categories=names
                    ),
                    "step": step,
                    "value": np.concatenate(value_parts) if value_parts else np.empty(0),
                }
            )
        else:
            # One row per distinct (run, step), in run order then step order.
            order = np.lexsort((step, run))
            sorted_run, sorted_step = run[order], step[order]
            first = np.ones(len(order), dtype=bool)
            first[1:] = (sorted_run[1:] != sorted_run[:-1]) | (sorted_step[1:] != sorted_step[:-1])
            inverse = np.empty(len(order), dtype=np.intp)
            inverse[order] = np.cumsum(first) - 1
            run, wide_step = sorted_run[first], sorted_step[first]
            columns: dict[str, Any] = {"id": pd.Categorical.from_codes(run, categories=self.ids), "step": wide_step}
            start = 0
            for name, values in zip(names, value_parts):
                column = np.full(len(run), np.nan)
                column[inverse[start : start + len(values)]] = values
                columns[name] = column
                start += len(values)
            df = pd.DataFrame(columns)
        if runs:
            table = self.runs_frame(None if runs is True else runs)
            for c in table.columns:
                if c not in df.columns:
                    df[c] = table[c].take(run).reset_index(drop=True) if len(run) else table[c].iloc[:0]
        df.attrs["x_axis"] = self.x_axis
        return df

    def runs_frame(self, columns: Sequence[str] | None = None) -> pandas.DataFrame:
        """The run table as a DataFrame, a row per run in array order; text as categorical."""
        pd = _pandas()
        wanted = list(self.runs) if columns is None else ["id", *(c for c in columns if c != "id")]
        unknown = [c for c in wanted if c not in self.runs]
        if unknown:
            raise KeyError(f"no run column {unknown[0]!r}; the columns: {', '.join(self.runs)}")
        data = {}
        for c in wanted:
            column = self.runs[c]
            data[c] = pd.Categorical(column) if column.dtype == object and c != "id" else column
        return pd.DataFrame(data)

    # ------------------------------------------------------------------ xarray

    def to_xarray(self, *, fields: Sequence[str] | None = None) -> xarray.Dataset:
        """A Dataset with a variable per field on dims (``run``, ``x``) with a grid, else
        (``run``, ``step``) over the union of the steps the runs logged (NaN where a run has no
        value there). The run table's columns are coordinates along ``run``."""
        xr = _xarray()
        names = self._fields(fields)
        coords: dict[str, Any] = {"run": np.asarray(self.ids, dtype=object)}
        for c, column in self.runs.items():
            if c not in ("id", "run", "x", "step") and c not in names:  # a field's name wins
                coords[c] = ("run", column)
        if self.x is not None:
            dim, axis = "x", self.x
            data = {name: (("run", dim), np.asarray(self.fields[name].values)) for name in names}
        else:
            dim = "step"
            steps = [np.asarray(self.fields[n].steps) for n in names]
            finite = [s[~np.isnan(s)] for s in steps]
            axis = np.unique(np.concatenate(finite)) if finite else np.empty(0)
            data = {}
            for name, s in zip(names, steps):
                values = self.fields[name].values
                out = np.full((len(self.ids), len(axis)), np.nan)
                row, col = np.nonzero(~np.isnan(s))
                out[row, np.searchsorted(axis, s[row, col])] = values[row, col]
                data[name] = (("run", dim), out)
        coords[dim] = axis
        ds: xarray.Dataset = xr.Dataset(data, coords=coords)
        ds[dim].attrs["x_axis"] = self.x_axis
        ds.attrs.update(x_axis=self.x_axis, data_type=self.data_type, folder=str(self.folder))
        return ds

    def _fields(self, fields: Iterable[str] | None) -> list[str]:
        names = list(self.fields) if fields is None else list(fields)
        for name in names:
            if name not in self.fields:
                raise KeyError(f"no field {name!r}; the fields: {', '.join(self.fields)}")
        return names


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError(MISSING_PANDAS, name="pandas") from None
    return pandas


def _xarray() -> Any:
    try:
        import xarray
    except ImportError:
        raise ImportError(MISSING_XARRAY, name="xarray") from None
    return xarray


# --------------------------------------------------------------------------- reading


def load(folder: str | os.PathLike[str]) -> Experiment:
    """An experiment folder of an export (``EXPORT_DIR/EXPERIMENT``), in any format, as an
    `Experiment`; a copied ``data.npz`` or ``data.parquet`` file on its own also reads.

    ConfigError for a path that is no experiment folder (naming the experiment folders inside
    an export folder), OutputError for files that cannot be read.
    """
    stored, data_type, x_axis, path = load_stored(folder)
    text_columns = _text_columns(path, data_type) if path.is_dir() else set()
    return Experiment(
        folder=path,
        data_type=data_type,
        x_axis=x_axis,
        ids=stored.ids,
        runs=typed_runs(stored.runs, text_columns),
        fields=stored.fields,
        x=stored.x,
        failed_runs=stored.failed_runs,
        run_rows=stored.runs,
    )


def load_stored(folder: str | os.PathLike[str]) -> tuple[StoredExperiment, str, str, Path]:
    """What the format of `folder` reads back, its format name and its x-axis name."""
    path = Path(folder)
    try:
        is_file, is_dir = path.is_file(), path.is_dir()
    except OSError as exc:  # a name too long for the file system, say
        shown = str(path) if len(str(path)) <= 80 else str(path)[:60] + "..." + str(path)[-10:]
        raise ConfigError(f"{shown!r} cannot be an experiment folder: {exc.strerror or exc}") from None
    if is_file:
        return _load_file(path)
    if not is_dir:
        raise ConfigError(
            f"{str(path)!r} does not exist; expected an experiment folder of an export "
            "(EXPORT_DIR/EXPERIMENT, holding runs.csv)"
        )
    manifest = read_manifest(path) or {}
    if not (path / RUNS_FILE).is_file():
        inside = sorted(p.parent.name for p in path.glob(f"*/{RUNS_FILE}"))
        hint = f"; the experiment folders in it: {', '.join(inside)}" if inside else ""
        raise ConfigError(f"{str(path)!r} holds no {RUNS_FILE}, so it is no experiment folder of an export{hint}")
    data_type = manifest.get("data_type")
    if not isinstance(data_type, str):
        data_type = _guess_format(path)
    try:
        fmt = formats.get(data_type)
    except ValueError as exc:
        raise ConfigError(f"{path} was written as {data_type!r}, which this version cannot read ({exc})") from None
    stored = _read(fmt, path, data_type)
    axis = stored.x_axis or manifest.get("x_axis")
    return stored, data_type, axis if isinstance(axis, str) else DEFAULT_X_AXIS, path


def _load_file(path: Path) -> tuple[StoredExperiment, str, str, Path]:
    for name in formats.names():
        fmt = formats.get(name)
        if isinstance(fmt, formats.SingleFileFormat) and path.suffix == Path(fmt.file_name).suffix:
            stored = _read(fmt, path, name)
            return stored, name, stored.x_axis or DEFAULT_X_AXIS, path
    raise ConfigError(
        f"{str(path)!r} is no experiment folder, nor a data file of a one-file format (data.npz, data.parquet)"
    )


def _read(fmt: formats.Format, path: Path, data_type: str) -> StoredExperiment:
    try:
        stored = fmt.read(path)
    except (OSError, ValueError, KeyError) as exc:
        raise OutputError(f"could not read {path} as {data_type}: {exc}") from exc
    if not isinstance(stored, StoredExperiment):  # a folder always reads as a whole experiment
        raise OutputError(f"{path} did not read back as an experiment folder")
    return stored


def _guess_format(path: Path) -> str:
    """The format of a folder written before manifests existed, by which files it holds."""
    for name in formats.names():
        fmt = formats.get(name)
        if isinstance(fmt, formats.SingleFileFormat):
            if (path / fmt.file_name).is_file():
                return name
        elif isinstance(fmt, formats.PerFieldFormat) and (
            (path / (formats.AXIS_NAME + fmt.values_suffix)).is_file() or any(path.rglob("*" + fmt.steps_suffix))
        ):
            return name
    raise ConfigError(f"{str(path)!r} holds no field files of a known format ({formats.expected()})")


def _text_columns(path: Path, data_type: str) -> set[str]:
    """The run columns a typed format stored as text (none for the text formats)."""
    fmt = formats.get(data_type)
    if not isinstance(fmt, formats.SingleFileFormat):
        return set()
    try:
        return fmt.text_run_columns(path / fmt.file_name)
    except (OSError, ValueError, KeyError):
        return set()


def typed_runs(rows: Sequence[Mapping[str, str]], text_columns: Collection[str] = ()) -> dict[str, np.ndarray]:
    """``runs.csv`` rows as typed columns, by the rule of ``formats._types``."""
    header = list(rows[0]) if rows else ["id"]
    out: dict[str, np.ndarray] = {}
    for c in header:
        cells = [row.get(c, "") for row in rows]
        if not _types.typed(c) or c in text_columns:
            out[c] = _objects(cells)
            continue
        kind, values = _types.column_values(cells)
        nulls = any(v is None for v in values)
        if kind == "int" and not nulls:
            out[c] = np.array(values, dtype=np.int64)
        elif kind in ("int", "float"):
            out[c] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        elif kind == "bool" and not nulls:
            out[c] = np.array(values, dtype=np.bool_)
        else:
            out[c] = _objects(values if kind != "text" else cells)
    return out


def _objects(values: Sequence[Any]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    return array
