"""History and metadata of one run file, decoded into arrays.

The history records of each chunk are cut into fields in bulk (`tokens`); here the keys seen are
mapped to codes once, the rows are grouped per key with numpy, and each key's value_json texts
become floats in one Arrow cast. Every record must hold exactly one `_step`, or the chunk is read
record by record. The summary comes from `summary`, the metadata records from `proto`.

Names follow the W&B service: a logged dict is flattened with dots (`{"a": {"b": 1}}` is `a.b`),
except a media object (a dict with `_type`), which is one non-numeric key of that type.
"""

from __future__ import annotations

import copy
import json
import operator
import os
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ...models import type_name
from . import fast, proto
from .summary import Summary
from .tokens import Token, key_parts, learn, slow_history, tokenize
from .values import floats as _floats
from .values import looks_numeric as _looks_numeric
from .wire import CHUNK_BLOCKS, HEADER, Damage, RunFileError, read_chunks

__all__ = ["Column", "ParsedFile", "Resume", "parse_file"]


# --------------------------------------------------------------------------- columns


@dataclass
class Column:
    """One history key of one file: its rows, numeric or not."""

    steps: list[np.ndarray] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)  # empty for a non-numeric key
    types: dict[str, int] = field(default_factory=dict)  # the service's typeCounts
    example: str | None = None  # a non-numeric value, described (None: numeric)
    unread: bool = False  # numeric, but its values were not asked for (`values` is empty)

    @property
    def numeric(self) -> bool:
        return self.example is None


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        kind = value.get("_type")
        return f"{kind} (media)" if isinstance(kind, str) else "a dict"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37] + "...")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"an int of {value.bit_length()} bits (too large for float64)"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"


def _slow_values(vals: Sequence[bytes], col: Column) -> tuple[np.ndarray, np.ndarray] | None:
    """Parse each value: numbers and booleans become floats (mask of the rows kept: nulls are
    not rows); the first other value marks the column non-numeric (None)."""
    out = np.empty(len(vals), np.float64)
    keep = np.ones(len(vals), bool)
    for i, raw in enumerate(vals):
        try:
            v = json.loads(raw)
        except ValueError:
            v = raw.decode("utf-8", "replace")
        if v is None:
            keep[i] = False
            continue
        t = type_name(v)
        col.types[t] = col.types.get(t, 0) + 1
        if isinstance(v, (bool, int, float)):
            try:
                out[i] = float(v)
                continue
            except OverflowError:
                pass
        if col.example is None:
            col.example = _describe(v)
    if col.example is not None:
        return None
    return out, keep


class _Names:
    """How the keys of a file map to the service's names (shared by its chunks)."""

    def __init__(self) -> None:
        self.media: set[tuple[str, ...]] = set()  # prefixes logged with a `_type`

    def learn(self, parts: Sequence[tuple[str, ...]]) -> None:
        for p in parts:
            if len(p) > 1 and p[-1] == "_type":
                self.media.add(p[:-1])

    def role(self, parts: tuple[str, ...]) -> tuple[str, str]:
        """("value" | "media" | "part", name): a number or text, a media object's `_type` (the
        object's one row), or another field of a media object (left out)."""
        for n in range(1, len(parts)):
            if parts[:n] in self.media:
                if n == len(parts) - 1 and parts[-1] == "_type":
                    return "media", ".".join(parts[:n])
                return "part", ""
        return "value", ".".join(parts)


class ListCut:
    """A chunk's history cut into fields as lists (`tokens.tokenize` or `slow_history`): a
    None key starts each record."""

    def __init__(self, keys: list[Token], values: list[bytes | None]) -> None:
        self.values = values
        self.seen = set(keys)
        self.distinct: list[Token] = [t for t in self.seen if t is not None]
        self.code_of: dict[Token, int] = {None: 0}
        for j, t in enumerate(self.distinct, 1):
            self.code_of[t] = j
        codes = np.fromiter(map(self.code_of.__getitem__, keys), np.intp, len(keys))
        self.record = np.cumsum(codes == 0) - 1
        self.n_records = int(self.record[-1])
        self.index = fast.KeyIndex(codes, len(self.code_of))

    def rows(self, tokens: list[Token]) -> np.ndarray:
        """The fields of these keys, in file order."""
        return self.index.rows([self.code_of[t] for t in tokens])

    def texts(self, idx: np.ndarray) -> Sequence[bytes]:
        if len(idx) == 1:
            return [self.values[int(idx[0])]]  # type: ignore[list-item]
        return operator.itemgetter(*idx.tolist())(self.values)  # type: ignore[no-any-return]

    def floats(self, idx: np.ndarray) -> np.ndarray | None:
        return _floats(self.texts(idx))

    def looks_numeric(self, idx: np.ndarray) -> bool:
        return _looks_numeric(self.texts(idx))


