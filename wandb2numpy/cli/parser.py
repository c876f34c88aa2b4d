"""The argument parser of every subcommand: what each option means, checked as it is parsed.

Handlers are named, not imported: `main` imports only the module of the command that runs, so
`wandb2numpy plot` never loads the export machinery and the export never loads matplotlib.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from .. import __version__
from ..config.defaults import DEFAULT_CONCURRENCY, DEFAULT_HISTORY_SAMPLES, DEFAULT_RETRIES, DEFAULT_TIMEOUT_S
from ..plot_options import (  # not `plot`: it loads the output readers
    DEFAULT_CI,
    DEFAULT_POINTS,
    DPI,
    FIGSIZE,
    FORMATS,
    GROUP_COLUMNS,
    LEGENDS,
    PLOT_INSTALL_HINT,
    STATS,
)
from .common import PROJECT_OUTPUT_DIR

COMMANDS = ("export", "fields", "demo", "plot")
_TOP_LEVEL_OPTIONS = ("-h", "--help", "--version")
DEMO_HELP = (
    "Start the bundled W&B-compatible server in this process with a synthetic project (no account, "
    "no network), export the demo config into --output (its own demo-* experiment folders are "
    "replaced on every run; nothing else is touched), print each file with its shape, and the "
    "command that plots one of them."
)
EXIT_CODES_EPILOG = (
    "Exit codes: 0 done, 1 failed, 2 bad config or usage, 3 partial (some runs failed), "
    "4 empty (no run matched, or a named field was logged by no run), 130 interrupted, 143 terminated."
)


class _Parser(argparse.ArgumentParser):
    """The top-level parser, which also takes the pre-subcommand form `wandb2numpy CONFIG.yaml ...`:
    whatever does not start with a subcommand (or -h/--version) is read as `export ...`."""

    commands: dict[str, argparse.ArgumentParser]  # each subcommand's parser, for its own errors

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        argv = list(sys.argv[1:] if args is None else args)
        if not argv:  # nothing asked: the commands, not the export's usage
            self.print_help(sys.stderr)
            self.exit(2)
        if argv[0] not in (*COMMANDS, *_TOP_LEVEL_OPTIONS):
            argv.insert(0, "export")
        ns, extra = super().parse_known_args(argv, namespace)
        command = getattr(ns, "command", None)
        if command in ("export", "fields"):
            _take_config_back(self.commands[command], ns)
        return ns, extra


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="wandb2numpy",
        description="Export W&B run histories to NumPy, CSV, npz or parquet files, as described in a YAML "
        "config. 'wandb2numpy CONFIG.yaml' is short for 'wandb2numpy export CONFIG.yaml'.",
        epilog=EXIT_CODES_EPILOG,
    )
    p.add_argument("--version", action="version", version=f"wandb2numpy {__version__}")
    # the subparsers are plain parsers: only the top level rewrites its arguments
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=argparse.ArgumentParser)
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
        description="Export W&B run histories to NumPy, CSV, npz or parquet files, as described in a YAML config.",
        epilog=EXIT_CODES_EPILOG,
    )
    p.set_defaults(handler="export")
    p.add_argument(
        "config",
        nargs="?",
        help="YAML config file; with --fields, ENTITY/PROJECT instead (or PROJECT with WANDB_ENTITY "
        "set, or nothing with WANDB_ENTITY and WANDB_PROJECT set); or run folders on disk: a folder "
        "such as ./wandb, one run folder, a .wandb file or a glob (no server needed)",
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
        help="with -o: replace each experiment folder as a whole, deleting files wandb2numpy did not write",
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
        help=f"rows per run: N sampled by the server (default {DEFAULT_HISTORY_SAMPLES}), or 'all' for the full history",
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
        "--timeout",
        type=_positive(float),
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long one request may wait for the server's answer (default {DEFAULT_TIMEOUT_S}); "
        "connecting gets at most 10 s of it",
    )
    p.add_argument(
        "--retries",
        type=_count,
        default=DEFAULT_RETRIES,
        metavar="N",
        help=f"retries of one failed request, waits doubling from 1 s to 30 s (default {DEFAULT_RETRIES}: "
        "at least 6 minutes of waiting, so a 5-minute outage of the server loses no run); a run "
        "whose request still fails is listed as failed (exit 3)",
    )
    p.add_argument(
        "--deadline",
        type=_duration,
        metavar="DURATION",
        help="time the whole export may take, such as 90s, 20m or 2h (default: none); when it "
        "passes, the runs finished are written, the rest listed as failed, and the exit code is 3",
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
    p.set_defaults(handler="fields")
    p.add_argument(
        "config",
        nargs="?",
        metavar="CONFIG|ENTITY/PROJECT|FOLDER",
        help="YAML config file, or ENTITY/PROJECT (PROJECT with WANDB_ENTITY set; nothing with "
        "WANDB_ENTITY and WANDB_PROJECT set), or run folders on disk such as ./wandb",
    )
    p.add_argument(
        "-e",
        "--experiments",
        action="append",
        nargs="+",
        metavar="EXP",
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
        description=DEMO_HELP,
    )
    p.set_defaults(handler="demo")
    p.add_argument("--output", default="wandb_data", metavar="DIR", help="output folder (default ./wandb_data)")
    p.add_argument("--runs", type=_positive(int), default=24, metavar="N", help="synthetic runs (default 24)")
    p.add_argument("--steps", type=_positive(int), default=500, metavar="M", help="steps per run (default 500)")
    p.add_argument(
        "--concurrency", type=_positive(int), default=16, metavar="N", help="requests in flight at once (default 16)"
    )
    return p


def _add_plot(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "plot",
        help="plot one field of an exported experiment: a curve per group with a bootstrap band (PNG, PDF, SVG)",
        description="Draw field F of an exported experiment as one curve per group of runs (mean, "
        "median or interquartile mean across runs at each x) with a percentile bootstrap "
        "confidence band over runs, from the exported files alone (no network). Needs matplotlib: "
        f"{PLOT_INSTALL_HINT}.",
    )
    p.set_defaults(handler="plot")
    p.add_argument("experiment", metavar="EXPORT_DIR/EXPERIMENT", help="an experiment folder of an export")
    p.add_argument("--field", required=True, metavar="F", help="the field to plot, e.g. train/return")
    p.add_argument(
        "--by",
        type=_group_column,
        metavar="COLUMN",
        help="one curve per value of this runs.csv column: group, job_type, name, config.KEY, summary.KEY, or "
        "tags (a curve per tag; a run with two tags is in both); default: one curve of all runs",
    )
    p.add_argument(
        "--stat",
        choices=STATS,
        default="mean",
        help="statistic across runs at each x (default mean; iqm: interquartile mean)",
    )
    p.add_argument(
        "--ci",
        type=_confidence,
        default=DEFAULT_CI,
        metavar="PCT",
        help=f"confidence band in percent, bootstrap over runs (default {DEFAULT_CI:g}; 0: no band)",
    )
    p.add_argument(
        "--points",
        type=_positive(int),
        default=DEFAULT_POINTS,
        metavar="N",
        help="x values of the grid the runs are resampled on, when the export has no grid "
        f"of its own (default {DEFAULT_POINTS})",
    )
    p.add_argument(
        "--span",
        choices=("common", "all"),
        help="x range of that grid: common (default), where every run has data; all, every run's "
        "whole range. Wherever the runs behind a curve change along x, a panel below shows how many",
    )
    p.add_argument(
        "-o",
        "--output",
        type=_figure_file,
        metavar="FILE",
        help="figure to write, PNG, PDF or SVG by its suffix (default ./<EXPERIMENT>-<field, / as ->.png)",
    )
    look = p.add_argument_group("figure")
    look.add_argument("--title", help="title (default '<EXPERIMENT>: <field> (<stat>, <ci>%% CI)'; '' for none)")
    look.add_argument("--xlabel", help="x-axis label (default: the x axis of the export, 'step' for _step)")
    look.add_argument("--ylabel", help="y-axis label (default: the field)")
    look.add_argument(
        "--size",
        type=_figure_size,
        default=FIGSIZE,
        metavar="W,H",
        help=f"figure size in inches (default {FIGSIZE[0]:g},{FIGSIZE[1]:g}; 3.4,2.4 fits a paper's column)",
    )
    look.add_argument(
        "--dpi",
        type=_positive(float),
        default=DPI,
        help=f"dots per inch: the PNG's pixels per inch, and the PDF/SVG's band raster (default {DPI})",
    )
    look.add_argument("--log-y", action="store_true", help="logarithmic y axis")
    look.add_argument(
        "--legend",
        type=_legend,
        default="best",
        metavar="POSITION",
        help="legend position: best (default), upper-left, lower-right, ... (matplotlib's loc, - or "
        "space), outside (right of the plot) or none",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors")
    return p


def _group_column(text: str) -> str:
    if text in GROUP_COLUMNS or (text.startswith(("config.", "summary.")) and text.split(".", 1)[1]):
        return text
    raise argparse.ArgumentTypeError(f"expected group, job_type, name, tags, config.KEY or summary.KEY; found {text!r}")


def _figure_file(text: str) -> str:
    suffix = text.rsplit(".", 1)[1].lower() if "." in text.rsplit("/", 1)[-1] else ""
    if suffix not in FORMATS:
        raise argparse.ArgumentTypeError(f"the format comes from the suffix: .png, .pdf or .svg; found {text!r}")
    return text


def _figure_size(text: str) -> tuple[float, float]:
    parts = text.replace("x", ",").split(",")
    try:
        width, height = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTH,HEIGHT in inches, e.g. 6,4; found {text!r}") from None
    if not (0 < width <= 100 and 0 < height <= 100):
        raise argparse.ArgumentTypeError(
            f"expected WIDTH,HEIGHT in inches, each above 0 and at most 100; found {text!r}"
        )
    return width, height


def _legend(text: str) -> str:
    position = text.replace("-", " ").lower()
    if position not in LEGENDS:
        raise argparse.ArgumentTypeError(
            f"expected one of {', '.join(p.replace(' ', '-') for p in LEGENDS)}; found {text!r}"
        )
    return position


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


def _count(text: str) -> int:
    """A whole number of zero or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of 0 or more, found {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of 0 or more, found {text}")
    return value


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(text: str) -> float:
    """Seconds from `90`, `90s`, `20m`, `1.5h`: above zero."""
    raw = text.strip().lower()
    unit = _UNITS.get(raw[-1:])
    number = raw[:-1] if unit is not None else raw
    try:
        value = float(number) * (unit or 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration such as 90s, 20m or 2h, found {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a duration above zero, found {text!r}")
    return value


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
