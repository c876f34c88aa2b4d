"""One export at a time per output folder.

Two cron jobs writing the same folder would race each other's atomic swaps and incremental state.
The lock is a file holding the holder's pid and start time, held with `flock` so the kernel frees
it when the holder dies however it dies; the pid in the file is what we show the second caller,
and a file left by a dead pid is taken over with a warning. The holder deletes the file when done,
so a folder holds no lock file between exports; a process that opened the file just before that
finds, once it has locked it, that the path names another file (or none), and starts over.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from .._fs import pid_alive
from ..errors import OutputError, OutputLockedError

log = logging.getLogger(__name__)

LOCK_NAME = ".wandb2numpy.lock"


def _read_holder(fd: int) -> dict[str, object]:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    try:
        holder = json.loads(raw.decode("utf-8")) if raw else {}
    except ValueError:
        holder = {}
    return holder if isinstance(holder, dict) else {}


def _same_file(fd: int, path: Path) -> bool:
    """Whether `path` still names the file open as `fd`: a holder deletes the lock file when it
    is done, so a process that opened it just before may lock a file nobody else will ever see."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _open_locked(folder: Path, path: Path) -> int:
    """The lock file, open and `flock`ed, and still the one at `path` once locked.

    Open and lock are two steps: between them the holder may release and delete the file and a
    newcomer create and lock a new one. Locking the deleted file would then succeed, and two
    exports would hold "the" lock. So after locking, the path must still name the locked file;
    if not, the file is closed and the whole step taken again (a release deletes at most once per
    holder, so this ends)."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot create the lock file {path}: {exc.strerror or exc}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                raise OutputLockedError(
                    f"{folder} is being exported to by another wandb2numpy process "
                    f"(pid {holder.get('pid', '?')}, started {holder.get('started', '?')}); "
                    f"if it is gone, remove {path}"
                ) from None
            if _same_file(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the holder deleted it as we locked it: take the file at the path now


@contextlib.contextmanager
def output_lock(output_path: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the lock of `output_path` for the duration of the block, or raise OutputLockedError."""
    folder = Path(output_path)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {folder}: {exc.strerror or exc}") from None
    path = folder / LOCK_NAME
    fd = _open_locked(folder, path)
    try:
        previous = _read_holder(fd)
        pid = previous.get("pid")
        if isinstance(pid, int) and pid != os.getpid() and not pid_alive(pid):
            log.warning(
                "taking over a stale lock on %s left by pid %s (started %s)",
                folder,
                pid,
                previous.get("started", "?"),
            )
        me = {"pid": os.getpid(), "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(me).encode("utf-8"))
        os.fsync(fd)
        try:
            yield path
        finally:
            # Deleted while still locked: whoever opened it meanwhile finds, once it holds the
            # lock, that the path no longer names its file, and starts over (`_open_locked`).
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                path.unlink()
            if created:  # an export that wrote nothing leaves no trace, not even the folder
                with contextlib.suppress(OSError):
                    folder.rmdir()
    finally:
        os.close(fd)


@contextlib.contextmanager
def output_locks(paths: Iterable[str | os.PathLike[str]]) -> Iterator[None]:
    """Locks for several output folders, taken in a fixed order so two exports cannot deadlock."""
    unique = sorted({str(Path(p).resolve()) for p in paths})
    with contextlib.ExitStack() as stack:
        for p in unique:
            stack.enter_context(output_lock(p))
        yield
