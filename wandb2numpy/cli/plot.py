"""`wandb2numpy plot`: one field of an exported experiment as a figure."""

from __future__ import annotations

import argparse

from ..errors import Wandb2NumpyError
from .common import fail, setup_logging
from .errors import EXIT_OK


def command(args: argparse.Namespace) -> int:
    from ..plot import plot_experiment

    setup_logging(args.verbose, False)
    try:
        result = plot_experiment(
            args.experiment,
            args.field,
            by=args.by,
            stat=args.stat,
            ci=args.ci,
            points=args.points,
            span=args.span,
            output=args.output,
            title=args.title,
            xlabel=args.xlabel,
            ylabel=args.ylabel,
            figsize=args.size,
            dpi=args.dpi,
            log_y=args.log_y,
            legend=args.legend,
        )
    except Wandb2NumpyError as exc:
        return fail(args, exc)
    print(
        f"wrote {result.path}: {len(result.curves)} curve(s), "
        + ", ".join(f"{c.label} (n={c.n_runs})" for c in result.curves)
    )
    return EXIT_OK
