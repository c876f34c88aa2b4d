"""The reader of clean run files: every record framed, checked and cut in bulk, not one by one.

A step of a typical run is three records of a dozen fields, so any Python work per record or per
field caps the reader (the regular-expression reader of `tokens` spends about 15 us a step on
this machine). Here four loops do the work, each over a whole chunk: framing with the checksums,
cutting history and summary records into items by following their protobuf lengths, coding item
keys (equal bytes, equal code, never a merge of two keys), and parsing value texts into floats.
Each is written twice: compiled (`_fastwire.c`, built by setup.py when a C compiler is there) and
in numpy (every block walked side by side, one record per step; records cut one field per step
for all at once; keys hashed as 8-byte words and checked against their code's first; values cast
by Arrow from views into the chunk's buffer), used when the extension was not built.

It reads only what it recognises exactly and declines (`Decline`) the rest: a checksum that
fails, a record cut short, fragments out of order, a history record without exactly one `_step`
item, a summary removal, a field it does not know. The caller then reads the whole file with the
exact reader of `decode`, which describes damage; a clean file gives the same result either way
(the tests hold the two to that).
"""

from __future__ import annotations

import contextlib
import os
import zlib
from collections.abc import Iterator, Sequence
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .values import ARROW_FROM, NONFINITE, floats
from .wire import BLOCK, FIRST, FULL, HEADER, LAST, TAG_HISTORY, TAG_SUMMARY, oneof_field, read_varint

if TYPE_CHECKING:
    from .tokens import Token

__all__ = [
    "COMPILED",
    "FAST_CHUNK",
    "ArrayCut",
    "Decline",
    "Framed",
    "chunks",
    "items",
    "compiled_in_use",
    "last_updates",
    "numpy_only",
]

_HEAD = 7  # a record's header: checksum, length, type
FAST_CHUNK = 256 * BLOCK  # bytes framed at a time: numpy's steps cost as much for 32 blocks as for 256
_PAD = 16  # zero bytes after a buffer, so reading a varint past its end needs no bounds check
_SEEDS = tuple(zlib.crc32(bytes([t])) for t in range(256))
# Record oneof fields as tags, and the fields of the items of history and summary records.
_ITEM = 0x0A  # HistoryRecord.item, SummaryRecord.update
_STEP = 0x12  # HistoryRecord.step
_REMOVE = 0x12  # SummaryRecord.remove
_KEY, _NESTED = 0x0A, 0x12  # *Item.key, *Item.nested_key
_VALUE = (0x82, 0x01)  # *Item.value_json (field 16)


# The same loops compiled (setup.py; optional: without a compiler, numpy's are used).
# WANDB2NUMPY_NO_COMPILED=1 leaves them out (a benchmark of the numpy loops, or a way around
# a fault in them), in the decoding workers too, as they inherit the environment.
_compiled: Any = None
if not os.environ.get("WANDB2NUMPY_NO_COMPILED"):
    try:
        from . import _fastwire as _compiled  # type: ignore[attr-defined, no-redef]
    except ImportError:  # pragma: no cover - depends on the install
        _compiled = None


def _powers_of_five() -> bytes:
    """5**q for q in [-342, 308] as the 128 bits from the top set bit (rounded up for q < 0),
    high word first: the table of Eisel and Lemire's float parser (as fast_float builds it)."""
    out = []
    for q in range(-342, 309):
        if q < 0:
            p = 5**-q
            z = p.bit_length()
            c = (1 << (z + 127 if q >= -27 else 2 * z + 128)) // p + 1
        else:
            c = 5**q
        c = c >> (c.bit_length() - 128) if c.bit_length() > 128 else c << (128 - c.bit_length())
        out += [c >> 64, c & (2**64 - 1)]
    return np.array(out, np.uint64).tobytes()


if _compiled is not None:
    _compiled.set_powers(_powers_of_five())

COMPILED = _compiled is not None  # whether the compiled loops were built (see setup.py)


def compiled_in_use() -> bool:
    return _compiled is not None


