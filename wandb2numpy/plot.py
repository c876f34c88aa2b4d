"""`wandb2numpy plot`: one curve per group of runs, with a bootstrap confidence band, from exported files.

It reads an experiment folder back through its output format (the manifest names it), so it
needs no network and no wandb: plotting a thousand runs again with another grouping costs a
second, not an export. The statistics are pure numpy functions (`curve_stats`), tested on
their own; matplotlib is an optional extra, imported only when a figure is drawn.

Runs are put on one x axis first, since they log at their own steps: the export's grid when it
has one, otherwise `grid.make_grid` over the runs' common range with linear interpolation.
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .errors import ConfigError, OutputError
from .grid import GridSpec, make_grid, resample, run_ranges
from .output import formats
from .output.folder import atomic_write_bytes, read_manifest
from .output.formats import RUNS_FILE, StoredExperiment

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
    "draw",
    "group_rows",
    "build_curves",
    "field_on_grid",
    "png_bytes",
    "load_experiment",
    "plot_experiment",
]

Stat = Literal["mean", "median", "iqm"]
STATS: tuple[Stat, ...] = ("mean", "median", "iqm")
DEFAULT_CI = 95.0
DEFAULT_POINTS = 200
DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0  # a fixed seed: the same files give the same picture, byte for byte
NO_GROUP = "(none)"
ALL_RUNS = "all runs"
FIGSIZE = (8.0, 5.0)  # inches; at DPI, an 800 x 500 PNG
DPI = 100
MISSING_MATPLOTLIB = "matplotlib is not installed: pip install 'wandb2numpy[plot]'"
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


# --------------------------------------------------------------------------- reading and grouping


def load_experiment(folder: str | os.PathLike[str]) -> tuple[StoredExperiment, dict[str, Any]]:
    """An experiment folder read back through its format, and its manifest (empty without one).

    The manifest names the format; a folder written before manifests existed is read by the
    first registered format whose steps (or grid axis) files it holds.
    """
    path = Path(folder)
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise ConfigError(f"{str(path)!r} {what}; expected an experiment folder of an export "
                          "(EXPORT_DIR/EXPERIMENT, holding runs.csv)")
    manifest = read_manifest(path) or {}
    if not (path / RUNS_FILE).is_file():
        inside = sorted(p.parent.name for p in path.glob(f"*/{RUNS_FILE}"))
        hint = f"; the experiment folders in it: {', '.join(inside)}" if inside else ""
        raise ConfigError(f"{str(path)!r} holds no {RUNS_FILE}, so it is no experiment folder of an "
                          f"export{hint}")
    data_type = manifest.get("data_type")
    if not isinstance(data_type, str):
        data_type = _guess_format(path)
    try:
        fmt = formats.get(data_type)
    except ValueError as exc:
        raise ConfigError(f"{path} was written as {data_type!r}, which this version cannot read "
                          f"({exc})") from None
    try:
        stored = fmt.read(path)
    except (OSError, ValueError) as exc:
        raise OutputError(f"could not read {path} as {data_type}: {exc}") from exc
    if not isinstance(stored, StoredExperiment):  # a folder always reads as a whole experiment
        raise OutputError(f"{path} did not read back as an experiment folder")
    return stored, manifest


def _guess_format(path: Path) -> str:
    for name in formats.names():
        fmt = formats.get(name)
        if isinstance(fmt, formats.SingleFileFormat):
            if (path / fmt.file_name).is_file():
                return name
        elif isinstance(fmt, formats.PerFieldFormat) and (
            (path / (formats.AXIS_NAME + fmt.values_suffix)).is_file() or any(path.rglob("*" + fmt.steps_suffix))
        ):
            return name
    raise ConfigError(f"{str(path)!r} holds no field files of a known format ({formats.expected()})")


def group_rows(runs: Sequence[dict[str, str]], by: str | None) -> dict[str, list[int]]:
    """Row indices of `runs` by the text of column `by` (``group``, ``job_type``,
    ``config.KEY``); runs with an empty cell go to ``(none)``. Groups come sorted (as numbers
    when every label is one, so learning rates read in order), ``(none)`` last."""
    if by is None:
        return {ALL_RUNS: list(range(len(runs)))} if runs else {}
    columns = list(runs[0]) if runs else []
    if runs and by not in columns:
        config = [c for c in columns if c.startswith("config.")]
        listed = ", ".join(config) if config else "none"
        raise ConfigError(f"--by {by}: runs.csv has no column {by!r}; its config columns: {listed}")
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(runs):
        groups.setdefault(row.get(by, "") or NO_GROUP, []).append(i)
    labels = [label for label in groups if label != NO_GROUP]
    try:
        labels.sort(key=float)
    except ValueError:
        labels.sort()
    if NO_GROUP in groups:
        labels.append(NO_GROUP)
    return {label: groups[label] for label in labels}


def field_on_grid(stored: StoredExperiment, field: str, points: int = DEFAULT_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """The x values and the (runs, len(x)) values of `field`: the export's own grid when it
    has one, otherwise `points` x values over the runs' common range, linearly interpolated."""
    arrays = stored.fields[field]
    if stored.x is not None:
        return stored.x, arrays.values
    starts, ends = run_ranges([arrays])
    x = make_grid(GridSpec(points=points), starts, ends)
    return x, resample(arrays.values, arrays.steps, x, "linear")


