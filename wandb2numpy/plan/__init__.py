"""One immutable plan per experiment, decided from the config and the run listing alone.

Everything the listing can tell is decided here, before any history request: which runs, which
fields (and which `fields: all` keys are left out, and why), whether the x axis exists, which
filter values matched nothing, and what the reads will cost. The export executes the plan and
`--dry-run` prints the very same object, so the two cannot disagree on a verdict or an exit code.

Pure functions over `RunInfo`s: tests build plans from hand-made listings, no server needed.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import ExperimentConfig
from ..config.defaults import DEFAULT_X_AXIS
from ..config.filters import describe_filters
from ..config.names import field_problem
from ..models import RunInfo
from .reads import ReadPlan, all_numeric_fields, plan_reads, read_in_full

__all__ = ["ExperimentPlan", "KnownValues", "build_plan", "known_values", "may_read_ahead", "not_logged"]

# What a filter value is compared with, per selection key: the run attribute it names.
_SELECTION_KEYS = ("groups", "job_types", "runs", "tags")

KnownValues = Mapping[str, Collection[str]]  # selection key -> values seen in listings of the project


@dataclass(frozen=True, kw_only=True)
class ExperimentPlan:
    """What an experiment will read and write, and every verdict the listing gives.

    `problems` make the export exit 4 (empty or mistyped), as they make `--dry-run` exit 4;
    `blocked` ones mean there is nothing worth fetching at all (no run, or an x axis no run
    logged), so the export sends no history request for the experiment.
    """

    config: ExperimentConfig
    runs: tuple[RunInfo, ...]
    fields: tuple[str, ...]  # what is asked of the source: the config's, or `fields: all`'s safe keys
    left_out: Mapping[str, str] = field(default_factory=dict)  # `fields: all` keys not exported, and why
    unlogged: Mapping[str, str] = field(default_factory=dict)  # named fields no matched run logged, and why
    problems: tuple[str, ...] = ()
    blocked: bool = False
    reads: ReadPlan
    files: tuple[str, ...] = ()  # the output files the fields may produce, relative to the experiment folder

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def x_axis(self) -> str:
        return self.config.x_axis


def known_values(listings: Sequence[tuple[ExperimentConfig, Sequence[RunInfo]]]) -> dict[tuple[str, str], KnownValues]:
    """Per (entity, project), the group, job type, run name and tag values seen in this export's
    listings: the values a mistyped filter value is compared with. No extra query is sent, so a
    hint needs the right value to appear in some experiment's listing of the same project."""
    out: dict[tuple[str, str], dict[str, set[str]]] = {}
    for exp, runs in listings:
        seen = out.setdefault((exp.entity, exp.project), {k: set() for k in _SELECTION_KEYS})
        for run in runs:
            if run.group:
                seen["groups"].add(run.group)
            if run.job_type:
                seen["job_types"].add(run.job_type)
            seen["runs"].add(run.name)
            seen["tags"].update(run.tags)
    return {k: {kk: sorted(vv) for kk, vv in v.items()} for k, v in out.items()}


