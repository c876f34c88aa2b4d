"""grid.py and xaxis.py: pure functions checked against values worked out by hand (no server)."""

from __future__ import annotations

import numpy as np
import pytest

from wandb2numpy.assemble import ExperimentResult, FieldArrays, apply_grid
from wandb2numpy.config import parse_config
from wandb2numpy.errors import ConfigError
from wandb2numpy.grid import GridSpec, grid_range, make_grid, resample, run_ranges
from wandb2numpy.models import RunInfo
from wandb2numpy.output.checks import check_fields
from wandb2numpy.series import Series
from wandb2numpy.sources.xaxis import read_in_full, realign, thin

NAN = np.nan

# Run 0 logs y = x at x = 0, 10, ..., 90; run 1 starts late and ends late: y = 2x at 20..120.
S = np.array([[*range(0, 100, 10), NAN], list(range(20, 130, 10))], dtype=float)
V = np.array([S[0], 2 * S[1]])


def test_run_ranges_are_each_runs_first_and_last_x() -> None:
    starts, ends = run_ranges([FieldArrays(V, S)])
    assert starts.tolist() == [0, 20] and ends.tolist() == [90, 120]


def test_points_span_the_common_range() -> None:
    x = make_grid(GridSpec(points=8), *run_ranges([FieldArrays(V, S)]))
    assert x.tolist() == [20, 30, 40, 50, 60, 70, 80, 90]
    out = resample(V, S, x)
    assert out[0].tolist() == x.tolist()
    assert out[1].tolist() == (2 * x).tolist()


def test_every_takes_the_multiples_inside_the_common_range() -> None:
    x = make_grid(GridSpec(every=25), *run_ranges([FieldArrays(V, S)]))
    assert x.tolist() == [25, 50, 75]
    assert resample(V, S, x).tolist() == [[25, 50, 75], [50, 100, 150]]


def test_values_are_nan_outside_each_runs_own_range() -> None:
    x = make_grid(GridSpec(values=(0, 50, 100, 130)), *run_ranges([FieldArrays(V, S)]))
    out = resample(V, S, x)
    np.testing.assert_array_equal(out, [[0, 50, NAN, NAN], [NAN, 100, 200, NAN]])


def test_previous_takes_the_last_value_at_or_before_x() -> None:
    x = np.array([-1, 0, 25, 30, 89.9, 90, 91], dtype=float)
    out = resample(V[:1], S[:1], x, "previous")
    np.testing.assert_array_equal(out, [[NAN, 0, 20, 30, 80, 90, NAN]])
    lin = resample(V[:1], S[:1], x, "linear")
    np.testing.assert_allclose(lin, [[NAN, 0, 25, 30, 89.9, 90, NAN]])


def test_resample_skips_nan_values_sorts_and_keeps_the_later_of_equal_steps() -> None:
    values = np.array([[5.0, NAN, 1.0, 3.0, 7.0]])
    steps = np.array([[20.0, 5.0, 0.0, 10.0, 20.0]])  # 20 logged twice: 7 wins; NaN at 5 skipped
    out = resample(values, steps, np.array([0.0, 5.0, 10.0, 15.0, 20.0]))
    np.testing.assert_array_equal(out, [[1, 2, 3, 5, 7]])


def test_a_single_point_run_only_has_a_value_at_its_own_x() -> None:
    out = resample(np.array([[4.0]]), np.array([[10.0]]), np.array([5.0, 10.0, 15.0]))
    np.testing.assert_array_equal(out, [[NAN, 4.0, NAN]])


def test_disjoint_runs_use_the_whole_span() -> None:
    x = make_grid(GridSpec(points=3), np.array([0.0, 100.0]), np.array([10.0, 200.0]))
    assert x.tolist() == [0, 100, 200]


def test_apply_grid_shares_one_x_across_fields() -> None:
    run = RunInfo(id="r", name="r", entity="e", project="p")
    loss = FieldArrays(values=np.array([[1.0, 2.0], [3.0, 4.0]]), steps=np.array([[30.0, 60.0], [30.0, 60.0]]))
    result = ExperimentResult("e", [run, run], {"ret": FieldArrays(V, S), "loss": loss})
    gridded = apply_grid(result, GridSpec(points=8))
    # each run's range spans all its fields (run 0: 0..90, run 1: 20..120); the grid, the common part
    assert gridded.grid is not None and gridded.grid.tolist() == [20, 30, 40, 50, 60, 70, 80, 90]
    assert gridded.fields["ret"].values[1].tolist() == [40, 60, 80, 100, 120, 140, 160, 180]
    # loss itself only spans 30..60 in each run: NaN outside it
    np.testing.assert_allclose(gridded.fields["loss"].values[0], [NAN, 1, 4 / 3, 5 / 3, 2, NAN, NAN, NAN])
    assert gridded.fields["loss"].steps.shape == (2, 8)
    np.testing.assert_array_equal(gridded.fields["loss"].steps[1], gridded.grid)


