"""One plan, decided from the run listing: `--dry-run` and the export give the same verdicts and
exit codes, and what the listing already says is never paid for with history requests (issue 17).

The pure plan is tested on hand-made listings; the agreement of the two commands through the real
client against the local server, with requests counted at `/_stats`.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import cli

from wandb2numpy.config import parse_config
from wandb2numpy.models import KeyInfo, RunInfo
from wandb2numpy.plan import build_plan, known_values
from wandb2numpy.testing import FAST_RETRIES, LocalServer

DRIVES_CLI = True
FAST = dataclasses.replace(FAST_RETRIES, attempts=2)
STEPS = 30

# ------------------------------------------------------------------------------ pure plans


def _info(
    rid: str,
    group: str,
    job_type: str = "train",
    tags: tuple[str, ...] = (),
    keys: tuple[str, ...] = ("train/return", "global_step"),
) -> RunInfo:
    return RunInfo(
        entity="acme",
        project="rl",
        id=rid,
        name=rid,
        group=group,
        job_type=job_type,
        tags=tags,
        history_line_count=STEPS,
        last_step=STEPS - 1,
        history_keys={k: KeyInfo(types=("number",), count=STEPS) for k in ("_step", *keys)},
    )


def _exp(**over: Any) -> Any:
    base = {"entity": "acme", "project": "rl", "fields": ["train/return"], "output_path": "out"}
    return parse_config({"e": {**base, **over}})[0]


RUNS = [_info("ppo-1", "ppo", tags=("baseline",)), _info("ppo-2", "ppo", job_type="eval"), _info("sac-1", "sac")]


def _plan(exp: Any, runs: list[RunInfo], *others: tuple[Any, list[RunInfo]]) -> Any:
    known = known_values([(exp, runs), *others])[("acme", "rl")]
    return build_plan(exp, runs, workers=16, page_size=1000, known=known)


def test_a_clean_plan_has_no_problem_and_plans_the_requests() -> None:
    plan = _plan(_exp(), RUNS)
    assert plan.problems == () and not plan.blocked
    assert plan.fields == ("train/return",) and len(plan.runs) == 3
    assert plan.reads.runs == 3 and plan.reads.requests >= 1
    assert "train/return.npy" in plan.files and "runs.csv" in plan.files


def test_a_group_that_matched_nothing_is_named_with_the_value_another_listing_showed() -> None:
    exp = _exp(groups=["ppo", "sca"])
    listed = [r for r in RUNS if r.group == "ppo"]  # the server's answer to group in (ppo, sca)
    other = (_exp(groups=["sac"]), [r for r in RUNS if r.group == "sac"])
    plan = _plan(exp, listed, other)
    assert plan.problems == ("e: groups: 'sca' matched none of the 2 listed run(s); did you mean 'sac'?",)
    assert not plan.blocked  # ppo is still worth exporting, but the export exits 4


def test_job_types_run_names_and_tags_that_matched_nothing() -> None:
    plan = _plan(_exp(runs=["ppo-1", "ppo-3x"], job_types=["train", "evl"], tags=["baseline", "nope"]), RUNS[:1])
    assert plan.problems == (
        "e: job_types: 'evl' matched none of the 1 listed run(s)",
        "e: runs: 'ppo-3x' matched none of the 1 listed run(s); did you mean 'ppo-1'?",
        "e: tags: 'nope' matched none of the 1 listed run(s)",
    )


def test_nested_per_group_values_are_judged_within_their_group() -> None:
    exp = _exp(groups=["ppo", "sac"], job_types=[["eval"], ["eval"]])
    plan = _plan(exp, [RUNS[1]], (_exp(), RUNS))
    assert plan.problems == ("e: groups: 'sac' matched none of the 1 listed run(s)",)


def test_no_run_blocks_the_experiment_and_hints_from_other_listings() -> None:
    plan = _plan(_exp(groups=["sca"]), [], (_exp(), RUNS))
    assert plan.blocked and plan.reads.requests == 0
    assert plan.problems == ("e: no run matched group=sca in acme/rl (did you mean 'sac'?)",)


def test_a_mistyped_field_and_x_axis_get_the_nearest_key() -> None:
    plan = _plan(_exp(fields=["train/retrun"]), RUNS)
    assert plan.problems == (
        "e: field 'train/retrun' logged by none of the 3 matched run(s); did you mean 'train/return'?",
    )
    plan = _plan(_exp(x_axis="global_stp"), RUNS)
    assert plan.blocked and plan.reads.requests == 0
    assert plan.problems == (
        "e: x_axis 'global_stp' is logged by none of the 3 matched run(s); did you mean 'global_step'?",
    )


@pytest.mark.parametrize(
    ("data_type", "grid", "keys", "left"),
    [
        ("numpy", None, ("a", "a.steps", "b"), {"a.steps"}),
        ("csv", None, ("runs", "b"), {"runs"}),
        ("npz", None, ("fields", "b"), {"fields"}),
        ("numpy", {"points": 5}, ("x", "b"), {"x"}),
        ("numpy", None, ("ok", "z" * 300), {"z" * 300}),
    ],
)
def test_fields_all_leaves_awkward_keys_out_with_the_reason(
    data_type: str, grid: Any, keys: tuple[str, ...], left: set[str]
) -> None:
    over: dict[str, Any] = {"fields": "all", "output_data_type": data_type}
    if grid:
        over["grid"] = grid
    plan = _plan(_exp(**over), [_info("r", "g", keys=keys)])
    assert set(plan.left_out) == left and plan.problems == ()
    assert set(plan.fields) == set(keys) - left
    assert all(why for why in plan.left_out.values())


# --------------------------------------------------- dry run and export agree, at the server


def _rows(i: int) -> list[dict[str, Any]]:
    return [
        {"_step": s, "global_step": 100 * s, "train/return": s + i, "a": s * 0.5, "a.steps": 1.0} for s in range(STEPS)
    ]


def project_data() -> dict[str, Any]:
    runs = []
    for i, (group, seed) in enumerate([("ppo", 1), ("ppo", 2), ("sac", 1), ("sac", 2)]):
        runs.append(
            {
                "id": f"r{i}",
                "name": f"{group}-seed{seed}",
                "group": group,
                "job_type": "train",
                "state": "finished",
                "created_at": f"2024-01-01T00:00:0{i}Z",
                "config": {"seed": seed},
                "history": _rows(i),
            }
        )
    return {"projects": [{"entity": "acme", "name": "rl", "runs": runs}]}


CASES: dict[str, tuple[dict[str, Any], int, str | None]] = {
    # name: (experiment keys, exit code, a problem line's text)
    "clean": ({}, 0, None),
    "mistyped field": ({"fields": ["train/retrun"]}, 4, "did you mean 'train/return'?"),
    "mistyped x_axis": ({"x_axis": "global_stp"}, 4, "did you mean 'global_step'?"),
    "mistyped group": ({"groups": ["ppo", "sca"]}, 4, "groups: 'sca' matched none"),
    "mistyped run name": ({"runs": ["ppo-seed1", "sac-seed2", "nonexistent-run"]}, 4, "'nonexistent-run' matched none"),
    "no match": ({"groups": ["dqn"]}, 4, "no run matched group=dqn"),
    "fields all with clashing keys": ({"fields": "all"}, 0, None),
}
NO_HISTORY = {"mistyped x_axis", "no match"}


def _config(tmp_path: Path, keys: dict[str, Any]) -> Path:
    exp = {"entity": "acme", "project": "rl", "fields": ["train/return"], "output_path": str(tmp_path / "out"), **keys}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"e": exp}))
    return path


def _problems(err: str) -> list[str]:
    return re.findall(r"^wandb2numpy: error: (.*)$", err, re.M)


@pytest.mark.server
@pytest.mark.parametrize("case", list(CASES))
def test_dry_run_and_export_give_the_same_verdict(
    case: str, srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys, code, text = CASES[case]
    cfg = _config(tmp_path, keys)
    assert cli(srv, str(cfg), "--dry-run") == code
    dry = capsys.readouterr()
    assert srv.stats()["history_requests"] == 0
    planned = int(re.search(r"(\d+) history request\(s\) planned", dry.out).group(1))  # type: ignore[union-attr]

    srv.reset_stats()
    assert cli(srv, str(cfg), "-q") == code
    real = capsys.readouterr()
    assert _problems(real.err) == _problems(dry.err)
    if text is not None:
        assert any(text in p for p in _problems(dry.err)), dry.err
    if case in NO_HISTORY:
        assert srv.stats()["history_requests"] == 0, case
    assert srv.stats()["history_requests"] == planned, (case, dry.out)


@pytest.mark.server
def test_a_mistyped_group_is_named_before_any_history_and_the_rest_is_exported(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path, {"groups": ["ppo", "sca"]})
    assert cli(srv, str(cfg), "-q") == 4
    assert "e: groups: 'sca' matched none of the 2 listed run(s)" in capsys.readouterr().err
    assert (tmp_path / "out" / "e" / "train" / "return.npy").exists()


@pytest.mark.server
def test_fields_all_with_clashing_keys_exports_the_rest_and_says_which_was_left_out(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path, {"fields": "all"})
    assert cli(srv, str(cfg), "--dry-run") == 0
    assert "left out: 'a.steps'" in capsys.readouterr().out
    assert cli(srv, str(cfg)) == 0
    err = capsys.readouterr().err
    assert "history key 'a.steps' left out" in err
    out = tmp_path / "out" / "e"
    assert (out / "a.npy").exists() and (out / "a.steps.npy").exists()  # a's steps, not the key a.steps
    assert (out / "global_step.npy").exists() and (out / "train" / "return.npy").exists()


# ------------------------------------------------------------------------------ public API


def test_the_public_surface_is_pinned() -> None:
    """A name added to or dropped from `wandb2numpy.__all__` is a decision, made here on purpose."""
    import wandb2numpy

    assert sorted(wandb2numpy.__all__) == sorted(
        [
            "AuthError",
            "ClientSettings",
            "ConfigError",
            "DEFAULT_CONCURRENCY",
            "Experiment",
            "ExperimentConfig",
            "ExperimentPlan",
            "ExperimentResult",
            "ExportResult",
            "FetchError",
            "FieldArrays",
            "ForeignFilesError",
            "OutputError",
            "OutputExistsError",
            "RetryPolicy",
            "Wandb2NumpyError",
            "__version__",
            "export",
            "export_async",
            "export_data",
            "load",
            "load_config",
            "parse_config",
            "plan_export",
        ]
    )
    for name in wandb2numpy.__all__:
        assert getattr(wandb2numpy, name) is not None, name


def test_every_error_kind_has_one_exit_code() -> None:
    from wandb2numpy import errors
    from wandb2numpy.cli.errors import EXIT_FAILED, EXIT_USAGE, exit_code_of

    assert exit_code_of(errors.ConfigError("x")) == EXIT_USAGE
    for kind in (errors.FetchError, errors.AuthError, errors.OutputError, errors.OutputLockedError):
        assert exit_code_of(kind("x")) == EXIT_FAILED
    assert not hasattr(errors.Wandb2NumpyError, "exit_code")  # decided in cli/errors.py only


# ------------------------------------------- planned requests are the requests sent, per mode


def _mode_project(n_runs: int, steps: int, state: str) -> dict[str, Any]:
    runs = []
    for i in range(n_runs):
        rows = [
            {
                "_step": s,
                "global_step": 10 * s,
                "train/return": s * 0.5 + i,
                **({"eval/score": float(i - s)} if s % 5 == 0 else {}),
            }
            for s in range(steps)
        ]
        runs.append(
            {
                "id": f"m{i}",
                "name": f"m{i}",
                "group": "g",
                "job_type": "train",
                "state": state,
                "created_at": f"2024-01-01T00:00:0{i}Z",
                "config": {"seed": i},
                "history": rows,
            }
        )
    return {"projects": [{"entity": "acme", "name": "modes", "runs": runs}]}


MODES: dict[str, tuple[tuple[int, int, str, bool], dict[str, Any]]] = {
    # mode: ((runs, steps, state, server has parquet exports), experiment keys)
    "sampled, small runs batched": ((4, 30, "finished", False), {}),
    "full history, small runs batched": ((4, 30, "finished", False), {"history_samples": "all"}),
    "full history, row windows": ((2, 2500, "running", False), {"history_samples": "all"}),
    "sampled, one request per key group": ((2, 2500, "running", False), {"history_samples": 100}),
    "x_axis, some runs in full": ((2, 2500, "running", False), {"history_samples": 100, "x_axis": "global_step"}),
    "x_axis, full history": ((2, 2500, "running", False), {"history_samples": "all", "x_axis": "global_step"}),
    "parquet exports": ((2, 2500, "finished", True), {"history_samples": "all"}),
}


@pytest.mark.server
@pytest.mark.parametrize("mode", list(MODES))
def test_the_planned_requests_are_the_requests_sent(mode: str, tmp_path: Path) -> None:
    from wandb2numpy import ClientSettings, export, plan_export

    (n_runs, steps, state, parquet), keys = MODES[mode]
    config = {
        "e": {
            "entity": "acme",
            "project": "modes",
            "fields": ["train/return", "eval/score"],
            "output_path": str(tmp_path / "out"),
            **keys,
        }
    }
    with LocalServer(_mode_project(n_runs, steps, state), parquet=parquet) as srv:
        settings = ClientSettings(base_url=srv.base_url, api_key=srv.api_key, timeout=20)
        (planned,) = plan_export(config, settings=settings, concurrency=4)
        assert srv.stats()["history_requests"] == 0
        srv.reset_stats()
        result = export(config, write=False, settings=settings, concurrency=4, policy=FAST)
        assert result.exit_code == 0 and len(result.experiments["e"].result.runs) == n_runs
        assert srv.stats()["history_requests"] == planned.reads.requests, (mode, planned.reads)


@pytest.mark.server
def test_an_incremental_dry_run_plans_the_tails_the_export_sends(tmp_path: Path) -> None:
    """Full history, exported once; then one run grows and another is new: the dry run counts
    the unchanged run as cached, the grown one as its tail, the new one whole, as the export sends."""
    from wandb2numpy import ClientSettings, export, plan_export

    config = {
        "e": {
            "entity": "acme",
            "project": "modes",
            "fields": ["train/return", "eval/score"],
            "history_samples": "all",
            "output_path": str(tmp_path / "out"),
        }
    }
    data = _mode_project(3, 2500, "running")
    first = {
        "projects": [
            {
                **data["projects"][0],
                "runs": [
                    {**r, "history": r["history"][:2000]} if r["id"] == "m1" else r
                    for r in data["projects"][0]["runs"]
                    if r["id"] != "m2"
                ],
            }
        ]
    }
    with LocalServer(first) as srv:
        settings = ClientSettings(base_url=srv.base_url, api_key=srv.api_key, timeout=20)
        assert export(config, settings=settings, concurrency=4, policy=FAST, incremental=True).exit_code == 0
        srv.load(data)  # m1 logged 500 more steps, m2 is new, m0 unchanged
        (planned,) = plan_export(config, settings=settings, concurrency=4, incremental=True)
        assert planned.reads.cached_runs == 1 and planned.reads.runs == 3
        srv.reset_stats()
        result = export(config, settings=settings, concurrency=4, policy=FAST, incremental=True)
        report = result.experiments["e"]
        assert result.exit_code == 0 and report.unchanged_runs == 1 and report.grown_runs == 1
        assert srv.stats()["history_requests"] == planned.reads.requests > 0


@pytest.mark.server
def test_explicit_clashing_fields_are_a_config_error_before_any_request(
    srv: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path, {"fields": ["a", "a.steps"]})
    for extra in (["--dry-run"], []):
        srv.reset_stats()
        assert cli(srv, str(cfg), *extra) == 2
        err = capsys.readouterr().err
        assert "experiment 'e', key 'fields'" in err and "rename a field" in err, err
        assert srv.stats()["requests"] == 0
