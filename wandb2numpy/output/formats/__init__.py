"""Output formats, by the name `output_data_type` uses: how arrays become files and back.

Config validation takes its list of valid names from `names()`, the writers stage whatever
`get(name).write` produces, and `read` is the way back from an experiment folder (or one of its
files) to arrays, for the demo and for tests. A new format is a module with a `Format` subclass,
registered here: a `PerFieldFormat` (a values and a steps file per field: numpy, csv) or a
`SingleFileFormat` (every field in one file next to the run tables: npz, parquet).
"""

from __future__ import annotations

from ...config.defaults import OUTPUT_DATA_TYPES
from ...config.names import SUFFIX_ROOM
from ._base import (
    AXIS_NAME,
    FAILED_RUNS_FILE,
    RUN_COLUMNS,
    RUNS_FILE,
    Format,
    PerFieldFormat,
    StoredExperiment,
    StoredFile,
    read_table,
)
from ._single import SingleFileFormat
from .csv import CsvFormat
from .npz import NpzFormat
from .numpy import NumpyFormat
from .parquet import ParquetFormat

__all__ = [
    "AXIS_NAME",
    "FAILED_RUNS_FILE",
    "RUNS_FILE",
    "RUN_COLUMNS",
    "Format",
    "PerFieldFormat",
    "SingleFileFormat",
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
    """Make `fmt` available under its name. A per-field format's suffixes must fit the room
    names.py leaves; a one-file format's file must not be one of the run tables."""
    if isinstance(fmt, PerFieldFormat):
        for suffix in (fmt.values_suffix, fmt.steps_suffix):
            if len(suffix.encode("utf-8")) > SUFFIX_ROOM:
                raise ValueError(f"format {fmt.name!r}: suffix {suffix!r} is longer than {SUFFIX_ROOM} bytes")
    if isinstance(fmt, SingleFileFormat) and fmt.file_name in (RUNS_FILE, FAILED_RUNS_FILE):
        raise ValueError(f"format {fmt.name!r}: its file {fmt.file_name!r} is a run table's name")
    _REGISTRY[fmt.name] = fmt
    return fmt


def names() -> tuple[str, ...]:
    """Valid `output_data_type` values, in the order messages list them."""
    return tuple(_REGISTRY)


def expected() -> str:
    """The names as messages quote them: ``'numpy', 'csv', 'npz', 'parquet'``."""
    return ", ".join(repr(n) for n in _REGISTRY)


def get(name: str) -> Format:
    """The format called `name`; ValueError naming the valid ones otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown output format {name!r}; expected one of {expected()}") from None


register(NumpyFormat())
register(CsvFormat())
register(NpzFormat())
register(ParquetFormat())
assert names() == OUTPUT_DATA_TYPES, (names(), OUTPUT_DATA_TYPES)  # config validates against the latter
