"""Ctrl-C before the command line is ready: a clean exit instead of a traceback from an import.

Importing the package and wandb takes about a second, during which the default SIGINT handler
would print a traceback from whatever module was loading. When (and only when) this process is
the `wandb2numpy` command, the package installs these handlers first thing; the command's own
handling (`cli.stop`) replaces them once it starts. Nothing has been done yet, so there is nothing
to unwind: one line, and the exit code of the signal.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType


def is_command() -> bool:
    """Whether this process is the `wandb2numpy` command (the installed script, `python -m
    wandb2numpy[.cli]`, or a checkout's `python cli.py`) rather than a program importing us."""
    argv = list(getattr(sys, "orig_argv", sys.argv))
    script = sys.argv[0] if sys.argv else ""
    if os.path.basename(script) in ("wandb2numpy", "wandb2numpy.exe"):
        return True
    if os.path.basename(script) == "cli.py" and os.path.isdir(os.path.join(os.path.dirname(script), "wandb2numpy")):
        return True
    return any(a == "-m" and b in ("wandb2numpy", "wandb2numpy.cli") for a, b in zip(argv, argv[1:]))


def _exit_now(signum: int, frame: FrameType | None) -> None:
    word = "interrupted" if signum == signal.SIGINT else "terminated"
    try:
        sys.stderr.write(f"wandb2numpy: {word}\n")
        sys.stderr.flush()
    finally:
        os._exit(130 if signum == signal.SIGINT else 143)


def install() -> None:
    """The early handlers, in the command's own process only (a library user's signals are theirs)."""
    if not is_command() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return
    try:
        signal.signal(signal.SIGINT, _exit_now)
        signal.signal(signal.SIGTERM, _exit_now)
    except ValueError:  # not the main thread
        pass


def uninstall() -> None:
    """Back to Python's defaults, for commands that handle KeyboardInterrupt themselves."""
    for sig, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
        if signal.getsignal(sig) is _exit_now:
            signal.signal(sig, default)


install()  # on import: the package imports this module before anything slow
