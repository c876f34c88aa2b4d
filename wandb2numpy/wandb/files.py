"""Parquet files read by byte ranges: the footer first, then the byte ranges of the needed columns.

Storage honours `Range` (W&B's own reader asks for ranges), so a file can be read as its footer
(`read_footer`: one request for its last bytes, the whole of a small file), then the column
chunks of `_step` and the requested keys (`column_ranges`, from the footer's metadata), decoded
from those bytes alone (`decode`). Two uses:

- a wide file of which few columns are wanted (`ranges_pay`): the other columns' bytes are
  never sent, at the price of one more round trip (the footer) before them;
- a file whose whole GET timed out: a request that timed out would time out again if sent
  again, so the file is read in smaller, different requests, each sized to arrive in time.

Each function sends at most one request, so the runner schedules, counts and retries them as it
does every call.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..models import KeyInfo
from ..series import ParquetColumns, series_from_table
from .client import ParquetFileError, _where, fetch_file

# The first ranged read: the file's last bytes, its footer among them; a file no larger comes
# whole in that one request. Smaller after a timeout, so that it arrives in time.
FOOTER_READ = 256 * 1024
SLOW_FOOTER_READ = 64 * 1024
# Column chunks this close are read as one range, the gap's bytes unused: a round trip costs
# about what 1 MiB of transfer does (50-100 ms at 10-20 MB/s); after a timeout, bytes cost more.
MERGE_GAP = 1024 * 1024
SLOW_MERGE_GAP = 64 * 1024
MAX_RANGE = 32 * 1024 * 1024  # as Arrow's own range coalescing caps a read
MIN_RANGE = 64 * 1024  # a range that times out is split in two, down to this size
_MAGIC = b"PAR1"


def ranges_pay(history_keys: Mapping[str, KeyInfo], wanted: Sequence[str]) -> bool:
    """Whether to read only the wanted columns: when they (and `_step`) hold less than half of
    the values the run logged, by the listing's counts (an exported file has a column per key).
    Otherwise one GET of the whole file costs less than the footer's round trip saves."""
    total = sum(max(0, info.count) for info in history_keys.values())
    want = sum(max(0, history_keys[k].count) for k in {*wanted, "_step"} if k in history_keys)
    return total > 0 and 2 * want < total


@dataclass(frozen=True)
class FileTail:
    """The last bytes of a file, its footer among them (the whole file when `start` is 0)."""

    url: str
    size: int
    start: int
    data: bytes


def _content_range_size(headers: Mapping[str, str]) -> int | None:
    value = next((v for k, v in headers.items() if k.lower() == "content-range"), "")
    total = value.rpartition("/")[2]
    return int(total) if total.isdigit() else None


def read_footer(url: str, timeout: float, size: int = FOOTER_READ) -> FileTail:
    """The file's last `size` bytes (one request; a second one only for a footer larger than
    that). A host that ignores ranges answers the whole file, which is then all there is."""
    status, headers, data = fetch_file(url, timeout, f"bytes=-{size}")
    if status == 200:
        return FileTail(url, len(data), 0, data)
    total = _content_range_size(headers)
    if total is None or len(data) < 8 or data[-4:] != _MAGIC:
        raise ParquetFileError(f"{_where(url)}: the ranged read of its end is not a parquet footer")
    need = int.from_bytes(data[-8:-4], "little") + 8
    start = total - len(data)
    if need > len(data) and start > 0:
        lo = max(0, total - need)
        status, _, more = fetch_file(url, timeout, f"bytes={lo}-{start - 1}")
        data = (more[lo:start] if status == 200 else more) + data
        start = lo
    return FileTail(url, total, start, data)


class _MissingBytes(Exception):
    pass


class _Pieces(io.RawIOBase):
    """A read-only file of `size` bytes of which only `pieces` (start -> bytes) are known: what
    pyarrow reads of it must lie in them (`_MissingBytes` otherwise, never zeros)."""

    def __init__(self, size: int, pieces: Mapping[int, bytes]) -> None:
        super().__init__()
        self._size = size
        self._pieces = sorted((start, data) for start, data in pieces.items() if data)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), max(0, self._size - self._pos))
        done = 0
        while done < want:
            pos = self._pos + done
            piece = next(((s, d) for s, d in self._pieces if s <= pos < s + len(d)), None)
            if piece is None:
                raise _MissingBytes(f"byte {pos} was not fetched")
            s, d = piece
            n = min(want - done, s + len(d) - pos)
            view[done : done + n] = d[pos - s : pos - s + n]
            done += n
        self._pos += done
        return done


def _metadata(tail: FileTail) -> Any:
    import pyarrow.parquet as pq

    return pq.ParquetFile(_Pieces(tail.size, {tail.start: tail.data})).metadata


def column_ranges(
    tail: FileTail, keys: Sequence[str], max_range: int = MAX_RANGE, merge_gap: int = MERGE_GAP
) -> list[tuple[int, int]]:
    """[start, end) byte ranges holding the column chunks of `_step` and `keys` in every row
    group, less what the tail already holds: chunks `merge_gap` apart or closer read as one
    range, ranges longer than `max_range` cut in equal parts."""
    try:
        meta = _metadata(tail)
    except Exception as exc:  # noqa: BLE001 - any unreadable footer is one error for the caller
        raise ParquetFileError(f"{_where(tail.url)}: its footer could not be read: {type(exc).__name__}") from None
    wanted = set(keys) | {"_step"}
    leaves = [
        i
        for i in range(meta.num_columns)
        if any(meta.schema.column(i).path == k or meta.schema.column(i).path.startswith(k + ".") for k in wanted)
    ]
    chunks = []
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for i in leaves:
            col = group.column(i)
            start = col.data_page_offset
            if col.has_dictionary_page and col.dictionary_page_offset:
                start = min(start, col.dictionary_page_offset)
            end = min(start + col.total_compressed_size, tail.start)
            if start < end:
                chunks.append((start, end))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(chunks):
        if merged and start - merged[-1][1] <= merge_gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    out: list[tuple[int, int]] = []
    step = max(1, max_range)
    for start, end in merged:
        parts = -(-(end - start) // step)
        bounds = [start + (end - start) * j // parts for j in range(parts + 1)]
        out.extend(zip(bounds[:-1], bounds[1:]))
    return out


def read_range(url: str, start: int, end: int, timeout: float) -> bytes:
    """Bytes [start, end) of the file: one ranged GET."""
    status, headers, data = fetch_file(url, timeout, f"bytes={start}-{end - 1}")
    if status == 200:  # the whole file after all
        data = data[start:end]
    if len(data) != end - start:
        raise ParquetFileError(f"{_where(url)}: bytes {start}-{end - 1} came back as {len(data)} bytes")
    return data


def decode(tail: FileTail, pieces: Mapping[int, bytes], keys: Sequence[str]) -> ParquetColumns:
    """`keys` from the fetched bytes alone, as `client.read_parquet_columns` gives them."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(_Pieces(tail.size, {**pieces, tail.start: tail.data}))
        names = set(parquet.schema_arrow.names)
        columns = [k for k in dict.fromkeys(["_step", *keys]) if k in names]
        table = parquet.read(columns=columns, use_threads=False)
        return series_from_table(table, keys)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one error for the caller
        raise ParquetFileError(f"{_where(tail.url)} could not be read: {type(exc).__name__}: {exc}") from None
