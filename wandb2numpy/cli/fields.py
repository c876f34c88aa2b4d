"""`wandb2numpy fields`: the history keys of the matching runs, from the listing alone."""

from __future__ import annotations

import argparse
import sys

from ..errors import Wandb2NumpyError
from ..wandb.client import ClientSettings
from .common import configs, fail, setup_logging
from .errors import EXIT_OK, EXIT_SIGINT


def command(args: argparse.Namespace) -> int:
    from ..pipeline import plan_export
    from .look import fields_lines

    setup_logging(args.verbose, False)
    try:
        plans = plan_export(configs(args), settings=ClientSettings(base_url=args.base_url))
    except Wandb2NumpyError as exc:
        return fail(args, exc)
    except KeyboardInterrupt:
        print("wandb2numpy: interrupted", file=sys.stderr)
        return EXIT_SIGINT
    for line in fields_lines(plans):
        print(line)
    return EXIT_OK
