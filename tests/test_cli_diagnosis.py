"""What the command line says when something is wrong: each unreachable server, a missing key, an
empty export, a run that keeps failing. One line that names the cause and the CLI's own remedy,
in seconds rather than after a minute of retries, and log volume that does not grow with retries.

The time bounds below are hang guards, not measurements: before these diagnoses an unreachable
server took 83 s of retries. What the tests check is that no retry happened at all."""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wandb2numpy.cli import EXIT_EMPTY, main
from wandb2numpy.cli.report import TqdmProgress
from wandb2numpy.testing import FAST_RETRIES, LocalServer, synthetic_project

FAST = dataclasses.replace(FAST_RETRIES, attempts=4)
DRIVES_CLI = True
N_RUNS = 4
RUN_IDS = [r["id"] for r in synthetic_project(runs=N_RUNS, steps=40, metrics=2)["projects"][0]["runs"]]
# An unreachable server must be diagnosed well within this; the old behaviour took 83 s.
BOUND_S = 30.0


def project_data() -> dict[str, Any]:
    return synthetic_project(runs=N_RUNS, steps=40, metrics=2)


def write_config(tmp_path: Path, **overrides: Any) -> Path:
    exp: dict[str, Any] = {"fields": ["train/return", "train/loss"]}
    exp.update(overrides)
    data = {
        "DEFAULT": {"entity": "demo", "project": "synthetic", "output_path": str(tmp_path / "out")},
        "curves": exp,
        "losses": {"fields": ["train/loss"]},
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(data, indent=1))
    return path


def closed_port() -> int:
    with socket.socket() as s:  # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def run_cli(args: list[str], tmp_path: Path) -> tuple[int, float, str]:
    """Exit code, seconds taken, and the log file's text (INFO and up)."""
    log_file = tmp_path / "run.log"
    started = time.monotonic()
    code = main([*args, "--log-file", str(log_file)])
    return code, time.monotonic() - started, log_file.read_text() if log_file.exists() else ""


# ------------------------------------------------------------------------------- unreachable


@pytest.mark.parametrize(
    "case, expected",
    [
        ("refused", "connection refused"),
        ("no_host", "cannot resolve host 'nonexistent.invalid'"),
        ("wrong_path", "answered HTTP 404 to the W&B API"),
    ],
)
def test_unreachable_server_one_line_in_seconds(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, expected: str
) -> None:
    url = {
        "refused": f"http://127.0.0.1:{closed_port()}",
        "no_host": "http://nonexistent.invalid",  # .invalid never resolves; no network needed
        "wrong_path": srv.base_url + "/not/the/api",
    }[case]
    cfg = write_config(tmp_path)
    code, took, log_text = run_cli([str(cfg), "--base-url", url], tmp_path)
    assert code == 1
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1, lines
    assert lines[0].startswith("wandb2numpy: error: ") and expected in lines[0]
    assert "--base-url" in lines[0]
    assert "API key" not in lines[0] and "api_key" not in lines[0]  # not blamed on credentials
    assert "retrying" not in log_text  # given up at once, not after the retry budget
    assert took < BOUND_S
    assert not (tmp_path / "out").exists()


