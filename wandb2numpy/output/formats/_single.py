"""What the one-file formats share: ``runs.csv``, ``failed_runs.csv`` and one data file.

An experiment folder holds::

    runs.csv                      as in every format
    failed_runs.csv               only when runs failed
    data.<ext>                    every field, its steps (or the grid's x) and the run table
    .wandb2numpy-manifest.json    kept by the writers

The data file has a fixed name rather than the experiment's: the folder already carries that
name, the set of files is then known from the field names alone (before any request, as
`possible_files` promises), and ``out/*/data.parquet`` picks up every experiment. Field names
never become paths here, but they follow the same name rule as in the other formats, so one
config stays valid whichever format it asks for.
"""

from __future__ import annotations

import functools
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ...assemble import ExperimentResult, FieldArrays
from ...errors import OutputError
from ...models import RunInfo
from . import _base, _types
from ._base import (
    FAILED_RUNS_FILE,
    RUNS_FILE,
    FileKind,
    Format,
    StoredExperiment,
    StoredFile,
    _Writer,
    check_result,
    read_failed,
    read_table,
    run_tables_plan,
)
from ._types import Kind


@dataclass(frozen=True)
class RunTable:
    """The run table as the typed formats store it: `header` and `rows` are ``runs.csv``'s text
    (with text that UTF-8 cannot hold escaped as it escapes it); `kinds` and `values` give each
    column's type by the rule of `_types` (``text`` for the columns it leaves as text) and its
    Python values, None for null."""

    header: list[str]
    rows: list[list[str]]
    kinds: list[Kind]
    values: list[list[Any]]

    def text(self, j: int) -> list[str]:
        return [row[j] for row in self.rows]

    @classmethod
    def of(cls, runs: Sequence[RunInfo]) -> RunTable:
        header, cells = _base.run_values(runs)
        rows = [[_text(_base.cell_text(v)) for v in row] for row in cells]
        kinds: list[Kind] = []
        values: list[list[Any]] = []
        for j, column in enumerate(header):
            raw = [None if _base.is_missing(row[j]) else row[j] for row in cells]
            kind = _types.kind_of(raw) if _types.typed(column) else "text"
            kinds.append(kind)
            values.append(raw if kind != "text" else [])
        return cls([_text(c) for c in header], rows, kinds, values)


@dataclass
class DataFile:
    """What a data file holds, read back.

    `runs` is the run table as ``runs.csv`` text (typed cells turned back into it); `columns` the
    typed columns as the file keeps them (Python values, None for null); `run_ids` the array
    row order.
    """

    fields: dict[str, FieldArrays]
    x_axis: str
    x: np.ndarray | None
    run_ids: list[str]
    runs: list[dict[str, str]]
    columns: dict[str, list[Any]] = field(default_factory=dict)


class SingleFileFormat(Format):
    """Every field of an experiment in one file next to the run tables."""

    file_name: ClassVar[str]

    # ------------------------------------------------------------------ per format

    @abstractmethod
    def write_data(self, path: Path, result: ExperimentResult, table: RunTable) -> None:
        """Create `path` (it must not exist) holding every field and the run table, fsynced;
        ``config.*`` and ``summary.*`` columns typed by the rule of `_types`."""

    @abstractmethod
    def read_data(self, path: Path) -> DataFile:
        """What `write_data` wrote."""

    def text_run_columns(self, path: Path) -> set[str]:
        """The run-table columns the data file keeps as text, read without the points."""
        return {c for c, values in self.read_data(path).columns.items() if any(isinstance(v, str) for v in values)}

    def key_problem(self, fields: Sequence[str], *, grid: bool) -> str | None:
        """Why two of these fields (or a field and the run table) would share a name inside the
        data file, or None."""
        return None

    # ------------------------------------------------------------------ layout

    def possible_files(self, fields: Sequence[str], *, grid: bool = False) -> list[Path]:
        return [Path(RUNS_FILE), Path(FAILED_RUNS_FILE), Path(self.file_name)]

    def fields_problem(self, fields: Sequence[str], *, grid: bool = False) -> str | None:
        return super().fields_problem(fields, grid=grid) or self.key_problem(fields, grid=grid)

    def _plan(self, result: ExperimentResult) -> list[tuple[Path, FileKind, _Writer]]:
        check_result(result)
        problem = self.key_problem(list(result.fields), grid=result.grid is not None)
        if problem:
            raise OutputError(problem)
        plan = run_tables_plan(result)
        plan.append((Path(self.file_name), "data", functools.partial(self._write_data, result=result)))
        return plan

    def _write_data(self, path: Path, result: ExperimentResult) -> None:
        self.write_data(path, result, RunTable.of(result.runs))

    # ------------------------------------------------------------------ reading back

    def read_experiment(self, folder: Path) -> StoredExperiment:
        """The data file, with the runs and failed runs of the folder's two run tables."""
        data = self.read_data(folder / self.file_name)
        return StoredExperiment(
            runs=read_table(folder / RUNS_FILE),
            fields=data.fields,
            failed_runs=read_failed(folder),
            x=data.x,
            x_axis=data.x_axis,
        )

    def _read_file(self, path: Path) -> StoredExperiment | StoredFile:
        """The data file alone is a whole experiment; the run tables next to it are used when
        they are there (a copied file keeps its own run table)."""
        if path.parent.joinpath(RUNS_FILE).is_file() and path.name == self.file_name:
            return self.read_experiment(path.parent)
        data = self.read_data(path)
        return StoredExperiment(runs=data.runs, fields=data.fields, x=data.x, x_axis=data.x_axis)


def _text(cell: str) -> str:
    """A lone surrogate (valid in JSON, not in UTF-8) escaped as ``runs.csv`` writes it."""
    try:
        cell.encode("utf-8")
    except UnicodeEncodeError:
        return cell.encode("utf-8", "backslashreplace").decode("utf-8")
    return cell
