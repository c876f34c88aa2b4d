"""W&B run folders on disk as a `HistorySource`: no server, no network, no rate limit.

Listing decodes every run file (in worker processes, see `workers`: the decode is CPU-bound
Python and numpy, which threads would serialise on the GIL), keeps the rows of the keys the experiment asks for,
and filters and orders the runs exactly as the service would (the filter is the one sent to the
service, evaluated by the same evaluator the local test server uses). Reading then hands out
those rows as `Series`; a run listed without its rows (another experiment's fields) is decoded
again.

Sampling (`history_samples: N`) is this reader's own: N rows spread evenly over each key's rows,
the first and last always among them, the same every time. The service's sampler differs and is
not reproducible, so sampled exports of the two sources differ; full histories are identical.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import anyio
import numpy as np

from ...config import ExperimentConfig
from ...config.filters import build_filters
from ...config.match import FilterError, matches
from ...errors import Wandb2NumpyError
from ...models import RunInfo
from ...plan.reads import plan_keys
from ...runner import FetchStats
from ...series import Series
from ..base import OutcomeFn, ProgressFn, RunEvent, RunOutcome
from ..cache import STATE_DIR
from . import remember
from .decode import KeyRows, ParsedFile, Resume, parse_job
from .discover import find_run_files
from .runs import Run, build_runs, filter_doc
from .wire import RunFileError
from .workers import WorkerError, WorkerPool

__all__ = ["RunFolderSource", "sample_rows"]

log = logging.getLogger(__name__)

# Below this many bytes in all, files are decoded in this process: starting workers costs more.
INLINE_BYTES = 8 << 20


def sample_rows(n: int, samples: int) -> np.ndarray:
    """Which of `n` rows a sampled read keeps: `samples` spread evenly, first and last kept."""
    if samples <= 0:
        return np.empty(0, np.intp)
    if n <= samples:
        return np.arange(n)
    if samples == 1:
        return np.zeros(1, np.intp)
    return np.rint(np.linspace(0, n - 1, samples)).astype(np.intp)


class RunFolderSource:
    """Run folders as a `HistorySource`. `source`: a folder of run folders (such as `./wandb`),
    one run folder, one `.wandb` file, a glob, or a list of these. `workers`: processes that
    decode files (default: one per CPU); below `inline_bytes` of files in all, they are decoded
    in this process. `now`: the time live runs are judged against (default: the clock).
    `stats`: where to count rows (shared by the readers of one export). `listing_cache`: remember
    each file's listing beside an incremental export's cache, so unchanged files are not decoded
    again (see `remember`)."""

    def __init__(
        self,
        source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        workers: int | None = None,
        inline_bytes: int = INLINE_BYTES,
        now: float | None = None,
        stats: FetchStats | None = None,
        listing_cache: bool = False,
    ) -> None:
        self.source = source if isinstance(source, (str, os.PathLike)) else list(source)
        self.workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        self.inline_bytes = inline_bytes
        self._now = now
        self._stats = stats if stats is not None else FetchStats()
        self.listing_cache = listing_cache
        self._pool: WorkerPool | None = None
        self._closing = threading.Event()
        # per run id: the rows read at listing time, and the files to decode again if needed
        self._rows: dict[str, dict[str, KeyRows]] = {}
        self._files: dict[str, list[tuple[str, int]]] = {}
        self._wanted: dict[str, frozenset[str] | None] = {}
        self._partial: dict[str, float] = {}
        self._said_slow = False  # runs whose rows start after this step (read on)
        self.decode_seconds = 0.0  # CPU time the decoding took, over all processes
        self.files_decoded = 0  # at listing (not counting files remembered unchanged)
        self.files_read_on = 0  # of those, files that grew, read on from where the last listing stopped

    @property
    def stats(self) -> FetchStats:
        return self._stats

    async def prepare(self) -> None:
        """Nothing to connect to."""

    def close(self) -> None:
        self._closing.set()
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self._rows.clear()

    # ------------------------------------------------------------------ listing

    async def list_runs(self, exp: ExperimentConfig) -> list[RunInfo]:
        paths = await anyio.to_thread.run_sync(find_run_files, self.source)
        wanted = None if exp.fields is None else frozenset({*exp.fields, exp.x_axis})
        stats = [(str(p), p.stat()) for p in paths]
        memo_path = Path(exp.output_path) / STATE_DIR / exp.name / remember.FILE_NAME
        memo = remember.load(memo_path) if self.listing_cache else {}
        known: dict[int, ParsedFile] = {}
        for i, (path, st) in enumerate(stats):
            if remember.unchanged(memo.get(path), st.st_size, st.st_mtime_ns):
                got = remember.stub(path, memo[path])
                if got is not None:
                    known[i] = got
        todo = [i for i in range(len(stats)) if i not in known]
        resumes = [remember.resume_of(stats[i][0], memo.get(stats[i][0])) for i in todo]
        fresh = await self._parse_all([(stats[i][0], stats[i][1].st_size) for i in todo], wanted, resumes)
        parsed_at = dict(zip(todo, fresh))
        parsed = [known[i] if i in known else parsed_at[i] for i in range(len(stats))]
        self.files_decoded += len(fresh)
        self.files_read_on += sum(1 for f in fresh if f.read_from)
        if self.listing_cache:
            entries = {
                stats[i][0]: memo[stats[i][0]]
                if i in known
                else remember.entry_of(parsed_at[i], stats[i][1].st_mtime_ns)
                for i in range(len(stats))
            }
            await anyio.to_thread.run_sync(remember.save, memo_path, entries)
        for f in parsed:
            if not f.meta.run_id:
                log.warning(
                    "%s holds no run record yet (%d bytes; a run just starting, or cut short): left out", f.path, f.size
                )
        runs = build_runs(parsed, now=self._now if self._now is not None else time.time())
        selected = self._select(runs, exp)
        for run in selected:
            for warning in run.warnings:
                log.warning("run %s: %s", run.info.id, warning)
            if remember.has_rows(run.files):  # else decoded when read (if its cache cannot serve it)
                self._rows[run.info.id] = run.keys
                partial = [f.resumed_from for f in run.files if f.resumed_from is not None]
                if partial:  # read on from an earlier listing: rows from this step on only
                    self._partial[run.info.id] = max(partial)
            self._files[run.info.id] = [(f.path, f.size) for f in run.files]
            self._wanted[run.info.id] = wanted
        return [r.info for r in selected]

    def _select(self, runs: Sequence[Run], exp: ExperimentConfig) -> list[Run]:
        """The runs the experiment's filter matches, as the service evaluates it; entity and
        project, when the experiment names them, leave out runs recorded under others (a run
        recorded without one, as offline runs often are, is kept)."""
        flt = build_filters(exp)
        out = []
        for run in runs:
            info = run.info
            if exp.entity and info.entity and info.entity != exp.entity:
                continue
            if exp.project and info.project and info.project != exp.project:
                continue
            try:
                ok = matches(filter_doc(info), flt)
            except FilterError as exc:
                raise Wandb2NumpyError(f"experiment '{exp.name}': the run filter cannot be evaluated: {exc}") from None
            if ok:
                out.append(run)
        return out

    async def _parse_all(
        self,
        files: Sequence[tuple[str, int]],
        wanted: frozenset[str] | None,
        resumes: Sequence[Resume | None] | None = None,
    ) -> list[ParsedFile]:
        """Decode the files, in worker processes when there is enough to share; in `files` order.
        `resumes`: where to read each file on from (None: whole)."""
        if not files:
            return []
        on = list(resumes) if resumes is not None else [None] * len(files)
        total = sum(size - (r.offset if r is not None else 0) for (_, size), r in zip(files, on))
        if self.workers == 1 or len(files) == 1 or total < self.inline_bytes:

            def inline() -> list[ParsedFile]:
                return [parse_job(p, s, wanted, r) for (p, s), r in zip(files, on)]

            parsed = await anyio.to_thread.run_sync(inline)
        else:
            self._say_if_slow(total)
            # Workers live for one batch of files: once they are read, the memory is the arrays'.
            pool = self._pool = WorkerPool(self.workers)
            # largest first, so no worker is left with a big file at the end
            order = sorted(range(len(files)), key=lambda i: -files[i][1])
            jobs = [(files[i][0], files[i][1], wanted, on[i]) for i in order]
            try:
                done = await anyio.to_thread.run_sync(
                    functools.partial(pool.map, "parse_job", jobs, cancelled=self._closing.is_set),
                    abandon_on_cancel=True,
                )
            except WorkerError as exc:
                raise RunFileError(f"decoding run files failed: {exc}") from None
            finally:
                pool.close()
                self._pool = None
            by_index = dict(zip(order, done))
            parsed = [by_index[i] for i in range(len(files))]
        self.decode_seconds += sum(p.seconds for p in parsed)
        return parsed

    def _say_if_slow(self, total: int) -> None:
        """One line when a large decode will run without the compiled loops (not built at
        install, or a checkout run in place): the export is right, but about four times slower."""
        from . import fast

        if self._said_slow or fast.compiled_in_use() or os.environ.get("WANDB2NUMPY_NO_COMPILED"):
            return
        self._said_slow = True
        log.warning(
            "the compiled run-file reader is not built here, so %.0f MB of run files are decoded by its "
            "numpy version, about four times slower: `pip install .` builds it where a C compiler is (in a "
            "checkout run in place: `python setup.py build_ext --inplace`)",
            total / 1e6,
        )

    # ------------------------------------------------------------------ reading

    async def read_runs(
        self,
        runs: Sequence[RunInfo],
        fields: Sequence[str],
        *,
        samples: int | None,
        progress: ProgressFn | None = None,
        starts: Sequence[int] | None = None,
        on_outcome: OutcomeFn | None = None,
    ) -> list[RunOutcome]:
        first = list(starts) if starts is not None else [0] * len(runs)
        need = set(fields)
        missing = [r.id for r in runs if r.id not in self._rows or not self._covers(r.id, need)]
        # rows read on from an earlier listing serve only a read of the steps from that part's
        # last one on (the incremental cache's, which asks for that row again to check it)
        missing += [
            r.id
            for r, start in zip(runs, first)
            if r.id in self._partial and r.id not in missing and not start >= self._partial[r.id]
        ]
        if missing:
            await self._reread(missing, need)
        outcomes: list[RunOutcome] = []
        for run, start in zip(runs, first):
            outcome = self._outcome(run, fields, samples, start)
            outcomes.append(outcome)
            if samples is None:  # a full read is the last one of a run's rows (see xaxis)
                self._rows.pop(run.id, None)
            if on_outcome is not None:  # the incremental cache saves each run as it completes
                on_outcome(run, outcome)
            if progress is not None:
                event: RunEvent = "run_failed" if outcome.error else "run_done"
                progress(event, run, outcome.rows)
        return outcomes

    def _covers(self, run_id: str, need: set[str]) -> bool:
        wanted = self._wanted.get(run_id)
        rows = self._rows.get(run_id, {})
        return wanted is None or all(k in wanted or k not in rows for k in need)

    async def _reread(self, run_ids: Sequence[str], need: set[str]) -> None:
        files = [pf for rid in run_ids for pf in self._files.get(rid, [])]
        wanted = frozenset(need | {k for rid in run_ids for k in (self._wanted.get(rid) or ())})
        parsed = await self._parse_all(files, wanted)
        for run in build_runs(parsed, now=self._now if self._now is not None else time.time()):
            if run.info.id in run_ids:
                self._rows[run.info.id] = run.keys
                self._wanted[run.info.id] = wanted
                self._partial.pop(run.info.id, None)

    def _outcome(self, run: RunInfo, fields: Sequence[str], samples: int | None, start: int) -> RunOutcome:
        outcome = RunOutcome()
        rows = self._rows.get(run.id)
        if rows is None:
            outcome.error = "its run files are no longer readable"
            return outcome
        for key in plan_keys(run, fields, outcome.non_numeric):
            got = rows.get(key)
            if got is None:
                continue
            if got.values is None or got.steps is None:
                outcome.non_numeric[key] = f"holds non-numeric values ({got.example or 'text'})"
                continue
            steps, values = got.steps, got.values
            if start:
                keep = int(np.searchsorted(steps, start, "left"))
                steps, values = steps[keep:], values[keep:]
            elif samples is not None and len(steps) > samples:
                pick = sample_rows(len(steps), samples)
                steps, values = steps[pick], values[pick]
            if len(steps):
                outcome.series[key] = Series(steps, values)
                self._stats.rows += len(steps)
        return outcome
