"""Stack per-run series into NaN-padded float64 arrays with one row per run.

Sources hand over `series.Series` (already exact float64), so the writers and the Python API
never look at wire values; this stage only decides which runs and fields make the arrays.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping, MutableMapping, MutableSequence, Sequence
from dataclasses import dataclass, replace
from dataclasses import field as dc_field

import numpy as np

from .config import GridSpec
from .config.defaults import DEFAULT_X_AXIS
from .grid import GridRange, grid_range, make_grid, resample, run_label, run_ranges
from .models import RunInfo
from .series import Series

__all__ = [
    "ABSENT_REASON",
    "NOT_FETCHED_REASON",
    "ExperimentResult",
    "FieldArrays",
    "assemble_experiment",
    "stack_field",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FieldArrays:
    """One field across runs: row i is run i, padded with NaN after its last value."""

    values: np.ndarray
    steps: np.ndarray


def stack_field(
    series: MutableSequence[Series | None], *, release: bool = False, like: SharedSteps | None = None
) -> FieldArrays:
    """Stack per-run series into NaN-padded 2-D arrays.

    Padding goes at the end (not aligned by step) so each row keeps exactly the values the run
    logged; the steps array says where each value belongs. The arrays are filled row by row into
    untouched memory, and with `release` each run's series is let go once copied, so stacking
    needs about the arrays' size once, not twice (the series and the arrays side by side).

    `like`: the steps of a field stacked before. When every run's series holds the very same
    steps array as there (fields logged together, read from one file), that steps array is
    shared (and made read-only) instead of copied again: a quarter of the stacking of four such fields.
    """
    n = len(series)
    width = max((len(s) for s in series if s is not None), default=0)
    sources = [s.steps if s is not None and len(s) else None for s in series]
    shared = like is not None and like.same(sources)
    values = np.empty((n, width), dtype=np.float64)
    steps = like.steps if like is not None and shared else np.empty((n, width), dtype=np.float64)
    for i in range(n):
        s = series[i]
        k = len(s) if s is not None else 0
        if s is not None and k:
            values[i, :k] = s.values
            if not shared:
                steps[i, :k] = s.steps
        values[i, k:] = np.nan
        if not shared:
            steps[i, k:] = np.nan
        if release:
            series[i] = None
    if like is not None and shared:
        steps.flags.writeable = False  # one array in two fields: a write to one would change both
    elif like is not None:
        like.remember(sources, steps)
    return FieldArrays(values=values, steps=steps)


class SharedSteps:
    """The last stacked field's per-run steps arrays (weakly: they are not kept alive for this)
    and the 2-D array made of them."""

    def __init__(self) -> None:
        self._refs: list[weakref.ref[np.ndarray] | None] = []
        self.steps = np.empty((0, 0))

    def same(self, sources: list[np.ndarray | None]) -> bool:
        if len(sources) != len(self._refs) or all(a is None for a in sources):
            return False
        return all((r is None) if a is None else (r is not None and r() is a) for a, r in zip(sources, self._refs))

    def remember(self, sources: list[np.ndarray | None], steps: np.ndarray) -> None:
        self._refs = [None if a is None else weakref.ref(a) for a in sources]
        self.steps = steps


@dataclass
class ExperimentResult:
    """Everything the writers need for one experiment; row i of every array is runs[i].

    `x_axis` is the history key the steps arrays hold (``_step`` unless the config names
    another). With a `grid`, every field is sampled at the same x values: `grid` is that 1-D
    axis, each field's `steps` is a read-only broadcast of it, and formats write the axis once
    (``x``) instead of a steps file per field; `grid_range` says which span it covers and why.
    """

    name: str
    runs: list[RunInfo]
    fields: dict[str, FieldArrays]
    skipped_fields: dict[str, str] = dc_field(default_factory=dict)
    failed_runs: dict[str, str] = dc_field(default_factory=dict)
    x_axis: str = DEFAULT_X_AXIS
    grid: np.ndarray | None = None
    grid_range: GridRange | None = None


ABSENT_REASON = "absent from every exported run"
NOT_FETCHED_REASON = "history could not be fetched"


def assemble_experiment(
    name: str,
    runs: Sequence[RunInfo],
    per_run: Sequence[Mapping[str, Series] | None],
    fields: Sequence[str],
    *,
    failed: Mapping[str, str] = {},  # noqa: B006 - read only
    skipped: Mapping[str, str] = {},  # noqa: B006 - read only
    consume: bool = False,
) -> ExperimentResult:
    """Build the per-experiment arrays with one shared run order.

    A run is exported when it holds at least one requested (not skipped) field, so every
    array row is a run with some data; runs with none of the fields are left out rather than
    becoming all-NaN rows in every file. Runs whose history failed are listed in
    ``failed_runs`` and left out. Fields that are skipped or that no exported run holds are
    reported in ``skipped_fields`` (in config order) instead of being written as empty arrays.
    With ``consume``, each series is removed from its run's dict as it is stacked (the caller keeps
    nothing of them), which bounds peak memory near the size of the arrays.
    """
    if len(runs) != len(per_run):
        raise ValueError(f"{len(runs)} runs but {len(per_run)} per-run results")
    wanted = [f for f in dict.fromkeys(fields) if f not in skipped]

    failed_runs = dict(failed)
    exported: list[RunInfo] = []
    exported_data: list[Mapping[str, Series]] = []
    for run, data in zip(runs, per_run):
        if data is None or run.id in failed:
            failed_runs.setdefault(run.id, NOT_FETCHED_REASON)
            continue
        if any((s := data.get(f)) is not None and len(s) for f in wanted):
            exported.append(run)
            exported_data.append(data)
        else:
            log.debug("run %s holds none of the requested fields; not exported", run.id)

    arrays: dict[str, FieldArrays] = {}
    skipped_fields: dict[str, str] = {}
    like = SharedSteps()
    for f in dict.fromkeys(fields):
        if f in skipped:
            skipped_fields[f] = skipped[f]
            continue
        column: list[Series | None] = [
            data.pop(f, None) if consume and isinstance(data, MutableMapping) else data.get(f) for data in exported_data
        ]
        if not any(s is not None and len(s) for s in column):
            skipped_fields[f] = ABSENT_REASON
            continue
        arrays[f] = stack_field(column, release=consume, like=like)
        del column
    for f, reason in skipped.items():
        skipped_fields.setdefault(f, reason)

    return ExperimentResult(
        name=name,
        runs=exported,
        fields=arrays,
        skipped_fields=skipped_fields,
        failed_runs=failed_runs,
    )


def apply_grid(result: ExperimentResult, spec: GridSpec) -> ExperimentResult:
    """`result` with every field resampled on one grid built from all its runs and fields.

    When some runs cover much less than the median run, a warning names them (they cut a
    ``common`` range short, or thin out an ``all`` range); the range goes with the result.
    """
    starts, ends = run_ranges(result.fields.values())
    span = grid_range(spec, starts, ends, [run_label(r.name, r.id) for r in result.runs])
    message = span.warning(result.name, result.x_axis)
    if message:
        log.warning("%s", message)
    x = make_grid(spec, starts, ends, span)
    fields = {}
    for name, arrays in result.fields.items():
        gridded = resample(arrays.values, arrays.steps, x, spec.method)
        steps = np.broadcast_to(x, gridded.shape)
        fields[name] = FieldArrays(values=gridded, steps=steps)
    return replace(result, fields=fields, grid=x, grid_range=span)
