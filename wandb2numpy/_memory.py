"""Give freed memory back to the system during an export (glibc only).

An export builds many medium-sized arrays (a page of rows, a window's values, one run's series)
in worker threads and frees them once they are stacked. glibc's malloc raises its mmap
threshold each time such a block is freed, so later blocks of up to 32 MB come from the
per-thread heaps instead, where freed space stays with the process. Measured on 64 runs x 100k
steps x 2 fields, full history (`benchmarks/`, scenario MEM): peak RSS 554 MB with the default,
365 MB with the threshold fixed at 256 KB, for 195 MB of arrays and about the same CPU time.

Fixing the threshold is a process-wide setting: blocks of 256 KB and more are then mapped and
unmapped on their own. It is applied once per process, only where the C library is glibc, and
`WANDB2NUMPY_MALLOC=default` leaves malloc as it is.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import threading

__all__ = ["MMAP_THRESHOLD", "map_large_blocks"]

log = logging.getLogger(__name__)

MMAP_THRESHOLD = 256 * 1024
_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
_done = False
_lock = threading.Lock()


def map_large_blocks() -> bool:
    """Fix glibc's mmap threshold (see the module docstring); whether it is set now."""
    global _done
    with _lock:
        if _done:
            return True
        if os.environ.get("WANDB2NUMPY_MALLOC", "").lower() == "default":
            return False
        if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
            return False
        try:
            libc = ctypes.CDLL("libc.so.6")
            ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
        except (OSError, AttributeError):
            return False
        log.debug("malloc: blocks of %d bytes and more are mapped on their own: %s", MMAP_THRESHOLD, ok)
        _done = ok
        return ok
