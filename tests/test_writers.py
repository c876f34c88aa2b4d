from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from wandb2numpy.assemble import ExperimentResult, FieldArrays
from wandb2numpy.errors import ForeignFilesError, OutputError, OutputExistsError
from wandb2numpy.models import RunInfo
from wandb2numpy.output import folder as writers
from wandb2numpy.output.folder import (
    RUN_COLUMNS,
    atomic_write_bytes,
    check_name_safe,
    existing_outputs,
    planned_files,
    write_experiment,
)
from wandb2numpy.output.formats import _base as formats_base
from wandb2numpy.output.formats import csv as csv_format


def run(run_id: str, **kw: object) -> RunInfo:
    kw.setdefault("name", f"name-{run_id}")
    return RunInfo(entity="e", project="p", id=run_id, **kw)  # type: ignore[arg-type]


def result(
    name: str = "exp", fields: dict[str, FieldArrays] | None = None, runs: list[RunInfo] | None = None
) -> ExperimentResult:
    runs = runs if runs is not None else [run("r1"), run("r2")]
    if fields is None:
        fields = {
            "train/loss": FieldArrays(
                values=np.array([[1.0, 2.0, 3.0], [0.5, np.nan, np.nan]]),
                steps=np.array([[0.0, 1.0, 2.0], [10.0, np.nan, np.nan]]),
            ),
            "acc": FieldArrays(values=np.array([[0.25], [-0.0]]), steps=np.array([[3.0], [4.0]])),
        }
    return ExperimentResult(name=name, runs=runs, fields=fields, skipped_fields={}, failed_runs={})


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit, except that any NaN equals any NaN (CSV keeps no NaN payload)."""
    if a.shape != b.shape:
        return False
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if not (nan_a == nan_b).all():
        return False
    return a[~nan_a].view(np.uint64).tolist() == b[~nan_b].view(np.uint64).tolist()


def read_field_csv(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    width = len(header) - 1
    values = np.array([[float(x) for x in row[1:]] for row in body], dtype=np.float64)
    return header, [row[0] for row in body], values.reshape(len(body), width)


# --------------------------------------------------------------------------- layout


@pytest.mark.parametrize("data_type", ["numpy", "csv"])
def test_layout_with_sub_folders(tmp_path: Path, data_type: str) -> None:
    written = write_experiment(result(), tmp_path, data_type=data_type, overwrite=False)  # type: ignore[arg-type]
    ext = ".npy" if data_type == "numpy" else ".csv"
    rel = [
        "runs.csv",
        f"train/loss{ext}",
        f"train/loss.steps{ext}",
        f"acc{ext}",
        f"acc.steps{ext}",
    ]
    assert written == [tmp_path / "exp" / r for r in rel]
    assert planned_files(result(), data_type) == [Path(r) for r in rel]  # type: ignore[arg-type]
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        f"exp/{r}" for r in [*rel, writers.MANIFEST_FILE]
    )
    assert existing_outputs(tmp_path, "exp") == sorted(written)  # the manifest is no output


def test_npy_contents(tmp_path: Path) -> None:
    res = result()
    write_experiment(res, tmp_path, data_type="numpy", overwrite=False)
    for field, arrays in res.fields.items():
        values = np.load(tmp_path / "exp" / f"{field}.npy")
        steps = np.load(tmp_path / "exp" / f"{field}.steps.npy")
        assert values.dtype == steps.dtype == np.float64
        assert same(values, arrays.values) and same(steps, arrays.steps)


def test_csv_contents(tmp_path: Path) -> None:
    write_experiment(result(), tmp_path, data_type="csv", overwrite=False)
    loss = (tmp_path / "exp" / "train" / "loss.csv").read_text()
    steps = (tmp_path / "exp" / "train" / "loss.steps.csv").read_text()
    acc = (tmp_path / "exp" / "acc.csv").read_text()
    assert loss == "id,0,1,2\nr1,1.0,2.0,3.0\nr2,0.5,nan,nan\n"
    assert steps == "id,0,1,2\nr1,0,1,2\nr2,10,nan,nan\n"
    assert acc == "id,0\nr1,0.25\nr2,-0.0\n"
    loaded = np.genfromtxt(tmp_path / "exp" / "train" / "loss.csv", delimiter=",", skip_header=1, usecols=(1, 2, 3))
    assert same(loaded, result().fields["train/loss"].values)


def test_csv_steps_not_whole_are_written_exactly(tmp_path: Path) -> None:
    arrays = FieldArrays(
        values=np.array([[1.0, 2.0, 3.0, 4.0]]),
        steps=np.array([[0.5, 2.0**60, -0.0, 1e300]]),
    )
    res = result(fields={"x": arrays}, runs=[run('we,ird"id')])
    write_experiment(res, tmp_path, data_type="csv", overwrite=False)
    header, ids, steps = read_field_csv(tmp_path / "exp" / "x.steps.csv")
    assert ids == ['we,ird"id']
    assert same(steps, arrays.steps)


def test_csv_wide_rows_are_chunked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_format, "CSV_CHUNK_VALUES", 3)
    values = np.arange(20, dtype=np.float64).reshape(2, 10) / 7
    steps = np.tile(np.arange(10, dtype=np.float64), (2, 1))
    write_experiment(result(fields={"x": FieldArrays(values, steps)}), tmp_path, data_type="csv", overwrite=False)
    header, ids, back = read_field_csv(tmp_path / "exp" / "x.csv")
    assert header == ["id", *map(str, range(10))]
    assert ids == ["r1", "r2"]
    assert same(back, values)
    assert same(read_field_csv(tmp_path / "exp" / "x.steps.csv")[2], steps)


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True, width=64)
special = st.sampled_from([0.0, -0.0, np.nan, np.inf, -np.inf, 5e-324, 2.0**53 + 2, 1e300])


@st.composite
def field_arrays(draw: st.DrawFn) -> tuple[int, dict[str, FieldArrays]]:
    n_runs = draw(st.integers(0, 3))
    out: dict[str, FieldArrays] = {}
    for name in ("a", "b/c"):
        width = draw(st.integers(0, 5))
        elements = st.one_of(finite_or_not, special)
        values = draw(hnp.arrays(np.float64, (n_runs, width), elements=elements))
        whole = st.integers(-(2**60), 2**60).map(float)
        step_elements = st.one_of(special, whole, finite_or_not)
        steps = draw(hnp.arrays(np.float64, (n_runs, width), elements=step_elements))
        out[name] = FieldArrays(values=values, steps=steps)
    return n_runs, out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field_arrays())
def test_round_trip_both_writers(drawn: tuple[int, dict[str, FieldArrays]]) -> None:
    n_runs, fields = drawn
    runs = [run(f"id{i}") for i in range(n_runs)]
    res = result(fields=fields, runs=runs)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        write_experiment(res, out / "n", data_type="numpy", overwrite=False)
        write_experiment(res, out / "c", data_type="csv", overwrite=False)
        for name, arrays in fields.items():
            for suffix, expected in (("", arrays.values), (".steps", arrays.steps)):
                npy = np.load(out / "n" / "exp" / f"{name}{suffix}.npy")
                # .npy keeps every bit, NaN payloads included.
                assert npy.view(np.uint64).tolist() == expected.view(np.uint64).tolist()
                assert npy.shape == expected.shape
                header, ids, back = read_field_csv(out / "c" / "exp" / f"{name}{suffix}.csv")
                assert ids == [r.id for r in runs]
                assert header == ["id", *map(str, range(expected.shape[1]))]
                assert same(back, expected)
                if n_runs and expected.shape[1]:
                    gen = np.genfromtxt(
                        out / "c" / "exp" / f"{name}{suffix}.csv",
                        delimiter=",",
                        skip_header=1,
                        usecols=range(1, expected.shape[1] + 1),
                        ndmin=2,
                    )
                    assert same(gen, expected)


# --------------------------------------------------------------------------- runs.csv


def test_runs_csv_content(tmp_path: Path) -> None:
    runs = [
        run(
            "a1",
            name='Grüße, "quoted"\nrun',
            group="g",
            job_type="train",
            state="crashed",
            tags=("x", "ü"),
            created_at="2024-01-01T00:00:00",
            heartbeat_at="2024-01-02T00:00:00",
            history_line_count=12,
            config={
                "lr": 0.1,
                "opt": {"name": "adam", "betas": [0.9, 0.99], "eps": None},
                "flag": True,
                "seed": 3,
                "text": "plain",
                "empty": {},
            },
        ),
        run("b2", config={"lr": float("nan"), "only_b": "x"}),
    ]
    values = np.zeros((2, 1))
    res = result(fields={"x": FieldArrays(values, values.copy())}, runs=runs)
    write_experiment(res, tmp_path, data_type="numpy", overwrite=False)
    text = (tmp_path / "exp" / "runs.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    config_cols = [
        "config.empty",
        "config.flag",
        "config.lr",
        "config.only_b",
        "config.opt.betas",
        "config.opt.eps",
        "config.opt.name",
        "config.seed",
        "config.text",
    ]
    assert rows[0] == [*RUN_COLUMNS, *config_cols]
    assert len(rows) == 3
    a = dict(zip(rows[0], rows[1]))
    b = dict(zip(rows[0], rows[2]))
    assert a["id"] == "a1" and a["name"] == 'Grüße, "quoted"\nrun'
    assert (a["group"], a["job_type"], a["state"]) == ("g", "train", "crashed")
    assert json.loads(a["tags"]) == ["x", "ü"]
    assert (a["created_at"], a["heartbeat_at"], a["history_line_count"]) == (
        "2024-01-01T00:00:00",
        "2024-01-02T00:00:00",
        "12",
    )
    assert a["config.lr"] == "0.1" and a["config.flag"] == "true" and a["config.seed"] == "3"
    assert json.loads(a["config.opt.betas"]) == [0.9, 0.99]
    assert a["config.opt.eps"] == "null" and a["config.opt.name"] == "adam"
    assert a["config.text"] == "plain" and a["config.empty"] == "{}" and a["config.only_b"] == ""
    assert b["group"] == "" and b["tags"] == "[]" and b["created_at"] == ""
    assert b["config.lr"] == "NaN" and b["config.only_b"] == "x" and b["config.opt.name"] == ""


def test_no_runs_writes_header_only(tmp_path: Path) -> None:
    write_experiment(result(fields={}, runs=[]), tmp_path, data_type="csv", overwrite=False)
    assert (tmp_path / "exp" / "runs.csv").read_text() == ",".join(RUN_COLUMNS) + "\n"


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "name",
    [
        "",
        "..",
        ".",
        "../x",
        "a/../../x",
        "a/..",
        "/etc/passwd",
        "a//b",
        "a/",
        "a/./b",
        "a\x00b",
        "..\\..\\x",
        "a\\b",
        "\ud800",
    ],
)
def test_unsafe_names_rejected(tmp_path: Path, name: str) -> None:
    with pytest.raises(OutputError):
        check_name_safe(name, what="field name")
    out = tmp_path / "out"
    arrays = FieldArrays(np.zeros((1, 1)), np.zeros((1, 1)))
    bad_field = result(fields={name: arrays}, runs=[run("r")])
    bad_experiment = result(name=name, fields={"x": arrays}, runs=[run("r")])
    for res in (bad_field, bad_experiment):
        for data_type in ("numpy", "csv", "npz", "parquet"):
            with pytest.raises(OutputError):
                write_experiment(res, out, data_type=data_type, overwrite=True)  # type: ignore[arg-type]
    assert sorted(tmp_path.rglob("*")) == []  # nothing written anywhere, not even out/


@pytest.mark.parametrize("name", ["loss", "eval/reward", "a b", "ü/ß", ".hidden", "x..y", "-1", "a:b"])
def test_safe_names_accepted(name: str) -> None:
    check_name_safe(name, what="field name")


@pytest.mark.parametrize(
    ("names", "data_type"),
    [
        (["a", "a.steps"], "numpy"),
        (["runs"], "csv"),
        (["a", "a.npy/b"], "numpy"),
        (["runs.csv/x"], "csv"),
        (["a", "a.steps"], "npz"),
        (["runs.id"], "npz"),
        (["x_axis"], "npz"),
        (["fields"], "npz"),
        (["runs.config.lr"], "npz"),
        (["runs.summary"], "npz"),
    ],  # the steps of "runs.summary": runs.summary.steps
)
def test_colliding_fields_rejected(tmp_path: Path, names: list[str], data_type: str) -> None:
    arrays = FieldArrays(np.zeros((1, 1)), np.zeros((1, 1)))
    res = result(fields={n: arrays for n in names}, runs=[run("r")])
    with pytest.raises(OutputError, match="rename a field"):
        write_experiment(res, tmp_path, data_type=data_type, overwrite=False)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_too_long_field_name_rejected_before_writing(tmp_path: Path) -> None:
    arrays = FieldArrays(np.zeros((1, 1)), np.zeros((1, 1)))
    res = result(fields={"x" * 250: arrays}, runs=[run("r")])
    with pytest.raises(OutputError, match="longer"):
        write_experiment(res, tmp_path, data_type="numpy", overwrite=False)
    assert list(tmp_path.iterdir()) == []


def test_bad_arrays_rejected(tmp_path: Path) -> None:
    wrong_rows = FieldArrays(np.zeros((3, 1)), np.zeros((3, 1)))
    with pytest.raises(ValueError):
        write_experiment(result(fields={"x": wrong_rows}), tmp_path, data_type="numpy", overwrite=False)
    wrong_dtype = FieldArrays(np.zeros((2, 1), dtype=np.float32), np.zeros((2, 1)))
    with pytest.raises(ValueError):
        write_experiment(result(fields={"x": wrong_dtype}), tmp_path, data_type="numpy", overwrite=False)
    with pytest.raises(ValueError):
        planned_files(result(), "hdf5")  # an unknown format
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- overwrite and atomicity


def test_exists_error_leaves_files_untouched(tmp_path: Path) -> None:
    write_experiment(result(), tmp_path, data_type="numpy", overwrite=False)
    (tmp_path / "exp" / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    with pytest.raises(OutputExistsError) as info:
        write_experiment(result(), tmp_path, data_type="csv", overwrite=False)
    assert tmp_path / "exp" / "notes.txt" not in info.value.paths  # an overwrite keeps it
    assert len(info.value.paths) == 5
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]


def test_empty_experiment_folder_is_not_existing_output(tmp_path: Path) -> None:
    (tmp_path / "exp" / "sub").mkdir(parents=True)
    assert existing_outputs(tmp_path, "exp") == []
    write_experiment(result(), tmp_path, data_type="numpy", overwrite=False)
    assert not (tmp_path / "exp" / "sub").exists()


def test_overwrite_replaces_what_the_last_export_wrote_and_keeps_the_rest(tmp_path: Path) -> None:
    write_experiment(result(), tmp_path, data_type="numpy", overwrite=False)
    (tmp_path / "exp" / "notes.txt").write_text("mine")
    new = result(fields={"acc": result().fields["acc"]})
    written = write_experiment(new, tmp_path, data_type="csv", overwrite=True)
    files = sorted(p for p in (tmp_path / "exp").rglob("*") if p.is_file())
    exp = tmp_path / "exp"
    assert files == sorted([*written, exp / "notes.txt", exp / writers.MANIFEST_FILE])
    assert (exp / "notes.txt").read_text() == "mine"
    assert not (exp / "train").exists()  # the old export's field is gone with its folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]  # no staging or old folders


def test_delete_foreign_files_replaces_whole_folder(tmp_path: Path) -> None:
    write_experiment(result(), tmp_path, data_type="numpy", overwrite=False)
    (tmp_path / "exp" / "notes.txt").write_text("mine")
    new = result(fields={"acc": result().fields["acc"]})
    written = write_experiment(new, tmp_path, data_type="csv", overwrite=True, delete_foreign_files=True)
    files = sorted(p for p in (tmp_path / "exp").rglob("*") if p.is_file())
    assert files == sorted([*written, tmp_path / "exp" / writers.MANIFEST_FILE])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]


def test_missing_output_path_is_created(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    assert existing_outputs(out, "exp") == []
    write_experiment(result(), out, data_type="numpy", overwrite=False)
    assert (out / "exp" / "runs.csv").is_file()


def test_symlinked_output_path_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    write_experiment(result(), tmp_path / "link", data_type="numpy", overwrite=False)
    assert (real / "exp" / "acc.npy").is_file()


def test_symlinked_experiment_folder_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    out = tmp_path / "out"
    out.mkdir()
    (out / "exp").symlink_to(elsewhere)
    with pytest.raises(OutputExistsError):
        write_experiment(result(), out, data_type="numpy", overwrite=False)
    with pytest.raises(OutputError, match="symbolic link"):
        write_experiment(result(), out, data_type="numpy", overwrite=True)
    assert (elsewhere / "keep.txt").read_text() == "keep"
    assert sorted(p.name for p in out.iterdir()) == ["exp"]


def _fail_on_second_call(real):  # type: ignore[no-untyped-def]
    calls = {"n": 0}

    def fake(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    return fake


@pytest.mark.parametrize("data_type", ["numpy", "csv", "npz", "parquet"])
def test_failure_mid_write_keeps_previous_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_type: str
) -> None:
    write_experiment(result(), tmp_path, data_type="numpy", overwrite=False)
    before = snapshot(tmp_path)
    if data_type == "numpy":
        monkeypatch.setattr(np, "save", _fail_on_second_call(np.save))
    elif data_type == "csv":
        monkeypatch.setattr(csv_format, "_format_values", _fail_on_second_call(csv_format._format_values))
    elif data_type == "npz":  # the second array of data.npz, after runs.csv and part of the zip
        monkeypatch.setattr(np.lib.format, "write_array", _fail_on_second_call(np.lib.format.write_array))
    else:  # data.parquet, after runs.csv and its first bytes

        def half_written(table, where, **kwargs):  # type: ignore[no-untyped-def]
            where.write(b"PAR1")
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(pq, "write_table", half_written)
    with pytest.raises(OutputError, match="No space left"):
        write_experiment(result(), tmp_path, data_type=data_type, overwrite=True)  # type: ignore[arg-type]
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]


def fail_the_swap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make renaming a staged folder into place fail, as a full or broken disk would."""
    real_rename = os.rename

    def rename(src, dst):  # type: ignore[no-untyped-def]
        if ".tmp-" in os.fspath(src):
            raise OSError(5, "Input/output error")
        return real_rename(src, dst)

    monkeypatch.setattr(writers.os, "rename", rename)


