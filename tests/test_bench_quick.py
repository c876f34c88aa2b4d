"""The benchmark's quick path, for the correctness of its outputs only (timing stays out of tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.server  # the benchmark starts its own local server

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_export.py"
KEYS = {
    "scenario",
    "tool",
    "concurrency",
    "wall_s",
    "requests",
    "max_in_flight",
    "peak_rss_mb",
    "speedup",
    "efficiency",
}


def quick_bench(
    tmp_path: Path, scenarios: str, peers: str = "none"
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """The quick benchmark at a quarter size and a fast latency model, at concurrency 16: its
    output and its JSON records."""
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--quick",
            "--scale",
            "0.25",
            "--latency-ms",
            "5",
            "--per-row-us",
            "10",
            "--concurrency",
            "16",
            "--no-floor",
            "--json",
            str(out),
            "--scenarios",
            scenarios,
            "--peers",
            peers,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records: list[dict[str, Any]] = json.loads(out.read_text())
    return done, records


@pytest.mark.slow
def test_bench_quick_records_and_arrays(tmp_path: Path) -> None:
    done, records = quick_bench(tmp_path, "S,F,L,R,D")
    assert {r["scenario"] for r in records} == {"S", "F", "L", "R", "D"}
    for r in records:
        assert set(r) >= KEYS, r
        assert r["tool"] in ("baseline", "ours")
        assert r["failed_runs"] == 0
        assert r["matches_baseline"], r["match_note"]
        assert r["requests"] > 0 and r["max_in_flight"] >= 1 and r["rows"] > 0
        if r["tool"] == "baseline":
            assert r["speedup"] == 1.0 and r["concurrency"] == 1
    ours = [r for r in records if r["tool"] == "ours"]
    assert {(r["scenario"], r["concurrency"]) for r in ours} == {("S", 16), ("F", 16), ("L", 16), ("R", 64), ("D", 16)}
    assert "| scenario | tool |" in done.stdout
    assert "doubling: F (" in done.stdout  # D's wall time against F's, same concurrency


@pytest.mark.slow
def test_bench_quick_issue9_scenarios(tmp_path: Path) -> None:
    """T-f (strided steps, the baseline's one request per 1,000-step window) and P (parquet
    exports, CPU per row) at a tiny size; T-s, M and MEM run the same code paths."""
    done, records = quick_bench(tmp_path, "T-f,P")
    assert {(r["scenario"], r["tool"], r["concurrency"]) for r in records} == {
        ("T-f", "baseline", 1),
        ("T-f", "ours", 16),
        ("P", "baseline", 1),
        ("P", "ours", 16),
    }
    for r in records:
        assert r["failed_runs"] == 0
        assert r["matches_baseline"], r["match_note"]
        assert r["rows_out"] > 0 and r["cpu_us_per_row"] is not None
        assert not r["estimated"] or "ESTIMATE" in r["note"]
    hist = {r["tool"]: r["history_requests"] for r in records if r["scenario"] == "T-f"}
    assert hist["baseline"] > 10 * hist["ours"]  # one request per 1,000-step window against row-sized pages
    assert "| scenario | tool | conc. | wall s | requests | history req." in done.stdout


@pytest.mark.slow
def test_bench_quick_peers(tmp_path: Path) -> None:
    """The peers (a bare threaded script, one Api per thread, wandb's own readers) return the
    same arrays as the original algorithm, and the peers table compares them with ours."""
    done, records = quick_bench(tmp_path, "S,P", peers="threads,thr,sdk")
    assert {(r["scenario"], r["tool"]) for r in records} == {
        (s, t) for s in ("S", "P") for t in ("baseline", "ours", "threads", "thr", "sdk")
    }
    for r in records:
        assert r["failed_runs"] == 0
        assert r["matches_baseline"], (r["tool"], r["match_note"])
        assert r["wall_s"] > 0 and r["rows_out"] > 0
    ops = {r["tool"]: r["ops"] for r in records if r["scenario"] == "P"}
    assert ops["sdk"].get("ParquetFile")  # wandb's own export download, not the scan
    assert ops["thr"]["Viewer"] > ops["threads"]["Viewer"]  # an Api per thread
    assert "| scenario | ours s | threads s | threads/thr s | sdk s | best peer |" in done.stdout


@pytest.mark.slow
def test_startup_benchmark_reads_the_moments_from_the_request_log(tmp_path: Path) -> None:
    """`startup.py` on a tiny project: every launch gives its three moments in order, ours sends
    one `Viewer` query and the peer one per thread and one more, and the table has every row."""
    out = tmp_path / "startup.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH.parent / "startup.py"),
            "--repeats",
            "1",
            "--runs",
            "2",
            "--steps",
            "20",
            "--latency-ms",
            "5",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records = json.loads(out.read_text())
    assert sorted(r["tool"] for r in records) == ["ours", "thr"]
    for r in records:
        assert 0 < r["first_request_s"] <= r["first_history_s"] < r["wall_s"]
        assert r["end_s"] >= 0
    viewers = {r["tool"]: r["viewer"] for r in records}
    assert viewers["ours"] == 1 and viewers["thr"] == 3  # the listing's Api, then one per thread
    for label in ("first request", "first history request", "last answer -> exit", "Viewer requests"):
        assert label in done.stdout
