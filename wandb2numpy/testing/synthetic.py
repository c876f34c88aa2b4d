"""A deterministic synthetic project with realistic training curves.

The schema is fixed (other code and example configs are written against it): run i gets group
`["ppo","sac","td3"][i % 3]`, job type `["train","eval"][(i // 3) % 2]`, and so on, see
`run_meta`. Curves are generated with numpy per run from a generator seeded by (seed, i), so
64 runs x 20,000 steps take a fraction of a second and never depend on generation order.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from .history import Column, History, numeric_column

DEFAULT_ENTITY = "demo"
DEFAULT_PROJECT = "synthetic"
DEFAULT_RUNS = 12
DEFAULT_STEPS = 200
DEFAULT_METRICS = 5
DEFAULT_SEED = 0
DEFAULT_EVAL_EVERY = 10

GROUPS = ("ppo", "sac", "td3")
JOB_TYPES = ("train", "eval")
TAGS = (("baseline",), ("ablation",), ("baseline", "long"), ())
LRS = (1e-4, 3e-4, 1e-3)
ENVS = ("hopper", "walker")
METRIC_NAMES = (
    "train/return",
    "train/loss",
    "train/entropy",
    "eval/return",
    "eval/success_rate",
    "train/lr",
    "train/grad_norm",
    "eval/episode_length",
)
_EPOCH0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def metric_names(k: int) -> list[str]:
    return list(METRIC_NAMES[:k]) + [f"metric_{j}" for j in range(len(METRIC_NAMES), k)]


def run_id(seed: int, i: int, taken: set[str] | None = None) -> str:
    """8 base36 characters from a hash of (seed, i); a salt counter resolves the rare clash."""
    salt = 0
    while True:
        h = int.from_bytes(hashlib.sha256(f"{seed}:{i}:{salt}".encode()).digest()[:8], "big")
        rid = "".join(_B36[(h // 36**j) % 36] for j in range(8))
        if taken is None or rid not in taken:
            return rid
        salt += 1


def run_meta(i: int, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Everything about run i except its id and history."""
    group = GROUPS[i % 3]
    env = ENVS[i % 2]
    run_seed = i % 5
    state = "finished"
    if i % 7 == 6:
        state = "running"
    elif i % 11 == 10:
        state = "crashed"
    created = _EPOCH0 + timedelta(minutes=i)
    return {
        "name": f"{group}-{env}-s{run_seed}-{i}",
        "group": group,
        "job_type": JOB_TYPES[(i // 3) % 2],
        "tags": list(TAGS[i % 4]),
        "state": state,
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": {
            "lr": LRS[(i // 2) % 3],
            "seed": run_seed,
            "env": {"name": env},
            "optimizer": {"name": "adam", "betas": [0.9, 0.999]},
        },
    }


def _f64(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _curve(name: str, t: np.ndarray, rng: np.random.Generator, lr: float, skill: float) -> np.ndarray:
    """One metric over progress t in [0, 1]; shapes loosely follow an RL training run."""
    n = len(t)
    speed = 4.0 + 6.0 * (lr / 1e-3) ** 0.5
    rise = 1.0 / (1.0 + np.exp(-speed * (t - 0.35)))
    if name.endswith("/return"):
        noise = 60.0 if name.startswith("train") else 25.0
        return _f64(3000.0 * skill * rise + rng.normal(0.0, noise, n))
    if name == "train/loss":
        return _f64(2.0 * np.exp(-3.0 * speed / 6.0 * t) + 0.05 + np.abs(rng.normal(0.0, 0.05, n)))
    if name == "train/entropy":
        return _f64(1.5 - 1.1 * rise + rng.normal(0.0, 0.03, n))
    if name == "eval/success_rate":
        return _f64(np.clip(skill * rise + rng.normal(0.0, 0.05, n), 0.0, 1.0))
    if name == "train/lr":
        return _f64(lr * 0.5 * (1.0 + np.cos(np.pi * t)))
    if name == "train/grad_norm":
        return _f64((5.0 * np.exp(-2.0 * t) + 0.5) * rng.lognormal(0.0, 0.3, n))
    if name == "eval/episode_length":
        return _f64(np.rint(np.clip(100.0 + 900.0 * rise + rng.normal(0.0, 30.0, n), 1.0, 1000.0)))
    return _f64(np.cumsum(rng.normal(0.0, 1.0, n)))  # metric_k: a random walk


def run_history(
    i: int, *, seed: int, steps: int, metrics: int, eval_every: int, start: float, step_stride: int = 1
) -> History:
    """`steps` rows logged `step_stride` steps apart (RL code often logs at the environment step)."""
    rng = np.random.default_rng([seed, i])
    meta = run_meta(i, seed)
    skill = 0.6 + 0.4 * rng.random()
    index = np.arange(steps, dtype=np.int64)
    step_arr = index * max(1, int(step_stride))
    t = index / max(1, steps - 1)
    runtime = np.cumsum(rng.uniform(0.05, 0.15, steps))
    cols: dict[str, Column] = {
        "_step": numeric_column(step_arr),
        "_runtime": numeric_column(runtime),
        "_timestamp": numeric_column(start + runtime),
    }
    every = max(1, int(eval_every))
    for name in metric_names(metrics):
        values = _curve(name, t, rng, float(meta["config"]["lr"]), skill)
        if name == "eval/episode_length":
            values = values.astype(np.int64)
        present = None
        if name.startswith("eval/") and every > 1:
            present = index % every == 0
        cols[name] = numeric_column(values, present)
        if present is not None:
            cols[name].type_counts = {"number": int(present.sum())}
    return History(step_arr, cols)


def synthetic_project(
    *,
    runs: int = DEFAULT_RUNS,
    steps: int = DEFAULT_STEPS,
    metrics: int = DEFAULT_METRICS,
    seed: int = DEFAULT_SEED,
    eval_every: int = DEFAULT_EVAL_EVERY,
    entity: str = DEFAULT_ENTITY,
    project: str = DEFAULT_PROJECT,
    columnar: bool = False,
    step_stride: int = 1,
    all_finished: bool = False,
) -> dict[str, Any]:
    """The synthetic project as the JSON fixture shape.

    With `columnar=True` each run's `history` is a ready `History` (what the server loads, no
    per-row dicts); otherwise it is the list of row dicts a JSON file would hold. `step_stride`
    spaces the logged steps; `all_finished` marks every run finished (so `--parquet` exports all).
    """
    taken: set[str] = set()
    out_runs = []
    for i in range(runs):
        rid = run_id(seed, i, taken)
        taken.add(rid)
        meta = run_meta(i, seed)
        if all_finished:
            meta["state"] = "finished"
        start = (_EPOCH0 + timedelta(minutes=i)).timestamp()
        hist = run_history(
            i, seed=seed, steps=steps, metrics=metrics, eval_every=eval_every, start=start, step_stride=step_stride
        )
        summary = hist.last_values()
        finished_at = start + (float(hist.columns["_runtime"].values[-1]) if steps else 0.0)
        run: dict[str, Any] = {
            "id": rid,
            **meta,
            "heartbeat_at": datetime.fromtimestamp(finished_at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "summary": summary,
            "history": hist if columnar else hist.rows(np.arange(len(hist))),
        }
        out_runs.append(run)
    return {"projects": [{"entity": entity, "name": project, "runs": out_runs}]}
