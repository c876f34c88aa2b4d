"""Start-up and end of a small export: the wandb2numpy command against a bare threads script.

    python benchmarks/startup.py [--repeats 5] [--runs 8] [--steps 200] [--latency-ms 50]

Issue 22 item 2 asks our command to start, send and finish as fast as a bare script. This starts
the local W&B-compatible server in its own process (`python -m wandb2numpy.testing.server`, with
a small synthetic project and a latency model), then launches, alternately and each in a fresh
process with the same environment:

- ours: `python -m wandb2numpy CONFIG.yaml` on a one-experiment config (a new output folder
  each time, so no overwrite work);
- thr: the threads/thr peer of `peers.py` (one `wandb.Api` per thread, 16 threads), which then
  saves its arrays with `np.savez` and leaves through the interpreter's normal shutdown, as a
  user's script would.

From the server's request log (arrival and answer times on the system's monotonic clock, which
this driver reads too) it takes, per launch: launch -> first request, launch -> first history
request, last answer -> process exit, launch -> exit, and the number of `Viewer` requests. The
table shows medians, ours / thr ratios (of the medians, and the median of the ratios of launches
run back to back, less exposed to a load that comes and goes), and the spread (min-max), because
the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from sandbox import sandbox_env

HERE = Path(__file__).resolve().parent
ENTITY = "demo"
PROJECT = "synthetic"
# A request whose operation reads history (the server's own list, `testing.faults.HISTORY_OPS`,
# less `RunHistoryKeys`, which only asks for the last step).
HISTORY = ("SampledHistory", "FullHistory", "HistoryPage", "ParquetHistory", "ParquetFile")


def _sandbox_env(root: Path, api_key: str) -> dict[str, str]:
    """The same environment for both tools (see sandbox.py), the key from the local server."""
    return sandbox_env(root, api_key=api_key)


class Server:
    def __init__(self, args: argparse.Namespace) -> None:
        cmd = [
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
            "--entity",
            ENTITY,
            "--project",
            PROJECT,
            "--latency-ms",
            str(args.latency_ms),
            "--per-row-us",
            str(args.per_row_us),
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"server did not start: {self.url!r}")

    def _call(self, method: str, path: str) -> Any:
        req = urllib.request.Request(self.url + path, data=b"" if method == "POST" else None, method=method)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def reset(self) -> None:
        self._call("POST", "/_stats/reset")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_stats")

    def request_log(self) -> list[dict[str, Any]]:
        return self._call("GET", "/_requests")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ------------------------------------------------------------------------------------------------
# The peer, in its own process: `python startup.py --peer SPEC_JSON`


def peer_main(spec: dict[str, Any]) -> None:
    """threads/thr from peers.py, then the arrays to one npz: what a user's script does."""
    sys.path.insert(0, str(HERE))
    import numpy as np
    import peers

    got = peers.threads(
        spec["base_url"],
        os.environ["WANDB_API_KEY"],
        ENTITY,
        PROJECT,
        spec["fields"],
        spec["samples"],
        1000,
        per_thread_api=True,
    )
    arrays: dict[str, Any] = {}
    for f, per in got.items():
        for rid, (steps, values) in per.items():
            arrays[f"{f}::{rid}::steps"] = steps
            arrays[f"{f}::{rid}::values"] = values
    np.savez(spec["out"], **arrays)


# ------------------------------------------------------------------------------------------------
# One launch


def launch(
    tool: str, server: Server, args: argparse.Namespace, work: Path, tag: str, env: dict[str, str]
) -> dict[str, Any]:
    fields = _field_names(args.metrics)
    out = work / tag
    if tool == "ours":
        config = {
            "exp": {
                "entity": ENTITY,
                "project": PROJECT,
                "fields": fields,
                "output_path": str(out),
                "history_samples": args.samples,
            }
        }
        path = work / f"{tag}.yaml"
        path.write_text(json.dumps(config))  # JSON is YAML
        cmd = [sys.executable, "-m", "wandb2numpy", str(path), "--base-url", server.url, "-q"]
    else:
        spec = {"base_url": server.url, "fields": fields, "samples": args.samples, "out": str(out) + ".npz"}
        cmd = [sys.executable, str(Path(__file__).resolve()), "--peer", json.dumps(spec)]
    server.reset()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = proc.communicate(timeout=300)
    t_exit = time.monotonic()
    if proc.returncode != 0:
        raise RuntimeError(f"{tag} failed ({proc.returncode}):\n{stdout[-2000:]}\n{stderr[-4000:]}")
    log = server.request_log()
    stats = server.stats()
    if not log:
        raise RuntimeError(f"{tag}: the server logged no request")
    first = min(r["t"] for r in log)
    history = [r["t"] for r in log if any(h in r["op"] for h in HISTORY)]
    last_answer = max(r.get("t_end", r["t"]) for r in log)
    return {
        "tool": tool,
        "first_request_s": first - t0,
        "first_history_s": (min(history) - t0) if history else None,
        "end_s": t_exit - last_answer,
        "wall_s": t_exit - t0,
        "viewer": stats["ops"].get("Viewer", 0),
        "requests": stats["requests"],
    }


