"""Command line: parse arguments, run a subcommand, turn the outcome into a message and an exit code.

    wandb2numpy [export] CONFIG.yaml [options]   export what the config describes
    wandb2numpy export [ENTITY/]PROJECT --fields KEY ...   the same without a config file
    wandb2numpy fields CONFIG.yaml|ENTITY/PROJECT  the history keys of the matching runs
    wandb2numpy demo [options]                   the same from the bundled local server, no account
    wandb2numpy plot EXPORT_DIR/EXPERIMENT --field F  one curve per group from exported files

A first argument that names no subcommand means `export`, so `wandb2numpy CONFIG.yaml` works as it
always did (a config file that is called like a subcommand is given as `./demo`). Every argument is
parsed here; the subcommands' modules take plain values and never import this one.

Exit codes (`report.EXIT_*`): 0 done; 1 failed (auth, server unreachable, existing files without -o,
output locked); 2 bad config or usage; 3 partial (some runs failed after retries, the rest written);
4 empty (an experiment matched or exported no run, or a named field was logged by no matched run;
the rest written; `--allow-empty` turns it back into 0 or 3); 130 interrupted (SIGINT); 143
terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, TextIO, TypedDict
from urllib.parse import urlsplit

from . import __version__
from . import demo as demo_module
from .client import ClientSettings
from .config import ExperimentConfig, load_config, parse_config
from .errors import ConfigError, Wandb2NumpyError
from .fetch import DEFAULT_CONCURRENCY, RetryPolicy
from .plot import DEFAULT_CI, DEFAULT_POINTS, STATS  # plot imports matplotlib only to draw
from .report import (
    EXIT_EMPTY,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_USAGE,
    STDOUT,
    Summary,
    TqdmLogHandler,
    TqdmProgress,
    exit_code,
    print_summary,
)

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
    "run",
]

COMMANDS = ("export", "fields", "demo", "plot")
_TOP_LEVEL_OPTIONS = ("-h", "--help", "--version")
EXIT_CODES_EPILOG = (
    "Exit codes: 0 done, 1 failed, 2 bad config or usage, 3 partial (some runs failed), "
    "4 empty (no run matched, or a named field was logged by no run), 130 interrupted, 143 terminated."
)

log = logging.getLogger("wandb2numpy")


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so cleanup runs as it does for Ctrl-C."""


class _Parser(argparse.ArgumentParser):
    """The top-level parser, which also takes the pre-subcommand form `wandb2numpy CONFIG.yaml ...`:
    whatever does not start with a subcommand (or -h/--version) is read as `export ...`."""

    commands: dict[str, argparse.ArgumentParser]  # each subcommand's parser, for its own errors

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        argv = list(sys.argv[1:] if args is None else args)
        if not argv or argv[0] not in (*COMMANDS, *_TOP_LEVEL_OPTIONS):
            argv.insert(0, "export")
        ns, extra = super().parse_known_args(argv, namespace)
        command = getattr(ns, "command", None)
        if command in ("export", "fields"):
            _take_config_back(self.commands[command], ns)
        return ns, extra


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="wandb2numpy",
        description="Export W&B run histories to NumPy arrays or CSV, as described in a YAML config. "
        "'wandb2numpy CONFIG.yaml' is short for 'wandb2numpy export CONFIG.yaml'.",
        epilog=EXIT_CODES_EPILOG,
    )
    p.add_argument("--version", action="version", version=f"wandb2numpy {__version__}")
    # the subparsers are plain parsers: only the top level rewrites its arguments
    sub = p.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=argparse.ArgumentParser
    )
    p.commands = {
        "export": _add_export(sub),
        "fields": _add_fields(sub),
        "demo": _add_demo(sub),
        "plot": _add_plot(sub),
    }
    return p


