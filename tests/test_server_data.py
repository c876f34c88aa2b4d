"""The server's data: the synthetic project's fixed schema and the JSON/dict loader."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from wandb2numpy.testing import LocalServer, synthetic_project
from wandb2numpy.testing.history import History, sample_indices
from wandb2numpy.testing.synthetic import metric_names

pytestmark = pytest.mark.server  # every test here talks to a local server it starts


def test_synthetic_schema_exactly() -> None:
    runs = synthetic_project()["projects"][0]["runs"]
    assert len(runs) == 12
    for i, run in enumerate(runs):
        group = ["ppo", "sac", "td3"][i % 3]
        env = ["hopper", "walker"][i % 2]
        assert run["group"] == group
        assert run["job_type"] == ["train", "eval"][(i // 3) % 2]
        assert run["tags"] == [["baseline"], ["ablation"], ["baseline", "long"], []][i % 4]
        assert run["config"] == {
            "lr": [1e-4, 3e-4, 1e-3][(i // 2) % 3],
            "seed": i % 5,
            "env": {"name": env},
            "optimizer": {"name": "adam", "betas": [0.9, 0.999]},
        }
        assert run["name"] == f"{group}-{env}-s{i % 5}-{i}"
        assert run["state"] == ("running" if i % 7 == 6 else "crashed" if i % 11 == 10 else "finished")
        assert run["created_at"] == f"2024-01-01T00:{i:02d}:00Z"
        assert re.fullmatch(r"[0-9a-z]{8}", run["id"])
        assert [r["_step"] for r in run["history"]] == list(range(200))
    assert len({r["id"] for r in runs}) == 12


def test_synthetic_metrics_and_eval_cadence() -> None:
    assert metric_names(10)[-3:] == ["eval/episode_length", "metric_8", "metric_9"]
    run = synthetic_project(runs=1, steps=30, metrics=10, eval_every=7)["projects"][0]["runs"][0]
    rows = run["history"]
    assert [r["_step"] for r in rows if "eval/return" in r] == [0, 7, 14, 21, 28]
    assert all("train/loss" in r and "metric_9" in r for r in rows)
    assert run["summary"]["train/loss"] == rows[-1]["train/loss"]
    assert run["summary"]["eval/return"] == rows[28]["eval/return"]
    every = synthetic_project(runs=1, steps=5, eval_every=1)["projects"][0]["runs"][0]["history"]
    assert all("eval/success_rate" in r for r in every)


def test_synthetic_curves_are_realistic() -> None:
    rows = synthetic_project(runs=1, steps=1000)["projects"][0]["runs"][0]["history"]
    ret = np.array([r["train/return"] for r in rows])
    loss = np.array([r["train/loss"] for r in rows])
    assert ret[-100:].mean() > ret[:100].mean() + 500 and loss[-100:].mean() < loss[:100].mean() / 2
    assert (loss > 0).all()


def test_synthetic_is_deterministic_for_a_seed() -> None:
    a = synthetic_project(runs=5, steps=20, seed=1)
    assert a == synthetic_project(runs=5, steps=20, seed=1)
    b = synthetic_project(runs=5, steps=20, seed=2)
    assert {r["id"] for r in a["projects"][0]["runs"]}.isdisjoint(r["id"] for r in b["projects"][0]["runs"])
    columnar = synthetic_project(runs=5, steps=20, seed=1, columnar=True)["projects"][0]["runs"][3]["history"]
    assert columnar.rows(np.arange(20)) == a["projects"][0]["runs"][3]["history"]


def test_large_synthetic_project_is_columnar() -> None:
    data = synthetic_project(runs=64, steps=20_000, metrics=4, columnar=True)
    server = LocalServer(data)
    runs = list(server.backend.runs())
    assert len(runs) == 64 and all(len(r.history) == 20_000 for r in runs)
    assert isinstance(runs[0].history.columns["train/loss"].values, np.ndarray)


def test_loader_accepts_bare_nan_tokens_and_wire_strings(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(
        '{"projects": [{"entity": "e", "name": "p", "runs": [{"id": "x", "history": ['
        '{"_step": 0, "a": NaN, "b": "Infinity"}, {"_step": 1, "a": -Infinity}, {"a": 2.5}]}]}]}'
    )
    server = LocalServer(path)
    run = server.backend.run("e", "p", "x")
    assert run is not None and server.entity == "e" and server.project == "p"
    rows = run.history.rows(np.arange(3))
    assert [r["a"] for r in rows] == ["NaN", "-Infinity", 2.5]
    assert rows[0]["b"] == "Infinity" and rows[2]["_step"] == 2  # a row without _step follows the last
    assert json.loads(run.full_json)["summaryMetrics"] == json.dumps(
        {"_step": 2, "_runtime": 2.0, "_timestamp": 1704067202.0, "a": 2.5, "b": "Infinity"}
    )


def test_history_rows_merge_and_sort() -> None:
    h = History.from_rows(
        [{"_step": 3, "x": 1}, {"_step": 1, "y": "s"}, {"_step": 3, "z": True}, {"_step": 2, "x": None}]
    )
    assert h.steps.tolist() == [1, 2, 3]
    rows = h.rows(np.arange(3), ["x", "y", "z"])
    assert rows == [{"y": "s"}, {}, {"x": 1, "z": True}]  # a logged null counts as absent
    assert h.history_keys()["keys"]["z"] == {"typeCounts": [{"type": "boolean", "count": 1}]}


@pytest.mark.parametrize(
    ("n", "samples", "expected"),
    [
        (10, 20, list(range(10))),
        (10, 10, list(range(10))),
        (10, 4, [0, 3, 6, 9]),
        (10, 1, [0]),
        (10, 0, []),
        (0, 5, []),
    ],
)
def test_sample_indices(n: int, samples: int, expected: list[int]) -> None:
    assert sample_indices(np.arange(n), samples).tolist() == expected
    if 1 < samples <= n:
        picked = sample_indices(np.arange(n), samples)
        assert len(set(picked.tolist())) == samples and picked[0] == 0 and picked[-1] == n - 1
        gaps = np.diff(picked)
        assert gaps.max() - gaps.min() <= 1


def test_issue_example_loads_from_a_dict() -> None:
    example = {
        "projects": [
            {
                "entity": "acme",
                "name": "rl",
                "runs": [
                    {
                        "id": "a1b2c3d4",
                        "name": "eager-fox-1",
                        "group": "ppo",
                        "job_type": "train",
                        "tags": ["baseline"],
                        "state": "finished",
                        "created_at": "2024-01-01T00:00:00Z",
                        "config": {"lr": 0.001, "env": {"name": "hopper"}},
                        "summary": {"return": 3000.0},
                        "history": [{"_step": 0, "loss": 1.0, "return": 10.0}, {"_step": 1, "loss": 0.9}],
                    }
                ],
            }
        ]
    }
    server = LocalServer(example)
    run = server.backend.run("acme", "rl", "a1b2c3d4")
    assert run is not None and run.summary == {"return": 3000.0}  # a given summary is kept as is
    assert run.history.history_keys()["keys"]["return"] == {"typeCounts": [{"type": "number", "count": 1}]}
    assert json.loads(run.full_json)["config"] == json.dumps(
        {"lr": {"value": 0.001, "desc": None}, "env": {"value": {"name": "hopper"}, "desc": None}}
    )
