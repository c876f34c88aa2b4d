"""The `.wandb` file's framing: a 7-byte header, then LevelDB's log format in 32 KiB blocks.

Every record is checked against its CRC before its bytes are trusted. What cannot be read is
left out and described in a `Damage` (never raised): a tail cut short by a live or killed writer,
a block whose checksum fails (the rest of that block is skipped, as LevelDB's own reader does),
fragments of a record whose start was lost. Only a file that is not a run file at all raises.

The loop here runs once per record of every file (three per logged step), so it is kept flat:
classifying a record is a look at the byte after its `num` field, and the record bodies go to the
caller as lists of bytes per kind, which the decoders then read in bulk.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import RunFileError

__all__ = [
    "BLOCK",
    "HEADER",
    "Chunk",
    "Damage",
    "NotARunFileError",
    "RunFileError",
    "read_chunks",
]

BLOCK = 32 * 1024
HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
_HEADER_LEN = len(HEADER)
_REC_HEADER = 7
_RECORD_HEADER = struct.Struct("<IHB")  # checksum, length, type
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
# The checksum of a record: zlib's CRC-32 of its data, seeded with the CRC of its type byte.
_SEEDS = tuple(zlib.crc32(bytes([t])) for t in range(256))
# Field numbers of wandb_internal.proto's Record oneof, as the tags that start them on the wire.
TAG_HISTORY = 0x12  # field 2
TAG_SUMMARY = 0x1A  # field 3
# Blocks read and framed at a time (1 MiB): bounds memory for long runs, as a chunk's bodies are
# decoded before the next chunk is read; smaller chunks were no slower (they stay in cache).
CHUNK_BLOCKS = 32


class NotARunFileError(RunFileError):
    """A file that is not a W&B run file (`.wandb`)."""


@dataclass
class Damage:
    """What a read had to leave out of one file."""

    bad_blocks: list[int] = field(default_factory=list)  # offsets where a checksum failed
    skipped_bytes: int = 0  # bytes of those blocks skipped
    dropped_fragments: int = 0  # pieces of records whose other pieces were lost
    truncated_bytes: int = 0  # bytes at the end that are not a whole record
    unreadable_records: int = 0  # whole records whose contents could not be used
    end: int = 0  # offset after the last whole record

    @property
    def damaged(self) -> bool:
        return bool(self.bad_blocks or self.dropped_fragments or self.unreadable_records)

    def describe(self) -> str:
        parts = []
        if self.bad_blocks:
            shown = ", ".join(str(b) for b in self.bad_blocks[:3])
            more = f" and {len(self.bad_blocks) - 3} more" if len(self.bad_blocks) > 3 else ""
            parts.append(
                f"{self.skipped_bytes} bytes in {len(self.bad_blocks)} damaged block(s) skipped "
                f"(checksum failed at byte {shown}{more}); the records there are lost"
            )
        if self.dropped_fragments:
            parts.append(f"{self.dropped_fragments} piece(s) of records cut by the damage dropped")
        if self.unreadable_records:
            parts.append(f"{self.unreadable_records} history record(s) without a usable step left out")
        return "; ".join(parts)


@dataclass
class Chunk:
    """The bodies of the records framed from some blocks, sorted by kind, in file order."""

    history: list[bytes] = field(default_factory=list)  # Record bytes whose oneof is `history`
    summary: list[bytes] = field(default_factory=list)  # ... `summary`
    other: list[bytes] = field(default_factory=list)  # every other record (run, config, exit, ...)


def check_header(head: bytes, path: Path) -> bool:
    """Whether the file has records to read. A file shorter than the header that starts like one
    is a run whose writer has not got far (False); anything else not a run file raises."""
    if len(head) < _HEADER_LEN:
        if HEADER.startswith(head):
            return False
        raise NotARunFileError(
            f"{path} is not a W&B run file (.wandb): it is {len(head)} bytes and does not start with ':W&B'"
        )
    if head[:4] != HEADER[:4]:
        raise NotARunFileError(f"{path} is not a W&B run file (.wandb): it does not start with ':W&B'")
    if head[:_HEADER_LEN] != HEADER:
        magic, version = struct.unpack_from("<HB", head, 4)
        raise RunFileError(
            f"{path}: a W&B run file of a format this reader does not know (magic {magic:#06x}, version {version}; "
            "expected 0xbee1, version 0)"
        )
    return True


def read_chunks(
    path: Path, damage: Damage, *, size: int | None = None, chunk_blocks: int = CHUNK_BLOCKS
) -> Iterator[Chunk]:
    """The file's whole, checked records, a chunk of blocks at a time; what could not be read is
    added to `damage`. `size`: read only this many bytes (the size seen when the file was listed,
    so a file still growing is read to a consistent point)."""
    with open(path, "rb") as f:
        head = f.read(_HEADER_LEN)
        if not check_header(head, path):
            damage.truncated_bytes = len(head)
            return
        limit = size if size is not None else None
        framer = _Framer(damage)
        offset = 0
        data = head
        while True:
            want = chunk_blocks * BLOCK - len(data) if offset == 0 else chunk_blocks * BLOCK
            if limit is not None:
                want = max(0, min(want, limit - offset - len(data)))
            more = f.read(want) if want else b""
            data += more
            last = len(more) < want or (limit is not None and offset + len(data) >= limit)
            chunk = framer.frame(data, offset, last)
            yield chunk
            if last:
                return
            offset += len(data)
            data = b""


def read_varint(buf: bytes, i: int) -> tuple[int, int]:
    """The varint at `i` and the offset after it; IndexError if the buffer ends inside it."""
    b = buf[i]
    if b < 0x80:
        return b, i + 1
    value = b & 0x7F
    shift = 7
    while True:
        i += 1
        b = buf[i]
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i + 1
        shift += 7
        if shift > 70:
            raise ValueError("varint longer than 10 bytes")


# Record fields outside its oneof: num, control, uuid, _info.
_NOT_ONEOF = frozenset({1, 16, 19, 200})


def oneof_field(body: bytes) -> tuple[int, bytes]:
    """For a record whose oneof does not directly follow `num` (the SDK's own calls, such as a
    summary update, carry an `_info` field between them): the first byte of the oneof's tag
    (-1: none, or not protobuf) and the record as `num` then the oneof alone, the shape the bulk
    decoders read."""
    i = 0
    n = len(body)
    num = b""
    try:
        while i < n:
            key, j = read_varint(body, i)
            number, wire = key >> 3, key & 7
            if number not in _NOT_ONEOF:
                if wire != 2:
                    return -1, body
                length, k = read_varint(body, j)
                return body[i], num + body[i : k + length]
            if wire == 0:
                _, end = read_varint(body, j)
                if number == 1:
                    num = body[i:end]
                i = end
            elif wire == 2:
                length, j = read_varint(body, j)
                i = j + length
            elif wire == 1:
                i = j + 8
            elif wire == 5:
                i = j + 4
            else:
                return -1, body
    except (IndexError, ValueError):
        return -1, body
    return -1, body


class _Framer:
    """Frames blocks into records, carrying a record's fragments from one chunk to the next."""

    def __init__(self, damage: Damage) -> None:
        self.damage = damage
        self.pieces: list[bytes] | None = None  # fragments of a record being assembled
        self.pieces_at = 0

    def frame(self, data: bytes, base: int, last: bool) -> Chunk:
        """Frame `data` (whole blocks, starting at file offset `base`, a multiple of BLOCK; only
        the file's last chunk may end inside a block)."""
        chunk = Chunk()
        other = chunk.other
        to_history, to_summary = chunk.history.append, chunk.summary.append
        damage = self.damage
        unpack = _RECORD_HEADER.unpack_from
        crc32 = zlib.crc32
        seeds = _SEEDS
        head = _REC_HEADER
        history_tag, summary_tag = TAG_HISTORY, TAG_SUMMARY
        pieces = self.pieces  # a record's fragments so far (kept local: this loop is hot)
        n = len(data)
        pos = _HEADER_LEN if base == 0 else 0
        block_end = min(BLOCK, n)
        while True:
            if block_end - pos < head:
                # The file ends inside a block with less than a header left: zeros are the
                # writer's padding, anything else the start of a header it did not finish.
                if block_end == n and pos < n and last and n % BLOCK and data[pos:n].strip(b"\0"):
                    damage.truncated_bytes = n - pos
                if block_end >= n:
                    break
                pos = block_end
                block_end = min(pos + BLOCK, n)
                continue
            crc, length, kind = unpack(data, pos)
            start = pos + head
            end = start + length
            if end > block_end:
                if block_end == n and last and n % BLOCK:
                    # cut short at the end of the file: a writer still at work, or killed
                    damage.truncated_bytes = n - pos
                    break
                self._bad(base + pos, block_end - pos, pieces)
                pieces = None
                pos = block_end
                continue
            body = data[start:end]
            if crc32(body, seeds[kind]) != crc or kind > LAST or not kind:
                if not (kind == 0 and crc == 0 and length == 0):
                    self._bad(base + pos, block_end - pos, pieces)
                    pieces = None
                # else: zeros where a writer preallocated: nothing was written there
                pos = block_end
                continue
            pos = end
            if kind != FULL:
                if kind == FIRST:
                    if pieces is not None:
                        damage.dropped_fragments += len(pieces)
                    pieces = [body]
                    self.pieces_at = base + start - head
                    continue
                if pieces is None:  # the record's start was in a skipped block
                    damage.dropped_fragments += 1
                    continue
                pieces.append(body)
                if kind == MIDDLE:
                    continue
                body = b"".join(pieces)
                pieces = None
            elif pieces is not None:  # a record left unfinished before this one
                damage.dropped_fragments += len(pieces)
                pieces = None
            # The oneof's tag follows `num` (field 1, a varint), which the writer puts first.
            try:
                if body[0] == 0x08:
                    tag = (
                        body[2] if body[1] < 0x80 else body[3] if body[2] < 0x80 else body[4] if body[3] < 0x80 else -1
                    )
                else:
                    tag = -1
            except IndexError:
                tag = -1
            if tag == history_tag:
                to_history(body)
            elif tag == summary_tag:
                to_summary(body)
            else:
                tag, normal = oneof_field(body)
                if tag == history_tag:
                    to_history(normal)
                elif tag == summary_tag:
                    to_summary(normal)
                else:
                    other.append(body)
        damage.end = base + pos if pieces is None else self.pieces_at
        if last and pieces is not None:
            # The writer stopped between a record's pieces.
            damage.truncated_bytes = max(damage.truncated_bytes, base + n - self.pieces_at)
            pieces = None
        self.pieces = pieces
        return chunk

    def _bad(self, at: int, skipped: int, pieces: list[bytes] | None) -> None:
        """A block from `at` on is skipped; a record being assembled is lost with it."""
        self.damage.bad_blocks.append(at)
        self.damage.skipped_bytes += skipped
        if pieces is not None:
            self.damage.dropped_fragments += len(pieces)
