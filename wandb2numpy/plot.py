"""`wandb2numpy plot`: one curve per group of runs, with a bootstrap confidence band, from exported files.

It reads an experiment folder back through `wandb2numpy.load` (any output format), so it
needs no network and no wandb: plotting a thousand runs again with another grouping costs a
second, not an export. The statistics are pure numpy functions (`curve_stats`), tested on
their own; matplotlib is an optional extra, imported only when a figure is drawn.

Runs are put on one x axis first, since they log at their own steps: the export's grid when it
has one, otherwise `grid.make_grid` with linear interpolation, over the range every run covers
(``span="common"``) or every run's whole range (``"all"``). Wherever the number of runs behind
a curve changes along x, a panel under the plot shows it, so a tail averaged over 2 of 8 seeds
is seen as such. The format follows the output's suffix: PNG, PDF or SVG, the same bytes for
the same files.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .errors import ConfigError, OutputError
from .grid import GridSpec, grid_range, make_grid, resample, run_label, run_ranges
from .output.folder import atomic_write_bytes
from .output.formats import RUNS_FILE
from .output.load import Experiment, load
from .plot_options import (
    DEFAULT_CI,
    DEFAULT_POINTS,
    DPI,
    FIGSIZE,
    FORMATS,
    LEGENDS,
    PLOT_INSTALL_HINT,
    STATS,
    Stat,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "DEFAULT_CI",
    "DEFAULT_POINTS",
    "DEFAULT_RESAMPLES",
    "STATS",
    "Curve",
    "CurveStats",
    "PlotResult",
    "curve_stats",
    "FORMATS",
    "LEGENDS",
    "draw",
    "figure_bytes",
    "group_rows",
    "build_curves",
    "field_on_grid",
    "plot_experiment",
]

log = logging.getLogger(__name__)

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0  # a fixed seed: the same files give the same picture, byte for byte
NO_GROUP = "(none)"
ALL_RUNS = "all runs"
Span = Literal["common", "all"]
MISSING_MATPLOTLIB = f"matplotlib is not installed: {PLOT_INSTALL_HINT}"
_CHUNK_ELEMENTS = 1 << 22  # bootstrap resamples are drawn in chunks of about 32 MB


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class CurveStats:
    """The statistic at each x, and the confidence band around it (None with ``ci=0``)."""

    center: np.ndarray
    low: np.ndarray | None = None
    high: np.ndarray | None = None


def _sorted_with_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values sorted along the run axis (-2), NaN last, and how many are not NaN per column."""
    return np.sort(values, axis=-2), np.sum(~np.isnan(values), axis=-2)