# --------------------------------------------------------------------------- x axis


def _s(steps: list[float], values: list[float]) -> Series:
    return Series(steps=np.array(steps, dtype=float), values=np.array(values, dtype=float))


def test_realign_uses_the_keys_value_of_the_same_row_and_counts_rows_without_it() -> None:
    series = {"ret": _s([0, 1, 2, 3], [10, 11, 12, 13]), "gs": _s([0, 2, 3], [0, 2000, NAN])}
    moved = realign(series, "gs", ["ret"])
    assert moved.series["ret"].steps.tolist() == [0, 2000]
    assert moved.series["ret"].values.tolist() == [10, 12]
    assert moved.dropped == {"ret": 2}  # no gs at step 1; gs NaN at step 3
    missing = realign({"ret": _s([0], [1])}, "gs", ["ret"])
    assert missing.series == {} and missing.dropped == {"ret": 1} and not missing.has_key


def test_thin_keeps_first_and_last_evenly() -> None:
    s = _s(list(range(10)), list(range(10)))
    assert thin(s, 4).steps.tolist() == [0, 3, 6, 9]
    assert thin(s, 20) is s


def test_read_in_full_only_when_sampling_would_thin_rows_the_key_does_not_share() -> None:
    from wandb2numpy.models import KeyInfo

    def run(**counts: int) -> RunInfo:
        keys = {k: KeyInfo(count=n, types=("number",)) for k, n in counts.items()}
        return RunInfo(id="r", name="r", entity="e", project="p", history_keys=keys)

    apart = run(ret=100, gs=50)  # gs on half the rows: sampled apart, they would not share rows
    assert not read_in_full(apart, "gs", ["ret"], None)
    assert not read_in_full(apart, "gs", ["ret"], 100)  # every row kept anyway
    assert read_in_full(apart, "gs", ["ret"], 99)
    together = run(ret=100, loss=100, gs=100)  # logged together: one request, sampled as one
    assert not read_in_full(together, "gs", ["ret", "loss"], 10)
    assert read_in_full(run(ret=100), "gs", ["ret"], 10)  # no gs at all
    assert read_in_full(RunInfo(id="r", name="r", entity="e", project="p"), "gs", ["ret"], 10)  # no counts


# --------------------------------------------------------------------------- config


BASE = {"entity": "e", "project": "p", "fields": ["ret"], "output_path": "o"}


def test_config_reads_x_axis_and_grid() -> None:
    [exp] = parse_config({"E": {**BASE, "x_axis": "global_step", "grid": {"every": 1000, "method": "previous"}}})
    assert exp.x_axis == "global_step"
    assert exp.grid == GridSpec(every=1000.0, method="previous")
    [plain] = parse_config({"E": BASE})
    assert plain.x_axis == "_step" and plain.grid is None


@pytest.mark.parametrize(
    ("grid", "key", "words"),
    [
        ({"pointz": 5}, "grid.pointz", "did you mean 'points'"),
        ({"points": 5, "every": 2}, "grid", "exactly one of"),
        ({}, "grid", "exactly one of"),
        ({"points": 0}, "grid.points", "from 1 to"),
        ({"every": -1}, "grid.every", "positive number"),
        ({"values": [1, 3, 2]}, "grid.values[2]", "must increase"),
        ({"values": []}, "grid.values", "non-empty list"),
        ({"points": 3, "method": "lin"}, "grid.method", "did you mean 'linear'"),
        (200, "grid", "{points: 200}"),
    ],
)
def test_bad_grids_name_the_key(grid: object, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"E": {**BASE, "grid": grid}}, source="c.yaml")
    assert err.value.key == key and err.value.experiment == "E"
    assert words in str(err.value) and "c.yaml" in str(err.value)


def test_a_field_named_x_collides_with_the_grid_axis() -> None:
    with pytest.raises(ConfigError, match="x.npy") as err:
        check_fields(parse_config({"E": {**BASE, "fields": ["x", "ret"], "grid": {"points": 3}}}))
    assert err.value.key == "fields" and err.value.experiment == "E"
    check_fields(parse_config({"E": {**BASE, "fields": ["x", "ret"]}}))  # without a grid "x" is a field like any


