"""One export at a time per output folder.

Two cron jobs writing the same folder would race each other's atomic swaps and incremental state.
The lock is a file holding the holder's pid and start time, held with `flock` so the kernel frees
it when the holder dies however it dies; the pid in the file is what we show the second caller,
and a file left by a dead pid is taken over with a warning.
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


@contextlib.contextmanager
def output_lock(output_path: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the lock of `output_path` for the duration of the block, or raise OutputLockedError."""
    folder = Path(output_path)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutputError(f"cannot create the lock file in {folder}: {exc}") from exc
    path = folder / LOCK_NAME
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