@contextlib.contextmanager
def numpy_only() -> Iterator[None]:
    """Read with the numpy loops in this thread's process, as an install without a compiler
    does (the tests hold both versions to the exact reader)."""
    global _compiled
    saved, _compiled = _compiled, None
    try:
        yield
    finally:
        _compiled = saved


class Decline(Exception):
    """Something the fast reader does not read exactly: the file goes to the exact reader."""


def _varint(u8: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The varints at offsets `p` (up to 4 bytes, 256 MiB) and the offsets after them."""
    b = u8[p]
    value = b.astype(np.int64)
    after = p + 1
    more = np.flatnonzero(b >= 0x80)
    if not len(more):
        return value, after
    value[more] &= 0x7F
    shift = 7
    for _ in range(3):
        b = u8[after[more]]
        value[more] |= (b.astype(np.int64) & 0x7F) << shift
        after[more] += 1
        more = more[b >= 0x80]
        if not len(more):
            return value, after
        shift += 7
    raise Decline("a length of over 4 bytes")


class Framed:
    """A chunk's records by kind, as (start, end) offsets into `u8` (the chunk's bytes, then
    records joined from fragments or rewritten, then zero padding), in file order."""

    def __init__(self) -> None:
        self.u8 = np.zeros(0, np.uint8)
        self.history = (np.zeros(0, np.int64), np.zeros(0, np.int64))  # the oneof's message
        self.summary = (np.zeros(0, np.int64), np.zeros(0, np.int64))
        self.other: list[bytes] = []  # every other record, whole
        self.end = 0  # file offset after the last whole record (where a reader can go on from)
        self.truncated = 0  # bytes after `end` that are not a whole record (the file's last chunk)


class Fragments:
    """A record in pieces, carried from one chunk to the next."""

    def __init__(self) -> None:
        self.pieces: list[bytes] | None = None
        self.at = 0  # the file offset of the first piece's header


def _frame_blocks(u8: np.ndarray, n: int, first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Every record header of every block, walking all blocks side by side (a step reads one
    header of each block as one 8-byte word). Returns starts of data, lengths, types, checksums
    (file order) and where the framing stopped in the file's last block (a cut-short tail)."""
    nb = -(-n // BLOCK)
    pos = np.arange(nb, dtype=np.int64) * BLOCK
    block_end = np.minimum(pos + BLOCK, n)
    pos[0] = first
    words = _words(u8)
    seen = []
    tail = n
    while len(pos):
        fits = block_end - pos >= _HEAD
        if not fits.all():
            for i in np.flatnonzero(~fits).tolist():
                if block_end[i] == n and u8[pos[i] : n].any():
                    tail = int(pos[i])  # a header cut short
            pos, block_end = pos[fits], block_end[fits]
        seen.append(pos)
        w = words[pos]
        end = pos + _HEAD + ((w >> 32) & 0xFFFF).astype(np.int64)
        go = (end <= block_end) & (((w >> 32) & 0xFFFFFF) != 0)  # zero length and type: nothing written
        pos, block_end = end[go], block_end[go]
    at = np.sort(np.concatenate(seen)) if seen else np.zeros(0, np.int64)
    w = words[at]
    crc = (w & 0xFFFFFFFF).astype(np.int64)
    length = ((w >> 32) & 0xFFFF).astype(np.int64)
    kind = ((w >> 48) & 0xFF).astype(np.int64)
    end = at + _HEAD + length
    zero = (kind == 0) & (length == 0) & (crc == 0)  # preallocated zeros: nothing written
    over = end > np.minimum(at - at % BLOCK + BLOCK, n)
    if over.any():
        cut = over & (end > n) & (n % BLOCK != 0)
        if (over & ~cut).any():
            raise Decline("a record runs past its block")
        tail = min(tail, int(at[cut][0]))
    if ((kind == 0) & ~zero).any() or (kind > LAST).any():
        raise Decline("a record of no known type")
    keep = ~zero & ~over
    return at[keep] + _HEAD, length[keep], kind[keep], crc[keep], tail


def _check_crcs(data: bytes, starts: np.ndarray, ends: np.ndarray, kinds: np.ndarray, crcs: np.ndarray) -> None:
    full = kinds == FULL
    s, e = starts[full].tolist(), ends[full].tolist()
    got = np.fromiter(map(zlib.crc32, map(data.__getitem__, map(slice, s, e)), repeat(_SEEDS[FULL])), np.int64, len(s))
    if not np.array_equal(got, crcs[full]):
        raise Decline("a checksum failed")
    for i in np.flatnonzero(~full).tolist():
        if zlib.crc32(data[starts[i] : ends[i]], _SEEDS[int(kinds[i])]) != crcs[i]:
            raise Decline("a checksum failed")


def _oneof_tags(u8: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The tag after `num` (the writer's first field) of each record (-1: not that shape) and its
    offset."""
    n = len(starts)
    tag = np.full(n, -1, np.int64)
    if not n:
        return tag, np.zeros(0, np.int64)
    ok = u8[starts] == 0x08
    cont = u8[starts[:, None] + np.arange(1, 5)] >= 0x80  # bytes of `num` that are not its last
    at = starts + 1 + np.argmin(cont, axis=1) + 1
    ok &= ~cont.all(axis=1) & (at < ends)
    tag[ok] = u8[at[ok]]
    return tag, at


def _oneof_spans(u8: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each record: the history or summary tag after `num` (-1: neither, or not directly
    after `num`) and where that message starts, if it ends with the record."""
    tag, at = _oneof_tags(u8, starts, ends)
    sub = np.zeros(len(tag), np.int64)
    for t in (TAG_HISTORY, TAG_SUMMARY):
        pick = np.flatnonzero(tag == t)
        length, begin = _varint(u8, at[pick] + 1)
        whole = begin + length == ends[pick]
        sub[pick[whole]] = begin[whole]
        tag[pick[~whole]] = -1
    return tag, sub


def chunks(path: Path, size: int, start: int = 0, chunk: int = FAST_CHUNK) -> Iterator[Framed]:
    """The file's records up to `size` bytes, from the record at `start` (0: the first), framed
    a chunk of blocks at a time into one reused buffer (with room after the chunk for the
    records joined from pieces)."""
    buf = np.zeros(2 * chunk + _PAD, np.uint8)  # pages not touched stay unallocated
    view = memoryview(buf.data)
    carry = Fragments()
    with open(path, "rb") as f:
        have = f.readinto(view[: len(HEADER)])
        if bytes(view[: len(HEADER)]) != HEADER or have != len(HEADER):
            raise Decline("not a run file's header")
        offset, first = 0, len(HEADER)
        if start > len(HEADER):
            offset = start // BLOCK * BLOCK
            first, have = start - offset, 0
            f.seek(offset)
        while True:
            want = max(0, min(chunk - have, size - offset - have))
            got = f.readinto(view[have : have + want]) if want else 0
            n = have + got
            last = got < want or offset + n >= size
            yield frame(buf, n, offset, last, carry, first)
            if last:
                return
            offset += n
            have, first = 0, 0


def frame(buf: np.ndarray, n: int, base: int, last: bool, carry: Fragments, first: int) -> Framed:
    """Frame a chunk, the first `n` bytes of `buf` from its record at `first`: whole blocks from
    file offset `base` (only the last chunk may end inside a block); a record in pieces at its
    end is carried to the next. The file's last record may be cut short (a writer at work, or
    killed): the records before it are read, and `end` and `truncated` say where it starts."""
    if _compiled is not None:
        got = _compiled.frame(buf, n, first)
        if got is None:
            raise Decline("a checksum failed, or a record runs past its block")
        table = np.frombuffer(got[0], np.int64).reshape(-1, 5)
        starts, lengths, kinds, tags, subs = table.T
        tail = got[1]
    else:
        starts, lengths, kinds, crcs, tail = _frame_blocks(buf, n, first)
        _check_crcs(buf[:n].tobytes(), starts, starts + lengths, kinds, crcs)
        # whole records only, as the compiled loop: a piece of a record starts anywhere inside it
        tags, subs = np.full(len(starts), -1, np.int64), np.zeros(len(starts), np.int64)
        whole = kinds == FULL
        tags[whole], subs[whole] = _oneof_spans(buf, starts[whole], starts[whole] + lengths[whole])
    if tail < n and not last:
        raise Decline("a record cut short inside the file")
    ends = starts + lengths

    out = Framed()
    # Records in pieces, joined: each piece must follow the one before it (a FULL record
    # between them, or a piece without its start, is damage, described by the exact reader).
    extra: list[tuple[int, bytes]] = []  # (rank: the index of the record's last piece, bytes)
    pieces = carry.pieces
    prev = -1  # the index of the latest piece (-1: the last chunk's end)
    for i in np.flatnonzero(kinds != FULL).tolist():
        kind = int(kinds[i])
        piece = buf[starts[i] : ends[i]].tobytes()
        if kind == FIRST:
            if pieces is not None:
                raise Decline("a record's pieces are out of order")
            pieces = [piece]
            carry.at = base + int(starts[i]) - _HEAD
        else:
            if pieces is None or i != prev + 1:
                raise Decline("a record's pieces are out of order")
            pieces.append(piece)
            if kind == LAST:
                extra.append((i, b"".join(pieces)))
                pieces = None
        prev = i
    if pieces is not None and prev != len(kinds) - 1:
        raise Decline("a record's pieces are out of order")
    carry.pieces = pieces
    out.end = base + (tail if tail < n else int(ends[-1]) if len(ends) else -base - 1)  # -1: no record here
    if pieces is not None:
        out.end = carry.at  # the writer stopped between a record's pieces
    if last and (tail < n or pieces is not None):
        out.truncated = base + n - out.end
    full = kinds == FULL
    _classify(out, buf, n, starts[full], ends[full], tags[full], subs[full], np.flatnonzero(full), extra)
    return out


def _classify(
    out: Framed,
    buf: np.ndarray,
    n: int,
    starts: np.ndarray,
    ends: np.ndarray,
    tag: np.ndarray,
    sub: np.ndarray,
    ranks: np.ndarray,
    extra: list[tuple[int, bytes]],
) -> None:
    """Sort the chunk's records into history, summary and the rest. Records that are not
    `num` then history or summary (and records joined from pieces) are looked at one by one,
    rewritten to that shape where they are history or summary, and put after the chunk."""
    spans: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {TAG_HISTORY: [], TAG_SUMMARY: []}
    for t in (TAG_HISTORY, TAG_SUMMARY):
        pick = tag == t
        spans[t].append((sub[pick], ends[pick], ranks[pick]))
    odd = np.flatnonzero((tag != TAG_HISTORY) & (tag != TAG_SUMMARY)).tolist()
    looked = [(int(ranks[i]), buf[starts[i] : ends[i]].tobytes()) for i in odd]
    rewritten: list[bytes] = []
    offset = n
    for place, body in sorted(looked + extra):
        t, normal = oneof_field(body)
        if t not in (TAG_HISTORY, TAG_SUMMARY):
            out.other.append(body)
            continue
        try:
            _, i = read_varint(normal, 1) if normal[0] == 0x08 else (0, -1)
            length, first = read_varint(normal, i + 1) if i >= 0 and normal[i] == t else (0, -1)
        except (IndexError, ValueError):
            first = -1
        if first < 0 or first + length != len(normal):
            raise Decline("a record of a shape this reader does not know")
        spans[t].append((np.array([offset + first]), np.array([offset + len(normal)]), np.array([place])))
        rewritten.append(normal)
        offset += len(normal)
    tail = b"".join(rewritten)
    if n + len(tail) + _PAD <= len(buf):
        buf[n : n + len(tail)] = np.frombuffer(tail, np.uint8)
        buf[n + len(tail) : n + len(tail) + _PAD] = 0
        out.u8 = buf
    else:
        out.u8 = np.concatenate([buf[:n], np.frombuffer(tail, np.uint8), np.zeros(_PAD, np.uint8)])
    for t, name in ((TAG_HISTORY, "history"), (TAG_SUMMARY, "summary")):
        (begin, end, rank), *more = spans[t]
        if more:  # records looked at one by one go back to their places (both lists are in order)
            at = np.searchsorted(rank, np.concatenate([m[2] for m in more]))
            begin = np.insert(begin, at, np.concatenate([m[0] for m in more]))
            end = np.insert(end, at, np.concatenate([m[1] for m in more]))
        setattr(out, name, (begin, end))


# --------------------------------------------------------------------------- items


def items(
    u8: np.ndarray, begin: np.ndarray, end: np.ndarray, *, removes: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The items of history (or summary) messages spanning [begin, end): for each item, in file
    order, its message's index, its key's bytes as [key_start, key_end) and its value's as
    [value_start, value_end). `removes`: a summary removal declines (so do all unknown fields)."""
    if _compiled is not None:
        got = _compiled.items(u8, np.ascontiguousarray(begin, np.int64), np.ascontiguousarray(end, np.int64), removes)
        if got is None:
            raise Decline("a field this reader does not know")
        rec, key_start, key_end, v_start, v_end = np.frombuffer(got, np.int64).reshape(-1, 5).T
        return rec, key_start, key_end, v_start, v_end
    n = len(begin)
    recs, a_s, b_s = [], [], []
    idx = np.arange(n)
    cur = begin.copy()
    live = cur < end
    idx, cur = idx[live], cur[live]
    while len(idx):
        tag = u8[cur]
        if removes:
            if (tag != _ITEM).any():
                raise Decline("a summary removal, or a field this reader does not know")
            skip = np.zeros(len(idx), bool)
        else:
            skip = tag == _STEP
            if ((tag != _ITEM) & ~skip).any():
                raise Decline("a history field this reader does not know")
        length, after = _varint(u8, cur + 1)
        nxt = after + length
        if (nxt > end[idx]).any():
            raise Decline("a field runs past its record")
        keep = ~skip
        recs.append(idx[keep])
        a_s.append(after[keep])
        b_s.append(nxt[keep])
        more = nxt < end[idx]
        idx, cur = idx[more], nxt[more]
    if not recs:
        e = np.zeros(0, np.int64)
        return e, e, e, e, e
    # Each pass took one field of every message still going: place them message by message
    # (a counting sort, as the messages of a pass are distinct and in order).
    counts = np.bincount(np.concatenate(recs), minlength=n)
    base = np.zeros(n, np.int64)
    np.cumsum(counts[:-1], out=base[1:])
    total = int(counts.sum())
    rec, a, b = np.empty(total, np.int64), np.empty(total, np.int64), np.empty(total, np.int64)
    for r, x, y in zip(recs, a_s, b_s):
        at = base[r]
        rec[at], a[at], b[at] = r, x, y
        base[r] += 1
    key_end, v_start = _item_fields(u8, a, b)
    return rec, a, key_end, v_start, b


def _item_fields(u8: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each item's key fields end and its value starts (the value must be its last field).
    Most items are one short key field and a short value: those are read in one step."""
    key_end = a + 2 + u8[a + 1]
    v_start = key_end + 3
    simple = (
        ((u8[a] == _KEY) | (u8[a] == _NESTED))
        & (u8[a + 1] < 0x80)
        & (u8[key_end] == _VALUE[0])
        & (u8[key_end + 1] == _VALUE[1])
        & (u8[key_end + 2] < 0x80)
        & (v_start + u8[key_end + 2] == b)
    )
    if simple.all():
        return key_end, v_start
    idx = np.flatnonzero(~simple)
    cur = a[idx]
    for _ in range(64):
        if not len(idx):
            return key_end, v_start
        tag = u8[cur]
        value = (tag == _VALUE[0]) & (u8[cur + 1] == _VALUE[1])
        key = (tag == _KEY) | (tag == _NESTED)
        if (~value & ~key).any():
            raise Decline("an item field this reader does not know")
        if value.any():
            vi = idx[value]
            length, after = _varint(u8, cur[value] + 2)
            if not np.array_equal(after + length, b[vi]) or (cur[value] == a[vi]).any():
                raise Decline("an item whose value is not its last field, or without a key")
            key_end[vi] = cur[value]
            v_start[vi] = after
        length, after = _varint(u8, cur[key] + 1)
        nxt = after + length
        if (nxt >= b[idx[key]]).any():
            raise Decline("an item without a value")
        idx, cur = idx[key], nxt
    raise Decline("an item key of over 64 fields")


# A mask of the first 0..8 bytes of a little-endian word.
_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [2**64 - 1], np.uint64)
_SAMPLE = 4096  # items whose keys are found first; the rest are looked up among them


def _words(u8: np.ndarray) -> np.ndarray:
    """The 8 bytes from every offset of `u8` as a little-endian uint64 (one gather reads 8)."""
    words: np.ndarray = np.ndarray(shape=(len(u8) - 7,), dtype="<u8", buffer=u8, strides=(1,))
    return words


def key_codes(u8: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, list[bytes], np.ndarray]:
    """A code for each key (equal bytes, equal code), the keys' bytes by code and the index of
    each code's last key. A key is read
    as 8-byte words (its length masks the last) hashed into one number; every key is then
    compared word by word with the first key of its hash, so a collision declines instead of
    merging two keys."""
    n = len(start)
    if not n:
        return np.zeros(0, np.intp), [], np.zeros(0, np.intp)
    if _compiled is not None:
        got = _compiled.key_codes(u8, np.ascontiguousarray(start, np.int64), np.ascontiguousarray(end, np.int64))
        codes, first, last = (np.frombuffer(g, np.int64) for g in got)
        return codes, [u8[s:e].tobytes() for s, e in zip(start[first].tolist(), end[first].tolist())], last
    lengths = end - start
    n_words = (int(lengths.max()) + 7) // 8
    if n_words > 64:
        raise Decline("a key of over 512 bytes")
    words = _words(u8)
    top = len(words) - 1
    h = lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    mult = np.uint64(0xBF58476D1CE4E5B9)
    cols = []
    for k in range(n_words):
        w = words[np.minimum(start + 8 * k, top)] & _MASKS[np.clip(lengths - 8 * k, 0, 8)]
        cols.append(w)
        h ^= w
        h *= mult
        h ^= h >> np.uint64(31)
    uniq, first = np.unique(h[:_SAMPLE], return_index=True)
    codes = np.minimum(np.searchsorted(uniq, h), len(uniq) - 1)
    if not np.array_equal(uniq[codes], h):
        uniq, first = np.unique(h, return_index=True)
        codes = np.searchsorted(uniq, h)
    rep = first[codes]
    if not np.array_equal(lengths, lengths[rep]) or not all(np.array_equal(w, w[rep]) for w in cols):
        raise Decline("two keys with one hash")
    keys = [u8[s : s + k].tobytes() for s, k in zip(start[first].tolist(), lengths[first].tolist())]
    _, last_reversed = np.unique(codes[::-1], return_index=True)
    return codes, keys, n - 1 - last_reversed


# --------------------------------------------------------------------------- the cut


_NOT_NUMBER_START = np.array([ord('"'), ord("{"), ord("["), ord("n")], np.uint8)


class KeyIndex:
    """Which fields hold which key code, in file order: for both readers' cuts."""

    def __init__(self, codes: np.ndarray, n_codes: int) -> None:
        self.codes = codes
        self.order: np.ndarray | None = None
        if n_codes > 16:  # with few keys, a pass over the codes per key beats sorting them
            self.order = np.argsort(codes, kind="stable")
            self.bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=n_codes))])

    def rows(self, wanted: list[int]) -> np.ndarray:
        """The fields of these codes, in file order."""
        if self.order is None:
            return np.flatnonzero(self.codes == wanted[0] if len(wanted) == 1 else np.isin(self.codes, wanted))
        idx = [self.order[self.bounds[c] : self.bounds[c + 1]] for c in wanted]
        return np.sort(np.concatenate(idx)) if len(idx) > 1 else idx[0]


