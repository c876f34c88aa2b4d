"""Output formats, by the name `output_data_type` uses: how arrays become files and back.

Config validation takes its list of valid names from `names()`, the writers stage whatever
`get(name).write` produces, and `read` is the way back from an experiment folder (or one of its
files) to arrays, for the demo and for tests. A new format is a module with a `Format` subclass,
registered here.
"""

from __future__ import annotations

from ..names import SUFFIX_ROOM
from ._base import (
    AXIS_NAME,
    FAILED_RUNS_FILE,
    RUN_COLUMNS,
    RUNS_FILE,
    Format,
    StoredExperiment,
    StoredFile,
    read_table,
)
from .csv import CsvFormat
from .numpy import NumpyFormat

__all__ = [
    "AXIS_NAME",
    "FAILED_RUNS_FILE",
    "RUNS_FILE",
    "RUN_COLUMNS",
    "Format",
    "StoredExperiment",
    "StoredFile",
    "expected",
    "get",
    "names",
    "read_table",
    "register",
]

_REGISTRY: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    """Make `fmt` available under its name; its suffixes must fit the room names.py leaves."""
    for suffix in (fmt.values_suffix, fmt.steps_suffix):
        if len(suffix.encode("utf-8")) > SUFFIX_ROOM:
            raise ValueError(f"format {fmt.name!r}: suffix {suffix!r} is longer than {SUFFIX_ROOM} bytes")
    _REGISTRY[fmt.name] = fmt
    return fmt


def names() -> tuple[str, ...]:
    """Valid `output_data_type` values, in the order messages list them."""
    return tuple(_REGISTRY)


def expected() -> str:
    """The names as messages quote them: ``'numpy', 'csv'``."""
    return ", ".join(repr(n) for n in _REGISTRY)


def get(name: str) -> Format:
    """The format called `name`; ValueError naming the valid ones otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown output format {name!r}; expected one of {expected()}") from None


register(NumpyFormat())
register(CsvFormat())
