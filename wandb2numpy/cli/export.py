"""`wandb2numpy export`: run the export (or `--dry-run` its plan), print the summary, exit."""

from __future__ import annotations

import argparse
import io
import logging
import signal
import sys
from typing import TextIO

from .._early import is_command
from ..begin import begin_requests
from ..errors import ConfigError, Wandb2NumpyError
from ..wandb.client import ClientSettings, forget_started
from .common import check_file_option, configs, fail, policy, setup_logging
from .errors import EXIT_EMPTY, EXIT_OK, exit_code_of
from .report import STDOUT, LineProgress, Summary, TqdmProgress, exit_code, print_summary
from .stop import Stopper, Terminated, end

log = logging.getLogger("wandb2numpy")


def command(args: argparse.Namespace) -> int:
    try:  # before anything else: a bad path is a usage error, not a failure after the export
        check_file_option(args.log_file, "--log-file")
        check_file_option(None if args.dry_run else args.json_summary, "--json-summary")
        setup_logging(args.verbose, args.quiet, args.log_file)
    except ConfigError as exc:
        print(f"wandb2numpy: error: {exc}", file=sys.stderr)
        return exit_code_of(exc)
    from .. import __version__

    # the log file's first line: which version ran on what (stderr shows INFO only with -v)
    log.info(
        "wandb2numpy %s: %s %s",
        __version__,
        "dry run of" if args.dry_run else "export of",
        args.config or "the project of WANDB_ENTITY/WANDB_PROJECT",
    )
    summary = Summary(args.config or "(WANDB_ENTITY/WANDB_PROJECT)", None if args.dry_run else args.json_summary)
    # SIGINT and SIGTERM end the process within two seconds in every state (see `stop`): the
    # interrupt paths below never return.
    stopper = Stopper(summary).install()
    try:
        code = dry_run(args, summary) if args.dry_run else run(args, summary)
    except KeyboardInterrupt:
        stopper.finish(stopper.signum or signal.SIGINT)
        raise
    except Terminated:
        stopper.finish(signal.SIGTERM)
        raise
    finally:
        forget_started()  # a connection begun for this export is its own, taken or not
        if stopper.signum is None:
            stopper.restore()
    summary.write()
    log.info("exit code %d", code)
    if is_command():
        # The command's own process ends here, as after an interrupt, without the interpreter's
        # shutdown: it would join worker threads still blocked in requests the deadline
        # abandoned (each up to --timeout) and run wandb's teardown, which waits for wandb-core.
        end(code)
    return code


def run(args: argparse.Namespace, summary: Summary, out: TextIO | None = None) -> int:
    if out is None:
        out = sys.stderr if args.json_summary == STDOUT else sys.stdout
    settings = ClientSettings(base_url=args.base_url, timeout=args.timeout)
    summary.budget(retries=args.retries, deadline=args.deadline, timeout=args.timeout)
    progress: TqdmProgress | LineProgress | None = (
        None if args.quiet else TqdmProgress() if sys.stderr.isatty() else LineProgress()
    )
    try:
        chosen = configs(args)
        log.info("experiments: %s", ", ".join(f"{c.name} -> {c.output_path}" for c in chosen) or "none")
        begin_requests(chosen, settings, write=True, incremental=args.incremental)
        # looked up on each call: tests/conftest.py swaps the module's `export` for one with a
        # short retry policy, since the command line has no retry option; imported after the
        # config is checked, while wandb-core starts
        from ..pipeline import export

        result = export(
            chosen,
            overwrite=args.overwrite or args.incremental,
            concurrency=args.concurrency,
            settings=settings,
            progress=progress,
            incremental=args.incremental,
            delete_foreign_files=args.delete_foreign_files,
            **policy(args),
        )
    except Wandb2NumpyError as exc:
        if args.verbose:
            log.exception("export failed")
        else:  # to the log file only: stderr gets the one-line message below, not a second copy
            log.error("%s", exc, extra={"console": False})
        print(f"wandb2numpy: error: {exc}", file=sys.stderr)
        return summary.fail(exit_code_of(exc), str(exc))
    finally:
        if progress is not None:
            progress.close()
    text = io.StringIO()
    print_summary(result, text)
    if not args.quiet:
        out.write(text.getvalue())
    for line in text.getvalue().splitlines():  # the log file gets the summary too
        log.info("%s", line, extra={"console": False})
    for problem in result.problems:  # shown under -q too: an empty export must not pass unseen
        if args.allow_empty:
            log.warning("%s", problem)
        else:
            log.error("%s", problem, extra={"console": False})
            print(f"wandb2numpy: error: {problem}", file=sys.stderr)
    code = exit_code(result, allow_empty=args.allow_empty)
    summary.done(result, code)
    return code


def dry_run(args: argparse.Namespace, summary: Summary, out: TextIO | None = None) -> int:
    """`export --dry-run`: the export's own plans, printed; no history fetched, nothing written.
    The exit code is the one the export would give for what the listing shows (4 for an empty
    or mistyped experiment, unless --allow-empty)."""
    from ..pipeline import plan_export
    from .look import dry_run_lines

    out = out or sys.stdout
    settings = ClientSettings(base_url=args.base_url, timeout=args.timeout)
    try:
        chosen = configs(args)
        begin_requests(chosen, settings, write=False, incremental=args.incremental)
        plans = plan_export(
            chosen,
            settings=settings,
            concurrency=args.concurrency,
            incremental=args.incremental,
            **policy(args),
        )
    except Wandb2NumpyError as exc:
        return fail(args, exc, summary)
    for line in dry_run_lines(plans, all_runs=args.verbose):
        print(line, file=out)
    problems = [problem for p in plans for problem in p.problems]
    for problem in problems:
        if args.allow_empty:
            log.warning("%s", problem)
        else:
            print(f"wandb2numpy: error: {problem}", file=sys.stderr)
    return EXIT_EMPTY if problems and not args.allow_empty else EXIT_OK