def _take(sorted_values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """sorted_values[..., index[...], j] per column j (index clipped: empty columns give NaN)."""
    idx = np.clip(index, 0, sorted_values.shape[-2] - 1)[..., None, :]
    return np.take_along_axis(sorted_values, idx, axis=-2)[..., 0, :]


def _reduce(values: np.ndarray, stat: Stat) -> np.ndarray:
    """`stat` over the run axis (-2) of `values`, ignoring NaN; NaN where a column has no value.

    ``iqm`` is the interquartile mean as rliable computes it (``scipy.stats.trim_mean`` with
    0.25): of the n values at an x, sorted, the lowest and highest ``floor(n / 4)`` are dropped
    and the rest averaged, so for 4 runs it is the mean of the middle 2, for 5 the middle 3.
    """
    with warnings.catch_warnings():  # columns no run reaches are NaN, not an error
        warnings.simplefilter("ignore", RuntimeWarning)
        if stat == "mean":
            mean: np.ndarray = np.nanmean(values, axis=-2)
            return mean
        s, n = _sorted_with_counts(values)
        empty = n == 0
        if stat == "median":
            out = (_take(s, (n - 1) // 2) + _take(s, n // 2)) / 2
        elif stat == "iqm":
            cut = n // 4
            rank = np.arange(s.shape[-2]).reshape((-1, 1))
            keep = (rank >= cut[..., None, :]) & (rank < (n - cut)[..., None, :])
            out = np.where(keep, s, 0.0).sum(axis=-2) / np.maximum(n - 2 * cut, 1)
        else:
            raise ValueError(f"unknown statistic {stat!r}; expected one of {', '.join(STATS)}")
        return np.where(empty, np.nan, out)


def curve_stats(
    values: np.ndarray,
    stat: Stat = "mean",
    ci: float = DEFAULT_CI,
    rng: np.random.Generator | None = None,
    *,
    resamples: int = DEFAULT_RESAMPLES,
) -> CurveStats:
    """`stat` across runs at each x of `values` (runs, points), NaN ignored, with a percentile
    bootstrap band over runs: `resamples` times, draw as many runs as there are with
    replacement and take `stat`; the band is the central `ci` percent of those.

    Runs, not points, are resampled, because the runs (seeds) are the independent samples; a
    run's whole curve goes in or out together. ``ci=0`` skips the bootstrap.
    """
    if values.ndim != 2:
        raise ValueError(f"expected a (runs, points) array; found shape {values.shape}")
    if not 0 <= ci < 100:
        raise ValueError(f"the confidence level must be at least 0 and below 100; found {ci}")
    center = _reduce(values, stat)
    n_runs = values.shape[0]
    if ci == 0 or n_runs == 0:
        return CurveStats(center)
    rng = rng if rng is not None else np.random.default_rng(DEFAULT_SEED)
    boot = np.empty((resamples, values.shape[1]), dtype=np.float64)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, values.size))
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        picks = rng.integers(0, n_runs, size=(stop - start, n_runs))
        boot[start:stop] = _reduce(values[picks], stat)
    tail = (100 - ci) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(boot, [tail, 100 - tail], axis=0)
    return CurveStats(center, low, high)


# --------------------------------------------------------------------------- grouping


def group_rows(runs: Sequence[dict[str, str]], by: str | None) -> dict[str, list[int]]:
    """Row indices of `runs` by the text of column `by` (``group``, ``job_type``, ``name``,
    ``config.KEY``, ``summary.KEY``), or by each of a run's ``tags`` (a run with two tags is in
    two curves). Runs with an empty cell (or no tag) go to ``(none)``. Groups come sorted (as
    numbers when every label is one, so learning rates read in order), ``(none)`` last."""
    if by is None:
        return {ALL_RUNS: list(range(len(runs)))} if runs else {}
    columns = list(runs[0]) if runs else []
    if runs and by not in columns:
        prefix = "summary." if by.startswith("summary.") else "config."
        listed = ", ".join(c for c in columns if c.startswith(prefix)) or "none"
        raise ConfigError(f"--by {by}: runs.csv has no column {by!r}; its {prefix[:-1]} columns: {listed}")
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(runs):
        cell = row.get(by, "")
        labels = _tags(cell) if by == "tags" else [cell]
        for label in labels or [""]:
            groups.setdefault(label or NO_GROUP, []).append(i)
    labels = [label for label in groups if label != NO_GROUP]
    try:
        labels.sort(key=float)
    except ValueError:
        labels.sort()
    if NO_GROUP in groups:
        labels.append(NO_GROUP)
    return {label: groups[label] for label in labels}


def _tags(cell: str) -> list[str]:
    """The tags of a ``runs.csv`` cell (a JSON list)."""
    try:
        tags = json.loads(cell) if cell else []
    except ValueError:
        return [cell]
    return [str(t) for t in tags] if isinstance(tags, list) else [cell]


def field_on_grid(
    exp: Experiment, field: str, points: int = DEFAULT_POINTS, span: Span | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The x values and the (runs, len(x)) values of `field`: the export's own grid when it
    has one, otherwise `points` x values over the runs' `span` (default ``common``), linearly
    interpolated. Runs much shorter than the median run are warned about, as the export does."""
    arrays = exp.fields[field]
    if exp.x is not None:
        if span is not None:
            log.warning(
                "%s was exported on a grid of its own: it is plotted on that grid, and the span "
                "asked for (%s) is not used",
                exp.folder.name,
                span,
            )
        return exp.x, arrays.values
    starts, ends = run_ranges([arrays])
    spec = GridSpec(points=points, span=span or "common")
    labels = [run_label(row.get("name", ""), run_id) for row, run_id in zip(exp.run_rows, exp.ids)]
    rng = grid_range(spec, starts, ends, labels if len(labels) == len(starts) else None)
    message = rng.warning(f"{exp.folder.name}: {field}", exp.x_axis)
    if message:
        log.warning("%s", message)
    x = make_grid(spec, starts, ends, rng)
    return x, resample(arrays.values, arrays.steps, x, "linear")


def _missing_field(field: str, folder: Path, available: Sequence[str]) -> ConfigError:
    near = difflib.get_close_matches(field, available, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return ConfigError(f"no field {field!r} in {folder}{hint}; its fields: {', '.join(available) or 'none'}")


# --------------------------------------------------------------------------- drawing


@dataclass(frozen=True)
class Curve:
    """One group's line: its label, how many runs hold the field, its statistics, and how many
    runs have a value at each x."""

    label: str
    n_runs: int
    x: np.ndarray
    stats: CurveStats
    counts: np.ndarray | None = None

    @property
    def uneven(self) -> bool:
        """Whether the runs behind the line change along x (where it has any)."""
        if self.counts is None:
            return False
        drawn = self.counts[self.counts > 0]
        return bool(len(drawn)) and bool(drawn.min() != drawn.max())


def build_curves(
    x: np.ndarray,
    values: np.ndarray,
    groups: dict[str, list[int]],
    *,
    stat: Stat = "mean",
    ci: float = DEFAULT_CI,
    rng: np.random.Generator | None = None,
) -> list[Curve]:
    """One curve per group that holds any value; a run without one (it never logged the field,
    or not inside the grid) neither counts in ``n`` nor weighs on the bootstrap."""
    rng = rng if rng is not None else np.random.default_rng(DEFAULT_SEED)
    curves = []
    for label, rows in groups.items():
        group = values[rows]
        group = group[~np.all(np.isnan(group), axis=1)]
        if len(group):
            counts = np.sum(~np.isnan(group), axis=0)
            curves.append(Curve(label, len(group), x, curve_stats(group, stat, ci, rng), counts))
    return curves


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError(MISSING_MATPLOTLIB) from None
    return matplotlib


def draw(
    curves: Sequence[Curve],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    figsize: tuple[float, float] = FIGSIZE,
    dpi: float = DPI,
    log_y: bool = False,
    legend: str = "best",
    counts: bool | None = None,
) -> Figure:
    """A figure with one line per curve and its band shaded in the line's colour; below it, a
    panel of the runs per x when `counts` (by default: when that number changes along a curve).

    Built as a bare `Figure` with no pyplot: no global figure list, no GUI backend chosen, so it
    works headless and in a process that has its own pyplot state.
    """
    _matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    show_counts = any(c.uneven for c in curves) if counts is None else counts
    if show_counts:
        ax, below = fig.subplots(2, 1, sharex=True, height_ratios=(4, 1))
    else:
        ax, below = fig.add_subplot(), None
    for curve in curves:
        (line,) = ax.plot(curve.x, curve.stats.center, label=f"{curve.label} (n={curve.n_runs})", linewidth=1.5)
        if curve.stats.low is not None and curve.stats.high is not None:
            ax.fill_between(curve.x, curve.stats.low, curve.stats.high, color=line.get_color(), alpha=0.2, linewidth=0)
        if below is not None and curve.counts is not None:
            below.step(curve.x, curve.counts, where="mid", color=line.get_color(), linewidth=1.0)
    if title:
        ax.set_title(title)
    ax.set_ylabel(ylabel)
    if log_y:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    if below is not None:
        below.set_ylabel("runs")
        below.set_ylim(bottom=0)
        below.yaxis.get_major_locator().set_params(integer=True)
        below.grid(True, alpha=0.3)
        below.set_xlabel(xlabel)
    else:
        ax.set_xlabel(xlabel)
    if curves and legend != "none":
        if legend == "outside":
            ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
        else:
            ax.legend(loc=legend)
    return fig


# Metadata left out so that the same files give the same bytes: no dates, no version strings.
_METADATA: dict[str, dict[str, Any]] = {
    "png": {"Software": None},
    "pdf": {"Creator": None, "Producer": None, "CreationDate": None},
    "svg": {"Creator": None, "Date": None},
}


def figure_bytes(fig: Figure, fmt: str = "png", dpi: float | None = None) -> bytes:
    """`fig` as PNG, PDF or SVG bytes, with no timestamp or software tag."""
    import matplotlib

    buf = BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "wandb2numpy", "pdf.compression": 6}):
        fig.savefig(buf, format=fmt, dpi=dpi if dpi is not None else fig.dpi, metadata=_METADATA[fmt])
    return buf.getvalue()


def output_format(path: str | os.PathLike[str]) -> str:
    """The figure format of `path` by its suffix; ConfigError for any other."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        found = f"'.{suffix}'" if suffix else "no suffix"
        raise ConfigError(
            f"the figure's format comes from its suffix: .png, .pdf or .svg; {os.fspath(path)!r} has {found}"
        )
    return suffix


# --------------------------------------------------------------------------- the command


@dataclass(frozen=True)
class PlotResult:
    path: Path
    curves: list[Curve]
    figure: Figure
    format: str = "png"


def default_output(folder: Path, field: str) -> Path:
    """``<experiment>-<field, / as ->.png`` in the current folder."""
    return Path(f"{folder.resolve().name}-{field.replace('/', '-')}.png")


def plot_experiment(
    folder: str | os.PathLike[str],
    field: str,
    *,
    by: str | None = None,
    stat: Stat = "mean",
    ci: float = DEFAULT_CI,
    points: int = DEFAULT_POINTS,
    span: Span | None = None,
    output: str | os.PathLike[str] | None = None,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    figsize: tuple[float, float] = FIGSIZE,
    dpi: float = DPI,
    log_y: bool = False,
    legend: str = "best",
) -> PlotResult:
    """Read `folder`, draw `field` by `by`, write the figure atomically in the format of the
    output's suffix; ConfigError (exit 2) for a missing folder, field or column, an output
    that is not .png, .pdf or .svg, or matplotlib not installed. A title, x label or y label
    of None is the default one; ``""`` leaves it out."""
    target = Path(output) if output is not None else default_output(Path(folder), field)
    fmt = output_format(target)
    if legend not in LEGENDS:
        raise ConfigError(f"legend position {legend!r}: expected one of {', '.join(LEGENDS)}")
    _matplotlib()  # before reading: without it nothing can come of this
    path = Path(folder)
    exp = load(path)
    if field not in exp.fields:
        raise _missing_field(field, path, sorted(exp.fields))
    groups = group_rows(exp.run_rows, by)
    x, values = field_on_grid(exp, field, points, span)
    if values.shape[0] != len(exp.run_rows):
        raise OutputError(
            f"{path}: {RUNS_FILE} lists {len(exp.run_rows)} run(s) but {field!r} has {values.shape[0]} row(s)"
        )
    curves = build_curves(x, values, groups, stat=stat, ci=ci)
    band = f", {ci:g}% CI" if ci else ""
    name = path.resolve().name
    fig = draw(
        curves,
        title=f"{name}: {field} ({stat}{band})" if title is None else title,
        xlabel=("step" if exp.x_axis == "_step" else exp.x_axis) if xlabel is None else xlabel,
        ylabel=field if ylabel is None else ylabel,
        figsize=figsize,
        dpi=dpi,
        log_y=log_y,
        legend=legend,
    )
    atomic_write_bytes(target, figure_bytes(fig, fmt))
    return PlotResult(target, curves, fig, fmt)