class Cut(Protocol):
    """A chunk's history records cut into fields (key, value_json), however they were cut."""

    distinct: list[Token]  # the keys seen, each once
    record: np.ndarray  # the record of each field
    n_records: int

    def rows(self, tokens: list[Token]) -> np.ndarray: ...
    def texts(self, idx: np.ndarray) -> Sequence[bytes]: ...
    def floats(self, idx: np.ndarray) -> np.ndarray | None: ...
    def looks_numeric(self, idx: np.ndarray) -> bool: ...


def _add_history(cut: Cut, names: _Names, columns: dict[str, Column], wanted: frozenset[str] | None) -> bool:
    """Group one chunk's fields into `columns`: the values of the `wanted` keys (None: all),
    and for the others the steps and kind only. False if the records are not one step each."""
    decoded: dict[Token, tuple[str, ...]] = {}
    for t in cut.distinct:
        p = t if isinstance(t, tuple) else key_parts(t)
        if p is None:
            return False
        decoded[t] = p
    names.learn(list(decoded.values()))
    record, n_records = cut.record, cut.n_records

    by_name: dict[tuple[str, str], list[Token]] = {}
    for token, parts in decoded.items():
        kind = names.role(parts)
        if kind[0] != "part":
            by_name.setdefault(kind, []).append(token)
    step_tokens = by_name.pop(("value", "_step"), [])
    if not step_tokens:
        return n_records == 0
    step_idx = cut.rows(step_tokens)
    if len(step_idx) != n_records or not np.array_equal(record[step_idx], np.arange(n_records)):
        return False
    record_steps = cut.floats(step_idx)
    if record_steps is None or not np.array_equal(record_steps, np.floor(record_steps)):
        return False
    _put(columns, "_step", record_steps, record_steps, {"number": n_records})
    for (role, name), tokens in by_name.items():
        idx = cut.rows(tokens)
        steps = record_steps[record[idx]]
        col = columns.setdefault(name, Column())
        unasked = wanted is not None and name not in wanted
        if unasked and col.numeric and name in _WANDB_NUMBERS:
            _put(columns, name, steps, None, {"number": len(steps)})
            continue
        if role == "media":
            kinds: dict[str, int] = {}
            for raw, n in _counts(cut.texts(idx)).items():
                try:
                    media = str(json.loads(raw))
                except ValueError:
                    media = "unknown"
                kinds[media] = kinds.get(media, 0) + n
            _mark_text(col, steps, kinds, f"{next(iter(kinds))} (media)")
            continue
        if col.numeric and unasked and cut.looks_numeric(idx):
            _put(columns, name, steps, None, {"number": len(steps)})
            continue
        if col.numeric:
            arr = cut.floats(idx)
            if arr is not None:
                _put(columns, name, steps, arr, {"number": len(arr)})
                continue
        scratch = Column()
        got = _slow_values(cut.texts(idx), scratch)
        if got is None or not col.numeric:
            _mark_text(col, steps, scratch.types, scratch.example or col.example or "text")
        else:
            arr, keep = got
            _put(columns, name, steps[keep], arr[keep], scratch.types)
    return True


# Keys wandb itself writes into every row, always as numbers.
_WANDB_NUMBERS = frozenset({"_runtime", "_timestamp"})


def _counts(vals: Sequence[bytes]) -> dict[bytes, int]:
    out: dict[bytes, int] = {}
    for v in vals:
        out[v] = out.get(v, 0) + 1
    return out


def _put(
    columns: dict[str, Column], name: str, steps: np.ndarray, values: np.ndarray | None, types: dict[str, int]
) -> None:
    """Add rows to a numeric column (`values` None: rows not read, their count is what matters)."""
    col = columns.setdefault(name, Column())
    col.steps.append(steps)
    if col.numeric:
        if values is None:
            col.unread = True
        col.values.append(values if values is not None else np.empty(0))
    for t, n in types.items():
        col.types[t] = col.types.get(t, 0) + n


