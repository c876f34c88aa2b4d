"""The one-file formats, npz and parquet: the same arrays as the .npy files of the same export,
in one file a reader can open without wandb2numpy (np.load, pyarrow, pandas)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import make_run as run
from conftest import same_bits as same

from wandb2numpy import ClientSettings, export
from wandb2numpy.assemble import ExperimentResult, FieldArrays, Series, assemble_experiment
from wandb2numpy.config import parse_config
from wandb2numpy.errors import ConfigError, OutputError
from wandb2numpy.output import formats
from wandb2numpy.output.checks import check_fields
from wandb2numpy.output.folder import write_experiment
from wandb2numpy.output.formats import StoredExperiment
from wandb2numpy.testing import FAST_RETRIES, LocalServer

ONE_FILE = ["npz", "parquet"]
FAST = dataclasses.replace(FAST_RETRIES, attempts=3, max_wait=0.2)


def ragged() -> ExperimentResult:
    """As the pipeline assembles: ragged runs NaN-padded, a logged NaN, a run without a point of
    one field and one without any, a failed run, a '/' in a field name, text UTF-8 cannot hold."""
    runs = [
        run("r1", config={"lr": 0.1, "opt": {"name": "adam"}}, summary={"loss": 0.5}, tags=("a",)),
        run('we,ird"id', name="a\nb\ud800", group="g"),
        run("r3"),
        run("r4", config={"lr": 0.2}),
        run("r5", group="quiet"),
    ]
    per_run = [
        {
            "loss": Series(np.array([0.0, 1.0, 2.0]), np.array([1.5, -0.0, np.inf])),
            "eval/acc": Series(np.array([10.0]), np.array([0.25])),
        },
        {"loss": Series(np.array([5.0, 2.0**60]), np.array([np.nan, 1e-300]))},
        None,  # failed
        {"eval/acc": Series(np.array([0.5, 20.0, 40.0]), np.array([1.0, np.nan, 3.0]))},
        {},  # logged none of the fields: assemble leaves it out...
    ]
    result = assemble_experiment("exp", runs, per_run, ["loss", "eval/acc", "never"], failed={"r3": "HTTP 500"})
    # ...but the Python API may hand over such a run: a row of NaN in every field.
    nan_row = np.full((1, result.fields["loss"].values.shape[1]), np.nan)
    loss = result.fields["loss"]
    result.runs.append(runs[-1])
    result.fields["loss"] = FieldArrays(np.vstack([loss.values, nan_row]), np.vstack([loss.steps, nan_row]))
    acc = result.fields["eval/acc"]
    nan_row = np.full((1, acc.values.shape[1]), np.nan)
    result.fields["eval/acc"] = FieldArrays(np.vstack([acc.values, nan_row]), np.vstack([acc.steps, nan_row]))
    return result


def gridded() -> ExperimentResult:
    """Every field on one x axis: NaN before a run starts and after it ends, a logged NaN."""
    x = np.linspace(0.0, 100.0, 6)
    values = {
        "loss": np.array([[np.nan, 1.0, 2.0, np.nan, 4.0, np.nan], [0.5, 0.25, np.nan, np.nan, np.nan, np.nan]]),
        "eval/acc": np.full((2, 6), np.nan),
    }
    fields = {k: FieldArrays(values=v, steps=np.broadcast_to(x, v.shape)) for k, v in values.items()}
    return ExperimentResult(name="exp", runs=[run("r1"), run("r2")], fields=fields, x_axis="global_step", grid=x)


def assert_same_experiment(got: StoredExperiment, want: StoredExperiment) -> None:
    assert got.runs == want.runs
    assert got.failed_runs == want.failed_runs
    assert sorted(got.fields) == sorted(want.fields)
    for name, arrays in want.fields.items():
        assert same(got.fields[name].values, arrays.values), name
        assert same(got.fields[name].steps, np.asarray(arrays.steps)), name
    assert (got.x is None) == (want.x is None)
    if want.x is not None:
        assert got.x is not None and same(got.x, want.x)


def write_both(result: ExperimentResult, tmp_path: Path, name: str) -> tuple[StoredExperiment, StoredExperiment]:
    write_experiment(result, tmp_path / "numpy", data_type="numpy", overwrite=False)
    write_experiment(result, tmp_path / name, data_type=name, overwrite=False)
    want = formats.get("numpy").read(tmp_path / "numpy" / "exp")
    got = formats.get(name).read(tmp_path / name / "exp")
    assert isinstance(want, StoredExperiment) and isinstance(got, StoredExperiment)
    return got, want


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", ONE_FILE)
@pytest.mark.parametrize("make", [ragged, gridded])
def test_reads_back_what_numpy_reads_back(tmp_path: Path, name: str, make: Any) -> None:
    result = make()
    got, want = write_both(result, tmp_path, name)
    assert_same_experiment(got, want)
    assert got.x_axis == result.x_axis
    fmt = formats.get(name)
    assert isinstance(fmt, formats.SingleFileFormat)
    files = sorted(p.name for p in (tmp_path / name / "exp").iterdir())
    expected = {"runs.csv", fmt.file_name, ".wandb2numpy-manifest.json"} | (
        {"failed_runs.csv"} if result.failed_runs else set()
    )
    assert files == sorted(expected)
    for table in ("runs.csv", "failed_runs.csv"):  # the same bytes in every format
        numpy_table = tmp_path / "numpy" / "exp" / table
        if numpy_table.exists():
            assert (tmp_path / name / "exp" / table).read_bytes() == numpy_table.read_bytes()


@pytest.mark.parametrize("name", ONE_FILE)
@pytest.mark.parametrize("make", [ragged, gridded])
def test_the_data_file_alone_is_the_experiment(tmp_path: Path, name: str, make: Any) -> None:
    """Copied away from its run tables, the file still reads back: the arrays and the runs it
    holds (npz: the whole run table; parquet: the runs with a point, the others by id)."""
    got, want = write_both(make(), tmp_path, name)
    fmt = formats.get(name)
    assert isinstance(fmt, formats.SingleFileFormat)
    beside = fmt.read(tmp_path / name / "exp" / fmt.file_name)  # next to runs.csv: the folder
    assert isinstance(beside, StoredExperiment)
    assert_same_experiment(beside, want)
    alone_path = tmp_path / f"copy.{name}"
    shutil.copy(tmp_path / name / "exp" / fmt.file_name, alone_path)
    alone = fmt.read(alone_path)
    assert isinstance(alone, StoredExperiment)
    assert alone.ids == want.ids and alone.failed_runs == {}
    assert_same_experiment(dataclasses.replace(alone, runs=want.runs), dataclasses.replace(want, failed_runs={}))
    if name == "npz":
        assert alone.runs == want.runs
    else:
        with_points = {
            i for arrays in want.fields.values() for i in np.flatnonzero((~np.isnan(arrays.values)).any(axis=1))
        }
        assert len(with_points) < len(want.runs) or make is gridded
        for i, (row, full) in enumerate(zip(alone.runs, want.runs)):
            assert row == full if i in with_points else row == {c: (full["id"] if c == "id" else "") for c in full}


@pytest.mark.parametrize("name", ONE_FILE)
def test_two_writes_give_the_same_bytes(tmp_path: Path, name: str) -> None:
    fmt = formats.get(name)
    assert isinstance(fmt, formats.SingleFileFormat)
    for folder in ("a", "b"):
        write_experiment(ragged(), tmp_path / folder, data_type=name, overwrite=False)
    assert (tmp_path / "a" / "exp" / fmt.file_name).read_bytes() == (
        tmp_path / "b" / "exp" / fmt.file_name
    ).read_bytes()


# --------------------------------------------------------------------------- read by others


def test_npz_loads_without_pickle(tmp_path: Path) -> None:
    result = ragged()
    write_experiment(result, tmp_path, data_type="npz", overwrite=False)
    with np.load(tmp_path / "exp" / "data.npz", allow_pickle=False) as data:
        assert list(data["fields"]) == ["loss", "eval/acc"]  # "never" is skipped: absent everywhere
        assert str(data["x_axis"]) == "_step"
        assert list(data["runs.id"]) == ["r1", 'we,ird"id', "r4", "r5"]
        assert data["runs.config.lr"].dtype == np.float64  # numbers: typed, a run without one NaN
        np.testing.assert_array_equal(data["runs.config.lr"], [0.1, np.nan, 0.2, np.nan])
        assert data["runs.history_line_count"].dtype == np.int64
        assert data["runs.name"][1] == "a\nb\\ud800"  # escaped as runs.csv escapes it
        assert data["runs.config.opt.name"].tolist() == ["adam", "", "", ""]
        assert all(data[k].dtype.kind == "U" for k in ("runs.id", "runs.name", "runs.tags", "runs.config.opt.name"))
        assert same(data["eval/acc"], result.fields["eval/acc"].values)
        assert same(data["eval/acc.steps"], result.fields["eval/acc"].steps)
        assert "x" not in data.files
    write_experiment(gridded(), tmp_path / "g", data_type="npz", overwrite=False)
    with np.load(tmp_path / "g" / "exp" / "data.npz", allow_pickle=False) as data:
        assert same(data["x"], gridded().grid)  # type: ignore[arg-type]
        assert str(data["x_axis"]) == "global_step"
        assert not any(k.endswith(".steps") for k in data.files)


def test_parquet_is_a_long_table(tmp_path: Path) -> None:
    result = ragged()
    write_experiment(result, tmp_path, data_type="parquet", overwrite=False)
    table = pq.read_table(tmp_path / "exp" / "data.parquet")
    runs_header = (tmp_path / "exp" / "runs.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert table.column_names == ["id", "field", "step", "value", *runs_header[1:]]
    assert pa.types.is_dictionary(table.schema.field("field").type)
    assert table.schema.field("value").type == pa.float64() and table.schema.field("step").type == pa.float64()
    assert (table.schema.metadata or {})[b"x_axis"] == b"_step"
    rows = table.to_pylist()
    points = [(r["id"], r["field"], r["step"], r["value"]) for r in rows]
    # Every logged point, field by field, run by run, NaN values included; no padding.
    nan = float("nan")
    expected = [
        ("r1", "loss", 0.0, 1.5),
        ("r1", "loss", 1.0, -0.0),
        ("r1", "loss", 2.0, float("inf")),
        ('we,ird"id', "loss", 5.0, nan),
        ('we,ird"id', "loss", 2.0**60, 1e-300),
        ("r1", "eval/acc", 10.0, 0.25),
        ("r4", "eval/acc", 0.5, 1.0),
        ("r4", "eval/acc", 20.0, nan),
        ("r4", "eval/acc", 40.0, 3.0),
    ]
    assert len(points) == len(expected)
    for got, want in zip(points, expected):
        assert got[:3] == want[:3] and (got[3] == want[3] or (np.isnan(got[3]) and np.isnan(want[3])))
    assert np.signbit(points[1][3])  # -0.0 kept
    by_id = {r["id"]: r for r in rows}
    assert by_id["r1"]["config.lr"] == 0.1 and by_id["r1"]["config.opt.name"] == "adam"
    assert by_id["r1"]["summary.loss"] == 0.5 and by_id["r1"]["tags"] == '["a"]'
    assert by_id["r4"]["config.lr"] == 0.2 and by_id["r4"]["summary.loss"] is None  # null, not ""
    assert by_id['we,ird"id']["name"] == "a\nb\\ud800" and by_id['we,ird"id']["group"] == "g"


def test_parquet_with_a_grid_has_the_grid_x_as_step(tmp_path: Path) -> None:
    result = gridded()
    write_experiment(result, tmp_path, data_type="parquet", overwrite=False)
    table = pq.read_table(tmp_path / "exp" / "data.parquet")
    assert (table.schema.metadata or {})[b"x_axis"] == b"global_step"
    rows = [(r["id"], r["field"], r["step"]) for r in table.to_pylist()]
    # Up to each run's last value on the grid; leading and inner NaN kept, so columns stay put.
    assert rows == [("r1", "loss", x) for x in (0.0, 20.0, 40.0, 60.0, 80.0)] + [
        ("r2", "loss", 0.0),
        ("r2", "loss", 20.0),
    ]


def test_parquet_reads_into_pandas(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    write_experiment(ragged(), tmp_path, data_type="parquet", overwrite=False)
    frame = pd.read_parquet(tmp_path / "exp" / "data.parquet")
    assert list(frame.columns[:4]) == ["id", "field", "step", "value"]
    assert len(frame) == 9
    assert frame.groupby("field", observed=True)["value"].count().to_dict() == {"loss": 4, "eval/acc": 3}


def test_parquet_reads_into_polars(tmp_path: Path) -> None:
    pl = pytest.importorskip("polars")
    write_experiment(ragged(), tmp_path, data_type="parquet", overwrite=False)
    frame = pl.read_parquet(tmp_path / "exp" / "data.parquet")
    assert frame.columns[:4] == ["id", "field", "step", "value"]
    assert frame.height == 9
    counts = frame.group_by("field").agg(pl.col("value").is_not_nan().sum()).sort("field")  # NaN is a value there
    assert dict(zip(counts["field"].cast(pl.Utf8).to_list(), counts["value"].to_list())) == {"eval/acc": 3, "loss": 4}


# --------------------------------------------------------------------------- names


BASE = {"entity": "demo", "project": "synthetic", "output_path": "out"}


def config_problem(fields: list[str], data_type: str) -> str | None:
    try:
        check_fields(parse_config({"DEFAULT": BASE, "e": {"fields": fields, "output_data_type": data_type}}))
    except ConfigError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("fields", [["a", "a.steps"], ["runs.id"], ["runs.config.lr"], ["x_axis"], ["fields"]])
def test_npz_refuses_two_arrays_of_one_name_at_config_time(fields: list[str]) -> None:
    problem = config_problem(fields, "npz")
    assert problem is not None and "rename a field" in problem
    assert config_problem(fields, "parquet") is None  # field names are values there, not names


def test_npz_names_inside_the_file() -> None:
    npz = formats.get("npz")
    assert npz.fields_problem(["x", "x.steps.npy", "runs", "runs.count", "eval/x"]) is None
    assert npz.fields_problem(["x"], grid=True) is not None  # the grid's x
    assert npz.fields_problem(["a", "a.steps"], grid=True) is None  # no steps arrays with a grid
    arrays = FieldArrays(np.zeros((1, 1)), np.zeros((1, 1)))
    result = ExperimentResult(name="e", runs=[run("r")], fields={"runs.count": arrays, "x": arrays})
    assert npz.fields_problem(list(result.fields)) is None


def test_npz_field_named_like_the_run_table_reads_back(tmp_path: Path) -> None:
    arrays = ragged().fields["loss"]
    result = ExperimentResult(name="exp", runs=ragged().runs, fields={"runs.count": arrays, "x": arrays})
    got, want = write_both(result, tmp_path, "npz")
    assert_same_experiment(got, want)


def test_npz_refuses_at_write_time_too(tmp_path: Path) -> None:
    arrays = FieldArrays(np.zeros((1, 1)), np.zeros((1, 1)))
    result = ExperimentResult(name="e", runs=[run("r")], fields={"runs.name": arrays})
    with pytest.raises(OutputError, match="a column of the run table"):
        write_experiment(result, tmp_path, data_type="npz", overwrite=False)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- against the local server

STEPS = 30


def run_spec(k: int, *, steps: int = STEPS) -> dict[str, Any]:
    rows = []
    for s in range(steps - 3 * k):  # ragged: run k logs 3k fewer steps
        row: dict[str, Any] = {"_step": s, "loss": 1.0 / (s + 1) + k}
        if s % 5 == 0:
            row["eval/acc"] = "NaN" if s == 5 else s * 0.01 + k
        rows.append(row)
    return {
        "id": f"r{k:02d}",
        "name": f"run-{k}",
        "group": f"g{k % 2}",
        "state": "finished",
        "created_at": "2024-01-01T00:00:00Z",
        "heartbeat_at": f"2024-01-02T00:00:{k:02d}Z",
        "config": {"seed": k, "opt": {"lr": 0.1 * k}},
        "history": rows,
    }


def project(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"projects": [{"entity": "acme", "name": "fmt", "runs": runs}]}


RELOAD_DATA = True  # one test changes a run on the server


def project_data() -> dict[str, Any]:
    return project([run_spec(k) for k in range(6)])


def export_to(srv: LocalServer, out: Path, data_type: str, *, incremental: bool = False) -> Any:
    config = {
        "exp": {
            "entity": "acme",
            "project": "fmt",
            "fields": ["loss", "eval/acc"],
            "output_path": str(out),
            "output_data_type": data_type,
        }
    }
    return export(
        config,
        overwrite=True,
        incremental=incremental,
        settings=ClientSettings(base_url=srv.base_url, api_key=srv.api_key),
        policy=FAST,
    )


def read(out: Path, data_type: str) -> StoredExperiment:
    stored = formats.get(data_type).read(out / "exp")
    assert isinstance(stored, StoredExperiment)
    return stored


@pytest.mark.parametrize("name", ONE_FILE)
def test_export_equals_the_numpy_export(srv: LocalServer, tmp_path: Path, name: str) -> None:
    assert export_to(srv, tmp_path / "numpy", "numpy").exit_code == 0
    result = export_to(srv, tmp_path / name, name)
    assert result.exit_code == 0
    fmt = formats.get(name)
    assert isinstance(fmt, formats.SingleFileFormat)
    assert [p.name for p in result.experiments["exp"].files] == ["runs.csv", fmt.file_name]
    want = read(tmp_path / "numpy", "numpy")
    assert want.fields["loss"].values.shape == (6, STEPS)
    assert np.isnan(want.fields["eval/acc"].values[:, 1]).all()  # the logged NaN
    assert_same_experiment(read(tmp_path / name, name), want)


@pytest.mark.parametrize("name", ONE_FILE)
def test_incremental_export(srv: LocalServer, tmp_path: Path, name: str) -> None:
    """A second export fetches only the changed run and writes what a fresh export writes; a
    third fetches nothing and leaves the same bytes."""
    fmt = formats.get(name)
    assert isinstance(fmt, formats.SingleFileFormat)
    out = tmp_path / "out"
    assert export_to(srv, out, name, incremental=True).exit_code == 0
    runs = [run_spec(k) for k in range(6)]
    runs[2] = run_spec(2, steps=STEPS + 12)
    runs[2]["heartbeat_at"] = "2024-02-01T00:00:00Z"
    srv.load(project(runs))
    srv.reset_stats()
    second = export_to(srv, out, name, incremental=True)
    assert set(srv.stats()["history_requests_by_run"]) == {"r02"}
    assert second.experiments["exp"].unchanged_runs == 5
    fresh = tmp_path / "fresh"
    export_to(srv, fresh, name)
    for file in ("runs.csv", fmt.file_name):
        assert (out / "exp" / file).read_bytes() == (fresh / "exp" / file).read_bytes(), file
    before = (out / "exp" / fmt.file_name).read_bytes()
    srv.reset_stats()
    third = export_to(srv, out, name, incremental=True)
    assert srv.stats()["history_requests"] == 0
    assert third.experiments["exp"].unchanged_runs == 6
    assert (out / "exp" / fmt.file_name).read_bytes() == before
    export_to(srv, tmp_path / "numpy", "numpy")
    assert_same_experiment(read(out, name), read(tmp_path / "numpy", "numpy"))
