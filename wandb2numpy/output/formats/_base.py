"""What every output format shares: the experiment's file layout, the run table, the way back.

An experiment folder holds::

    runs.csv                      one line per array row: run metadata, its URL, flattened config
                                  (config.<key>) and scalar summary values (summary.<key>)
    failed_runs.csv               only when runs failed: their ids and why
    <field><values suffix>        one (runs, width) float64 array per field
    <field><steps suffix>         the step of every value, NaN where a run has fewer points
                                  (with a grid instead: one shared ``x<values suffix>``, 1-D)
    .wandb2numpy-manifest.json    which of these files the export wrote (kept by the writers)

A ``/`` in a field name makes sub-folders (``eval/reward`` -> ``eval/reward.npy``). That is the
layout of a `PerFieldFormat`, which only decides the two suffixes and how one array becomes bytes
and back. A format that keeps every field in one file (``formats._single``) writes the two run
tables and that file instead. Staging, fsync of folders and the swap into place are the writers'
business either way.
"""

from __future__ import annotations

import csv
import functools
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from ..._fs import sync_file
from ...assemble import ExperimentResult, FieldArrays
from ...config.names import check_field
from ...errors import OutputError
from ...models import RunInfo

RUNS_FILE = "runs.csv"
AXIS_NAME = "x"  # with a grid: the shared x values, x<values suffix>
FAILED_RUNS_FILE = "failed_runs.csv"
RUN_COLUMNS = (
    "id",
    "name",
    "group",
    "job_type",
    "state",
    "tags",
    "created_at",
    "heartbeat_at",
    "history_line_count",
    "url",
)
_NAME_MAX = 255  # bytes per path component on common Linux/macOS file systems

FileKind = Literal["runs", "failed_runs", "values", "steps", "axis", "data"]  # data: a one-file format's file
_Writer = Callable[[Path], None]


@dataclass(frozen=True)
class StoredFile:
    """One file read back: a run table, or one field's values or steps with the run ids."""

    path: Path
    kind: FileKind
    table: list[dict[str, str]] | None = None  # runs.csv / failed_runs.csv
    array: np.ndarray | None = None  # values or steps

    @property
    def summary(self) -> str:
        """How the demo shows a file: tables by rows, arrays by shape."""
        if self.array is not None:
            return f"shape {self.array.shape}"
        return f"{len(self.table or ())} row(s)"


@dataclass
class StoredExperiment:
    """An experiment folder read back: what `ExperimentResult` held, as the files keep it.

    Runs are the rows of ``runs.csv`` as text (config flattened to ``config.<key>`` columns);
    `ids` are its id column, in array row order.
    """

    runs: list[dict[str, str]]
    fields: dict[str, FieldArrays]
    failed_runs: dict[str, str] = field(default_factory=dict)
    x: np.ndarray | None = None  # the grid's shared x values, when the export had a grid
    x_axis: str | None = None  # the history key the steps hold, where the format records it

    @property
    def ids(self) -> list[str]:
        return [row["id"] for row in self.runs]

    @property
    def summary(self) -> str:
        return f"{len(self.runs)} run(s), {len(self.fields)} field(s)"


class Format(ABC):
    """One output format: its name, the files an experiment becomes, and the way back."""

    name: ClassVar[str]
    description: ClassVar[str]

    @abstractmethod
    def possible_files(self, fields: Sequence[str], *, grid: bool = False) -> list[Path]:
        """Every file an export of `fields` may write, ``failed_runs.csv`` included.

        Known before any request, so a check against files already on disk can refuse early.
        """

    @abstractmethod
    def _plan(self, result: ExperimentResult) -> list[tuple[Path, FileKind, _Writer]]:
        """Each file of `result` with the function that creates it; refuses what `layout` refuses."""

    @abstractmethod
    def read_experiment(self, folder: Path) -> StoredExperiment:
        """An experiment folder this format wrote, back as arrays and tables."""

    @abstractmethod
    def _read_file(self, path: Path) -> StoredExperiment | StoredFile:
        """One file of an experiment folder other than the two run tables."""

    def fields_problem(self, fields: Sequence[str], *, grid: bool = False) -> str | None:
        """Why these field names cannot share one experiment folder in this format, or None.

        For config validation: the same collisions `layout` refuses, known before any request.
        Both run tables are reserved, since whether ``failed_runs.csv`` is written is only
        known after the fetch; with a grid, so is the shared axis.
        """
        return _collision(self.possible_files(fields, grid=grid))

    def layout(self, result: ExperimentResult) -> list[Path]:
        """The files `write` creates, relative to the experiment folder, in its order.

        Raises OutputError (unusable or colliding names) or ValueError (malformed arrays).
        """
        return [rel for rel, _, _ in self._plan(result)]

    def write(self, result: ExperimentResult, folder: Path) -> list[Path]:
        """Write every file of `result` into the existing, empty `folder`; return them in order.

        Sub-folders are created as needed; the caller fsyncs folders and publishes `folder`.
        """
        written = []
        for rel, _, write in self._plan(result):
            target = folder / rel
            if target.parent != folder:
                target.parent.mkdir(parents=True, exist_ok=True)
            write(target)
            written.append(target)
        return written

    def read(self, path: str | os.PathLike[str]) -> StoredExperiment | StoredFile:
        """A whole experiment folder, or one file of it, back as arrays and tables.

        A file named ``runs.csv`` or ``failed_runs.csv`` is read as a run table; any other as
        the format says.
        """
        p = Path(path)
        if p.is_dir():
            return self.read_experiment(p)
        if p.name in (RUNS_FILE, FAILED_RUNS_FILE):
            kind: FileKind = "runs" if p.name == RUNS_FILE else "failed_runs"
            return StoredFile(p, kind, table=read_table(p))
        return self._read_file(p)


