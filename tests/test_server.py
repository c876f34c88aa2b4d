"""The local W&B server driven by the unmodified wandb client: listing, runs, history, stats."""

from __future__ import annotations

import base64
import json
import math
import socket
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import wandb

import wandb2numpy.testing as testing
from wandb2numpy.testing import DEFAULT_API_KEY, LocalServer, local_server
from wandb2numpy.testing.pytest_plugin import make_api

pytestmark = pytest.mark.server  # every test here talks to a local server it starts

pytest_plugins = ["wandb2numpy.testing.pytest_plugin"]

FIXTURE = Path(__file__).parent / "data" / "server" / "fixture_project.json"
RUN_IDS = [f"r000000{i}" for i in range(1, 9)]


@pytest.fixture(scope="module")
def fixture_server() -> Any:
    with LocalServer(FIXTURE) as server:
        yield server


@pytest.fixture
def api(fixture_server: LocalServer) -> Any:
    fixture_server.reset_stats()
    fixture_server.reset_faults()
    return make_api(fixture_server)


def post_graphql(server: LocalServer, query: str, variables: dict[str, Any], key: str | None = None) -> Any:
    token = base64.b64encode(f"api:{key or server.api_key}".encode()).decode()
    req = urllib.request.Request(
        server.base_url + "/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def control(server: LocalServer, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(server.base_url + path, data=data), timeout=10) as resp:
        return json.loads(resp.read())


def first_run_id(server: LocalServer) -> str:
    return server.backend.projects()[0].query(None, None)[0].id


def ops(server: LocalServer) -> list[str]:
    return [r["op"] for r in server.request_log()]


# ---- surface -----------------------------------------------------------------------------


def test_public_surface() -> None:
    assert set(testing.__all__) == {
        "DEFAULT_API_KEY",
        "FAST_RETRIES",
        "DEFAULT_HOST",
        "FaultSettings",
        "LocalServer",
        "local_server",
        "synthetic_project",
    }
    prefix, _, body = DEFAULT_API_KEY.partition("-")
    assert prefix == "local" and len(body) >= 40 and body.replace("_", "").isalnum()


def test_context_manager_gives_url_and_key() -> None:
    with local_server(runs=2, steps=3) as srv:
        assert srv.base_url.startswith("http://127.0.0.1:") and srv.port > 0
        assert (srv.entity, srv.project, srv.api_key) == ("demo", "synthetic", DEFAULT_API_KEY)
        assert control(srv, "/_health")["ok"] is True
    assert not srv.running


# ---- listing -----------------------------------------------------------------------------


def test_list_runs_lazy(api: Any, fixture_server: LocalServer) -> None:
    runs = api.runs("acme/rl")
    assert len(runs) == 8
    listed = list(runs)
    assert [r.id for r in listed] == RUN_IDS
    first = listed[0]
    assert (first.name, first.group, first.job_type, first.state) == ("alpha-1", "ppo", "train", "finished")
    assert first.tags == ["baseline"] and first.created_at == "2024-01-01T00:00:00Z"
    assert first.lastHistoryStep == 4 and first.historyLineCount == 5
    assert first._attrs["sweepName"] is None and isinstance(first._attrs["projectId"], int)
    assert listed[4].group is None and listed[4].job_type is None
    assert ops(fixture_server).count("Run") == 0  # lazy listing sends no per-run query...
    assert first.config == {"lr": 0.001, "batch": 32, "env": {"name": "hopper"}, "use_norm": True}
    assert first.summary["acc"] == 0.9
    assert ops(fixture_server).count("Run") == 1  # ...until config/summary is read


def test_list_runs_full_has_config_summary_and_history_keys(fixture_server: LocalServer) -> None:
    api = make_api(fixture_server)  # fresh: Api caches Runs per path+filters+order
    fixture_server.reset_stats()
    listed = list(api.runs("acme/rl", lazy=False))
    assert listed[1].config == {"lr": 0.0003, "batch": 64, "env": {"name": "walker"}}
    assert listed[1].summary_metrics == {"loss": 0.3, "acc": 0.95}
    assert listed[0].history_keys == {
        "keys": {
            k: {"typeCounts": [{"type": "number", "count": 5}]} for k in ("_step", "_runtime", "_timestamp", "loss")
        },
        "lastStep": 4,
    }
    assert listed[7].history_keys == {"keys": {}, "lastStep": -1}
    assert ops(fixture_server) == ["Runs"]  # no N+1 Run queries


@pytest.mark.parametrize("lazy", [True, False])
def test_pagination_follows_last_edge_cursor(fixture_server: LocalServer, lazy: bool) -> None:
    api = make_api(fixture_server)
    fixture_server.reset_stats()
    assert [r.id for r in api.runs("acme/rl", per_page=3, lazy=lazy)] == RUN_IDS
    requests = [r["variables"] for r in fixture_server.request_log() if r["op"] == "Runs"]
    assert [v["perPage"] for v in requests] == [3, 3, 3]
    assert requests[0]["cursor"] is None
    assert len({v["cursor"] for v in requests}) == 3


def test_runs_page_shape_over_raw_http(fixture_server: LocalServer) -> None:
    query = "query Runs($project: String!, $entity: String!, $cursor: String, $perPage: Int = 50) { project { id } }"
    page = post_graphql(fixture_server, query, {"entity": "acme", "project": "rl", "perPage": 5, "filters": "{}"})
    proj = page["data"]["project"]
    assert proj["runCount"] == 8 and len(proj["runs"]["edges"]) == 5
    assert proj["runs"]["pageInfo"] == {"endCursor": proj["runs"]["edges"][-1]["cursor"], "hasNextPage": True}
    rest = post_graphql(
        fixture_server,
        query,
        {"entity": "acme", "project": "rl", "perPage": 5, "cursor": proj["runs"]["pageInfo"]["endCursor"]},
    )["data"]["project"]["runs"]
    assert [e["node"]["name"] for e in rest["edges"]] == RUN_IDS[5:] and rest["pageInfo"]["hasNextPage"] is False


def test_api_run_and_missing_things(api: Any) -> None:
    run = api.run("acme/rl/r0000003")
    assert (run.id, run.name, run.state) == ("r0000003", "beta-1", "running")
    with pytest.raises(wandb.errors.CommError, match="Could not find run"):
        api.run("acme/rl/nope")
    with pytest.raises(ValueError, match="Could not find project"):
        list(api.runs("acme/nope"))


def test_default_entity_from_viewer(fixture_server: LocalServer) -> None:
    fixture_server.reset_stats()
    api = wandb.Api(api_key=fixture_server.api_key, overrides={"base_url": fixture_server.base_url})
    assert api.default_entity == "acme"
    assert ops(fixture_server)[:2] == ["Viewer", "GetDefaultEntity"]


# ---- history -----------------------------------------------------------------------------


def test_history_keys_types(api: Any) -> None:
    run = api.run("acme/media/m0000001")
    full = run.load_full_data()["historyKeys"]
    assert full["lastStep"] == 6
    types = {k: {t["type"]: t["count"] for t in v["typeCounts"]} for k, v in full["keys"].items()}
    assert types["loss"] == {"number": 6}  # NaN and infinities are numbers
    assert types["return"] == {"number": 4}
    assert types["done"] == {"boolean": 2}
    assert types["phase"] == {"string": 2}
    assert types["hist"] == {"histogram": 1}
    assert types["img"] == {"image-file": 1}
    assert run.lastHistoryStep == 6


def test_sampled_history_only_rows_with_every_key(api: Any) -> None:
    run = api.run("acme/media/m0000001")
    rows = run.history(keys=["loss", "return"], pandas=False)
    assert rows == [
        {"_step": 0, "loss": 1.0, "return": 10.0},
        {"_step": 2, "loss": "NaN", "return": "Infinity"},
        {"_step": 3, "loss": 0.7, "return": "-Infinity"},
        {"_step": 5, "loss": 0.5, "return": 14.0},
    ]
    assert run.history(keys=["done", "phase"], pandas=False) == [
        {"_step": 0, "done": False, "phase": "warmup"},
        {"_step": 3, "done": True, "phase": "train"},
    ]
    assert run.history(keys=["loss", "no_such_key"], pandas=False) == []


def test_history_without_keys_is_full_rows(api: Any) -> None:
    rows = api.run("acme/media/m0000001").history(pandas=False)
    assert [r["_step"] for r in rows] == [0, 1, 2, 3, 5, 6]
    assert rows[0]["hist"] == {"_type": "histogram", "values": [1, 2, 3], "bins": [0, 1, 2, 3]}
    assert rows[1] == {"_step": 1, "_runtime": 1.0, "_timestamp": 1706745601.0, "loss": 0.9}  # filled in
    assert rows[5]["_runtime"] == 60.5 and rows[5]["_timestamp"] == 1704067260.5  # kept as logged
    assert rows[4]["img"]["_type"] == "image-file"


def test_default_summary_is_last_values(api: Any) -> None:
    summary = dict(api.run("acme/media/m0000001").summary)
    assert summary["loss"] == 0.4 and summary["return"] == 14.0 and summary["done"] is True
    assert summary["_step"] == 6 and summary["hist"]["_type"] == "histogram"


def test_sampling_is_even_deterministic_and_complete(wandb_server_reset: LocalServer) -> None:
    api = make_api(wandb_server_reset)
    run = api.run(f"demo/synthetic/{first_run_id(wandb_server_reset)}")
    rows = run.history(keys=["train/loss"], samples=10, pandas=False)
    assert [r["_step"] for r in rows] == np.rint(np.linspace(0, 199, 10)).astype(int).tolist()
    assert rows == run.history(keys=["train/loss"], samples=10, pandas=False)
    assert [r["_step"] for r in run.history(keys=["train/loss"], samples=500, pandas=False)] == list(range(200))
    assert [r["_step"] for r in run.history(keys=["eval/return"], pandas=False)] == list(range(0, 200, 10))
    both = run.history(keys=["train/loss", "eval/return"], samples=5, pandas=False)
    assert [r["_step"] for r in both] == [0, 50, 100, 140, 190]  # 20 co-logged rows, 5 evenly spread


def test_multiple_specs_get_their_own_lists(wandb_server: LocalServer) -> None:
    run_id = first_run_id(wandb_server)
    query = "query RunSampledHistory($project: String!, $entity: String!, $name: String!, $specs: [JSONString!]!) { x }"
    specs = [
        json.dumps({"keys": ["_step", "train/loss"], "samples": 3}),
        json.dumps({"keys": ["_step", "eval/return"], "samples": 2}),
    ]
    out = post_graphql(wandb_server, query, {"entity": "demo", "project": "synthetic", "name": run_id, "specs": specs})
    first, second = out["data"]["project"]["run"]["sampledHistory"]
    assert [sorted(r) for r in first] == [["_step", "train/loss"]] * 3
    assert [r["_step"] for r in second] == [0, 190] and all("eval/return" in r for r in second)


def test_scan_history_with_keys_and_step_window(wandb_server_reset: LocalServer) -> None:
    api = make_api(wandb_server_reset)
    run_id = first_run_id(wandb_server_reset)
    run = api.run(f"demo/synthetic/{run_id}")
    wandb_server_reset.reset_stats()
    rows = list(run.scan_history(keys=["train/loss"], page_size=37, min_step=5, max_step=120))
    assert [r["_step"] for r in rows] == list(range(5, 120))
    sampled = {r["_step"]: r["train/loss"] for r in run.history(keys=["train/loss"], samples=1000, pandas=False)}
    assert all(math.isclose(r["train/loss"], sampled[r["_step"]]) for r in rows)
    pages = [
        json.loads(r["variables"]["spec"]) for r in wandb_server_reset.request_log() if r["op"] == "SampledHistoryPage"
    ]
    assert [(p["minStep"], p["maxStep"]) for p in pages] == [(5, 41), (42, 78), (79, 115), (116, 119)]
    assert [r["_step"] for r in run.scan_history(keys=["eval/return"], page_size=64)] == list(range(0, 200, 10))
    assert wandb_server_reset.stats()["history_requests_by_run"][run_id] >= 6


def test_scan_history_without_keys(api: Any, fixture_server: LocalServer) -> None:
    rows = list(api.run("acme/media/m0000001").scan_history(page_size=2))
    assert [r["_step"] for r in rows] == [0, 1, 2, 3, 5, 6]
    assert rows[0]["hist"]["_type"] == "histogram" and rows[0]["done"] is False and rows[0]["phase"] == "warmup"
    assert rows[2]["loss"] == "NaN" and rows[3]["return"] == "-Infinity"
    pages = [r["variables"] for r in fixture_server.request_log() if r["op"] == "HistoryPage"]
    assert [(p["minStep"], p["maxStep"]) for p in pages] == [(0, 2), (2, 4), (4, 6), (6, 7)]


def test_scan_history_of_run_without_history(api: Any) -> None:
    assert list(api.run("acme/rl/r0000008").scan_history()) == []


# ---- stats, control routes, lifecycle -----------------------------------------------------


def test_stats_count_ops_rows_and_history_requests(api: Any, fixture_server: LocalServer) -> None:
    run = api.run("acme/rl/r0000002")
    run.history(keys=["loss"], pandas=False)
    stats = control(fixture_server, "/_stats")
    assert stats["ops"]["Viewer"] == 1 and stats["ops"]["Run"] == 1 and stats["ops"]["RunSampledHistory"] == 1
    assert stats["rows_served"] == 5 and stats["history_requests"] == 1
    assert stats["history_requests_by_run"] == {"r0000002": 1}
    assert stats["requests"] == 3 and stats["max_in_flight"] >= 1 and stats["in_flight"] == 0
    control(fixture_server, "/_stats/reset", {})
    assert fixture_server.stats()["requests"] == 0  # control routes are never counted


def test_faults_can_be_read_and_changed_over_http(fixture_server: LocalServer) -> None:
    changed = control(fixture_server, "/_faults", {"latency_ms": 1, "fault_ops": ["Runs"], "fail_runs": ["x"]})
    assert changed["latency_ms"] == 1 and changed["fault_ops"] == ["Runs"] and changed["fail_runs"] == ["x"]
    assert control(fixture_server, "/_faults")["latency_ms"] == 1
    assert fixture_server.faults.settings.fault_ops == frozenset({"Runs"})
    fixture_server.reset_faults()
    assert fixture_server.faults.settings.latency_ms == 0


def test_load_replaces_a_project_at_runtime() -> None:
    with local_server(runs=3, steps=5) as srv:
        srv.load({"projects": [{"entity": "demo", "name": "synthetic", "runs": [{"id": "only1", "history": []}]}]})
        api = make_api(srv)
        assert [r.id for r in api.runs("demo/synthetic")] == ["only1"]
        srv.load({"projects": [{"entity": "demo", "name": "other", "runs": [{"id": "x"}, {"id": "y"}]}]})
        assert len(make_api(srv).runs("demo/other")) == 2


def test_stop_then_start_on_the_same_port() -> None:
    with local_server(runs=2, steps=5) as srv:
        api = make_api(srv)
        port = srv.port
        srv.stop()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        srv.start()
        assert srv.port == port
        assert len(list(api.runs("demo/synthetic"))) == 2  # the old client reconnects


def test_unknown_routes_and_otel_are_404(fixture_server: LocalServer) -> None:
    for path in ("/sdk/otel/v1/metrics", "/nothing"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(urllib.request.Request(fixture_server.base_url + path, data=b"x"), timeout=5)
        assert err.value.code == 404


def test_download_history_exports_without_parquet_mode_is_all_live(api: Any, tmp_path: Path) -> None:
    from wandb.apis.public.runhistory import IncompleteRunHistoryError

    run = api.run("acme/rl/r0000001")
    with pytest.raises(IncompleteRunHistoryError):
        run.download_history_exports(tmp_path)
    result = run.download_history_exports(tmp_path, require_complete_history=False)
    assert result.paths == [] and result.contains_live_data is True


def test_control_routes_never_get_faults(fixture_server: LocalServer) -> None:
    fixture_server.reset_stats()
    fixture_server.set_faults(error_rate=1.0, rate_limit=0.001, latency_ms=5000)
    try:
        assert control(fixture_server, "/_stats")["requests"] == 0
        assert control(fixture_server, "/_faults")["error_rate"] == 1.0
    finally:
        fixture_server.reset_faults()


def test_only_loopback_hosts() -> None:
    for host in ("0.0.0.0", "192.168.1.10", "example.com"):
        with pytest.raises(ValueError, match="loopback"):
            LocalServer(host=host)
    LocalServer(host="127.0.0.2")
