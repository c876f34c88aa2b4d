"""Incremental exports: fetch only the runs that changed since the last export into the same folder.

Beside the output, per experiment::

    <output_path>/.wandb2numpy/<experiment>/state.json        what each cached run looked like
    <output_path>/.wandb2numpy/<experiment>/runs/<run>.npz     that run's fetched series

`state.json` holds a format version, a fingerprint of everything that decides the data (entity,
project or run folders, run filter, the configured field list or "all", history_samples) and, per cached run, its
id, state, history line count, last step, heartbeat time and the field list it was fetched for.
A changed fingerprint drops the whole cache. Each `.npz` repeats its run's metadata, so a cache
file that does not match its state entry (or does not load) is simply fetched again.

A run is served from the cache only if it is not running or pending, its listing shows the same
state, history line count, last step and heartbeat as when it was cached, and its file loads.
With `fields: all` the field list follows the listing; a cached run fetched for fewer fields is
still reused when the listing's history keys show it holds none of the new fields as numbers
(the same `plan_keys` decision a source makes, so the result equals a fresh fetch); otherwise
it is fetched again.

Each run is saved as soon as it is read: its `.npz`, then one line in `journal.jsonl` (a header
line with the fingerprint, then one entry per line), so an export interrupted half-way leaves
the runs it finished cached, and the next one fetches only the rest. At the end, after the
experiment's arrays are written, `state.json` takes every entry, the journal is removed, and cache
files no run in the new state uses are deleted (runs deleted on the server, filtered out or
failed); runs the last state held that the listing no longer shows are named (`gone`). A crash
at any point leaves a state and a journal that point only at data that is on disk and
self-checking (a torn last journal line is skipped). Failed runs are never cached. Running runs
are cached only with full history (`history_samples: all`), where their next export fetches
only the steps logged since; a sample of a running run changes as it grows, so sampled configs
fetch running runs whole every time and never cache them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from ..config import ExperimentConfig
from ..config.defaults import DEFAULT_X_AXIS
from ..config.names import check_experiment
from ..errors import ConfigError, OutputError
from ..models import RunInfo
from ..output.folder import atomic_write_bytes
from ..plan.reads import plan_keys
from ..runner import FetchStats
from ..series import Series, merge_series
from .base import HistorySource, OutcomeFn, ProgressFn, RunOutcome

_SPURIOUS_AST_ERROR = re.compile(r"AST \w+ recursion depth mismatch")

__all__ = ["STATE_DIR", "CachedSource", "RunCache", "fingerprint", "open_cache"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
STATE_DIR = ".wandb2numpy"
STATE_FILE = "state.json"
JOURNAL_FILE = "journal.jsonl"
RUNS_DIR = "runs"
ACTIVE_STATES = frozenset({"running", "pending"})  # may still log: always fetched, never cached
_SAFE_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}")  # lower case only: case-insensitive file systems


def fingerprint(exp: ExperimentConfig, filters: Mapping[str, Any]) -> dict[str, Any]:
    """What decides an experiment's data; JSON-normalised so it compares equal after a round trip."""
    raw = {
        "entity": exp.entity,
        "project": exp.project,
        "filters": filters,
        "fields": list(exp.fields) if exp.fields is not None else "all",
        "history_samples": exp.history_samples,
    }
    if exp.run_folders is not None:  # only then: fingerprints of W&B exports stay as they were
        raw["source"] = exp.run_folders
    normalised: dict[str, Any] = json.loads(json.dumps(raw, sort_keys=True, default=str))
    return normalised


def _signature(run: RunInfo) -> dict[str, Any]:
    return {
        "state": run.state,
        "history_line_count": run.history_line_count,
        "last_step": run.last_step,
        "heartbeat_at": run.heartbeat_at,
    }


def _file_name(run_id: str) -> str:
    if _SAFE_ID.fullmatch(run_id):
        return f"{run_id}.npz"
    # "~" never occurs in a safe id, so a hashed name cannot collide with a plain one.
    return "~" + hashlib.sha256(run_id.encode("utf-8")).hexdigest()[:32] + ".npz"


