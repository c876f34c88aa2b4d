"""The export end to end: config -> run listing -> plan -> concurrent read -> assembly -> output.

Everything that can be refused is refused before the first request: the config is validated,
output paths and files in the way are checked under the output locks, then every experiment is
listed and planned (`plan`), so a mistyped field, x axis or filter value costs listings only.
Listing pages no later page could block are read while the listing goes on (`sources.ahead`);
the plans of the whole listings alone decide what is written.
Experiments then run side by side on one shared history source (`experiment.export_experiment`),
so a config of many small experiments keeps every worker busy, and their folders are swapped in
together at the end; experiments whose `source:` names run folders read those instead
(`sources.choose`). `plan_export` is the same up to the plans, for `--dry-run`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

from . import _memory
from .config import ConfigSource, ExperimentConfig, resolve_configs, server_entity
from .config.defaults import DEFAULT_CONCURRENCY, DEFAULT_LISTING_PAGE, DEFAULT_PAGE_SIZE
from .config.filters import build_filters, describe_filters
from .experiment import export_experiment
from .models import RunInfo
from .output import folder as writers
from .output.checks import check_fields, check_output_paths, check_outputs
from .output.lock import output_locks
from .plan import ExperimentPlan, build_plan, known_values
from .result import ExperimentReport, ExportResult, Progress
from .runner import RetryPolicy, task_group
from .sources.ahead import ReadAhead
from .sources.base import HistorySource
from .sources.choose import Sources
from .wandb.client import ClientSettings, start_core

__all__ = ["ExperimentReport", "ExportResult", "Progress", "export", "export_async", "plan_experiments", "plan_export"]

log = logging.getLogger(__name__)


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
    check_fields(configs)  # a config error, as the schema's, before any request
    if incremental:
        from .sources import cache as incremental_cache  # loaded for incremental exports only

        for exp in configs:
            incremental_cache.check_incremental(exp, write=write)
    if write:
        check_output_paths(configs)
    settings = _settings_for(configs, settings)
    if source is None and any(c.run_folders is None for c in configs):
        # The config is known good and names a W&B server: wandb-core starts now, while the
        # folders are checked and the export loads, as the command starts it (its 0.2 s poll for
        # wandb-core's port otherwise came after all that: a script calling `export` had its
        # first request 0.2-0.4 s after a bare `wandb.Api()` script's). No request is sent.
        start_core(settings)
    locks = output_locks(c.output_path for c in configs) if write else contextlib.nullcontext()
    batch = writers.ExportWrite()  # all experiments are swapped in together, or none
    with locks, batch:
        if write:
            check_outputs(configs, overwrite=overwrite, delete_foreign_files=delete_foreign_files)
        sources = Sources(
            configs,
            service=functools.partial(_service, settings, concurrency, policy),
            given=source,
            incremental=incremental,
        )
        try:
            reports = await _run_all(
                configs,
                sources,
                progress,
                functools.partial(
                    export_experiment,
                    write=write,
                    overwrite=overwrite,
                    incremental=incremental,
                    progress=progress,
                    delete_foreign_files=delete_foreign_files,
                    batch=batch,
                ),
                read_ahead=not incremental,  # the cache decides per run what to read
            )
        finally:
            sources.close()
        await anyio.to_thread.run_sync(batch.commit)
    return ExportResult(experiments=reports, configs=configs, stats=sources.stats, wall_s=time.perf_counter() - started)


async def _run_all(
    configs: Sequence[ExperimentConfig],
    sources: Sources,
    progress: Progress | None,
    one: Callable[[ExperimentPlan, HistorySource], Awaitable[ExperimentReport]],
    *,
    read_ahead: bool = True,
) -> dict[str, ExperimentReport]:
    """Every listing first, then every verdict, then history: a mistyped x axis or filter value
    is known before the first history request of any experiment. Only listing pages no later
    page could block are read while the listing goes on (`read_ahead`, see `sources.ahead`);
    the plans alone decide what is written. Reports in config order."""
    reports: dict[str, ExperimentReport] = {}
    begin = getattr(progress, "begin", None)
    if begin is not None:  # bars in config order, before any listing returns
        begin([c.name for c in configs], sources.primary.stats)

    async def run(plan: ExperimentPlan, ahead: ReadAhead | None) -> None:
        source = sources.of(plan.config)
        if ahead is not None:
            source = ahead.source_for(plan.name, plan.blocked, source)
        reports[plan.name] = await one(plan, source)

    async with task_group() as tg:
        if configs:
            tg.start_soon(sources.prepare)
        ahead = ReadAhead(tg) if read_ahead else None
        for plan in await plan_experiments(configs, sources, ahead=ahead):
            tg.start_soon(run, plan, ahead)
    return {c.name: reports[c.name] for c in configs}


async def plan_experiments(
    configs: Sequence[ExperimentConfig],
    sources: Sources,
    *,
    incremental: bool = False,
    ahead: ReadAhead | None = None,
) -> list[ExperimentPlan]:
    """List every experiment's runs (side by side) and decide each plan from the listings.

    The one planning step the export and `--dry-run` share. Filter values are compared with the
    values every listing of the same project showed; no extra query is sent for hints. `ahead`
    (the export's): reads listing pages while later ones are coming; the plans are the same."""
    listed: dict[str, list[RunInfo]] = {}

    async def one(exp: ExperimentConfig) -> None:
        source = sources.of(exp)
        listed[exp.name] = await (source.list_runs(exp) if ahead is None else ahead.list_runs(exp, source))
        log.info("%s: %d run(s) match %s", exp.name, len(listed[exp.name]), describe_filters(exp))

    async with task_group() as tg:
        for exp in configs:
            tg.start_soon(one, exp)
    known = known_values([(c, listed[c.name]) for c in configs])
    shape = _read_shape(sources.primary)
    plans = [build_plan(c, listed[c.name], known=known[(c.entity, c.project)], **shape) for c in configs]
    if not incremental:
        return plans
    from .sources import cache as incremental_cache

    out = []
    for plan in plans:  # what each cache would serve, as `--dry-run --incremental` shows it
        c = plan.config
        cached = await anyio.to_thread.run_sync(
            incremental_cache.planned_split, c, build_filters(c), plan.runs, plan.fields
        )
        out.append(build_plan(c, plan.runs, known=known[(c.entity, c.project)], cached=cached, **shape))
    return out


def _read_shape(source: HistorySource) -> dict[str, Any]:
    """Workers, page sizes, batching and parquet reading of a source, as its read planning uses
    them (a source without settings reads as the defaults say)."""
    settings = getattr(source, "settings", None)
    return {
        "workers": int(getattr(source, "concurrency", DEFAULT_CONCURRENCY)),
        "page_size": int(getattr(settings, "page_size", DEFAULT_PAGE_SIZE)),
        "batch": bool(getattr(settings, "batch_small_runs", True)),
        "parquet": bool(getattr(settings, "parquet", False)),
        "listing_page": int(getattr(settings, "listing_page", DEFAULT_LISTING_PAGE)),
    }


def plan_export(
    config: ConfigSource,
    *,
    experiments: Sequence[str] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    settings: ClientSettings | None = None,
    policy: RetryPolicy | None = None,
    source: HistorySource | None = None,
    incremental: bool = False,
) -> list[ExperimentPlan]:
    """The plans `export` would execute, from the run listings alone: what `--dry-run` prints.
    No history is fetched and nothing is written. `incremental`: count what the experiments'
    caches would serve as served (read, never written)."""
    configs = resolve_configs(config, experiments)
    check_fields(configs)  # a config error, as the schema's, before any request

    async def run() -> list[ExperimentPlan]:
        sources = Sources(
            configs,
            service=functools.partial(_service, _settings_for(configs, settings), concurrency, policy),
            given=source,
        )
        try:
            return await plan_experiments(configs, sources, incremental=incremental)
        finally:
            sources.close()

    return anyio.run(run)


def _settings_for(configs: Sequence[ExperimentConfig], settings: ClientSettings | None) -> ClientSettings:
    """The caller's settings, with the first experiment's entity when none is set: saves wandb's
    `GetDefaultEntity` round trip at start-up."""
    return (settings or ClientSettings()).for_entity(server_entity(configs))


def _service(settings: ClientSettings, concurrency: int, policy: RetryPolicy | None) -> HistorySource:
    """The W&B server as a source; imported here, so exports of run folders never load wandb."""
    from .sources.service import WandbSource

    return WandbSource(settings, concurrency=concurrency, policy=policy)


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