class PerFieldFormat(Format):
    """A values and a steps file per field: decides two suffixes and one array to bytes and back."""

    values_suffix: ClassVar[str]
    steps_suffix: ClassVar[str]

    # ------------------------------------------------------------------ per format

    @abstractmethod
    def write_array(self, path: Path, array: np.ndarray, ids: Sequence[str], *, steps: bool) -> None:
        """Create `path` (it must not exist) holding one field's values or steps, fsynced."""

    @abstractmethod
    def read_array(self, path: Path) -> np.ndarray:
        """The float64 array `write_array` wrote."""

    def write_axis(self, path: Path, x: np.ndarray) -> None:
        """Create `path` holding a grid's 1-D x values; by default as a one-row array."""
        self.write_array(path, x.reshape(1, -1), [AXIS_NAME], steps=True)

    def read_axis(self, path: Path) -> np.ndarray:
        """The 1-D x values `write_axis` wrote."""
        return self.read_array(path).reshape(-1)

    # ------------------------------------------------------------------ layout

    def possible_files(self, fields: Sequence[str], *, grid: bool = False) -> list[Path]:
        files = [Path(RUNS_FILE), Path(FAILED_RUNS_FILE)]
        if grid:
            files.append(Path(AXIS_NAME + self.values_suffix))
        for f in fields:
            files.append(Path(f + self.values_suffix))
            if not grid:
                files.append(Path(f + self.steps_suffix))
        return files

    def _plan(self, result: ExperimentResult) -> list[tuple[Path, FileKind, _Writer]]:
        ids = [run.id for run in result.runs]
        check_result(result)
        plan = run_tables_plan(result)
        grid = result.grid
        if grid is not None:
            plan.append((Path(AXIS_NAME + self.values_suffix), "axis", functools.partial(self.write_axis, x=grid)))
        for name, arrays in result.fields.items():
            outputs = [(self.values_suffix, arrays.values, "values")]
            if grid is None:
                outputs.append((self.steps_suffix, arrays.steps, "steps"))
            for suffix, array, kind in outputs:
                rel = Path(name + suffix)
                if len(rel.name.encode("utf-8")) > _NAME_MAX:
                    raise OutputError(f"field name {name!r} makes a file name longer than {_NAME_MAX} bytes")
                write = functools.partial(self.write_array, array=array, ids=ids, steps=kind == "steps")
                plan.append((rel, kind, write))  # type: ignore[arg-type]
        problem = _collision([rel for rel, _, _ in plan])
        if problem:
            raise OutputError(problem)
        return plan

    def _read_file(self, path: Path) -> StoredFile:
        """One field's values or steps, or a grid's shared axis."""
        if path.name == AXIS_NAME + self.values_suffix and not path.with_name(AXIS_NAME + self.steps_suffix).exists():
            return StoredFile(path, "axis", array=self.read_axis(path))
        kind: FileKind = "steps" if path.name.endswith(self.steps_suffix) else "values"
        return StoredFile(path, kind, array=self.read_array(path))

    def read_experiment(self, folder: Path) -> StoredExperiment:
        """Every field of an experiment folder, paired values with steps by file name."""
        files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        fields: dict[str, FieldArrays] = {}
        used: set[str] = set()
        axis = AXIS_NAME + self.values_suffix
        if axis in files and AXIS_NAME + self.steps_suffix not in files:
            # A grid export: no steps files, every other values file is a field on the shared x.
            x = self.read_axis(folder / axis)
            tables = {RUNS_FILE, FAILED_RUNS_FILE, axis}
            for rel in sorted(files - tables):
                if rel.endswith(self.values_suffix) and not rel.startswith("."):
                    grid_values = self.read_array(folder / rel)
                    steps = np.broadcast_to(x, grid_values.shape)
                    fields[rel[: -len(self.values_suffix)]] = FieldArrays(values=grid_values, steps=steps)
            return StoredExperiment(
                runs=read_table(folder / RUNS_FILE),
                fields=fields,
                x=x,
                failed_runs=read_failed(folder),
            )
        # A steps file is one whose values file exists too: the name alone is ambiguous when a
        # field is itself called "x.steps" (its values are "x.steps.npy").
        for rel in sorted(files):
            if rel.endswith(self.steps_suffix):
                name = rel[: -len(self.steps_suffix)]
                values = name + self.values_suffix
                if values in files and values not in used:
                    fields[name] = FieldArrays(
                        values=self.read_array(folder / values), steps=self.read_array(folder / rel)
                    )
                    used.update((rel, values))
        # A field called ``failed_runs`` in CSV owns that file: no run table then.
        failed = read_failed(folder) if FAILED_RUNS_FILE not in used else {}
        return StoredExperiment(
            runs=read_table(folder / RUNS_FILE), fields=dict(sorted(fields.items())), failed_runs=failed
        )


