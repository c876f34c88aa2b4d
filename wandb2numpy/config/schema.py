"""The checks behind `config.parse_config`, kept apart so the loader reads as a pipeline stage.

Each rule about a value, and each sentence a user sees when one is broken, lives here, in one place:
pydantic does the walking, these checks raise `_fail` with the exact wording, and `_translate` turns
what pydantic collected into `_Problem`s that name the experiment and key path. `config` only reads,
merges and selects; it asks this module whether the result is valid and how to say why not.
"""

from __future__ import annotations

import datetime
import difflib
import math
import os
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..errors import ConfigError
from .defaults import DEFAULT_HISTORY_SAMPLES, DEFAULT_OUTPUT_DATA_TYPE, DEFAULT_X_AXIS, GRID_SPANS, OUTPUT_DATA_TYPES
from .names import field_problem, output_path_problem

# W&B sends `samples` as a GraphQL Int (32-bit).
_MAX_HISTORY_SAMPLES = 2**31 - 1
# Numbers in filters go to the server as JSON; beyond 64 bits they silently lose precision there.
_MAX_FILTER_INT = 2**63 - 1
_MAX_PROBLEMS_SHOWN = 20
_MAX_GRID_POINTS = 10_000_000  # a (runs, points) float64 array per field
_MAX_SHOWN = 80  # characters of a found value quoted in a message


# --------------------------------------------------------------------------- messages

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlong = 40
_repr.maxlist = _repr.maxtuple = 5
_repr.maxdict = 4
_repr.maxlevel = 2


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "mapping"
    return type(value).__name__


def _found(value: Any) -> str:
    """Type plus a bounded repr: inputs may be huge, deeply nested or self-referencing YAML."""
    if value is None:
        return "null"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 10_000:
        return f"integer with about {int(value.bit_length() * math.log10(2))} digits"  # repr() would raise
    if isinstance(value, (datetime.date, datetime.datetime)):
        return f"date {value.isoformat()}"
    try:
        shown = _repr.repr(value)
    except Exception:  # noqa: BLE001 - a repr that itself fails must not hide the real problem
        shown = f"<{type(value).__name__}>"
    if len(shown) > _MAX_SHOWN:
        shown = shown[: _MAX_SHOWN - 3] + "..."
    return f"{_kind(value)} {shown}"


def _found_text(value: Any) -> str:
    """YAML turns unquoted yes/no/on/off, numbers and dates into non-strings; say how to get text."""
    hint = ""
    if isinstance(value, (bool, int, float, datetime.date)):
        hint = " (put it in quotes to make it text)"
    return _found(value) + hint


def _nearest(word: Any, choices: Sequence[str]) -> str | None:
    if not isinstance(word, str) or not choices:
        return None
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not match:
        lowered = {c.lower(): c for c in choices}
        match = [lowered[m] for m in difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)]
    return match[0] if match else None


def _suggest(word: Any, choices: Sequence[str]) -> str:
    near = _nearest(word, choices)
    return f"; did you mean '{near}'?" if near else ""


def _fail(message: str, *subloc: str | int) -> NoReturn:
    # The message travels in the context so braces in user data are never taken as a template.
    raise PydanticCustomError("w2n", "{detail}", {"detail": message, "subloc": subloc})


# --------------------------------------------------------------------------- value checks


def _strings(
    value: Any, what: str, *, allow_all: bool = True, dedupe: bool = True, subloc: tuple[str | int, ...] = ()
) -> tuple[str, ...] | None:
    """A list of names, where exactly ["all"] (like the bare "all") means no restriction."""
    if not value:
        _fail(f"the list of {what} is empty, which would match nothing; leave the key out or write 'all'", *subloc)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            _fail(f"expected {what} as strings; found {_found_text(item)}", *subloc, i)
        if not item or "\x00" in item:
            _fail(f"{what} must be non-empty text without NUL characters; found {item!r}", *subloc, i)
    if "all" in value and allow_all:
        if len(value) == 1:
            return None
        _fail(f"'all' cannot be combined with other {what}; write just 'all' or list the names", *subloc)
    return tuple(dict.fromkeys(value)) if dedupe else tuple(value)


