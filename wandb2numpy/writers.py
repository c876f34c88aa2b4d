"""Write one experiment's arrays to disk, all or nothing.

What files an experiment becomes, and their bytes, is the output format's business (see
`formats`: ``runs.csv`` plus one values and one steps file per field, sub-folders at each ``/``
of a field name). This module makes writing them atomic.

The experiment folder is owned by the tool: with ``overwrite`` it is replaced as a whole, so
files an older export (or a person) put there and the new export does not produce are gone.
That is what makes an export all-or-nothing: everything is written to a staging folder next to
it, fsynced, and swapped in with two renames, so readers and crashes see either the previous
export or the new one, never a mix.

Crash leftovers are cleaned at the next write (or ``existing_outputs``) of the same experiment:

* ``.<experiment>.old-<hex>`` with no ``<experiment>``: the crash hit between the two renames;
  the previous export is restored (the interrupted export is discarded; run it again).
* ``.<experiment>.old-<hex>`` next to ``<experiment>``: the swap finished; the old copy is deleted.
* ``.<experiment>.tmp-<pid>-<hex>`` of a process that is gone: unfinished staging; deleted.

One writer per experiment folder at a time is assumed; the caller holds the output lock.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import threading
from pathlib import Path

from . import formats, names
from ._fs import pid_alive, sync_dir, sync_file
from .assemble import ExperimentResult
from .errors import OutputError, OutputExistsError
from .formats import RUN_COLUMNS, RUNS_FILE

__all__ = [
    "RUNS_FILE",
    "RUN_COLUMNS",
    "DataType",
    "atomic_write_bytes",
    "check_name_safe",
    "existing_outputs",
    "planned_files",
    "write_experiment",
]

log = logging.getLogger(__name__)

DataType = str  # a name in formats.names()

_TOKEN_RE = "[0-9a-f]{16}"
_TMP_RE = re.compile(rf"(\d+)-{_TOKEN_RE}")
_OLD_RE = re.compile(_TOKEN_RE)
# Names of this process's staging folders still being written (the random part makes them
# unique); every other one with our pid is a leftover, since containers often reuse the pid.
_active_staging: set[str] = set()
_active_lock = threading.Lock()


# --------------------------------------------------------------------------- names and plan


def check_name_safe(name: str, *, what: str) -> None:
    """Refuse a name that could write outside its folder or that no file system accepts.

    The rule lives in `names`, shared with config validation; this is its plain form, with no
    room reserved for a suffix.
    """
    names.check_path(name, what=what)


def planned_files(result: ExperimentResult, data_type: DataType) -> list[Path]:
    """The files ``write_experiment`` writes, relative to the experiment folder, in its order."""
    return formats.get(data_type).layout(result)


def _check_inside(path: Path, folder: Path, what: str) -> None:
    """Second line of defence after check_name_safe: symlinks already on disk are followed.

    The last component is not resolved, because that is the entry we create or replace: an
    experiment folder that is itself a symlink is refused separately with a clearer message.
    """
    resolved_folder = folder.resolve()
    resolved = path.parent.resolve() / path.name
    if resolved == resolved_folder or not resolved.is_relative_to(resolved_folder):
        raise OutputError(f"{what} {str(path)!r} would be written outside {str(folder)!r}")


# --------------------------------------------------------------------------- files


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | bytearray | memoryview) -> None:
    """Replace one file so readers and crashes see the old or the new content, never a part.

    The temporary file sits in the same folder because a rename is only atomic within one
    file system.
    """
    target = Path(path)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(8)}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as f:
            f.write(data)
            sync_file(f)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise OutputError(f"could not write {target}: {exc}") from exc
        raise
    sync_dir(target.parent)


# --------------------------------------------------------------------------- folders and swap


def _remove(path: Path) -> None:
    """Delete a file, link or folder; a symlink is unlinked, never followed."""
    try:
        if path.is_symlink() or not path.is_dir():
            path.unlink(missing_ok=True)
        else:
            shutil.rmtree(path)
    except OSError as exc:
        log.warning("could not remove %s: %s", path, exc)


def _recover(final: Path) -> None:
    """Undo or finish what a crashed write left next to ``final`` (see the module docstring)."""
    parent = final.parent
    if not parent.is_dir():
        return
    old_prefix = f".{final.name}.old-"
    tmp_prefix = f".{final.name}.tmp-"
    olds: list[Path] = []
    stale: list[Path] = []
    with os.scandir(parent) as entries:
        for entry in entries:
            if entry.name.startswith(old_prefix):
                if _OLD_RE.fullmatch(entry.name[len(old_prefix) :]):
                    olds.append(Path(entry.path))
            elif entry.name.startswith(tmp_prefix):
                match = _TMP_RE.fullmatch(entry.name[len(tmp_prefix) :])
                if match is None:
                    continue
                pid = int(match.group(1))
                with _active_lock:
                    ours_active = entry.name in _active_staging
                if (pid == os.getpid() and not ours_active) or (
                    pid != os.getpid() and not pid_alive(pid)
                ):
                    stale.append(Path(entry.path))
    if olds and not os.path.lexists(final):
        olds.sort(key=lambda p: p.lstat().st_ctime)  # renamed aside last = most recent export
        restore = olds.pop()
        os.rename(restore, final)
        sync_dir(parent)
        log.warning("restored %s from an interrupted write", final)
    for path in olds + stale:
        log.info("removing leftover %s", path)
        _remove(path)


def _files_under(folder: Path) -> list[Path]:
    if os.path.islink(folder) or os.path.isfile(folder):
        return [folder]
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):  # does not follow symlinked folders
        dirs.sort()
        found.extend(Path(root) / name for name in sorted(files))
        found.extend(Path(root) / name for name in dirs if os.path.islink(os.path.join(root, name)))
    return sorted(found)


def existing_outputs(output_path: str | os.PathLike[str], experiment: str) -> list[Path]:
    """Files already in the experiment folder, after cleaning up any interrupted write.

    Recovery runs here too so that a check made before a long fetch sees the same files the
    write will see.
    """
    names.check_experiment(experiment)
    final = Path(output_path) / experiment
    _check_inside(final, Path(output_path), "experiment")
    try:
        _recover(final)
        return _files_under(final)
    except OSError as exc:
        raise OutputError(f"could not inspect {final}: {exc}") from exc


def _swap_in(staging: Path, final: Path) -> None:
    old: Path | None = None
    if os.path.lexists(final):
        old = final.parent / f".{final.name}.old-{secrets.token_hex(8)}"
        os.rename(final, old)
    try:
        os.rename(staging, final)
    except BaseException:
        if old is not None:
            try:
                os.rename(old, final)
            except OSError as exc:  # left for _recover on the next write
                log.error("could not put %s back in place: %s", final, exc)
        raise
    sync_dir(final.parent)
    if old is not None:
        _remove(old)  # the new export is in place; a leftover is cleaned next time


def write_experiment(
    result: ExperimentResult,
    output_path: str | os.PathLike[str],
    *,
    data_type: DataType,
    overwrite: bool,
) -> list[Path]:
    """Write one experiment and return the final file paths, in ``planned_files`` order.

    Raises OutputExistsError (before touching the disk) when the experiment folder holds files
    and ``overwrite`` is false; with ``overwrite`` the whole folder is replaced.
    """
    names.check_experiment(result.name)
    fmt = formats.get(data_type)
    plan = fmt.layout(result)
    base = Path(output_path)
    final = base / result.name
    _check_inside(final, base, "experiment")

    existing = existing_outputs(base, result.name)
    if existing and not overwrite:
        raise OutputExistsError(existing)
    if final.is_symlink():
        raise OutputError(
            f"{final} is a symbolic link; point output_path at the real folder instead"
        )

    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        _check_inside(final, base, "experiment")  # again: the parents now exist and resolve
        staging = final.parent / f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(8)}"
        staging.mkdir()
    except OSError as exc:
        raise OutputError(f"could not create a staging folder for {final}: {exc}") from exc

    with _active_lock:
        _active_staging.add(staging.name)
    try:
        for rel in plan:
            _check_inside(staging / rel, staging, "output file")
        written = fmt.write(result, staging)
        folders = {p for path in written for p in path.parents if staging in p.parents}
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            sync_dir(folder)
        sync_dir(staging)
        _swap_in(staging, final)
    except BaseException as exc:
        _remove(staging)
        if isinstance(exc, FileExistsError):
            raise OutputError(
                f"two outputs of {final} map to the same file '{exc.filename}' "
                "(field names differing only in case on a case-insensitive file system?)"
            ) from exc
        if isinstance(exc, OSError):
            raise OutputError(f"could not write {final}: {exc}") from exc
        raise
    finally:
        with _active_lock:
            _active_staging.discard(staging.name)
    log.info("wrote %d file(s) to %s", len(plan), final)
    return [final / path.relative_to(staging) for path in written]
