"""Side-by-side benchmark: the original tool's sequential algorithm against wandb2numpy.

    python benchmarks/bench_export.py [--quick] [--json FILE]

Starts the local W&B-compatible server (`python -m wandb2numpy.testing.server`) in its own process,
so its CPU is not counted as ours, with a synthetic project and a latency model (default 100 ms per
request plus 1 ms per history row returned). Every measurement runs in a fresh Python process (its
own wandb-core, its own peak RSS). For each scenario it measures:

- baseline: the original algorithm (see `baseline.py`), once;
- ours: `wandb2numpy.export` at each `--concurrency`, the median of `--repeats` runs;
- the CPU floor of ours: the same export with the server's latency model switched off.

Efficiency = ideal / actual wall, where ideal is the largest of: the latency model's total for the
requests made (requests x latency + rows x per-row latency) / concurrency, successful requests /
rate limit, and the CPU floor. Ours' arrays are compared with the baseline's for every field both
return, so a speed-up is never bought with wrong data.

Issue 9's scenarios (T-s, T-f, M, P, MEM) get a second table with history requests, rows exported,
client CPU per row (our process and wandb-core together) and the peak RSS when the export returned
against the array bytes, then a line per target saying met or missed. Where the original algorithm
is too slow to run in full, it runs on the first runs of the same project and is scaled (M, P), or,
for T-f (one request per 1,000-step window), runs on one run without latency and its wall time is
the latency model's total for its requests and rows; such rows say `est.` and carry a note. P and
MEM run without the latency model: they measure CPU and memory.

The peers (`peers.py`: `threads`, a bare `ThreadPoolExecutor(16)` script on one `wandb.Api`;
`thr`, the same with one `Api` per thread; `sdk`, wandb's own readers) run at 16 threads on the
same server, medians of `--repeats`, arrays checked against the baseline's as ours are. A third
table puts ours at concurrency 16 beside them and beside the latency model's floor (rows x per-row
latency / 16 + one request's latency): the best peer per scenario, ours / best peer, and wall /
floor for every tool. A peer slower than `--peer-timeout` is stopped and shown as `> T`.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import baseline  # noqa: E402  (benchmarks/ is not a package)

ENTITY = "demo"
PROJECT = "synthetic"


@dataclass(frozen=True)
class Scenario:
    name: str
    runs: int
    steps: int
    metrics: int
    samples: int | None  # None: full history
    rate_limit: float | None = None
    concurrency: tuple[int, ...] | None = None  # None: every --concurrency
    baseline_from: str | None = None  # reuse another scenario's baseline (same data, same algorithm)
    no_baseline: bool = False  # measured only against another scenario of ours (D against F)
    description: str = ""
    stride: int = 1  # rows logged this many steps apart
    parquet: bool = False  # the server serves finished runs' history as parquet exports too
    all_finished: bool = False
    no_latency: bool = False  # server latency model off for ours and the baseline (CPU and memory scenarios)
    # The baseline on the first `baseline_runs` runs only (the same data: run i does not depend on
    # the run count), scaled by runs / baseline_runs. With `baseline_model` it runs with the latency
    # model off and its wall time is the latency model's total for the requests and rows it made
    # (a lower bound: it leaves out its own CPU), for baselines far too slow to run.
    baseline_runs: int | None = None
    baseline_model: bool = False
    save: bool = True  # False: no arrays kept for comparison (the memory scenario)
    storage: bool = False  # files streamed at --file-mb-per-s after the base latency (as storage)


DEFAULT_SCENARIOS = "S,F,L,R,D,T-s,T-f,M,P,P-lat,MEM"


def _export_cpu(m: dict[str, Any]) -> float:
    if m.get("export_cpu_s") is not None:
        return float(m["export_cpu_s"])
    return float(m.get("cpu_s", 0.0) - m.get("imports_cpu_s", 0.0))


def scenarios(quick: bool, scale: float) -> list[Scenario]:
    def n(full: int, small: int) -> int:
        return max(1, int(round((small if quick else full) * scale)))

    runs, steps = n(32, 8), n(2000, 500)
    t_runs, t_rows = n(16, 4), n(2000, 100)
    m_runs = n(2000, 100)
    return [
        Scenario("S", runs, steps, 4, 12000, description="sampled, history_samples 12000"),
        Scenario("F", runs, steps, 4, None, description="full history"),
        Scenario("L", n(4, 2), n(20000, 3000), 4, None, description="few long runs, full history"),
        Scenario(
            "R",
            runs,
            steps,
            4,
            None,
            rate_limit=10.0,
            concurrency=(64,),
            baseline_from="F",
            description="F at concurrency 64, server limited to 10 requests/s",
        ),
        Scenario(
            "D",
            2 * runs,
            steps,
            4,
            None,
            concurrency=(16,),
            no_baseline=True,
            description="F with twice the runs at concurrency 16: wall time should double",
        ),
        # Issue 9's scenarios.
        Scenario(
            "T-s",
            t_runs,
            t_rows,
            4,
            12000,
            stride=10_000,
            description="RL-style strided steps (10,000 apart), sampled, history_samples 12000",
        ),
        Scenario(
            "T-f",
            t_runs,
            t_rows,
            4,
            None,
            stride=10_000,
            baseline_runs=1,
            baseline_model=True,
            description="T with full history; the baseline's scan asks one request per 1,000-step window, "
            "so it is measured on 1 run without latency and its wall time is modelled",
        ),
        Scenario(
            "M",
            m_runs,
            n(50, 20),
            4,
            12000,
            baseline_runs=min(m_runs, n(100, 20)),
            description="many small runs, sampled; the baseline measured on the first runs and scaled",
        ),
        Scenario(
            "P",
            n(16, 2),
            n(100_000, 5000),
            4,
            None,
            parquet=True,
            all_finished=True,
            no_latency=True,
            concurrency=(16,),
            baseline_runs=1,
            description="finished runs served as parquet exports, full history, no latency: client CPU per row",
        ),
        Scenario(
            "P-lat",
            n(16, 2),
            n(100_000, 5000),
            4,
            None,
            parquet=True,
            all_finished=True,
            concurrency=(16,),
            baseline_runs=1,
            storage=True,
            description="P with the latency model: files after the base latency, then --file-mb-per-s per response",
        ),
        Scenario(
            "MEM",
            n(64, 4),
            n(100_000, 5000),
            2,
            None,
            no_latency=True,
            concurrency=(16,),
            no_baseline=True,
            save=False,
            description="full history, 2 fields, no latency: peak RSS against the array bytes",
        ),
    ]


# ------------------------------------------------------------------------------------------------
# The server, in its own process


class Server:
    def __init__(
        self,
        sc: Scenario,
        latency_ms: float,
        per_row_us: float,
        seed: int,
        runs: int | None = None,
        file_mb_per_s: float = 0.0,
    ) -> None:
        if sc.no_latency:
            latency_ms = per_row_us = 0.0
        cmd = [
            sys.executable,
            "-m",
            "wandb2numpy.testing.server",
            "--runs",
            str(runs or sc.runs),
            "--steps",
            str(sc.steps),
            "--metrics",
            str(sc.metrics),
            "--seed",
            str(seed),
            "--eval-every",
            "1",
            "--entity",
            ENTITY,
            "--project",
            PROJECT,
            "--latency-ms",
            str(latency_ms),
            "--per-row-us",
            str(per_row_us),
        ]
        if sc.rate_limit:
            cmd += ["--rate-limit", str(sc.rate_limit)]
        if sc.stride != 1:
            cmd += ["--step-stride", str(sc.stride)]
        if sc.parquet:
            cmd += ["--parquet"]
        if sc.all_finished:
            cmd += ["--all-finished"]
        mb = file_mb_per_s if sc.storage and not sc.no_latency else 0.0
        if mb:
            cmd += ["--file-mb-per-s", str(mb)]
        self.faults = {
            "latency_ms": latency_ms,
            "per_row_us": per_row_us,
            "rate_limit": sc.rate_limit,
            "file_mb_per_s": mb,
        }
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"server did not start: {self.url!r}")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_stats")

    def request_log(self) -> list[dict[str, Any]]:
        return self._call("GET", "/_requests")

    def reset(self) -> None:
        self._call("POST", "/_stats/reset")

    def set_faults(self, **changes: Any) -> None:
        self._call("POST", "/_faults", changes)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ------------------------------------------------------------------------------------------------
# One measurement = one fresh worker process (see worker.py)


def measure(
    server: Server,
    sc: Scenario,
    tool: str,
    concurrency: int,
    workdir: Path,
    tag: str,
    profile: str | None = None,
    timeout: float | None = None,
    page_size: int = 1000,
) -> dict[str, Any]:
    """One fresh worker process; past `timeout` (peers only) raises `subprocess.TimeoutExpired`."""
    server.reset()
    out = workdir / f"{tag}.npz"
    spec = {
        "tool": tool,
        "base_url": server.url,
        "entity": ENTITY,
        "project": PROJECT,
        "fields": baseline.field_names(sc.metrics),
        "samples": sc.samples,
        "concurrency": concurrency,
        "out": str(out),
        "workdir": str(workdir / tag),
        "save": sc.save,
        "page_size": page_size,
    }
    cmd = [sys.executable, str(HERE / "worker.py"), json.dumps(spec)]
    if profile:
        # py-spy samples every thread (the work runs in worker threads), native frames included
        cmd = ["py-spy", "record", "-f", "raw", "-r", "200", "-o", profile, "--", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{tag} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    # the worker's record is its last JSON line (py-spy adds lines of its own after it)
    rec = json.loads(next(line for line in reversed(done.stdout.splitlines()) if line.startswith("{")))
    stats = server.stats()
    rec["sustained_rate"] = sustained_rate(server.request_log())
    rec.update(
        requests=stats["requests"],
        injected_429=stats["injected_429"],
        max_in_flight=stats["max_in_flight"],
        rows_served=stats["rows_served"],
        ops=stats["ops"],
        npz=str(out),
    )
    return rec


def sustained_rate(log: list[dict[str, Any]]) -> float | None:
    """History requests the server accepted per second, from the first accepted one to the last:
    the rate held while the export was sending, without wandb-core's start and the last answer."""
    t = sorted(r["t"] for r in log if r.get("status") == 200 and "History" in r["op"])
    return round((len(t) - 1) / (t[-1] - t[0]), 2) if len(t) > 1 and t[-1] > t[0] else None


