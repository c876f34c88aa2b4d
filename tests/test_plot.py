"""`wandb2numpy plot`: the statistics against values worked out by hand, and the command on real
exports (from the local server, and with a grid) down to the PNG's size and its curves."""

from __future__ import annotations

import os
import shlex
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wandb2numpy.assemble import ExperimentResult, FieldArrays
from wandb2numpy.cli import main
from wandb2numpy.errors import ConfigError
from wandb2numpy.models import RunInfo
from wandb2numpy.output import formats
from wandb2numpy.output.folder import MANIFEST_FILE, write_experiment
from wandb2numpy.plot import (
    MISSING_MATPLOTLIB,
    build_curves,
    curve_stats,
    draw,
    group_rows,
    plot_experiment,
)
from wandb2numpy.testing import FAST_RETRIES, LocalServer, synthetic_project
from wandb2numpy.wandb.client import ClientSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
N_RUNS = 6  # groups ppo, sac, td3 and learning rates 1e-3, 3e-4, 1e-4: two runs each
nan = np.nan


def project_data() -> dict[str, Any]:
    return synthetic_project(runs=N_RUNS, steps=40, metrics=2)


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which a valid PNG has first, after the signature."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# ------------------------------------------------------------------------------- statistics

COLUMNS = np.array(
    [
        # col 0: five values, one far out; col 1: three values and two runs without one; col 2: none
        [1.0, 10.0, nan],
        [2.0, nan, nan],
        [3.0, 30.0, nan],
        [4.0, 40.0, nan],
        [100.0, nan, nan],
    ]
)


@pytest.mark.parametrize(
    ("stat", "expected"),
    [
        ("mean", [110 / 5, 80 / 3, nan]),
        ("median", [3.0, 30.0, nan]),
        # n=5 drops floor(5/4)=1 at each end: mean(2, 3, 4); n=3 drops none
        ("iqm", [3.0, 80 / 3, nan]),
    ],
)
def test_stats_by_hand(stat: Any, expected: list[float]) -> None:
    result = curve_stats(COLUMNS, stat, ci=0)
    np.testing.assert_allclose(result.center, expected, equal_nan=True)
    assert result.low is None and result.high is None


@pytest.mark.parametrize(
    ("column", "median", "iqm"),
    [
        ([1, 2, 3, 4], 2.5, 2.5),  # the middle two
        ([1, 2, 3, 4, 5, 6, 7, 100], 4.5, 4.5),  # floor(8/4)=2 dropped at each end: mean(3, 4, 5, 6)
        ([7], 7.0, 7.0),
        ([5, 1], 3.0, 3.0),  # n=2 drops nothing
        ([9, 1, 8, 2, 7, 3, 6, 4, 5], 5.0, 5.0),  # n=9 drops 2 each end: mean(3..7)
        ([0, 0, 0, 10, 10, 90, 90, 1000], 10.0, 27.5),  # mean(0, 10, 10, 90)
    ],
)
def test_median_and_iqm_by_hand(column: list[float], median: float, iqm: float) -> None:
    values = np.array(column, dtype=np.float64).reshape(-1, 1)
    assert curve_stats(values, "median", ci=0).center[0] == pytest.approx(median)
    assert curve_stats(values, "iqm", ci=0).center[0] == pytest.approx(iqm)
    assert curve_stats(values, "median", ci=0).center[0] == pytest.approx(np.median(values))


def test_two_runs_bootstrap_by_hand() -> None:
    """Runs 0 and 1: a resample of two is {0,0}, {0,1} or {1,1} (1/4, 1/2, 1/4), so the mean of
    a thousand resamples spreads over 0, 0.5 and 1 and the central 95% runs from 0 to 1."""
    values = np.array([[0.0], [1.0]])
    result = curve_stats(values, "mean", ci=95, rng=np.random.default_rng(1))
    assert result.center[0] == 0.5
    assert result.low is not None and result.high is not None
    assert (result.low[0], result.high[0]) == (0.0, 1.0)
    narrow = curve_stats(values, "mean", ci=40, rng=np.random.default_rng(1))  # 30th..70th: all 0.5
    assert narrow.low is not None and narrow.high is not None
    assert (narrow.low[0], narrow.high[0]) == (0.5, 0.5)


