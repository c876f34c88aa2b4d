"""Grid span end to end, against the local server: one run that stops at a fifth of the others'
range is named in a warning, and ``span: all`` keeps every run's whole range, NaN where the
short run has no data, in every format; the summary says which span and range were used."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import cli

import wandb2numpy
from wandb2numpy.output import formats
from wandb2numpy.testing import LocalServer, synthetic_project

DRIVES_CLI = True
STEPS = 50
SHORT = 10  # rows the short run logged: steps 0..9, a fifth of the others' 0..49


def project_data() -> dict[str, Any]:
    data = synthetic_project(runs=4, steps=STEPS, metrics=1)
    short = data["projects"][0]["runs"][3]
    short["history"] = short["history"][:SHORT]
    short["name"] = "crashed-dqn"
    return data


def short_id() -> str:
    return str(project_data()["projects"][0]["runs"][3]["id"])


def write_config(tmp_path: Path) -> Path:
    experiments: dict[str, Any] = {
        f"all-{name}": {"output_data_type": name, "grid": {"points": STEPS, "span": "all"}} for name in formats.names()
    }
    experiments["common"] = {"grid": {"points": STEPS}}
    data = {
        "DEFAULT": {
            "entity": "demo",
            "project": "synthetic",
            "output_path": str(tmp_path / "out"),
            "fields": ["train/return"],
        },
        **experiments,
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.server
def test_a_short_run_is_named_and_span_all_keeps_the_whole_range(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary_file = tmp_path / "summary.json"
    assert cli(srv, str(write_config(tmp_path)), "--json-summary", str(summary_file)) == 0
    out, err = capsys.readouterr()
    label = f"crashed-dqn [{short_id()}] (last x {SHORT - 1})"
    # span common: the warning names the short run, its last x and how to get the whole range
    assert f"common: the grid covers only _step 0 to {SHORT - 1}, the range every run covers" in err
    assert label in err and "grid: {span: all}" in err and f"(0 to {STEPS - 1})" in err
    assert f"all-numpy: the grid covers _step 0 to {STEPS - 1}, but 1 run(s)" in err
    assert f"  grid: {STEPS} x value(s) of _step from 0 to {SHORT - 1} (span common: the range every run covers)" in out
    assert f"  grid: {STEPS} x value(s) of _step from 0 to {STEPS - 1} (span all:" in out
    assert f"  grid: short runs: {label}" in out
    summary = json.loads(summary_file.read_text())["experiments"]
    assert summary["common"]["grid"] == {
        "span": "common",
        "from": 0.0,
        "to": SHORT - 1.0,
        "short_runs": [{"run": f"crashed-dqn [{short_id()}]", "ends": SHORT - 1.0}],
    }
    assert summary["all-csv"]["grid"]["span"] == "all" and summary["all-csv"]["grid"]["to"] == STEPS - 1.0

    common = wandb2numpy.load(tmp_path / "out" / "common")
    assert (
        common.x is not None and common.x[-1] == SHORT - 1 and not np.isnan(common.fields["train/return"].values).any()
    )
    x = np.arange(STEPS, dtype=np.float64)
    reference = None
    for name in formats.names():
        exp = wandb2numpy.load(tmp_path / "out" / f"all-{name}")
        assert exp.x is not None and np.array_equal(exp.x, x), name
        values = exp.fields["train/return"].values
        row = exp.ids.index(short_id())
        assert not np.isnan(values[row, :SHORT]).any() and np.isnan(values[row, SHORT:]).all(), name
        others = np.delete(values, row, axis=0)
        assert not np.isnan(others).any(), name
        if reference is None:
            reference = values
        assert np.array_equal(values, reference, equal_nan=True), name  # the same numbers in every format
