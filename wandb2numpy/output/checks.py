"""What the output side refuses before the first request: field names that would collide in the
format, an output path that cannot be a folder, and (without -o) files of an earlier export in the
way, or (with -o) files no export wrote."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..config import ExperimentConfig
from ..config.names import output_path_problem
from ..errors import ConfigError, OutputExistsError
from . import folder, formats


def check_fields(configs: Sequence[ExperimentConfig]) -> None:
    """Field names that would collide in the output format ("runs" in CSV, "a" next to "a.steps",
    "x" next to a grid's x, names inside one data.npz): a config error, before any request. The
    output stage owns the naming rules, so config validation does not reach up for them."""
    for exp in configs:
        if exp.fields is None:
            continue  # fields: all: the plan leaves such keys out, one warning each
        problem = formats.get(exp.output_data_type).fields_problem(exp.fields, grid=exp.grid is not None)
        if problem:
            raise ConfigError(problem, source=exp.source, experiment=exp.name, key="fields")


def check_outputs(configs: Sequence[ExperimentConfig], *, overwrite: bool, delete_foreign_files: bool) -> None:
    """Run under the output locks: the folders cannot change between this check and the write."""
    if not overwrite:
        existing = [p for c in configs for p in folder.outputs_in_the_way(Path(c.output_path), c.name)]
        if existing:
            raise OutputExistsError(existing)
    elif not delete_foreign_files:
        for c in configs:
            folder.check_overwrite(Path(c.output_path), c.name, data_type=c.output_data_type, fields=c.fields)


def check_output_paths(configs: Sequence[ExperimentConfig]) -> None:
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
                raise ConfigError(
                    f"cannot look at {part}: {exc.strerror or exc}",
                    source=exp.source,
                    experiment=exp.name,
                    key="output_path",
                ) from None
            if is_file:
                what = "is a file" if part == path else f"lies under {part}, which is a file"
                raise ConfigError(
                    f"{path} {what}, not a folder", source=exp.source, experiment=exp.name, key="output_path"
                )