def read_failed(folder: Path) -> dict[str, str]:
    """``failed_runs.csv`` of an experiment folder as run id -> error; empty when none failed."""
    path = folder / FAILED_RUNS_FILE
    if not path.is_file():
        return {}
    return {row["id"]: row["error"] for row in read_table(path)}


# --------------------------------------------------------------------------- checks


def check_result(result: ExperimentResult) -> None:
    """What every format refuses before writing: unusable field names (OutputError, the rule
    config validation applies) and arrays that do not fit the runs or the grid (ValueError)."""
    n_runs = len(result.runs)
    grid = result.grid
    if grid is not None and (not isinstance(grid, np.ndarray) or grid.dtype != np.float64 or grid.ndim != 1):
        raise ValueError("the grid must be a 1-D float64 array")
    for name, arrays in result.fields.items():
        check_field(name)
        _check_arrays(name, arrays, n_runs)
        if grid is not None and arrays.values.shape[1] != len(grid):
            raise ValueError(f"field {name!r}: {arrays.values.shape[1]} columns for a grid of {len(grid)}")


def _check_arrays(field_name: str, arrays: FieldArrays, n_runs: int) -> None:
    for label, array in (("values", arrays.values), ("steps", arrays.steps)):
        if not isinstance(array, np.ndarray) or array.dtype != np.float64 or array.ndim != 2:
            raise ValueError(f"field {field_name!r}: {label} must be a 2-D float64 array")
        if array.shape[0] != n_runs or array.shape != arrays.values.shape:
            raise ValueError(
                f"field {field_name!r}: {label} has shape {array.shape}, expected ({n_runs}, width) matching values"
            )


def _collision(files: list[Path]) -> str | None:
    """Two fields must not map to one file (``a.steps`` vs the steps of ``a``, ``runs`` in CSV)."""
    seen: set[Path] = set()
    for rel in files:
        if rel in seen:
            return f"two outputs would both be written to '{rel}'; rename a field"
        seen.add(rel)
    folders = {parent for rel in files for parent in rel.parents}
    clash = sorted(str(p) for p in seen & folders)
    if clash:
        return f"'{clash[0]}' would be both a file and a folder; rename a field"
    return None


# --------------------------------------------------------------------------- run tables


def run_tables_plan(result: ExperimentResult) -> list[tuple[Path, FileKind, _Writer]]:
    """``runs.csv``, and ``failed_runs.csv`` when runs failed: the first files of every format."""
    plan: list[tuple[Path, FileKind, _Writer]] = [
        (Path(RUNS_FILE), "runs", functools.partial(_write_runs_csv, runs=result.runs))
    ]
    if result.failed_runs:
        # Runs that failed after retries are not rows of the arrays; this says which, and why.
        plan.append(
            (Path(FAILED_RUNS_FILE), "failed_runs", functools.partial(_write_failed_csv, failed=result.failed_runs))
        )
    return plan


# One encoder for every cell: `json.dumps` with options builds a new encoder per call, which was
# half the time of a 2,000-run table, all of it after the last answer.
_CELL_JSON = json.JSONEncoder(ensure_ascii=False, default=str)
_PLAIN_TEXT: dict[Any, Callable[[Any], str]] = {int: int.__repr__, type(None): lambda _: "null"}
_SCALARS = frozenset((str, int, float, bool, type(None)))


