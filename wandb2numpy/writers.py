"""Write one experiment's arrays to disk, all or nothing.

Layout under ``<output_path>/<experiment>/``::

    runs.csv                      one line per array row: run metadata and flattened config
    <field>.npy, <field>.steps.npy        (data_type "numpy")
    <field>.csv, <field>.steps.csv        (data_type "csv")

A ``/`` in a field name makes sub-folders (``eval/reward`` -> ``eval/reward.npy``).

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

import csv
import functools
import json
import logging
import os
import re
import secrets
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from . import names
from ._fs import pid_alive
from .assemble import ExperimentResult, FieldArrays
from .errors import OutputError, OutputExistsError
from .models import RunInfo

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

DataType = Literal["numpy", "csv"]
RUNS_FILE = "runs.csv"
FAILED_RUNS_FILE = "failed_runs.csv"
RUN_COLUMNS = (
    "id",
    "name",
    "group",
    "job_type",
    "state",
    "tags",
    "created_at",
    "heartbeat_at",
    "history_line_count",
)
# Values per formatted CSV chunk: bounds the temporary Python floats and strings to a few MB
# however wide a row is.
CSV_CHUNK_VALUES = 1 << 16
_NAME_MAX = 255  # bytes per path component on common Linux/macOS file systems
_SUFFIXES = {"numpy": (".npy", ".steps.npy"), "csv": (".csv", ".steps.csv")}

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


_Writer = Callable[[Path], None]


def _plan(result: ExperimentResult, data_type: DataType) -> list[tuple[Path, _Writer]]:
    if data_type not in _SUFFIXES:
        raise ValueError(f"data_type must be 'numpy' or 'csv', not {data_type!r}")
    n_runs = len(result.runs)
    ids = [run.id for run in result.runs]
    value_suffix, steps_suffix = _SUFFIXES[data_type]
    plan: list[tuple[Path, _Writer]] = [
        (Path(RUNS_FILE), lambda p: _write_runs_csv(p, result.runs))
    ]
    if result.failed_runs:
        # Runs that failed after retries are not rows of the arrays; this says which, and why.
        plan.append((Path(FAILED_RUNS_FILE), lambda p: _write_failed_csv(p, result.failed_runs)))
    for field, arrays in result.fields.items():
        names.check_field(field)
        _check_arrays(field, arrays, n_runs)
        for suffix, array, is_steps in (
            (value_suffix, arrays.values, False),
            (steps_suffix, arrays.steps, True),
        ):
            rel = Path(field + suffix)
            if len(rel.name.encode("utf-8")) > _NAME_MAX:
                raise OutputError(
                    f"field name {field!r} makes a file name longer than {_NAME_MAX} bytes"
                )
            writer: _Writer
            if data_type == "numpy":
                writer = functools.partial(_write_npy, array=array)
            else:
                writer = functools.partial(_write_field_csv, ids=ids, array=array, steps=is_steps)
            plan.append((rel, writer))
    _check_collisions([rel for rel, _ in plan])
    return plan


def _check_arrays(field: str, arrays: FieldArrays, n_runs: int) -> None:
    for label, array in (("values", arrays.values), ("steps", arrays.steps)):
        if not isinstance(array, np.ndarray) or array.dtype != np.float64 or array.ndim != 2:
            raise ValueError(f"field {field!r}: {label} must be a 2-D float64 array")
        if array.shape[0] != n_runs or array.shape != arrays.values.shape:
            raise ValueError(
                f"field {field!r}: {label} has shape {array.shape}, expected ({n_runs}, width) "
                "matching values"
            )


def _check_collisions(files: list[Path]) -> None:
    """Two fields must not map to one file (``a.steps`` vs the steps of ``a``, ``runs`` in CSV)."""
    seen: set[Path] = set()
    for rel in files:
        if rel in seen:
            raise OutputError(f"two outputs would both be written to '{rel}'; rename a field")
        seen.add(rel)
    folders = {parent for rel in files for parent in rel.parents}
    clash = sorted(str(p) for p in seen & folders)
    if clash:
        raise OutputError(f"'{clash[0]}' would be both a file and a folder; rename a field")


def planned_files(result: ExperimentResult, data_type: DataType) -> list[Path]:
    """The files ``write_experiment`` writes, relative to the experiment folder, in its order."""
    return [rel for rel, _ in _plan(result, data_type)]


def _check_inside(path: Path, folder: Path, what: str) -> None:
    """Second line of defence after check_name_safe: symlinks already on disk are followed.

    The last component is not resolved, because that is the entry we create or replace: an
    experiment folder that is itself a symlink is refused separately with a clearer message.
    """
    resolved_folder = folder.resolve()
    resolved = path.parent.resolve() / path.name
    if resolved == resolved_folder or not resolved.is_relative_to(resolved_folder):
        raise OutputError(f"{what} {str(path)!r} would be written outside {str(folder)!r}")


# --------------------------------------------------------------------------- file writers


def _fsync_dir(path: Path) -> None:
    """Persist a folder's entries (renames, new files); not possible on every platform."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # e.g. file systems that refuse fsync on directories
    finally:
        os.close(fd)


