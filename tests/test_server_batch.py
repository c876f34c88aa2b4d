"""`sampledHistory(specs:)` on the nodes of a `runs` listing: many runs' samples in one request.

The real schema has the field on every Run node (wandb's own sweep query asks for it on
`sweep.runs` edges). These tests send the query with the real client's `execute_graphql`, the
way `wandb2numpy/client.py` sends its page query, and hold its answer to the per-run
`RunSampledHistory` answers, to the `Runs` listing's filters, order and pages, to `/_stats`,
and to the refusal a server without the field gives.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from wandb2numpy.testing import LocalServer, synthetic_project
from wandb2numpy.testing.protocol import batch_history_field, field_args, runs_listing
from wandb2numpy.testing.pytest_plugin import make_api

PATH = "demo/synthetic"

BATCH = """
query RunsSampledHistory($entity: String!, $project: String!, $filters: JSONString, $order: String,
                         $first: Int, $cursor: String, $specs: [JSONString!]!) {
    project(name: $project, entityName: $entity) {
        runCount
        runs(filters: $filters, order: $order, first: $first, after: $cursor) {
            edges { node { name sampledHistory(specs: $specs) } cursor }
            pageInfo { endCursor hasNextPage }
        }
    }
}
"""

# The per-run query wandb's `run.history(keys=...)` sends (wandb/apis/public/runs.py).
PER_RUN = """
query RunSampledHistory($project: String!, $entity: String!, $name: String!, $specs: [JSONString!]!) {
    project(name: $project, entityName: $entity) { run(name: $name) { sampledHistory(specs: $specs) } }
}
"""

SPECS = [
    {"keys": ["_step", "train/loss"], "samples": 7},  # downsampled: 60 rows
    {"keys": ["_step", "eval/return"], "samples": 100},  # every 10th step, all kept
    {"keys": ["_step", "train/loss", "eval/return"], "samples": 4},  # only rows holding both
    {"keys": ["_step", "train/return"], "minStep": 10, "maxStep": 30, "samples": 5},  # maxStep inclusive
    {"keys": ["_step", "train/return"], "minStep": 55, "maxStep": 80, "samples": 100},
    {"keys": ["_step", "no_such_key"], "samples": 10},
]


def project_data() -> dict[str, Any]:
    """For conftest's `server`/`srv` fixtures: 7 runs, groups ppo/sac/td3 in turn."""
    return synthetic_project(runs=7, steps=60, eval_every=10)


def batch(api: Any, specs: list[dict[str, Any]], **variables: Any) -> dict[str, Any]:
    """One batch request through wandb-core; returns `project`."""
    out = api._service_api.execute_graphql(
        BATCH,
        {
            "entity": "demo",
            "project": "synthetic",
            "specs": [json.dumps(s) for s in specs],
            **variables,
        },
    )
    project: dict[str, Any] = out["project"]
    return project