def _add_export(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "export",
        help="export the experiments of a YAML config (the default command)",
        description="Export W&B run histories to NumPy arrays or CSV, as described in a YAML config.",
        epilog=EXIT_CODES_EPILOG,
    )
    p.set_defaults(handler=_export_command)
    p.add_argument(
        "config",
        nargs="?",
        help="YAML config file; with --fields, ENTITY/PROJECT instead (or PROJECT with WANDB_ENTITY "
        "set, or nothing with WANDB_ENTITY and WANDB_PROJECT set)",
    )
    p.add_argument(
        "-o",
        "--overwrite",
        action="store_true",
        help="replace the files an earlier export wrote; other files in an experiment folder are "
        "kept, and a folder wandb2numpy did not write is refused",
    )
    p.add_argument(
        "--delete-foreign-files",
        action="store_true",
        help="with -o: replace each experiment folder as a whole, deleting files wandb2numpy "
        "did not write",
    )
    p.add_argument(
        "-O",
        "--output-dir",
        metavar="DIR",
        help="write under DIR instead of the config's output_path (default for ENTITY/PROJECT: "
        f"./{PROJECT_OUTPUT_DIR})",
    )
    project = p.add_argument_group("export without a config file (ENTITY/PROJECT)")
    project.add_argument(
        "--fields",
        nargs="+",
        metavar="KEY",
        help="history keys to export, or 'all'; makes the positional argument ENTITY/PROJECT",
    )
    project.add_argument("--groups", nargs="+", metavar="GROUP", help="only runs of these groups")
    project.add_argument(
        "--samples",
        metavar="N|all",
        help="rows per run: N sampled by the server (default 12000), or 'all' for the full history",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list the matching runs of each experiment and the planned history requests, then "
        "stop: no history is fetched and nothing is written (not even --json-summary)",
    )
    p.add_argument(
        "-e",
        "--experiments",
        action="append",
        nargs="+",
        metavar="EXP",
        help="export only these experiments (repeatable); when no config path stands elsewhere, "
        "the last word after -e is the config: '-e A B config.yaml'",
    )
    p.add_argument(
        "--concurrency",
        type=_positive(int),
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"history requests in flight at once (default {DEFAULT_CONCURRENCY})",
    )
    p.add_argument(
        "--base-url",
        type=_url,
        help="W&B server URL (default: WANDB_BASE_URL or wandb's default, https://api.wandb.ai)",
    )
    p.add_argument(
        "--allow-empty",
        action="store_true",
        help="an experiment that matched or exported no run, or a named field no run logged, is "
        "not an error: exit 0 (or 3) instead of 4, with a warning",
    )
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
        "retries, bytes written, wall time, exit code), also when the export fails; '-' writes it "
        "to stdout, and the printed summary goes to stderr instead",
    )
    loud = p.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary")
    loud.add_argument("-v", "--verbose", action="store_true", help="log details; tracebacks on errors")
    p.add_argument("--version", action="version", version=f"wandb2numpy {__version__}")
    return p


def _add_fields(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "fields",
        help="list the history keys of the matching runs, with types and counts (no history fetched)",
        description="List the history keys of the runs a config (or ENTITY/PROJECT) matches: "
        "their types, in how many runs and in how many rows in all. Reads the run listing only.",
    )
    p.set_defaults(handler=_fields_command)
    p.add_argument(
        "config",
        nargs="?",
        metavar="CONFIG|ENTITY/PROJECT",
        help="YAML config file, or ENTITY/PROJECT (PROJECT with WANDB_ENTITY set; nothing with "
        "WANDB_ENTITY and WANDB_PROJECT set)",
    )
    p.add_argument(
        "-e", "--experiments", action="append", nargs="+", metavar="EXP",
        help="only these experiments of the config (repeatable)",
    )
    p.add_argument("--groups", nargs="+", metavar="GROUP", help="ENTITY/PROJECT: only runs of these groups")
    p.add_argument("--base-url", help="W&B server URL (default: WANDB_BASE_URL or wandb's default)")
    p.add_argument("-v", "--verbose", action="store_true", help="log details; tracebacks on errors")
    return p


