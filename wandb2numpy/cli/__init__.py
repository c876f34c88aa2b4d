"""Command line: parse arguments, run a subcommand, turn the outcome into a message and an exit code.

    wandb2numpy [export] CONFIG.yaml [options]   export what the config describes
    wandb2numpy export [ENTITY/]PROJECT --fields KEY ...   the same without a config file
    wandb2numpy fields CONFIG.yaml|ENTITY/PROJECT  the history keys of the matching runs
    wandb2numpy demo [options]                   the same from the bundled local server, no account
    wandb2numpy plot EXPORT_DIR/EXPERIMENT --field F  one curve per group from exported files

A first argument that names no subcommand means `export`, so `wandb2numpy CONFIG.yaml` works as it
always did (a config file that is called like a subcommand is given as `./demo`). Every argument is
parsed here; the subcommands' modules take plain values and never import this one.

Exit codes (`cli/errors.py`, the one table): 0 done; 1 failed (auth, server unreachable, existing files without -o,
output locked); 2 bad config or usage; 3 partial (some runs failed after retries, the rest written);
4 empty (an experiment matched or exported no run, or a named field was logged by no matched run;
the rest written; `--allow-empty` turns it back into 0 or 3); 130 interrupted (SIGINT); 143
terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from typing import Any

from .errors import EXIT_EMPTY, EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, EXIT_SIGINT, EXIT_SIGTERM, EXIT_USAGE

__all__ = [
    "COMMANDS",
    "EXIT_EMPTY",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "EXIT_USAGE",
    "build_parser",
    "main",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, then import and run the one command asked for (its module has a `command(args)`)."""
    import sys

    from .common import PipeSafe
    from .parser import build_parser

    stdout = sys.stdout
    sys.stdout = PipeSafe(stdout)
    verbose = False
    try:
        args: argparse.Namespace = build_parser().parse_args(argv)
        verbose = bool(getattr(args, "verbose", False))
        if args.handler != "export":  # the export's own handling replaces the early exit (see `stop`)
            from .. import _early

            _early.uninstall()
        module = importlib.import_module(f"{__name__}.{args.handler}")
        code: int = module.command(args)
        sys.stdout.flush()
    except Exception as exc:  # noqa: BLE001 - the last line of defence, see below
        # Every error the tool expects is one line already (Wandb2NumpyError); this is a bug. Say it
        # in one line too, and keep the traceback for -v, where it is wanted.
        if verbose:
            raise
        text = str(exc).splitlines()[0][:300] if str(exc) else ""
        print(
            f"wandb2numpy: error: unexpected {type(exc).__name__}: {text} (a bug: run again with -v "
            "for the details, and report it)",
            file=sys.stderr,
        )
        code = EXIT_FAILED
    finally:
        sys.stdout = stdout
    return code


def __getattr__(name: str) -> Any:
    """The parser on first use only, so `demo` and `report` import without it."""
    if name in ("COMMANDS", "build_parser"):
        from . import parser

        return getattr(parser, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
