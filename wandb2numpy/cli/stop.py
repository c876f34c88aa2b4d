"""Ending on SIGINT and SIGTERM within two seconds, whatever the export is doing.

The first signal is raised in the main thread (KeyboardInterrupt, or `Terminated` for SIGTERM), so
the export unwinds as usual: tasks are cancelled, staging folders removed, the output lock
released. Unwinding can wait on things no signal reaches: a worker thread blocked in a request to a
silent server, wandb's start-up query, asyncio cancelling a task whose thread does not end. So the
first signal also arms a watchdog, and whichever comes first, the unwinding or the watchdog's
`GRACE_S`, ends the process the same way: one line on stderr, the JSON summary, wandb-core
stopped, and `os._exit` with 130 or 143, skipping the interpreter's shutdown, which would join
those threads (and print "Exception ignored in threading._shutdown" when a second Ctrl-C hits
it). Later signals are ignored: the first one's exit is under way. Files stay safe either way: a
folder is replaced by a rename, so an exit between two renames leaves the previous export whole.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from .errors import EXIT_SIGINT, EXIT_SIGTERM
from .report import Summary

log = logging.getLogger("wandb2numpy")

GRACE_S = 1.2  # unwinding gets this long before the watchdog ends the process


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so cleanup runs as it does for Ctrl-C."""


class Stopper:
    """Signal handling for one command; `install` in the main thread, `restore` when done."""

    def __init__(self, summary: Summary, *, grace: float = GRACE_S, exit_fn: Callable[[int], Any] = os._exit) -> None:
        self.summary = summary
        self.grace = grace
        self.signum: int | None = None
        self._exit = exit_fn
        self._once = threading.Lock()
        self._previous: dict[int, Any] = {}

    def install(self) -> Stopper:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            return  # the first signal's exit is under way; a second must not interrupt it
        self.signum = signum
        threading.Thread(target=self._watchdog, name="wandb2numpy-stop", daemon=True).start()
        raise KeyboardInterrupt if signum == signal.SIGINT else Terminated()

    def _watchdog(self) -> None:
        threading.Event().wait(self.grace)
        self.finish()

    def finish(self, signum: int | None = None) -> None:
        """Report the interrupt and end the process; runs once, from the main thread or the
        watchdog, whichever comes first."""
        if not self._once.acquire(blocking=False):
            return
        signum = signum or self.signum or signal.SIGINT
        self.signum = signum
        sigint = signum == signal.SIGINT
        code = EXIT_SIGINT if sigint else EXIT_SIGTERM
        try:
            word = "interrupted" if sigint else "terminated"
            print(f"wandb2numpy: {word}; files of earlier exports are untouched", file=sys.stderr, flush=True)
            self.summary.fail(code, f"{word} ({'SIGINT' if sigint else 'SIGTERM'})")
            self.summary.write()
            log.info("exit code %d", code)
        finally:
            end(code, self._exit)


def end(code: int, exit_fn: Callable[[int], Any] = os._exit) -> None:
    """End the process now: logs and streams flushed, wandb-core stopped, and no wait for
    worker threads still blocked in requests nobody awaits (an interrupt, or the export's
    deadline, abandoned them; the interpreter's shutdown would join each until its timeout)."""
    try:
        stop_wandb_core()
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
    finally:
        exit_fn(code)


def stop_wandb_core() -> None:
    """End the wandb-core process this one started, if any; it would otherwise notice our exit
    only seconds later."""
    try:
        from ..wandb.client import stop_core
    except Exception:  # noqa: BLE001 - nothing to stop when wandb never loaded
        return
    stop_core()
