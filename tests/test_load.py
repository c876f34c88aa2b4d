"""`wandb2numpy.load`: every format reads back into one object with the arrays the export
wrote, and `to_pandas` / `to_xarray` agree with those arrays."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_run as run
from conftest import same_bits as same

import wandb2numpy
from wandb2numpy.assemble import ExperimentResult, FieldArrays
from wandb2numpy.errors import ConfigError
from wandb2numpy.output import formats
from wandb2numpy.output.folder import write_experiment
from wandb2numpy.output.load import MISSING_PANDAS, MISSING_XARRAY

REPO_ROOT = Path(__file__).resolve().parent.parent
nan = np.nan


def ragged() -> ExperimentResult:
    """Runs logging at their own steps, NaN-padded; a logged NaN; typed and text config."""
    runs = [
        run("r1", config={"lr": 0.0003, "seed": 1, "opt": "adam"}, summary={"loss": 0.5}, group="a"),
        run("r2", config={"lr": 0.001, "seed": 2, "opt": "sgd"}, group="b"),
        run("r3", config={"lr": 0.0003, "seed": 3}, summary={"loss": 0.25}, group="a"),
    ]
    ret = FieldArrays(
        values=np.array([[1.0, 2.0, 3.0], [4.0, nan, nan], [nan, 6.0, nan]]),
        steps=np.array([[0.0, 10.0, 20.0], [5.0, nan, nan], [0.0, 10.0, nan]]),
    )
    loss = FieldArrays(values=np.array([[0.5], [0.25], [0.125]]), steps=np.array([[20.0], [5.0], [10.0]]))
    return ExperimentResult("exp", runs, {"ret": ret, "train/loss": loss}, x_axis="global_step")


def gridded() -> ExperimentResult:
    x = np.array([0.0, 50.0, 100.0])
    values = np.array([[1.0, 2.0, nan], [nan, 5.0, 6.0]])
    runs = [run("g1", config={"lr": 0.1}), run("g2", config={"lr": 0.2})]
    return ExperimentResult("exp", runs, {"ret": FieldArrays(values, np.broadcast_to(x, values.shape))}, grid=x)


def write(result: ExperimentResult, root: Path, data_type: str) -> Path:
    write_experiment(result, root / data_type, data_type=data_type, overwrite=False)
    return root / data_type / result.name


@pytest.mark.parametrize("data_type", formats.names())
@pytest.mark.parametrize("make", [ragged, gridded])
def test_every_format_round_trips_to_equal_arrays(tmp_path: Path, data_type: str, make: object) -> None:
    result = make()  # type: ignore[operator]
    exp = wandb2numpy.load(write(result, tmp_path, data_type))
    assert exp.data_type == data_type and exp.x_axis == result.x_axis
    assert exp.ids == [r.id for r in result.runs]
    assert sorted(exp.fields) == sorted(result.fields)
    for name, arrays in result.fields.items():
        assert same(exp.fields[name].values, arrays.values), name
        assert same(np.asarray(exp.fields[name].steps), np.asarray(arrays.steps)), name
    assert (exp.x is None) == (result.grid is None)
    if result.grid is not None:
        assert exp.x is not None and same(exp.x, result.grid)
    assert exp.runs["config.lr"].dtype == np.float64
    reference = wandb2numpy.load(write(result, tmp_path, "numpy")) if data_type != "numpy" else exp
    assert exp.runs.keys() == reference.runs.keys()
    for column, values in reference.runs.items():
        assert exp.runs[column].dtype == values.dtype, column
        assert np.array_equal(exp.runs[column], values, equal_nan=values.dtype.kind == "f"), column


def test_the_run_table_is_typed(tmp_path: Path) -> None:
    exp = wandb2numpy.load(write(ragged(), tmp_path, "csv"))
    assert exp.runs["config.seed"].dtype == np.int64 and exp.runs["config.seed"].tolist() == [1, 2, 3]
    np.testing.assert_array_equal(exp.runs["summary.loss"], [0.5, nan, 0.25])
    assert exp.runs["config.opt"].tolist() == ["adam", "sgd", ""]
    assert exp.runs["group"].tolist() == ["a", "b", "a"]
    assert exp.run_rows[0]["config.lr"] == "0.0003"  # the runs.csv text, as it is
    assert "3 run(s), 2 field(s)" in repr(exp)


@pytest.mark.parametrize("data_type", ["numpy", "parquet"])
def test_to_pandas_long_and_wide_agree_with_the_arrays(tmp_path: Path, data_type: str) -> None:
    pytest.importorskip("pandas")
    exp = wandb2numpy.load(write(ragged(), tmp_path, data_type))
    long = exp.to_pandas()
    assert long.attrs["x_axis"] == "global_step"
    assert len(long) == 6 + 3  # every point, no padding
    r1 = long[(long["id"] == "r1") & (long["field"] == "ret")]
    assert r1["step"].tolist() == [0.0, 10.0, 20.0] and r1["value"].tolist() == [1.0, 2.0, 3.0]
    hits = long[long["config.lr"] == 0.0003]
    assert sorted(set(hits["id"])) == ["r1", "r3"]
    wide = exp.to_pandas("wide", runs=False)
    assert list(wide.columns) == ["id", "step", "ret", "train/loss"]
    assert list(zip(wide["id"], wide["step"])) == [
        ("r1", 0.0),
        ("r1", 10.0),
        ("r1", 20.0),
        ("r2", 5.0),
        ("r3", 0.0),
        ("r3", 10.0),
    ]
    np.testing.assert_array_equal(wide["ret"], [1.0, 2.0, 3.0, 4.0, nan, 6.0])
    np.testing.assert_array_equal(wide["train/loss"], [nan, nan, 0.5, 0.25, nan, 0.125])
    runs = exp.runs_frame(["config.seed"])
    assert runs["config.seed"].tolist() == [1, 2, 3] and str(runs["config.seed"].dtype) == "int64"


@pytest.mark.parametrize("data_type", ["npz", "csv"])
def test_to_xarray_agrees_with_the_arrays(tmp_path: Path, data_type: str) -> None:
    pytest.importorskip("xarray")
    exp = wandb2numpy.load(write(gridded(), tmp_path, data_type))
    ds = exp.to_xarray()
    assert ds["ret"].dims == ("run", "x") and ds["x"].values.tolist() == [0.0, 50.0, 100.0]
    assert same(ds["ret"].values, exp.fields["ret"].values)
    assert ds["config.lr"].values.tolist() == [0.1, 0.2] and ds.attrs["x_axis"] == "_step"
    assert float(ds["ret"].sel(run="g2", x=100.0)) == 6.0
    plain = wandb2numpy.load(write(ragged(), tmp_path / "plain", data_type)).to_xarray()
    assert plain["ret"].dims == ("run", "step") and plain["step"].values.tolist() == [0.0, 5.0, 10.0, 20.0]
    np.testing.assert_array_equal(plain["ret"].values, [[1, nan, 2, 3], [nan, 4, nan, nan], [nan, nan, 6, nan]])
    np.testing.assert_array_equal(plain["train/loss"].sel(run="r3").values, [nan, nan, 0.125, nan])
    assert plain["config.seed"].values.tolist() == [1, 2, 3]


def test_a_data_file_alone_loads(tmp_path: Path) -> None:
    folder = write(gridded(), tmp_path, "npz")
    exp = wandb2numpy.load(folder / "data.npz")
    assert exp.ids == ["g1", "g2"] and exp.x is not None


def test_no_experiment_folder(tmp_path: Path) -> None:
    write(ragged(), tmp_path, "numpy")
    with pytest.raises(ConfigError, match="the experiment folders in it: exp"):
        wandb2numpy.load(tmp_path / "numpy")
    with pytest.raises(ConfigError, match="does not exist"):
        wandb2numpy.load(tmp_path / "nope")


@pytest.mark.parametrize(
    ("module", "call", "message"),
    [("pandas", "to_pandas()", MISSING_PANDAS), ("xarray", "to_xarray()", MISSING_XARRAY)],
)
def test_a_missing_extra_is_named_and_only_needed_on_use(tmp_path: Path, module: str, call: str, message: str) -> None:
    folder = write(gridded(), tmp_path, "numpy")
    program = "\n".join(
        [
            "import sys",
            f"sys.modules[{module!r}] = None  # as if not installed",
            "import wandb2numpy",
            f"exp = wandb2numpy.load({str(folder)!r})",
            "assert exp.fields['ret'].values.shape == (2, 3)",
            "try:",
            f"    exp.{call}",
            "except ImportError as exc:",
            "    print(exc)",
        ]
    )
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=path),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == message + "\n"
    assert f"pip install '.[{module}]'" in message  # not wandb2numpy[...]: an unrelated package from a checkout


@pytest.mark.parametrize("data_type", formats.names())
def test_pandas_and_xarray_of_a_grid_are_the_arrays(tmp_path: Path, data_type: str) -> None:
    pytest.importorskip("xarray")
    exp = wandb2numpy.load(write(gridded(), tmp_path, data_type))
    values = exp.fields["ret"].values
    wide = exp.to_pandas("wide")
    assert same(wide["ret"].to_numpy().reshape(values.shape), values)
    assert wide["config.lr"].tolist() == [0.1] * 3 + [0.2] * 3
    long = exp.to_pandas("long", runs=["config.lr"])
    assert list(long.columns) == ["id", "field", "step", "value", "config.lr"]
    assert same(long["value"].to_numpy().reshape(values.shape), values)
    assert same(exp.to_xarray()["ret"].values, values)