def _finish(f: IO[Any]) -> None:
    f.flush()
    os.fsync(f.fileno())


def _write_npy(path: Path, array: np.ndarray) -> None:
    # "xb": a second file mapping to the same path (case-insensitive file systems) fails loudly.
    with open(path, "xb") as f:
        np.save(f, array, allow_pickle=False)  # writes straight from the array buffer
        _finish(f)


def _config_cell(value: Any) -> str:
    """Strings as they are; everything else as JSON, so lists, None and bools stay readable."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts become dotted keys; on a clash (``"a.b"`` vs ``{"a": {"b"}}``) first wins."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            for sub_key, sub_value in _flatten(value, dotted + ".").items():
                flat.setdefault(sub_key, sub_value)
        else:
            flat.setdefault(dotted, value)
    return flat


def _run_cells(run: RunInfo) -> list[str]:
    return [
        run.id,
        run.name,
        run.group or "",
        run.job_type or "",
        run.state,
        json.dumps(list(run.tags), ensure_ascii=False),
        run.created_at or "",
        run.heartbeat_at or "",
        str(run.history_line_count),
    ]


def _write_runs_csv(path: Path, runs: list[RunInfo]) -> None:
    configs = [_flatten(run.config) for run in runs]
    keys = sorted(set().union(*configs))
    # backslashreplace: a lone surrogate in a run name (valid JSON, invalid UTF-8) must not sink
    # the whole export.
    with open(path, "x", encoding="utf-8", errors="backslashreplace", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([*RUN_COLUMNS, *(f"config.{k}" for k in keys)])
        for run, config in zip(runs, configs):
            writer.writerow(
                [*_run_cells(run), *(_config_cell(config[k]) if k in config else "" for k in keys)]
            )
        _finish(f)


def _write_failed_csv(path: Path, failed: Mapping[str, str]) -> None:
    with open(path, "x", encoding="utf-8", errors="backslashreplace", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["id", "error"])
        for run_id, error in failed.items():
            writer.writerow([run_id, error])
        _finish(f)


def _csv_cell(text: str) -> str:
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _format_values(chunk: np.ndarray) -> Iterable[str]:
    # repr(float) is the shortest string that parses back to the same bits: nan, inf, -0.0 too.
    return map(repr, chunk.tolist())


def _format_steps(chunk: np.ndarray) -> Iterable[str]:
    """Whole steps as integers (``12``, not ``12.0``); anything else exactly like values."""
    with np.errstate(invalid="ignore"):
        whole = (
            np.isfinite(chunk)
            & (chunk == np.trunc(chunk))
            & (np.abs(chunk) < 2.0**53)
            & ~((chunk == 0) & np.signbit(chunk))
        )
    if whole.all():
        return map(str, chunk.astype(np.int64).tolist())
    return [
        str(int(v)) if w else repr(v) for v, w in zip(chunk.tolist(), whole.tolist())
    ]


def _chunks(width: int) -> Iterator[tuple[int, int]]:
    for lo in range(0, width, CSV_CHUNK_VALUES):
        yield lo, min(lo + CSV_CHUNK_VALUES, width)


def _write_field_csv(path: Path, ids: list[str], array: np.ndarray, *, steps: bool) -> None:
    fmt = _format_steps if steps else _format_values
    width = array.shape[1]
    with open(path, "x", encoding="utf-8", errors="backslashreplace", newline="") as f:
        f.write("id")
        for lo, hi in _chunks(width):
            f.write(",")
            f.write(",".join(map(str, range(lo, hi))))
        f.write("\n")
        for run_id, row in zip(ids, array):
            f.write(_csv_cell(run_id))
            for lo, hi in _chunks(width):
                f.write(",")
                f.write(",".join(fmt(row[lo:hi])))
            f.write("\n")
        _finish(f)


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
            _finish(f)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise OutputError(f"could not write {target}: {exc}") from exc
        raise
    _fsync_dir(target.parent)


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
        _fsync_dir(parent)
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
    _fsync_dir(final.parent)
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
    plan = _plan(result, data_type)
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
        for rel, _ in plan:
            _check_inside(staging / rel, staging, "output file")
        folders: set[Path] = set()
        for rel, write in plan:
            target = staging / rel
            if target.parent != staging and target.parent not in folders:
                target.parent.mkdir(parents=True, exist_ok=True)
                folders.update(p for p in target.parents if p != staging and staging in p.parents)
            write(target)
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            _fsync_dir(folder)
        _fsync_dir(staging)
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
    return [final / rel for rel, _ in plan]
