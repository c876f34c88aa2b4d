"""Read an export config (YAML or a dict) into frozen, validated experiment settings.

Every mistake is found here, before any request or write, and reported as one `ConfigError` that
names the file, the experiment (or DEFAULT), the key path, what was expected and what was found.
The format is the original tool's, so configs written for it keep working; what it got wrong
(silently ignored typos, `job_types` without `groups`, duplicate experiment names, half-checked
nesting) is rejected with a message that says how to fix it.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from ..errors import ConfigError
from .defaults import DEFAULT_GRID_SPAN, DEFAULT_HISTORY_SAMPLES, DEFAULT_OUTPUT_DATA_TYPE, DEFAULT_X_AXIS
from .names import experiment_name_problem
from .schema import (
    _EXPERIMENT_KEYS,
    _Experiment,
    _FilterSpec,
    _found,
    _Names,
    _nearest,
    _Problem,
    _raise,
    _translate,
    with_source_defaults,
)

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_HISTORY_SAMPLES",
    "ExperimentConfig",
    "Selection",
    "ValueFilter",
    "load_config",
    "parse_config",
    "resolve_configs",
    "server_entity",
    "ConfigSource",
]

DEFAULT_KEY = "DEFAULT"


Method = Literal["linear", "previous"]
Span = Literal["common", "all"]


@dataclass(frozen=True)
class GridSpec:
    """One of `points`, `every` or `values` (the config checks that exactly one is set).

    `span` is the x range `points` and `every` cover: ``common``, where every run has data, or
    ``all``, from the earliest start to the latest end (NaN where a run has none).
    """

    points: int | None = None
    every: float | None = None
    values: tuple[float, ...] | None = None
    method: Method = "linear"
    span: Span = DEFAULT_GRID_SPAN


@dataclass(frozen=True, kw_only=True)
class ValueFilter:
    """Allowed values and/or an inclusive range for one config or summary key; all given parts must hold."""

    values: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True, kw_only=True)
class Selection:
    """One OR-branch of the run query."""

    group: str | None = None  # None: any group
    job_types: tuple[str, ...] | None = None  # None: all
    runs: tuple[str, ...] | None = None  # display names; None: all
    tags: tuple[str, ...] | None = None  # any-of; None: all


@dataclass(frozen=True, kw_only=True)
class ExperimentConfig:
    """One experiment after DEFAULT was merged in: everything the later stages need, already checked."""

    name: str
    entity: str
    project: str
    fields: tuple[str, ...] | None  # None = "all"
    output_path: Path  # as written (relative paths are relative to the CWD)
    selections: tuple[Selection, ...]  # one per group; exactly one (group=None) without a groups list
    config_filters: Mapping[str, ValueFilter] = field(hash=False)
    summary_filters: Mapping[str, ValueFilter] = field(hash=False)
    output_data_type: str = DEFAULT_OUTPUT_DATA_TYPE  # one of OUTPUT_DATA_TYPES
    history_samples: int | None = DEFAULT_HISTORY_SAMPLES  # None = full history
    x_axis: str = DEFAULT_X_AXIS  # the history key the steps arrays hold
    grid: GridSpec | None = None  # resample every field on shared x values
    source: str = "<config>"  # the config file this came from, for messages
    raw: Mapping[str, Any] = field(hash=False)  # the merged dict as the user wrote it
    # The config key `source`: run folders to read instead of the W&B server (entity and project
    # are then optional, "" when not given, and only leave out runs recorded under others).
    run_folders: str | None = None

    @property
    def location(self) -> str:
        """Where the runs come from, for messages: ENTITY/PROJECT, or the run folders."""
        return self.run_folders if self.run_folders is not None else f"{self.entity}/{self.project}"


# --------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """safe_load, plus: duplicate keys are errors (the original silently dropped all but the last
    experiment of a name), and YAML 1.2 numbers like 1e-4 are floats (PyYAML reads them as text)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            try:
                key = self.construct_object(key_node, deep=True)
                first = seen.setdefault(key, key_node)
            except TypeError:
                continue  # unhashable; the base class reports it
            if first is not key_node:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"duplicate key {key!r} (first defined on line {first.start_mark.line + 1})",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _read_yaml(text: bytes | str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "unreadable"
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        raise ConfigError(f"invalid YAML{where}: {problem}{context}", source=source) from exc
    except RecursionError as exc:
        raise ConfigError("invalid YAML: nested too deeply", source=source) from exc
    except Exception as exc:  # ReaderError (bad encoding), out-of-range dates, over-long integers
        raise ConfigError(f"invalid YAML: {exc}", source=source) from exc


# --------------------------------------------------------------------------- public API


def load_config(path: str | os.PathLike[str], experiments: Sequence[str] | None = None) -> list[ExperimentConfig]:
    """Read and check a YAML config file; see `parse_config`."""
    source = os.fspath(path)
    try:
        text = Path(source).read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError("config file not found", source=source) from exc
    except IsADirectoryError as exc:
        raise ConfigError("expected a YAML file; found a directory", source=source) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror or exc}", source=source) from exc
    return parse_config(_read_yaml(text, source), source=source, experiments=experiments)


