"""Write one experiment's arrays to disk, all or nothing, replacing only what an export wrote.

What files an experiment becomes, and their bytes, is the output format's business (see
`formats`: ``runs.csv`` plus one values and one steps file per field, sub-folders at each ``/``
of a field name). This module makes writing them atomic, and keeps what is not ours.

Every export leaves a manifest, ``<experiment>/.wandb2numpy-manifest.json``, listing the files
it wrote. An overwrite replaces those files; anything else in the folder (a person's notes,
plots, sub-folders) is carried into the new folder unchanged (hard-linked, copied where the file
system has no hard links). A folder without a manifest counts as ours when its ``runs.csv`` has
our header: it was written before manifests existed, and its run tables and values/steps file
pairs are ours. Any other folder holding files (``output_path: .`` and an experiment called
``src``) is refused, naming the files, unless the caller passes ``delete_foreign_files``, which
replaces the folder as a whole. So is a file we did not write that sits where the new export
writes one of its own.

Writing is atomic: the new folder, manifest and carried files included, is staged next to the
experiment folder, fsynced, and swapped in with two renames, so readers and crashes see either
the previous export or the new one, never a mix. (A file a person writes into the folder while
the export runs may miss the new folder; do not edit an experiment folder during its export.)

Crash leftovers are cleaned at the next write (or ``existing_outputs``) of the same experiment:

* ``.<experiment>.old-<hex>`` with no ``<experiment>``: the crash hit between the two renames;
  the previous export is restored (the interrupted export is discarded; run it again).
* ``.<experiment>.old-<hex>`` next to ``<experiment>``: the swap finished; the old copy is deleted.
* ``.<experiment>.tmp-<pid>-<hex>`` of a process that is gone: unfinished staging; deleted.

One writer per experiment folder at a time is assumed; the caller holds the output lock.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import secrets
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._fs import pid_alive, sync_dir, sync_file
from ..assemble import ExperimentResult
from ..config import names
from ..config.defaults import DEFAULT_X_AXIS
from ..errors import ForeignFilesError, OutputError, OutputExistsError
from . import formats
from .formats import FAILED_RUNS_FILE, RUN_COLUMNS, RUNS_FILE

__all__ = [
    "MANIFEST_FILE",
    "RUNS_FILE",
    "RUN_COLUMNS",
    "DataType",
    "ExportWrite",
    "Staged",
    "atomic_write_bytes",
    "check_name_safe",
    "check_overwrite",
    "discard",
    "existing_outputs",
    "outputs_in_the_way",
    "planned_files",
    "read_manifest",
    "stage_experiment",
    "swap_in_all",
    "write_experiment",
]

log = logging.getLogger(__name__)

DataType = str  # a name in formats.names()

MANIFEST_FILE = ".wandb2numpy-manifest.json"
_MANIFEST_KEY = "wandb2numpy_manifest"  # its value is the manifest's version
_MANIFEST_VERSION = 1

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

# numpy's words for a short write (`ndarray.tofile`): the disk filled up under it, but it says so
# with byte counts and no errno, where every other format says "No space left on device".
_SHORT_WRITE_RE = re.compile(r"\d+ requested and \d+ written")
DISK_FULL = "No space left on device (the disk or its quota is full)"


def os_error_text(exc: BaseException) -> str:
    """An OSError as one phrase, the same words for a full disk whichever writer hit it."""
    if isinstance(exc, OSError) and (exc.errno in (errno.ENOSPC, errno.EDQUOT) or _SHORT_WRITE_RE.search(str(exc))):
        return DISK_FULL
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc)


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes | bytearray | memoryview, *, make_parents: bool = True
) -> None:
    """Replace one file so readers and crashes see the old or the new content, never a part.

    The temporary file sits in the same folder because a rename is only atomic within one
    file system. `make_parents=False` for a path the user named: a missing folder is their typo.
    """
    target = Path(path)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(8)}"
    try:
        if make_parents:
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
            raise OutputError(f"could not write {target}: {os_error_text(exc)}") from exc
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
                if (pid == os.getpid() and not ours_active) or (pid != os.getpid() and not pid_alive(pid)):
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


# --------------------------------------------------------------------------- what is ours

# runs.csv's header before manifests existed: how a folder of an older export is recognised. Not
# RUN_COLUMNS, which may grow; newer exports are recognised by their manifest.
_LEGACY_RUNS_HEADER = b"id,name,group,job_type,state,tags,created_at,heartbeat_at,history_line_count"


@dataclass(frozen=True)
class _Contents:
    """An experiment folder as an overwrite sees it; paths relative to it, ``/``-separated."""

    known: bool  # a manifest, or a runs.csv of ours from before manifests
    files: list[str]  # files and symbolic links no export wrote (all of them if not known)
    empty_dirs: list[str]  # empty folders: never ours, carried along when the folder is known

    @property
    def theirs(self) -> list[str]:
        return self.files + self.empty_dirs if self.known else self.files


def _entries(folder: Path) -> tuple[set[str], set[str]]:
    """Files (symbolic links included, never followed) and empty folders under `folder`."""
    files: set[str] = set()
    empty: set[str] = set()
    for root, dirs, names_ in os.walk(folder):
        rel_root = Path(root).relative_to(folder)
        files.update((rel_root / name).as_posix() for name in names_)
        files.update((rel_root / name).as_posix() for name in dirs if os.path.islink(os.path.join(root, name)))
        if not names_ and not dirs and rel_root != Path("."):
            empty.add(rel_root.as_posix())
    return files, empty


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest an export left in `folder` (``data_type``, ``files``, ``x_axis`` when not
    ``_step``), or None: no manifest, or one that is not ours (logged)."""
    path = Path(folder) / MANIFEST_FILE
    if path.is_symlink() or not path.is_file():
        return None
    try:
        doc = json.loads(path.read_bytes())
        if not isinstance(doc.get(_MANIFEST_KEY), int):
            raise ValueError("not a wandb2numpy manifest")
        if not all(isinstance(entry["path"], str) for entry in doc["files"]):
            raise ValueError("a path is not a string")
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return None
    manifest: dict[str, Any] = doc
    return manifest