def test_failure_during_swap_keeps_previous_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_experiment(result(), tmp_path, data_type="numpy", overwrite=False)
    before = snapshot(tmp_path)
    fail_the_swap(monkeypatch)
    with pytest.raises(OutputError, match="Input/output"):
        write_experiment(result(fields={}), tmp_path, data_type="csv", overwrite=True)
    monkeypatch.undo()
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]


def test_keyboard_interrupt_cleans_staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(formats_base, "_write_runs_csv", boom)
    with pytest.raises(KeyboardInterrupt):
        write_experiment(result(), tmp_path, data_type="numpy", overwrite=False)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- recovery


def test_recover_interrupted_swap_restores_previous_export(tmp_path: Path) -> None:
    write_experiment(result(), tmp_path, data_type="numpy", overwrite=False)
    before = snapshot(tmp_path / "exp")
    # A crash between the two renames: the old folder is aside, the new one still staged.
    os.rename(tmp_path / "exp", tmp_path / ".exp.old-0123456789abcdef")
    staged = tmp_path / f".exp.tmp-{os.getpid()}-fedcba9876543210"
    staged.mkdir()
    (staged / "runs.csv").write_text("half")
    files = existing_outputs(tmp_path, "exp")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]
    assert snapshot(tmp_path / "exp") == before
    assert files == sorted(tmp_path / "exp" / name for name in before if name != writers.MANIFEST_FILE)
    with pytest.raises(OutputExistsError):
        write_experiment(result(), tmp_path, data_type="numpy", overwrite=False)


