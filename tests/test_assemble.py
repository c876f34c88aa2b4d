from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from wandb2numpy.assemble import ABSENT_REASON, assemble_experiment, stack_field
from wandb2numpy.models import RunInfo
from wandb2numpy.series import (
    NonNumericValue,
    Series,
    convert_values,
    merge_series,
    series_from_rows,
)


def bits(a: np.ndarray) -> list[int]:
    return np.asarray(a, dtype=np.float64).view(np.uint64).tolist()


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit, except that any NaN equals any NaN."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    return bool((nan_a == nan_b).all()) and bits(a[~nan_a]) == bits(b[~nan_b])


def series(steps: list[float], values: list[float]) -> Series:
    return Series(np.array(steps, dtype=np.float64), np.array(values, dtype=np.float64))


def run(run_id: str, **kw: object) -> RunInfo:
    return RunInfo(entity="e", project="p", id=run_id, name=f"name-{run_id}", **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- conversion


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0.5, 0.5),
        (-0.0, -0.0),
        (5e-324, 5e-324),
        (1.7976931348623157e308, 1.7976931348623157e308),
        (0.1 + 0.2, 0.1 + 0.2),
        (3, 3.0),
        (-7, -7.0),
        (2**53 + 1, float(2**53 + 1)),  # rounds like float(): ties to even
        (2**64 + 1, float(2**64 + 1)),
        (-(2**70) - 1, float(-(2**70) - 1)),
        (True, 1.0),
        (False, 0.0),
        (np.float32(0.1), float(np.float32(0.1))),
        (np.int64(-3), -3.0),
        (np.bool_(True), 1.0),
        ("NaN", math.nan),
        ("nan", math.nan),
        ("Infinity", math.inf),
        ("inf", math.inf),
        ("-Infinity", -math.inf),
        ("-inf", -math.inf),
        (math.nan, math.nan),
        (math.inf, math.inf),
    ],
)
def test_conversion_table(raw: object, expected: float) -> None:
    alone = convert_values([raw], "f")
    # Also mixed with a string, which forces the per-value path.
    mixed = convert_values([raw, "NaN"], "f")
    assert alone.dtype == np.float64
    assert same(alone, np.array([expected]))
    assert same(mixed[:1], np.array([expected]))


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ({"_type": "image-file", "path": "x.png"}, "image-file (media)"),
        ({"_type": "histogram", "bins": [1, 2]}, "histogram (media)"),
        ({"a": 1}, "a dict"),
        ([1.0, 2.0], "a list"),
        ("1.5", "'1.5'"),  # numeric-looking text is still text
        ("0", "'0'"),
        ("NAN", "'NAN'"),
        ("hello", "'hello'"),
        ("x" * 100, "..."),
        (10**400, "too large"),
        (b"1", "a bytes"),
    ],
)
def test_non_numeric_values(raw: object, shown: str) -> None:
    for values in ([raw], [1.0, raw], [raw, "NaN"]):
        with pytest.raises(NonNumericValue) as info:
            convert_values(values, "train/x")
        assert info.value.field == "train/x"
        assert shown in info.value.example
        assert len(info.value.example) < 80
        assert isinstance(info.value, ValueError)


def test_non_numeric_value_pickles() -> None:
    exc = pickle.loads(pickle.dumps(NonNumericValue("f", "'a'")))
    assert (exc.field, exc.example, str(exc)) == ("f", "'a'", str(NonNumericValue("f", "'a'")))


def test_float_values_round_trip_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 2**64, size=10_000, dtype=np.uint64).view(np.float64)
    raw = raw[~np.isnan(raw)]
    out = convert_values(raw.tolist(), "f")
    assert bits(out) == bits(raw)


# --------------------------------------------------------------------------- series


def test_series_from_rows_skips_missing_and_none_sorts_and_dedups() -> None:
    rows = [
        {"_step": 4, "loss": 0.4},
        {"_step": 0, "loss": 0},
        {"_step": 1, "acc": 0.9},  # no loss
        {"_step": 2, "loss": None},  # None counts as missing
        {"_step": 3.0, "loss": "NaN"},
        {"_step": 0, "loss": 99.0},  # duplicate step: the first one wins
    ]
    s = series_from_rows(rows, "loss")
    assert s.steps.tolist() == [0.0, 3.0, 4.0]
    assert same(s.values, np.array([0.0, np.nan, 0.4]))
    assert s.steps.dtype == s.values.dtype == np.float64


