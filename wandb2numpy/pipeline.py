"""The pipeline end to end: config -> run query -> concurrent fetch -> assembly -> writers.

Everything that can be refused is refused before the first request: the whole config is
validated, and without `overwrite` existing output is reported, so a bad invocation costs nothing
and touches nothing. Experiments then run side by side on one shared history source (its worker
pool), so a config of many small experiments keeps every worker busy. The stages meet only through
their interfaces: `sources.HistorySource` (runs and their `Series`), `assemble` (arrays) and
`writers` (files).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
import numpy as np

from . import _memory
from .assemble import ABSENT_REASON, ExperimentResult, assemble_experiment
from .config import ExperimentConfig, load_config, parse_config
from .config.defaults import DEFAULT_CONCURRENCY, DEFAULT_PAGE_SIZE
from .config.filters import build_filters, describe_filters
from .config.names import output_path_problem
from .errors import ConfigError, OutputExistsError
from .grid import apply_grid
from .models import RunInfo
from .output import folder as writers
from .output.lock import output_locks
from .plan import ExperimentPlan, build_plan, known_values
from .runner import FetchStats, RetryPolicy, task_group
from .series import Series
from .sources import cache as incremental_cache
from .sources import xaxis
from .sources.base import HistorySource, RunEvent, RunOutcome
from .sources.service import WandbSource
from .wandb.client import ClientSettings

log = logging.getLogger(__name__)

ConfigSource = str | os.PathLike[str] | Mapping[str, Any] | Sequence[ExperimentConfig]


class Progress(Protocol):
    """Receives progress; the CLI draws tqdm bars with it, the Python API passes none."""

    def start(self, experiment: str, total_runs: int) -> None: ...

    def advance(self, experiment: str, run: RunInfo, rows: int, failed: bool) -> None: ...

    def finish(self, experiment: str) -> None: ...


@dataclass
class ExperimentReport:
    name: str
    result: ExperimentResult
    listed_runs: int
    files: list[Path] = field(default_factory=list)
    filters: Mapping[str, Any] = field(default_factory=dict)
    unchanged_runs: int = 0  # incremental mode: runs taken from the cache, not fetched
    # Why the experiment came back empty, one line each: no run matched its filters, no matched
    # run holds a requested field, or a field it names was logged by no matched run (exit 4).
    problems: list[str] = field(default_factory=list)
    grown_runs: int = 0  # incremental mode: fetched runs that read only their new steps
    incremental: bool = False
    # x_axis other than _step: rows dropped for want of an x value, per field, and how many
    # runs never logged the x_axis key at all
    x_dropped: dict[str, int] = field(default_factory=dict)
    runs_without_x: int = 0

    @property
    def fetched_runs(self) -> int:
        """Runs whose history was asked for (all of them, unless incremental)."""
        return self.listed_runs - self.unchanged_runs

    @property
    def skipped_runs(self) -> int:
        """Runs that matched the filters but hold none of the requested fields."""
        return self.listed_runs - len(self.result.runs) - len(self.result.failed_runs)


@dataclass
class ExportResult:
    experiments: dict[str, ExperimentReport]
    configs: list[ExperimentConfig]
    stats: FetchStats
    wall_s: float = 0.0

    @property
    def files(self) -> list[Path]:
        return [f for e in self.experiments.values() for f in e.files]

    @property
    def runs_exported(self) -> int:
        return sum(len(e.result.runs) for e in self.experiments.values())

    @property
    def runs_failed(self) -> int:
        return sum(len(e.result.failed_runs) for e in self.experiments.values())

    @property
    def runs_skipped(self) -> int:
        return sum(e.skipped_runs for e in self.experiments.values())

    @property
    def problems(self) -> list[str]:
        return [p for e in self.experiments.values() for p in e.problems]

    @property
    def exit_code(self) -> int:
        """0 done, 3 some runs failed, 4 something asked for came back empty (see `problems`)."""
        return 4 if self.problems else 3 if self.runs_failed else 0


def resolve_configs(config: ConfigSource, experiments: Sequence[str] | None) -> list[ExperimentConfig]:
    if isinstance(config, (str, os.PathLike)):
        return load_config(config, experiments)
    if isinstance(config, Mapping):
        return parse_config(config, experiments=experiments)
    configs = list(config)
    if experiments is not None:
        unknown = sorted(set(experiments) - {c.name for c in configs})
        if unknown:  # the same rule as for a config file
            raise ConfigError(
                f"experiment(s) not in the config: {', '.join(unknown)}; "
                f"available: {', '.join(c.name for c in configs)}"
            )
        wanted = set(experiments)
        configs = [c for c in configs if c.name in wanted]
    return configs


async def export_async(
    config: ConfigSource,
    *,
    experiments: Sequence[str] | None = None,
    overwrite: bool = False,
    write: bool = True,
    concurrency: int = DEFAULT_CONCURRENCY,
    settings: ClientSettings | None = None,
    policy: RetryPolicy | None = None,
    progress: Progress | None = None,
    incremental: bool = False,
    source: HistorySource | None = None,
    delete_foreign_files: bool = False,
) -> ExportResult:
    """Export every selected experiment; see `export` for the arguments.

    `source`: where history comes from instead of the W&B server named by `settings` (its owner
    closes it; `concurrency` and `policy` are then the source's own business).
    """
    _memory.map_large_blocks()  # freed arrays go back to the system (see _memory)
    started = time.perf_counter()
    overwrite = overwrite or incremental  # the cache rebuilds the folder from what it kept
    configs = resolve_configs(config, experiments)
    if incremental:
        for exp in configs:
            incremental_cache.check_incremental(exp, write=write)
    if write:
        _check_output_paths(configs)
    settings = _settings_for(configs, settings)
    locks = output_locks(c.output_path for c in configs) if write else contextlib.nullcontext()
    batch = writers.ExportWrite()  # all experiments are swapped in together, or none
    with locks, batch:
        if write and not overwrite:
            existing = [
                p for c in configs for p in writers.outputs_in_the_way(Path(c.output_path), c.name)
            ]
            if existing:
                raise OutputExistsError(existing)
        if write and overwrite and not delete_foreign_files:
            for c in configs:
                writers.check_overwrite(
                    Path(c.output_path), c.name, data_type=c.output_data_type, fields=c.fields
                )
        owned = source is None
        active: HistorySource = (
            WandbSource(settings, concurrency=concurrency, policy=policy) if source is None else source
        )
        reports: dict[str, ExperimentReport] = {}
        begin = getattr(progress, "begin", None)
        if begin is not None:  # bars in config order, before any listing returns
            begin([c.name for c in configs], active.stats)

        async def run_experiment(plan: ExperimentPlan) -> None:
            reports[plan.name] = await _export_one(
                plan,
                active,
                write=write,
                overwrite=overwrite,
                incremental=incremental,
                progress=progress,
                delete_foreign_files=delete_foreign_files,
                batch=batch,
            )

        try:
            async with task_group() as tg:
                if configs:
                    tg.start_soon(active.prepare)
                # Every listing first, then every verdict, then history: a mistyped x axis or
                # filter value is known before the first history request of any experiment.
                for plan in await plan_experiments(configs, active):
                    tg.start_soon(run_experiment, plan)
        finally:
            if owned:
                active.close()
        await anyio.to_thread.run_sync(batch.commit)
    ordered = {c.name: reports[c.name] for c in configs}
    return ExportResult(
        experiments=ordered, configs=configs, stats=active.stats, wall_s=time.perf_counter() - started
    )


async def plan_experiments(configs: Sequence[ExperimentConfig], source: HistorySource) -> list[ExperimentPlan]:
    """List every experiment's runs (side by side) and decide each plan from the listings.

    The one planning step the export and `--dry-run` share. Filter values are compared with the
    values every listing of the same project showed; no extra query is sent for hints."""
    listed: dict[str, list[RunInfo]] = {}

    async def one(exp: ExperimentConfig) -> None:
        listed[exp.name] = await source.list_runs(exp)
        log.info("%s: %d run(s) match %s", exp.name, len(listed[exp.name]), describe_filters(exp))

    async with task_group() as tg:
        for exp in configs:
            tg.start_soon(one, exp)
    known = known_values([(c, listed[c.name]) for c in configs])
    shape = _read_shape(source)
    return [build_plan(c, listed[c.name], known=known[(c.entity, c.project)], **shape) for c in configs]


def _read_shape(source: HistorySource) -> dict[str, Any]:
    """Workers, page size, batching and parquet reading of a source, as its read planning uses
    them (a source without settings reads as the defaults say)."""
    settings = getattr(source, "settings", None)
    return {
        "workers": int(getattr(source, "concurrency", DEFAULT_CONCURRENCY)),
        "page_size": int(getattr(settings, "page_size", DEFAULT_PAGE_SIZE)),
        "batch": bool(getattr(settings, "batch_small_runs", True)),
        "parquet": bool(getattr(settings, "parquet", False)),
    }


async def _export_one(
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
    exp = plan.config
    filters = build_filters(exp)
    for name, why in plan.left_out.items():
        log.warning("%s: history key %r left out: %s", exp.name, name, why)
    runs, fields = list(plan.runs), list(plan.fields)
    if plan.blocked:  # the listing already said there is nothing to fetch: no history request
        result = assemble_experiment(exp.name, [], [], [], failed={}, skipped=dict(plan.unlogged))
        report = ExperimentReport(name=exp.name, result=result, listed_runs=len(runs), filters=filters)
        report.problems = list(plan.problems)
        return report
    cache = None
    if incremental:  # refused (no write) or read before the first request
        cache = await anyio.to_thread.run_sync(
            functools.partial(incremental_cache.open_cache, exp, filters, write=write)
        )
        source = incremental_cache.CachedSource(source, cache)
    if progress is not None:
        progress.start(exp.name, len(runs))
    read = await _read(plan, source, progress)
    skipped: dict[str, str] = {}
    for o in read.outcomes:
        for key, reason in o.non_numeric.items():
            skipped.setdefault(key, reason)
    for key, reason in skipped.items():
        log.warning("%s: field '%s' left out: %s", exp.name, key, reason)
    skipped.update(plan.unlogged)
    failed = {r.id: o.error for r, o in zip(runs, read.outcomes) if o.error}
    result = assemble_experiment(
        exp.name, runs, read.series, [f for f in fields if f not in skipped], failed=failed, skipped=skipped,
        consume=cache is None,  # the incremental cache saves the series after the write
    )
    result.x_axis = exp.x_axis
    if exp.grid is not None and result.fields:
        result = apply_grid(result, exp.grid)
    report = ExperimentReport(name=exp.name, result=result, listed_runs=len(runs), filters=filters)
    report.problems = list(plan.problems) + _read_problems(plan, result)
    report.x_dropped, report.runs_without_x = read.x_dropped, read.runs_without_x
    if cache is not None:
        report.unchanged_runs, report.grown_runs, report.incremental = cache.unchanged, cache.grown, True
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


@dataclass
class _Read:
    outcomes: list[RunOutcome]
    series: list[Mapping[str, Series] | None]
    x_dropped: dict[str, int] = field(default_factory=dict)
    runs_without_x: int = 0


async def _read(plan: ExperimentPlan, source: HistorySource, progress: Progress | None) -> _Read:
    """The plan's history through the source: by `_step`, or joined on the x-axis key."""
    exp = plan.config

    def on_run(event: RunEvent, run: RunInfo, rows: int) -> None:
        if progress is not None:
            progress.advance(exp.name, run, rows, event == "run_failed")

    runs, fields = list(plan.runs), list(plan.fields)
    if exp.x_axis == xaxis.DEFAULT_X_AXIS:
        outcomes = await source.read_runs(runs, fields, samples=exp.history_samples, progress=on_run)
        return _Read(outcomes, [None if o.error else o.series for o in outcomes])

    def reread(n: int) -> None:
        log.info("%s: %d run(s) did not log %s in the rows of every field; reading them in full",
                 exp.name, n, exp.x_axis)

    on_key = await xaxis.read_runs(source, runs, fields, exp.x_axis, samples=exp.history_samples,
                                   progress=on_run, on_reread=reread)
    if on_key.dropped:
        log.warning("%s: %s row(s) without x_axis '%s' dropped (%s)", exp.name, f"{sum(on_key.dropped.values()):,}",
                    exp.x_axis, ", ".join(f"{f} {n:,}" for f, n in on_key.dropped.items()))
    return _Read(on_key.outcomes, list(on_key.series), on_key.dropped, on_key.runs_without_key)


def _read_problems(plan: ExperimentPlan, result: ExperimentResult) -> list[str]:
    """What only the history could tell, for exit code 4: no run held a value of any field, or a
    named field holds no value in any matched run. Runs that failed are exit 3's."""
    exp = plan.config
    if result.failed_runs:
        return []
    if not result.runs:
        return [] if plan.problems else [f"{exp.name}: none of the {len(plan.runs)} matched run(s) holds a requested field"]
    if exp.fields is None:
        return []
    return [f"{exp.name}: field '{name}' holds no value in any matched run"
            for name, reason in result.skipped_fields.items() if reason == ABSENT_REASON and name not in plan.unlogged]


def _check_output_paths(configs: Sequence[ExperimentConfig]) -> None:
    """An `output_path` that is a file (or lies under one) is refused before any request."""
    for exp in configs:
        path = Path(exp.output_path)
        problem = output_path_problem(path)
        if problem:
            raise ConfigError(problem, source=exp.source, experiment=exp.name, key="output_path")
        for part in (path, *path.parents):
            try:
                is_file = part.exists() and not part.is_dir()
            except OSError as exc:
                raise ConfigError(f"cannot look at {part}: {exc.strerror or exc}", source=exp.source,
                                  experiment=exp.name, key="output_path") from None
            if is_file:
                what = "is a file" if part == path else f"lies under {part}, which is a file"
                raise ConfigError(
                    f"{path} {what}, not a folder", source=exp.source, experiment=exp.name, key="output_path"
                )


def plan_export(
    config: ConfigSource,
    *,
    experiments: Sequence[str] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    settings: ClientSettings | None = None,
    policy: RetryPolicy | None = None,
    source: HistorySource | None = None,
) -> list[ExperimentPlan]:
    """The plans `export` would execute, from the run listings alone: what `--dry-run` prints.
    No history is fetched and nothing is written."""
    configs = resolve_configs(config, experiments)

    async def run() -> list[ExperimentPlan]:
        active = source if source is not None else WandbSource(
            _settings_for(configs, settings), concurrency=concurrency, policy=policy)
        try:
            return await plan_experiments(configs, active)
        finally:
            if source is None:
                active.close()

    return anyio.run(run)


def _settings_for(configs: Sequence[ExperimentConfig], settings: ClientSettings | None) -> ClientSettings:
    """The caller's settings, with the first experiment's entity when none is set: saves wandb's
    `GetDefaultEntity` round trip at start-up."""
    settings = settings or ClientSettings()
    if settings.entity is None and configs:
        settings = dataclasses.replace(settings, entity=configs[0].entity)
    return settings


def export(
    config: ConfigSource,
    *,
    experiments: Sequence[str] | None = None,
    overwrite: bool = False,
    write: bool = True,
    concurrency: int = DEFAULT_CONCURRENCY,
    settings: ClientSettings | None = None,
    policy: RetryPolicy | None = None,
    progress: Progress | None = None,
    incremental: bool = False,
    source: HistorySource | None = None,
    delete_foreign_files: bool = False,
) -> ExportResult:
    """Export experiments and, unless `write=False`, write their files.

    `config` is a YAML path, a parsed config mapping or a list of `ExperimentConfig`.
    `experiments`: names to pick. `settings`: `ClientSettings` (base URL, API key, timeout).
    `policy`: `RetryPolicy`. `progress`: receives progress (the CLI draws bars with it).
    `incremental`: fetch only runs that changed since the last export into the same folder.
    `source`: a `sources.HistorySource` to read instead of the W&B server (tests, other readers).
    `overwrite` replaces the files an earlier export wrote (its manifest lists them) and keeps
    every other file; a folder no export wrote is refused (ForeignFilesError) unless
    `delete_foreign_files`, which replaces each experiment folder as a whole.
    While writing, each output folder is locked against a second export.
    """
    return anyio.run(
        functools.partial(
            export_async,
            config,
            experiments=experiments,
            overwrite=overwrite,
            write=write,
            concurrency=concurrency,
            settings=settings,
            policy=policy,
            progress=progress,
            incremental=incremental,
            source=source,
            delete_foreign_files=delete_foreign_files,
        )
    )


def export_data(
    config: ConfigSource,
    experiment_list: Sequence[str] | None = None,
    by_group_and_job_type: bool = False,
    **kwargs: Any,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The original tool's entry point: `(data, configs)` with one array per field per experiment.

    Nothing is written. `data[experiment][field]` is a (runs, steps) float64 array, with
    `by_group_and_job_type` nested as `data[experiment][group][job_type][field]`. `configs` are the
    merged per-experiment config dicts. For run ids, steps and the run table use `export`.
    """
    kwargs.setdefault("write", False)
    result = export(config, experiments=experiment_list, **kwargs)
    data: dict[str, Any] = {}
    for name, report in result.experiments.items():
        res = report.result
        if not by_group_and_job_type:
            data[name] = {f: arr.values for f, arr in res.fields.items()}
            continue
        nested: dict[str, dict[str, dict[str, np.ndarray]]] = {}
        rows_by_key: dict[tuple[Any, Any], list[int]] = {}
        for i, run in enumerate(res.runs):
            rows_by_key.setdefault((run.group, run.job_type), []).append(i)
        for (group, job_type), rows in rows_by_key.items():
            per_field = {}
            for f, arr in res.fields.items():
                steps = arr.steps[rows]
                width = int(np.max(np.sum(~np.isnan(steps), axis=1), initial=0))
                per_field[f] = arr.values[rows, :width]
            nested.setdefault(group, {})[job_type] = per_field
        data[name] = nested
    return data, [dict(c.raw) for c in result.configs]
