"""An export is all or nothing across its experiments (issue 19, item 4): every experiment is
staged before any is swapped in, so when one fails at write time, exit 1 leaves the others'
folders as they were, the same inodes included."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import cli

from wandb2numpy.output import folder as writers
from wandb2numpy.testing import FAST_RETRIES, LocalServer, synthetic_project

FAST = dataclasses.replace(FAST_RETRIES, attempts=4)
DRIVES_CLI = True


def project_data() -> dict[str, Any]:
    return synthetic_project(runs=3, steps=20, metrics=2)


def _config(tmp_path: Path, losses_fields: Any) -> Path:
    data = {
        "DEFAULT": {"entity": "demo", "project": "synthetic", "output_path": str(tmp_path / "out")},
        "curves": {"fields": ["train/return", "train/loss"]},
        "losses": {"fields": losses_fields},
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(data))
    return path


def _inodes(root: Path) -> dict[str, tuple[int, int]]:
    """Every entry under `root` (the root too): inode and modification time in ns."""
    out = {".": (root.stat().st_ino, root.stat().st_mtime_ns)}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        out[str(path.relative_to(root))] = (st.st_ino, st.st_mtime_ns)
    return out


def test_a_failure_at_write_time_leaves_every_experiment_untouched(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert cli(srv, str(_config(tmp_path, ["train/loss"]))) == 0
    # A file of the user's where `fields: all` will write one of its own: found only once the
    # runs are listed, so it fails at write time, after `curves` was written in full.
    (out / "losses" / "train" / "return.npy").write_bytes(b"mine")
    before = {name: _inodes(out / name) for name in ("curves", "losses")}
    summary = tmp_path / "s.json"
    code = cli(srv, str(_config(tmp_path, "all")), "-o", "--json-summary", str(summary))
    err = capsys.readouterr().err
    assert code == 1, err
    assert "did not write" in err
    assert {name: _inodes(out / name) for name in ("curves", "losses")} == before
    assert sorted(p.name for p in out.iterdir()) == ["curves", "losses"]  # no staging left
    doc = json.loads(summary.read_text())
    assert doc["exit_code"] == 1 and doc.get("experiments", {}) in ({}, [])


def test_a_failed_swap_puts_back_the_experiments_already_swapped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The renames themselves: the second experiment's rename fails, the first goes back."""
    from conftest import make_run

    from wandb2numpy.assemble import ExperimentResult

    def result(name: str) -> ExperimentResult:
        return ExperimentResult(name=name, runs=[make_run("r1")], fields={}, failed_runs={}, skipped_fields={})

    for name in ("a", "b"):
        writers.write_experiment(result(name), tmp_path, data_type="numpy", overwrite=False)
    before = {name: _inodes(tmp_path / name) for name in ("a", "b")}
    real_rename = os.rename

    def rename(src: Any, dst: Any) -> None:
        if ".b.tmp-" in os.fspath(src):
            raise OSError(5, "Input/output error")
        real_rename(src, dst)

    monkeypatch.setattr(writers.os, "rename", rename)
    staged = [writers.stage_experiment(result(n), tmp_path, data_type="numpy", overwrite=True) for n in ("a", "b")]
    with pytest.raises(writers.OutputError, match="every experiment folder is as it was"):
        writers.swap_in_all(staged)
    monkeypatch.undo()
    assert {name: _inodes(tmp_path / name) for name in ("a", "b")} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