def test_identical_runs_have_no_spread() -> None:
    values = np.tile(np.array([[1.0, 2.0, 3.0]]), (4, 1))
    for stat in ("mean", "median", "iqm"):
        result = curve_stats(values, stat, ci=95)  # type: ignore[arg-type]
        np.testing.assert_array_equal(result.low, [1.0, 2.0, 3.0])
        np.testing.assert_array_equal(result.high, [1.0, 2.0, 3.0])


@pytest.mark.parametrize("stat", ["mean", "median", "iqm"])
def test_band_brackets_the_statistic_and_is_reproducible(stat: Any) -> None:
    values = np.random.default_rng(7).normal(size=(10, 30))
    values[3, 20:] = nan  # one run stopped early
    result = curve_stats(values, stat, ci=95, rng=np.random.default_rng(0))
    assert result.low is not None and result.high is not None
    assert np.all(result.low <= result.center) and np.all(result.center <= result.high)
    assert np.all(result.high - result.low > 0)
    again = curve_stats(values, stat, ci=95, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(again.low, result.low)
    wider = curve_stats(values, stat, ci=99, rng=np.random.default_rng(0))
    assert wider.low is not None and wider.high is not None
    assert np.all(wider.low <= result.low) and np.all(wider.high >= result.high)


def test_bootstrap_in_chunks_gives_the_same_band(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resamples are drawn in chunks to bound memory; the chunk size must not change the band."""
    from wandb2numpy import plot

    values = np.random.default_rng(3).normal(size=(6, 5))
    whole = curve_stats(values, "iqm", rng=np.random.default_rng(0))
    monkeypatch.setattr(plot, "_CHUNK_ELEMENTS", 7 * values.size)
    chunked = curve_stats(values, "iqm", rng=np.random.default_rng(0))
    np.testing.assert_array_equal(chunked.low, whole.low)
    np.testing.assert_array_equal(chunked.high, whole.high)


@pytest.mark.parametrize("ci", [-1, 100, 150])
def test_confidence_level_out_of_range(ci: float) -> None:
    with pytest.raises(ValueError, match="confidence level"):
        curve_stats(np.zeros((2, 2)), "mean", ci=ci)


# ------------------------------------------------------------------------------- grouping


RUNS = [
    {"id": "a", "group": "sac", "job_type": "train", "config.lr": "0.001"},
    {"id": "b", "group": "", "job_type": "train", "config.lr": "0.0003"},
    {"id": "c", "group": "ppo", "job_type": "eval", "config.lr": "0.001"},
    {"id": "d", "group": "sac", "job_type": "", "config.lr": "1e-05"},
]


def test_group_rows() -> None:
    assert group_rows(RUNS, None) == {"all runs": [0, 1, 2, 3]}
    assert group_rows(RUNS, "group") == {"ppo": [2], "sac": [0, 3], "(none)": [1]}
    assert group_rows(RUNS, "job_type") == {"eval": [2], "train": [0, 1], "(none)": [3]}
    # numbers sort as numbers: 1e-05 < 0.0003 < 0.001
    assert list(group_rows(RUNS, "config.lr")) == ["1e-05", "0.0003", "0.001"]


def test_group_by_unknown_config_key_lists_the_config_columns() -> None:
    with pytest.raises(ConfigError, match=r"no column 'config.seed'; its config columns: config.lr"):
        group_rows(RUNS, "config.seed")


def test_draw_one_line_per_curve_and_the_figure_size() -> None:
    x = np.arange(5.0)
    values = np.array([[1, 2, 3, 4, 5], [2, 3, 4, 5, 6], [0, 0, 0, 0, 0], [nan] * 5], dtype=np.float64)
    curves = build_curves(x, values, {"a": [0, 1], "b": [2], "c": [3]}, stat="mean", ci=95)
    assert [(c.label, c.n_runs) for c in curves] == [("a", 2), ("b", 1)]  # c holds no value
    fig = draw(curves, title="t", xlabel="step", ylabel="y")
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a (n=2)", "b (n=1)"]
    assert tuple(fig.get_size_inches() * fig.dpi) == (800, 500)


# ------------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def export_dir(server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real export from the local server: numpy and csv experiments of the same runs."""
    from wandb2numpy.pipeline import export

    out = tmp_path_factory.mktemp("export")
    config = {
        "DEFAULT": {"entity": "demo", "project": "synthetic", "output_path": str(out)},
        "curves": {"fields": ["train/return", "train/loss"]},
        "curves-csv": {"fields": ["train/return"], "output_data_type": "csv"},
    }
    result = export(
        config, settings=ClientSettings(base_url=server.base_url, api_key=server.api_key), policy=FAST_RETRIES
    )
    assert result.exit_code == 0
    return out


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.mark.parametrize("experiment", ["curves", "curves-csv"])
def test_cli_writes_a_png_with_one_curve_per_group(
    export_dir: Path, in_tmp: Path, experiment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["plot", str(export_dir / experiment), "--field", "train/return", "--by", "group"])
    assert code == 0
    png = in_tmp / f"{experiment}-train-return.png"  # the default name, in the current folder
    out = capsys.readouterr().out
    assert out == f"wrote {png.name}: 3 curve(s), ppo (n=2), sac (n=2), td3 (n=2)\n"
    assert png_size(png.read_bytes()) == (800, 500)
    assert [p.name for p in in_tmp.iterdir()] == [png.name]  # no temporary file left behind


def test_curves_of_a_real_export(export_dir: Path, tmp_path: Path) -> None:
    result = plot_experiment(export_dir / "curves", "train/return", by="group", stat="iqm", output=tmp_path / "p.png")
    ax = result.figure.axes[0]
    assert len(ax.get_lines()) == 3
    assert ax.get_title() == "curves: train/return (iqm, 95% CI)"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("step", "train/return")
    assert len(result.curves[0].x) == 200  # --points default: a grid built over the common range
    assert png_size((tmp_path / "p.png").read_bytes()) == (800, 500)


def test_without_by_one_curve_of_all_runs(export_dir: Path, tmp_path: Path) -> None:
    result = plot_experiment(export_dir / "curves", "train/loss", ci=0, points=17, output=tmp_path / "p.png")
    ax = result.figure.axes[0]
    assert len(ax.get_lines()) == 1 and not ax.collections  # ci 0: no band
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"all runs (n={N_RUNS})"]
    assert len(ax.get_lines()[0].get_xdata()) == 17


def test_by_config_key(export_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lr.png"
    assert (
        main(
            [
                "plot",
                str(export_dir / "curves"),
                "--field",
                "train/return",
                "--by",
                "config.lr",
                "--stat",
                "median",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out == f"wrote {out}: 3 curve(s), 0.0001 (n=2), 0.0003 (n=2), 0.001 (n=2)\n"
    assert png_size(out.read_bytes()) == (800, 500)


def test_by_unknown_config_key_exits_2(export_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "plot",
                str(export_dir / "curves"),
                "--field",
                "train/return",
                "--by",
                "config.lrr",
                "-o",
                str(tmp_path / "p.png"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "no column 'config.lrr'; its config columns: config.env.name, config.lr," in err
    assert not (tmp_path / "p.png").exists()


def test_missing_field_exits_2_naming_the_fields(
    export_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = export_dir / "curves"
    assert main(["plot", str(folder), "--field", "train/retrun", "-o", str(tmp_path / "p.png")]) == 2
    assert capsys.readouterr().err == (
        f"wandb2numpy: error: no field 'train/retrun' in {folder} (did you mean 'train/return'?); "
        "its fields: train/loss, train/return\n"
    )
    assert not (tmp_path / "p.png").exists()


def test_missing_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", str(tmp_path / "nope"), "--field", "x"]) == 2
    assert f"'{tmp_path / 'nope'}' does not exist" in capsys.readouterr().err


def test_the_export_folder_itself_names_its_experiments(export_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", str(export_dir), "--field", "train/return"]) == 2
    assert capsys.readouterr().err.endswith(
        "is no experiment folder of an export; the experiment folders in it: curves, curves-csv\n"
    )


def test_a_folder_without_manifest_is_read_by_its_files(export_dir: Path, tmp_path: Path) -> None:
    """Exports made before manifests existed: the format is told by which files are there."""
    folder = tmp_path / "old-csv"
    shutil.copytree(export_dir / "curves-csv", folder)
    (folder / MANIFEST_FILE).unlink()
    result = plot_experiment(folder, "train/return", by="job_type", output=tmp_path / "p.png")
    assert [c.label for c in result.curves] == ["eval", "train"]


@pytest.mark.parametrize("option", [["--ci", "100"], ["--ci", "-5"], ["--by", "state"], ["--points", "0"]])
def test_bad_options_are_usage_errors(option: list[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plot", str(tmp_path), "--field", "x", *option])
    assert exc.value.code == 2


def _run_plot(prelude: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`wandb2numpy plot ARGS` in a fresh interpreter after `prelude`; it prints, last, the wandb
    modules loaded by then."""
    program = "\n".join(
        [
            "import sys",
            prelude,
            "from wandb2numpy.cli import main",
            "rc = main(sys.argv[1:])",
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'wandb'))",
            "sys.exit(rc)",
        ]
    )
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-c", program, "plot", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=path),
    )


def test_without_matplotlib_exits_2_with_the_install_command(export_dir: Path, tmp_path: Path) -> None:
    proc = _run_plot(
        "sys.modules['matplotlib'] = None  # as if not installed",
        str(export_dir / "curves"),
        "--field",
        "train/return",
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr == f"wandb2numpy: error: {MISSING_MATPLOTLIB}\n"
    assert MISSING_MATPLOTLIB == (
        "matplotlib is not installed: pip install matplotlib (the 'plot' extra; from a checkout: pip install '.[plot]')"
    )
    assert list(tmp_path.iterdir()) == []


def test_plot_never_imports_wandb(export_dir: Path, tmp_path: Path) -> None:
    proc = _run_plot("", str(export_dir / "curves"), "--field", "train/return", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"  # no wandb module loaded
    assert (tmp_path / "curves-train-return.png").exists()


@pytest.mark.server  # run_demo starts its own local server
def test_the_demo_prints_a_plot_command_that_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from wandb2numpy.cli.demo import run_demo

    monkeypatch.chdir(tmp_path)
    assert run_demo(output="demo out", runs=6, steps=60, concurrency=4) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    prefix = "plot one with: wandb2numpy "
    assert line == prefix + "plot 'demo out/demo-csv' --field eval/success_rate --by group"
    assert main(shlex.split(line[len(prefix) :])) == 0
    assert capsys.readouterr().out.startswith("wrote demo-csv-eval-success_rate.png: 3 curve(s)")
    assert png_size((tmp_path / "demo-csv-eval-success_rate.png").read_bytes()) == (800, 500)


@pytest.mark.server
def test_the_demo_says_how_to_get_matplotlib_when_it_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from wandb2numpy.cli.demo import run_demo

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    monkeypatch.chdir(tmp_path)
    assert run_demo(output="out", runs=4, steps=20, concurrency=2) == 0  # 4: a ppo run of each job type
    line = capsys.readouterr().out.splitlines()[-1]
    assert line == (
        "plot one with: pip install matplotlib (the 'plot' extra; from a checkout: "
        "pip install '.[plot]'), then "
        "wandb2numpy plot out/demo-csv --field eval/success_rate --by group"
    )


# ------------------------------------------------------------------------------- grid exports


def _grid_result(x: np.ndarray) -> ExperimentResult:
    runs = [RunInfo(entity="e", project="p", id=f"r{i}", name=f"r{i}", group=g) for i, g in enumerate(["a", "a", None])]
    values = np.array([np.sin(x), np.cos(x), x], dtype=np.float64)
    return ExperimentResult(
        name="gridded",
        runs=runs,
        grid=x,
        fields={"eval/score": FieldArrays(values=values, steps=np.broadcast_to(x, values.shape))},
    )


@pytest.mark.parametrize("data_type", formats.names())
def test_a_grid_export_is_plotted_on_its_own_x(data_type: str, tmp_path: Path) -> None:
    x = np.array([0.0, 5.0, 6.0, 50.0, 1000.0])  # no grid plot would build: it must be the export's
    write_experiment(_grid_result(x), tmp_path, data_type=data_type, overwrite=False)
    assert formats.get(data_type).read(tmp_path / "gridded").x is not None  # type: ignore[union-attr]
    result = plot_experiment(tmp_path / "gridded", "eval/score", by="group", points=3, output=tmp_path / "g.png")
    lines = result.figure.axes[0].get_lines()
    assert [c.label for c in result.curves] == ["a", "(none)"]
    for line in lines:
        np.testing.assert_array_equal(line.get_xdata(), x)
    same = plot_experiment(tmp_path / "gridded", "eval/score", by="group", span="all", output=tmp_path / "g.png")
    np.testing.assert_array_equal(same.curves[0].x, x)  # the export's grid, whatever the span asked
    np.testing.assert_allclose(lines[0].get_ydata(), (np.sin(x) + np.cos(x)) / 2)
    np.testing.assert_allclose(lines[1].get_ydata(), x)
    assert png_size((tmp_path / "g.png").read_bytes()) == (800, 500)


# ------------------------------------------------------------------------------- figures for papers


def _short_run_result() -> ExperimentResult:
    """Four runs logging 0..100 and one stopping at 20, a fifth of the range; with tags and summary."""
    runs = [
        RunInfo(
            entity="e",
            project="p",
            id=f"r{i}",
            name=f"seed{i}",
            group="a" if i % 2 else "b",
            tags=(("base",) if i < 2 else ("base", "long")) if i < 4 else (),
            summary={"best": float(i % 2)},
        )
        for i in range(5)
    ]
    steps = np.tile(np.arange(0.0, 101.0, 10.0), (5, 1))
    steps[4, 3:] = nan
    values = np.where(np.isnan(steps), nan, steps + np.arange(5.0)[:, None])
    return ExperimentResult(name="short", runs=runs, fields={"ret": FieldArrays(values, steps)})


@pytest.fixture
def short_export(tmp_path: Path) -> Path:
    write_experiment(_short_run_result(), tmp_path / "out", data_type="numpy", overwrite=False)
    return tmp_path / "out" / "short"


MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-"}


@pytest.mark.parametrize("suffix", ["png", "pdf", "svg"])
def test_the_format_follows_the_suffix_and_is_reproducible(short_export: Path, tmp_path: Path, suffix: str) -> None:
    first, second = tmp_path / f"a.{suffix}", tmp_path / f"b.{suffix}"
    for out in (first, second):
        assert main(["plot", str(short_export), "--field", "ret", "-o", str(out)]) == 0
    data = first.read_bytes()
    if suffix == "svg":
        assert data.startswith(b"<?xml") and b"<svg" in data[:2000]
    else:
        assert data.startswith(MAGIC[suffix])
    assert data == second.read_bytes()  # no date, no version: the same files give the same bytes


@pytest.mark.parametrize("name", ["fig.jpg", "fig", "fig.PDF.txt"])
def test_an_unknown_suffix_is_a_usage_error(
    short_export: Path, tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plot", str(short_export), "--field", "ret", "-o", str(tmp_path / name)])
    assert exc.value.code == 2 and ".png, .pdf or .svg" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"\.png, \.pdf or \.svg"):
        plot_experiment(short_export, "ret", output=tmp_path / name)
    assert list(tmp_path.glob("fig*")) == []


def test_title_labels_size_dpi_log_y_and_legend(short_export: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.png"
    assert (
        main(
            [
                "plot",
                str(short_export),
                "--field",
                "ret",
                "-o",
                str(out),
                "--title",
                "Returns",
                "--xlabel",
                "env steps",
                "--ylabel",
                "return",
                "--size",
                "4,3",
                "--dpi",
                "50",
                "--log-y",
                "--legend",
                "lower-right",
                "--span",
                "common",
            ]
        )
        == 0
    )
    assert png_size(out.read_bytes()) == (200, 150)
    result = plot_experiment(short_export, "ret", output=out, title="", legend="outside", figsize=(4, 3), log_y=True)
    ax = result.figure.axes[0]
    assert ax.get_title() == "" and ax.get_yscale() == "log" and ax.get_legend() is not None
    none = plot_experiment(short_export, "ret", output=out, legend="none")
    assert none.figure.axes[0].get_legend() is None
    named = plot_experiment(short_export, "ret", output=out, title="T", xlabel="X", ylabel="Y")
    ax = named.figure.axes[0]
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("T", "X", "Y")


@pytest.mark.parametrize(
    "option",
    [
        ["--size", "4"],
        ["--size", "0,3"],
        ["--legend", "top"],
        ["--dpi", "0"],
        ["--span", "some"],
        ["--by", "config."],
        ["--by", "summary"],
    ],
)
def test_bad_figure_options_are_usage_errors(option: list[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plot", str(tmp_path), "--field", "x", *option])
    assert exc.value.code == 2


def test_span_common_warns_naming_the_short_run_and_all_draws_the_runs_per_x(
    short_export: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="wandb2numpy"):
        common = plot_experiment(short_export, "ret", points=11, output=tmp_path / "c.pdf")
    assert "seed4 [r4] (last x 20)" in caplog.text and "--span all" in caplog.text
    assert common.curves[0].x.tolist() == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert len(common.figure.axes) == 1  # every run at every x: no panel
    caplog.clear()
    with caplog.at_level("WARNING", logger="wandb2numpy"):
        whole = plot_experiment(short_export, "ret", points=11, span="all", output=tmp_path / "a.pdf")
    assert "seed4 [r4] (last x 20)" in caplog.text and "--span common" in caplog.text
    [curve] = whole.curves
    assert curve.x.tolist() == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert curve.counts is not None and curve.counts.tolist() == [5, 5, 5] + [4] * 8
    np.testing.assert_allclose(curve.stats.center[:3], [2, 12, 22])  # mean of x + 0..4
    np.testing.assert_allclose(curve.stats.center[3:], np.arange(30.0, 101.0, 10.0) + 1.5)  # x + 0..3
    assert len(whole.figure.axes) == 2  # the runs-per-x panel
    panel = whole.figure.axes[1]
    assert panel.get_ylabel() == "runs" and panel.get_lines()[0].get_ydata().tolist() == curve.counts.tolist()
    assert (tmp_path / "a.pdf").read_bytes().startswith(b"%PDF-")


def test_by_name_tags_and_summary(short_export: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.svg"
    by_name = plot_experiment(short_export, "ret", by="name", ci=0, output=out)
    assert [c.label for c in by_name.curves] == ["seed0", "seed1", "seed2", "seed3", "seed4"]
    by_tag = plot_experiment(short_export, "ret", by="tags", ci=0, output=out)
    assert [(c.label, c.n_runs) for c in by_tag.curves] == [("base", 4), ("long", 2), ("(none)", 1)]
    by_summary = plot_experiment(short_export, "ret", by="summary.best", ci=0, output=out)
    assert [(c.label, c.n_runs) for c in by_summary.curves] == [("0.0", 3), ("1.0", 2)]
    with pytest.raises(ConfigError, match="no column 'summary.worst'; its summary columns: summary.best"):
        plot_experiment(short_export, "ret", by="summary.worst", output=out)
