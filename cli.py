"""Run the exporter from a checkout: `python cli.py CONFIG.yaml [-o] [-e EXP ...]`, or any other
`wandb2numpy` command line (`python cli.py demo`)."""

import sys

from wandb2numpy.cli import main

if __name__ == "__main__":
    sys.exit(main())