class ArrayCut:
    """A chunk's history items as arrays: the same questions `decode.ListCut` answers."""

    def __init__(
        self,
        u8: np.ndarray,
        n_records: int,
        rec: np.ndarray,
        key_start: np.ndarray,
        key_end: np.ndarray,
        v_start: np.ndarray,
        v_end: np.ndarray,
    ) -> None:
        self.u8 = u8
        self.n_records = n_records
        self.record = rec
        self.v_start, self.v_end = v_start, v_end
        codes, keys, _ = key_codes(u8, key_start, key_end)
        self.distinct: list[Token] = list(keys)
        self._code: dict[Token, int] = {k: i for i, k in enumerate(keys)}
        self.index = KeyIndex(codes, len(keys))

    def rows(self, tokens: list[Token]) -> np.ndarray:
        return self.index.rows([self._code[t] for t in tokens])

    def texts(self, idx: np.ndarray) -> Sequence[bytes]:
        data = self.u8
        return [data[s:e].tobytes() for s, e in zip(self.v_start[idx].tolist(), self.v_end[idx].tolist())]

    def views(self, idx: np.ndarray) -> np.ndarray:
        """The values as Arrow binary views into the chunk's buffer (16 bytes each: the length,
        then up to 12 bytes inline, or the first 4 bytes, buffer 0 and the offset)."""
        s, e = self.v_start[idx], self.v_end[idx]
        n = (e - s).astype(np.uint64)
        words = _words(self.u8)
        w0 = words[s]
        out = np.empty((len(idx), 2), np.uint64)
        short = n <= 12
        head = w0 & _MASKS[np.minimum(n, 8).astype(np.intp)]
        more = words[s + 8] & _MASKS[np.clip(n.astype(np.int64) - 8, 0, 4)]
        out[:, 0] = n | (head << np.uint64(32))
        out[:, 1] = np.where(
            short, (head >> np.uint64(32)) | (more << np.uint64(32)), s.astype(np.uint64) << np.uint64(32)
        )
        return out

    def floats(self, idx: np.ndarray) -> np.ndarray | None:
        if _compiled is not None:
            got = _compiled.floats(self.u8, self.v_start[idx], self.v_end[idx])
            return None if got is None else np.frombuffer(got, np.float64)
        if len(idx) < ARROW_FROM or len(self.u8) >= 2**31:
            return floats(self.texts(idx))
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = pa.Array.from_buffers(
            pa.binary_view(), len(idx), [None, pa.py_buffer(self.views(idx)), pa.py_buffer(self.u8)]
        )
        try:
            got = pc.cast(arr, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            return None
        out: np.ndarray = got.to_numpy(zero_copy_only=False)
        if not np.isfinite(out).all():
            bad = np.flatnonzero(~np.isfinite(out))
            if any(t not in NONFINITE for t in self.texts(idx[bad])):
                return None
        return out

    def looks_numeric(self, idx: np.ndarray) -> bool:
        s, e = self.v_start[idx], self.v_end[idx]
        first = self.u8[s[e > s]]
        return not np.isin(first, _NOT_NUMBER_START).any()


def last_updates(u8: np.ndarray, begin: np.ndarray, end: np.ndarray) -> list[tuple[bytes, bytes]]:
    """The last update of each key in these summary records, as (key bytes, value_json), in the
    order of those last updates (a removal declines)."""
    rec, key_start, key_end, v_start, v_end = items(u8, begin, end, removes=True)
    if not len(rec):
        return []
    codes, keys, lasts = key_codes(u8, key_start, key_end)
    last = np.sort(lasts)
    return [(keys[codes[i]], u8[v_start[i] : v_end[i]].tobytes()) for i in last.tolist()]