def _config_cell(value: Any) -> str:
    """Strings as they are; everything else as JSON, so lists, None and bools stay readable."""
    if isinstance(value, str):
        return value
    kind = type(value)
    if kind is float and value - value == 0.0:  # finite: JSON's text is the float's repr
        return float.__repr__(value)
    text = _PLAIN_TEXT.get(kind)
    return text(value) if text is not None else _CELL_JSON.encode(value)


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts become dotted keys; on a clash (``"a.b"`` vs ``{"a": {"b"}}``) first wins."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        kind = type(value)  # exact types first: the ABC check is slow, and a table has many cells
        if (kind is dict or (kind not in _SCALARS and isinstance(value, Mapping))) and value:
            for sub_key, sub_value in _flatten(value, dotted + ".").items():
                flat.setdefault(sub_key, sub_value)
        else:
            flat.setdefault(dotted, value)
    return flat


def _summary_scalars(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The summary values a table cell can hold: numbers, booleans, text and null, nested plain
    dicts flattened like config. Media, histograms and tables (dicts with a ``_type``), lists and
    wandb's own ``_wandb`` block are left out: their JSON can run to megabytes a cell, and
    their contents are in the run's files, not a number to sort runs by."""
    plain = {
        key: value for key, value in summary.items() if not key.startswith("_wandb") and _is_scalar_or_plain(value)
    }
    return {key: value for key, value in _flatten(plain).items() if _is_scalar(value)}


def _is_scalar(value: Any) -> bool:
    return type(value) in _SCALARS or isinstance(value, (str, int, float, bool))


def _is_scalar_or_plain(value: Any) -> bool:
    if type(value) in _SCALARS:
        return True
    if isinstance(value, Mapping):
        return "_type" not in value and all(_is_scalar_or_plain(v) for v in value.values())
    return _is_scalar(value)


def _run_cells(run: RunInfo) -> list[str]:
    return [
        run.id,
        run.name,
        run.group or "",
        run.job_type or "",
        run.state,
        _CELL_JSON.encode(list(run.tags)),
        run.created_at or "",
        run.heartbeat_at or "",
        str(run.history_line_count),
        run.url or "",
    ]


_MISSING: Any = object()  # a run without the key: "" in runs.csv, null in the typed formats


def run_values(runs: Sequence[RunInfo]) -> tuple[list[str], list[list[Any]]]:
    """The run table's header and each run's cells as values: `RUN_COLUMNS` as text (the line
    count as int), ``config.<key>`` and ``summary.<key>`` as logged, `_MISSING` where a run
    lacks the key."""
    configs = [_flatten(run.config) for run in runs]
    keys = sorted(set().union(*configs))
    summaries = [_summary_scalars(run.summary) for run in runs]
    summary_keys = sorted(set().union(*summaries))
    header = [*RUN_COLUMNS, *(f"config.{k}" for k in keys), *(f"summary.{k}" for k in summary_keys)]
    rows = [
        [
            *_run_cells(run),
            *(config.get(k, _MISSING) for k in keys),
            *(summary.get(k, _MISSING) for k in summary_keys),
        ]
        for run, config, summary in zip(runs, configs, summaries)
    ]
    count = RUN_COLUMNS.index("history_line_count")
    for run, row in zip(runs, rows):
        row[count] = run.history_line_count
    return header, rows


def cell_text(value: Any) -> str:
    """A run-table cell as ``runs.csv`` writes it."""
    return "" if value is _MISSING else _config_cell(value)


def is_missing(value: Any) -> bool:
    return value is _MISSING


def run_table(runs: Sequence[RunInfo]) -> tuple[list[str], list[list[str]]]:
    """``runs.csv``'s header and rows as text, for every format that holds the run table.

    Columns: `RUN_COLUMNS`, then ``config.<key>`` (nested config flattened) and
    ``summary.<key>`` (scalar summary values), each sorted; a run without a key has ``""``.
    """
    header, rows = run_values(runs)
    return header, [[cell_text(v) for v in row] for row in rows]


def _write_runs_csv(path: Path, runs: list[RunInfo]) -> None:
    header, rows = run_table(runs)
    # backslashreplace: a lone surrogate in a run name (valid JSON, invalid UTF-8) must not sink
    # the whole export.
    with open(path, "x", encoding="utf-8", errors="backslashreplace", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        sync_file(f)


def _write_failed_csv(path: Path, failed: Mapping[str, str]) -> None:
    with open(path, "x", encoding="utf-8", errors="backslashreplace", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["id", "error"])
        for run_id, error in failed.items():
            writer.writerow([run_id, error])
        sync_file(f)


def read_table(path: Path) -> list[dict[str, str]]:
    """The rows of ``runs.csv`` or ``failed_runs.csv``, as text keyed by column."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        return []
    header = rows[0]
    return [dict(zip(header, row)) for row in rows[1:]]