def test_recover_finished_swap_removes_old_copy(tmp_path: Path) -> None:
    write_experiment(result(), tmp_path, data_type="numpy", overwrite=False)
    old = tmp_path / ".exp.old-0123456789abcdef"
    old.mkdir()
    (old / "runs.csv").write_text("older")
    write_experiment(result(), tmp_path, data_type="csv", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]


def test_stale_staging_of_dead_pid_removed_live_one_kept(tmp_path: Path) -> None:
    dead_pid = 2**22 + 12345  # above Linux's pid_max
    stale = tmp_path / f".exp.tmp-{dead_pid}-0123456789abcdef"
    live = tmp_path / f".exp.tmp-{os.getppid()}-0123456789abcdef"
    unrelated = tmp_path / ".exp.tmp-notours"
    other_experiment = tmp_path / f".exp2.tmp-{dead_pid}-0123456789abcdef"
    for folder in (stale, live, unrelated, other_experiment):
        folder.mkdir()
    write_experiment(result(), tmp_path, data_type="numpy", overwrite=False)
    assert not stale.exists()
    assert live.exists() and unrelated.exists() and other_experiment.exists()


# --------------------------------------------------------------------------- atomic_write_bytes


def test_atomic_write_bytes(tmp_path: Path) -> None:
    target = tmp_path / "state" / "s.json"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["s.json"]


