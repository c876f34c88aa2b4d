"""Which names may become paths: one rule for config validation, the writers and `fields: all`.

A field name becomes ``<experiment>/<field><suffix>`` and an experiment name a folder under
``output_path``. Everything that is refused at write time must already be refused when the config
is loaded, or an export fails after every request instead of before the first one; so config
validation, the writers, the incremental cache and the history keys of ``fields: all`` all ask the
functions here. Names are refused rather than cleaned up, so nothing ever lands under a different
name than the user asked for.
"""

from __future__ import annotations

import os
import re
import reprlib
from typing import Any

from ..errors import OutputError

__all__ = [
    "MAX_NAME_CHARS",
    "check_experiment",
    "check_field",
    "check_path",
    "experiment_name_problem",
    "experiment_path_problem",
    "field_problem",
    "path_problem",
]

MAX_NAME_CHARS = 200
# A path component is at most 255 bytes on common file systems. The last component of a field
# name gets a suffix from its output format (".steps.npy" is the longest; the format registry
# refuses longer ones); an experiment folder is staged as ".<name>.tmp-<pid>-<16 hex>".
_NAME_MAX = 255
SUFFIX_ROOM = len(".steps.npy")
STAGING_ROOM = len("..tmp--") + 10 + 16  # pid up to 10 digits

_short = reprlib.Repr()
_short.maxstring = 60


def path_problem(name: Any, what: str, *, inside: str, reserve: int = 0) -> str | None:
    """Why `name` cannot be a relative path of ``/``-separated parts under a folder, or None.

    `reserve` is how many bytes the caller adds to the last part (a file suffix, a staging name).
    A backslash is refused: it separates folders on Windows, so the same config would write
    elsewhere there.
    """
    if not isinstance(name, str) or not name:
        return f"{what} is empty"
    if "\x00" in name:
        return f"{what} {name!r} contains a NUL character"
    # "C:x" only means a drive on Windows; elsewhere "q:value" is an ordinary metric name.
    if name.startswith(("/", "\\")) or (os.name == "nt" and re.match(r"^[A-Za-z]:", name)):
        return f"{what} {name!r} is an absolute path; it must stay inside {inside}"
    parts = name.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            shown = "an empty" if part == "" else f"a '{part}'"
            return f"{what} {name!r} has {shown} path segment; it must stay inside {inside}"
    if "\\" in name:
        return f"{what} {name!r} contains a backslash; use '/' for sub-folders"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return f"{what} {_short.repr(name)} is not valid unicode"
    for i, part in enumerate(parts):
        room = _NAME_MAX - (reserve if i == len(parts) - 1 else 0)
        if len(part) > MAX_NAME_CHARS or len(part.encode("utf-8")) > room:
            which = "is" if len(parts) == 1 else "has a path segment"
            return (f"{what} {_short.repr(name)} {which} longer than {MAX_NAME_CHARS} characters "
                    f"(or {room} bytes as UTF-8)")
    return None


def field_problem(name: Any) -> str | None:
    """A field name becomes ``<field><suffix>`` files, sub-folders at each ``/``."""
    return path_problem(name, "field name", inside="the experiment folder", reserve=SUFFIX_ROOM)


def experiment_path_problem(name: Any) -> str | None:
    """The writers' rule for an experiment: a folder, or ``group/experiment`` from the Python API."""
    return path_problem(name, "experiment name", inside="the output folder", reserve=STAGING_ROOM)


def experiment_name_problem(name: str) -> str | None:
    """The config's rule: an experiment there is one folder under output_path, no sub-folders."""
    if not name.strip():
        return "experiment names must not be empty"
    if "/" in name or "\\" in name or "\x00" in name or name in (".", ".."):
        return (f"experiment name {_short.repr(name)} cannot be a folder name: no '/', '\\', NUL, "
                "and not '.' or '..'")
    return experiment_path_problem(name)


def check_path(name: Any, *, what: str, inside: str = "its folder", reserve: int = 0) -> None:
    """`path_problem` as an OutputError."""
    problem = path_problem(name, what, inside=inside, reserve=reserve)
    if problem:
        raise OutputError(problem)


def check_field(name: Any) -> None:
    """`field_problem` as an OutputError, for the writers and the history keys of ``fields: all``."""
    problem = field_problem(name)
    if problem:
        raise OutputError(problem)


def check_experiment(name: Any) -> None:
    """`experiment_path_problem` as an OutputError, for the writers and the incremental cache."""
    problem = experiment_path_problem(name)
    if problem:
        raise OutputError(problem)