def _missing_field(field: str, folder: Path, available: Sequence[str]) -> ConfigError:
    near = difflib.get_close_matches(field, available, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return ConfigError(f"no field {field!r} in {folder}{hint}; its fields: {', '.join(available) or 'none'}")


# --------------------------------------------------------------------------- drawing


@dataclass(frozen=True)
class Curve:
    """One group's line: its label, how many runs hold the field, and its statistics."""

    label: str
    n_runs: int
    x: np.ndarray
    stats: CurveStats


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
            curves.append(Curve(label, len(group), x, curve_stats(group, stat, ci, rng)))
    return curves


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError(MISSING_MATPLOTLIB) from None
    return matplotlib


def draw(curves: Sequence[Curve], *, title: str, xlabel: str, ylabel: str) -> Figure:
    """A figure with one line per curve and its band shaded in the line's colour.

    Built as a bare `Figure` with no pyplot: no global figure list, no GUI backend chosen, so it
    works headless and in a process that has its own pyplot state.
    """
    _matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    for curve in curves:
        (line,) = ax.plot(curve.x, curve.stats.center, label=f"{curve.label} (n={curve.n_runs})", linewidth=1.5)
        if curve.stats.low is not None and curve.stats.high is not None:
            ax.fill_between(curve.x, curve.stats.low, curve.stats.high, color=line.get_color(),
                            alpha=0.2, linewidth=0)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if curves:
        ax.legend()
    return fig


def png_bytes(fig: Figure) -> bytes:
    """The PNG of `fig`, with no timestamp or software tag, so the same data give the same bytes."""
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


# --------------------------------------------------------------------------- the command


@dataclass(frozen=True)
class PlotResult:
    path: Path
    curves: list[Curve]
    figure: Figure


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
    output: str | os.PathLike[str] | None = None,
) -> PlotResult:
    """Read `folder`, draw `field` by `by`, write the PNG atomically; ConfigError (exit 2) for a
    missing folder, field or column, or matplotlib not installed."""
    _matplotlib()  # before reading: without it nothing can come of this
    path = Path(folder)
    stored, manifest = load_experiment(path)
    if field not in stored.fields:
        raise _missing_field(field, path, sorted(stored.fields))
    groups = group_rows(stored.runs, by)
    x, values = field_on_grid(stored, field, points)
    if values.shape[0] != len(stored.runs):
        raise OutputError(f"{path}: {RUNS_FILE} lists {len(stored.runs)} run(s) but {field!r} has "
                          f"{values.shape[0]} row(s)")
    curves = build_curves(x, values, groups, stat=stat, ci=ci)
    axis = manifest.get("x_axis")
    xlabel = "step" if not isinstance(axis, str) or axis == "_step" else axis
    band = f", {ci:g}% CI" if ci else ""
    name = path.resolve().name
    fig = draw(curves, title=f"{name}: {field} ({stat}{band})", xlabel=xlabel, ylabel=field)
    target = Path(output) if output is not None else default_output(path, field)
    atomic_write_bytes(target, png_bytes(fig))
    return PlotResult(target, curves, fig)