@dataclass(frozen=True)
class _Entry:
    id: str
    state: str
    history_line_count: int
    last_step: int
    heartbeat_at: str | None
    fields: tuple[str, ...]
    file: str

    def signature(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "history_line_count": self.history_line_count,
            "last_step": self.last_step,
            "heartbeat_at": self.heartbeat_at,
        }


class RunCache:
    """One experiment's incremental state: decides which runs to fetch and saves what was fetched."""

    def __init__(self, folder: Path, experiment: str, fp: Mapping[str, Any]) -> None:
        self.folder = folder
        self.experiment = experiment
        self.fingerprint = dict(fp)
        # Counted over every `read_runs` of the export (the pipeline may read runs in parts:
        # sampled, and in full with an x axis).
        self.unchanged = 0  # runs served from the cache
        self.grown = 0  # runs that fetched only their new steps
        self._entries: dict[str, _Entry] = {}
        self._kept: dict[str, _Entry] = {}  # reused entries, by run id
        self._fields: tuple[str, ...] = ()
        self._fetched: set[str] = set()  # ids of the runs fetched (whole or their new steps)
        # Whether each run is saved as it is read (see the module doc); off where one run's
        # outcome may still be replaced after it is reported (an x_axis other than _step).
        self.journal = True
        self._saved: dict[str, _Entry] = {}  # runs saved as they were read, this export
        self._journal_started = False
        self._full = fp.get("history_samples") is None  # full history: running runs may be cached
        self.gone: list[str] = []  # runs of the last state the listing no longer shows

    # ---------------------------------------------------------------------------- reading

    def read_state(self) -> None:
        path = self.folder / STATE_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            log.info("%s: no incremental state yet; fetching every run", self.experiment)
            return
        except OSError as exc:
            log.warning("%s: cannot read %s (%s); fetching every run", self.experiment, path, exc)
            return
        try:
            state = json.loads(raw.decode("utf-8"))
            if state.get("format") != FORMAT_VERSION:
                log.info("%s: incremental state has another format; fetching every run", self.experiment)
                return
            if state.get("fingerprint") != self.fingerprint:
                log.info(
                    "%s: entity, project, filters, fields or history_samples changed since the "
                    "last incremental export; the cache is dropped and every run fetched",
                    self.experiment,
                )
                return
            field_sets = [tuple(str(f) for f in fs) for fs in state["field_sets"]]
            entries = {}
            for e in state["runs"]:
                entry = _Entry(
                    id=str(e["id"]),
                    state=str(e["state"]),
                    history_line_count=int(e["history_line_count"]),
                    last_step=int(e["last_step"]),
                    heartbeat_at=e["heartbeat_at"],
                    fields=field_sets[int(e["fields"])],
                    file=str(e["file"]),
                )
                if entry.file != _file_name(entry.id):
                    raise ValueError(f"unexpected cache file name {entry.file!r}")
                entries[entry.id] = entry
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            log.warning("%s: %s is damaged (%s); fetching every run", self.experiment, path, exc)
            return
        self._entries = entries

    def read_journal(self) -> None:
        """Add the runs an interrupted export saved after the last `state.json` (see the module
        doc); each is checked against its file when used, like any entry."""
        path = self.folder / JOURNAL_FILE
        try:
            lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("%s: cannot read %s (%s); its runs are fetched again", self.experiment, path, exc)
            return
        try:
            header = json.loads(lines[0]) if lines else {}
        except ValueError:
            header = {}
        if header.get("format") != FORMAT_VERSION or header.get("fingerprint") != self.fingerprint:
            return  # another configuration's: the first save of this export replaces it
        found = 0
        for line in lines[1:]:
            try:
                e = json.loads(line)
                entry = _Entry(
                    id=str(e["id"]),
                    state=str(e["state"]),
                    history_line_count=int(e["history_line_count"]),
                    last_step=int(e["last_step"]),
                    heartbeat_at=e["heartbeat_at"],
                    fields=tuple(str(f) for f in e["fields"]),
                    file=str(e["file"]),
                )
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by the interruption
            if entry.file == _file_name(entry.id):
                self._entries[entry.id] = entry
                found += 1
        self._journal_started = True  # appended to, not replaced: its runs stay cached
        if found:
            log.info("%s: %d run(s) saved by an interrupted export are cached", self.experiment, found)

    def split(
        self, runs: Sequence[RunInfo], fields: Sequence[str], samples: int | None = None
    ) -> tuple[dict[int, RunOutcome], list[int], dict[int, tuple[int, RunOutcome]]]:
        """Outcomes served from the cache by listing index, the indices that must be fetched, and
        the runs that only grew: listing index -> (first step to fetch, what the cache holds)."""
        self._fields = tuple(fields)
        listed = {run.id for run in runs}
        self.gone = sorted(set(self.gone) | {i for i in self._entries if i not in listed})
        cached: dict[int, RunOutcome] = {}
        to_fetch: list[int] = []
        grown: dict[int, tuple[int, RunOutcome]] = {}
        # Only a full-history config caches whole runs; a sampled config's cache may hold a
        # server sample, even when this call reads in full (x_axis), so no tail goes onto it.
        tails = samples is None and self.fingerprint.get("history_samples") is None
        for i, run in enumerate(runs):
            outcome = self._reuse(run, fields)
            if outcome is not None:
                cached[i] = outcome
                continue
            tail = self._grown(run, fields) if tails else None
            if tail is not None:
                grown[i] = tail
            else:
                to_fetch.append(i)
        self.unchanged += len(cached)
        return cached, to_fetch, grown

    def _reuse(self, run: RunInfo, fields: Sequence[str]) -> RunOutcome | None:
        entry = self._entries.get(run.id)
        if entry is None or (run.state in ACTIVE_STATES and not self._full) or entry.signature() != _signature(run):
            return None
        extra: dict[str, str] = {}
        missing = [f for f in fields if f not in entry.fields]
        if missing and plan_keys(run, missing, extra):
            return None  # the run holds a field its cache lacks
        loaded = self._load(entry, run)
        if loaded is None:
            return None
        series, non_numeric = loaded
        wanted = set(fields)
        self._kept[run.id] = entry
        kept_non_numeric = {f: r for f, r in non_numeric.items() if f in wanted}
        kept_non_numeric.update(extra)
        return RunOutcome(series={f: s for f, s in series.items() if f in wanted}, non_numeric=kept_non_numeric)

    def _grown(self, run: RunInfo, fields: Sequence[str]) -> tuple[int, RunOutcome] | None:
        """A full-history run that logged more since it was cached (resumed, or its listing was
        caught mid-run): the cached rows and the first step after them, so only the tail is
        fetched. Whether the cached rows are still a prefix is checked after the tail arrived
        (`_joined`): the counts must add up to the listing's."""
        entry = self._entries.get(run.id)
        if (
            entry is None
            or entry.last_step < 0
            or run.last_step <= entry.last_step
            or run.history_line_count <= entry.history_line_count
            or not set(fields) <= set(entry.fields)
            or not run.history_keys
        ):
            return None
        loaded = self._load(entry, run)
        if loaded is None:
            return None
        series, non_numeric = loaded
        wanted = set(fields)
        # From the last cached step, not after it: that one row, fetched again with the tail,
        # shows whether the cached rows still hold (see `_joined`).
        return entry.last_step, RunOutcome(
            series={f: s for f, s in series.items() if f in wanted},
            non_numeric={f: r for f, r in non_numeric.items() if f in wanted},
        )

    def _load(
        self, entry: _Entry, run: RunInfo, *, again: bool = False
    ) -> tuple[dict[str, Series], dict[str, str]] | None:
        path = self.folder / RUNS_DIR / entry.file
        try:
            with np.load(path, allow_pickle=False) as npz:
                meta = json.loads(npz["meta"].tobytes().decode("utf-8"))
                if meta.get("format") != FORMAT_VERSION:
                    raise ValueError("another format")
                if meta.get("run") != {"id": entry.id, **entry.signature()}:
                    raise ValueError("written for another version of the run")
                if tuple(meta.get("fields", ())) != entry.fields:
                    raise ValueError("written for another field list")
                series = {}
                for k, name in enumerate(meta["series"]):
                    steps = npz[f"s{k}"]
                    values = npz[f"v{k}"]
                    if steps.dtype != np.float64 or values.dtype != np.float64:
                        raise ValueError(f"field '{name}' is not float64")
                    series[str(name)] = Series(steps, values)
                non_numeric = {str(f): str(r) for f, r in meta["non_numeric"].items()}
        except FileNotFoundError:
            log.warning("%s: cache file of run %s is missing; fetching it again", self.experiment, run.id)
            return None
        except Exception as exc:  # noqa: BLE001 - any damage means: fetch the run again
            if not again and isinstance(exc, SystemError) and _SPURIOUS_AST_ERROR.search(str(exc)):
                # numpy parses .npy headers with `ast.literal_eval`, and CPython 3.11 counts the
                # AST builder's recursion per interpreter, not per thread (python/cpython#106905):
                # a parse in another thread at the same moment fails this one although the file is
                # sound. Seen once in CI (3.11.7); a second read is the cure.
                log.debug("%s: cache file of run %s: %s; reading it again", self.experiment, run.id, exc)
                return self._load(entry, run, again=True)
            log.warning(
                "%s: cache file %s is unreadable (%s); fetching run %s again",
                self.experiment,
                path,
                exc,
                run.id,
            )
            return None
        return series, non_numeric

    # ---------------------------------------------------------------------------- fetching

    async def read_runs(
        self,
        source: HistorySource,
        runs: Sequence[RunInfo],
        fields: Sequence[str],
        *,
        samples: int | None,
        progress: ProgressFn | None = None,
    ) -> list[RunOutcome]:
        """Like `source.read_runs`, but unchanged runs come from the cache and runs that only grew
        fetch their new steps. Listing order kept."""
        cached, to_fetch, grown = await anyio.to_thread.run_sync(self.split, runs, fields, samples)
        log.info(
            "%s: %d run(s) unchanged since the last export, %d grown, %d to fetch",
            self.experiment,
            len(cached),
            len(grown),
            len(to_fetch),
        )
        if progress is not None:
            for i, outcome in cached.items():
                progress("run_done", runs[i], outcome.rows)
        merged = dict(cached)
        again: list[int] = []

        save = self._save if self.journal else None

        async def fetch_all() -> None:
            fetched = await source.read_runs(
                [runs[i] for i in to_fetch], fields, samples=samples, progress=progress, on_outcome=save
            )
            merged.update(zip(to_fetch, fetched))

        async def fetch_tails() -> None:
            order = list(grown)
            tails = await source.read_runs(
                [runs[i] for i in order],
                fields,
                samples=samples,
                starts=[grown[i][0] for i in order],
            )
            for i, tail in zip(order, tails):
                joined = _joined(runs[i], fields, grown[i][1], tail)
                if joined is None:
                    again.append(i)
                    continue
                merged[i] = joined
                if save is not None:
                    save(runs[i], joined)
                if progress is not None:
                    progress("run_done", runs[i], joined.rows)

        async with anyio.create_task_group() as tg:
            tg.start_soon(fetch_all)
            if grown:
                tg.start_soon(fetch_tails)
        if again:
            log.info(
                "%s: %d grown run(s) no longer extend their cached rows; fetching them whole",
                self.experiment,
                len(again),
            )
            refetched = await source.read_runs(
                [runs[i] for i in again], fields, samples=samples, progress=progress, on_outcome=save
            )
            merged.update(zip(again, refetched))
        self.grown += len(grown) - len(again)
        self._fetched |= {runs[i].id for i in (*to_fetch, *grown)}
        return [merged[i] for i in range(len(runs))]

    # ---------------------------------------------------------------------------- saving

    def _cacheable(self, run: RunInfo, outcome: RunOutcome) -> bool:
        return not outcome.error and (run.state not in ACTIVE_STATES or self._full)

    def _save(self, run: RunInfo, outcome: RunOutcome) -> None:
        """Save one run as soon as it is read: its file, then its journal line. A failure is
        logged once and turns saving off for the export (the final commit still tries)."""
        if not self.journal or not self._cacheable(run, outcome):
            return
        entry = _Entry(id=run.id, fields=self._fields, file=_file_name(run.id), **_signature(run))
        try:
            atomic_write_bytes(self.folder / RUNS_DIR / entry.file, _encode(run, entry, outcome))
            path = self.folder / JOURNAL_FILE
            mode = "a" if self._journal_started else "w"
            with open(path, mode, encoding="utf-8") as journal:
                if not self._journal_started:
                    journal.write(json.dumps({"format": FORMAT_VERSION, "fingerprint": self.fingerprint}) + "\n")
                    self._journal_started = True
                row = asdict(entry)
                row["fields"] = list(entry.fields)
                journal.write(json.dumps(row) + "\n")
        except (OSError, OutputError) as exc:
            log.warning(
                "%s: could not save run %s to the incremental cache as it was read (%s)", self.experiment, run.id, exc
            )
            self.journal = False
            return
        self._saved[run.id] = entry

    def commit(self, runs: Sequence[RunInfo], outcomes: Sequence[RunOutcome]) -> None:
        """After the experiment was written: cache fresh runs, then state.json, then prune.

        A failure here does not fail the export (its arrays are written); it is logged, and the
        runs it concerns are fetched again next time.
        """
        try:
            self._commit(runs, outcomes)
        except (OSError, OutputError) as exc:
            log.warning(
                "%s: could not save the incremental cache (%s); the next export fetches more runs",
                self.experiment,
                exc,
            )

    def _commit(self, runs: Sequence[RunInfo], outcomes: Sequence[RunOutcome]) -> None:
        entries: list[_Entry] = []
        for run, outcome in zip(runs, outcomes):
            kept = self._kept.get(run.id)
            fresh = run.id in self._fetched and self._cacheable(run, outcome)
            if kept is not None and not fresh:  # (a run served from the cache, then read again, is fresh)
                entries.append(kept)
                continue
            if not fresh:
                continue
            entry = _Entry(id=run.id, fields=self._fields, file=_file_name(run.id), **_signature(run))
            if self._saved.get(run.id) != entry:  # not saved as it was read (or saved otherwise)
                atomic_write_bytes(self.folder / RUNS_DIR / entry.file, _encode(run, entry, outcome))
            entries.append(entry)
        field_sets: dict[tuple[str, ...], int] = {}
        rows = []
        for e in entries:
            row = asdict(e)
            row["fields"] = field_sets.setdefault(e.fields, len(field_sets))
            rows.append(row)
        state = {
            "format": FORMAT_VERSION,
            "written_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "fingerprint": self.fingerprint,
            "field_sets": [list(fs) for fs in field_sets],
            "runs": rows,
        }
        atomic_write_bytes(self.folder / STATE_FILE, json.dumps(state, indent=1).encode("utf-8"))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.folder / JOURNAL_FILE)  # state.json holds its runs now
        self._journal_started = False
        self._entries = {e.id: e for e in entries}
        self._prune({e.file for e in entries})

    def _prune(self, keep: set[str]) -> None:
        """Delete cache files no state entry uses, and temp files of interrupted writes.

        The caller holds the output folder's lock, so no other process is writing here.
        """
        for folder, suffix in ((self.folder / RUNS_DIR, ".npz"), (self.folder, None)):
            if not folder.is_dir():
                continue
            for entry in os.scandir(folder):
                name = entry.name
                leftover = name.startswith(".") and ".tmp-" in name and entry.is_file()
                unused = suffix is not None and name.endswith(suffix) and name not in keep
                if leftover or unused:
                    log.debug("%s: removing %s", self.experiment, entry.path)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)


