"""Write W&B run files (`.wandb`) without the wandb SDK: for benchmarks that need many large runs
fast, and for tests that need records the SDK never writes in that shape.

The files have what the SDK (0.31) writes for a run: the header record, the run record with its
config, then per logged step a `_wandb.runtime` summary update, a summary update mirroring the
step's values and the history record (items in a shuffled order, as wandb-core's Go maps give),
and an exit record on `finish`. The tests check files written here against the SDK's own, and
both against `wandb.proto.wandb_internal_pb2`.
"""

from __future__ import annotations

import json
import os
import random
import struct
import time
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["RunFileWriter", "encode_record", "frame_records"]

BLOCK = 32 * 1024
HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _int_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _text(number: int, value: str) -> bytes:
    return _field(number, value.encode("utf-8"))


def _value_json(value: Any) -> str:
    """As the SDK encodes a logged value: JSON with NaN and Infinity as bare words."""
    return json.dumps(value, allow_nan=True, separators=(",", ":"))


def _item(parts: tuple[str, ...], value_json: str, *, plain_key: bool = False) -> bytes:
    """A HistoryItem / SummaryItem / ConfigItem: nested_key fields (or a plain key), value_json."""
    key = _text(1, parts[0]) if plain_key else b"".join(_text(2, p) for p in parts)
    return key + _text(16, value_json)


def _flatten(row: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """A logged dict as the SDK sends it: one item per leaf, a nested dict (media included) as
    a path."""
    out: list[tuple[tuple[str, ...], Any]] = []
    for k, v in row.items():
        if isinstance(v, Mapping) and v:
            out.extend(_flatten(v, (*prefix, str(k))))
        else:
            out.append(((*prefix, str(k)), v))
    return out


def encode_record(num: int, field_number: int, payload: bytes) -> bytes:
    """A Record: `num`, then its oneof field."""
    return _int_field(1, num) + _field(field_number, payload)


def frame_records(records: list[bytes], offset: int) -> bytes:
    """Records in LevelDB's log format, continuing a file that is `offset` bytes long."""
    out = bytearray()
    pos = offset
    for rec in records:
        rest = memoryview(rec)
        first = True
        while True:
            space = BLOCK - pos % BLOCK
            if space < 7:
                out += b"\0" * space
                pos += space
                space = BLOCK
            piece = rest[: space - 7]
            rest = rest[space - 7 :]
            end = not len(rest)
            kind = FULL if first and end else FIRST if first else LAST if end else MIDDLE
            crc = zlib.crc32(piece, zlib.crc32(bytes([kind])))
            out += struct.pack("<IHB", crc, len(piece), kind)
            out += piece
            pos += 7 + len(piece)
            if end:
                break
            first = False
    return bytes(out)


class RunFileWriter:
    """One run's `.wandb` file in a run folder `wandb/offline-run-<time>-<id>/run-<id>.wandb`
    under `root` (or at `path`). Records are buffered and written `flush_every` steps apart."""

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        run_id: str,
        path: str | os.PathLike[str] | None = None,
        project: str = "",
        entity: str = "",
        display_name: str = "",
        group: str = "",
        job_type: str = "",
        tags: tuple[str, ...] = (),
        config: Mapping[str, Any] | None = None,
        start_time: float | None = None,
        seed: int = 0,
        flush_every: int = 1000,
    ) -> None:
        self.start_time = time.time() if start_time is None else start_time
        if path is None:
            if root is None:
                raise ValueError("give a root folder or a path")
            stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime(self.start_time))
            path = Path(root) / "wandb" / f"offline-run-{stamp}-{run_id}" / f"run-{run_id}.wandb"
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed by finish/close
        self._file.write(HEADER)
        self._size = len(HEADER)
        self._num = 0
        self._pending: list[bytes] = []
        self._rng = random.Random(seed)
        self._step = 0
        self.flush_every = flush_every
        version = _field(1, _text(1, "0.31.0+wandb2numpy.testing") + _text(2, "0.70.0"))
        self._add(21, version)
        config_items = [_item(("_wandb",), "{}", plain_key=True)] + [
            _item((k,), _value_json(v), plain_key=True) for k, v in (config or {}).items()
        ]
        seconds = int(self.start_time)
        nanos = int(round((self.start_time - seconds) * 1e9))
        run = b"".join(
            [
                _text(1, run_id),
                _text(2, entity) if entity else b"",
                _text(3, project) if project else b"",
                _field(4, b"".join(_field(1, it) for it in config_items)),
                _text(6, group) if group else b"",
                _text(7, job_type) if job_type else b"",
                _text(8, display_name) if display_name else b"",
                *(_text(10, t) for t in tags),
                _text(13, "wandb2numpy-testing"),
                _field(17, _int_field(1, seconds) + (_int_field(2, nanos) if nanos else b"")),
            ]
        )
        self._add(17, run)

    def _add(self, field_number: int, payload: bytes) -> None:
        self._num += 1
        self._pending.append(encode_record(self._num, field_number, payload))

    def _flush(self) -> None:
        if self._pending:
            data = frame_records(self._pending, self._size)
            self._file.write(data)
            self._size += len(data)
            self._pending = []

    def log(self, row: Mapping[str, Any], step: int | None = None) -> None:
        """One history row, as `run.log(row, step=step)` records it (NaN and infinities are
        floats; a dict with `_type` is a media object). `_runtime` and `_timestamp` in the row
        replace the made-up ones."""
        step = self._step if step is None else step
        self._step = step + 1
        row = dict(row)
        runtime = row.pop("_runtime", 0.001 * step)
        timestamp = row.pop("_timestamp", self.start_time + runtime)
        items = _flatten(row)
        items += [(("_timestamp",), timestamp), (("_runtime",), runtime), (("_step",), step)]
        encoded = [_item(parts, _value_json(v)) for parts, v in items]
        summary = list(encoded)
        self._rng.shuffle(encoded)
        self._rng.shuffle(summary)
        self._add(
            3, _field(1, _item(("_wandb", "runtime"), "0")) + _field(1, _item(("_runtime",), "0", plain_key=True))
        )
        self._add(3, b"".join(_field(1, it) for it in summary))
        self._add(2, b"".join(_field(1, it) for it in encoded) + _field(2, _int_field(1, step) if step else b""))
        if self._num % (3 * self.flush_every) < 3:
            self._flush()

    def summary(self, updates: Mapping[str, Any]) -> None:
        """`run.summary.update(updates)`."""
        self._add(3, b"".join(_field(1, _item(p, _value_json(v))) for p, v in _flatten(updates)))

    def remove_summary(self, *keys: str) -> None:
        """`del run.summary[key]` for each key."""
        self._add(3, b"".join(_field(2, _text(1, k)) for k in keys))

    def config(self, updates: Mapping[str, Any]) -> None:
        """`run.config.update(updates)`."""
        self._add(5, b"".join(_field(1, _item((k,), _value_json(v), plain_key=True)) for k, v in updates.items()))

    def finish(self, exit_code: int = 0) -> Path:
        """The exit record, as `run.finish(exit_code)` writes it, and close."""
        self._add(18, _int_field(1, exit_code) if exit_code else b"")
        return self.close()

    def close(self) -> Path:
        """Close without an exit record: a run killed, or still running."""
        self._flush()
        self._file.close()
        return self.path
