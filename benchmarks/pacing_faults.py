"""Pacing under a rate limit plus other faults (issue 18, item 3): a scenario run, not a test.

    python benchmarks/pacing_faults.py [--scale 1.0] [--json FILE]

Each scenario starts the local server (`python -m wandb2numpy.testing.server`) in its own process
with a token-bucket rate limit and fault injection, runs `wandb2numpy export` against it in a
fresh process (full history of one metric: one request per 1,000-step window), and reads the
server's request log. Reported per scenario:

- accepted/s: requests the rate limit let through (every answer but a 429: 200s, injected 5xx
  and resets alike, wandb-core's own retries included), per second from the first history
  request to the last; the share of the limit this is, against the target;
- ok/s: history requests answered 200 per second over the same span;
- the export's wall time, 429s, failed runs and exit code.

A 429 consumes no token of the bucket, so accepted/s is what the limit is measured against: with
20% 5xx and 10% resets a client at the limit gets about 72% of the limit in 200 answers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wandb2numpy.testing import DEFAULT_API_KEY

LOG_FILE: str | None = None  # --log-file: the export's own log, for looking into its pacing


@dataclass(frozen=True)
class Scenario:
    name: str
    limit: float
    concurrency: int
    runs: int
    steps: int
    target: float  # share of the limit to reach
    faults: tuple[str, ...] = ()
    latency_ms: float = 50.0
    metrics: int = 1
    eval_every: int = 1
    fields: tuple[str, ...] = ("train/return",)


def scenarios(scale: float) -> list[Scenario]:
    def n(runs: int) -> int:
        return max(2, round(runs * scale))

    return [
        Scenario(
            "15/s, 20% 5xx, 10% resets, 10% 1.5 s spikes",
            15.0,
            32,
            n(60),
            10_000,
            0.80,
            ("--error-rate", "0.2", "--reset-rate", "0.1", "--spike-rate", "0.1", "--spike-ms", "1500"),
        ),
        Scenario("5/s at concurrency 64, no --max-rate", 5.0, 64, n(24), 10_000, 0.90),
    ]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


def run(sc: Scenario, workdir: Path) -> dict[str, Any]:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wandb2numpy.testing.server",
            "--runs",
            str(sc.runs),
            "--steps",
            str(sc.steps),
            "--metrics",
            str(sc.metrics),
            "--eval-every",
            str(sc.eval_every),
            "--all-finished",
            "--latency-ms",
            str(sc.latency_ms),
            "--rate-limit",
            str(sc.limit),
            "--seed",
            "1",
            *sc.faults,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        out = workdir / sc.name.split("/")[0]
        env = dict(
            os.environ,
            WANDB_API_KEY=DEFAULT_API_KEY,
            WANDB_DIR=str(workdir),
            WANDB_CACHE_DIR=str(workdir),
            WANDB_CONFIG_DIR=str(workdir),
            NETRC=str(workdir / "netrc"),
        )
        summary = workdir / "summary.json"
        started = time.monotonic()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "wandb2numpy.cli",
                "export",
                "demo/synthetic",
                "--fields",
                *sc.fields,
                "--samples",
                "all",
                "-O",
                str(out),
                "-o",
                *([] if LOG_FILE else ["-q"]),
                "--base-url",
                url,
                "--concurrency",
                str(sc.concurrency),
                "--json-summary",
                str(summary),
                *(["-v", "--log-file", LOG_FILE] if LOG_FILE else []),
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        wall = time.monotonic() - started
        log = _get(url + "/_requests")
        stats = _get(url + "/_stats")
    finally:
        server.terminate()
        server.wait(10)
    history = [r for r in log if "History" in r["op"]]
    t = sorted(r["t"] for r in history)
    span = t[-1] - t[0] if len(t) > 1 else float("nan")
    accepted = [r for r in log if t and t[0] <= r["t"] <= t[-1] and r.get("status") != 429]
    ok = [r for r in history if r.get("status") == 200]
    doc = json.loads(summary.read_text()) if summary.exists() else {}
    accepted_rate = len(accepted) / span
    return {
        "scenario": sc.name,
        "limit": sc.limit,
        "concurrency": sc.concurrency,
        "target": sc.target,
        "exit_code": done.returncode,
        "wall_s": round(wall, 1),
        "span_s": round(span, 1),
        "accepted_per_s": round(accepted_rate, 2),
        "share": round(accepted_rate / sc.limit, 3),
        "ok_per_s": round(len(ok) / span, 2),
        "requests": stats["requests"],
        "injected_429": stats["injected_429"],
        "injected_5xx": stats["injected_5xx"],
        "resets": stats["injected_resets"],
        "failed_runs": doc.get("runs_failed"),
        "stderr": done.stderr[-500:],
        # accepted requests per 2 s from the first history request: where the time went
        "timeline": [sum(1 for r in accepted if t[0] + k <= r["t"] < t[0] + k + 2) for k in range(0, int(span) + 1, 2)],
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| scenario | concurrency | wall s | accepted/s (share of limit) | target | 200s/s | 429s | requests | failed runs | exit |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        met = "met" if r["share"] >= r["target"] else "MISSED"
        lines.append(
            f"| {r['scenario']} | {r['concurrency']} | {r['wall_s']} | {r['accepted_per_s']} ({r['share']:.0%}) | "
            f">= {r['target']:.0%}: {met} | {r['ok_per_s']} | {r['injected_429']} | {r['requests']} | "
            f"{r['failed_runs']} | {r['exit_code']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=1.0, help="runs per scenario, as a share of the default")
    p.add_argument("--only", type=int, default=None, help="run only this scenario (0-based)")
    p.add_argument("--json", metavar="FILE", help="also write the records as JSON")
    p.add_argument("--log-file", metavar="FILE", help="the export's verbose log (the last scenario's)")
    args = p.parse_args(argv)
    global LOG_FILE
    LOG_FILE = args.log_file
    rows = []
    with tempfile.TemporaryDirectory(prefix="w2n-pacing-") as tmp:
        for i, sc in enumerate(scenarios(args.scale)):
            if args.only is not None and i != args.only:
                continue
            rows.append(run(sc, Path(tmp)))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "stderr"}), file=sys.stderr, flush=True)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
