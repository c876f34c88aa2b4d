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
import difflib
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
from .config.filters import build_filters, describe_filters
from .config.names import check_field
from .errors import ConfigError, OutputError, OutputExistsError
from .grid import apply_grid
from .models import RunInfo
from .output import folder as writers
from .output.lock import output_locks
from .plan.reads import all_numeric_fields
from .runner import DEFAULT_CONCURRENCY, DeadlinePassed, FetchStats, RetryPolicy, task_group
from .series import Series
from .sources import cache as incremental_cache
from .sources import xaxis
from .sources.base import HistorySource, RunEvent
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
    # incremental mode: runs the last export cached that the listing no longer shows (deleted on
    # the server, or no longer matching the filters), by id
    gone_runs: list[str] = field(default_factory=list)
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
    settings = settings or ClientSettings()
    if settings.entity is None and configs:
        settings = dataclasses.replace(settings, entity=configs[0].entity)
    locks = output_locks(c.output_path for c in configs) if write else contextlib.nullcontext()
    with locks:
        if write and not overwrite:
            existing = [
                p for c in configs for p in writers.existing_outputs(Path(c.output_path), c.name)
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

        async def run_experiment(exp: ExperimentConfig) -> None:
            reports[exp.name] = await _export_one(
                exp,
                active,
                write=write,
                overwrite=overwrite,
                incremental=incremental,
                progress=progress,
                delete_foreign_files=delete_foreign_files,
            )

        try:
            async with task_group() as tg:
                if configs:
                    tg.start_soon(active.prepare)
                for exp in configs:
                    tg.start_soon(run_experiment, exp)
        finally:
            if owned:
                active.close()
    ordered = {c.name: reports[c.name] for c in configs}
    return ExportResult(
        experiments=ordered, configs=configs, stats=active.stats, wall_s=time.perf_counter() - started
    )


async def _export_one(
    exp: ExperimentConfig,
    source: HistorySource,
    *,
    write: bool,
    overwrite: bool,
    incremental: bool,
    progress: Progress | None,
    delete_foreign_files: bool = False,
) -> ExperimentReport:
    filters = build_filters(exp)
    cache = None
    if incremental:  # refused (no write) or read before the first request
        cache = await anyio.to_thread.run_sync(
            functools.partial(incremental_cache.open_cache, exp, filters, write=write)
        )
    if cache is not None:
        source = incremental_cache.CachedSource(source, cache)
    cut: str | None = None  # the export's deadline passed before the listing was complete
    try:
        runs = await source.list_runs(exp)
    except DeadlinePassed as exc:
        runs, cut = [], f"{exp.name}: runs not listed: {exc}"
        log.error("%s", cut)
    log.info("%s: %d run(s) match %s", exp.name, len(runs), describe_filters(exp))
    fields = list(exp.fields) if exp.fields is not None else _safe_fields(exp.name, all_numeric_fields(runs))
    if progress is not None:
        progress.start(exp.name, len(runs))

    def on_run(event: RunEvent, run: RunInfo, rows: int) -> None:
        if progress is not None:
            progress.advance(exp.name, run, rows, event == "run_failed")

    on_x = exp.x_axis != xaxis.DEFAULT_X_AXIS
    per_run: list[Mapping[str, Series] | None]
    if on_x:
        def reread(n: int) -> None:
            log.info("%s: %d run(s) did not log %s in the rows of every field; reading them in full",
                     exp.name, n, exp.x_axis)

        on_key = await xaxis.read_runs(source, runs, fields, exp.x_axis, samples=exp.history_samples,
                                       progress=on_run, on_reread=reread)
        outcomes, per_run = on_key.outcomes, list(on_key.series)
    else:
        outcomes = await source.read_runs(runs, fields, samples=exp.history_samples, progress=on_run)
        per_run = [None if o.error else o.series for o in outcomes]
    failed = {r.id: o.error for r, o in zip(runs, outcomes) if o.error}
    skipped: dict[str, str] = {}
    for o in outcomes:
        for key, reason in o.non_numeric.items():
            skipped.setdefault(key, reason)
    for key, reason in skipped.items():
        log.warning("%s: field '%s' left out: %s", exp.name, key, reason)
    unknown = _unknown_fields(exp, runs, fields, skipped)
    skipped.update(unknown)
    result = assemble_experiment(
        exp.name,
        runs,
        per_run,
        [f for f in fields if f not in skipped],
        failed=failed,
        skipped=skipped,
        consume=cache is None,  # the incremental cache saves the series after the write
    )
    result.x_axis = exp.x_axis
    if exp.grid is not None and result.fields:
        result = apply_grid(result, exp.grid)
    report = ExperimentReport(name=exp.name, result=result, listed_runs=len(runs), filters=filters)
    report.problems = [cut] if cut else _problems(exp, runs, result, unknown)
    if on_x:
        report.x_dropped = dropped = on_key.dropped
        report.runs_without_x = on_key.runs_without_key
        report.problems += [f"{exp.name}: x_axis '{exp.x_axis}' is {reason}" for reason in _not_logged([exp.x_axis], runs).values()]
        if dropped:
            log.warning("%s: %s row(s) without x_axis '%s' dropped (%s)", exp.name, f"{sum(dropped.values()):,}",
                        exp.x_axis, ", ".join(f"{f} {n:,}" for f, n in dropped.items()))
    if cache is not None:
        report.unchanged_runs = cache.unchanged
        report.grown_runs = cache.grown
        report.gone_runs = list(cache.gone)
        report.incremental = True
    if write and not result.runs and not result.failed_runs:
        # nothing to write: an earlier export of this experiment, if any, is left as it was
        log.info("%s: no run exported; nothing written", exp.name)
    elif write:
        report.files = await anyio.to_thread.run_sync(
            functools.partial(
                writers.write_experiment,
                result,
                Path(exp.output_path),
                data_type=exp.output_data_type,
                overwrite=overwrite,
                delete_foreign_files=delete_foreign_files,
            )
        )
        if cache is not None:  # only once the arrays are in place: state never runs ahead of them
            await anyio.to_thread.run_sync(cache.commit, runs, outcomes)
    if progress is not None:
        progress.finish(exp.name)
    return report


def _unknown_fields(
    exp: ExperimentConfig, runs: Sequence[RunInfo], fields: Sequence[str], skipped: Mapping[str, str]
) -> dict[str, str]:
    """Fields named in the config that no matched run logged (by the listing's history keys),
    with the nearest logged key as a suggestion: a typo reads as a typo, not as missing data."""
    if exp.fields is None:
        return {}
    return _not_logged([name for name in fields if name not in skipped], runs)


def _not_logged(names: Sequence[str], runs: Sequence[RunInfo]) -> dict[str, str]:
    """Of `names`, those no run logged, each with why and the nearest logged key. Nothing when
    the listing gave no history keys to judge by."""
    if not runs or not all(r.history_keys for r in runs):
        return {}
    logged = sorted({k for r in runs for k in r.history_keys})
    out: dict[str, str] = {}
    for name in names:
        if any(name in r.history_keys for r in runs):
            continue
        close = difflib.get_close_matches(name, logged, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        out[name] = f"logged by none of the {len(runs)} matched run(s){hint}"
    return out


def _problems(
    exp: ExperimentConfig, runs: Sequence[RunInfo], result: ExperimentResult, unknown: Mapping[str, str]
) -> list[str]:
    """What makes the experiment empty, for exit code 4: no run matched, a named field no matched
    run logged, or matched runs that hold none of the fields. Runs that failed are exit 3's."""
    if not runs:
        return [f"{exp.name}: no run matched {describe_filters(exp)} in {exp.entity}/{exp.project}"]
    out = [f"{exp.name}: field '{name}' {reason}" for name, reason in unknown.items()]
    if not result.runs and not result.failed_runs and not out:
        out.append(f"{exp.name}: none of the {len(runs)} matched run(s) holds a requested field")
    elif exp.fields is not None and not result.failed_runs:
        for name, reason in result.skipped_fields.items():
            if reason == ABSENT_REASON and name not in unknown:
                out.append(f"{exp.name}: field '{name}' holds no value in any matched run")
    return out


def _check_output_paths(configs: Sequence[ExperimentConfig]) -> None:
    """An `output_path` that is a file (or lies under one) is refused before any request."""
    for exp in configs:
        path = Path(exp.output_path)
        for part in (path, *path.parents):
            if part.exists() and not part.is_dir():
                what = "is a file" if part == path else f"lies under {part}, which is a file"
                raise ConfigError(
                    f"{path} {what}, not a folder", experiment=exp.name, key="output_path"
                )


def _safe_fields(experiment: str, names: Sequence[str]) -> list[str]:
    """`fields: all` takes key names from the server; one that cannot be a file name is left out
    with a warning instead of failing the export after everything was fetched."""
    safe = []
    for name in names:
        try:
            check_field(name)
        except OutputError as exc:
            log.warning("%s: history key %r left out: %s", experiment, name, exc)
            continue
        safe.append(name)
    return safe


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