def build_plan(
    exp: ExperimentConfig,
    runs: Sequence[RunInfo],
    *,
    workers: int,
    page_size: int,
    batch: bool = True,
    parquet: bool = False,
    listing_page: int | None = None,
    known: KnownValues | None = None,
    cached: tuple[Sequence[int], Mapping[int, int]] | None = None,
) -> ExperimentPlan:
    """The experiment's plan from its listing; `known` holds the filter values other listings of
    the same project showed (`known_values`), for "did you mean" hints."""
    fields, left_out = _fields(exp, runs)
    problems = _filter_problems(exp, runs, known or {})
    blocked = not runs
    unlogged = not_logged(exp.fields or (), runs)
    if runs:
        problems += [f"{exp.name}: field '{name}' {why}" for name, why in unlogged.items()]
        if exp.x_axis != DEFAULT_X_AXIS:
            missing = not_logged([exp.x_axis], runs)
            if missing:
                problems.append(f"{exp.name}: x_axis '{exp.x_axis}' is {missing[exp.x_axis]}")
                blocked = True
        if not blocked and not problems and not _any_field_logged(runs, fields):
            problems.append(f"{exp.name}: none of the {len(runs)} matched run(s) holds a requested field")
            blocked = True
    shape = {
        "workers": workers,
        "page_size": page_size,
        "batch": batch,
        "parquet": parquet,
        "listing_page": listing_page,
    }
    if cached is not None and not blocked and exp.x_axis == DEFAULT_X_AXIS:
        reads = _incremental_reads(runs, fields, exp, cached, **shape)
    else:
        reads = _reads([] if blocked else runs, fields, exp, **shape)
    return ExperimentPlan(
        config=exp,
        runs=tuple(runs),
        fields=tuple(fields),
        left_out=left_out,
        unlogged=unlogged,
        problems=tuple(problems),
        blocked=blocked,
        reads=reads,
        files=tuple(_files(exp, fields)),
    )


def may_read_ahead(exp: ExperimentConfig, runs: Sequence[RunInfo]) -> bool:
    """Whether these first listed runs may be read before the listing is whole: only when no
    later page could block the experiment or change their requests. Named fields (`fields: all`
    grows with every page), the `_step` axis (an x axis splits its reads over the whole listing),
    and every named field logged by some run listed so far (more runs never make one unlogged),
    so the plan cannot come out blocked; filter-value warnings do not block. The requests of a
    listing page depend on that page alone (`plan_reads`)."""
    if not exp.fields or exp.x_axis != DEFAULT_X_AXIS or not runs:
        return False
    return all(any(name in r.history_keys for r in runs) for name in exp.fields)


def _reads(runs: Sequence[RunInfo], fields: Sequence[str], exp: ExperimentConfig, **shape: Any) -> ReadPlan:
    """The requests, as the source will send them: with an x axis, the key is read with the
    fields, and runs whose sampling would not keep the key's rows with the fields' are read in
    full beside the others (`sources.xaxis`)."""
    samples = exp.history_samples
    if exp.x_axis == DEFAULT_X_AXIS:
        return plan_reads(runs, fields, samples=samples, **shape)
    key = exp.x_axis
    read_fields = list(fields) if key in fields else [*fields, key]
    in_full = [read_in_full(r, key, fields, samples) for r in runs]
    if not any(in_full):
        return plan_reads(runs, read_fields, samples=samples, **shape)
    full = [r for r, f in zip(runs, in_full) if f]
    rest = [r for r, f in zip(runs, in_full) if not f]
    return plan_reads(rest, read_fields, samples=samples, **shape) + plan_reads(
        full, read_fields, samples=None, **shape
    )


def _incremental_reads(
    runs: Sequence[RunInfo],
    fields: Sequence[str],
    exp: ExperimentConfig,
    cached: tuple[Sequence[int], Mapping[int, int]],
    **shape: Any,
) -> ReadPlan:
    """An incremental export's reads (`sources.cache`): the runs to fetch whole, and beside them
    the grown runs from their last cached step; the rest come from the cache."""
    to_fetch, grown = cached
    whole = plan_reads([runs[i] for i in to_fetch], fields, samples=exp.history_samples, **shape)
    order = list(grown)
    tails = plan_reads(
        [runs[i] for i in order], fields, samples=exp.history_samples, starts=[grown[i] for i in order], **shape
    )
    served = len(runs) - len(to_fetch) - len(grown)
    return dataclasses.replace(whole + tails, runs=len(runs), cached_runs=served)


def not_logged(names: Sequence[str], runs: Sequence[RunInfo]) -> dict[str, str]:
    """Of `names`, those no run logged, each with why and the nearest logged key. Nothing when
    the listing gave no history keys to judge by."""
    if not runs or not all(r.history_keys for r in runs):
        return {}
    logged = sorted({k for r in runs for k in r.history_keys})
    out: dict[str, str] = {}
    for name in names:
        if any(name in r.history_keys for r in runs):
            continue
        out[name] = f"logged by none of the {len(runs)} matched run(s){_hint(name, logged)}"
    return out