def _read_manifest(folder: Path) -> set[str] | None:
    """The files the last export listed, or None (see `read_manifest`)."""
    doc = read_manifest(folder)
    return None if doc is None else {entry["path"] for entry in doc["files"]}


def _legacy_owned(folder: Path, files: set[str]) -> set[str] | None:
    """What an export from before manifests wrote, by name: its run tables and every values file
    with its steps file (in any format, since ``output_data_type`` may have changed). None when
    runs.csv is missing or was not written by us."""
    runs = folder / RUNS_FILE
    if RUNS_FILE not in files or runs.is_symlink():
        return None
    try:
        with open(runs, "rb") as f:
            head = f.read(len(_LEGACY_RUNS_HEADER) + 1)
    except OSError:
        return None
    if head not in (_LEGACY_RUNS_HEADER + b"\n", _LEGACY_RUNS_HEADER + b","):
        return None
    ours = {RUNS_FILE} | ({FAILED_RUNS_FILE} & files)
    for fmt in map(formats.get, formats.names()):
        if not isinstance(fmt, formats.PerFieldFormat):
            continue  # one-file formats came after manifests
        for rel in files:
            if rel.endswith(fmt.steps_suffix):
                values = rel[: -len(fmt.steps_suffix)] + fmt.values_suffix
                if values in files:
                    ours.update((rel, values))
    return ours


def _contents(final: Path) -> _Contents:
    if not final.is_dir() or final.is_symlink():
        return _Contents(known=False, files=[], empty_dirs=[])
    files, empty = _entries(final)
    files.discard(MANIFEST_FILE)  # rewritten by every export, whoever wrote the old one
    ours = _read_manifest(final)
    if ours is None:
        ours = _legacy_owned(final, files)
    if ours is None:
        return _Contents(known=False, files=sorted(files), empty_dirs=sorted(empty))
    return _Contents(known=True, files=sorted(files - ours), empty_dirs=sorted(empty))


def _clashes(contents: _Contents, plan: Sequence[Path]) -> list[str]:
    """Files of theirs that a planned file would replace, or that sit where it needs a folder."""
    planned = {p.as_posix() for p in plan}
    planned_dirs = {q.as_posix() for p in plan for q in p.parents if q != Path(".")}
    empty = set(contents.empty_dirs)
    clashes = []
    for rel in contents.theirs:
        inside_a_file = any(q.as_posix() in planned for q in Path(rel).parents)
        if rel in planned or inside_a_file or (rel in planned_dirs and rel not in empty):
            clashes.append(rel)
    return clashes


