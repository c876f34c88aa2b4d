"""The command line: exit codes, messages, files left alone or replaced, the lock, monitor output."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import cli, files_under
from conftest import write_cli_config as write_config

from wandb2numpy import RetryPolicy
from wandb2numpy.cli import build_parser, main
from wandb2numpy.output.folder import MANIFEST_FILE
from wandb2numpy.output.lock import LOCK_NAME, output_lock
from wandb2numpy.testing import FAST_RETRIES, LocalServer, synthetic_project

REPO_ROOT = Path(__file__).resolve().parent.parent
CLI_DOC = REPO_ROOT / "docs" / "cli.md"  # the options table (the README links to it)
FAST = dataclasses.replace(FAST_RETRIES, attempts=4)
N_RUNS = 4
RUN_IDS = [r["id"] for r in synthetic_project(runs=N_RUNS, steps=40, metrics=2)["projects"][0]["runs"]]


DRIVES_CLI = True


def project_data() -> dict[str, Any]:
    return synthetic_project(runs=N_RUNS, steps=40, metrics=2)


# ------------------------------------------------------------------------------- exit codes


def test_exit_0_writes_every_experiment(srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    assert cli(srv, str(cfg)) == 0
    out = capsys.readouterr()
    assert "curves: 4 run(s) exported" in out.out
    assert "shape (4, 40)" in out.out
    arr = np.load(tmp_path / "out" / "curves" / "train" / "return.npy")
    assert arr.shape == (N_RUNS, 40)
    assert (tmp_path / "out" / "losses" / "train" / "loss.csv").exists()
    assert not (tmp_path / "out" / LOCK_NAME).exists()
    # not a terminal: no progress bars, no colour codes
    assert "\x1b[" not in out.err and "\r" not in out.err and "\x1b[" not in out.out


def test_exit_1_wrong_api_key(
    srv: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "local-" + "x" * 40)
    cfg = write_config(tmp_path)
    assert cli(srv, str(cfg)) == 1
    err = capsys.readouterr().err
    assert "API key" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_the_export_takes_over_the_connection_the_command_began(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With nothing in the way of a write (or none to make), the command makes the first `Api`
    while the export loads, and the export uses it instead of making its own: one `Viewer`."""
    cfg = write_config(tmp_path)
    assert cli(srv, str(cfg), "-q") == 0  # no output folder yet: connected early
    assert srv.stats()["ops"]["Viewer"] == 1
    for args in (["--dry-run"], ["-q", "-o"]):  # nothing written; an existing folder: checked first
        srv.reset_stats()
        assert cli(srv, str(cfg), *args) == 0
        assert srv.stats()["ops"]["Viewer"] == 1
    capsys.readouterr()