def _plain_name(what: str, *, optional: bool = False) -> Any:
    def check(value: Any) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip():
            _fail(f"expected a non-empty {what} name (a string); found {_found_text(value)}")
        if "/" in value or "\x00" in value:
            _fail(f"a W&B {what} name cannot contain '/' or NUL characters; found {value!r}")
        return value

    return BeforeValidator(check)


def _check_fields(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        _fail(f"expected a list of field names or 'all'; found {_found_text(value)}")
    names = _strings(value, "field names")
    for i, name in enumerate(value if names is not None else ()):
        problem = field_problem(name)
        if problem:
            _fail(problem, i)
    return names


def _check_output_path(value: Any) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        _fail(f"expected a folder path (a string); found {_found_text(value)}")
    problem = output_path_problem(value)
    if problem:
        _fail(problem)
    return value


def _check_source(value: Any) -> str | None:
    """Run folders to read instead of the W&B server: a folder of run folders (./wandb), one run
    folder, one .wandb file, or a glob of these. A path that is no glob must exist."""
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        _fail(f"expected the path of run folders, e.g. source: ./wandb; found {_found_text(value)}")
    if "\x00" in value:
        _fail("the source path contains a NUL character")
    if not any(c in value for c in "*?[") and not os.path.exists(os.path.expanduser(value)):
        _fail(
            f"no run folders at {value!r}: expected a folder such as ./wandb (holding run-* and "
            "offline-run-* folders), one run folder, one .wandb file, or a glob of these"
        )
    return value


def _check_data_type(value: Any) -> str:
    valid = OUTPUT_DATA_TYPES
    if not isinstance(value, str) or value not in valid:
        _fail(
            f"expected one of {', '.join(repr(n) for n in OUTPUT_DATA_TYPES)}; found {_found(value)}{_suggest(value, valid)}"
        )
    return value


def _check_groups(value: Any) -> tuple[str, ...] | None:
    if value is None or value == "all":
        return None
    if not isinstance(value, (list, tuple)):
        _fail(f"expected a list of group names or 'all'; found {_found_text(value)}")
    if "all" in value:
        _fail("'all' inside a groups list would be a group named 'all'; to take every group write groups: all")
    # Not deduplicated: entries of job_types/runs/tags pair with groups by position.
    return _strings(value, "group names", allow_all=False, dedupe=False)


def _check_history_samples(value: Any) -> int | None:
    if value == "all" and isinstance(value, str):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        _fail(f"expected a positive integer or 'all'; found {_found(value)}")
    if value > _MAX_HISTORY_SAMPLES:
        _fail(
            f"more samples than the server accepts (at most {_MAX_HISTORY_SAMPLES}); write 'all' for the full history"
        )
    return value


def _check_number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(f"expected a number; found {_found(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        _fail(f"expected a finite number; found {_found(value)}")
    if isinstance(value, int) and abs(value) > _MAX_FILTER_INT:
        _fail(f"expected a number that fits in 64 bits; found {_found(value)}")
    return value


def _check_values(value: Any) -> tuple[Any, ...] | None:
    if value is None:
        return None
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        _fail("the values list is empty, which would match nothing; remove 'values' or list some")
    for i, item in enumerate(items):
        if item is not None and not isinstance(item, (str, int, float)):
            hint = " (put it in quotes to make it text)" if isinstance(item, datetime.date) else ""
            _fail(f"expected values as strings, numbers, booleans or null; found {_found(item)}{hint}", i)
        if isinstance(item, float) and not math.isfinite(item):
            _fail(f"expected finite numbers; found {_found(item)}", i)
        if isinstance(item, int) and not isinstance(item, bool) and abs(item) > _MAX_FILTER_INT:
            _fail(f"expected a number that fits in 64 bits; found {_found(item)}", i)
        if isinstance(item, str) and "\x00" in item:
            _fail("a value contains a NUL character", i)
    return tuple(items)


def _check_filter_map(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        _fail(f"expected a mapping from keys to {{values, min, max}}; found {_found(value)}")
    out: dict[str, Any] = {}
    for key, spec in value.items():
        if not isinstance(key, str):
            _fail(f"keys must be strings; found {_found_text(key)}", str(key))
        if "\x00" in key or not key or any(not part for part in key.split(".")):
            _fail(f"{key!r} is not a usable key: dotted keys need a name between every pair of dots", key)
        out[key] = dict(spec) if isinstance(spec, Mapping) else spec
    return out


def _check_x_axis(value: Any) -> str:
    if not isinstance(value, str) or not value or "\x00" in value:
        _fail(f"expected the name of a logged key, e.g. 'global_step' or '_step'; found {_found_text(value)}")
    return value


def _check_grid_points(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_GRID_POINTS:
        _fail(f"expected a whole number of points from 1 to {_MAX_GRID_POINTS:,}; found {_found(value)}")
    return value


def _check_grid_every(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        _fail(f"expected a positive number (the spacing of the x values); found {_found(value)}")
    return float(value)


def _check_grid_values(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not value:
        _fail(f"expected a non-empty list of x values; found {_found(value)}")
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
            _fail(f"expected finite numbers; found {_found(item)}", i)
        if i and item <= value[i - 1]:
            _fail(f"x values must increase; {item!r} follows {value[i - 1]!r}", i)
    return tuple(float(v) for v in value)


def _check_grid_method(value: Any) -> str:
    if value not in ("linear", "previous") or not isinstance(value, str):
        _fail(f"expected 'linear' or 'previous'; found {_found(value)}{_suggest(value, ('linear', 'previous'))}")
    return str(value)


def _check_grid_span(value: Any) -> str | None:
    if value is None:
        return None
    if value not in GRID_SPANS or not isinstance(value, str):
        choices = " or ".join(repr(s) for s in GRID_SPANS)
        _fail(
            f"expected {choices} (the range every run covers, or from the earliest start to the latest end); "
            f"found {_found(value)}{_suggest(value, GRID_SPANS)}"
        )
    return str(value)


# --------------------------------------------------------------------------- models


class _GridSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    points: Annotated[int | None, BeforeValidator(_check_grid_points)] = None
    every: Annotated[float | None, BeforeValidator(_check_grid_every)] = None
    values: Annotated[tuple[float, ...] | None, BeforeValidator(_check_grid_values)] = None
    method: Annotated[str, BeforeValidator(_check_grid_method)] = "linear"
    span: Annotated[str | None, BeforeValidator(_check_grid_span)] = None  # None: DEFAULT_GRID_SPAN

    @model_validator(mode="after")
    def _one_kind(self) -> _GridSpec:
        given = [k for k in ("points", "every", "values") if getattr(self, k) is not None]
        if len(given) != 1:
            found = f"found {' and '.join(given)}" if given else "found none"
            _fail(f"a grid needs exactly one of 'points', 'every' or 'values', e.g. grid: {{points: 200}}; {found}")
        if self.values is not None and self.span is not None:
            _fail(
                "'span' chooses the range of 'points' or 'every'; with 'values' the x values are as given, "
                "so leave 'span' out",
                "span",
            )
        return self


_SELECTION_KEYS = ("job_types", "runs", "tags")
_WHAT = {"job_types": "job types", "runs": "run names", "tags": "tags"}
_Names = tuple[str, ...] | None


class _FilterSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    values: Annotated[tuple[Any, ...] | None, BeforeValidator(_check_values)] = None
    min: Annotated[float | int | None, BeforeValidator(_check_number)] = None
    max: Annotated[float | int | None, BeforeValidator(_check_number)] = None

    @model_validator(mode="after")
    def _consistent(self) -> _FilterSpec:
        if self.values is None and self.min is None and self.max is None:
            _fail("needs at least one of 'values', 'min' or 'max'")
        if self.min is not None and self.max is not None and self.min > self.max:
            _fail(f"min ({self.min}) is greater than max ({self.max}), so no run could match")
        return self


class _Experiment(BaseModel):
    """The merged experiment; field order matters: `groups` is validated before the keys nested under it."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    # Required unless `source` names run folders: there they only leave out runs recorded under
    # another entity or project, and `with_source_defaults` gives them None when left out.
    entity: Annotated[str | None, _plain_name("entity", optional=True)]
    project: Annotated[str | None, _plain_name("project", optional=True)]
    fields: Annotated[_Names, BeforeValidator(_check_fields)]
    output_path: Annotated[str, BeforeValidator(_check_output_path)]
    source: Annotated[str | None, BeforeValidator(_check_source)] = None
    groups: Annotated[_Names, BeforeValidator(_check_groups)] = None
    job_types: Any = None
    runs: Any = None
    tags: Any = None
    config: Annotated[dict[str, _FilterSpec], BeforeValidator(_check_filter_map)] = {}
    summary: Annotated[dict[str, _FilterSpec], BeforeValidator(_check_filter_map)] = {}
    history_samples: Annotated[int | None, BeforeValidator(_check_history_samples)] = DEFAULT_HISTORY_SAMPLES
    output_data_type: Annotated[str, BeforeValidator(_check_data_type)] = DEFAULT_OUTPUT_DATA_TYPE
    x_axis: Annotated[str, BeforeValidator(_check_x_axis)] = DEFAULT_X_AXIS
    grid: _GridSpec | None = None

    @model_validator(mode="after")
    def _named_project(self) -> _Experiment:
        if self.source is None:
            for key in ("entity", "project"):
                if getattr(self, key) is None:
                    _fail(f"expected a non-empty {key} name (a string); found null", key)
        return self

    @field_validator(*_SELECTION_KEYS, mode="before")
    @classmethod
    def _selection(cls, value: Any, info: ValidationInfo) -> Any:
        key = info.field_name or ""
        what = _WHAT[key]
        if value is None or (isinstance(value, str) and value == "all"):
            return None
        if not isinstance(value, (list, tuple)):
            _fail(f"expected a list of {what} or 'all'; found {_found_text(value)}")
        nested = any(isinstance(v, (list, tuple)) for v in value)
        if info.context and info.context.get("partial"):
            # DEFAULT alone: the groups it will be paired with may come from each experiment.
            if nested:
                return tuple(_entry(v, what, i) for i, v in enumerate(value))
            return _strings(value, what)
        if "groups" not in info.data:
            return value  # groups itself is wrong; that error is enough
        groups: _Names = info.data["groups"]
        if groups is None:
            if nested:
                _fail(
                    f"without a groups list, {key} must be a flat list of {what} or 'all'; found a nested "
                    f"list (one inner list per group only works together with groups: [...])"
                )
            return _strings(value, what)
        shown = _show_groups(groups)
        n, m = len(groups), len(value)
        if not nested and not all(isinstance(v, str) and v == "all" for v in value):
            example = "[[...]]" if n == 1 else '[[...], "all"]' if n == 2 else '[[...], "all", ...]'
            items = "string" if all(isinstance(v, str) for v in value) else "item"
            _fail(
                f"with groups: {shown}, {key} needs one entry per group, e.g. {example}; "
                f"found a flat list of {m} {items}{'s' if m != 1 else ''}"
            )
        if m != n:
            _fail(
                f"with groups: {shown}, {key} needs one entry per group ({n}); found {m} entr{'ies' if m != 1 else 'y'}"
            )
        return tuple(_entry(v, what, i, group=groups[i]) for i, v in enumerate(value))


def _entry(value: Any, what: str, index: int, *, group: str | None = None) -> _Names:
    if isinstance(value, str) and value == "all":
        return None
    if not isinstance(value, (list, tuple)):
        whose = f"the entry for group '{group}'" if group is not None else "each entry"
        _fail(f"{whose} must be a list of {what} or 'all'; found {_found_text(value)}", index)
    return _strings(value, what, subloc=(index,))


def _show_groups(groups: Sequence[str]) -> str:
    shown = [g if len(g) <= 40 else g[:37] + "..." for g in groups[:3]]
    return "[" + ", ".join(shown) + (", ..." if len(groups) > 3 else "") + "]"


_EXPERIMENT_KEYS = tuple(_Experiment.model_fields)


def with_source_defaults(merged: dict[Any, Any]) -> dict[Any, Any]:
    """An experiment reading run folders (`source`) may leave entity and project out."""
    if merged.get("source") is None:
        return merged
    return {"entity": None, "project": None, **merged}


_FILTER_KEYS = tuple(_FilterSpec.model_fields)
_GRID_KEYS = tuple(_GridSpec.model_fields)


# --------------------------------------------------------------------------- error translation


@dataclass(frozen=True)
class _Problem:
    experiment: str | None
    key: str | None
    message: str


def _key_path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _translate(exc: ValidationError, experiment: str, body: Mapping[str, Any], partial: bool) -> list[_Problem]:
    problems: list[_Problem] = []
    for err in exc.errors(include_url=False):
        ctx = err.get("ctx") or {}
        loc = list(err["loc"]) + list(ctx.get("subloc", ()))
        kind, value = err["type"], err.get("input")
        if kind == "missing" and partial:
            continue
        if kind == "w2n":
            message = str(ctx["detail"])
        elif kind == "missing":
            message = f"required key '{loc[-1]}' is missing; set it in this experiment or in DEFAULT"
        elif kind == "extra_forbidden":
            valid = (
                _FILTER_KEYS
                if len(loc) == 3 and loc[0] in ("config", "summary")
                else _GRID_KEYS
                if len(loc) == 2 and loc[0] == "grid"
                else _EXPERIMENT_KEYS
            )
            hint = _suggest(loc[-1], valid) or f" (valid keys: {', '.join(valid)})"
            message = f"unknown key {loc[-1]!r}{hint}"
        elif kind == "invalid_key":
            message = f"keys must be strings; found {_found_text(value)}"
        elif kind in ("model_type", "dict_type") and loc == ["grid"]:
            message = f"expected a mapping such as {{points: 200}}, {{every: 1000}} or {{values: [...]}}; found {_found(value)}"
        elif kind in ("model_type", "dict_type") and len(loc) == 2:
            example = "{values: [...]}" if not isinstance(value, Mapping) else "{values: [...], min: 0, max: 1}"
            message = (
                f"expected a mapping with 'values', 'min' and/or 'max', e.g. {loc[1]}: {example}; found {_found(value)}"
            )
        else:
            message = f"{str(err['msg']).rstrip('.').lower()}; found {_found(value)}"
        top = loc[0] if loc else None
        if not partial and isinstance(top, str) and top not in body and top in _EXPERIMENT_KEYS and kind != "missing":
            message += " (inherited from DEFAULT)"
        problems.append(_Problem(experiment, _key_path(loc) or None, message))
    return problems


def _raise(problems: Sequence[_Problem], source: str) -> NoReturn:
    if len(problems) == 1:
        p = problems[0]
        raise ConfigError(p.message, source=source, experiment=p.experiment, key=p.key)
    lines = []
    for p in problems[:_MAX_PROBLEMS_SHOWN]:
        where = ", ".join(
            x for x in (f"experiment '{p.experiment}'" if p.experiment else "", f"key '{p.key}'" if p.key else "") if x
        )
        lines.append(f"  - {where}: {p.message}" if where else f"  - {p.message}")
    if len(problems) > _MAX_PROBLEMS_SHOWN:
        lines.append(f"  ... and {len(problems) - _MAX_PROBLEMS_SHOWN} more")
    raise ConfigError(f"{len(problems)} problems:\n" + "\n".join(lines), source=source)