def ideal_wall(
    rec: dict[str, Any], latency_ms: float, per_row_us: float, rate: float | None, floor_s: float | None
) -> float:
    ok_requests = rec["requests"] - rec["injected_429"]
    network = (ok_requests * latency_ms / 1e3 + rec["rows_served"] * per_row_us / 1e6) / rec["concurrency"]
    bounds = [network]
    if rate:
        bounds.append(ok_requests / rate)
    if floor_s is not None:
        bounds.append(floor_s)
    return max(bounds)


def compare(ours_npz: str, base_npz: str, subset: bool = False) -> tuple[bool, str]:
    """Ours' arrays equal the baseline's for every field and run both hold. With `subset` the
    baseline read only some of the runs: those are matched by run id."""
    import numpy as np

    a, b = np.load(ours_npz), np.load(base_npz)
    common = sorted(k[: -len("::ids")] for k in set(a.files) & set(b.files) if k.endswith("::ids"))
    if not common:
        return False, "no common fields"
    checked = 0
    for f in common:
        a_ids, b_ids = list(a[f + "::ids"]), list(b[f + "::ids"])
        if not subset and a_ids != b_ids:
            return False, f"{f}: runs differ ({len(a_ids)} vs {len(b_ids)})"
        for j, rid in enumerate(b_ids):
            if rid not in a_ids:
                return False, f"{f}: run {rid} missing in ours"
            i = a_ids.index(rid)
            sa, sb = a[f + "::steps"][i], b[f + "::steps"][j]
            na, nb = int((~np.isnan(sa)).sum()), int((~np.isnan(sb)).sum())
            va, vb = a[f + "::values"][i][:na], b[f + "::values"][j][:nb]
            if na != nb or not np.array_equal(sa[:na], sb[:nb]) or not np.array_equal(va, vb, equal_nan=True):
                return False, f"{f} differs for run {rid} ({na} vs {nb} rows)"
            checked += 1
    runs = len(b[common[0] + "::ids"])
    return True, f"{len(common)} fields x {runs} runs equal" + (" (the baseline's runs)" if subset else "")