@pytest.mark.slow
def test_exit_1_server_unreachable(srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = write_config(tmp_path)
    assert main([str(cfg), "--base-url", f"http://127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err
    assert "wandb2numpy: error:" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_exit_2_bad_config_names_file_experiment_and_key(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, history_samples="lots")
    assert cli(srv, str(cfg)) == 2
    err = capsys.readouterr().err
    assert str(cfg) in err
    assert "experiment 'curves'" in err
    assert "key 'history_samples'" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert srv.stats()["requests"] == 0  # refused before any request


def test_exit_2_missing_config_file(srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(srv, str(tmp_path / "nope.yaml")) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_exit_2_unknown_experiment(srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    assert cli(srv, str(cfg), "-e", "curvse") == 2
    err = capsys.readouterr().err
    assert "curvse" in err and "curves" in err  # names the typo and what exists
    assert not (tmp_path / "out").exists()


def test_exit_2_bad_usage(srv: LocalServer, tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    for args in ([str(cfg), "--concurrency", "0"], [str(cfg), "--no-such-option"], []):
        with pytest.raises(SystemExit) as info:
            main(args)
        assert info.value.code == 2
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_exit_3_partial(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = RUN_IDS[1]
    srv.set_faults(fail_runs=bad)
    cfg = write_config(tmp_path)
    # two attempts show the failing run recorded after retries (each costs wandb-core's 1 s retry)
    import wandb2numpy.pipeline as pipeline

    monkeypatch.setattr(
        pipeline, "export", functools.partial(pipeline.export, policy=dataclasses.replace(FAST, attempts=2))
    )
    assert cli(srv, str(cfg), "-e", "curves") == 3
    out = capsys.readouterr().out
    assert f"failed run {bad}" in out
    folder = tmp_path / "out" / "curves"
    assert np.load(folder / "train" / "return.npy").shape == (N_RUNS - 1, 40)
    failed = (folder / "failed_runs.csv").read_text().splitlines()
    assert failed[0] == "id,error" and failed[1].startswith(bad + ",")
    assert not (tmp_path / "out" / "losses").exists()  # -e: the other experiment is not touched


# ------------------------------------------------------------------------------- existing output


def test_existing_output_needs_overwrite(srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    assert cli(srv, str(cfg), "-q") == 0
    out = tmp_path / "out"
    extra = out / "curves" / "notes.txt"
    extra.write_text("mine")
    (out / "curves" / "plots").mkdir()
    (out / "curves" / "plots" / "fig1.png").write_bytes(b"\x89PNG\r\n")
    before = files_under(out)
    stamps = {p: os.stat(out / p).st_mtime_ns for p in before}
    srv.reset_stats()

    assert cli(srv, str(cfg)) == 1
    err = capsys.readouterr().err
    assert "already exist" in err and "-o" in err
    assert files_under(out) == before
    assert {p: os.stat(out / p).st_mtime_ns for p in before} == stamps
    assert srv.stats()["requests"] == 0  # refused before fetching

    assert cli(srv, str(cfg), "-o", "-q") == 0
    after = files_under(out)
    assert after == before  # the same data again, and the files we did not write are kept
    theirs = {"curves/notes.txt", "curves/plots/fig1.png"}
    assert all(os.stat(out / p).st_mtime_ns != stamps[p] for p in after if p not in theirs)
    assert all(os.stat(out / p).st_mtime_ns == stamps[p] for p in theirs)


def test_second_overwrite_replaces_its_own_files(srv: LocalServer, tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    assert cli(srv, str(cfg), "-q", "-e", "curves") == 0
    folder = tmp_path / "out" / "curves"
    (folder / "notes.txt").write_text("mine")
    assert cli(srv, str(cfg), "-o", "-q", "-e", "curves") == 0
    cfg = write_config(tmp_path, fields=["train/loss"], output_data_type="csv")
    assert cli(srv, str(cfg), "-o", "-q", "-e", "curves") == 0
    left = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert left == [MANIFEST_FILE, "notes.txt", "runs.csv", "train/loss.csv", "train/loss.steps.csv"]


def test_overwrite_refuses_a_folder_it_did_not_write(
    srv: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`output_path: .` and an experiment called `src`: the project's own source folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("print('hello')\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        json.dumps({"src": {"entity": "demo", "project": "synthetic", "output_path": ".", "fields": ["train/loss"]}})
    )
    before = files_under(tmp_path)

    for args in (["-o"], ["--incremental"]):
        assert cli(srv, str(cfg), *args) == 1
        err = capsys.readouterr().err
        assert "src/main.py" in err and "not written by wandb2numpy" in err
        assert "--delete-foreign-files" in err and "Traceback" not in err
        assert srv.stats()["requests"] == 0  # refused before fetching
        assert files_under(tmp_path) == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "src"]

    assert cli(srv, str(cfg), "-o", "-q", "--delete-foreign-files") == 0  # asked for explicitly
    assert not (tmp_path / "src" / "main.py").exists()
    assert np.load(tmp_path / "src" / "train" / "loss.npy").shape == (N_RUNS, 40)


# ------------------------------------------------------------------------------- the lock


def test_second_export_into_a_locked_folder_exits_1_at_once(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    cfg = write_config(tmp_path)
    with output_lock(out):
        holder = json.loads((out / LOCK_NAME).read_text())
        assert cli(srv, str(cfg)) == 1
    err = capsys.readouterr().err
    assert f"pid {os.getpid()}" in err
    assert str(holder["started"]) in err
    assert srv.stats()["requests"] == 0
    assert files_under(out) == {}


def test_second_export_from_another_process_is_refused(srv: LocalServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    cfg = write_config(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom wandb2numpy.output.lock import output_lock\n"
            f"with output_lock({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        env = dict(os.environ, WANDB_API_KEY=srv.api_key)
        proc = subprocess.run(
            [sys.executable, "-m", "wandb2numpy.cli", str(cfg), "--base-url", srv.base_url],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 1
    assert f"pid {holder.pid}" in proc.stderr and "started" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_stale_lock_is_taken_over_with_a_warning(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "started": "2024-01-01T00:00:00+00:00"}))
    cfg = write_config(tmp_path)
    assert cli(srv, str(cfg)) == 0
    err = capsys.readouterr().err
    assert "stale lock" in err and str(dead.pid) in err
    assert (out / "curves" / "train" / "return.npy").exists()
    assert not (out / LOCK_NAME).exists()


# ------------------------------------------------------------------------------- for monitors


def test_log_file_and_json_summary(srv: LocalServer, tmp_path: Path) -> None:
    srv.set_faults(error_rate=0.3, seed=1)
    cfg = write_config(tmp_path)
    log_file = tmp_path / "run.log"
    summary_file = tmp_path / "summary.json"
    assert cli(srv, str(cfg), "-q", "--log-file", str(log_file), "--json-summary", str(summary_file)) == 0
    summary = json.loads(summary_file.read_text())
    for key in (
        "experiments",
        "runs_exported",
        "runs_unchanged",
        "runs_failed",
        "runs_skipped",
        "requests",
        "retries",
        "bytes_written",
        "wall_s",
        "exit_code",
    ):
        assert key in summary, key
    assert summary["exit_code"] == 0
    assert summary["runs_exported"] == 2 * N_RUNS and summary["runs_failed"] == 0
    assert set(summary["experiments"]) == {"curves", "losses"}
    written = sum(
        p.stat().st_size
        for p in (tmp_path / "out").rglob("*")
        if p.is_file() and p.name not in (LOCK_NAME, MANIFEST_FILE)
    )
    assert summary["bytes_written"] == written
    assert 4 <= summary["requests"] <= srv.stats()["requests"]  # listings + shared history requests
    assert srv.stats()["injected_5xx"] >= 1
    text = log_file.read_text()
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", text, re.M)  # timestamped lines
    assert "exit code 0" in text
    assert "\x1b[" not in text


def test_json_summary_written_on_error(srv: LocalServer, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, fields="nope-not-a-list-of-fields", history_samples=-5)
    summary_file = tmp_path / "summary.json"
    assert cli(srv, str(cfg), "--json-summary", str(summary_file)) == 2
    summary = json.loads(summary_file.read_text())
    assert summary["exit_code"] == 2 and summary["error"]
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------- entry points


def test_cli_py_from_the_repo_root(srv: LocalServer, tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    env = dict(os.environ, WANDB_API_KEY=srv.api_key)
    proc = subprocess.run(
        [sys.executable, "cli.py", str(cfg), "--base-url", srv.base_url, "-e", "losses"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "losses: 4 run(s) exported" in proc.stdout
    assert (tmp_path / "out" / "losses" / "train" / "loss.csv").exists()


def test_every_option_is_documented_in_the_cli_page() -> None:
    text = CLI_DOC.read_text(encoding="utf-8")
    missing = [
        opt
        for action in build_parser()._actions
        for opt in action.option_strings
        if opt.startswith("--") and opt not in ("--help",) and opt not in text
    ]
    assert missing == []


@pytest.mark.server
def test_demo(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    proc = subprocess.run(
        [sys.executable, "-m", "wandb2numpy.cli", "demo", "--output", str(out), "--runs", "6", "--steps", "60"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    npy = out / "demo-ppo-sampled" / "train" / "return.npy"
    assert npy.exists()
    assert f"{npy}: shape {np.load(npy).shape}" in proc.stdout
    assert (out / "demo-csv" / "eval" / "success_rate.csv").exists()
    assert list(tmp_path.iterdir()) == [out]  # nothing written outside --output


@pytest.mark.parametrize(
    ("argv", "policy"),
    [
        ([], None),
        (["--max-rate", "2.5"], RetryPolicy(max_rate=2.5)),
        (["--start-window", "8"], RetryPolicy(start_window=8)),
        (["--max-rate", "4", "--start-window", "2"], RetryPolicy(max_rate=4.0, start_window=2)),
    ],
)
def test_pacing_options_become_the_retry_policy(argv: list[str], policy: RetryPolicy | None) -> None:
    from wandb2numpy.cli.common import policy as _policy

    got = _policy(build_parser().parse_args(["c.yaml", *argv]))
    assert got == ({} if policy is None else {"policy": policy})


def test_start_window_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["c.yaml", "--start-window", "0"])
    assert exc.value.code == 2
    assert "--start-window" in capsys.readouterr().err


# ------------------------------------------------------------------------------- subcommands


def test_export_subcommand_writes_what_the_bare_form_writes(srv: LocalServer, tmp_path: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
    bare = write_config(tmp_path / "a", out=tmp_path / "a" / "out")
    named = write_config(tmp_path / "b", out=tmp_path / "b" / "out")
    assert cli(srv, str(bare), "-q") == 0
    assert cli(srv, "export", str(named), "-q") == 0
    assert files_under(tmp_path / "b" / "out") == files_under(tmp_path / "a" / "out") != {}


def test_top_level_help_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "export" in out and "demo" in out and "Exit codes" in out


@pytest.mark.parametrize(
    ("argv", "config", "experiments"),
    [
        (["-e", "A", "c.yaml"], "c.yaml", ["A"]),
        (["-e", "A", "B", "c.yaml"], "c.yaml", ["A", "B"]),
        (["c.yaml", "-e", "A", "B"], "c.yaml", ["A", "B"]),
        (["-e", "A", "-o", "c.yaml"], "c.yaml", ["A"]),
        (["-e", "A", "-e", "B", "c.yaml"], "c.yaml", ["A", "B"]),
        (["export", "-e", "A", "B", "c.yaml", "-q"], "c.yaml", ["A", "B"]),
        (["--experiments", "A", "c.yaml", "--concurrency", "3"], "c.yaml", ["A"]),
        (["./demo"], "./demo", None),  # a config file that is called like a subcommand
        (["c.yaml"], "c.yaml", None),
    ],
)
def test_experiments_before_or_after_the_config(argv: list[str], config: str, experiments: list[str] | None) -> None:
    args = build_parser().parse_args(argv)
    assert (args.command, args.config, args.experiments) == ("export", config, experiments)


def test_experiments_before_the_config_exports_only_those(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    assert main(["-e", "losses", str(cfg), "--base-url", srv.base_url]) == 0
    assert "losses: 4 run(s) exported" in capsys.readouterr().out
    assert (tmp_path / "out" / "losses" / "train" / "loss.csv").exists()
    assert not (tmp_path / "out" / "curves").exists()


def test_experiments_without_a_name_before_the_config_is_a_usage_error(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    with pytest.raises(SystemExit) as info:
        cli(srv, "-e", str(cfg))
    assert info.value.code == 2
    assert "-e/--experiments" in capsys.readouterr().err
    assert srv.stats()["requests"] == 0 and not (tmp_path / "out").exists()


def test_quiet_and_verbose_together_is_a_usage_error(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    with pytest.raises(SystemExit) as info:
        cli(srv, str(cfg), "-q", "-v")
    assert info.value.code == 2
    assert "-v/--verbose: not allowed with argument -q/--quiet" in capsys.readouterr().err
    assert srv.stats()["requests"] == 0 and not (tmp_path / "out").exists()


@pytest.mark.server
@pytest.mark.parametrize(
    ("option", "value"),
    [("--runs", "-3"), ("--runs", "0"), ("--steps", "-1"), ("--concurrency", "0"), ("--runs", "many")],
)
def test_demo_refuses_counts_below_one(
    option: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo", "--output", str(tmp_path / "demo-out"), option, value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: expected a positive integer, found" in err and value in err
    assert list(tmp_path.iterdir()) == []


def test_json_summary_to_stdout(srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    assert cli(srv, str(cfg), "--json-summary", "-") == 0
    out = capsys.readouterr()
    summary = json.loads(out.out)  # stdout holds the JSON and nothing else
    assert summary["exit_code"] == 0 and summary["runs_exported"] == 2 * N_RUNS
    assert "curves: 4 run(s) exported" in out.err  # the printed summary moved to stderr
    assert not (tmp_path / "-").exists()


def test_json_summary_to_stdout_on_error(srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, history_samples="lots")
    assert cli(srv, str(cfg), "--json-summary", "-") == 2
    out = capsys.readouterr()
    summary = json.loads(out.out)
    assert summary["exit_code"] == 2 and "history_samples" in summary["error"]
    assert "wandb2numpy: error:" in out.err


def _env_with_this_checkout(**extra: str) -> dict[str, str]:
    """`python -m wandb2numpy` run from another folder imports this checkout, not an installed copy."""
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path, **extra)


def test_python_m_wandb2numpy_with_json_summary_on_stdout(srv: LocalServer, tmp_path: Path) -> None:
    """A subprocess, so whatever reaches file descriptor 1 (wandb-core included) is checked."""
    cfg = write_config(tmp_path)
    env = _env_with_this_checkout(WANDB_API_KEY=srv.api_key)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "wandb2numpy",
            "-e",
            "curves",
            str(cfg),
            "--base-url",
            srv.base_url,
            "--json-summary",
            "-",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert set(summary["experiments"]) == {"curves"} and summary["runs_exported"] == N_RUNS
    assert "curves: 4 run(s) exported" in proc.stderr


def test_demo_and_report_do_not_import_the_command_line() -> None:
    code = (
        "import sys, wandb2numpy.cli.demo, wandb2numpy.cli.report\n"
        "assert 'wandb2numpy.cli.parser' not in sys.modules, sorted(sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env_with_this_checkout(), timeout=120
    )
    assert proc.returncode == 0, proc.stderr


def test_every_subcommand_option_is_documented_in_the_cli_page() -> None:
    text = CLI_DOC.read_text(encoding="utf-8")
    commands = build_parser().commands  # type: ignore[attr-defined]
    assert set(commands) == {"export", "fields", "demo", "plot"}
    missing = [
        f"{name} {opt}"
        for name, parser in commands.items()
        for action in parser._actions
        for opt in action.option_strings
        if opt.startswith("--") and opt != "--help" and opt not in text
    ]
    assert missing == []
    assert "wandb2numpy export" in text and "--json-summary -" in text


def test_exit_2_backslash_field_before_any_request(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name the writers would refuse is refused with the config, not after every request."""
    cfg = write_config(tmp_path, fields=["train/return", "eval\\reward"])
    assert cli(srv, str(cfg)) == 2
    err = capsys.readouterr().err
    assert str(cfg) in err and "experiment 'curves'" in err and "key 'fields[1]'" in err
    assert "backslash" in err and "Traceback" not in err
    assert srv.stats()["requests"] == 0
    assert not (tmp_path / "out").exists()
