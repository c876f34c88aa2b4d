"""One benchmark measurement in a fresh process: `python worker.py SPEC_JSON`.

Prints one JSON line: wall time, peak RSS of this process (overall, and when the export returned,
before this script copies the arrays for the comparison) and of wandb-core, CPU seconds of both,
array bytes, rows exported, failed runs. Saves `{field: run ids, per-run steps and values}` to
SPEC["out"] (npz, unless SPEC["save"] is false) so the driver can compare tools, also when the
baseline read only some of the runs. The wandb folders and netrc point into a throw-away directory.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sandbox import sandbox_env

spec = json.loads(sys.argv[1])
_sandbox = Path(spec.get("workdir") or tempfile.mkdtemp(prefix="w2n-bench-"))
_env = sandbox_env(_sandbox)  # before wandb is imported
for _var in [v for v in os.environ if v not in _env]:
    del os.environ[_var]
os.environ.update(_env)

import numpy as np  # noqa: E402
import psutil  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baseline  # noqa: E402

from wandb2numpy.testing import DEFAULT_API_KEY  # noqa: E402


class CoreWatch:
    """Samples the RSS and CPU of our child processes (wandb-core) while the export runs."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.peak = 0.0
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self.own_cpu = 0.0
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        for child in self.me.children(recursive=True):
            try:
                with child.oneshot():
                    self.peak = max(self.peak, child.memory_info().rss / 2**20)
                    t = child.cpu_times()
                    self.cpu[child.pid] = t.user + t.system
            except psutil.Error:
                pass

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()
            self.own_cpu = time.thread_time()  # this thread's CPU: measuring, not exporting

    def __enter__(self) -> CoreWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._sample()
        self._stop.set()
        self._thread.join()


_export_peak: list[float] = []
_cpu_at_export: list[float] = []  # process CPU when the export call starts (imports done)
_cpu_after_export: list[float] = []  # and when it returned, before the comparison copies
_EMPTY = np.zeros(0)


def _rss_now_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _padded(per_run: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = sorted(per_run)
    width = max((len(per_run[i][1]) for i in ids), default=0)
    steps = np.full((len(ids), width), np.nan)
    values = np.full((len(ids), width), np.nan)
    for row, rid in enumerate(ids):
        s, v = per_run[rid]
        steps[row, : len(s)] = s
        values[row, : len(v)] = v
    return np.array(ids, dtype=str), steps, values


def run_ours() -> tuple[dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], int, int]:
    import wandb  # noqa: F401  (imported by the export anyway; here so the CPU mark below comes after it)

    from wandb2numpy import ClientSettings, export

    config = {
        "bench": {
            "entity": spec["entity"],
            "project": spec["project"],
            "fields": spec["fields"],
            "output_path": str(_sandbox / "out"),
            "history_samples": "all" if spec["samples"] is None else spec["samples"],
        }
    }
    _cpu_at_export.append(time.process_time())
    result = export(
        config,
        write=True,
        overwrite=True,
        concurrency=spec["concurrency"],
        settings=ClientSettings(base_url=spec["base_url"], api_key=DEFAULT_API_KEY),
    )
    _cpu_after_export.append(time.process_time())
    _export_peak.append(_rss_now_peak_mb())
    res = result.experiments["bench"].result
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    nbytes = 0
    for f, arr in res.fields.items():
        nbytes += arr.values.nbytes + arr.steps.nbytes
        if not spec.get("save", True):  # only the row counts, no copies (the memory scenario)
            counts = (~np.isnan(arr.steps)).sum(axis=1)
            out[f] = {run.id: (np.broadcast_to(0.0, int(counts[i])), _EMPTY) for i, run in enumerate(res.runs)}
            continue
        per = {}
        for i, run in enumerate(res.runs):
            keep = ~np.isnan(arr.steps[i])
            if keep.any():
                per[run.id] = (arr.steps[i][keep], arr.values[i][keep])
        out[f] = per
    return out, nbytes, result.runs_failed


def run_baseline() -> tuple[dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], int, int]:
    import wandb  # noqa: F401  (as ours: imports before the CPU mark)

    _cpu_at_export.append(time.process_time())
    got = baseline.export(
        spec["base_url"], DEFAULT_API_KEY, spec["entity"], spec["project"], spec["fields"], spec["samples"]
    )
    _cpu_after_export.append(time.process_time())
    _export_peak.append(_rss_now_peak_mb())
    nbytes = sum(s.nbytes + v.nbytes for per in got.values() for s, v in per.values())
    return got, nbytes, 0


def run_peer() -> tuple[dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], int, int]:
    """A peer of peers.py, timed as the baseline is."""
    import peers
    import wandb  # noqa: F401  (as ours: imports before the CPU mark)

    args = (
        spec["base_url"],
        DEFAULT_API_KEY,
        spec["entity"],
        spec["project"],
        spec["fields"],
        spec["samples"],
        spec.get("page_size", 1000),
    )
    _cpu_at_export.append(time.process_time())
    if spec["tool"] == "sdk":
        got = peers.sdk(*args)
    else:
        got = peers.threads(*args, per_thread_api=spec["tool"] == "thr")
    _cpu_after_export.append(time.process_time())
    _export_peak.append(_rss_now_peak_mb())
    nbytes = sum(s.nbytes + v.nbytes for per in got.values() for s, v in per.values())
    return got, nbytes, 0


def main() -> None:
    me = psutil.Process()
    t_cpu = me.cpu_times()
    p0 = time.process_time()
    with CoreWatch() as watch:
        t0 = time.perf_counter()
        tool = spec["tool"]
        got, nbytes, failed = run_ours() if tool == "ours" else run_baseline() if tool == "baseline" else run_peer()
        wall = time.perf_counter() - t0
    t_cpu2 = me.cpu_times()
    # Rows exported: per run, the most steps any field holds (every field is logged at every step
    # in the benchmark's projects), summed over runs.
    per_run_rows: dict[str, int] = {}
    for per in got.values():
        for rid, (s, _) in per.items():
            per_run_rows[rid] = max(per_run_rows.get(rid, 0), len(s))
    arrays = {}
    for f, per in got.items():
        if per and spec.get("save", True):
            ids, steps, values = _padded(per)
            arrays[f.replace("/", "__") + "::ids"] = ids
            arrays[f.replace("/", "__") + "::steps"] = steps
            arrays[f.replace("/", "__") + "::values"] = values
    np.savez(spec["out"], **arrays)
    print(
        json.dumps(
            {
                "tool": spec["tool"],
                "concurrency": spec["concurrency"],
                "wall_s": wall,
                "peak_rss_mb": _rss_now_peak_mb(),
                "export_peak_rss_mb": _export_peak[0] if _export_peak else _rss_now_peak_mb(),
                "core_peak_rss_mb": watch.peak,
                "cpu_s": (t_cpu2.user + t_cpu2.system) - (t_cpu.user + t_cpu.system),
                "core_cpu_s": sum(watch.cpu.values()),
                "imports_cpu_s": (_cpu_at_export[0] - p0) if _cpu_at_export else 0.0,
                # the export call alone (all threads of this process), less the CoreWatch thread's own
                "export_cpu_s": (_cpu_after_export[0] - _cpu_at_export[0] - watch.own_cpu)
                if _cpu_after_export
                else None,
                "array_bytes": nbytes,
                "rows_out": sum(per_run_rows.values()),
                "failed_runs": failed,
            }
        )
    )


if __name__ == "__main__":
    main()