def test_atomic_write_bytes_failure_keeps_old(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "s.json"
    atomic_write_bytes(target, b"old")

    def fail(src, dst):  # type: ignore[no-untyped-def]
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(writers.os, "replace", fail)
    with pytest.raises(OutputError, match="Permission denied"):
        atomic_write_bytes(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


def test_nested_experiment_name(tmp_path: Path) -> None:
    written = write_experiment(result(name="group/exp"), tmp_path, data_type="numpy", overwrite=False)
    assert written[0] == tmp_path / "group" / "exp" / "runs.csv"
    assert sorted(p.name for p in (tmp_path / "group").iterdir()) == ["exp"]
    write_experiment(result(name="group/exp"), tmp_path, data_type="csv", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "group").iterdir()) == ["exp"]


def test_symlink_inside_output_path_cannot_lead_outside(tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "group").symlink_to(elsewhere)
    with pytest.raises(OutputError, match="outside"):
        existing_outputs(out, "group/exp")
    with pytest.raises(OutputError, match="outside"):
        write_experiment(result(name="group/exp"), out, data_type="numpy", overwrite=True)
    assert list(elsewhere.iterdir()) == []


def test_existing_outputs_checks_the_name(tmp_path: Path) -> None:
    with pytest.raises(OutputError):
        existing_outputs(tmp_path, "../x")


def test_staging_of_this_process_still_in_use_is_kept(tmp_path: Path) -> None:
    name = f".exp.tmp-{os.getpid()}-0123456789abcdef"
    (tmp_path / name).mkdir()
    writers._active_staging.add(name)
    try:
        write_experiment(result(), tmp_path, data_type="numpy", overwrite=False)
        assert (tmp_path / name).is_dir()
    finally:
        writers._active_staging.discard(name)


# --------------------------------------------------------------------------- files we did not write


def manifest(folder: Path) -> dict[str, object]:
    doc: dict[str, object] = json.loads((folder / writers.MANIFEST_FILE).read_text())
    return doc


def test_manifest_lists_what_the_export_wrote(tmp_path: Path) -> None:
    written = write_experiment(result(), tmp_path / "a", data_type="numpy", overwrite=False)
    exp = tmp_path / "a" / "exp"
    doc = manifest(exp)
    assert doc["data_type"] == "numpy"
    assert doc["files"] == [{"path": p.relative_to(exp).as_posix(), "size": p.stat().st_size} for p in written]
    # Same data, same bytes: no time or process id in it, and the data files do not change.
    write_experiment(result(), tmp_path / "b", data_type="numpy", overwrite=False)
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")


def test_files_of_theirs_survive_an_overwrite(tmp_path: Path) -> None:
    write_experiment(result(), tmp_path, data_type="numpy", overwrite=False)
    exp = tmp_path / "exp"
    (exp / "plots").mkdir()
    (exp / "plots" / "fig1.png").write_bytes(b"\x89PNG")
    (exp / "train" / "notes.txt").write_text("beside a field's file")  # in a folder of ours
    (exp / "empty").mkdir()
    (exp / "link").symlink_to("plots/fig1.png")
    os.chmod(exp / "plots" / "fig1.png", 0o600)
    inode = (exp / "plots" / "fig1.png").stat().st_ino
    write_experiment(result(), tmp_path, data_type="csv", overwrite=True)
    assert (exp / "plots" / "fig1.png").read_bytes() == b"\x89PNG"
    assert (exp / "plots" / "fig1.png").stat().st_ino == inode  # hard-linked, not copied
    assert (exp / "plots" / "fig1.png").stat().st_mode & 0o777 == 0o600
    assert (exp / "train" / "notes.txt").read_text() == "beside a field's file"
    assert (exp / "empty").is_dir()
    assert os.readlink(exp / "link") == "plots/fig1.png"
    assert not (exp / "acc.npy").exists() and (exp / "acc.csv").is_file()
    assert [f["path"] for f in manifest(exp)["files"]] == [  # type: ignore[attr-defined]
        p.as_posix() for p in planned_files(result(), "csv")
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]


def test_folder_we_did_not_write_is_refused(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("print('hi')")
    before = snapshot(tmp_path)
    with pytest.raises(ForeignFilesError, match=r"src/main\.py.*--delete-foreign-files") as info:
        write_experiment(result(name="src"), tmp_path, data_type="numpy", overwrite=True)
    assert info.value.paths == [tmp_path / "src" / "main.py"]
    with pytest.raises(ForeignFilesError):
        writers.check_overwrite(tmp_path, "src", data_type="numpy", fields=None)
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    write_experiment(result(name="src"), tmp_path, data_type="numpy", overwrite=True, delete_foreign_files=True)
    assert not (tmp_path / "src" / "main.py").exists()
    assert (tmp_path / "src" / "runs.csv").is_file()


def test_file_in_place_of_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "exp").write_text("a file")
    with pytest.raises(ForeignFilesError):
        write_experiment(result(), tmp_path, data_type="numpy", overwrite=True)
    assert (tmp_path / "exp").read_text() == "a file"


def test_many_foreign_files_are_named_up_to_five(tmp_path: Path) -> None:
    (tmp_path / "exp").mkdir()
    for i in range(8):
        (tmp_path / "exp" / f"f{i}.txt").write_text("x")
    with pytest.raises(ForeignFilesError) as info:
        writers.check_overwrite(tmp_path, "exp", data_type="numpy", fields=["acc"])
    message = str(info.value)
    assert "8 file(s)" in message and "f4.txt" in message and "f5.txt" not in message
    assert "and 3 more" in message


def _legacy(tmp_path: Path, data_type: str = "numpy") -> Path:
    """A folder as versions before the manifest wrote it."""
    write_experiment(result(), tmp_path, data_type=data_type, overwrite=False)
    (tmp_path / "exp" / writers.MANIFEST_FILE).unlink()
    return tmp_path / "exp"


def test_folder_of_an_export_before_manifests_is_ours(tmp_path: Path) -> None:
    exp = _legacy(tmp_path, "csv")
    (exp / "failed_runs.csv").write_text("id,error\nr3,boom\n")
    (exp / "notes.txt").write_text("mine")
    (exp / "analysis.csv").write_text("a lone csv, no steps file: not a field of ours")
    writers.check_overwrite(tmp_path, "exp", data_type="numpy", fields=["acc"])
    write_experiment(result(fields={"acc": result().fields["acc"]}), tmp_path, data_type="numpy", overwrite=True)
    left = sorted(p.relative_to(exp).as_posix() for p in exp.rglob("*") if p.is_file())
    assert left == sorted([writers.MANIFEST_FILE, "runs.csv", "acc.npy", "acc.steps.npy", "notes.txt", "analysis.csv"])


def test_runs_csv_not_ours_is_not_a_legacy_export(tmp_path: Path) -> None:
    exp = _legacy(tmp_path)
    (exp / "runs.csv").write_text("run,score\n1,2\n")
    with pytest.raises(ForeignFilesError, match="not written by wandb2numpy"):
        write_experiment(result(), tmp_path, data_type="numpy", overwrite=True)


def test_unreadable_manifest_is_not_trusted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_experiment(result(), tmp_path, data_type="numpy", overwrite=False)
    exp = tmp_path / "exp"
    (exp / writers.MANIFEST_FILE).write_text("{not json")
    (exp / "runs.csv").write_text("run,score\n")
    with pytest.raises(ForeignFilesError):
        write_experiment(result(), tmp_path, data_type="numpy", overwrite=True)
    assert "ignoring" in caplog.text


def test_file_of_theirs_where_a_new_field_goes_is_refused(tmp_path: Path) -> None:
    write_experiment(result(fields={}), tmp_path, data_type="numpy", overwrite=False)
    exp = tmp_path / "exp"
    (exp / "acc.npy").write_bytes(b"mine")
    (exp / "train").write_text("a file where a field needs a folder")
    before = snapshot(tmp_path)
    with pytest.raises(ForeignFilesError, match="where this export writes") as info:
        writers.check_overwrite(tmp_path, "exp", data_type="numpy", fields=["acc", "train/loss"])
    assert info.value.paths == [exp / "acc.npy", exp / "train"]
    writers.check_overwrite(tmp_path, "exp", data_type="numpy", fields=None)  # names not known yet
    with pytest.raises(ForeignFilesError, match="where this export writes"):
        write_experiment(result(), tmp_path, data_type="numpy", overwrite=True)
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]


