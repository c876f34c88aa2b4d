"""Output formats: the registry, and the way back from files to the arrays that were written."""

from __future__ import annotations

import collections
import enum
import json
import math
import tempfile
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import make_run as run
from conftest import same_bits as same
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from wandb2numpy.assemble import (
    ExperimentResult,
    FieldArrays,
    Series,
    assemble_experiment,
)
from wandb2numpy.config import parse_config
from wandb2numpy.errors import ConfigError, OutputError
from wandb2numpy.output import formats
from wandb2numpy.output.checks import check_fields
from wandb2numpy.output.folder import write_experiment
from wandb2numpy.output.formats import RUN_COLUMNS, StoredExperiment, StoredFile
from wandb2numpy.output.formats._base import cell_text, run_table

BASE = {"entity": "demo", "project": "synthetic", "output_path": "out"}


def assert_read_back(stored: StoredExperiment, result: ExperimentResult) -> None:
    assert stored.ids == [r.id for r in result.runs]
    assert [row["name"] for row in stored.runs] == [r.name for r in result.runs]
    assert stored.failed_runs == dict(result.failed_runs)
    assert sorted(stored.fields) == sorted(result.fields)
    for name, arrays in result.fields.items():
        assert same(stored.fields[name].values, arrays.values), name
        assert same(stored.fields[name].steps, arrays.steps), name


# --------------------------------------------------------------------------- registry


def test_registry_names() -> None:
    assert formats.names() == ("numpy", "csv", "npz", "parquet")
    for name in formats.names():
        fmt = formats.get(name)
        assert fmt.name == name and fmt.description
        if isinstance(fmt, formats.PerFieldFormat):
            assert fmt.values_suffix != fmt.steps_suffix
        else:
            assert isinstance(fmt, formats.SingleFileFormat)
            assert fmt.file_name not in (formats.RUNS_FILE, formats.FAILED_RUNS_FILE)


@pytest.mark.parametrize("name", ["hdf5", "CSV", "", None])
def test_unknown_format_is_an_error_naming_the_valid_ones(name: object) -> None:
    with pytest.raises(ValueError, match="expected one of 'numpy', 'csv', 'npz', 'parquet'"):
        formats.get(name)  # type: ignore[arg-type]


def test_config_takes_its_choices_from_the_registry() -> None:
    for name in formats.names():
        (exp,) = parse_config({"DEFAULT": BASE, "e": {"fields": ["x"], "output_data_type": name}})
        assert exp.output_data_type == name
    with pytest.raises(ConfigError, match="expected one of 'numpy', 'csv', 'npz', 'parquet'; found string 'hdf5'"):
        parse_config({"DEFAULT": BASE, "e": {"fields": ["x"], "output_data_type": "hdf5"}})


# --------------------------------------------------------------------------- round trips


def assembled() -> ExperimentResult:
    """Ragged runs as the pipeline assembles them: NaN where a run has fewer points or none."""
    runs = [run("r1"), run('we,ird"id', name="a\nb"), run("r3"), run("r4")]
    per_run = [
        {
            "loss": Series(np.array([0.0, 1.0, 2.0]), np.array([1.5, -0.0, np.inf])),
            "eval/acc": Series(np.array([10.0]), np.array([0.25])),
        },
        {"loss": Series(np.array([5.0, 2.0**60]), np.array([np.nan, 1e-300]))},
        None,  # failed
        {"eval/acc": Series(np.array([0.5, 20.0, 40.0]), np.array([1.0, 2.0, 3.0]))},
    ]
    return assemble_experiment("exp", runs, per_run, ["loss", "eval/acc"], failed={"r3": "HTTP 500"})


@pytest.mark.parametrize("name", ["numpy", "csv", "npz", "parquet"])
def test_round_trip_of_assembled_arrays(tmp_path: Path, name: str) -> None:
    result = assembled()
    assert np.isnan(result.fields["loss"].values).any()  # the padding is part of what is checked
    written = write_experiment(result, tmp_path, data_type=name, overwrite=False)
    fmt = formats.get(name)
    stored = fmt.read(tmp_path / "exp")
    assert isinstance(stored, StoredExperiment)
    assert_read_back(stored, result)
    assert list(stored.runs[0])[: len(RUN_COLUMNS)] == list(RUN_COLUMNS)
    for path in written:  # one file at a time, as the demo reads them
        one = fmt.read(path)
        if isinstance(one, StoredExperiment):  # a one-file format's data file holds it all
            assert_read_back(one, result)
            continue
        assert isinstance(one, StoredFile)
        if one.array is not None:
            assert one.summary == f"shape {one.array.shape}"
    assert fmt.read(tmp_path / "exp" / "runs.csv").summary == "3 row(s)"  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["numpy", "csv", "npz", "parquet"])