def _add_demo(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="export a synthetic project from the bundled local server (no account, no network)",
        description=demo_module.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(handler=_demo_command)
    p.add_argument("--output", default="wandb_data", metavar="DIR", help="output folder (default ./wandb_data)")
    p.add_argument("--runs", type=_positive(int), default=24, metavar="N", help="synthetic runs (default 24)")
    p.add_argument("--steps", type=_positive(int), default=500, metavar="M", help="steps per run (default 500)")
    p.add_argument("--concurrency", type=_positive(int), default=16, metavar="N")
    return p


def _add_plot(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "plot",
        help="plot one field of an exported experiment: a curve per group with a bootstrap band",
        description="Draw field F of an exported experiment as one curve per group of runs (mean, "
        "median or interquartile mean across runs at each x) with a percentile bootstrap "
        "confidence band over runs, from the exported files alone (no network). Needs matplotlib: "
        "pip install 'wandb2numpy[plot]'.",
    )
    p.set_defaults(handler=_plot_command)
    p.add_argument("experiment", metavar="EXPORT_DIR/EXPERIMENT", help="an experiment folder of an export")
    p.add_argument("--field", required=True, metavar="F", help="the field to plot, e.g. train/return")
    p.add_argument(
        "--by", type=_group_column, metavar="group|job_type|config.KEY",
        help="one curve per value of this runs.csv column (default: one curve of all runs)",
    )
    p.add_argument("--stat", choices=STATS, default="mean",
                   help="statistic across runs at each x (default mean; iqm: interquartile mean)")
    p.add_argument("--ci", type=_confidence, default=DEFAULT_CI, metavar="PCT",
                   help=f"confidence band in percent, bootstrap over runs (default {DEFAULT_CI:g}; 0: no band)")
    p.add_argument("--points", type=_positive(int), default=DEFAULT_POINTS, metavar="N",
                   help="x values of the grid the runs are resampled on, when the export has no grid "
                   f"of its own (default {DEFAULT_POINTS})")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="PNG to write (default ./<EXPERIMENT>-<field, / as ->.png)")
    p.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors")
    return p


def _group_column(text: str) -> str:
    if text in ("group", "job_type") or (text.startswith("config.") and len(text) > len("config.")):
        return text
    raise argparse.ArgumentTypeError(f"expected group, job_type or config.KEY; found {text!r}")


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage, found {text!r}") from None
    if not 0 <= value < 100:
        raise argparse.ArgumentTypeError(f"expected a percentage from 0 (no band) to below 100, found {text}")
    return value


