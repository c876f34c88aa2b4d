"""Everything the user names is checked before the first request, and each mistake is one line
and exit 2 (issue 19, item 1): the log and summary files, output paths too long for any file
system, experiment names that collide with the tool's own files. A summary that cannot be written
after a good export is reported without changing the exit code, and a closed stdout (`| true`)
costs neither the summary file nor the exit code."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import cli, files_under
from conftest import write_cli_config as write_config

from wandb2numpy.cli import main
from wandb2numpy.config import parse_config
from wandb2numpy.errors import ConfigError
from wandb2numpy.testing import FAST_RETRIES, LocalServer, synthetic_project

FAST = dataclasses.replace(FAST_RETRIES, attempts=4)
DRIVES_CLI = True


def project_data() -> dict[str, Any]:
    return synthetic_project(runs=3, steps=20, metrics=2)


def one_line_exit_2(code: int, err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("wandb2numpy: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    "option, make, expected",
    [
        ("--log-file", lambda t: t / "nodir" / "x.log", "does not exist (it is not created)"),
        ("--log-file", lambda t: t, "is a folder"),
        ("--json-summary", lambda t: t / "nodir" / "s.json", "does not exist (it is not created)"),
        ("--json-summary", lambda t: t, "is a folder"),
        ("--json-summary", lambda t: t / ("x" * 300 + ".json"), "at most 255"),
        ("--log-file", lambda t: t / "config.yaml" / "x.log", "is not a folder"),
    ],
)
def test_bad_log_or_summary_path_is_one_line_before_any_request(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, make: Any, expected: str
) -> None:
    cfg = write_config(tmp_path)
    target = make(tmp_path)
    line = one_line_exit_2(cli(srv, str(cfg), option, str(target)), capsys.readouterr().err)
    assert option in line and expected in line
    assert srv.stats()["requests"] == 0
    assert not (tmp_path / "nodir").exists()
    assert files_under(tmp_path / "out") == {}


@pytest.mark.parametrize("where", ["-O", "config"])
def test_output_path_part_over_255_bytes_is_one_line(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    long = tmp_path / ("é" * 130)  # 260 bytes, 130 characters
    if where == "-O":
        args = [str(write_config(tmp_path)), "-O", str(long)]
    else:
        args = [str(write_config(tmp_path, out=long))]
    line = one_line_exit_2(cli(srv, *args), capsys.readouterr().err)
    assert "at most 255" in line
    if where == "config":
        assert str(tmp_path / "config.yaml") in line  # the file is named
    assert srv.stats()["requests"] == 0


@pytest.mark.parametrize(
    "name",
    [
        ".wandb2numpy.lock",
        ".wandb2numpy",
        ".wandb2numpy-manifest.json",
        ".WANDB2NUMPY.LOCK",
        ".curves.tmp-123-0123456789abcdef",
        ".curves.old-0123456789abcdef",
    ],
)
def test_names_of_the_tools_own_files_are_refused_at_config_load(name: str) -> None:
    with pytest.raises(ConfigError, match="choose another name"):
        parse_config({name: {"entity": "e", "project": "p", "fields": ["a"], "output_path": "out"}})


def test_lock_named_experiment_is_refused_through_the_cli(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        json.dumps(
            {
                ".wandb2numpy.lock": {
                    "entity": "demo",
                    "project": "synthetic",
                    "fields": ["train/loss"],
                    "output_path": str(tmp_path / "o"),
                }
            }
        )
    )
    line = one_line_exit_2(cli(srv, str(cfg), "-o", "--delete-foreign-files"), capsys.readouterr().err)
    assert ".wandb2numpy.lock" in line
    assert not (tmp_path / "o").exists()


def test_summary_that_cannot_be_written_after_a_good_export_keeps_exit_0(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write_config(tmp_path)
    summary = tmp_path / "s.json"
    from wandb2numpy.cli import report

    real_done = report.Summary.done

    def done_then_break(self: report.Summary, *a: Any, **kw: Any) -> None:
        real_done(self, *a, **kw)
        summary.mkdir()  # the path turns into a folder while the export runs

    monkeypatch.setattr(report.Summary, "done", done_then_break)
    assert cli(srv, str(cfg), "--json-summary", str(summary)) == 0
    err = capsys.readouterr().err
    assert "could not write the JSON summary" in err and "Traceback" not in err
    assert (tmp_path / "out" / "curves" / "train" / "return.npy").exists()


def test_summary_parent_is_never_created(srv: LocalServer, tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    assert cli(srv, str(cfg), "--json-summary", str(tmp_path / "x" / "y" / "s.json")) == 2
    assert not (tmp_path / "x").exists()


def test_closed_stdout_keeps_the_summary_file_and_the_exit_code(srv: LocalServer, tmp_path: Path) -> None:
    """`wandb2numpy cfg.yaml -o --json-summary s.json | true`: the reader is gone before the
    summary is printed."""
    cfg = write_config(tmp_path)
    summary = tmp_path / "s.json"
    read_end, write_end = os.pipe()
    os.close(read_end)  # `true` exits at once
    env = dict(os.environ, WANDB_API_KEY=srv.api_key)
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "wandb2numpy",
                str(cfg),
                "-o",
                "--json-summary",
                str(summary),
                "--base-url",
                srv.base_url,
            ],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert json.loads(summary.read_text())["exit_code"] == 0
    assert (tmp_path / "out" / "curves" / "train" / "return.npy").exists()


def test_dry_run_ignores_the_summary_path(srv: LocalServer, tmp_path: Path) -> None:
    """--dry-run writes no summary, so a summary path it would not use is not its business."""
    cfg = write_config(tmp_path)
    assert (
        main([str(cfg), "--dry-run", "--json-summary", str(tmp_path / "no" / "s.json"), "--base-url", srv.base_url])
        == 0
    )


# ------------------------------------------------------------------- item 5: messages about files


def test_existing_files_message_counts_only_what_an_export_wrote(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    assert cli(srv, str(cfg), "-q") == 0
    out = tmp_path / "out"
    (out / "curves" / "notes.txt").write_text("mine")
    (out / "curves" / "plots").mkdir()
    (out / "curves" / "plots" / "fig1.png").write_bytes(b"png")
    capsys.readouterr()
    assert cli(srv, str(cfg)) == 1
    err = capsys.readouterr().err
    ours = [p for p in files_under(out) if "notes" not in p and "plots" not in p and "manifest" not in p]
    assert f"{len(ours)} file(s) of an earlier export already exist" in err
    assert "notes.txt" not in err and "fig1.png" not in err
    assert "files wandb2numpy did not write are kept" in err


def test_a_folder_no_export_wrote_is_not_said_to_be_deleted_by_o(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    (tmp_path / "out" / "curves").mkdir(parents=True)
    (tmp_path / "out" / "curves" / "main.py").write_text("code")
    for extra in ([], ["-o"]):
        assert cli(srv, str(cfg), *extra) == 1
        err = capsys.readouterr().err
        assert "would delete" not in err
        assert "-o/--overwrite never replaces such a folder" in err and "--delete-foreign-files" in err
    assert (tmp_path / "out" / "curves" / "main.py").read_text() == "code"


# ------------------------------------------------------------------------- item 6: small things


def test_no_arguments_show_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert all(command in err for command in ("export", "fields", "demo", "plot"))
    assert "required: config" not in err


def test_a_project_read_as_a_field_is_said_so(srv: LocalServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(srv, "export", "--fields", "train/return", "acme/rl-paper") == 2
    err = capsys.readouterr().err
    assert "no project given" in err and "'acme/rl-paper' too: put ENTITY/PROJECT before --fields" in err


def test_the_log_file_has_a_start_line_and_the_summary(srv: LocalServer, tmp_path: Path) -> None:
    from wandb2numpy import __version__

    cfg = write_config(tmp_path)
    log_file = tmp_path / "run.log"
    assert cli(srv, str(cfg), "-q", "--log-file", str(log_file)) == 0
    text = log_file.read_text()
    assert f"wandb2numpy {__version__}: export of {cfg}" in text
    assert "experiments: curves -> " in text and "losses -> " in text
    assert "done: 6 run(s) exported" in text


def test_help_names_every_format(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["export", "--help"], ["demo", "--help"], ["fields", "--help"], ["plot", "--help"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 0, argv  # a '%' in a help text once broke `plot --help`
    out = capsys.readouterr().out
    assert "NumPy arrays or CSV" not in out and "npz or parquet" in out
    assert "requests in flight at once" in out  # demo --concurrency has a help line


def test_fields_table_keeps_long_and_multiline_keys_on_their_lines() -> None:
    from wandb2numpy.cli.look import _table

    lines = _table(
        ("key", "type", "runs"),
        [("a", "number", "1"), ("x" * 300, "number", "2"), ("two\nlines", "number", "3")],
        right=(2,),
    )
    assert len(lines) == 5 and all("\n" not in line for line in lines)
    assert lines[2] == "  " + "x" * 300  # on its own line, the columns keep their width
    assert max(len(line) for i, line in enumerate(lines) if i != 2) < 40
    assert "two\\nlines" in lines[4]


def test_the_overall_bar_has_no_space_before_its_comma(capsys: pytest.CaptureFixture[str]) -> None:
    from wandb2numpy.cli.report import TqdmProgress

    bars = TqdmProgress()
    bars.begin(["a"])
    bars.close()
    err = capsys.readouterr().err
    assert "overall: 0 run(s), 0 rows" in err and "run(s) ," not in err


@pytest.mark.server
def test_demo_says_why_it_exits_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from wandb2numpy.cli.demo import run_demo

    monkeypatch.chdir(tmp_path)
    assert run_demo(output="d", runs=2, steps=3, concurrency=2) == 4
    err = capsys.readouterr().err
    assert "wandb2numpy demo: error: demo-lr-full: no run matched" in err


@pytest.mark.server
def test_demo_into_a_foreign_folder_names_its_own_remedy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from wandb2numpy.cli.demo import run_demo

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine" / "demo-csv").mkdir(parents=True)
    (tmp_path / "mine" / "demo-csv" / "notes.txt").write_text("keep")
    assert run_demo(output="mine", runs=2, steps=3, concurrency=2) == 1
    err = capsys.readouterr().err
    assert "--delete-foreign-files" not in err and "-o/--overwrite" not in err
    assert "give another --output folder" in err


@pytest.mark.server
def test_demo_output_mistakes_are_one_line_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.txt").write_text("a file")
    for output in ("", "x" * 300, "a.txt", "a.txt/sub"):
        assert main(["demo", "--runs", "2", "--steps", "3", "--output", output]) == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines[-1].startswith("wandb2numpy demo: error: --output: "), err
        assert "Traceback" not in err and "unexpected" not in err