def _mark_text(col: Column, steps: np.ndarray, types: dict[str, int], example: str) -> None:
    """The key holds something other than numbers: keep its steps (for its count), drop values."""
    if col.example is None:
        col.example = example
        col.values.clear()
    col.steps.append(steps)
    for t, n in types.items():
        col.types[t] = col.types.get(t, 0) + n


# --------------------------------------------------------------------------- summary


# --------------------------------------------------------------------------- one file


@dataclass
class KeyRows:
    """One history key of a file: its steps (sorted, one row per step) and values."""

    steps: np.ndarray | None  # None: only counted (a listing remembered from an earlier export)
    values: np.ndarray | None  # None: not numbers (see `example`), or not asked for
    types: dict[str, int]  # the service's typeCounts: {"number": 12, ...}
    example: str | None = None  # a non-numeric value, described
    count: int = 0  # rows
    last: float | None = None  # the last step

    @property
    def numeric(self) -> bool:
        return self.example is None

    @classmethod
    def of(cls, steps: np.ndarray, values: np.ndarray | None, types: dict[str, int], example: str | None) -> KeyRows:
        return cls(steps, values, types, example, len(steps), float(steps[-1]) if len(steps) else None)


@dataclass
class ParsedFile:
    """Everything one run file says, decoded; what a worker process sends back."""

    path: str
    size: int
    mtime: float
    meta: proto.RunMeta
    summary: dict[str, Any]
    keys: dict[str, KeyRows]
    damage: Damage
    records: int = 0  # history records read
    seconds: float = 0.0  # CPU time spent decoding
    slow_chunks: tuple[int, int] = (0, 0)  # chunks of history, of summary records read one by one
    fast: bool = False  # read by `fast` (a clean file)
    resume: Resume | None = None  # where to go on from if the file grows (read by `fast` only)
    resumed_from: float | None = None  # read on from an earlier `resume`: rows after this step only
    read_from: int = 0  # the file offset the read started at (> 0: read on from an earlier `resume`)

    @property
    def finished(self) -> bool:
        return self.meta.exit_code is not None


def _take_other(bodies: list[bytes], meta: proto.RunMeta, summary: Summary) -> None:
    """The records other than history and summary: run metadata, config, exit; the run record's
    summary goes into the summary (before the chunk's summary records)."""
    for body in bodies:
        try:
            number, buf = proto.record_oneof(body)
            meta.add(number, buf)
        except proto.WireError:
            continue
        if number == proto.RUN:
            summary.apply(meta.summary_items)
            meta.summary_items = []


def parse_file(
    path: str | os.PathLike[str],
    size: int | None = None,
    wanted: frozenset[str] | None = None,
    *,
    bulk: bool = True,
    chunk_blocks: int = CHUNK_BLOCKS,
    fast_reader: bool = True,
    resume: Resume | None = None,
) -> ParsedFile:
    """Decode one `.wandb` file, up to `size` bytes when given. `wanted`: the keys whose values
    to read (None: all; every key is still listed, with its kind and rows). Raises
    `RunFileError` for a file that is not a run file; damage is described, never raised.
    `bulk=False` reads every record on its own (the reference the tests hold the bulk reader
    to); `chunk_blocks`: how many 32 KiB blocks are framed and decoded at a time."""
    p = Path(path)
    st = p.stat()
    size = st.st_size if size is None else size
    if bulk and fast_reader:
        if resume is not None:
            try:
                return _parse_fast(p, st, size, wanted, resume)
            except fast.Decline:
                pass  # read whole
        try:
            return _parse_fast(p, st, size, wanted)
        except fast.Decline:
            pass
    started = time.process_time()
    damage = Damage()
    meta = proto.RunMeta()
    summary = Summary()
    names = _Names()
    columns: dict[str, Column] = {}
    known: set[bytes] = set()
    learned = [False, False]
    slow = [0, 0]
    records = 0
    for chunk in read_chunks(p, damage, size=size, chunk_blocks=chunk_blocks):
        _take_other(chunk.other, meta, summary)
        if chunk.history:
            records += len(chunk.history)
            if not learned[0]:
                learn(chunk.history, known)
                learned[0] = True
            got = tokenize(chunk.history, frozenset(known)) if bulk else None
            cut = ListCut(*got) if got is not None else None
            if cut is not None and _add_history(cut, names, columns, wanted):
                known.update(k for k in cut.seen if isinstance(k, bytes))
            else:
                slow[0] += 1
                if not _add_history(ListCut(*slow_history(chunk.history)), names, columns, wanted):
                    damage.unreadable_records += len(chunk.history)
        if chunk.summary:
            if not learned[1]:
                learn(chunk.summary, known)
                learned[1] = True
            if not bulk or not summary.add_bulk(chunk.summary, known):
                slow[1] += 1
                summary.add_slow(chunk.summary)
    return ParsedFile(
        path=str(p),
        size=size,
        mtime=st.st_mtime,
        meta=meta,
        summary=summary.result(),
        keys=_share_steps({name: _finish(col) for name, col in columns.items()}),
        damage=damage,
        records=records,
        seconds=time.process_time() - started,
        slow_chunks=(slow[0], slow[1]),
    )


