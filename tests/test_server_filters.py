"""Run filters and ordering, through the real client, against a hand-written 8-run project.

The project (tests/data/server/fixture_project.json), by run number:

| # | name      | group | job   | tags               | state    | lr     | batch | env    | loss | acc  |
|---|-----------|-------|-------|--------------------|----------|--------|-------|--------|------|------|
| 1 | alpha-1   | ppo   | train | baseline           | finished | 0.001  | 32    | hopper | 0.5  | 0.9  |
| 2 | alpha-2   | ppo   | train | baseline, long     | finished | 0.0003 | 64    | walker | 0.3  | 0.95 |
| 3 | beta-1    | sac   | eval  | ablation           | running  | 0.001  | 32    | hopper | 0.8  | -    |
| 4 | beta-2    | sac   | train | (none)             | crashed  | 0.01   | -     | ant    | 1.2  | 0.5  |
| 5 | gamma-1   | -     | -     | long               | finished | 0.0001 | 128   | walker | -    | 0.7  |
| 6 | gamma-2   | td3   | eval  | baseline, ablation | failed   | 0.003  | 64    | hopper | 0.1  | 0.99 |
| 7 | Delta-run | td3   | train | (none)             | finished | 0.001  | 256   | -      | 0.2  | -    |
| 8 | eps       | ppo   | eval  | debug              | killed   | -      | -     | -      | -    | -    |

Created on 2024-01-0N. Run 1 has `use_norm: true`, run 3 `use_norm: false`, run 5 `notes: "first try"`,
run 7 `optimizer: "sgd"`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wandb2numpy.config.match import FilterError, matches
from wandb2numpy.testing import LocalServer
from wandb2numpy.testing.pytest_plugin import make_api

FIXTURE = Path(__file__).parent / "data" / "server" / "fixture_project.json"


def R(*numbers: int) -> list[str]:
    return [f"r000000{n}" for n in numbers]


ALL = R(1, 2, 3, 4, 5, 6, 7, 8)

FILTER_CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({}, ALL),
    ({"state": "finished"}, R(1, 2, 5, 7)),
    ({"state": {"$eq": "running"}}, R(3)),
    ({"state": {"$ne": "finished"}}, R(3, 4, 6, 8)),
    ({"state": {"$in": ["running", "crashed"]}, "group": "sac"}, R(3, 4)),
    ({"group": "ppo"}, R(1, 2, 8)),
    ({"group": {"$exists": False}}, R(5)),
    ({"group": None}, R(5)),
    ({"group": {"$in": ["sac", "td3"]}}, R(3, 4, 6, 7)),
    ({"group": {"$nin": ["sac", "td3"]}}, R(1, 2, 5, 8)),
    ({"jobType": "eval"}, R(3, 6, 8)),
    ({"job_type": {"$ne": "eval"}}, R(1, 2, 4, 5, 7)),
    ({"tags": "baseline"}, R(1, 2, 6)),
    ({"tags": {"$in": ["long", "debug"]}}, R(2, 5, 8)),
    ({"tags": {"$nin": ["baseline"]}}, R(3, 4, 5, 7, 8)),
    ({"tags": {"$ne": "ablation"}}, R(1, 2, 4, 5, 7, 8)),
    ({"tags": []}, R(4, 7)),
    ({"display_name": {"$regex": "^alpha"}}, R(1, 2)),
    ({"displayName": {"$regex": "delta", "$options": "i"}}, R(7)),
    ({"displayName": {"$regex": "delta"}}, []),
    ({"display_name": "eps"}, R(8)),
    ({"name": "r0000003"}, R(3)),
    ({"name": {"$in": ["r0000001", "r0000008", "nope"]}}, R(1, 8)),
    ({"createdAt": {"$gte": "2024-01-03T00:00:00Z", "$lt": "2024-01-06T00:00:00Z"}}, R(3, 4, 5)),
    ({"created_at": {"$gte": "2024-01-07"}}, R(7, 8)),
    ({"created_at": {"$lte": "2024-01-02T00:00:00"}}, R(1, 2)),
    ({"config.lr": 0.001}, R(1, 3, 7)),
    ({"config.lr.value": {"$gte": 0.003}}, R(4, 6)),
    ({"config.lr": {"$lt": 0.001}}, R(2, 5)),
    ({"config.lr": {"$in": [0.01, 0.003]}}, R(4, 6)),
    ({"config.lr": {"$gt": "0.001"}}, []),  # a string never compares with a number
    ({"config.batch": {"$exists": False}}, R(4, 8)),
    ({"config.batch": {"$gt": 32, "$lte": 128}}, R(2, 5, 6)),
    ({"config.env.name": "hopper"}, R(1, 3, 6)),
    ({"config.env.value.name": "walker"}, R(2, 5)),
    ({"config.use_norm": True}, R(1)),
    ({"config.use_norm": {"$ne": True}}, R(2, 3, 4, 5, 6, 7, 8)),
    ({"config.optimizer": "sgd"}, R(7)),
    ({"config.notes": {"$regex": "first"}}, R(5)),
    ({"summary_metrics.loss": {"$lt": 0.4}}, R(2, 6, 7)),
    ({"summaryMetrics.acc": {"$gte": 0.9}}, R(1, 2, 6)),
    ({"summary_metrics.acc": {"$exists": False}}, R(3, 7, 8)),
    ({"summary_metrics.loss": {"$ne": 0.5}}, R(2, 3, 4, 5, 6, 7, 8)),
    ({"summary_metrics.loss": {"$nin": [0.5, 0.3]}}, R(3, 4, 5, 6, 7, 8)),
    ({"$or": [{"group": "sac"}, {"tags": "debug"}]}, R(3, 4, 8)),
    ({"$and": [{"state": "finished"}, {"config.lr": {"$gte": 0.001}}]}, R(1, 7)),
    ({"$nor": [{"state": "finished"}, {"group": "sac"}]}, R(6, 8)),
    (
        {"$and": [{"$or": [{"jobType": "train"}, {"tags": "long"}]}, {"$nor": [{"state": "crashed"}]}]},
        R(1, 2, 5, 7),
    ),
    ({"displayName": {"$not": {"$regex": "^(alpha|beta)"}}}, R(5, 6, 7, 8)),
    ({"group": {"$eq": "td3"}, "config.batch": 256}, R(7)),
]

ORDER_CASES: list[tuple[str, list[str]]] = [
    ("+created_at", ALL),
    ("created_at", ALL),
    ("-created_at", R(8, 7, 6, 5, 4, 3, 2, 1)),
    ("+summary_metrics.loss", R(5, 8, 6, 7, 2, 1, 3, 4)),  # missing sorts first, like Mongo's null
    ("-summary_metrics.loss", R(4, 3, 1, 2, 7, 6, 5, 8)),
    ("config.lr", R(8, 5, 2, 1, 3, 7, 6, 4)),
    ("-config.lr.value", R(4, 6, 1, 3, 7, 2, 5, 8)),
    ("+display_name", R(7, 1, 2, 3, 4, 8, 5, 6)),  # byte order: "D" < "a"
]


def project_data() -> Path:
    """For conftest's `server` fixture: the hand-written fixture project."""
    return FIXTURE