def test_x_axis_must_be_a_name() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"E": {**BASE, "x_axis": 5}})
    assert err.value.key == "x_axis"


# --------------------------------------------------------------------------- span


# Four runs from 0 to 100 and one that stops at 20, a fifth of the range.
STARTS = np.array([0.0, 0.0, 0.0, 0.0, 0.0])
ENDS = np.array([100.0, 100.0, 100.0, 100.0, 20.0])
LABELS = ["a", "b", "c", "d", "short [r5]"]


def test_span_common_is_where_every_run_has_data_and_all_is_the_whole_range() -> None:
    assert make_grid(GridSpec(points=3), STARTS, ENDS).tolist() == [0, 10, 20]
    assert make_grid(GridSpec(points=3, span="all"), STARTS, ENDS).tolist() == [0, 50, 100]
    assert make_grid(GridSpec(every=40, span="all"), STARTS, ENDS).tolist() == [0, 40, 80]


def test_a_short_run_is_named_with_its_last_x_and_the_other_span() -> None:
    common = grid_range(GridSpec(points=3), STARTS, ENDS, LABELS)
    assert (common.lo, common.hi, common.other) == (0.0, 20.0, (0.0, 100.0))
    assert [(o.label, o.side, o.x) for o in common.outliers] == [("short [r5]", "ends", 20.0)]
    message = common.warning("exp", "global_step")
    assert message is not None
    assert "global_step 0 to 20, the range every run covers" in message
    assert "short [r5] (last x 20)" in message and "grid: {span: all}" in message and "(0 to 100)" in message
    whole = grid_range(GridSpec(points=3, span="all"), STARTS, ENDS, LABELS)
    message = whole.warning("exp", "_step")
    assert message is not None and "short [r5] (last x 20)" in message and "grid: {span: common}" in message
    assert whole.as_json() == {
        "span": "all",
        "from": 0.0,
        "to": 100.0,
        "short_runs": [{"run": "short [r5]", "ends": 20.0}],
    }


def test_runs_of_similar_length_give_no_warning() -> None:
    span = grid_range(GridSpec(points=3), STARTS, np.array([100.0, 90.0, 80.0, 100.0, 60.0]))
    assert span.outliers == () and span.warning("exp", "_step") is None
    late = grid_range(GridSpec(points=3), np.array([0.0, 0.0, 80.0]), np.array([100.0, 100.0, 100.0]), ["a", "b", "c"])
    assert [(o.label, o.side, o.x) for o in late.outliers] == [("c", "starts", 80.0)]


def test_apply_grid_warns_and_keeps_nan_where_a_run_has_no_data(caplog: pytest.LogCaptureFixture) -> None:
    runs = [RunInfo(id=f"r{i}", name=f"n{i}", entity="e", project="p") for i in range(5)]
    steps = np.tile(np.arange(0.0, 101.0, 10.0), (5, 1))
    steps[4, 3:] = NAN  # run 4 logs 0, 10, 20 only
    values = np.where(np.isnan(steps), NAN, steps * 2)
    result = ExperimentResult("exp", runs, {"ret": FieldArrays(values, steps)})
    with caplog.at_level("WARNING", logger="wandb2numpy"):
        gridded = apply_grid(result, GridSpec(points=6, span="all"))
    assert "n4 [r4] (last x 20)" in caplog.text
    assert gridded.grid is not None and gridded.grid.tolist() == [0, 20, 40, 60, 80, 100]
    np.testing.assert_array_equal(gridded.fields["ret"].values[4], [0, 40, NAN, NAN, NAN, NAN])
    assert gridded.grid_range is not None and gridded.grid_range.span == "all"


def test_config_span() -> None:
    [exp] = parse_config({"E": {**BASE, "grid": {"points": 5, "span": "all"}}})
    assert exp.grid == GridSpec(points=5, span="all")
    [default] = parse_config({"E": {**BASE, "grid": {"points": 5}}})
    assert default.grid is not None and default.grid.span == "common"
    for grid, words in (
        ({"points": 5, "span": "al"}, "did you mean 'all'"),
        ({"values": [1, 2], "span": "all"}, "leave 'span' out"),
    ):
        with pytest.raises(ConfigError) as err:
            parse_config({"E": {**BASE, "grid": grid}})
        assert err.value.key == "grid.span" and words in str(err.value)


def test_x_values_read_as_steps() -> None:
    from wandb2numpy.grid import format_x

    assert [format_x(v) for v in (243720.0, 0.0, -5.0, 0.125, 1e20)] == ["243,720", "0", "-5", "0.125", "1e+20"]