def test_series_from_rows_empty_and_generator() -> None:
    assert len(series_from_rows([], "x")) == 0
    s = series_from_rows(({"_step": i, "x": i * 2} for i in range(3)), "x")
    assert s.values.tolist() == [0.0, 2.0, 4.0]


def test_series_from_rows_other_step_key() -> None:
    rows = [{"_runtime": 1.5, "x": 1}, {"_runtime": 0.25, "x": 2}]
    s = series_from_rows(rows, "x", step_key="_runtime")
    assert s.steps.tolist() == [0.25, 1.5]
    assert s.values.tolist() == [2.0, 1.0]


@pytest.mark.parametrize("bad", [None, "NaN", "3", math.inf])
def test_series_from_rows_bad_step(bad: object) -> None:
    row = {"x": 1.0} if bad is None else {"_step": bad, "x": 1.0}
    with pytest.raises(ValueError, match="_step") as info:
        series_from_rows([row], "x")
    assert not isinstance(info.value, NonNumericValue)


def test_series_from_rows_media_raises() -> None:
    rows = [{"_step": 0, "img": 1.0}, {"_step": 1, "img": {"_type": "image-file"}}]
    with pytest.raises(NonNumericValue, match="img"):
        series_from_rows(rows, "img")


def test_series_checks_shapes() -> None:
    with pytest.raises(ValueError):
        Series(np.zeros(2), np.zeros(3))


def test_merge_overlapping_pieces_in_step_order() -> None:
    a = series([0, 1, 2, 3], [0.0, 1.0, 2.0, 3.0])
    b = series([3, 4, 5], [30.0, 4.0, 5.0])  # step 3 overlaps
    c = series([6, 7], [6.0, 7.0])
    merged = merge_series([c, b, a])  # pieces may finish in any order
    assert merged.steps.tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert merged.values.tolist() == [0.0, 1.0, 2.0, 30.0, 4.0, 5.0, 6.0, 7.0]
    in_order = merge_series([a, b, c])
    assert in_order.values.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert np.all(np.diff(in_order.steps) > 0)


def test_merge_edge_cases() -> None:
    assert len(merge_series([])) == 0
    empty = series([], [])
    one = series([1, 2], [1.0, 2.0])
    assert merge_series([empty, one]) is one
    same_piece = merge_series([one, one])
    assert same_piece.steps.tolist() == [1.0, 2.0]


# --------------------------------------------------------------------------- stacking


def test_stack_field_pads_with_nan_and_none_rows() -> None:
    arrays = stack_field([series([0, 1, 2], [1.0, 2.0, 3.0]), None, series([5], [-0.0]), series([], [])])
    assert arrays.values.shape == arrays.steps.shape == (4, 3)
    assert same(arrays.values[0], np.array([1.0, 2.0, 3.0]))
    assert np.isnan(arrays.values[1]).all() and np.isnan(arrays.steps[1]).all()
    assert same(arrays.values[2], np.array([-0.0, np.nan, np.nan]))
    assert same(arrays.steps[2], np.array([5.0, np.nan, np.nan]))
    assert np.isnan(arrays.values[3]).all()
    assert arrays.values.dtype == arrays.steps.dtype == np.float64


def test_stack_field_width_zero() -> None:
    assert stack_field([None, None]).values.shape == (2, 0)
    assert stack_field([]).values.shape == (0, 0)


# --------------------------------------------------------------------------- experiment


def test_assemble_rows_are_the_same_run_in_every_field() -> None:
    runs = [run("a"), run("b"), run("c"), run("d"), run("e")]
    per_run = [
        {"loss": series([0, 1], [1.0, 2.0]), "acc": series([0], [0.5])},
        None,  # failed
        {"acc": series([0, 1, 2], [0.1, 0.2, 0.3])},  # no loss: NaN row in loss
        {"other": series([0], [1.0])},  # none of the requested fields: not exported
        {"loss": series([3], [9.0]), "acc": series([], [])},
    ]
    result = assemble_experiment("exp", runs, per_run, ["loss", "acc", "missing"], failed={"b": "HTTP 500"})
    assert [r.id for r in result.runs] == ["a", "c", "e"]
    assert list(result.fields) == ["loss", "acc"]
    loss, acc = result.fields["loss"], result.fields["acc"]
    assert loss.values.shape == (3, 2) and acc.values.shape == (3, 3)
    assert same(loss.values, np.array([[1.0, 2.0], [np.nan, np.nan], [9.0, np.nan]]))
    assert same(loss.steps, np.array([[0.0, 1.0], [np.nan, np.nan], [3.0, np.nan]]))
    assert same(acc.values[1], np.array([0.1, 0.2, 0.3]))
    assert np.isnan(acc.values[2]).all()
    assert result.skipped_fields == {"missing": ABSENT_REASON}
    assert result.failed_runs == {"b": "HTTP 500"}