def baseline_run(sc: Scenario, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """The original algorithm, measured in full, or on the first runs and scaled (see Scenario)."""
    latency_ms, per_row_us = (0.0, 0.0) if sc.no_latency else (args.latency_ms, args.per_row_us)
    if sc.storage:
        per_row_us = 0.0  # files cost bytes at the storage bandwidth, not rows
    if sc.baseline_runs is None or sc.baseline_runs >= sc.runs:
        server = Server(sc, args.latency_ms, args.per_row_us, args.seed, file_mb_per_s=args.file_mb_per_s)
        try:
            base = measure(server, sc, "baseline", 1, workdir, f"{sc.name}-baseline")
        finally:
            server.stop()
        base["ideal_s"] = ideal_wall(base, latency_ms, per_row_us, sc.rate_limit, None)
        return base
    k = sc.baseline_runs
    factor = sc.runs / k
    server = Server(sc, args.latency_ms, args.per_row_us, args.seed, runs=k, file_mb_per_s=args.file_mb_per_s)
    try:
        if sc.baseline_model:
            server.set_faults(latency_ms=0, per_row_us=0, rate_limit=0, file_mb_per_s=0)
        base = measure(server, sc, "baseline", 1, workdir, f"{sc.name}-baseline")
    finally:
        server.stop()
    measured = {key: base[key] for key in ("wall_s", "requests", "rows_served", "cpu_s", "core_cpu_s")}
    for key in ("requests", "rows_served", "injected_429", "rows_out", "array_bytes"):
        base[key] = int(round(base[key] * factor))
    base["cpu_s"] = (base["cpu_s"] - base["imports_cpu_s"]) * factor + base["imports_cpu_s"]
    base["core_cpu_s"] *= factor
    base["ops"] = {op: int(round(v * factor)) for op, v in base["ops"].items()}
    model_s = base["requests"] * latency_ms / 1e3 + base["rows_served"] * per_row_us / 1e6
    if sc.baseline_model:
        base["wall_s"] = model_s
        base["note"] = (
            f"ESTIMATE: baseline measured on {k} of {sc.runs} runs with the latency model off "
            f"({measured['requests']} requests, {measured['rows_served']} rows, {measured['wall_s']:.1f} s); "
            f"counts x {factor:g}; wall = requests x {latency_ms:g} ms + rows x {per_row_us:g} us "
            f"= {model_s:.0f} s (a lower bound: its own CPU, {measured['wall_s'] * factor:.0f} s without "
            "latency, is left out)"
        )
    else:
        base["wall_s"] *= factor
        base["note"] = (
            f"ESTIMATE: baseline measured on {k} of {sc.runs} runs ({measured['requests']} requests, "
            f"{measured['wall_s']:.1f} s), wall time, requests, rows and CPU x {factor:g}"
        )
    base["estimated"] = True
    base["baseline_runs"] = k
    base["ideal_s"] = ideal_wall(base, latency_ms, per_row_us, sc.rate_limit, None)
    return base


def run_scenario(
    sc: Scenario, args: argparse.Namespace, workdir: Path, baselines: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    log = lambda msg: print(f"[{sc.name}] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    if sc.no_baseline:
        base = None
    elif sc.baseline_from and sc.baseline_from in baselines:
        base = dict(baselines[sc.baseline_from])
        base["note"] = f"baseline of {sc.baseline_from} (1 request in flight never meets the limit)"
    else:
        log("baseline ...")
        base = baseline_run(sc, args, workdir)
    if base is not None:
        baselines[sc.name] = base
        records.append(_record(sc, base, base["wall_s"], args))
        log(f"baseline {base['wall_s']:.1f} s" + (f" ({base['note']})" if base.get("estimated") else ""))
    latency_ms, per_row_us = (0.0, 0.0) if sc.no_latency else (args.latency_ms, args.per_row_us)
    if sc.storage:
        per_row_us = 0.0  # files cost bytes at the storage bandwidth, not rows
    server = Server(sc, args.latency_ms, args.per_row_us, args.seed, file_mb_per_s=args.file_mb_per_s)
    try:
        if sc.parquet:
            # The server builds each run's file on its first request and keeps it: one export
            # first, not measured, so that no tool's measurement pays the server's encoding.
            measure(server, sc, "ours", 16, workdir, f"{sc.name}-warm-up")
        # The peers' repeats go in turn with ours at 16 workers (ours, thr, sdk; then thr, sdk,
        # ours; ...): these machines change speed by up to 2x within minutes, and three runs of
        # one tool then three of the next compared the tools at different speeds.
        concurrencies = list(sc.concurrency or args.concurrency)
        interleave_c = PEER_THREADS if PEER_THREADS in concurrencies else None
        peers = PeerRuns(sc, args, workdir, server, log)
        for c in concurrencies:
            floor_s = None
            if not args.no_floor and not sc.no_latency:
                server.set_faults(latency_ms=0, per_row_us=0, rate_limit=0, file_mb_per_s=0)
                fl = measure(server, sc, "ours", c, workdir, f"{sc.name}-floor-c{c}")
                floor_s = fl["wall_s"]
                server.set_faults(**{k: (v or 0) for k, v in server.faults.items()})
            runs = []
            for r in range(args.repeats if c > 1 else args.repeats_c1):
                prof = None
                if args.profile and r == 0:
                    prof = str(Path(args.profile) / f"{sc.name}-c{c}.txt")
                tag = f"{sc.name}-ours-c{c}-r{r}"
                tools = [functools.partial(_append, runs, measure, server, sc, "ours", c, workdir, tag, prof)]
                if c == interleave_c:
                    tools += [functools.partial(peers.measure_one, p, r) for p in args.peers]
                for tool in tools[r % len(tools) :] + tools[: r % len(tools)]:
                    if sc.rate_limit:
                        time.sleep(1.5)  # let the server's token bucket refill between repeats
                    tool()
            # without latency the export is its own CPU floor
            rec, walls, why = _median_record(sc, args, runs, base, latency_ms, per_row_us, floor_s, sc.no_latency)
            records.append(rec)
            log(
                f"ours c={c}: {rec['wall_s']:.2f} s (walls {', '.join(f'{w:.2f}' for w in walls)}), "
                f"x{rec['speedup'] or 0:.1f}, eff {rec['efficiency']:.2f}, {why}"
            )
        if args.peers:
            if interleave_c is None:
                for r in range(args.repeats):
                    for p in args.peers:
                        peers.measure_one(p, r)
            records.extend(peers.records(base, latency_ms, per_row_us))
    finally:
        server.stop()
    return records


def _median_record(
    sc: Scenario,
    args: argparse.Namespace,
    runs: list[dict[str, Any]],
    base: dict[str, Any] | None,
    latency_ms: float,
    per_row_us: float,
    floor_s: float | None,
    own_floor: bool,
) -> tuple[dict[str, Any], list[float], str]:
    """One tool's record from its repeats: the median run, its arrays checked against the
    baseline's; with `own_floor` the median wall is also the floor (no latency model)."""
    walls = [x["wall_s"] for x in runs]
    med = sorted(runs, key=lambda x: x["wall_s"])[len(runs) // 2]
    if own_floor:
        floor_s = med["wall_s"]
    med = dict(med, walls=walls, wall_s=statistics.median(walls), floor_s=floor_s)
    med["ideal_s"] = ideal_wall(med, latency_ms, per_row_us, sc.rate_limit, floor_s)
    if base is not None and sc.save:
        ok, why = compare(med["npz"], base["npz"], subset=bool(base.get("estimated")))
    else:
        ok, why = True, "no baseline run" if base is None else "arrays not kept (memory scenario)"
    med["matches_baseline"], med["match_note"] = ok, why
    return _record(sc, med, base["wall_s"] if base is not None else None, args), walls, why


def _append(out: list[dict[str, Any]], fn: Any, *args: Any) -> None:
    out.append(fn(*args))


PEER_NAMES = {"threads": "threads", "thr": "threads/thr", "sdk": "sdk"}
PEER_THREADS = 16


class PeerRuns:
    """Each peer (see peers.py) at 16 threads, the median of `--repeats`; a peer past
    `--peer-timeout` is stopped, recorded as timed out (its wall time only a lower bound) and
    not run again."""

    def __init__(self, sc: Scenario, args: argparse.Namespace, workdir: Path, server: Server, log: Any) -> None:
        self.sc, self.args, self.workdir, self.server, self.log = sc, args, workdir, server, log
        self.runs: dict[str, list[dict[str, Any]]] = {p: [] for p in args.peers}
        self.timed_out: set[str] = set()

    def measure_one(self, peer: str, r: int) -> None:
        if peer in self.timed_out:
            return
        try:
            self.runs[peer].append(
                measure(
                    self.server,
                    self.sc,
                    peer,
                    PEER_THREADS,
                    self.workdir,
                    f"{self.sc.name}-{peer}-r{r}",
                    timeout=self.args.peer_timeout,
                    page_size=self.args.peer_page_size,
                )
            )
        except subprocess.TimeoutExpired:
            self.timed_out.add(peer)

    def records(self, base: dict[str, Any] | None, latency_ms: float, per_row_us: float) -> list[dict[str, Any]]:
        sc, args, log = self.sc, self.args, self.log
        records = []
        for peer in args.peers:
            if peer in self.timed_out:
                log(f"{PEER_NAMES[peer]}: stopped after {args.peer_timeout:g} s")
                records.append(
                    {
                        "scenario": sc.name,
                        "tool": peer,
                        "concurrency": PEER_THREADS,
                        "timed_out": True,
                        "wall_s": None,
                        "timeout_s": args.peer_timeout,
                        "failed_runs": 0,
                        "matches_baseline": True,
                        "match_note": f"stopped after {args.peer_timeout:g} s",
                    }
                )
                continue
            rec, walls, why = _median_record(sc, args, self.runs[peer], base, latency_ms, per_row_us, None, False)
            records.append(rec)
            log(f"{PEER_NAMES[peer]}: {rec['wall_s']:.2f} s (walls {', '.join(f'{w:.2f}' for w in walls)}), {why}")
        return records


def _record(sc: Scenario, m: dict[str, Any], base_wall: float | None, args: argparse.Namespace) -> dict[str, Any]:
    wall = m["wall_s"]
    ok_requests = m["requests"] - m["injected_429"]
    rec = {
        "scenario": sc.name,
        "tool": m["tool"],
        "concurrency": m["concurrency"],
        "wall_s": round(wall, 3),
        "requests": m["requests"],
        "injected_429": m["injected_429"],
        "max_in_flight": m["max_in_flight"],
        "rows": m["rows_served"],
        "rows_per_s": round(m["rows_served"] / wall, 1) if wall else 0.0,
        "request_rate": round(ok_requests / wall, 2) if wall else 0.0,
        "sustained_rate": m.get("sustained_rate"),
        "peak_rss_mb": round(m["peak_rss_mb"], 1),
        "core_peak_rss_mb": round(m.get("core_peak_rss_mb", 0.0), 1),
        "array_mb": round(m["array_bytes"] / 2**20, 2),
        "export_peak_rss_mb": round(m.get("export_peak_rss_mb", m["peak_rss_mb"]), 1),
        "rows_out": m.get("rows_out", 0),
        "cpu_us_per_row": (
            round((m.get("cpu_s", 0.0) + m.get("core_cpu_s", 0.0)) / m["rows_out"] * 1e6, 3)
            if m.get("rows_out")
            else None
        ),
        # the export call alone: no imports before it, no comparison copies after it, no psutil
        # sampling (falls back to "all but the imports" for records without it)
        "imports_cpu_s": round(m.get("imports_cpu_s", 0.0), 2),
        "export_cpu_s": round(_export_cpu(m), 2),
        "export_cpu_us_per_row": (
            round((_export_cpu(m) + m.get("core_cpu_s", 0.0)) / m["rows_out"] * 1e6, 3) if m.get("rows_out") else None
        ),
        "cpu_s": round(m.get("cpu_s", 0.0), 2),
        "core_cpu_s": round(m.get("core_cpu_s", 0.0), 2),
        "failed_runs": m["failed_runs"],
        "speedup": (round(base_wall / wall, 2) if base_wall else None) if m["tool"] != "baseline" else 1.0,
        "ideal_s": round(m["ideal_s"], 3),
        "floor_s": round(m["floor_s"], 3) if m.get("floor_s") is not None else None,
        "efficiency": round(m["ideal_s"] / wall, 3) if wall else 0.0,
        "walls": [round(w, 3) for w in m.get("walls", [wall])],
        "matches_baseline": m.get("matches_baseline", True),
        "match_note": m.get("match_note", ""),
        "ops": m["ops"],
        "latency_ms": args.latency_ms,
        "per_row_us": args.per_row_us,
        "rate_limit": sc.rate_limit,
        "runs": sc.runs,
        "steps": sc.steps,
        "stride": sc.stride,
        "metrics": sc.metrics,
        "samples": sc.samples,
        "parquet": sc.parquet,
        "latency_model": not sc.no_latency,
        "storage": sc.storage,
        "estimated": bool(m.get("estimated")),
        "history_requests": sum(v for op, v in m["ops"].items() if op not in ("Viewer", "Runs")),
    }
    if "note" in m:
        rec["note"] = m["note"]
    return rec


def table(records: list[dict[str, Any]]) -> str:
    head = (
        "| scenario | tool | conc. | wall s | requests | 429s | max in flight | rows/s | "
        "peak RSS MB | speedup | efficiency |"
    )
    lines = [head, "|" + " --- |" * 11]
    for r in records:
        lines.append(
            f"| {r['scenario']} | {r['tool']} | {r['concurrency']} | {r['wall_s']:.2f} | {r['requests']} | "
            f"{r['injected_429']} | {r['max_in_flight']} | {r['rows_per_s']:,.0f} | {r['peak_rss_mb']:.0f} | "
            f"{'-' if r['speedup'] is None else format(r['speedup'], '.1f') + 'x'} | {r['efficiency']:.2f} |"
        )
    return "\n".join(lines)


ISSUE9 = ("T-s", "T-f", "M", "P", "P-lat", "MEM")


def table9(records: list[dict[str, Any]]) -> str:
    """Issue 9's scenarios: request counts, rows, client CPU (ours + wandb-core) per row, peak RSS
    when the export returned against the array bytes; `est.` marks a baseline scaled or modelled
    from fewer runs (see its note)."""
    head = (
        "| scenario | tool | conc. | wall s | requests | history req. | rows | CPU s (py+core) | "
        "CPU us/row | export peak RSS MB | core RSS MB | array MB | speedup | efficiency |"
    )
    lines = [head, "|" + " --- |" * 14]
    for r in records:
        est = " est." if r.get("estimated") else ""
        lines.append(
            f"| {r['scenario']} | {r['tool']}{est} | {r['concurrency']} | {r['wall_s']:,.2f} | {r['requests']:,} | "
            f"{r['history_requests']:,} | {r['rows_out']:,} | {r['cpu_s']:.2f}+{r['core_cpu_s']:.2f} | "
            f"{'-' if r['cpu_us_per_row'] is None else format(r['cpu_us_per_row'], '.2f')} | "
            f"{r['export_peak_rss_mb']:.0f} | {r['core_peak_rss_mb']:.0f} | {r['array_mb']:.1f} | "
            f"{'-' if r['speedup'] is None else format(r['speedup'], ',.1f') + 'x'} | {r['efficiency']:.2f} |"
        )
    return "\n".join(lines)


def model_floor(records: list[dict[str, Any]], scenario: str) -> float | None:
    """Rows x per-row latency / 16 + one request's latency: no client with 16 in flight can do
    better under the latency model (None for scenarios run without it)."""
    rs = [r for r in records if r["scenario"] == scenario and r.get("wall_s") is not None and r.get("rows_out")]
    if not rs or not rs[0]["latency_model"] or rs[0].get("storage"):
        return None  # without latency, or files paced by bytes: no row-latency floor
    ours = [r for r in rs if r["tool"] == "ours" and r["concurrency"] == 16 and not r.get("estimated")]
    rows = (ours or [r for r in rs if not r.get("estimated")] or rs)[0]["rows_out"]
    return float(rows * rs[0]["per_row_us"] / 1e6 / PEER_THREADS + rs[0]["latency_ms"] / 1e3)


def _wall_text(r: dict[str, Any] | None) -> str:
    if r is None:
        return "-"
    if r.get("timed_out"):
        return f"> {r['timeout_s']:g}"
    return f"{r['wall_s']:.2f}"


def peers_table(records: list[dict[str, Any]]) -> str:
    """Ours at 16 against each peer (16 threads) and against the latency model's floor."""
    head = (
        "| scenario | ours s | threads s | threads/thr s | sdk s | best peer | ours / best peer | floor s | "
        "ours / floor | threads / floor | threads/thr / floor | sdk / floor |"
    )
    lines = [head, "|" + " --- |" * 12]
    for name in dict.fromkeys(r["scenario"] for r in records):
        rs = [r for r in records if r["scenario"] == name]
        ours = next((r for r in rs if r["tool"] == "ours" and r["concurrency"] == PEER_THREADS), None)
        peer = {p: next((r for r in rs if r["tool"] == p), None) for p in PEER_NAMES}
        if ours is None or not any(peer.values()):
            continue
        done = [(r["wall_s"], PEER_NAMES[p]) for p, r in peer.items() if r is not None and not r.get("timed_out")]
        floor = model_floor(records, name)

        def per_floor(r: dict[str, Any] | None, floor: float | None = floor) -> str:
            if r is None or floor is None:
                return "-"
            if r.get("timed_out"):
                return f"> {r['timeout_s'] / floor:.1f}"
            return f"{r['wall_s'] / floor:.2f}"

        if done:
            best_wall, best = min(done)
            ratio = best_wall / ours["wall_s"]
            vs = f"{ratio:.2f}x faster" if ratio >= 1 else f"**{ratio:.2f} (slower)**"
            best_text = f"{best} {best_wall:.2f} s"
        else:
            timeouts = [r["timeout_s"] for r in peer.values() if r is not None]
            best_text = f"all peers > {max(timeouts):g} s"
            vs = f"> {max(timeouts) / ours['wall_s']:.0f}x faster"
        lines.append(
            f"| {name} | {ours['wall_s']:.2f} | {_wall_text(peer['threads'])} | {_wall_text(peer['thr'])} | "
            f"{_wall_text(peer['sdk'])} | {best_text} | {vs} | {'-' if floor is None else format(floor, '.2f')} | "
            f"{per_floor(ours)} | {per_floor(peer['threads'])} | {per_floor(peer['thr'])} | {per_floor(peer['sdk'])} |"
        )
    return "\n".join(lines)


def targets(records: list[dict[str, Any]]) -> str:
    """Issue 9's targets, each line saying met or missed."""
    out = []
    for r in records:
        if r["tool"] != "ours" or r["scenario"] not in ISSUE9:
            continue
        name, c = r["scenario"], r["concurrency"]
        if name in ("T-s", "T-f", "M") and c == 16 and r["speedup"] is not None:
            est = (
                " (baseline estimated, see notes)"
                if any(b.get("estimated") for b in records if b["scenario"] == name and b["tool"] == "baseline")
                else ""
            )
            verdict = "met" if r["speedup"] >= 20 else "MISSED"
            out.append(
                f"{name} c16: {r['speedup']:,.1f}x the original algorithm's wall time (target >= 20x){est}: {verdict}"
            )
        if name == "P" and r["cpu_us_per_row"] is not None:
            verdict = "met" if r["cpu_us_per_row"] <= 0.5 else "MISSED"
            out.append(
                f"P c{c}: client CPU {r['cpu_s']:.2f} s + wandb-core {r['core_cpu_s']:.2f} s for "
                f"{r['rows_out']:,} rows = {r['cpu_us_per_row']:.2f} us/row (target <= 0.5; includes the "
                f"process's fixed start-up cost, wandb.Api and wandb-core start): {verdict}"
            )
            export_verdict = "met" if (r["export_cpu_us_per_row"] or 0) <= 0.5 else "MISSED"
            out.append(
                f"P c{c}: the export call alone (imports {r['imports_cpu_s']:.2f} s before it left out): "
                f"{r['export_cpu_s']:.2f} s + wandb-core {r['core_cpu_s']:.2f} s = "
                f"{r['export_cpu_us_per_row']:.2f} us/row: {export_verdict}"
            )
        if name == "MEM":
            limit = 1.5 * r["array_mb"] + 200
            verdict = "met" if r["export_peak_rss_mb"] <= limit else "MISSED"
            out.append(
                f"MEM c{c}: peak RSS {r['export_peak_rss_mb']:.0f} MB when the export returned "
                f"(wandb-core {r['core_peak_rss_mb']:.0f} MB) for {r['array_mb']:.0f} MB of arrays; "
                f"target <= 1.5 x arrays + 200 = {limit:.0f} MB: {verdict}"
            )
    notes = [
        f"{r['scenario']} baseline: {r['note']}" for r in records if r["tool"] == "baseline" and r.get("estimated")
    ]
    return "\n".join(["", *out, *notes]) if out or notes else ""


def doubling(records: list[dict[str, Any]]) -> str:
    """Network-bound scaling: twice the runs at fixed concurrency should take twice as long."""
    f = [r for r in records if r["scenario"] == "F" and r["tool"] == "ours" and r["concurrency"] == 16]
    d = [r for r in records if r["scenario"] == "D" and r["tool"] == "ours" and r["concurrency"] == 16]
    if not (f and d):
        return ""
    ratio = d[0]["wall_s"] / f[0]["wall_s"]
    verdict = "within" if abs(ratio - 2.0) <= 0.4 else "outside"
    return (
        f"\ndoubling: F ({f[0]['runs']} runs) {f[0]['wall_s']:.2f} s, D ({d[0]['runs']} runs) "
        f"{d[0]['wall_s']:.2f} s at concurrency 16: ratio {ratio:.2f} ({verdict} 2 +/- 20%)"
    )


def rate_limited(records: list[dict[str, Any]]) -> str:
    """R's targets: the rate held against the limit, the share of 429 answers, failed runs."""
    lines = []
    for r in records:
        if not r.get("rate_limit") or r["tool"] != "ours":
            continue
        limit = r["rate_limit"]
        ok = r["requests"] - r["injected_429"]
        lines.append(
            f"\nrate-limited ({r['scenario']}, limit {limit:g}/s, concurrency {r['concurrency']}): "
            f"{ok} accepted requests in {r['wall_s']:.2f} s = {r['request_rate']:.2f}/s "
            f"({r['request_rate'] / limit:.0%} of the limit) over the whole export; "
            f"{r['sustained_rate'] or 0:.2f}/s ({(r['sustained_rate'] or 0) / limit:.0%}) from the first "
            f"accepted history request to the last; 429s {r['injected_429']} of {r['requests']} "
            f"({r['injected_429'] / max(1, r['requests']):.0%}); failed runs {r['failed_runs']}"
        )
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller scenarios, one repeat (about a minute)")
    p.add_argument("--json", metavar="FILE", help="write the records as a JSON list")
    p.add_argument("--scenarios", default=DEFAULT_SCENARIOS, help=f"comma-separated subset of {DEFAULT_SCENARIOS}")
    p.add_argument("--concurrency", default="1,4,16,64", help="concurrency levels for ours")
    p.add_argument(
        "--repeats", type=int, default=None, help="runs of ours per point (median; default 3, 1 with --quick)"
    )
    p.add_argument(
        "--repeats-c1", type=int, default=1, help="runs of ours at concurrency 1, as slow as the baseline (default 1)"
    )
    p.add_argument("--latency-ms", type=float, default=100.0, help="server latency per request")
    p.add_argument("--per-row-us", type=float, default=1000.0, help="server latency per history row returned")
    p.add_argument(
        "--file-mb-per-s",
        type=float,
        default=10.0,
        help="storage bandwidth per file response in the storage scenarios (P-lat)",
    )
    p.add_argument("--scale", type=float, default=1.0, help="multiply runs and steps (for tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-floor", action="store_true", help="skip the zero-latency CPU floor runs")
    p.add_argument("--profile", metavar="DIR", help="py-spy profile (collapsed stacks) of ours' first repeat")
    p.add_argument(
        "--peers",
        default="threads,thr,sdk",
        help="peers measured at 16 threads beside ours (see peers.py): comma-separated subset of "
        "threads,thr,sdk, or 'none'",
    )
    p.add_argument(
        "--peer-timeout",
        type=float,
        default=120.0,
        help="seconds after which a peer is stopped and recorded as slower than that",
    )
    p.add_argument("--peer-page-size", type=int, default=1000, help="the peers' scan_history page_size")
    args = p.parse_args(argv)
    args.peers = [] if args.peers in ("", "none") else args.peers.split(",")
    unknown = set(args.peers) - set(PEER_NAMES)
    if unknown:
        p.error(f"unknown peers: {sorted(unknown)}")
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    wanted = set(args.scenarios.split(","))
    records: list[dict[str, Any]] = []
    baselines: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="w2n-bench-") as tmp:
        for sc in scenarios(args.quick, args.scale):
            if sc.name not in wanted:
                continue
            if sc.baseline_from and sc.baseline_from not in baselines:
                sc = Scenario(**{**sc.__dict__, "baseline_from": None})
            records.extend(run_scenario(sc, args, Path(tmp), baselines))
    own = [r for r in records if r["tool"] in ("baseline", "ours")]
    print(table([r for r in own if r["scenario"] not in ISSUE9]))
    if any(r["scenario"] in ISSUE9 for r in own):
        print()
        print(table9([r for r in own if r["scenario"] in ISSUE9]))
        print(targets(own))
    if args.peers:
        print()
        print(peers_table(records))
    print(doubling(own))
    print(rate_limited(own))
    print(
        f"\n{args.latency_ms:g} ms per request + {args.per_row_us:g} us per row; "
        f"{os.cpu_count()} CPUs; total {time.perf_counter() - started:.0f} s"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))
    bad = [r for r in records if r["failed_runs"] or not r["matches_baseline"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
