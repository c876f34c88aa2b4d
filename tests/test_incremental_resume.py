"""`--incremental` under interruption and with live runs (issue 18, item 5).

Each run is saved to the cache as soon as it is read, so an export interrupted half-way keeps the
runs it finished and the rerun fetches only the rest; a running run (full history) fetches only
the steps logged since it was cached; runs the last export cached that the listing no longer shows
are named in the summary. Request counts come from the local server.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wandb2numpy import ClientSettings, export
from wandb2numpy.sources.cache import JOURNAL_FILE, STATE_DIR
from wandb2numpy.testing import DEFAULT_API_KEY, FAST_RETRIES, LocalServer

FAST = dataclasses.replace(FAST_RETRIES, attempts=3, max_wait=0.2)
N_RUNS = 12
pytestmark = pytest.mark.server


def run_spec(k: int, *, steps: int, state: str = "finished", heartbeat: str = "2024-01-02T00:00:00Z") -> dict[str, Any]:
    return {
        "id": f"r{k:02d}",
        "name": f"run-{k}",
        "group": "g",
        "state": state,
        "created_at": f"2024-01-01T00:{k:02d}:00Z",
        "heartbeat_at": heartbeat,
        "config": {"seed": k},
        "history": [{"_step": s, "loss": 1.0 / (s + 1) + k} for s in range(steps)],
    }


def project(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"projects": [{"entity": "acme", "name": "inc", "runs": runs}]}


RELOAD_DATA = True


def project_data() -> dict[str, Any]:
    return project([run_spec(k, steps=1500) for k in range(N_RUNS)])


def config(out: Path) -> dict[str, Any]:
    return {
        "exp": {
            "entity": "acme",
            "project": "inc",
            "fields": ["loss"],
            "history_samples": "all",
            "output_path": str(out),
        }
    }


def arrays(out: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(out)): np.load(p) for p in sorted((out / "exp").rglob("*.npy"))}


def same_arrays(a: Path, b: Path) -> None:
    left, right = arrays(a), arrays(b)
    assert left.keys() == right.keys() and left
    for name in left:
        np.testing.assert_array_equal(left[name], right[name])


@pytest.mark.slow
def test_an_interrupted_export_keeps_the_runs_it_read(srv: LocalServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps(config(out)))
    srv.set_faults(latency_ms=400)
    env = dict(os.environ, WANDB_API_KEY=DEFAULT_API_KEY)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wandb2numpy.cli",
            str(cfg),
            "--incremental",
            "-q",
            "--concurrency",
            "2",
            "--base-url",
            srv.base_url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    journal = out / STATE_DIR / "exp" / JOURNAL_FILE
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.exists() and len(journal.read_text().splitlines()) >= 1 + 3:  # header + 3 runs
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the export finished before the interrupt: make it slower"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    saved = {json.loads(line)["id"] for line in journal.read_text().splitlines()[1:]}
    assert 3 <= len(saved) < N_RUNS
    assert not (out / "exp").exists()  # nothing written but the cache

    srv.set_faults(latency_ms=0)
    srv.reset_stats()
    settings = ClientSettings(base_url=srv.base_url, api_key=srv.api_key)
    again = export(config(out), incremental=True, settings=settings, policy=FAST)
    by_run = srv.stats()["history_requests_by_run"]
    assert again.exit_code == 0
    assert not set(by_run) & saved  # only the rest fetched
    assert set(by_run) == {f"r{k:02d}" for k in range(N_RUNS)} - saved
    assert again.experiments["exp"].unchanged_runs == len(saved)
    assert not journal.exists()  # the state holds them now
    fresh = export(config(tmp_path / "fresh"), settings=settings, policy=FAST)
    same_arrays(out, tmp_path / "fresh")
    assert fresh.exit_code == 0


def test_a_growing_running_run_fetches_only_its_new_steps(srv: LocalServer, tmp_path: Path) -> None:
    runs = [run_spec(k, steps=300) for k in range(4)]
    runs[2] = run_spec(2, steps=2000, state="running")
    srv.load(project(runs))
    out = tmp_path / "out"
    settings = ClientSettings(base_url=srv.base_url, api_key=srv.api_key)
    first = export(config(out), incremental=True, settings=settings, policy=FAST)
    assert first.exit_code == 0
    # the run logged 100 more steps and is still running
    runs[2] = run_spec(2, steps=2100, state="running", heartbeat="2024-01-03T00:00:00Z")
    srv.load(project(runs))
    srv.reset_stats()
    second = export(config(out), incremental=True, settings=settings, policy=FAST)
    stats = srv.stats()
    assert second.exit_code == 0
    assert set(stats["history_requests_by_run"]) == {"r02"}
    assert stats["history_requests_by_run"]["r02"] <= 2
    assert stats["rows_served"] <= 2 * 101  # the tail and the last cached row, not 2,100 rows
    assert second.experiments["exp"].grown_runs == 1
    assert second.experiments["exp"].result.fields["loss"].values.shape == (4, 2100)
    fresh = export(config(tmp_path / "fresh"), settings=settings, policy=FAST)
    assert fresh.exit_code == 0
    same_arrays(out, tmp_path / "fresh")
