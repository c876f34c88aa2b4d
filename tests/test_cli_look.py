"""The command line before and around an export: `--dry-run`, `fields`, `export ENTITY/PROJECT`,
`-O/--output-dir`, and what the run table and `--incremental` tell (issue 12, items 6 to 8)."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import cli, files_under
from conftest import write_cli_config as write_config

from wandb2numpy.testing import FAST_RETRIES, LocalServer, synthetic_project

DRIVES_CLI = True
FAST = dataclasses.replace(FAST_RETRIES, attempts=4)
N_RUNS = 4
STEPS = 40
PROJECT = synthetic_project(runs=N_RUNS, steps=STEPS, metrics=2)
RUN_IDS = [r["id"] for r in PROJECT["projects"][0]["runs"]]
GROUPS = [r["group"] for r in PROJECT["projects"][0]["runs"]]
# Listing a project costs these operations; anything else would be a history read.
LISTING_OPS = {"Viewer", "GetDefaultEntity", "Runs"}


def project_data() -> dict[str, Any]:
    return synthetic_project(runs=N_RUNS, steps=STEPS, metrics=2)


def run_table(folder: Path) -> list[dict[str, str]]:
    with open(folder / "runs.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def only_listed(srv: LocalServer) -> None:
    stats = srv.stats()
    assert set(stats["ops"]) <= LISTING_OPS, stats["ops"]
    assert stats["history_requests"] == 0 and stats["rows_served"] == 0


# ------------------------------------------------------------------------------- --dry-run


def test_dry_run_lists_runs_and_plans_requests_fetching_no_history(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    assert cli(srv, str(cfg), "--dry-run", "--json-summary", str(tmp_path / "s.json")) == 0
    out = capsys.readouterr().out
    only_listed(srv)
    assert files_under(tmp_path / "out") == {} and not (tmp_path / "s.json").exists()  # nothing written
    assert f"curves: {N_RUNS} run(s) of demo/synthetic match all runs" in out
    assert f"losses: {N_RUNS} run(s)" in out
    for run_id in RUN_IDS:
        assert re.search(rf"^  {run_id} .* finished +{STEPS}$", out, re.M), out
    assert f"groups: ppo {GROUPS.count('ppo')}, " in out and "states: finished 4" in out
    assert "fields (12000 samples): train/return, train/loss" in out
    planned = [int(n) for n in re.findall(r"planned: (\d+) history request", out)]
    assert len(planned) == 2
    assert f"{N_RUNS} run(s) in 1 shared request(s)" in out  # small runs go many to a request
    assert "no history fetched, nothing written" in out

    # the plan is what the export then sends
    srv.reset_stats()
    assert cli(srv, str(cfg), "-q") == 0
    assert srv.stats()["history_requests"] == sum(planned)


def test_dry_run_plans_per_run_requests_for_full_history(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, history_samples="all", groups=["ppo"])
    assert cli(srv, str(cfg), "-e", "curves", "--dry-run", "--concurrency", "1") == 0
    out = capsys.readouterr().out
    only_listed(srv)
    n = GROUPS.count("ppo")
    assert f"curves: {n} run(s)" in out and "group=ppo" in out
    assert "fields (full history): train/return, train/loss" in out
    planned = int(re.search(r"planned: (\d+) history request", out).group(1))  # type: ignore[union-attr]
    assert f"for about {n * 2 * STEPS} row(s)" in out
    srv.reset_stats()
    assert cli(srv, str(cfg), "-e", "curves", "-q", "--concurrency", "1") == 0
    assert srv.stats()["history_requests"] == planned


def test_dry_run_names_the_x_axis_and_grid(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, x_axis="_runtime", grid={"every": 2.5, "method": "previous"})
    assert cli(srv, str(cfg), "-e", "curves", "--dry-run") == 0
    out = capsys.readouterr().out
    only_listed(srv)
    assert f"x_axis: _runtime, logged by {N_RUNS} of {N_RUNS} run(s)" in out
    assert "grid: every 2.5 inside the common range, method previous" in out


def test_dry_run_ignores_existing_output_and_names_no_match(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, groups=["nope"])
    (tmp_path / "out" / "curves").mkdir(parents=True)
    (tmp_path / "out" / "curves" / "runs.csv").write_text("old")
    # no -o needed: nothing is written; exit 4, as the export would give for a filter matching nothing
    assert cli(srv, str(cfg), "-e", "curves", "--dry-run") == 4
    captured = capsys.readouterr()
    out = captured.out
    assert "no run matched group=nope in demo/synthetic" in captured.err
    assert "curves: 0 run(s) of demo/synthetic match group=nope" in out
    assert "planned: 0 history request(s)" in out
    assert (tmp_path / "out" / "curves" / "runs.csv").read_text() == "old"


def test_dry_run_with_a_bad_config_is_exit_2_before_any_request(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, history_samples=0)
    assert cli(srv, str(cfg), "--dry-run") == 2
    assert "key 'history_samples'" in capsys.readouterr().err
    assert srv.stats()["requests"] == 0


# ------------------------------------------------------------------------------- fields


def test_fields_lists_history_keys_with_types_and_counts(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, groups=["ppo", "sac"])
    assert cli(srv, "fields", str(cfg), "-e", "curves") == 0
    out = capsys.readouterr().out
    only_listed(srv)
    n = GROUPS.count("ppo") + GROUPS.count("sac")
    assert f"curves: {n} run(s) of demo/synthetic match" in out and "losses" not in out
    lines = out.splitlines()
    assert re.fullmatch(r"  key +type +runs +rows", lines[1])
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert rows["train/loss"] == ["number", str(n), str(n * STEPS)]
    assert rows["train/return"] == ["number", str(n), str(n * STEPS)]
    assert "_step" in rows and not any(k.startswith("_wandb") for k in rows)
    assert files_under(tmp_path / "out") == {}


def test_fields_of_a_project_without_a_config(
    srv: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(srv, "fields", "demo/synthetic", "--groups", "td3") == 0
    out = capsys.readouterr().out
    assert f"synthetic: {GROUPS.count('td3')} run(s) of demo/synthetic match group=td3" in out
    monkeypatch.setenv("WANDB_ENTITY", "demo")
    monkeypatch.setenv("WANDB_PROJECT", "synthetic")
    assert cli(srv, "fields") == 0
    assert f"synthetic: {N_RUNS} run(s)" in capsys.readouterr().out
    assert cli(srv, "fields", "demo/nope") == 1
    assert "demo/nope" in capsys.readouterr().err
    only_listed(srv)


# ------------------------------------------------------------------------------- export ENTITY/PROJECT


def test_export_entity_project_writes_what_the_same_config_writes(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--fields", "train/loss", "train/return", "--groups", "ppo", "sac", "--samples", "all"]
    assert cli(srv, "export", "demo/synthetic", *args, "-O", str(tmp_path / "cli"), "-q") == 0
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        json.dumps(
            {
                "synthetic": {
                    "entity": "demo",
                    "project": "synthetic",
                    "fields": ["train/loss", "train/return"],
                    "groups": ["ppo", "sac"],
                    "history_samples": "all",
                    "output_path": str(tmp_path / "yaml"),
                }
            }
        )
    )
    assert cli(srv, str(cfg), "-q") == 0
    from_cli, from_yaml = files_under(tmp_path / "cli"), files_under(tmp_path / "yaml")
    assert from_cli == from_yaml and "synthetic/train/loss.npy" in from_cli
    loss = np.load(tmp_path / "cli" / "synthetic" / "train" / "loss.npy")
    assert loss.shape == (GROUPS.count("ppo") + GROUPS.count("sac"), STEPS)


def test_export_project_from_the_environment(
    srv: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_ENTITY", "demo")
    monkeypatch.setenv("WANDB_PROJECT", "synthetic")
    assert cli(srv, "export", "--fields", "train/loss") == 0
    assert f"synthetic: {N_RUNS} run(s) exported" in capsys.readouterr().out
    assert np.load(tmp_path / "wandb_data" / "synthetic" / "train" / "loss.npy").shape == (N_RUNS, STEPS)
    # PROJECT alone takes the entity from WANDB_ENTITY; `fields: all` as in a config
    monkeypatch.delenv("WANDB_PROJECT")
    assert cli(srv, "synthetic", "--fields", "all", "-O", "all", "-q") == 0
    assert {"synthetic/train/loss.npy", "synthetic/train/return.npy"} <= set(files_under(tmp_path / "all"))


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--fields", "x"], {}, "no project given: name ENTITY/PROJECT, or set WANDB_ENTITY and WANDB_PROJECT"),
        (["synthetic", "--fields", "x"], {}, "no entity given"),
        (
            ["demo/synthetic", "--fields", "x", "--samples", "0"],
            {},
            "command line, experiment 'synthetic', key 'history_samples': expected a positive integer or 'all'",
        ),
        (["demo/synthetic", "--fields", "x", "--samples", "many"], {}, "found string 'many'"),
        (["demo/synthetic", "--fields", "a\\b"], {}, "key 'fields[0]'"),
        (["demo/synthetic"], {}, "to export a project without one, name its fields: "),
        (["demo/synthetic", "--groups", "ppo"], {}, "they need --fields"),
        (["a/b/c", "--fields", "x"], {}, "expected ENTITY/PROJECT or PROJECT; found 'a/b/c'"),
        (["--fields", "x", "-e", "curves", "demo/synthetic"], {}, "-e/--experiments picks experiments"),
        (["--fields", "x"], {"WANDB_ENTITY": "demo"}, "no project given"),
    ],
)
def test_export_project_mistakes_are_exit_2_before_any_request(
    srv: LocalServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert cli(srv, "export", *argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert srv.stats()["requests"] == 0
    assert files_under(tmp_path) == {}


def test_fields_option_with_a_config_file_is_exit_2(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    assert cli(srv, str(cfg), "--fields", "x") == 2
    assert "is a config file" in capsys.readouterr().err
    assert srv.stats()["requests"] == 0


def test_output_dir_overrides_the_configs_output_path(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    assert cli(srv, str(cfg), "-O", str(tmp_path / "elsewhere"), "-q") == 0
    assert not (tmp_path / "out").exists()
    written = files_under(tmp_path / "elsewhere")
    assert "curves/train/return.npy" in written and "losses/train/loss.csv" in written
    assert cli(srv, str(cfg), "--output-dir", "", "-q") == 2
    assert "-O/--output-dir" in capsys.readouterr().err


# ------------------------------------------------------------------------------- run table, incremental


def test_run_table_has_run_urls_and_summary_values(srv: LocalServer, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, history_samples="all")
    assert cli(srv, str(cfg), "-e", "curves", "-q") == 0
    folder = tmp_path / "out" / "curves"
    table = run_table(folder)
    assert [row["id"] for row in table] == RUN_IDS
    assert [row["url"] for row in table] == [f"{srv.base_url}/demo/synthetic/runs/{i}" for i in RUN_IDS]
    loss = np.load(folder / "train" / "loss.npy")
    steps = np.load(folder / "train" / "loss.steps.npy")
    for i, row in enumerate(table):
        last = int(np.max(np.flatnonzero(~np.isnan(steps[i]))))
        assert float(row["summary.train/loss"]) == loss[i, last]  # the run's last logged value
        assert int(row["summary._step"]) == STEPS - 1
    assert list(table[0])[:10] == [
        "id",
        "name",
        "group",
        "job_type",
        "state",
        "tags",
        "created_at",
        "heartbeat_at",
        "history_line_count",
        "url",
    ]


def test_incremental_prints_fetched_and_unchanged(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    assert cli(srv, str(cfg), "-e", "curves", "--incremental") == 0
    assert f"  incremental: {N_RUNS} fetched, 0 unchanged" in capsys.readouterr().out
    srv.reset_stats()
    assert cli(srv, str(cfg), "-e", "curves", "--incremental") == 0
    assert f"  incremental: 0 fetched, {N_RUNS} unchanged" in capsys.readouterr().out
    assert srv.stats()["history_requests"] == 0
    assert cli(srv, str(cfg), "-e", "curves", "-o") == 0
    assert "incremental:" not in capsys.readouterr().out  # only said when asked for