@pytest.fixture(scope="module")
def api(server: LocalServer) -> Any:
    return make_api(server)


def _id(case: Any) -> str:
    return str(case)[:60]


@pytest.mark.parametrize(("filters", "expected"), FILTER_CASES, ids=[_id(c[0]) for c in FILTER_CASES])
def test_filter_through_client(api: Any, filters: dict[str, Any], expected: list[str]) -> None:
    runs = api.runs("acme/rl", filters=filters, per_page=3)
    assert [r.id for r in runs] == expected
    assert len(runs) == len(expected)


@pytest.mark.parametrize(("order", "expected"), ORDER_CASES, ids=[c[0] for c in ORDER_CASES])
def test_order_through_client(api: Any, order: str, expected: list[str]) -> None:
    assert [r.id for r in api.runs("acme/rl", order=order, per_page=5)] == expected


def test_filter_and_order_with_pagination(api: Any) -> None:
    runs = api.runs("acme/rl", filters={"state": {"$ne": "killed"}}, order="-config.lr", per_page=2)
    assert [r.id for r in runs] == R(4, 6, 1, 3, 7, 2, 5)


def test_unknown_operator_is_an_error(api: Any) -> None:
    with pytest.raises(Exception, match=r"unknown operator \$foo"):
        list(api.runs("acme/rl", filters={"state": {"$foo": 1}}))
    with pytest.raises(FilterError):
        matches({"state": "x"}, {"$xor": []})


def test_dotted_literal_keys_and_nested_lists() -> None:
    doc = {"summary_metrics": {"eval/acc.top1": 0.5, "m": {"a": [1, 2]}}, "config": {"lr": {"value": 3}}, "tags": []}
    assert matches(doc, {"summary_metrics.eval/acc.top1": 0.5})
    assert matches(doc, {"summary_metrics.m.a": 2})  # array field: any element
    assert matches(doc, {"config.lr.value": 3}) and matches(doc, {"config.lr": {"value": 3}})
