"""The command line: `python -m wandb2numpy.testing.server [options]`.

Prints the base URL as the first stdout line (flushed) and serves until SIGINT/SIGTERM, then
exits 0, so scripts and subprocess tests can start it and read where it listens.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from .faults import FaultSettings
from .handle import DEFAULT_API_KEY, DEFAULT_HOST, LocalServer
from .synthetic import (
    DEFAULT_ENTITY,
    DEFAULT_EVAL_EVERY,
    DEFAULT_METRICS,
    DEFAULT_PROJECT,
    DEFAULT_RUNS,
    DEFAULT_SEED,
    DEFAULT_STEPS,
    synthetic_project,
)

# ---- command line ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m wandb2numpy.testing.server",
        description="Serve a W&B-compatible API on loopback for wandb2numpy tests, demos and benchmarks.",
    )
    p.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default: 0)")
    p.add_argument("--data", metavar="FILE.json", help="load projects from this JSON file instead of synthetic data")
    p.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="synthetic runs (default: %(default)s)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="synthetic steps per run (default: %(default)s)")
    p.add_argument("--metrics", type=int, default=DEFAULT_METRICS, help="synthetic metrics (default: %(default)s)")
    p.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="seed for synthetic data and faults (default: %(default)s)"
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=DEFAULT_EVAL_EVERY,
        help="log eval/ metrics every K steps (default: %(default)s)",
    )
    p.add_argument(
        "--step-stride", type=int, default=1, help="synthetic rows are logged this many steps apart (default: 1)"
    )
    p.add_argument(
        "--all-finished", action="store_true", help="every synthetic run finished (default: some running, crashed)"
    )
    p.add_argument("--entity", default=None, help=f"entity of the synthetic project (default: {DEFAULT_ENTITY})")
    p.add_argument("--project", default=DEFAULT_PROJECT, help="name of the synthetic project (default: %(default)s)")
    p.add_argument(
        "--api-key", default=DEFAULT_API_KEY, help="the API key clients must send (default: a fixed local- key)"
    )
    p.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="answer every request after this many ms (building the answer counts toward it)",
    )
    p.add_argument("--per-row-us", type=float, default=0.0, help="plus this many microseconds per returned history row")
    p.add_argument(
        "--file-mb-per-s",
        type=float,
        default=0.0,
        help="parquet files: first bytes after --latency-ms, then the body at this many MB/s per response "
        "(default 0: no limit); --per-row-us does not apply to files",
    )
    p.add_argument(
        "--rate-limit",
        type=float,
        default=None,
        metavar="RPS",
        help="token bucket: answer 429 with Retry-After above RPS",
    )
    p.add_argument(
        "--error-rate", type=float, default=0.0, metavar="P", help="fraction of requests answered 500/502/503"
    )
    p.add_argument(
        "--reset-rate", type=float, default=0.0, metavar="P", help="fraction of responses cut off with a TCP reset"
    )
    p.add_argument(
        "--reset-mode",
        choices=("body", "connect"),
        default="body",
        help="body: cut the response off mid-body (wandb-core does not retry); connect: reset before any byte",
    )
    p.add_argument(
        "--spike-rate", type=float, default=0.0, metavar="P", help="fraction of requests delayed by --spike-ms"
    )
    p.add_argument("--spike-ms", type=float, default=0.0, help="length of a latency spike in ms")
    p.add_argument(
        "--fault-ops", default=None, metavar="A,B", help="apply faults only to these operations (default: all)"
    )
    p.add_argument("--fail-runs", default="", metavar="ID,ID", help="run ids whose history requests always answer 500")
    p.add_argument(
        "--no-batch-history",
        dest="batch_history",
        action="store_false",
        help='refuse sampledHistory on the nodes of a runs listing (Cannot query field "sampledHistory" '
        'on type "Run"), as a server without that field would',
    )
    p.add_argument(
        "--parquet",
        nargs="?",
        const="files",
        choices=["files", "only"],
        help="serve finished runs' history as parquet exports (needs pyarrow); 'only': their page "
        "queries then return no rows, as if the history lived only in the files",
    )
    return p


def server_from_args(args: argparse.Namespace) -> LocalServer:
    faults = FaultSettings().replace(
        latency_ms=args.latency_ms,
        per_row_us=args.per_row_us,
        file_mb_per_s=args.file_mb_per_s,
        rate_limit=args.rate_limit,
        error_rate=args.error_rate,
        reset_rate=args.reset_rate,
        reset_mode=args.reset_mode,
        spike_rate=args.spike_rate,
        spike_ms=args.spike_ms,
        fault_ops=args.fault_ops,
        fail_runs=args.fail_runs,
        seed=args.seed,
        batch_history=args.batch_history,
    )
    data: Mapping[str, Any] | str
    if args.data:
        data = args.data
    else:
        data = synthetic_project(
            runs=args.runs,
            steps=args.steps,
            metrics=args.metrics,
            seed=args.seed,
            eval_every=args.eval_every,
            entity=args.entity or DEFAULT_ENTITY,
            project=args.project,
            columnar=True,
            step_stride=args.step_stride,
            all_finished=args.all_finished,
        )
    return LocalServer(
        data,
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        entity=args.entity,
        parquet="only" if args.parquet == "only" else bool(args.parquet),
        faults=faults,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # first, so a signal during start-up is not lost
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = server_from_args(args)
        server.start()
    except (OSError, ValueError, KeyError, TypeError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(server.base_url, flush=True)
    print(
        f"serving {len(list(server.backend.runs()))} runs; entity={server.entity} project={server.project} "
        f"api_key={server.api_key}",
        file=sys.stderr,
        flush=True,
    )
    while not stop.wait(0.2):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