def test_missing_key_names_the_cli_remedies(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("")  # never the user's ~/.netrc
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.delenv("WANDB_API_KEY")
    cfg = write_config(tmp_path)
    code, took, log_text = run_cli([str(cfg), "--base-url", srv.base_url], tmp_path)
    assert code == 1
    lines = error_lines(capsys.readouterr().err)
    assert lines == [
        f"wandb2numpy: error: no W&B API key found for {srv.base_url}: set WANDB_API_KEY or run `wandb login`"
    ]
    assert "retrying" not in log_text and took < BOUND_S
    assert srv.stats()["requests"] == 0


def test_wrong_key_names_the_cli_remedies(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "local-" + "x" * 40)
    code, _, _ = run_cli([str(write_config(tmp_path)), "--base-url", srv.base_url], tmp_path)
    assert code == 1
    (line,) = error_lines(capsys.readouterr().err)
    assert "refused the API key" in line and "WANDB_API_KEY" in line and "wandb login" in line
    assert "api_key" not in line


@pytest.mark.parametrize("url", ["not-a-url", "127.0.0.1:8080", "ftp://example.com", "http://"])
def test_base_url_that_is_not_a_url_is_a_usage_error(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main([str(write_config(tmp_path)), "--base-url", url])
    assert info.value.code == 2
    assert "--base-url" in capsys.readouterr().err
    assert srv.stats()["requests"] == 0, (srv.request_log(), srv.stats())


@pytest.mark.parametrize("under", [False, True])
def test_output_path_that_is_a_file_is_refused_before_any_request(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], under: bool
) -> None:
    (tmp_path / "out").write_text("a file, not a folder")
    cfg = write_config(tmp_path)
    if under:  # output_path: out/sub, where out is a file
        data = json.loads(cfg.read_text())
        data["DEFAULT"]["output_path"] = str(tmp_path / "out" / "sub")
        cfg.write_text(json.dumps(data))
    assert main([str(cfg), "--base-url", srv.base_url]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "output_path" in line and "is a file" in line
    assert srv.stats()["requests"] == 0
    assert (tmp_path / "out").read_text() == "a file, not a folder"


# ------------------------------------------------------------------------------- empty exports


def test_mistyped_field_exits_4_with_a_suggestion_even_quiet(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, fields=["train/return", "train/retrun"])
    assert main([str(cfg), "--base-url", srv.base_url, "-q"]) == EXIT_EMPTY
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1, lines
    assert "curves" in lines[0] and "'train/retrun'" in lines[0]
    assert "did you mean 'train/return'?" in lines[0]
    assert "absent from every exported run" not in lines[0]
    # what could be written was written
    assert np.load(tmp_path / "out" / "curves" / "train" / "return.npy").shape == (N_RUNS, 40)
    assert (tmp_path / "out" / "losses" / "train" / "loss.npy").exists()


def test_filter_matching_no_run_exits_4_and_writes_nothing_for_it(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, groups=["no-such-group"])
    summary_file = tmp_path / "summary.json"
    code = main([str(cfg), "--base-url", srv.base_url, "--json-summary", str(summary_file)])
    assert code == EXIT_EMPTY
    out, err = capsys.readouterr()
    assert "wandb2numpy: error: curves: no run matched group=no-such-group in demo/synthetic" in err
    assert "no run matched" in out and "absent from every exported run" not in out
    assert not (tmp_path / "out" / "curves").exists()
    assert (tmp_path / "out" / "losses" / "train" / "loss.npy").exists()
    summary = json.loads(summary_file.read_text())
    assert summary["exit_code"] == EXIT_EMPTY and len(summary["problems"]) == 1


def test_allow_empty_exits_0_with_a_warning(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, fields=["train/retrun"])
    assert main([str(cfg), "--base-url", srv.base_url, "--allow-empty"]) == 0
    err = capsys.readouterr().err
    assert "WARNING" in err and "did you mean 'train/return'?" in err and "error" not in err
    assert not (tmp_path / "out" / "curves").exists()  # no run held a requested field


def test_a_healthy_export_has_no_problems(srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(write_config(tmp_path)), "--base-url", srv.base_url]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "0 retries" in out and "rows/s" in out


# ------------------------------------------------------------------------------- log volume


@pytest.mark.slow
def test_a_failing_run_logs_one_warning_and_its_retries_at_info(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = RUN_IDS[1]
    srv.set_faults(fail_runs=bad)
    cfg = write_config(tmp_path)
    summary_file = tmp_path / "summary.json"
    code, _, log_text = run_cli(
        [str(cfg), "--base-url", srv.base_url, "-e", "curves", "--json-summary", str(summary_file)], tmp_path
    )
    assert code == 3
    out, err = capsys.readouterr()
    warnings = [line for line in err.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, err
    assert bad in warnings[0] and "failed" in warnings[0]
    assert error_lines(err) == warnings  # nothing else on stderr
    retries = [line for line in log_text.splitlines() if "retrying" in line]
    assert retries and all(" INFO " in line for line in retries)
    summary = json.loads(summary_file.read_text())
    assert summary["retries"] >= FAST.attempts - 1
    assert f"{summary['retries']} retries" in out


def test_bars_stand_in_config_order_whichever_experiment_starts_first() -> None:
    progress = TqdmProgress()
    progress.begin(["first", "second", "third"])
    try:
        progress.start("third", 2)
        progress.start("first", 1)
        positions = {name: abs(bar.pos) for name, bar in progress._bars.items()}
    finally:
        progress.close()
    assert positions == {"first": 0, "second": 1, "third": 2}
