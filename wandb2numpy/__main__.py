"""`python -m wandb2numpy`: the same command line as the installed `wandb2numpy` script, for
environments where the script's folder is not on PATH."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
