"""The W&B run filter built from a config: a table of configs and the exact filter each must give."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wandb2numpy.config import ExperimentConfig, load_config, parse_config
from wandb2numpy.config.filters import build_filters, describe_filters

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "example_configs"
BASE = {"entity": "demo", "project": "synthetic", "fields": ["train/return"], "output_path": "wandb_data"}


def exp(**settings: Any) -> ExperimentConfig:
    (e,) = parse_config({"DEFAULT": BASE, "e": settings})
    return e


CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("nothing", {}, {}),
    ("all everywhere", {"groups": "all", "job_types": "all", "runs": ["all"], "tags": "all"}, {}),
    ("one group", {"groups": ["ppo"]}, {"group": "ppo"}),
    (
        "one group with job types",
        {"groups": ["ppo"], "job_types": [["train", "eval"]]},
        {"$and": [{"group": "ppo"}, {"jobType": {"$in": ["train", "eval"]}}]},
    ),
    (
        "two groups",
        {"groups": ["ppo", "sac"]},
        {"$or": [{"group": "ppo"}, {"group": "sac"}]},
    ),
    (
        "nested job types, runs, tags",
        {
            "groups": ["ppo", "sac"],
            "job_types": [["train"], "all"],
            "runs": ["all", ["sac-walker-s1-1"]],
            "tags": [["baseline", "long"], "all"],
        },
        {
            "$or": [
                {"$and": [{"group": "ppo"}, {"jobType": {"$in": ["train"]}}, {"tags": {"$in": ["baseline", "long"]}}]},
                {"$and": [{"group": "sac"}, {"display_name": {"$in": ["sac-walker-s1-1"]}}]},
            ]
        },
    ),
    ("job types without groups", {"job_types": ["eval"]}, {"jobType": {"$in": ["eval"]}}),
    (
        "flat job types, runs, tags",
        {"job_types": ["train"], "runs": ["a", "b"], "tags": ["x"]},
        {"$and": [{"jobType": {"$in": ["train"]}}, {"display_name": {"$in": ["a", "b"]}}, {"tags": {"$in": ["x"]}}]},
    ),
    ("tags only", {"tags": ["baseline", "ablation"]}, {"tags": {"$in": ["baseline", "ablation"]}}),
    ("config values", {"config": {"lr": {"values": [0.0003, 0.001]}}}, {"config.lr": {"$in": [0.0003, 0.001]}}),
    (
        "config scalar value",
        {"config": {"optimizer.name": {"values": "adam"}}},
        {"config.optimizer.name": {"$in": ["adam"]}},
    ),
    ("config min", {"config": {"seed": {"min": 1}}}, {"config.seed": {"$gte": 1}}),
    ("config max", {"config": {"seed": {"max": 3}}}, {"config.seed": {"$lte": 3}}),
    (
        "config range and values",
        {"config": {"seed": {"values": [0, 1, 2], "min": 1, "max": 2}}},
        {"config.seed": {"$in": [0, 1, 2], "$gte": 1, "$lte": 2}},
    ),
    (
        "dotted config key",
        {"config": {"sampler.args.env_id": {"values": ["BoxPushingDenseProDMP-v0"]}}},
        {"config.sampler.args.env_id": {"$in": ["BoxPushingDenseProDMP-v0"]}},
    ),
    (
        "summary range",
        {"summary": {"train/return": {"min": 0, "max": 1000.5}}},
        {"summary_metrics.train/return": {"$gte": 0, "$lte": 1000.5}},
    ),
    (
        "config and summary",
        {
            "config": {"lr": {"values": [0.001]}, "env.name": {"values": ["hopper"]}},
            "summary": {"eval/success_rate": {"min": 0.5}},
        },
        {
            "$and": [
                {"config.lr": {"$in": [0.001]}},
                {"config.env.name": {"$in": ["hopper"]}},
                {"summary_metrics.eval/success_rate": {"$gte": 0.5}},
            ]
        },
    ),
    (
        "one group, flattened with config",
        {"groups": ["ppo"], "tags": [["baseline"]], "config": {"lr": {"max": 0.001}}},
        {"$and": [{"group": "ppo"}, {"tags": {"$in": ["baseline"]}}, {"config.lr": {"$lte": 0.001}}]},
    ),
    (
        "groups or-ed, then and-ed with config and summary",
        {"groups": ["ppo", "td3"], "config": {"seed": {"values": [0]}}, "summary": {"x": {"max": 1}}},
        {
            "$and": [
                {"$or": [{"group": "ppo"}, {"group": "td3"}]},
                {"config.seed": {"$in": [0]}},
                {"summary_metrics.x": {"$lte": 1}},
            ]
        },
    ),
    (
        "values of mixed types kept verbatim",
        {"config": {"flag": {"values": [True, None, "x", 1]}}},
        {"config.flag": {"$in": [True, None, "x", 1]}},
    ),
    (
        "comma inside a job type is one job type",
        {"groups": ["g"], "job_types": [["run_1, run_2"]]},
        {"$and": [{"group": "g"}, {"jobType": {"$in": ["run_1, run_2"]}}]},
    ),
]


@pytest.mark.parametrize("settings, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_build_filters(settings: dict[str, Any], expected: dict[str, Any]) -> None:
    assert build_filters(exp(**settings)) == expected


def test_filter_is_json_and_fresh() -> None:
    import json

    e = exp(groups=["ppo", "sac"], tags=[["a"], ["b"]], config={"lr": {"values": [0.1]}})
    first = build_filters(e)
    json.dumps(first)  # what the client sends
    first["$and"].clear()
    assert build_filters(e) != first  # no shared state with the config


def test_original_example_config() -> None:
    path = Path(__file__).resolve().parent / "data" / "seed_configs" / "user-configs" / "example_config.yaml"
    e1, e2 = load_config(path)
    g1 = "fmnist_dropout_cnn_adam_standard_hpo_algo_1_env_1"
    g2 = "fmnist_dropout_cnn_new_gmore_elbo_mean_kl_standard_hpo_algo_1_env_1"
    runs = {"display_name": {"$in": ["exp_rep_00", "exp_rep_03"]}}
    assert build_filters(e1) == {
        "$and": [
            {
                "$or": [
                    {"$and": [{"group": g1}, {"jobType": {"$in": ["run_1"]}}, runs]},
                    {"$and": [{"group": g2}, {"jobType": {"$in": ["run_1, run_2"]}}, runs]},
                ]
            },
            {"config.config_name": {"$in": ["hp_eval_config_0.yml", "hp_eval_config_1.yml"]}},
            {"summary_metrics.best_test_acc": {"$gte": 0.92, "$lte": 0.921}},
        ]
    }
    assert build_filters(e2) == {"$or": [{"$and": [{"group": g1}, runs]}, {"group": g2}]}


# --------------------------------------------------------------------------- describe_filters


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({}, "all runs"),
        ({"groups": ["ppo"]}, "group=ppo"),
        (
            {"groups": ["ppo", "sac"], "job_types": [["train"], "all"]},
            "(group=ppo and job_type in [train]) or group=sac",
        ),
        ({"tags": ["a", "b", "c", "d", "e"]}, "tags any of [a, b, c, ... (+2)]"),
        (
            {"runs": ["r"], "config": {"lr": {"values": [0.001]}, "seed": {"min": 0, "max": 2}}},
            "run in [r]; config.lr in [0.001]; 0 <= config.seed <= 2",
        ),
        ({"summary": {"a": {"min": 1}, "b": {"max": 2}}}, "summary.a >= 1; summary.b <= 2"),
    ],
)
def test_describe_filters(settings: dict[str, Any], expected: str) -> None:
    assert describe_filters(exp(**settings)) == expected


# --------------------------------------------------------------------------- example configs vs. the synthetic project


def _synthetic_docs() -> list[dict[str, Any]]:
    from wandb2numpy.testing.backend import run_from_json
    from wandb2numpy.testing.synthetic import synthetic_project

    (project,) = synthetic_project(runs=12, steps=30, columnar=True)["projects"]
    docs = []
    for spec in project["runs"]:
        record = run_from_json(project["entity"], project["name"], spec, 1)
        record.finalize()
        docs.append(record.doc)
    return docs


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES_DIR.glob("*.yaml")))
def test_example_experiments_match_synthetic_runs(name: str) -> None:
    """Each example experiment finds runs in the demo project (12 runs: the smallest the server serves by default)."""
    from wandb2numpy.config.match import matches

    docs = _synthetic_docs()
    for e in load_config(EXAMPLES_DIR / name):
        hits = [d["display_name"] for d in docs if matches(d, build_filters(e))]
        assert hits, f"{name}: experiment {e.name} matches no synthetic run ({describe_filters(e)})"


def test_groups_and_filters_example_selects_what_its_comments_say() -> None:
    from wandb2numpy.config.match import matches

    docs = _synthetic_docs()
    found = {
        e.name: [d["display_name"] for d in docs if matches(d, build_filters(e))]
        for e in load_config(EXAMPLES_DIR / "groups_and_filters.yaml")
    }
    assert found == {
        "ppo_train_vs_sac": ["ppo-hopper-s0-0", "sac-walker-s1-1", "sac-hopper-s4-4", "ppo-hopper-s1-6"],
        "eval_lr_sweep": ["td3-walker-s0-5", "sac-hopper-s0-10"],
        "two_runs": ["ppo-hopper-s0-0", "td3-hopper-s2-2"],
    }