def test_assemble_skipped_and_failed_bookkeeping() -> None:
    runs = [run("a"), run("b"), run("c")]
    per_run = [
        {"img": series([0], [1.0]), "x": series([0], [1.0])},
        None,  # failed without a message from the caller
        {"x": series([0], [2.0])},  # the caller said it failed: excluded even with data
    ]
    result = assemble_experiment(
        "exp",
        runs,
        per_run,
        ["x", "img", "x"],  # duplicates collapse
        failed={"c": "boom"},
        skipped={"img": "holds non-numeric values (image-file (media))", "extra": "why"},
    )
    assert [r.id for r in result.runs] == ["a"]
    assert list(result.fields) == ["x"]
    assert list(result.skipped_fields) == ["img", "extra"]
    assert set(result.failed_runs) == {"b", "c"}
    assert result.failed_runs["c"] == "boom"


def test_assemble_nothing_exported() -> None:
    result = assemble_experiment("exp", [run("a")], [{}], ["x", "y"])
    assert result.runs == [] and result.fields == {}
    assert result.skipped_fields == {"x": ABSENT_REASON, "y": ABSENT_REASON}


def test_assemble_length_mismatch() -> None:
    with pytest.raises(ValueError):
        assemble_experiment("exp", [run("a")], [], ["x"])


def test_consuming_assembly_gives_the_same_arrays_and_lets_the_series_go() -> None:
    """With `consume` the per-run series are released as they are stacked (peak memory about the
    arrays' size once); the arrays are the same as without."""

    def data() -> list[dict[str, Series]]:
        return [
            {
                "a": Series(np.array([0.0, 2.0]), np.array([1.0, np.nan])),
                "b": Series(np.array([1.0]), np.array([-0.0])),
            },
            {"a": Series(np.array([5.0]), np.array([np.inf]))},
        ]

    runs = [run("r1"), run("r2")]
    kept = data()
    plain = assemble_experiment("x", runs, kept, ["a", "b"])
    consumed_input = data()
    consumed = assemble_experiment("x", runs, consumed_input, ["a", "b"], consume=True)
    assert consumed_input == [{}, {}]  # every stacked series handed over
    assert set(kept[0]) == {"a", "b"}  # without consume nothing is taken
    for f in ("a", "b"):
        for part in ("values", "steps"):
            got, want = getattr(consumed.fields[f], part), getattr(plain.fields[f], part)
            assert got.tobytes() == want.tobytes()  # bit for bit, NaN padding and -0.0 included


def test_fields_logged_together_share_one_read_only_steps_array() -> None:
    """Series that hold the very same steps arrays (fields of one file) get one steps array,
    read-only so a write cannot change two fields; others get their own, writable."""
    from wandb2numpy.assemble import SharedSteps, stack_field

    s0, s1 = np.arange(5.0), np.arange(3.0)
    a = [Series(s0, s0 * 2), Series(s1, s1 * 3)]
    b = [Series(s0, s0 * 4), Series(s1, s1 * 5)]
    c = [Series(s0.copy(), s0), Series(s1, s1)]
    like = SharedSteps()
    fa = stack_field(a, like=like)
    fb = stack_field(b, like=like)
    fc = stack_field(c, like=like)
    assert fb.steps is fa.steps and not fa.steps.flags.writeable
    assert fc.steps is not fa.steps and fc.steps.flags.writeable
    for f in (fa, fb, fc):
        np.testing.assert_array_equal(f.steps[0], s0)
        np.testing.assert_array_equal(f.steps[1, :3], s1)
        assert np.isnan(f.steps[1, 3:]).all()
    np.testing.assert_array_equal(fb.values[1, :3], s1 * 5)