def test_round_trip_field_named_like_a_steps_file(tmp_path: Path, name: str) -> None:
    """``x.steps`` has values in ``x.steps.<ext>``, which is also how the steps of ``x`` are named."""
    arrays = assembled().fields["loss"]
    result = ExperimentResult(
        name="exp",
        runs=assembled().runs,
        fields={"x.steps": arrays, "failed_runs": arrays},
        skipped_fields={},
        failed_runs={},
    )
    write_experiment(result, tmp_path, data_type=name, overwrite=False)
    stored = formats.get(name).read(tmp_path / "exp")
    assert isinstance(stored, StoredExperiment)
    assert_read_back(stored, result)


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True, width=64)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_runs=st.integers(0, 3), widths=st.lists(st.integers(0, 4), min_size=2, max_size=2), data=st.data())
def test_round_trip_any_arrays(n_runs: int, widths: list[int], data: st.DataObject) -> None:
    fields = {}
    for field, width in zip(("a", "b/c"), widths):
        values = data.draw(hnp.arrays(np.float64, (n_runs, width), elements=finite_or_not))
        steps = data.draw(hnp.arrays(np.float64, (n_runs, width), elements=finite_or_not))
        fields[field] = FieldArrays(values=values, steps=steps)
    result = ExperimentResult(
        name="exp", runs=[run(f"id{i}") for i in range(n_runs)], fields=fields, skipped_fields={}, failed_runs={}
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name in formats.names():
            write_experiment(result, Path(tmp) / name, data_type=name, overwrite=False)
            stored = formats.get(name).read(Path(tmp) / name / "exp")
            assert isinstance(stored, StoredExperiment)
            assert_read_back(stored, result)


# --------------------------------------------------------------------------- one name rule

name_parts = st.sampled_from(["a", "é", ".", "..", "", "\\", "runs", "failed_runs", ".steps", ":", "x" * 120, "ü" * 70])
field_names = st.lists(name_parts, min_size=1, max_size=4).map("".join) | st.lists(
    st.lists(name_parts, min_size=1, max_size=3).map("".join), min_size=1, max_size=3
).map("/".join)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fields=st.lists(field_names, min_size=1, max_size=3, unique=True),
    data_type=st.sampled_from(["numpy", "csv", "npz", "parquet"]),
)
def test_config_accepts_exactly_what_the_writers_write(fields: list[str], data_type: str) -> None:
    """Refused at load means refused before any request; accepted means the write cannot refuse it."""
    try:
        check_fields(parse_config({"DEFAULT": BASE, "e": {"fields": fields, "output_data_type": data_type}}))
        accepted = True
    except ConfigError:
        accepted = False
    result = ExperimentResult(
        name="e",
        runs=[run("r")],
        skipped_fields={},
        failed_runs={"gone": "HTTP 500"},
        fields={f: FieldArrays(np.zeros((1, 1)), np.zeros((1, 1))) for f in fields},
    )
    with tempfile.TemporaryDirectory() as tmp:
        try:
            write_experiment(result, tmp, data_type=data_type, overwrite=False)
            written = True
        except OutputError:
            written = False
    assert accepted == written


def test_run_table_holds_the_url_and_scalar_summary_values(tmp_path: Path) -> None:
    """Scalars (nested plain dicts flattened) become `summary.<key>` columns; media, histograms,
    lists and wandb's `_wandb` block are left out. Read back like any other column."""
    runs = [
        run(
            "r1",
            url="http://host/e/p/runs/r1",
            summary={
                "loss": 0.25,
                "best": {"acc": 0.75, "epoch": 3},
                "done": True,
                "note": "a,b",
                "gone": None,
                "hist": {"_type": "histogram", "values": [1, 2]},
                "curve": [1, 2, 3],
                "_wandb": {"runtime": 5},
                "_step": 9,
            },
        ),
        run("r2", summary={"loss": float("nan"), "extra": "x"}),
    ]
    per_run = [{"x": Series(np.array([0.0]), np.array([1.0]))}] * 2
    result = assemble_experiment("exp", runs, per_run, ["x"])
    write_experiment(result, tmp_path, data_type="numpy", overwrite=False)
    stored = formats.get("numpy").read(tmp_path / "exp")
    assert isinstance(stored, StoredExperiment)
    r1, r2 = stored.runs
    summary_columns = [c for c in r1 if c.startswith("summary.")]
    assert summary_columns == [
        "summary._step",
        "summary.best.acc",
        "summary.best.epoch",
        "summary.done",
        "summary.extra",
        "summary.gone",
        "summary.loss",
        "summary.note",
    ]
    assert (r1["url"], r2["url"]) == ("http://host/e/p/runs/r1", "")
    assert (r1["summary.loss"], r1["summary.best.epoch"], r1["summary.done"]) == ("0.25", "3", "true")
    assert (r1["summary.note"], r1["summary.gone"], r1["summary.extra"]) == ("a,b", "null", "")
    assert (r2["summary.loss"], r2["summary.extra"]) == ("NaN", "x")


class _Level(enum.IntEnum):
    HIGH = 2


class _Ratio(float):
    pass


_cell_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN, infinities and -0.0 included
    | st.text()
    | st.sampled_from([_Level.HIGH, _Ratio(0.5), Path("a/b"), 10**30]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)


@given(_cell_values)
@example(math.nan)
@example(-math.inf)
@example(-0.0)
@example(True)
@example(None)
@example(_Ratio(math.nan))
def test_a_run_table_cell_is_the_value_as_json_whatever_its_type(value: object) -> None:
    """The fast paths for plain numbers and None write what `json.dumps` wrote before them; the
    encoder reused for every other cell keeps its options (non-ASCII kept, unknown types as text)."""
    expected = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    assert cell_text(value) == expected


def test_nested_config_flattens_from_any_mapping_not_only_dicts() -> None:
    config = types.MappingProxyType({"opt": collections.OrderedDict(name="adam", lr=0.1), "seed": 0, "empty": {}})
    header, rows = run_table([run("r1", config=config)])
    cells = dict(zip(header, rows[0]))
    assert (cells["config.opt.name"], cells["config.opt.lr"], cells["config.seed"]) == ("adam", "0.1", "0")
    assert cells["config.empty"] == "{}"
