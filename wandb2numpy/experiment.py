"""One experiment of an export: its plan read, assembled and staged for writing.

The pipeline runs one of these per experiment, side by side on the export's shared source; this
module is the read -> assemble -> write part of the one-way flow, given the plan.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import anyio

from .assemble import ABSENT_REASON, ExperimentResult, apply_grid, assemble_experiment
from .config.filters import build_filters
from .output import folder as writers
from .plan import ExperimentPlan
from .result import ExperimentReport, Progress
from .sources import PlanRead, read_plan
from .sources.base import HistorySource

__all__ = ["export_experiment"]

log = logging.getLogger("wandb2numpy.pipeline")  # the pipeline's messages, as users filter them


async def export_experiment(
    plan: ExperimentPlan,
    source: HistorySource,
    *,
    write: bool,
    overwrite: bool,
    incremental: bool,
    progress: Progress | None,
    batch: writers.ExportWrite,
    delete_foreign_files: bool = False,
) -> ExperimentReport:
    """Read the plan's history through `source`, assemble it and stage its files in `batch` (the
    export swaps every experiment in at once); a blocked plan sends no request at all."""
    exp = plan.config
    filters = build_filters(exp)
    for name, why in plan.left_out.items():
        log.warning("%s: history key %r left out: %s", exp.name, name, why)
    runs = list(plan.runs)
    if plan.blocked:  # the listing already said there is nothing to fetch: no history request
        result = assemble_experiment(exp.name, [], [], [], failed={}, skipped=dict(plan.unlogged))
        report = ExperimentReport(name=exp.name, result=result, listed_runs=len(runs), filters=filters)
        report.problems = list(plan.problems)
        return report
    cache = None
    if incremental:  # refused (no write) or read before the first request
        from .sources import cache as incremental_cache  # loaded for incremental exports only

        cache = await anyio.to_thread.run_sync(
            functools.partial(incremental_cache.open_cache, exp, filters, write=write)
        )
        source = incremental_cache.CachedSource(source, cache)
    if progress is not None:
        progress.start(exp.name, len(runs))
    read = await read_plan(plan, source, progress)
    result = _assemble(plan, read, consume=cache is None)  # the incremental cache saves the series after the write
    report = ExperimentReport(name=exp.name, result=result, listed_runs=len(runs), filters=filters)
    report.problems = list(plan.problems) + history_problems(plan, result)
    report.x_dropped, report.runs_without_x = read.x_dropped, read.runs_without_x
    if cache is not None:
        report.unchanged_runs, report.grown_runs, report.incremental = cache.unchanged, cache.grown, True
        report.gone_runs = list(cache.gone)
    if write and not result.runs and not result.failed_runs:
        # nothing to write: an earlier export of this experiment, if any, is left as it was
        log.info("%s: no run exported; nothing written", exp.name)
    elif write:
        # staged now, swapped in with the other experiments once all succeeded (`batch.commit`);
        # the cache's state only after that: it never runs ahead of the arrays
        then = None if cache is None else functools.partial(cache.commit, runs, read.outcomes)
        report.files = await anyio.to_thread.run_sync(
            functools.partial(
                batch.stage,
                result,
                Path(exp.output_path),
                data_type=exp.output_data_type,
                overwrite=overwrite,
                delete_foreign_files=delete_foreign_files,
                then=then,
            )
        )
    if progress is not None:
        progress.finish(exp.name)
    return report


def _assemble(plan: ExperimentPlan, read: PlanRead, *, consume: bool) -> ExperimentResult:
    """The arrays of what was read, fields the runs hold only as non-numeric values left out with a
    warning, then the grid when the config asks for one."""
    exp = plan.config
    skipped: dict[str, str] = {}
    for o in read.outcomes:
        for key, reason in o.non_numeric.items():
            skipped.setdefault(key, reason)
    for key, reason in skipped.items():
        log.warning("%s: field '%s' left out: %s", exp.name, key, reason)
    skipped.update(plan.unlogged)
    runs = list(plan.runs)
    failed = {r.id: o.error for r, o in zip(runs, read.outcomes) if o.error}
    result = assemble_experiment(
        exp.name,
        runs,
        read.series,
        [f for f in plan.fields if f not in skipped],
        failed=failed,
        skipped=skipped,
        consume=consume,
    )
    result.x_axis = exp.x_axis
    if exp.grid is not None and result.fields:
        result = apply_grid(result, exp.grid)
    return result


def history_problems(plan: ExperimentPlan, result: ExperimentResult) -> list[str]:
    """What only the history could tell, for exit code 4: no run held a value of any field, or a
    named field holds no value in any matched run. Runs that failed are exit 3's."""
    exp = plan.config
    if result.failed_runs:
        return []
    if not result.runs:
        return (
            []
            if plan.problems
            else [f"{exp.name}: none of the {len(plan.runs)} matched run(s) holds a requested field"]
        )
    if exp.fields is None:
        return []
    return [
        f"{exp.name}: field '{name}' holds no value in any matched run"
        for name, reason in result.skipped_fields.items()
        if reason == ABSENT_REASON and name not in plan.unlogged
    ]
