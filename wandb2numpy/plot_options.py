"""The `plot` command's choices and defaults, apart from `plot` itself: the command line's parser
offers them on every start, and `plot` loads the output readers and grids, which an export does not
need before its first request."""

from __future__ import annotations

from typing import Literal

__all__ = [
    "DEFAULT_CI",
    "DEFAULT_POINTS",
    "DPI",
    "FIGSIZE",
    "FORMATS",
    "GROUP_COLUMNS",
    "LEGENDS",
    "PLOT_INSTALL_HINT",
    "STATS",
    "Stat",
]

Stat = Literal["mean", "median", "iqm"]
STATS: tuple[Stat, ...] = ("mean", "median", "iqm")
DEFAULT_CI = 95.0
DEFAULT_POINTS = 200
FIGSIZE = (8.0, 5.0)  # inches; at DPI, an 800 x 500 PNG
DPI = 100
FORMATS = ("png", "pdf", "svg")  # by the output's suffix
# matplotlib's legend locations, "outside" (right of the plot) and "none"
LEGENDS = (
    "best",
    "upper right",
    "upper left",
    "lower left",
    "lower right",
    "right",
    "center left",
    "center right",
    "lower center",
    "upper center",
    "center",
    "outside",
    "none",
)
# The `plot` extra is matplotlib alone. Not "pip install 'wandb2numpy[plot]'": run from a checkout,
# that installs whatever package of that name a package index holds.
PLOT_INSTALL_HINT = "pip install matplotlib (the 'plot' extra; from a checkout: pip install '.[plot]')"
GROUP_COLUMNS = ("group", "job_type", "name", "tags")  # and config.KEY, summary.KEY
