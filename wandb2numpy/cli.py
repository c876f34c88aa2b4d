"""Command line: parse arguments, call `export`, turn the outcome into a message and an exit code.

Exit codes: 0 done; 1 failed (auth, server unreachable, existing files without -o, output locked);
2 bad config or usage; 3 partial (some runs failed after retries, the rest written);
130 interrupted (SIGINT); 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from .client import ClientSettings
from .errors import Wandb2NumpyError
from .fetch import DEFAULT_CONCURRENCY, RetryPolicy

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
        type=_positive(int),
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"history requests in flight at once (default {DEFAULT_CONCURRENCY})",
    )
    p.add_argument("--base-url", help="W&B server URL (default: WANDB_BASE_URL or wandb's default)")
    p.add_argument(
        "--max-rate",
        type=_positive(float),
        metavar="RPS",
        help="requests per second the server allows, if known: requests are paced from the start "
        "instead of learning the rate from the first 429 answers",
    )
    p.add_argument(
        "--start-window",
        type=_positive(int),
        metavar="N",
        help="begin with N requests in flight, one more per success up to --concurrency, instead of "
        "the default ramp (8 requests, doubling every 0.1 s until a 429): slower, and cautious where "
        "wandb-core's log cannot be read",
    )
    p.add_argument(
        "--incremental",
        action="store_true",
        help="fetch only runs that are new or changed since the last export into the same "
        "output_path (state and a per-run cache are kept in <output_path>/.wandb2numpy/); implies -o",
    )
    p.add_argument("--log-file", metavar="FILE", help="also write the log, with timestamps, to FILE")
    p.add_argument(
        "--json-summary",
        metavar="FILE",
        help="write a JSON summary for monitors (runs exported/unchanged/failed/skipped, requests, "
        "retries, bytes written, wall time, exit code), also when the export fails",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary")
    p.add_argument("-v", "--verbose", action="store_true", help="log details; tracebacks on errors")
    p.add_argument("--version", action="version", version=f"wandb2numpy {__version__}")
    return p


def _positive(kind: type[int] | type[float]) -> Any:
    """An argparse type accepting only finite numbers above zero of `kind`."""
    what = "a positive integer" if kind is int else "a positive number"

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, found {text!r}") from None
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"expected {what}, found {text}")
        return value

    return parse


def _policy(args: argparse.Namespace) -> dict[str, RetryPolicy]:
    if not (args.max_rate or args.start_window):
        return {}
    return {"policy": RetryPolicy(max_rate=args.max_rate, start_window=args.start_window)}


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["demo"]:
        from .demo import main as demo_main

        return demo_main(args_list[1:])
    args = build_parser().parse_args(args_list)
    _setup_logging(args.verbose, args.quiet, args.log_file)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    summary = Summary(args)
    try:
        code = run(args, summary)
    except KeyboardInterrupt:
        print("wandb2numpy: interrupted; files of earlier exports are untouched", file=sys.stderr)
        code = summary.fail(EXIT_SIGINT, "interrupted (SIGINT)")
    except _Terminated:
        print("wandb2numpy: terminated; files of earlier exports are untouched", file=sys.stderr)
        code = summary.fail(EXIT_SIGTERM, "terminated (SIGTERM)")
    finally:
        signal.signal(signal.SIGTERM, previous)
    summary.write()
    log.info("exit code %d", code)
    return code


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated()


def run(args: argparse.Namespace, summary: Summary, out: TextIO | None = None) -> int:
    from .pipeline import export

    out = out or sys.stdout
    settings = ClientSettings(base_url=args.base_url)
    progress = None if args.quiet or not sys.stderr.isatty() else TqdmProgress()
    try:
        result = export(
            Path(args.config),
            experiments=args.experiments,
            overwrite=args.overwrite or args.incremental,
            concurrency=args.concurrency,
            settings=settings,
            progress=progress,
            incremental=args.incremental,
            **_policy(args),
        )
    except Wandb2NumpyError as exc:
        if args.verbose:
            log.exception("export failed")
        else:  # to the log file only: stderr gets the one-line message below, not a second copy
            log.error("%s", exc, extra={"console": False})
        print(f"wandb2numpy: error: {exc}", file=sys.stderr)
        return summary.fail(exc.exit_code, str(exc))
    finally:
        if progress is not None:
            progress.close()
    if not args.quiet:
        print_summary(result, out)
    summary.done(result)
    return result.exit_code


class Summary:
    """The `--json-summary` record: written whatever happened, so a monitor always has one."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.path = getattr(args, "json_summary", None)
        self.started = time.time()
        self.data: dict[str, Any] = {"config": str(args.config), "exit_code": None, "error": None}

    def fail(self, code: int, message: str) -> int:
        self.data.update(exit_code=code, error=message)
        return code

    def done(self, result: Any) -> None:
        experiments = {}
        bytes_written = 0
        for name, report in result.experiments.items():
            res = report.result
            size = sum(p.stat().st_size for p in report.files if p.exists())
            bytes_written += size
            experiments[name] = {
                "runs_listed": report.listed_runs,
                "runs_exported": len(res.runs),
                "runs_unchanged": report.unchanged_runs,
                "runs_failed": len(res.failed_runs),
                "runs_skipped": report.skipped_runs,
                "failed_runs": dict(res.failed_runs),
                "fields": {f: list(a.values.shape) for f, a in res.fields.items()},
                "fields_left_out": dict(res.skipped_fields),
                "files": [str(p) for p in report.files],
                "bytes_written": size,
            }
        stats = result.stats
        self.data.update(
            exit_code=result.exit_code,
            experiments=experiments,
            runs_exported=result.runs_exported,
            runs_unchanged=sum(e["runs_unchanged"] for e in experiments.values()),
            runs_failed=result.runs_failed,
            runs_skipped=result.runs_skipped,
            calls=stats.calls,
            requests=stats.requests,
            rows_fetched=stats.rows,
            retries=stats.retries,
            rate_limited=stats.rate_limited,
            rate_limited_in_core=stats.rate_limited_in_core,
            bytes_written=bytes_written,
        )

    def write(self) -> None:
        if not self.path:
            return
        from .writers import atomic_write_bytes

        self.data["wall_s"] = round(time.time() - self.started, 3)
        try:
            atomic_write_bytes(self.path, (json.dumps(self.data, indent=2) + "\n").encode("utf-8"))
        except OSError as exc:
            print(f"wandb2numpy: could not write the JSON summary {self.path}: {exc}", file=sys.stderr)


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


def _setup_logging(verbose: bool, quiet: bool, log_file: str | None = None) -> None:
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("wandb2numpy: %(levelname)s: %(message)s"))
    handler.addFilter(lambda record: getattr(record, "console", True))
    root = logging.getLogger("wandb2numpy")
    root.handlers[:] = [handler]
    root.setLevel(level)
    if log_file:
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setLevel(logging.DEBUG if verbose else logging.INFO)
        file_handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        root.addHandler(file_handler)
        root.setLevel(min(level, file_handler.level))
    root.propagate = False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
