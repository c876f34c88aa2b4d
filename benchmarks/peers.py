"""The peers wandb2numpy is measured against: what a competent user writes with wandb alone.

Each returns `{field: {run_id: (steps, values)}}` as `baseline.export` does, so the benchmark
checks every peer's arrays against the original algorithm's.

- `threads`: one `wandb.Api()`, a `ThreadPoolExecutor(16)` over the listed runs (submitted as the
  listing yields them), `run.history(keys, samples)` when sampled, `run.scan_history(keys,
  page_size)` for full history. wandb-core lets one `Api` have at most 10 requests in flight.
- `thr` (threads/thr): the same with one `Api` per thread, each listed run rebound to its
  thread's `Api` (a `Run` built from the listed run's attributes on that `Api`'s service, as
  `Runs` builds them: no request) so that 16 requests are in flight. `api.run(path)` would do
  the same at one more request per run.
- `sdk`: wandb 0.31's own readers on the same pool of per-thread `Api`s. Sampled: the listed runs
  split into one slice per thread, each read with `Runs.histories(format="polars")` (sequential
  inside) on a `name $in` listing of its slice. Full: `run.download_history_exports()` read with
  pyarrow, falling back to `run.scan_history(keys, page_size)` when the run has no complete export.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from baseline import _num

THREADS = 16
Result = dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]


def _columns(rows: Iterable[Mapping[str, Any]], fields: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    cols: dict[str, tuple[list[float], list[float]]] = {f: ([], []) for f in fields}
    for row in rows:
        for f in fields:
            v = row.get(f)
            if v is not None:
                cols[f][0].append(float(row["_step"]))
                cols[f][1].append(_num(v))
    return {f: (np.array(s), np.array(v, dtype=np.float64)) for f, (s, v) in cols.items() if v}


def _collect(out: Result, run_id: str, cols: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
    for f, pair in cols.items():
        out[f][run_id] = pair


class _Apis:
    """One `wandb.Api` per worker thread (created on the thread's first run)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._local = threading.local()

    def get(self) -> Any:
        api = getattr(self._local, "api", None)
        if api is None:
            api = self._local.api = self._make()
        return api


def _api_maker(base_url: str, api_key: str, entity: str) -> Callable[[], Any]:
    import wandb

    return lambda: wandb.Api(api_key=api_key, overrides={"base_url": base_url, "entity": entity})


def _pool_over_runs(
    runs: Iterable[Any], work: Callable[[Any], dict[str, tuple[np.ndarray, np.ndarray]]], fields: list[str]
) -> Result:
    out: Result = {f: {} for f in fields}
    with ThreadPoolExecutor(THREADS) as pool:
        futures: list[tuple[str, Future[dict[str, tuple[np.ndarray, np.ndarray]]]]] = [
            (run.id, pool.submit(work, run)) for run in runs
        ]
        for run_id, fut in futures:
            _collect(out, run_id, fut.result())
    return out


def threads(
    base_url: str,
    api_key: str,
    entity: str,
    project: str,
    fields: list[str],
    samples: int | None,
    page_size: int,
    per_thread_api: bool,
) -> Result:
    make = _api_maker(base_url, api_key, entity)
    api = make()
    apis = _Apis(make)

    def work(run: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        if per_thread_api:
            from wandb.apis.public import Run

            run = Run(apis.get()._service_api, entity, project, run.id, dict(run._attrs))
        if samples is not None:
            return _columns(run.history(keys=fields, samples=samples, pandas=False), fields)
        return _columns(run.scan_history(keys=fields, page_size=page_size), fields)

    return _pool_over_runs(api.runs(f"{entity}/{project}", filters={}), work, fields)


def sdk(
    base_url: str, api_key: str, entity: str, project: str, fields: list[str], samples: int | None, page_size: int
) -> Result:
    make = _api_maker(base_url, api_key, entity)
    api = make()
    apis = _Apis(make)
    path = f"{entity}/{project}"
    if samples is not None:
        # Imported here, once: wandb loads polars lazily on first use, and 16 threads doing that
        # at once fail in polars' own import (RecursionError), as a user's script would not.
        import polars  # noqa: F401

        ids = [run.id for run in api.runs(path, filters={})]
        slices = [ids[i::THREADS] for i in range(THREADS) if ids[i::THREADS]]

        def read_slice(names: list[str]) -> Any:
            runs = apis.get().runs(path, filters={"name": {"$in": names}}, per_page=max(1, len(names)))
            return runs.histories(samples=samples, keys=fields, format="polars")

        out: Result = {f: {} for f in fields}
        with ThreadPoolExecutor(THREADS) as pool:
            frames = list(pool.map(read_slice, slices))
        for df in frames:
            if df.is_empty():
                continue
            for (run_id,), part in df.partition_by("run_id", as_dict=True).items():
                _collect(out, str(run_id), _columns(part.to_dicts(), fields))
        return out

    from wandb.apis.public.runhistory import IncompleteRunHistoryError

    scratch = Path(tempfile.mkdtemp(prefix="w2n-sdk-"))

    def work(run: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        import pyarrow.parquet as pq

        run = apis.get().run(f"{path}/{run.id}")
        try:
            got = run.download_history_exports(scratch / run.id)
        except IncompleteRunHistoryError:
            got = None
        if got is None or got.errors or not got.paths:
            return _columns(run.scan_history(keys=fields, page_size=page_size), fields)
        steps: dict[str, list[np.ndarray]] = {f: [] for f in fields}
        values: dict[str, list[np.ndarray]] = {f: [] for f in fields}
        for file in got.paths:
            table = pq.read_table(file, columns=["_step", *[f for f in fields if f in pq.read_schema(file).names]])
            step = table.column("_step").to_numpy().astype(np.float64)
            for f in fields:
                if f not in table.column_names:
                    continue
                col = table.column(f)
                keep = ~col.is_null().to_numpy(zero_copy_only=False)
                steps[f].append(step[keep])
                values[f].append(col.to_numpy(zero_copy_only=False).astype(np.float64)[keep])
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for f in fields:
            if steps[f] and sum(len(s) for s in steps[f]):
                s, v = np.concatenate(steps[f]), np.concatenate(values[f])
                order = np.argsort(s, kind="stable")
                out[f] = (s[order], v[order])
        return out

    return _pool_over_runs(api.runs(path, filters={}), work, fields)
