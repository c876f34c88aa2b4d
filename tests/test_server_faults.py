"""Fault injection and load: 429, 5xx, resets, failing runs, auth, latency and concurrency.

The client's own retry waits are real (2 s for a 5xx, `Retry-After` for a 429), so each test
injects a single fault. The one test that needs retries to run out starts its client in a
subprocess with wandb-core's retry knobs turned down, leaving this process's wandb-core alone.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import wandb

from wandb2numpy.testing import FaultSettings, LocalServer, local_server, synthetic_project
from wandb2numpy.testing.faults import FaultInjector, TokenBucket
from wandb2numpy.testing.pytest_plugin import make_api

pytestmark = pytest.mark.server  # every test here talks to a local server it starts

REPO = Path(__file__).resolve().parent.parent


def project_data() -> dict[str, Any]:
    """For conftest's `server`/`srv` fixtures."""
    return synthetic_project(runs=4, steps=20)


def first_run(srv: LocalServer, i: int = 0) -> str:
    return srv.backend.projects()[0].query(None, None)[i].id


def raw_post(srv: LocalServer, body: dict[str, Any], timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    token = base64.b64encode(f"api:{srv.api_key}".encode()).decode()
    conn.request("POST", "/graphql", json.dumps(body), {"Authorization": f"Basic {token}"})
    resp = conn.getresponse()
    out = resp.status, dict(resp.getheaders()), resp.read()
    conn.close()
    return out


SAMPLED = "query RunSampledHistory($project: String!) { x }"


def sampled_body(srv: LocalServer, run_id: str) -> dict[str, Any]:
    spec = json.dumps({"keys": ["_step", "train/loss"], "samples": 5})
    return {"query": SAMPLED, "variables": {"entity": "demo", "project": "synthetic", "name": run_id, "specs": [spec]}}


# ---- units -------------------------------------------------------------------------------


def test_decisions_are_deterministic_for_a_seed() -> None:
    settings = FaultSettings(error_rate=0.3, reset_rate=0.2, spike_rate=0.1, spike_ms=5, seed=42)
    a, b = FaultInjector(settings), FaultInjector(settings)
    seq_a = [a.decide("Runs", None) for _ in range(200)]
    assert seq_a == [b.decide("Runs", None) for _ in range(200)]
    assert {d.status for d in seq_a} == {None, 500, 502, 503}
    assert any(d.reset for d in seq_a) and any(d.spike for d in seq_a)
    assert FaultInjector(settings.replace(fault_ops={"Viewer"})).decide("Runs", None).status is None


def test_token_bucket_burst_is_rate() -> None:
    bucket = TokenBucket(3)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert 0 < bucket.take() <= 1 / 3 + 0.01
    assert FaultSettings().replace(rate_limit=0).rate_limit is None


def test_settings_validate() -> None:
    with pytest.raises(TypeError):
        FaultSettings().replace(no_such_knob=1)
    assert FaultSettings().replace(fault_ops="A,B").fault_ops == frozenset({"A", "B"})


# ---- through the client ------------------------------------------------------------------


def test_429_carries_retry_after_and_client_retries(srv: LocalServer) -> None:
    srv.set_faults(rate_limit=1, fault_ops={"RunSampledHistory"})
    run_id = first_run(srv)
    raw_post(srv, sampled_body(srv, run_id))
    status, headers, _ = raw_post(srv, sampled_body(srv, run_id))
    assert status == 429 and int(headers["Retry-After"]) >= 1
    api = make_api(srv)
    rows = api.run(f"demo/synthetic/{run_id}").history(keys=["train/loss"], samples=5, pandas=False)
    assert len(rows) == 5
    stats = srv.stats()
    assert stats["injected_429"] >= 2 and stats["statuses"]["429"] == stats["injected_429"]


def test_5xx_is_retried_by_the_client(srv: LocalServer) -> None:
    srv.set_faults(error_rate=0.5, seed=3, fault_ops={"RunSampledHistory"})  # seed 3: fail, then pass
    api = make_api(srv)
    rows = api.run(f"demo/synthetic/{first_run(srv)}").history(keys=["train/loss"], pandas=False)
    assert len(rows) == 20
    stats = srv.stats()
    assert stats["injected_5xx"] == 1 and stats["ops"]["RunSampledHistory"] == 2


def test_fault_ops_leave_other_operations_alone(srv: LocalServer) -> None:
    srv.set_faults(error_rate=1.0, fault_ops={"RunSampledHistory"})
    assert len(list(make_api(srv).runs("demo/synthetic"))) == 4
    status, _, _ = raw_post(srv, sampled_body(srv, first_run(srv)))
    assert status in (500, 502, 503)
    assert srv.stats()["injected_5xx"] == 1


def test_reset_mid_body_reaches_the_caller(srv: LocalServer) -> None:
    api = make_api(srv)
    run = api.run(f"demo/synthetic/{first_run(srv)}")
    srv.set_faults(reset_rate=1.0, fault_ops={"RunSampledHistory"})
    with pytest.raises(wandb.errors.CommError, match="reset"):
        run.history(keys=["train/loss"], pandas=False)  # wandb-core does not retry a cut-off body
    assert srv.stats()["injected_resets"] == 1 and srv.stats()["statuses"]["reset"] == 1
    srv.set_faults(reset_rate=0.0)
    assert len(run.history(keys=["train/loss"], pandas=False)) == 20


def test_reset_before_response_is_retried(srv: LocalServer) -> None:
    api = make_api(srv)
    run = api.run(f"demo/synthetic/{first_run(srv)}")
    srv.set_faults(reset_rate=0.5, reset_mode="connect", seed=9, fault_ops={"RunSampledHistory"})  # reset, then pass
    assert len(run.history(keys=["train/loss"], pandas=False)) == 20
    assert srv.stats()["injected_resets"] == 1


def test_wrong_api_key_is_an_authentication_error(srv: LocalServer) -> None:
    with pytest.raises(wandb.errors.AuthenticationError):
        make_api(srv, api_key="local-" + "x" * 40)
    assert srv.stats()["auth_failures"] == 1


def test_spikes_and_latency_are_counted(srv: LocalServer) -> None:
    srv.set_faults(spike_rate=1.0, spike_ms=1, latency_ms=1, per_row_us=1)
    make_api(srv).run(f"demo/synthetic/{first_run(srv)}").history(keys=["train/loss"], pandas=False)
    stats = srv.stats()
    assert stats["injected_spikes"] == stats["requests"] == 3


def test_16_apis_in_16_threads_are_all_in_flight(srv: LocalServer) -> None:
    run_ids = [first_run(srv, i % 4) for i in range(16)]
    apis = [make_api(srv) for _ in range(16)]
    srv.set_faults(latency_ms=1000)  # wide enough for a busy 2-core machine
    barrier = threading.Barrier(16)
    results: list[int] = [0] * 16

    def work(i: int) -> None:
        run = apis[i].run(f"demo/synthetic/{run_ids[i]}")  # bound to this thread's Api
        barrier.wait()
        results[i] = len(run.history(keys=["train/loss"], pandas=False))

    srv.reset_stats()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [20] * 16
    assert srv.stats()["max_in_flight"] == 16


def test_serves_256_requests_at_once() -> None:
    with local_server(runs=1, steps=2, latency_ms=1000) as srv:
        barrier = threading.Barrier(256)
        statuses: list[int] = []

        def one() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
            conn.connect()
            barrier.wait()
            token = base64.b64encode(f"api:{srv.api_key}".encode()).decode()
            conn.request(
                "POST", "/graphql", '{"query": "query Viewer { viewer { id } }"}', {"Authorization": f"Basic {token}"}
            )
            statuses.append(conn.getresponse().status)
            conn.close()

        threads = [threading.Thread(target=one) for _ in range(256)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses == [200] * 256
        assert srv.stats()["max_in_flight"] == 256


# ---- retries running out: a client in a subprocess with small retry knobs -----------------

CLIENT = r"""
import json, os, sys, wandb
from wandb.errors import CommError
url, key, bad, good = sys.argv[1:5]
api = wandb.Api(api_key=key, overrides={"base_url": url, "entity": "demo"})
out = {"listed": len(list(api.runs("demo/synthetic")))}
try:
    api.run(f"demo/synthetic/{bad}").history(keys=["train/loss"], pandas=False)
except CommError as e:
    out["history_error"] = str(e)
try:
    list(api.run(f"demo/synthetic/{bad}").scan_history(keys=["train/loss"]))
except Exception as e:
    out["scan_error"] = type(e).__name__ + ": " + str(e)
out["good_rows"] = len(api.run(f"demo/synthetic/{good}").history(keys=["train/loss"], pandas=False))
print(json.dumps(out))
"""


@pytest.mark.slow
def test_failing_run_exhausts_retries_while_others_work(srv: LocalServer) -> None:
    bad, good = first_run(srv, 0), first_run(srv, 1)
    srv.set_faults(fail_runs={bad})
    env = dict(os.environ)
    env.update(
        WANDB__GRAPHQL_RETRY_MAX="1",
        WANDB__GRAPHQL_RETRY_WAIT_MIN_SECONDS="1",
        WANDB__GRAPHQL_RETRY_WAIT_MAX_SECONDS="1",
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    proc = subprocess.run(
        [sys.executable, "-c", CLIENT, srv.base_url, srv.api_key, bad, good],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["listed"] == 4 and out["good_rows"] == 20
    assert "giving up after 2 attempt(s)" in out["history_error"] and "HTTP 500" in out["history_error"]
    assert "HTTP 500" in out["scan_error"]
    stats = srv.stats()
    assert stats["history_requests_by_run"][bad] >= 2 and stats["injected_5xx"] >= 2
