"""`wandb2numpy demo`: the whole tool on a fresh machine, with no account and no network.

It starts the bundled W&B-compatible server in this process with a synthetic project, exports the
demo config into ./wandb_data (its own `demo-*` experiment folders are replaced on every run; nothing
else is touched), prints each file with its shape, and the command that plots one of them.
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import sys
from pathlib import Path

import yaml

from ..config.defaults import DEFAULT_CONCURRENCY

DEMO_CONFIG = """\
# What `wandb2numpy demo` exports from the bundled synthetic project (entity demo, project synthetic).
DEFAULT:
  entity: demo
  project: synthetic
  output_path: wandb_data

# Sampled history (the default, up to 12000 points per run) of two training curves, PPO runs only.
demo-ppo-sampled:
  groups: [ppo]
  job_types: [[train, eval]]
  fields: [train/return, train/loss]

# Full history of a sparse field (logged every 10th step) next to a dense one, learning rate 3e-4.
demo-lr-full:
  fields: [train/return, eval/return]
  history_samples: all
  config:
    lr:
      values: [0.0003]

# CSV instead of NumPy; summary filter on the final return.
demo-csv:
  fields: [eval/success_rate]
  output_data_type: csv
  summary:
    train/return:
      min: -1000000
"""


def run_demo(
    *, output: str = "wandb_data", runs: int = 24, steps: int = 500, concurrency: int = DEFAULT_CONCURRENCY
) -> int:
    """Serve, export, print; the exit code as for `wandb2numpy export`."""
    from ..config import parse_config
    from ..errors import ConfigError, ForeignFilesError, Wandb2NumpyError
    from ..pipeline import export
    from ..plot_options import PLOT_INSTALL_HINT
    from ..testing import local_server
    from ..wandb.client import ClientSettings
    from .errors import EXIT_FAILED, exit_code_of
    from .report import print_summary

    raw = yaml.safe_load(DEMO_CONFIG)
    raw["DEFAULT"]["output_path"] = output
    try:
        configs = parse_config(raw, source="<demo config>")
    except ConfigError as exc:  # only --output can be wrong in the demo's own config
        print(f"wandb2numpy demo: error: --output: {exc.detail}", file=sys.stderr)
        return exit_code_of(exc)
    with local_server(runs=runs, steps=steps, metrics=5, seed=0) as server:
        print(f"local W&B-compatible server at {server.base_url} ({runs} synthetic runs)")
        try:
            result = export(
                configs,
                overwrite=True,
                concurrency=concurrency,
                settings=ClientSettings(base_url=server.base_url, api_key=server.api_key),
            )
        except ForeignFilesError as exc:  # the export's remedies are options demo does not take
            print(
                f"wandb2numpy demo: error: {exc.what}; the demo replaces only folders it wrote: "
                "move them away or give another --output folder",
                file=sys.stderr,
            )
            return EXIT_FAILED
        except Wandb2NumpyError as exc:
            text = f"--output: {exc.detail}" if isinstance(exc, ConfigError) and exc.key == "output_path" else str(exc)
            print(f"wandb2numpy demo: error: {text}", file=sys.stderr)
            return exit_code_of(exc)
        stats = server.stats()
    from ..output import formats

    data_types = {c.name: c.output_data_type for c in configs}
    for name, report in result.experiments.items():
        fmt = formats.get(data_types[name])
        for path in report.files:
            print(f"{path}: {fmt.read(path).summary}")
    print_summary(result, sys.stdout)
    for problem in result.problems:  # a few synthetic runs may not hold every group or job type
        print(f"wandb2numpy demo: error: {problem}", file=sys.stderr)
    print(f"server: {stats.get('requests')} requests, max {stats.get('max_in_flight')} in flight")
    print(f"load them with: numpy.load('{Path(output) / 'demo-ppo-sampled' / 'train' / 'return.npy'}')")
    # matplotlib is an optional extra: say how to get it rather than print a command that fails
    needs = "" if importlib.util.find_spec("matplotlib") else f"{PLOT_INSTALL_HINT}, then "
    print(
        f"plot one with: {needs}wandb2numpy plot {shlex.quote(str(Path(output) / 'demo-csv'))} "
        "--field eval/success_rate --by group"
    )
    return result.exit_code


def command(args: argparse.Namespace) -> int:
    return run_demo(output=args.output, runs=args.runs, steps=args.steps, concurrency=args.concurrency)
