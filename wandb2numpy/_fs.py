"""File-system helpers shared by the writers, the output formats and the output lock."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

__all__ = ["pid_alive", "sync_dir", "sync_file"]


def pid_alive(pid: int) -> bool:
    """Whether a process still holds what it left on disk; when unsure, say yes.

    Both callers delete or take over on False, so every doubt (no cheap check on this platform,
    a process of another user) must come out as alive.
    """
    if os.name != "posix":
        return True  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def sync_file(f: IO[Any]) -> None:
    """Flush and fsync an open file, so a rename that publishes it never publishes a hole."""
    f.flush()
    os.fsync(f.fileno())


def sync_dir(path: Path) -> None:
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
