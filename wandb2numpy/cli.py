"""Command line: parse arguments, call `export`, turn the outcome into a message and an exit code.

Exit codes: 0 done; 1 failed (auth, server unreachable, existing files without -o, output locked);
2 bad config or usage; 3 partial (some runs failed after retries, the rest written);
130 interrupted (SIGINT); 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from .client import ClientSettings
from .errors import Wandb2NumpyError
from .fetch import DEFAULT_CONCURRENCY

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
EXIT_SIGINT, EXIT_SIGTERM = 130, 143

log = logging.getLogger("wandb2numpy")


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so cleanup runs as it does for Ctrl-C."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wandb2numpy",
        description="Export W&B run histories to NumPy arrays or CSV, as described in a YAML config. "
        "'wandb2numpy demo' exports a synthetic project from the bundled local server.",
        epilog="Exit codes: 0 done, 1 failed, 2 bad config or usage, 3 partial (some runs failed), "
        "130 interrupted, 143 terminated.",
    )
    p.add_argument("config", help="YAML config file (or 'demo')")
    p.add_argument("-o", "--overwrite", action="store_true", help="replace existing output files")
    p.add_argument(
        "-e", "--experiments", nargs="+", metavar="EXP", help="export only these experiments"
    )
    p.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"history requests in flight at once (default {DEFAULT_CONCURRENCY})",
    )
    p.add_argument("--base-url", help="W&B server URL (default: WANDB_BASE_URL or wandb's default)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary")
    p.add_argument("-v", "--verbose", action="store_true", help="log details; tracebacks on errors")
    p.add_argument("--version", action="version", version=f"wandb2numpy {__version__}")
    return p


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["demo"]:
        from .demo import main as demo_main

        return demo_main(args_list[1:])
    args = build_parser().parse_args(args_list)
    _setup_logging(args.verbose, args.quiet)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("wandb2numpy: interrupted; files of earlier exports are untouched", file=sys.stderr)
        return EXIT_SIGINT
    except _Terminated:
        print("wandb2numpy: terminated; files of earlier exports are untouched", file=sys.stderr)
        return EXIT_SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated()


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from .export import export

    out = out or sys.stdout
    settings = ClientSettings(base_url=args.base_url)
    progress = None if args.quiet or not sys.stderr.isatty() else TqdmProgress()
    try:
        result = export(
            Path(args.config),
            experiments=args.experiments,
            overwrite=args.overwrite,
            concurrency=args.concurrency,
            settings=settings,
            progress=progress,
        )
    except Wandb2NumpyError as exc:
        if args.verbose:
            log.exception("export failed")
        print(f"wandb2numpy: error: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        if progress is not None:
            progress.close()
    if not args.quiet:
        print_summary(result, out)
    return result.exit_code


def print_summary(result: Any, out: TextIO) -> None:
    for name, report in result.experiments.items():
        res = report.result
        print(
            f"{name}: {len(res.runs)} run(s) exported, {len(res.failed_runs)} failed, "
            f"{report.skipped_runs} skipped (no requested field); {len(report.files)} file(s)",
            file=out,
        )
        for field, arrays in res.fields.items():
            print(f"  {field}: shape {arrays.values.shape}", file=out)
        for field, reason in res.skipped_fields.items():
            print(f"  {field}: left out, {reason}", file=out)
        for run_id, error in res.failed_runs.items():
            print(f"  failed run {run_id}: {error}", file=out)
    print(
        f"done: {result.runs_exported} run(s) exported, {result.runs_failed} failed, "
        f"{result.runs_skipped} skipped; {len(result.files)} file(s) written in {result.wall_s:.1f} s",
        file=out,
    )


class TqdmProgress:
    """One bar per experiment: runs done of total, rows fetched."""

    def __init__(self) -> None:
        self._bars: dict[str, Any] = {}
        self._rows: dict[str, int] = {}

    def start(self, experiment: str, total_runs: int) -> None:
        from tqdm import tqdm

        self._rows[experiment] = 0
        self._bars[experiment] = tqdm(
            total=total_runs, desc=experiment, unit="run", position=len(self._bars), leave=True
        )

    def advance(self, experiment: str, run: Any, rows: int, failed: bool) -> None:
        bar = self._bars.get(experiment)
        if bar is None:
            return
        self._rows[experiment] += rows
        bar.set_postfix(rows=self._rows[experiment], refresh=False)
        bar.update(1)

    def finish(self, experiment: str) -> None:
        bar = self._bars.get(experiment)
        if bar is not None:
            bar.refresh()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


def _setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("wandb2numpy: %(levelname)s: %(message)s"))
    root = logging.getLogger("wandb2numpy")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