def _hint(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _any_field_logged(runs: Sequence[RunInfo], fields: Sequence[str]) -> bool:
    """Whether some run may hold some field: by its history keys, or unknown without them."""
    if not fields:
        return False
    return any(not r.history_keys or any(f in r.history_keys for f in fields) for r in runs)


def _fields(exp: ExperimentConfig, runs: Sequence[RunInfo]) -> tuple[list[str], dict[str, str]]:
    """The config's fields as given (the schema refused unusable ones), or `fields: all`'s keys
    minus those whose file names are unusable or would clash with another output in this format:
    a W&B key cannot be renamed, so one awkward key must not cost the whole experiment."""
    if exp.fields is not None:
        return list(exp.fields), {}
    from ..output import formats  # the output's naming rules; formats import nothing of the plan

    fmt = formats.get(exp.output_data_type)
    grid = exp.grid is not None
    kept: list[str] = []
    left_out: dict[str, str] = {}
    for name in all_numeric_fields(runs):
        problem = field_problem(name) or fmt.fields_problem([*kept, name], grid=grid)
        if problem:
            left_out[name] = problem
        else:
            kept.append(name)
    return kept, left_out


def _files(exp: ExperimentConfig, fields: Sequence[str]) -> list[str]:
    from ..output import formats

    return [str(p) for p in formats.get(exp.output_data_type).possible_files(fields, grid=exp.grid is not None)]


def _filter_problems(exp: ExperimentConfig, runs: Sequence[RunInfo], known: KnownValues) -> list[str]:
    """A filter value (group, job type, run name, tag) that none of the listed runs carries: a
    comparison of ppo with 'sca' must not quietly become ppo alone."""
    if not runs:
        line = f"{exp.name}: no run matched {describe_filters(exp)} in {exp.location}"
        hints = [_value_hint(key, value, known) for key, value in _configured_values(exp)]
        shown = [h.removeprefix("; ") for h in hints if h]
        return [line + (" (" + "; ".join(shown) + ")" if shown else "")]
    out: list[str] = []
    for sel in exp.selections:
        mine = [r for r in runs if sel.group is None or r.group == sel.group]
        where = f" (group '{sel.group}')" if sel.group is not None and exp.selections[0].group is not None else ""
        if sel.group is not None and not mine:
            out.append(
                f"{exp.name}: groups: '{sel.group}' matched none of the {len(runs)} listed run(s)"
                f"{_value_hint('groups', sel.group, known)}"
            )
            continue
        for key, values, attr in (
            ("job_types", sel.job_types, _job_type),
            ("runs", sel.runs, _name),
            ("tags", sel.tags, _tags),
        ):
            for value in values or ():
                if not any(value in attr(r) for r in mine):
                    out.append(
                        f"{exp.name}: {key}{where}: '{value}' matched none of the {len(mine)} listed "
                        f"run(s){_value_hint(key, value, known)}"
                    )
    return out


def _configured_values(exp: ExperimentConfig) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for sel in exp.selections:
        if sel.group is not None:
            out.append(("groups", sel.group))
        for key, values in (("job_types", sel.job_types), ("runs", sel.runs), ("tags", sel.tags)):
            out += [(key, v) for v in values or ()]
    return out


def _value_hint(key: str, value: str, known: KnownValues) -> str:
    return _hint(value, [v for v in known.get(key, ()) if v != value])


def _job_type(run: RunInfo) -> tuple[str, ...]:
    return (run.job_type,) if run.job_type else ()


def _name(run: RunInfo) -> tuple[str, ...]:
    return (run.name,)


def _tags(run: RunInfo) -> tuple[str, ...]:
    return run.tags