def _field_names(metrics: int) -> list[str]:
    from wandb2numpy.testing.synthetic import metric_names

    return metric_names(metrics)


# ------------------------------------------------------------------------------------------------
# The table

ROWS = (
    ("first_request_s", "launch -> first request (s)"),
    ("first_history_s", "launch -> first history request (s)"),
    ("end_s", "last answer -> exit (s)"),
    ("wall_s", "launch -> exit (s)"),
    ("viewer", "Viewer requests"),
    ("requests", "requests"),
)


def _med(recs: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in recs if r[key] is not None]
    return statistics.median(vals) if vals else None


def _spread(recs: list[dict[str, Any]], key: str) -> str:
    vals = [r[key] for r in recs if r[key] is not None]
    if not vals:
        return "-"
    if all(isinstance(v, int) for v in vals):
        return f"{min(vals)}-{max(vals)}"
    return f"{min(vals):.3f}-{max(vals):.3f}"


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return str(v) if isinstance(v, int) or float(v).is_integer() and v > 1 else f"{v:.3f}"


def table(recs: list[dict[str, Any]]) -> str:
    ours = [r for r in recs if r["tool"] == "ours"]
    thr = [r for r in recs if r["tool"] == "thr"]
    lines = [
        "| measure | ours (median) | thr (median) | ours / thr | paired ratio (median) | ours min-max | thr min-max |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, label in ROWS:
        a, b = _med(ours, key), _med(thr, key)
        ratio = f"{a / b:.2f}" if a is not None and b else "-"
        # launch i of each tool ran back to back: their ratio is less exposed to a load that
        # comes and goes on a shared machine than the ratio of the medians
        pairs = [x[key] / y[key] for x, y in zip(ours, thr) if x[key] is not None and y[key]]
        paired = f"{statistics.median(pairs):.2f}" if pairs else "-"
        lines.append(
            f"| {label} | {_fmt(a)} | {_fmt(b)} | {ratio} | {paired} | {_spread(ours, key)} | {_spread(thr, key)} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peer", help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, default=5, help="launches of each tool, alternating (default 5)")
    p.add_argument("--runs", type=int, default=8, help="synthetic runs (default 8)")
    p.add_argument("--steps", type=int, default=200, help="steps per run (default 200)")
    p.add_argument("--metrics", type=int, default=2, help="fields exported (default 2)")
    p.add_argument("--samples", type=int, default=12000, help="history_samples (default 12000)")
    p.add_argument("--latency-ms", type=float, default=50.0, help="server latency per request (default 50)")
    p.add_argument("--per-row-us", type=float, default=1.0, help="plus per history row returned (default 1)")
    p.add_argument("--json", metavar="FILE", help="also write every launch's numbers here")
    args = p.parse_args()
    if args.peer:
        peer_main(json.loads(args.peer))
        return
    from wandb2numpy.testing import DEFAULT_API_KEY

    server = Server(args)
    recs: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="w2n-startup-") as tmp:
            work = Path(tmp)
            env = _sandbox_env(work / "sandbox", DEFAULT_API_KEY)
            # one unmeasured launch of each: the first start of wandb-core and of the
            # interpreter's file caches is not what a user sees on the second run
            launch("ours", server, args, work, "warm-ours", env)
            launch("thr", server, args, work, "warm-thr", env)
            for i in range(args.repeats):
                order = ("ours", "thr") if i % 2 == 0 else ("thr", "ours")
                for tool in order:
                    rec = launch(tool, server, args, work, f"{tool}-{i}", env)
                    recs.append(rec)
                    print(
                        f"{tool:4} #{i}: first {rec['first_request_s']:.3f} s, first history "
                        f"{rec['first_history_s'] or float('nan'):.3f} s, end {rec['end_s']:.3f} s, "
                        f"wall {rec['wall_s']:.3f} s, Viewer {rec['viewer']}",
                        file=sys.stderr,
                    )
    finally:
        server.stop()
    print(
        f"{args.runs} runs x {args.steps} steps, {args.metrics} fields, history_samples {args.samples}, "
        f"latency {args.latency_ms:g} ms + {args.per_row_us:g} us/row; {args.repeats} launches each\n"
    )
    print(table(recs))
    if args.json:
        Path(args.json).write_text(json.dumps(recs, indent=1))


if __name__ == "__main__":
    main()