def _encode(run: RunInfo, entry: _Entry, outcome: RunOutcome) -> bytes:
    names = list(outcome.series)
    meta = {
        "format": FORMAT_VERSION,
        "run": {"id": run.id, **_signature(run)},
        "fields": list(entry.fields),
        "series": names,
        "non_numeric": dict(outcome.non_numeric),
    }
    arrays: dict[str, np.ndarray] = {"meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)}
    for k, name in enumerate(names):
        s = outcome.series[name]
        arrays[f"s{k}"] = np.ascontiguousarray(s.steps, dtype=np.float64)
        arrays[f"v{k}"] = np.ascontiguousarray(s.values, dtype=np.float64)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds too narrowly
    return buf.getvalue()


def _joined(run: RunInfo, fields: Sequence[str], cached: RunOutcome, tail: RunOutcome) -> RunOutcome | None:
    """The cached rows followed by the tail's, or None when the cached rows are no longer a prefix
    of the run's history: the row at the last cached step changed, or the rows do not add up to
    what the listing counts per key (a run rewritten further back with the same last row and
    counts would pass; W&B history is append-only apart from rewinds, which change both)."""
    if tail.error is not None:
        return None
    out = RunOutcome(non_numeric={**cached.non_numeric, **tail.non_numeric})
    for key in plan_keys(run, fields, {}):
        old = cached.series.get(key)
        new = tail.series.get(key)
        if old is not None and new is not None and len(old) and len(new) and new.steps[0] == old.steps[-1]:
            # the overlap row: the same value (bit for bit, NaN included), or the run was rewritten
            if np.float64(new.values[0]).tobytes() != np.float64(old.values[-1]).tobytes():
                return None
            new = Series(new.steps[1:], new.values[1:])
        pieces = [p for p in (old, new) if p is not None and len(p)]
        have = sum(len(p) for p in pieces)
        if have != run.history_keys[key].count:
            return None
        if pieces:
            out.series[key] = merge_series(pieces) if len(pieces) > 1 else pieces[0]
    return out


class CachedSource:
    """Any `HistorySource`, with the runs that did not change served from one experiment's cache.

    One per experiment, around the export's shared source; closing the shared source is its
    owner's business, so `close` here does nothing.
    """

    def __init__(self, inner: HistorySource, cache: RunCache) -> None:
        self.inner = inner
        self.cache = cache

    @property
    def stats(self) -> FetchStats:
        return self.inner.stats

    async def prepare(self) -> None:
        await self.inner.prepare()

    async def list_runs(self, exp: ExperimentConfig) -> list[RunInfo]:
        return await self.inner.list_runs(exp)

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
        if starts is not None and any(starts):  # a tail read: nothing of it can be cached
            return await self.inner.read_runs(
                runs, fields, samples=samples, progress=progress, starts=starts, on_outcome=on_outcome
            )
        return await self.cache.read_runs(self.inner, runs, fields, samples=samples, progress=progress)

    def close(self) -> None:
        pass


def check_incremental(exp: ExperimentConfig, *, write: bool) -> None:
    """Refuse, before any request, setups where the cache cannot work."""
    if not write:
        raise ConfigError(
            "incremental export needs write=True: its cache lives beside the written arrays",
            experiment=exp.name,
        )
    check_experiment(exp.name)
    if exp.name.split("/")[0] == STATE_DIR:
        raise ConfigError(f"the name '{STATE_DIR}' is where incremental state is kept", experiment=exp.name)


def open_cache(exp: ExperimentConfig, filters: Mapping[str, Any], *, write: bool) -> RunCache:
    """The experiment's cache with its state read; refuses setups where it cannot work."""
    check_incremental(exp, write=write)
    cache = RunCache(Path(exp.output_path) / STATE_DIR / exp.name, exp.name, fingerprint(exp, filters))
    cache.read_state()
    cache.read_journal()
    # With another x axis a run's outcome may be read again in full after it was reported: saved
    # at the end only, from the outcome that was written.
    cache.journal = exp.x_axis == DEFAULT_X_AXIS
    return cache


def planned_split(
    exp: ExperimentConfig, filters: Mapping[str, Any], runs: Sequence[RunInfo], fields: Sequence[str]
) -> tuple[list[int], dict[int, int]] | None:
    """For `--dry-run --incremental`: which listed runs an incremental export would fetch whole,
    and which only from a step on (their new rows), by the same `RunCache.split` the export
    uses. None when the experiment has no cache yet (everything is fetched). Reads the cache,
    writes nothing."""
    folder = Path(exp.output_path) / STATE_DIR / exp.name
    if not folder.is_dir():
        return None
    cache = RunCache(folder, exp.name, fingerprint(exp, filters))
    cache.read_state()
    cache.read_journal()
    _, to_fetch, grown = cache.split(runs, fields, exp.history_samples)
    return to_fetch, {i: start for i, (start, _) in grown.items()}
