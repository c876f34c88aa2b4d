"""Client CPU per row of the parquet path, first export in a process and warm, side by side.

    python benchmarks/parquet_cpu.py [--runs 16] [--steps 100000] [--metrics 4] [--repeats 3]

Scenario P of `bench_export.py` measures a fresh process, so its CPU includes what the first
export in a process pays once (importing pyarrow, starting wandb-core, creating `Api` objects).
This script separates the two: it exports the same finished runs, served as parquet exports by
the local server in its own process (latency off), several times in one process and prints the
CPU time of the process (all threads) per export, per row and per value, with and without
writing the `.npy` files, at 4 and 16 workers. wandb-core's CPU is left out here (bench_export.py
measures it: about 0.06 s for this export).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

# throw-away wandb folders, as the benchmark worker uses
_sandbox = tempfile.mkdtemp(prefix="w2n-pqcpu-")
for _var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
    os.environ[_var] = _sandbox
os.environ["NETRC"] = os.path.join(_sandbox, "netrc")
os.environ["WANDB_SILENT"] = "true"
for _var in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_ENTITY"):
    os.environ.pop(_var, None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=16)
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--metrics", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wandb2numpy.testing.server",
            "--runs",
            str(args.runs),
            "--steps",
            str(args.steps),
            "--metrics",
            str(args.metrics),
            "--eval-every",
            "1",
            "--all-finished",
            "--parquet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = (server.stdout.readline() if server.stdout else "").strip()
    try:
        from wandb2numpy import ClientSettings, export
        from wandb2numpy.testing import DEFAULT_API_KEY
        from wandb2numpy.testing.synthetic import metric_names

        settings = ClientSettings(base_url=url, api_key=DEFAULT_API_KEY)
        fields = metric_names(args.metrics)
        rows = args.runs * args.steps

        def one(concurrency: int, write: bool) -> float:
            cfg = {
                "exp": {
                    "entity": "demo",
                    "project": "synthetic",
                    "fields": fields,
                    "history_samples": "all",
                    "output_path": tempfile.mkdtemp(dir=_sandbox),
                }
            }
            c0 = time.process_time()
            result = export(cfg, write=write, overwrite=True, settings=settings, concurrency=concurrency)
            cpu = time.process_time() - c0
            assert result.exit_code == 0 and result.stats.requests <= 3 + 2 * args.runs, result.stats
            return cpu

        print(
            f"{args.runs} runs x {args.steps:,} steps x {args.metrics} metrics = {rows:,} rows, "
            f"served as parquet; CPU of this process (all threads)\n"
        )
        print("| export | workers | .npy written | CPU s | us/row | us/value |")
        print("| --- | --- | --- | --- | --- | --- |")
        first = one(16, True)
        print(
            f"| first in the process | 16 | yes | {first:.2f} | {first / rows * 1e6:.2f} | "
            f"{first / rows / args.metrics * 1e6:.3f} |"
        )
        for concurrency in (16, 4):
            for write in (True, False):
                cpu = statistics.median(one(concurrency, write) for _ in range(args.repeats))
                print(
                    f"| warm (median of {args.repeats}) | {concurrency} | {'yes' if write else 'no'} | "
                    f"{cpu:.2f} | {cpu / rows * 1e6:.2f} | {cpu / rows / args.metrics * 1e6:.3f} |"
                )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