@dataclass
class Resume:
    """Where a reader can go on from in a file that grows (after its last whole record), and
    what it had read up to there: kept by an incremental export (see `remember`)."""

    offset: int
    check: int  # CRC-32 of the file's first and last CHECK_BYTES before `offset`: it was appended to
    meta: proto.RunMeta
    summary: list[tuple[tuple[str, ...], bytes]]  # every summary key's last value, in update order
    media: list[tuple[str, ...]]  # key prefixes logged as media
    keys: dict[str, KeyRows]  # each key's kind, row count and last step (no rows)
    last_step: float | None  # the largest step read
    records: int = 0
    tail: dict[str, tuple[float, float]] = field(default_factory=dict)  # each key's row at last_step


CHECK_BYTES = 4096


def prefix_check(p: Path, offset: int) -> int:
    """What says a file is the one read before, only longer: its start (the run record: id, start
    time) and the bytes just before where it was read to. Writers only append; a file replaced by
    another run's, or rewritten at its end, fails this, and is read whole."""
    with open(p, "rb") as f:
        head = f.read(min(offset, CHECK_BYTES))
        f.seek(max(0, offset - CHECK_BYTES))
        return zlib.crc32(f.read(min(offset, CHECK_BYTES)), zlib.crc32(head))


def _parse_fast(
    p: Path, st: os.stat_result, size: int, wanted: frozenset[str] | None, resume: Resume | None = None
) -> ParsedFile:
    """`parse_file` by `fast` for a clean file; raises `fast.Decline` for anything else. From
    `resume`: only the records after it are read (the rows are those; the listing is whole)."""
    started = time.process_time()
    meta = proto.RunMeta()
    summary = Summary()
    names = _Names()
    start = 0
    if resume is not None:
        if resume.offset > size or prefix_check(p, resume.offset) != resume.check:
            raise fast.Decline("the file changed before where it was read to")
        start = resume.offset
        meta = copy.deepcopy(resume.meta)
        summary.state = dict(resume.summary)
        names.media = set(resume.media)
    columns: dict[str, Column] = {}
    records = 0
    end, truncated = max(start, len(HEADER)), 0
    for framed in fast.chunks(p, size, start):
        _take_other(framed.other, meta, summary)
        begin, stop = framed.history
        if len(begin):
            records += len(begin)
            cut = fast.ArrayCut(framed.u8, len(begin), *fast.items(framed.u8, begin, stop, removes=False))
            if not _add_history(cut, names, columns, wanted):
                raise fast.Decline("history records without one step each")
        begin, stop = framed.summary
        if len(begin):
            updates = []
            for token, value in fast.last_updates(framed.u8, begin, stop):
                parts = key_parts(token)
                if parts is None:
                    raise fast.Decline("a summary key that is not key fields")
                updates.append(proto.Item(parts, value))
            summary.apply(updates)
        end, truncated = max(end, framed.end), framed.truncated
    keys = _share_steps({name: _finish(col) for name, col in columns.items()})
    step = keys.get("_step")
    last_step = step.last if step is not None else None
    if resume is not None:
        first = step.steps[0] if step is not None and step.steps is not None and len(step.steps) else None
        if resume.last_step is not None and first is not None and first <= resume.last_step:
            # a step logged again, or earlier: only the whole file says which row wins (the SDK
            # itself drops such rows; files written otherwise may have them)
            raise fast.Decline("the new part logs steps the part read before had")
        keys = _after(resume, keys)
        records += resume.records
        if resume.last_step is not None:
            last_step = resume.last_step if last_step is None else max(last_step, resume.last_step)
    meta.summary_items = []
    damage = Damage(truncated_bytes=truncated, end=end)
    return ParsedFile(
        path=str(p),
        size=size,
        mtime=st.st_mtime,
        meta=meta,
        summary=summary.result(),
        keys=keys,
        damage=damage,
        records=records,
        seconds=time.process_time() - started,
        fast=True,
        resume=Resume(
            end,
            prefix_check(p, end),
            copy.deepcopy(meta),
            list(summary.state.items()),
            sorted(names.media),
            {k: KeyRows(None, None, dict(r.types), r.example, r.count, r.last) for k, r in keys.items()},
            last_step,
            records,
            {
                k: (float(r.steps[-1]), float(r.values[-1]))
                for k, r in keys.items()
                if r.steps is not None and r.values is not None and len(r.steps) and r.steps[-1] == last_step
            },
        ),
        resumed_from=resume.last_step if resume is not None else None,
        read_from=start,
    )