def parse_config(
    data: Any, *, source: str = "<config>", experiments: Sequence[str] | None = None
) -> list[ExperimentConfig]:
    """Turn already-loaded config data into experiments, in file order.

    DEFAULT is checked on its own first, so a mistake there is reported once instead of once per
    experiment. `experiments` limits the result (and the checks) to those names.
    """
    try:
        return _parse(data, source, experiments)
    except RecursionError as exc:  # self-referencing YAML aliases
        raise ConfigError("the config nests too deeply (or refers to itself)", source=source) from exc


def _parse(data: Any, source: str, experiments: Sequence[str] | None) -> list[ExperimentConfig]:
    if data is None:
        raise ConfigError("the config is empty; expected experiments (and optionally DEFAULT)", source=source)
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping of experiment names to settings; found {_found(data)}", source=source)
    default = data.get(DEFAULT_KEY)
    if default is None:
        default = {}
    elif not isinstance(default, Mapping):
        raise ConfigError(
            f"expected a mapping of settings; found {_found(default)}", source=source, experiment=DEFAULT_KEY
        )
    names = [k for k in data if k != DEFAULT_KEY]
    if not names:
        raise ConfigError("no experiments: add at least one named experiment next to DEFAULT", source=source)
    selected = _select(names, experiments, source)

    _, problems = _validate(DEFAULT_KEY, dict(default), partial=True)
    if problems:
        _raise(problems, source)
    results: list[ExperimentConfig] = []
    for name in selected:
        body = data[name]
        name_problem = _experiment_name_problem(name)
        if name_problem:
            problems.append(_Problem(str(name) if isinstance(name, str) else None, None, name_problem))
            continue
        if body is None:
            body = {}
        if not isinstance(body, Mapping):
            hint = (
                f"; '{name}' is a setting, so indent it under DEFAULT or under an experiment"
                if name in _EXPERIMENT_KEYS
                else ""
            )
            problems.append(
                _Problem(
                    name,
                    None,
                    "expected a mapping of settings (or nothing, to take "
                    f"everything from DEFAULT); found {_found(body)}{hint}",
                )
            )
            continue
        merged = _deep_merge(default, body)
        model, found = _validate(name, merged, partial=False, body=body)
        if found and name.lower().rstrip("s") == "default":
            found = [
                _Problem(p.experiment, p.key, p.message + " (the shared block must be spelled 'DEFAULT')")
                for p in found
            ]
        problems.extend(found)
        if model is not None:
            results.append(_build(name, model, merged, source))
    if problems:
        _raise(problems, source)
    return results


def _select(names: list[Any], wanted: Sequence[str] | None, source: str) -> list[Any]:
    if wanted is None or (not isinstance(wanted, str) and len(wanted) == 0):
        return names
    wanted_list = [wanted] if isinstance(wanted, str) else list(wanted)
    available = [n for n in names if isinstance(n, str)]
    unknown = [w for w in dict.fromkeys(wanted_list) if w not in available]
    if unknown:
        first = unknown[0]
        what = "is the shared block, not an experiment" if first == DEFAULT_KEY else "is not in the config"
        listed = ", ".join(available[:30]) + (", ..." if len(available) > 30 else "")
        others = f" (also unknown: {', '.join(map(str, unknown[1:]))})" if len(unknown) > 1 else ""
        near = _nearest(first, available)
        hint = f" (did you mean '{near}'?)" if near else ""
        raise ConfigError(f"experiment {first!r} {what}{hint}{others}; available: {listed}", source=source)
    chosen = set(wanted_list)
    return [n for n in names if n in chosen]


