"""Typed run tables: ``config.*`` and ``summary.*`` columns of data.parquet and data.npz are
numbers, bools or null where every value is one, text otherwise; ``runs.csv`` stays text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import make_run as run

from wandb2numpy.assemble import ExperimentResult, FieldArrays
from wandb2numpy.output.folder import write_experiment
from wandb2numpy.output.formats import _types


def result() -> ExperimentResult:
    runs = [
        run(
            "r1",
            config={
                "lr": 0.0003,
                "seed": 1,
                "flag": True,
                "opt": "adam",
                "mix": 1,
                "none": None,
                "big": 2**70,
                "ratio": 1,
            },
            summary={"loss": 0.5, "steps": 100},
        ),
        run(
            "r2",
            config={
                "lr": 0.001,
                "seed": 2,
                "flag": False,
                "opt": "sgd",
                "mix": "one",
                "none": None,
                "big": 1,
                "ratio": 0.5,
            },
            summary={"loss": float("nan")},
        ),
        run(
            "r3",
            config={"lr": 0.0003, "seed": 3, "flag": True, "opt": "adam", "mix": 2, "big": 3, "ratio": 2},
            summary={"loss": 0.25, "steps": 300},
        ),
    ]
    values = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    return ExperimentResult("exp", runs, {"ret": FieldArrays(values, np.tile([0.0, 1.0], (3, 1)))})


def test_the_rule() -> None:
    assert _types.kind_of([1, 2, None]) == "int"
    assert _types.kind_of([1, 0.5]) == "float"
    assert _types.kind_of([True, None]) == "bool"
    assert _types.kind_of([True, 1]) == "text"  # a bool is no number here
    assert _types.kind_of([1, "a"]) == "text"
    assert _types.kind_of([None, None]) == "null"
    assert _types.kind_of([2**63]) == "text"  # no int64 holds it exactly
    assert _types.kind_of([float("nan"), 1.0]) == "float"


PARQUET_TYPES = {
    "config.lr": pa.float64(),
    "config.seed": pa.int64(),
    "config.flag": pa.bool_(),
    "config.ratio": pa.float64(),
    "config.none": pa.null(),
    "summary.loss": pa.float64(),
    "summary.steps": pa.int64(),
    "history_line_count": pa.int64(),
}


def test_parquet_columns_are_typed(tmp_path: Path) -> None:
    write_experiment(result(), tmp_path, data_type="parquet", overwrite=False)
    schema = pq.read_schema(tmp_path / "exp" / "data.parquet")
    for column, typ in PARQUET_TYPES.items():
        assert schema.field(column).type == typ, column
    for column in ("config.opt", "config.mix", "config.big", "name", "tags"):
        assert schema.field(column).type == pa.dictionary(pa.int32(), pa.string()), column
    table = pq.read_table(tmp_path / "exp" / "data.parquet")
    rows = {r["id"]: r for r in table.to_pylist()}
    assert rows["r2"]["summary.steps"] is None and rows["r3"]["summary.steps"] == 300  # null, not 0 or ""
    assert rows["r1"]["config.mix"] == "1" and rows["r2"]["config.mix"] == "one"  # mixed stays text
    assert rows["r1"]["config.big"] == str(2**70)


def test_a_pandas_filter_on_a_number_finds_the_rows(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    write_experiment(result(), tmp_path, data_type="parquet", overwrite=False)
    df = pd.read_parquet(tmp_path / "exp" / "data.parquet")
    hits = df[df["config.lr"] == 0.0003]
    assert sorted(set(hits["id"])) == ["r1", "r3"] and len(hits) == 4  # two points each
    assert str(df["config.seed"].dtype) == "int64" and str(df["config.flag"].dtype) == "bool"
    polars = pytest.importorskip("polars")
    pl = polars.read_parquet(tmp_path / "exp" / "data.parquet")
    assert pl.schema["config.lr"] == polars.Float64 and pl.schema["config.seed"] == polars.Int64
    assert pl.filter(polars.col("config.lr") == 0.0003).height == 4


def test_npz_columns_are_typed_without_pickle(tmp_path: Path) -> None:
    write_experiment(result(), tmp_path, data_type="npz", overwrite=False)
    with np.load(tmp_path / "exp" / "data.npz", allow_pickle=False) as data:
        dtypes: dict[str, Any] = {k[len("runs.") :]: data[k].dtype for k in data.files if k.startswith("runs.")}
        lr = data["runs.config.lr"]
        steps = data["runs.summary.steps"]
        seed = data["runs.config.seed"]
    assert dtypes["config.lr"] == np.float64 and dtypes["config.seed"] == np.int64
    assert dtypes["config.flag"] == np.bool_ and dtypes["history_line_count"] == np.int64
    assert dtypes["summary.steps"] == np.float64  # an int column with a run lacking it: NaN there
    assert all(dtypes[c].kind == "U" for c in ("config.opt", "config.mix", "config.big", "config.none", "id"))
    assert (lr == 0.0003).tolist() == [True, False, True] and seed.tolist() == [1, 2, 3]
    np.testing.assert_array_equal(steps, [100, np.nan, 300])


@pytest.mark.parametrize("data_type", ["npz", "parquet"])
def test_runs_csv_is_unchanged(tmp_path: Path, data_type: str) -> None:
    write_experiment(result(), tmp_path / "numpy", data_type="numpy", overwrite=False)
    write_experiment(result(), tmp_path / data_type, data_type=data_type, overwrite=False)
    text = (tmp_path / data_type / "exp" / "runs.csv").read_text()
    assert text == (tmp_path / "numpy" / "exp" / "runs.csv").read_text()