def _after(resume: Resume, new: dict[str, KeyRows]) -> dict[str, KeyRows]:
    """The keys of a file read on from where it was: the listing of both parts (kinds, counts,
    last steps); the rows from the old part's last step on (its row there, kept in `resume`,
    then the new part's), so a read of the steps from that one on is served whole."""
    out: dict[str, KeyRows] = {}
    empty = np.empty(0)
    for name in dict.fromkeys([*resume.keys, *new]):
        a, b = resume.keys.get(name), new.get(name)
        if a is None:
            if b is not None:
                out[name] = b
            continue
        types = dict(a.types)
        example = a.example
        steps: np.ndarray = empty
        values: np.ndarray | None = empty if a.numeric else None
        if b is not None:
            for t, k in b.types.items():
                types[t] = types.get(t, 0) + k
            example = a.example if a.example is not None else b.example
            assert b.steps is not None
            steps, values = b.steps, b.values  # None: text, or not asked for
        row = resume.tail.get(name)
        if row is not None:
            steps = np.concatenate([[row[0]], steps])
            if values is not None:
                values = np.concatenate([[row[1]], values])
        count = a.count + (b.count if b is not None else 0)
        last = b.last if b is not None and b.count else a.last
        out[name] = KeyRows(steps, values if example is None else None, types, example, count, last)
    return out


def parse_job(path: str, size: int, wanted: frozenset[str] | None, resume: Resume | None = None) -> ParsedFile:
    """`parse_file` for a worker: every failure comes back as a `RunFileError` naming the file."""
    try:
        return parse_file(path, size, wanted, resume=resume)
    except RunFileError:
        raise
    except OSError as exc:
        raise RunFileError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - a bug must still name the file, in one line
        raise RunFileError(f"{path}: could not be decoded ({type(exc).__name__}: {exc})") from None


def last_wins(steps: np.ndarray, values: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows sorted by step, one per step: of rows logged at the same step the later one wins."""
    n = len(steps)
    if n < 2 or bool(np.all(steps[1:] > steps[:-1])):
        return steps, values
    rev = steps[::-1]
    order = np.argsort(rev, kind="stable")  # the last row of a step comes first
    sorted_steps = rev[order]
    keep = np.empty(n, bool)
    keep[0] = True
    np.not_equal(sorted_steps[1:], sorted_steps[:-1], out=keep[1:])
    order = order[keep]
    return sorted_steps[keep], None if values is None else values[::-1][order]


def _share_steps(keys: dict[str, KeyRows]) -> dict[str, KeyRows]:
    """Keys logged at every step share one steps array (held and sent once, not once per key)."""
    ref = keys.get("_step")
    if ref is None or ref.steps is None:
        return keys
    if ref.values is not None and np.array_equal(ref.values, ref.steps):
        ref.values = ref.steps
    for rows in keys.values():
        if rows.steps is not None and rows.steps is not ref.steps and np.array_equal(rows.steps, ref.steps):
            rows.steps = ref.steps
    return keys


def _finish(col: Column) -> KeyRows:
    steps = np.concatenate(col.steps) if len(col.steps) != 1 else col.steps[0]
    values: np.ndarray | None = None
    if col.numeric and not col.unread:
        values = np.concatenate(col.values) if len(col.values) != 1 else col.values[0]
    steps, values = last_wins(steps, values)
    return KeyRows.of(steps, values, col.types, col.example)