def per_run(api: Any, run_id: str, specs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    out = api._service_api.execute_graphql(
        PER_RUN,
        {"entity": "demo", "project": "synthetic", "name": run_id, "specs": [json.dumps(s) for s in specs]},
    )
    rows: list[list[dict[str, Any]]] = out["project"]["run"]["sampledHistory"]
    return rows


def all_pages(api: Any, specs: list[dict[str, Any]], **variables: Any) -> list[list[dict[str, Any]]]:
    """The edges of every page, following the last edge's cursor as wandb's listing does."""
    pages, cursor = [], None
    while True:
        runs = batch(api, specs, cursor=cursor, **variables)["runs"]
        pages.append(runs["edges"])
        if not runs["pageInfo"]["hasNextPage"]:
            return pages
        assert runs["pageInfo"]["endCursor"] == runs["edges"][-1]["cursor"]
        cursor = runs["edges"][-1]["cursor"]


def raw_post(srv: LocalServer, query: str, variables: dict[str, Any]) -> tuple[int, Any]:
    token = base64.b64encode(f"api:{srv.api_key}".encode()).decode()
    req = urllib.request.Request(
        srv.base_url + "/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


# ---- answers -----------------------------------------------------------------------------


def test_rows_equal_the_per_run_answers(srv: LocalServer) -> None:
    api = make_api(srv)
    project = batch(api, SPECS, first=50)
    edges = project["runs"]["edges"]
    assert project["runCount"] == 7 and len(edges) == 7
    for edge in edges:
        node = edge["node"]
        assert node["sampledHistory"] == per_run(api, node["name"], SPECS)
    loss, evals, both, window, tail, none = edges[0]["node"]["sampledHistory"]
    assert [r["_step"] for r in loss] == [0, 10, 20, 30, 39, 49, 59]
    assert [r["_step"] for r in evals] == list(range(0, 60, 10))
    assert all(set(r) == {"_step", "train/loss", "eval/return"} for r in both) and len(both) == 4
    assert [r["_step"] for r in window] == [10, 15, 20, 25, 30]
    assert [r["_step"] for r in tail] == list(range(55, 60)) and none == []


def test_a_spec_matches_the_clients_own_history_call(srv: LocalServer) -> None:
    api = make_api(srv)
    edges = batch(api, [{"keys": ["_step", "train/loss"], "samples": 9}], first=3)["runs"]["edges"]
    for edge in edges:
        run = api.run(f"{PATH}/{edge['node']['name']}")
        assert edge["node"]["sampledHistory"][0] == run.history(keys=["train/loss"], samples=9, pandas=False)


def test_listing_fields_come_with_the_history(srv: LocalServer) -> None:
    api = make_api(srv)
    node = batch(api, SPECS[:1], first=1)["runs"]["edges"][0]["node"]
    listed = next(iter(api.runs(PATH)))
    assert (node["name"], node["displayName"], node["group"]) == (listed.id, listed.name, listed.group)
    assert "summaryMetrics" not in node and len(node["sampledHistory"]) == 1
    full_query = BATCH.replace("node { name", "node { name summaryMetrics config")
    out = api._service_api.execute_graphql(
        full_query, {"entity": "demo", "project": "synthetic", "first": 1, "specs": [json.dumps(SPECS[0])]}
    )
    full = out["project"]["runs"]["edges"][0]["node"]
    assert json.loads(full["summaryMetrics"]) == dict(listed.summary)
    assert full["sampledHistory"] == node["sampledHistory"]


# ---- filters, order, pages ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "order"),
    [
        ({}, None),
        ({"group": {"$in": ["ppo", "sac"]}}, "-created_at"),
        ({"group": "td3"}, "+created_at"),
        ({"$or": [{"group": "ppo"}, {"jobType": "eval"}]}, "-summary_metrics.train/loss"),
    ],
)
def test_filters_order_and_pages_follow_the_listing(
    srv: LocalServer, filters: dict[str, Any], order: str | None
) -> None:
    api = make_api(srv)
    listed = [r.id for r in api.runs(PATH, filters=filters, order=order or "+created_at", per_page=2)]
    variables = {"filters": json.dumps(filters), "first": 2}
    if order is not None:
        variables["order"] = order
    pages = all_pages(api, SPECS[:1], **variables)
    assert [e["node"]["name"] for page in pages for e in page] == listed
    assert all(len(page) == 2 for page in pages[:-1]) and len(pages) == max(1, -(-len(listed) // 2))
    for page in pages:
        for edge in page:
            assert edge["node"]["sampledHistory"] == per_run(api, edge["node"]["name"], SPECS[:1])


def test_a_filter_the_service_rejects_is_an_error(srv: LocalServer) -> None:
    api = make_api(srv)
    with pytest.raises(Exception, match=r"\$bogus"):
        batch(api, SPECS[:1], filters=json.dumps({"state": {"$bogus": 1}}))


def test_missing_project_is_null(srv: LocalServer) -> None:
    api = make_api(srv)
    out = api._service_api.execute_graphql(BATCH, {"entity": "demo", "project": "nope", "specs": []})
    assert out["project"] is None


# ---- stats and faults --------------------------------------------------------------------


def test_counted_under_its_operation_name(srv: LocalServer) -> None:
    api = make_api(srv)
    srv.reset_stats()
    edges = batch(api, SPECS[:2], first=3)["runs"]["edges"]
    stats = srv.stats()
    assert stats["ops"] == {"RunsSampledHistory": 1} and stats["requests"] == 1
    assert stats["history_requests"] == 1
    assert stats["history_requests_by_run"] == {e["node"]["name"]: 1 for e in edges}  # each run asked for
    assert stats["rows_served"] == sum(len(rows) for e in edges for rows in e["node"]["sampledHistory"])
    assert [r["op"] for r in srv.request_log()] == ["RunsSampledHistory"]


def test_any_operation_name_gets_the_answer_and_counts_as_a_history_read(srv: LocalServer) -> None:
    """The issue's example names the query `Project`, the name the server also answers
    `api.project()` under: the shape, not the name, decides."""
    api = make_api(srv)
    srv.reset_stats()
    renamed = BATCH.replace("query RunsSampledHistory(", "query Project(")
    out = api._service_api.execute_graphql(
        renamed, {"entity": "demo", "project": "synthetic", "first": 2, "specs": [json.dumps(SPECS[0])]}
    )
    edges = out["project"]["runs"]["edges"]
    assert [e["node"]["sampledHistory"] for e in edges] == [per_run(api, e["node"]["name"], SPECS[:1]) for e in edges]
    stats = srv.stats()
    assert stats["ops"]["Project"] == 1 and stats["history_requests"] == 1 + 2  # + the two per-run reads


def test_fault_ops_target_it_and_leave_the_listing_alone(srv: LocalServer) -> None:
    api = make_api(srv)
    srv.set_faults(error_rate=1.0, fault_ops={"RunsSampledHistory"})
    with pytest.raises(Exception, match="HTTP 50[023]"):
        batch(api, SPECS[:1])
    assert len(list(make_api(srv).runs(PATH))) == 7
    stats = srv.stats()
    assert stats["injected_5xx"] >= 1 and stats["statuses"].get("200", 0) >= 2


def test_a_failing_run_fails_the_batch_that_holds_it(srv: LocalServer) -> None:
    api = make_api(srv)
    order = [r.id for r in api.runs(PATH)]
    srv.set_faults(fail_runs={order[3]})
    status_ok, _ = raw_post(
        srv, BATCH, {"entity": "demo", "project": "synthetic", "first": 3, "specs": [json.dumps(SPECS[0])]}
    )
    assert status_ok == 200  # runs 0-2 only
    with pytest.raises(urllib.error.HTTPError) as err:
        raw_post(srv, BATCH, {"entity": "demo", "project": "synthetic", "first": 4, "specs": [json.dumps(SPECS[0])]})
    assert err.value.code == 500
    with pytest.raises(Exception, match="HTTP 500"):
        batch(api, SPECS[:1], first=4)
    assert len(list(make_api(srv).runs(PATH))) == 7  # listing without history is not a history read


# ---- refusal -----------------------------------------------------------------------------


def test_refusal_gives_the_schema_error_while_per_run_history_works(srv: LocalServer) -> None:
    api = make_api(srv)
    srv.set_faults(batch_history=False)
    with pytest.raises(Exception, match=r'Cannot query field "sampledHistory" on type "Run"'):
        batch(api, SPECS[:1])
    status, body = raw_post(srv, BATCH, {"entity": "demo", "project": "synthetic", "specs": []})
    line = BATCH.count("\n", 0, BATCH.index("sampledHistory(")) + 1
    column = BATCH.index("sampledHistory(") - BATCH.rfind("\n", 0, BATCH.index("sampledHistory("))
    assert status == 200 and body["data"] is None
    message = 'Cannot query field "sampledHistory" on type "Run".'
    assert body["errors"] == [{"message": message, "locations": [{"line": line, "column": column}]}]
    ids = [r.id for r in make_api(srv).runs(PATH)]
    assert len(ids) == 7
    assert per_run(api, ids[0], SPECS[:1])[0] == api.run(f"{PATH}/{ids[0]}").history(
        keys=["train/loss"], samples=7, pandas=False
    )
    assert srv.stats()["ops"]["RunsSampledHistory"] == 2  # refused requests still count
    srv.reset_faults()
    assert len(batch(api, SPECS[:1])["runs"]["edges"]) == 7


def test_refusal_as_a_server_option_and_over_http(srv: LocalServer) -> None:
    with LocalServer(project_data(), batch_history=False) as other, pytest.raises(Exception, match="Cannot query"):
        batch(make_api(other), SPECS[:1])
    req = urllib.request.Request(srv.base_url + "/_faults", data=json.dumps({"batch_history": False}).encode())
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.loads(resp.read())["batch_history"] is False
    assert srv.faults.settings.batch_history is False
    srv.reset_faults()
    assert srv.faults.settings.batch_history is True


# ---- the query reader --------------------------------------------------------------------


def test_arguments_are_read_from_the_query_text() -> None:
    query = (
        'query Q($e: String!) { project(name: "p", entityName: $e) { id user { runs(first: 1) } note: "runs(x" '
        'runs(filters: $f, first: 3, after: $c, order: "-created_at") { edges { node { '
        "sampledHistory(specs: [$a, $b]) } } } } }"
    )
    listing = runs_listing(query)
    assert listing is not None
    assert field_args(listing.group(1), {"f": "{}", "c": None}) == {
        "filters": "{}",
        "first": 3,
        "after": None,
        "order": "-created_at",
    }
    sampled = batch_history_field(query)
    assert sampled is not None and field_args(sampled.group(1), {"a": "A", "b": "B"}) == {"specs": ["A", "B"]}
    assert batch_history_field(PER_RUN) is None  # one run's history is not a batch
    assert runs_listing("query Runs { project { id } }") is None