def _take_config_back(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """`-e` takes one or more names, so in `-e A B config.yaml` it also takes the config path.
    Without a config elsewhere, the last word of the last `-e` is the config; the occurrences are
    then flattened into one list of names."""
    groups: list[list[str]] | None = args.experiments
    if args.config is None:
        if not groups:
            if args.command == "fields" or getattr(args, "fields", None) is not None:
                return  # the project comes from WANDB_ENTITY / WANDB_PROJECT
            parser.error("the following arguments are required: config")
        args.config = groups[-1].pop()
        if not groups[-1]:
            parser.error(f"argument -e/--experiments: no experiment named before the config {args.config!r}")
    if groups is not None:
        args.experiments = [name for group in groups for name in group]


def _url(text: str) -> str:
    """An http(s) URL with a host, so a typo is a usage error rather than a minute of retries."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(
            f"expected an http(s) URL such as https://api.wandb.ai or http://127.0.0.1:8080, found {text!r}"
        )
    return text


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
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


class _PolicyArg(TypedDict, total=False):
    policy: RetryPolicy


def _policy(args: argparse.Namespace) -> _PolicyArg:
    """`policy=` only when an option asks for one, so a caller's default policy stays in force
    (tests/conftest.py hands `export` a short retry policy that way)."""
    if not (args.max_rate or args.start_window):
        return {}
    return {"policy": RetryPolicy(max_rate=args.max_rate, start_window=args.start_window)}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


def _export_command(args: argparse.Namespace) -> int:
    _setup_logging(args.verbose, args.quiet, args.log_file)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    summary = Summary(args.config or "(WANDB_ENTITY/WANDB_PROJECT)", None if args.dry_run else args.json_summary)
    try:
        code = dry_run(args, summary) if args.dry_run else run(args, summary)
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


def _demo_command(args: argparse.Namespace) -> int:
    return demo_module.run_demo(
        output=args.output, runs=args.runs, steps=args.steps, concurrency=args.concurrency
    )


def _plot_command(args: argparse.Namespace) -> int:
    from .plot import plot_experiment

    _setup_logging(args.verbose, False)
    try:
        result = plot_experiment(
            args.experiment, args.field, by=args.by, stat=args.stat, ci=args.ci, points=args.points,
            output=args.output,
        )
    except Wandb2NumpyError as exc:
        return _fail(args, exc)
    print(f"wrote {result.path}: {len(result.curves)} curve(s), "
          + ", ".join(f"{c.label} (n={c.n_runs})" for c in result.curves))
    return EXIT_OK


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated()


def run(args: argparse.Namespace, summary: Summary, out: TextIO | None = None) -> int:
    # looked up on each call: tests/conftest.py swaps the module's `export` for one with a short
    # retry policy, since the command line has no retry option
    from .pipeline import export

    if out is None:
        out = sys.stderr if args.json_summary == STDOUT else sys.stdout
    settings = ClientSettings(base_url=args.base_url)
    progress = None if args.quiet or not sys.stderr.isatty() else TqdmProgress()
    try:
        result = export(
            configs(args),
            overwrite=args.overwrite or args.incremental,
            concurrency=args.concurrency,
            settings=settings,
            progress=progress,
            incremental=args.incremental,
            delete_foreign_files=args.delete_foreign_files,
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
    for problem in result.problems:  # shown under -q too: an empty export must not pass unseen
        if args.allow_empty:
            log.warning("%s", problem)
        else:
            log.error("%s", problem, extra={"console": False})
            print(f"wandb2numpy: error: {problem}", file=sys.stderr)
    code = exit_code(result, allow_empty=args.allow_empty)
    summary.done(result, code)
    return code


# ------------------------------------------------------------------------ configs, look first

PROJECT_OUTPUT_DIR = "wandb_data"  # where `export ENTITY/PROJECT` writes without -O, as the demo
_PROJECT_SOURCE = "command line"
_CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
_PROJECT_RE = re.compile(r"[^/\\\s]+(/[^/\\\s]+)?")


def configs(args: argparse.Namespace) -> list[ExperimentConfig]:
    """The experiments the arguments describe: the config file's (`output_path` replaced by
    -O/--output-dir when given), or one experiment named after the project when the fields are
    given on the command line. Both go through `parse_config`, so a mistake reads the same."""
    if _project_mode(args):
        return parse_config(_project_config(args), source=_PROJECT_SOURCE)
    target: str = args.config
    if not os.path.exists(target) and not target.lower().endswith(_CONFIG_SUFFIXES) and _PROJECT_RE.fullmatch(target):
        raise ConfigError(
            f"no config file {target!r}; to export a project without one, name its fields: "
            f"wandb2numpy export ENTITY/PROJECT --fields KEY [KEY ...] (or --fields all)"
        )
    loaded = load_config(target, args.experiments)
    output_dir: str | None = getattr(args, "output_dir", None)
    if output_dir is None:
        return loaded
    _check_output_dir(output_dir)
    return [
        dataclasses.replace(c, output_path=Path(output_dir), raw=MappingProxyType({**c.raw, "output_path": output_dir}))
        for c in loaded
    ]


def _project_mode(args: argparse.Namespace) -> bool:
    if args.command == "fields":
        target = args.config
        if target is None or not (os.path.exists(target) or target.lower().endswith(_CONFIG_SUFFIXES)):
            return True
        if args.groups is not None:
            raise ConfigError("--groups goes with ENTITY/PROJECT; a config file names its own groups")
        return False
    if args.fields is None:
        if args.groups is not None or args.samples is not None:
            raise ConfigError("--groups and --samples describe an export without a config file; "
                              "they need --fields (a config file says them itself)")
        return False
    if args.config is not None and (os.path.exists(args.config) or args.config.lower().endswith(_CONFIG_SUFFIXES)):
        raise ConfigError(f"--fields names the fields of an export without a config file, but {args.config!r} "
                          "is a config file: put the fields in it, or give ENTITY/PROJECT")
    return True


def _project_config(args: argparse.Namespace) -> dict[str, Any]:
    """The config dict of `export ENTITY/PROJECT --fields ...`, with WANDB_ENTITY / WANDB_PROJECT
    filling in what the argument leaves out, as wandb itself does."""
    if args.experiments:
        raise ConfigError("-e/--experiments picks experiments of a config file; "
                          "without one there is only the project")
    target: str | None = args.config
    entity = os.environ.get("WANDB_ENTITY") or None
    project = os.environ.get("WANDB_PROJECT") or None
    if target is not None:
        if not _PROJECT_RE.fullmatch(target):
            raise ConfigError(f"expected ENTITY/PROJECT or PROJECT; found {target!r}", source=_PROJECT_SOURCE)
        entity, _, project = target.rpartition("/") if "/" in target else (entity, "", target)
    if not project or not entity:
        missing = "project" if not project else "entity"
        raise ConfigError(
            f"no {missing} given: name ENTITY/PROJECT, or set WANDB_ENTITY and WANDB_PROJECT",
            source=_PROJECT_SOURCE,
        )
    fields: list[str] | None = getattr(args, "fields", None)
    output_dir: str | None = getattr(args, "output_dir", None)
    exp: dict[str, Any] = {
        "entity": entity,
        "project": project,
        "fields": "all" if fields is None or fields == ["all"] else fields,
        "output_path": output_dir if output_dir is not None else PROJECT_OUTPUT_DIR,
    }
    if args.groups is not None:
        exp["groups"] = "all" if args.groups == ["all"] else args.groups
    samples: str | None = getattr(args, "samples", None)
    if samples is not None:
        exp["history_samples"] = int(samples) if samples.strip().lstrip("-").isdigit() else samples
    return {project: exp}


def _check_output_dir(path: str) -> None:
    if not path.strip():
        raise ConfigError("-O/--output-dir: expected a folder path; found an empty string")


def _fail(args: argparse.Namespace, exc: Wandb2NumpyError, summary: Summary | None = None) -> int:
    """One line on stderr (a traceback with -v), the exit code of the error's kind."""
    if args.verbose:
        log.exception("%s failed", args.command)
    else:
        log.error("%s", exc, extra={"console": False})
    print(f"wandb2numpy: error: {exc}", file=sys.stderr)
    return summary.fail(exc.exit_code, str(exc)) if summary is not None else exc.exit_code