def _experiment_name_problem(name: Any) -> str | None:
    """Experiment names become folder names under output_path (rule in `names`)."""
    if not isinstance(name, str):
        return f"experiment names must be strings; found {_found(name)} (put the name in quotes)"
    return experiment_name_problem(name)


def _deep_merge(base: Mapping[Any, Any], override: Mapping[Any, Any]) -> dict[Any, Any]:
    """Nested mappings merge key by key; anything else (lists included) is replaced by the override.

    Only ever called with a DEFAULT that passed validation, so the recursion is as shallow as the
    format (config -> key -> values/min/max), whatever aliases the experiment uses.
    """
    out = dict(base)
    for key, value in override.items():
        if key in out and isinstance(out[key], Mapping) and isinstance(value, Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _validate(
    name: str, merged: dict[Any, Any], *, partial: bool, body: Mapping[str, Any] | None = None
) -> tuple[_Experiment | None, list[_Problem]]:
    try:
        return _Experiment.model_validate(with_source_defaults(merged), context={"partial": partial}), []
    except ValidationError as exc:
        return None, _translate(exc, name, body if body is not None else merged, partial)


def _build(name: str, model: _Experiment, merged: dict[str, Any], source: str) -> ExperimentConfig:
    listed = merged.get("fields")
    if isinstance(listed, list) and model.fields is not None and len(model.fields) < len(listed):
        # Exported once, as configs of the original tool expect; but said, since a repeat is often
        # a typo for another field.
        twice = sorted({f for f in listed if listed.count(f) > 1}, key=listed.index)
        log.warning(
            "%s, experiment '%s', key 'fields': %s listed more than once; exported once",
            source,
            name,
            ", ".join(repr(f) for f in twice),
        )

    def per_group(value: Any, i: int) -> _Names:
        return value[i] if value is not None else None

    selections: tuple[Selection, ...]
    if model.groups is None:
        selections = (Selection(job_types=model.job_types, runs=model.runs, tags=model.tags),)
    else:
        selections = tuple(
            Selection(
                group=g,
                job_types=per_group(model.job_types, i),
                runs=per_group(model.runs, i),
                tags=per_group(model.tags, i),
            )
            for i, g in enumerate(model.groups)
        )

    def filters(specs: dict[str, _FilterSpec]) -> Mapping[str, ValueFilter]:
        return MappingProxyType({k: ValueFilter(values=s.values, min=s.min, max=s.max) for k, s in specs.items()})

    return ExperimentConfig(
        name=name,
        entity=model.entity or "",
        project=model.project or "",
        fields=model.fields,
        output_path=Path(model.output_path),
        selections=selections,
        config_filters=filters(model.config),
        summary_filters=filters(model.summary),
        output_data_type=model.output_data_type,
        history_samples=model.history_samples,
        x_axis=model.x_axis,
        grid=None
        if model.grid is None
        else GridSpec(
            points=model.grid.points,
            every=model.grid.every,
            values=model.grid.values,
            method="previous" if model.grid.method == "previous" else "linear",
            span="all" if model.grid.span == "all" else "common",
        ),
        source=source,
        raw=MappingProxyType(copy.deepcopy(merged)),
        run_folders=model.source,
    )


ConfigSource = str | os.PathLike[str] | Mapping[str, Any] | Sequence[ExperimentConfig]


def server_entity(configs: Sequence[ExperimentConfig]) -> str | None:
    """The entity of the first experiment read from a W&B server: the one its client is made
    with (it saves wandb a `GetDefaultEntity` round trip; every query names its own entity)."""
    return next((c.entity for c in configs if c.run_folders is None and c.entity), None)


def resolve_configs(config: ConfigSource, experiments: Sequence[str] | None) -> list[ExperimentConfig]:
    """A YAML path, a parsed mapping or ready `ExperimentConfig`s, as the selected experiments."""
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