def test_failed_swap_keeps_the_previous_folder_with_their_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_experiment(result(), tmp_path, data_type="numpy", overwrite=False)
    (tmp_path / "exp" / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    fail_the_swap(monkeypatch)
    with pytest.raises(OutputError, match="Input/output"):
        write_experiment(result(), tmp_path, data_type="csv", overwrite=True)
    monkeypatch.undo()
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]


def test_no_hard_links_falls_back_to_a_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_experiment(result(), tmp_path, data_type="numpy", overwrite=False)
    (tmp_path / "exp" / "notes.txt").write_text("mine")

    def no_links(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(writers.os, "link", no_links)
    write_experiment(result(), tmp_path, data_type="numpy", overwrite=True)
    assert (tmp_path / "exp" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("data_type", ["numpy", "csv", "npz", "parquet"])
def test_a_full_disk_reads_the_same_in_every_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_type: str
) -> None:
    """Every data file goes to /dev/full, which answers each write with ENOSPC: numpy's short-write
    message ("N requested and M written") must read as the others do."""
    import builtins

    from wandb2numpy.output import formats
    from wandb2numpy.output.folder import DISK_FULL

    module = type(formats.get(data_type)).__module__
    real_open = builtins.open

    def to_dev_full(path, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if "x" in mode:
            return real_open("/dev/full", mode.replace("x", "w"), *args, **kwargs)
        return real_open(path, mode, *args, **kwargs)

    for name in {module, "wandb2numpy.output.formats._base"}:
        monkeypatch.setattr(sys.modules[name], "open", to_dev_full, raising=False)
    with pytest.raises(OutputError) as caught:
        write_experiment(result(), tmp_path, data_type=data_type, overwrite=False)  # type: ignore[arg-type]
    assert str(caught.value).endswith(DISK_FULL), caught.value
    assert list(tmp_path.iterdir()) == []