def _refuse_symlink(final: Path) -> None:
    if final.is_symlink():
        raise OutputError(f"{final} is a symbolic link; point output_path at the real folder instead")


def _refuse_foreign(final: Path, plan: Sequence[Path]) -> _Contents:
    """What an overwrite keeps of `final`, or ForeignFilesError if it would delete or replace
    files no export wrote."""
    if final.is_file():
        raise ForeignFilesError(final, [final])
    try:
        contents = _contents(final)
    except OSError as exc:
        raise OutputError(f"could not inspect {final}: {exc}") from exc
    if not contents.known and contents.files:
        raise ForeignFilesError(final, [final / rel for rel in contents.files])
    clashes = _clashes(contents, plan)
    if clashes:
        raise ForeignFilesError(final, [final / rel for rel in clashes], clash=True)
    return contents


def check_overwrite(
    output_path: str | os.PathLike[str],
    experiment: str,
    *,
    data_type: DataType,
    fields: Sequence[str] | None,
) -> None:
    """Refuse, before any request, an overwrite that would delete files no export wrote.

    `fields` are the configured ones; None (``fields: all``) leaves the check for a clash
    between a file of theirs and a field's file to `write_experiment`, when the names are known.
    """
    names.check_experiment(experiment)
    base = Path(output_path)
    final = base / experiment
    _check_inside(final, base, "experiment")
    try:
        _recover(final)
    except OSError as exc:
        raise OutputError(f"could not inspect {final}: {exc}") from exc
    _refuse_symlink(final)
    possible = formats.get(data_type).possible_files(fields) if fields is not None else []
    _refuse_foreign(final, possible)


def _carry(old: Path, staging: Path, rel: str) -> Path:
    """Put one entry of theirs into the staged folder without touching the original, so a crash
    before the swap leaves the previous folder whole."""
    src, dst = old / rel, staging / rel
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        elif src.is_dir():
            dst.mkdir()
        else:
            try:
                os.link(src, dst, follow_symlinks=False)
            except FileExistsError:
                raise  # a copy would overwrite what is staged
            except OSError:  # no hard links on this file system
                if not src.is_file():  # a FIFO or a socket: copying would block or fail
                    raise
                shutil.copy2(src, dst)
                with open(dst, "rb+") as f:
                    sync_file(f)
    except OSError as exc:
        raise OutputError(f"could not keep {src} (not written by wandb2numpy) in the new export: {exc}") from exc
    return dst


def _manifest_bytes(folder: Path, written: Sequence[Path], data_type: DataType, x_axis: str = DEFAULT_X_AXIS) -> bytes:
    """Paths and sizes (and the x axis when it is not ``_step``, for readers such as the plot
    command), nothing else: two exports of the same data write the same bytes."""
    doc: dict[str, object] = {_MANIFEST_KEY: _MANIFEST_VERSION, "data_type": data_type}
    if x_axis != DEFAULT_X_AXIS:
        doc["x_axis"] = x_axis
    doc |= {
        "files": [{"path": p.relative_to(folder).as_posix(), "size": p.stat().st_size} for p in written],
    }
    return (json.dumps(doc, indent=1) + "\n").encode("utf-8")


def existing_outputs(output_path: str | os.PathLike[str], experiment: str) -> list[Path]:
    """Files already in the experiment folder, after cleaning up any interrupted write.

    Recovery runs here too so that a check made before a long fetch sees the same files the
    write will see. The manifest is bookkeeping, not output, and is not listed.
    """
    names.check_experiment(experiment)
    final = Path(output_path) / experiment
    _check_inside(final, Path(output_path), "experiment")
    try:
        _recover(final)
        return [p for p in _files_under(final) if p != final / MANIFEST_FILE]
    except OSError as exc:
        raise OutputError(f"could not inspect {final}: {exc}") from exc