def dry_run(args: argparse.Namespace, summary: Summary, out: TextIO | None = None) -> int:
    """`export --dry-run`: list and plan, fetch no history, write nothing."""
    from .look import dry_run_lines, preview

    out = out or sys.stdout
    try:
        previews = preview(
            configs(args), settings=ClientSettings(base_url=args.base_url), concurrency=args.concurrency,
            **_policy(args),
        )
    except Wandb2NumpyError as exc:
        return _fail(args, exc, summary)
    for line in dry_run_lines(previews, all_runs=args.verbose):
        print(line, file=out)
    return EXIT_OK


def _fields_command(args: argparse.Namespace) -> int:
    from .look import fields_lines, preview

    _setup_logging(args.verbose, False)
    try:
        previews = preview(configs(args), settings=ClientSettings(base_url=args.base_url))
    except Wandb2NumpyError as exc:
        return _fail(args, exc)
    except KeyboardInterrupt:
        print("wandb2numpy: interrupted", file=sys.stderr)
        return EXIT_SIGINT
    for line in fields_lines(previews):
        print(line)
    return EXIT_OK


def _setup_logging(verbose: bool, quiet: bool, log_file: str | None = None) -> None:
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING
    # On a terminal the progress bars are drawn there too: log lines go above them, through tqdm.
    handler: logging.Handler = (
        TqdmLogHandler(sys.stderr) if sys.stderr.isatty() else logging.StreamHandler(sys.stderr)
    )
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
