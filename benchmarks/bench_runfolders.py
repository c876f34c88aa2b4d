"""Run folders on disk against the same values through the local server.

    python benchmarks/bench_runfolders.py [--runs 64] [--steps 20000] [--metrics 4] [--json FILE]

Writes the synthetic project (`wandb2numpy.testing.synthetic`, the data the local server serves)
as offline run folders with `wandb2numpy.testing.runfiles` (checked against files the wandb SDK
writes in tests/test_runfolders.py), once, into a cache folder under the temp dir. Then exports
the metrics' full history twice, each in a fresh process: from the run folders (`RunFolderSource`,
its worker processes included in the CPU and RSS figures) and from the local server with its
latency model off (`python -m wandb2numpy.testing.server`, in its own process so its CPU is not
counted). Both write numpy files; their arrays must be identical, and the script says so.

Figures: wall time of the export call, logged values per second (runs x steps x metrics / wall),
CPU seconds, peak RSS (the export process plus, for run folders, the peak of its decoding workers
at the same time) against the bytes of the arrays (values and steps), and the targets of issue 21:
at least 1M values/s, RSS at most 1.5 x array bytes + 200 MB.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sandbox import sandbox_env

ENTITY = "demo"
PROJECT = "synthetic"
FORMAT_VERSION = 1  # bump when the files written here change


# ------------------------------------------------------------------------------------------------
# The run folders


def _write_run(args: tuple[Path, int, int, int, int]) -> str:
    from datetime import timedelta

    from wandb2numpy.testing.runfiles import RunFileWriter
    from wandb2numpy.testing.synthetic import _EPOCH0, metric_names, run_history, run_id, run_meta

    root, i, steps, metrics, seed = args
    taken: set[str] = set()
    for j in range(i):  # ids as synthetic_project gives them (a clash moves a later run's id)
        taken.add(run_id(seed, j, taken))
    rid = run_id(seed, i, taken)
    meta = run_meta(i, seed)
    start = (_EPOCH0 + timedelta(minutes=i)).timestamp()
    hist = run_history(i, seed=seed, steps=steps, metrics=metrics, eval_every=1, start=start)
    w = RunFileWriter(
        root,
        run_id=rid,
        project=PROJECT,
        entity=ENTITY,
        display_name=meta["name"],
        group=meta["group"],
        job_type=meta["job_type"],
        tags=tuple(meta["tags"]),
        config=meta["config"],
        start_time=start,
        seed=i,
    )
    names = [*metric_names(metrics), "_runtime", "_timestamp"]
    cols = [hist.columns[name].values.tolist() for name in names]
    for j, step in enumerate(hist.steps.tolist()):
        w.log({name: col[j] for name, col in zip(names, cols)}, step=step)
    if meta["state"] == "finished":
        w.finish()
    else:
        w.close()
    return str(w.path)


def ensure_folders(runs: int, steps: int, metrics: int, seed: int, root: Path | None) -> Path:
    root = (
        root or Path(tempfile.gettempdir()) / f"w2n-bench-runfolders-v{FORMAT_VERSION}-{runs}x{steps}x{metrics}-s{seed}"
    )
    done = root / "complete"
    if done.exists():
        return root
    t0 = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    with multiprocessing.get_context("spawn").Pool(os.cpu_count() or 1) as pool:
        pool.map(_write_run, [(root, i, steps, metrics, seed) for i in range(runs)])
    done.write_text("")
    size = sum(p.stat().st_size for p in root.rglob("*.wandb"))
    print(
        f"wrote {runs} run folders ({size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s to {root}",
        file=sys.stderr,
    )
    return root


# ------------------------------------------------------------------------------------------------
# One measurement, in a fresh process: `bench_runfolders.py --measure SPEC_JSON`


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    import hashlib
    import resource
    import threading

    import numpy as np
    import psutil

    from wandb2numpy import ClientSettings, export
    from wandb2numpy.testing.synthetic import metric_names

    me = psutil.Process()
    peak = {"own": 0.0, "total": 0.0, "pss": 0.0, "watch_cpu": 0.0}
    stop = threading.Event()

    def watch() -> None:  # our RSS, and with that of our children (the decoding workers) at the same time
        n = 0
        while not stop.wait(0.05):
            own = me.memory_info().rss
            total = own
            children = me.children(recursive=True)
            for child in children:
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            if n % 10 == 0:  # PSS (shared pages split between processes) costs more to read
                pss = 0
                for proc in [me, *children]:
                    try:
                        pss += proc.memory_full_info().pss
                    except (psutil.Error, AttributeError):
                        pss = 0
                        break
                peak["pss"] = max(peak["pss"], pss / 2**20)
            n += 1
            peak["own"] = max(peak["own"], own / 2**20)
            peak["total"] = max(peak["total"], total / 2**20)
            peak["watch_cpu"] = time.thread_time()  # this thread's CPU: measuring, not exporting

    fields = metric_names(spec["metrics"])
    config = {
        "bench": {
            "entity": ENTITY,
            "project": PROJECT,
            "fields": fields,
            "history_samples": "all",
            "output_path": spec["out"],
            "output_data_type": "numpy",
        }
    }
    source = None
    settings = None
    if spec["tool"].startswith("run folders"):
        from wandb2numpy.sources.runfolders import fast
        from wandb2numpy.sources.runfolders.source import RunFolderSource

        source = RunFolderSource(spec["folders"])
        if bool(spec.get("numpy_loops")) == fast.COMPILED:
            raise RuntimeError(f"compiled loops {'in use' if fast.COMPILED else 'not built'}: cannot measure {spec}")
    else:
        from wandb2numpy.testing import DEFAULT_API_KEY

        settings = ClientSettings(base_url=spec["url"], api_key=DEFAULT_API_KEY, timeout=120)
    watcher = threading.Thread(target=watch, daemon=True)
    cpu0 = time.process_time()
    child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    watcher.start()
    t0 = time.perf_counter()
    try:
        result = export(config, source=source, settings=settings, overwrite=True)
    finally:
        decode_cpu = getattr(source, "decode_seconds", 0.0)
        if source is not None:
            source.close()
    wall = time.perf_counter() - t0
    stop.set()
    watcher.join()
    child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    arrays = result.experiments["bench"].result
    digest = hashlib.sha256()
    array_bytes = 0
    rows = 0
    for name in fields:
        fa = arrays.fields[name]
        array_bytes += fa.values.nbytes + fa.steps.nbytes
        rows += int(np.count_nonzero(~np.isnan(fa.values)))
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(fa.values).tobytes())
        digest.update(np.ascontiguousarray(fa.steps).tobytes())
    digest.update(json.dumps([r.id for r in arrays.runs]).encode())
    return {
        "tool": spec["tool"],
        "wall_s": wall,
        "cpu_s": time.process_time() - cpu0 - peak["watch_cpu"],
        "worker_cpu_s": decode_cpu
        if spec["tool"].startswith("run folders") and decode_cpu
        else (child1.ru_utime + child1.ru_stime) - (child0.ru_utime + child0.ru_stime),
        "own_rss_mb": max(peak["own"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "peak_rss_mb": peak["total"],
        "peak_pss_mb": peak["pss"],
        "array_mb": array_bytes / 2**20,
        "values": rows,
        "runs": len(arrays.runs),
        "sha256": digest.hexdigest(),
        "requests": result.stats.requests,
    }


def run_measurement(spec: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ)
    if spec.get("numpy_loops"):
        env["WANDB2NUMPY_NO_COMPILED"] = "1"
    env = sandbox_env(Path(tempfile.mkdtemp(prefix="w2n-bench-")), env)
    done = subprocess.run(
        [sys.executable, __file__, "--measure", json.dumps(spec)], env=env, capture_output=True, text=True, timeout=3600
    )
    if done.returncode != 0:
        raise RuntimeError(f"{spec['tool']} measurement failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_growth(folders: Path, metrics: int, out: Path) -> dict[str, dict[str, Any]]:
    """An incremental export of the run files cut at 90%, then of the whole files: the second
    reads each file on from where the first stopped. Beside it, the same second export with the
    listing forgotten (each file read whole). In this process; the files are copied first."""
    import shutil

    from wandb2numpy import export
    from wandb2numpy.sources.runfolders.source import RunFolderSource
    from wandb2numpy.testing.synthetic import metric_names

    work = out / "grow"
    files = sorted(folders.glob("*/*.wandb"))
    results: dict[str, dict[str, Any]] = {}
    for forget in (False, True):
        shutil.rmtree(work, ignore_errors=True)
        for f in files:  # the first 90% of each file, as a job still running left it
            dest = work / "wandb" / f.parent.name / f.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(f.read_bytes()[: f.stat().st_size * 9 // 10])
        config = {
            "bench": {
                "fields": metric_names(metrics),
                "history_samples": "all",
                "output_path": str(work / "out"),
                "source": str(work / "wandb"),
            }
        }
        before = export(config, incremental=True, source=RunFolderSource(work / "wandb", listing_cache=True))
        rows_before = sum(
            int(np.count_nonzero(~np.isnan(fa.values))) for fa in before.experiments["bench"].result.fields.values()
        )
        for f in files:
            shutil.copyfile(f, work / "wandb" / f.parent.name / f.name)
        if forget:
            (work / "out" / ".wandb2numpy" / "bench" / "runfiles.json").unlink()
        src = RunFolderSource(work / "wandb", listing_cache=True)
        t0 = time.perf_counter()
        after = export(config, incremental=True, source=src)
        wall = time.perf_counter() - t0
        rows = sum(
            int(np.count_nonzero(~np.isnan(fa.values))) for fa in after.experiments["bench"].result.fields.values()
        )
        key = "read whole (listing forgotten)" if forget else "read on from where it was"
        results[key] = {"wall_s": wall, "read_on": src.files_read_on, "new_values": rows - rows_before}
        src.close()
    return results


class Server:
    """The local server with the same synthetic project, latency off, in its own process."""

    def __init__(self, runs: int, steps: int, metrics: int, seed: int) -> None:
        cmd = [
            sys.executable,
            "-m",
            "wandb2numpy.testing.server",
            "--runs",
            str(runs),
            "--steps",
            str(steps),
            "--metrics",
            str(metrics),
            "--seed",
            str(seed),
            "--eval-every",
            "1",
            "--entity",
            ENTITY,
            "--project",
            PROJECT,
            "--latency-ms",
            "0",
            "--per-row-us",
            "0",
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"server did not start: {self.url!r}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=64)
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--metrics", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--folders", type=Path, help="where the run folders are written (default: a cache under the temp dir)"
    )
    p.add_argument("--skip-server", action="store_true", help="measure the run folders only")
    p.add_argument(
        "--numpy-loops",
        action="store_true",
        help="also measure the run folders with the numpy loops (as installed without a C compiler)",
    )
    p.add_argument(
        "--grow",
        action="store_true",
        help="also measure --incremental after every run file grew by its last 10%% (read on, not whole)",
    )
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--measure", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure:
        print(json.dumps(measure(json.loads(args.measure))))
        return 0
    folders = ensure_folders(args.runs, args.steps, args.metrics, args.seed, args.folders)
    out = Path(tempfile.mkdtemp(prefix="w2n-bench-out-"))
    from wandb2numpy.sources.runfolders import fast

    spec = {"folders": str(folders / "wandb"), "metrics": args.metrics, "out": str(out / "runfolders")}
    tool = "run folders, compiled loops" if fast.COMPILED else "run folders, numpy loops (no compiled module)"
    results = [run_measurement({**spec, "tool": tool})]
    if args.numpy_loops and fast.COMPILED:
        results.append(run_measurement({**spec, "tool": "run folders, numpy loops", "numpy_loops": True}))
    if not args.skip_server:
        server = Server(args.runs, args.steps, args.metrics, args.seed)
        try:
            results.append(
                run_measurement(
                    {"tool": "local server", "url": server.url, "metrics": args.metrics, "out": str(out / "server")}
                )
            )
        finally:
            server.stop()
    logged = args.runs * args.steps * args.metrics
    print(
        f"\n{args.runs} runs x {args.steps:,} steps x {args.metrics} metrics = {logged:,} logged values, "
        f"full history, {os.cpu_count()} CPUs\n"
    )
    print(
        "| source | wall s | values/s | CPU s: export process + decoding workers | peak RSS MB: export process "
        "/ with workers (sum of RSS) / with workers (sum of PSS) | array MB | limit MB |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        limit = 1.5 * r["array_mb"] + 200
        print(
            f"| {r['tool']} | {r['wall_s']:.2f} | {r['values'] / r['wall_s']:,.0f} | "
            f"{r['cpu_s']:.1f} + {r['worker_cpu_s']:.1f} | {r['own_rss_mb']:.0f} / {r['peak_rss_mb']:.0f} / "
            f"{r['peak_pss_mb']:.0f} | {r['array_mb']:.0f} | {limit:.0f} |"
        )
    folder = results[0]
    speed_ok = folder["values"] / folder["wall_s"] >= 1e6
    rss_ok = max(folder["peak_rss_mb"], folder["own_rss_mb"]) <= 1.5 * folder["array_mb"] + 200
    print(
        f"\nrun folders: {folder['values'] / folder['wall_s'] / 1e6:.2f}M values/s (target >= 1M: "
        f"{'met' if speed_ok else 'MISSED'}); peak RSS with workers {folder['peak_rss_mb']:.0f} MB (target <= "
        f"{1.5 * folder['array_mb'] + 200:.0f} MB: {'met' if rss_ok else 'MISSED'})"
    )
    if len(results) > 1:
        same = all(r["sha256"] == results[0]["sha256"] for r in results) and results[0]["values"] == logged
        print(f"arrays identical in every row: {'yes' if same else 'NO'} ({results[0]['values']:,} values)")
    if args.grow:
        grow_results = measure_growth(folders / "wandb", args.metrics, out)
        print("\n| incremental export after every file grew by 10% | wall s | files read on | values/s of new rows |")
        print("| --- | ---: | ---: | ---: |")
        for what, r in grow_results.items():
            print(f"| {what} | {r['wall_s']:.2f} | {r['read_on']} | {r['new_values'] / r['wall_s']:,.0f} |")
    if args.json:
        args.json.write_text(
            json.dumps({"runs": args.runs, "steps": args.steps, "metrics": args.metrics, "results": results}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