def outputs_in_the_way(output_path: str | os.PathLike[str], experiment: str) -> list[Path]:
    """What stops an export without overwrite: the files an earlier export wrote (its manifest,
    or the run tables and values/steps pairs of one from before manifests). Files a person added
    are not listed, since an overwrite keeps them; a folder no export wrote that holds files
    raises ForeignFilesError, since an overwrite would not help there."""
    names.check_experiment(experiment)
    base = Path(output_path)
    final = base / experiment
    _check_inside(final, base, "experiment")
    try:
        _recover(final)
        if final.is_symlink() or final.is_file():
            return [final]
        contents = _contents(final)
    except OSError as exc:
        raise OutputError(f"could not inspect {final}: {os_error_text(exc)}") from exc
    if not contents.known:
        if contents.files:
            raise ForeignFilesError(final, [final / rel for rel in contents.files])
        return []
    theirs = set(contents.files)
    return [
        p for p in _files_under(final) if p != final / MANIFEST_FILE and p.relative_to(final).as_posix() not in theirs
    ]


@dataclass
class Staged:
    """One experiment written in full next to its folder, not yet swapped in."""

    final: Path
    staging: Path
    written: list[Path]  # in the staging folder, in ``planned_files`` order
    kept: int  # entries not written by wandb2numpy, carried over

    @property
    def files(self) -> list[Path]:
        """Where the written files are once swapped in."""
        return [self.final / path.relative_to(self.staging) for path in self.written]


def stage_experiment(
    result: ExperimentResult,
    output_path: str | os.PathLike[str],
    *,
    data_type: DataType,
    overwrite: bool,
    delete_foreign_files: bool = False,
) -> Staged:
    """Write one experiment into a staging folder next to its final place, touching nothing else.

    Every check `write_experiment` documents happens here, so an export that stages every
    experiment first learns of any problem before any folder is replaced. The caller either
    swaps it in (`swap_in_all`) or discards it (`discard`)."""
    names.check_experiment(result.name)
    fmt = formats.get(data_type)
    plan = fmt.layout(result)
    base = Path(output_path)
    final = base / result.name
    _check_inside(final, base, "experiment")

    existing_outputs(base, result.name)  # recovers an interrupted write first
    existing = [] if overwrite else outputs_in_the_way(base, result.name)
    if existing:
        raise OutputExistsError(existing)
    _refuse_symlink(final)
    keep = [] if delete_foreign_files else _refuse_foreign(final, plan).theirs

    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        _check_inside(final, base, "experiment")  # again: the parents now exist and resolve
        staging = final.parent / f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(8)}"
        staging.mkdir()
    except OSError as exc:
        raise OutputError(f"could not create a staging folder for {final}: {os_error_text(exc)}") from exc

    with _active_lock:
        _active_staging.add(staging.name)
    try:
        for rel in plan:
            _check_inside(staging / rel, staging, "output file")
        written = fmt.write(result, staging)
        kept = [_carry(final, staging, rel) for rel in keep]
        with open(staging / MANIFEST_FILE, "xb") as f:
            f.write(_manifest_bytes(staging, written, data_type, result.x_axis))
            sync_file(f)
        folders = {p for path in [*written, *kept] for p in path.parents if staging in p.parents}
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            sync_dir(folder)
        sync_dir(staging)
    except BaseException as exc:
        discard(Staged(final, staging, [], 0))
        if isinstance(exc, FileExistsError):
            raise OutputError(
                f"two outputs of {final} map to the same file '{exc.filename}' "
                "(field names differing only in case on a case-insensitive file system?)"
            ) from exc
        if isinstance(exc, OSError):
            raise OutputError(f"could not write {final}: {os_error_text(exc)}") from exc
        raise
    return Staged(final, staging, written, len(kept))


def discard(staged: Staged) -> None:
    """Delete a staging folder that will not be swapped in."""
    _remove(staged.staging)
    with _active_lock:
        _active_staging.discard(staged.staging.name)


