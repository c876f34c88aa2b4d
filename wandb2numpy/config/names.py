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
    "output_path_problem",
    "path_problem",
    "reserved_name_problem",
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
            return (
                f"{what} {_short.repr(name)} {which} longer than {MAX_NAME_CHARS} characters (or {room} bytes as UTF-8)"
            )
    return None


def field_problem(name: Any) -> str | None:
    """A field name becomes ``<field><suffix>`` files, sub-folders at each ``/``."""
    return path_problem(name, "field name", inside="the experiment folder", reserve=SUFFIX_ROOM)


# What the tool itself keeps under output_path (the lock, the incremental state folder) and in an
# experiment folder (the manifest), and the staging and set-aside folders of the atomic swap. An
# experiment of one of these names would replace the tool's own file (`--delete-foreign-files`
# once turned the lock into a folder) or be taken for a crash leftover and deleted; so such names
# are refused, case-insensitively, since macOS and Windows file systems are.
RESERVED_PREFIX = ".wandb2numpy"
_SWAP_RE = re.compile(r"\..+\.(tmp|old)-[0-9a-f-]+", re.IGNORECASE)


def reserved_name_problem(name: str, what: str = "experiment name") -> str | None:
    """Why `name` cannot be used beside the tool's own files, or None."""
    first = name.split("/", 1)[0]
    if first.lower().startswith(RESERVED_PREFIX):
        return (
            f"{what} {_short.repr(name)} starts with '{RESERVED_PREFIX}', which names the tool's own files "
            "(the output lock, the manifest, the incremental state); choose another name"
        )
    if _SWAP_RE.fullmatch(first):
        return (
            f"{what} {_short.repr(name)} looks like a folder of an interrupted write ('.NAME.tmp-...' or "
            "'.NAME.old-...'), which a later export would delete; choose another name"
        )
    return None


def experiment_path_problem(name: Any) -> str | None:
    """The writers' rule for an experiment: a folder, or ``group/experiment`` from the Python API."""
    problem = path_problem(name, "experiment name", inside="the output folder", reserve=STAGING_ROOM)
    return problem or reserved_name_problem(name)


def output_path_problem(path: Any) -> str | None:
    """Why a folder path cannot be opened at all: a NUL, or a part longer than file systems allow
    (the OS would answer "File name too long" only at the first look, as a traceback)."""
    text = os.fspath(path) if isinstance(path, os.PathLike) else path
    if not isinstance(text, str) or not text.strip():
        return "expected a folder path; found an empty string"
    if "\x00" in text:
        return "the output path contains a NUL character"
    try:
        encoded = [part.encode("utf-8", "surrogateescape") for part in text.split(os.sep)]
    except UnicodeEncodeError:
        return f"the output path {_short.repr(text)} is not valid unicode"
    for part in encoded:
        if len(part) > _NAME_MAX:
            return (
                f"the output path {_short.repr(text)} has a part of {len(part)} bytes; "
                f"file systems allow at most {_NAME_MAX}"
            )
    return None


def experiment_name_problem(name: str) -> str | None:
    """The config's rule: an experiment there is one folder under output_path, no sub-folders."""
    if not name.strip():
        return "experiment names must not be empty"
    if "/" in name or "\\" in name or "\x00" in name or name in (".", ".."):
        return f"experiment name {_short.repr(name)} cannot be a folder name: no '/', '\\', NUL, and not '.' or '..'"
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