def swap_in_all(staged: Sequence[Staged]) -> None:
    """Put staged experiments in place: all of them, or, if a rename fails, none.

    Each experiment's old folder is renamed aside and the staged one into place; the old folders
    are deleted only once every experiment is in place, and a failed rename puts back the ones
    already swapped. (A crash, as opposed to an error, in the milliseconds of renames can leave
    some experiments new and some old; each folder is whole either way, see `_recover`.)
    On return or on error no staging folder is left."""
    done: list[tuple[Staged, Path | None]] = []
    try:
        for item in staged:
            old: Path | None = None
            if os.path.lexists(item.final):
                old = item.final.parent / f".{item.final.name}.old-{secrets.token_hex(8)}"
                os.rename(item.final, old)
            try:
                os.rename(item.staging, item.final)
            except BaseException:
                if old is not None:
                    _rename_back(old, item.final)
                raise
            done.append((item, old))
    except BaseException as exc:
        for item, old in reversed(done):  # put the earlier experiments back as they were
            try:
                os.rename(item.final, item.staging)
            except OSError as undo:
                log.error("could not set %s aside again: %s", item.final, undo)
                continue
            if old is not None:
                _rename_back(old, item.final)
        for item in staged:
            discard(item)
        if isinstance(exc, OSError):
            raise OutputError(
                f"could not put the new export in place ({os_error_text(exc)}); every experiment folder is as it was"
            ) from exc
        raise
    for parent in dict.fromkeys(item.final.parent for item in staged):
        sync_dir(parent)
    for item, old in done:
        with _active_lock:
            _active_staging.discard(item.staging.name)
        if old is not None:
            _remove(old)  # the new export is in place; a leftover is cleaned next time
        total = len(item.written)
        if item.kept:
            log.info(
                "wrote %d file(s) to %s, kept %d of its entries not written by wandb2numpy",
                total,
                item.final,
                item.kept,
            )
        else:
            log.info("wrote %d file(s) to %s", total, item.final)


def _rename_back(old: Path, final: Path) -> None:
    try:
        os.rename(old, final)
    except OSError as exc:  # left for _recover on the next write
        log.error("could not put %s back in place: %s", final, exc)


def write_experiment(
    result: ExperimentResult,
    output_path: str | os.PathLike[str],
    *,
    data_type: DataType,
    overwrite: bool,
    delete_foreign_files: bool = False,
) -> list[Path]:
    """Write one experiment and return the final file paths, in ``planned_files`` order.

    Raises OutputExistsError (before touching the disk) when the experiment folder holds files
    and ``overwrite`` is false. With ``overwrite`` the files of the last export are replaced and
    every other file is kept; ForeignFilesError when that would delete or replace a file no
    export wrote. ``delete_foreign_files`` replaces the whole folder instead. The manifest is
    written too but not returned.
    """
    staged = stage_experiment(
        result, output_path, data_type=data_type, overwrite=overwrite, delete_foreign_files=delete_foreign_files
    )
    swap_in_all([staged])
    return staged.files


class ExportWrite:
    """The write phase of one export: every experiment is staged as its results come in, and all
    are swapped in together by `commit` once every experiment has succeeded; leaving the block
    without a commit (an error, an interrupt) discards them. So an export that fails leaves every
    experiment folder as it was, not only the one that failed.

    `then` of `stage`: work that must follow the swap (the incremental cache's state, which may
    never run ahead of the files), run by `commit` in staging order."""

    def __init__(self) -> None:
        self._staged: list[Staged] = []
        self._then: list[Callable[[], object]] = []
        self._guard = threading.Lock()
        self._committed = False

    def stage(
        self,
        result: ExperimentResult,
        output_path: str | os.PathLike[str],
        *,
        data_type: DataType,
        overwrite: bool,
        delete_foreign_files: bool = False,
        then: Callable[[], object] | None = None,
    ) -> list[Path]:
        """Stage one experiment (thread-safe); the paths its files will have once committed."""
        staged = stage_experiment(
            result, output_path, data_type=data_type, overwrite=overwrite, delete_foreign_files=delete_foreign_files
        )
        with self._guard:
            self._staged.append(staged)
            if then is not None:
                self._then.append(then)
        return staged.files

    def commit(self) -> None:
        with self._guard:
            staged, then = list(self._staged), list(self._then)
            self._staged.clear()
            self._then.clear()
        self._committed = True
        swap_in_all(staged)
        for step in then:
            step()

    def __enter__(self) -> ExportWrite:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._guard:
            leftover = list(self._staged)
            self._staged.clear()
            self._then.clear()
        for staged in leftover:
            discard(staged)
