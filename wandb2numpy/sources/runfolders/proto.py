"""The few protobuf messages of a run file that are read one by one, decoded from the wire.

Field numbers are those of wandb's `wandb_internal.proto` (tests check every decoder here against
`wandb.proto.wandb_internal_pb2` on files the SDK wrote). Decoding by hand keeps the reader free of
the wandb package, whose import costs most of a second in every worker process, and lets the hot
paths in `decode` read history without a message object per record.

Also here: the exact, record-by-record reading of history and summary records that `decode` falls
back to when a chunk holds something its bulk reader does not recognise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .wire import read_varint

__all__ = [
    "Fields",
    "Item",
    "RunMeta",
    "decode_items",
    "fields",
    "record_oneof",
]

# Record (wandb_internal.proto): the oneof fields read here.
HISTORY, SUMMARY, CONFIG, RUN, EXIT, HEADER = 2, 3, 5, 17, 18, 21

Fields = list[tuple[int, int, Any]]  # (field number, wire type, int or bytes)


class WireError(ValueError):
    """Bytes that are not a well-formed protobuf message."""


def fields(buf: bytes) -> Fields:
    """Every field of a message, in wire order: varints as ints, length-delimited fields as bytes,
    fixed-size fields as their raw bytes."""
    out: Fields = []
    i = 0
    n = len(buf)
    try:
        while i < n:
            key, i = read_varint(buf, i)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, i = read_varint(buf, i)
                out.append((number, 0, value))
            elif wire == 2:
                length, i = read_varint(buf, i)
                if i + length > n:
                    raise WireError("a field runs past the end of its message")
                out.append((number, 2, buf[i : i + length]))
                i += length
            elif wire == 1:
                out.append((number, 1, buf[i : i + 8]))
                i += 8
            elif wire == 5:
                out.append((number, 5, buf[i : i + 4]))
                i += 4
            else:
                raise WireError(f"wire type {wire} is not used by run files")
    except IndexError:
        raise WireError("a message ends inside a field") from None
    if i != n:
        raise WireError("a message ends inside a field")
    return out


def record_oneof(body: bytes) -> tuple[int, bytes]:
    """A Record's oneof field: its number and its bytes ((0, b"") for none)."""
    for number, wire, value in fields(body):
        if number not in (1, 16, 19, 200) and wire == 2:
            return number, value
    return 0, b""


def _text(value: Any) -> str:
    return bytes(value).decode("utf-8", "replace")


def _signed(value: int) -> int:
    """A varint read as int64/int32 (negative numbers are sent as 10-byte two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclass
class Item:
    """One key/value item of a history, summary or config record."""

    parts: tuple[str, ...]
    value_json: bytes | None
    remove: bool = False


def _item(buf: bytes, *, remove: bool = False) -> Item:
    key = ""
    nested: list[str] = []
    value: bytes | None = None
    for number, wire, v in fields(buf):
        if wire != 2:
            continue
        if number == 1:
            key = _text(v)
        elif number == 2:
            nested.append(_text(v))
        elif number == 16:
            value = bytes(v)
    # wandb-core's rule: the nested key when there is one, else the plain key
    return Item(tuple(nested) if nested else (key,), value, remove)


def decode_items(buf: bytes, *, removes: bool = False) -> list[Item]:
    """The items of a HistoryRecord, SummaryRecord or ConfigRecord (field 1: items; field 2 of a
    summary or config record: removals)."""
    out = []
    for number, wire, v in fields(buf):
        if wire == 2 and number == 1:
            out.append(_item(v))
        elif wire == 2 and number == 2 and removes:
            out.append(_item(v, remove=True))
    return out


def history_step(buf: bytes) -> int | None:
    """The HistoryRecord's own step (field 2, HistoryStep.num), or None without one."""
    step: int | None = None
    for number, wire, v in fields(buf):
        if number == 2 and wire == 2:
            step = 0
            for n2, w2, v2 in fields(v):
                if n2 == 1 and w2 == 0:
                    step = _signed(v2)
    return step


def json_value(raw: bytes | None) -> Any:
    """A value_json as Python (NaN and infinities are the bare words Python's json reads)."""
    if raw is None:
        return None
    return json.loads(raw)


def apply_items(target: dict[str, Any], items: list[Item]) -> None:
    """Updates (and removals) of a config or summary, in order, into a nested dict."""
    for it in items:
        parts = it.parts
        node = target
        for p in parts[:-1]:
            child = node.get(p)
            if not isinstance(child, dict):
                if it.remove:
                    node = {}
                    break
                child = node[p] = {}
            node = child
        if it.remove:
            node.pop(parts[-1], None)
        else:
            try:
                node[parts[-1]] = json_value(it.value_json)
            except ValueError:
                node[parts[-1]] = _text(it.value_json or b"")


@dataclass
class RunMeta:
    """What a run file's metadata records say, merged in file order."""

    run_id: str = ""
    entity: str = ""
    project: str = ""
    display_name: str = ""
    group: str = ""
    job_type: str = ""
    notes: str = ""
    tags: tuple[str, ...] = ()
    sweep_id: str = ""
    host: str = ""
    start_time: float | None = None  # seconds since the epoch
    starting_step: int = 0
    resumed: bool = False
    config: dict[str, Any] = field(default_factory=dict)
    summary_items: list[Item] = field(default_factory=list)  # the run record's own summary
    exit_code: int | None = None
    producer: str = ""  # the wandb version that wrote the file

    def add(self, number: int, buf: bytes) -> None:
        """Take in one Record's oneof field."""
        if number == RUN:
            self._run(buf)
        elif number == CONFIG:
            apply_items(self.config, decode_items(buf, removes=True))
        elif number == EXIT:
            code = 0
            for n, w, v in fields(buf):
                if n == 1 and w == 0:
                    code = _signed(v) & 0xFFFFFFFF
                    code = code - (1 << 32) if code >= 1 << 31 else code
            self.exit_code = code
        elif number == HEADER:
            for n, w, v in fields(buf):
                if n == 1 and w == 2:
                    for n2, w2, v2 in fields(v):
                        if n2 == 1 and w2 == 2:
                            self.producer = _text(v2)

    def _run(self, buf: bytes) -> None:
        tags: list[str] = []
        for number, wire, v in fields(buf):
            if wire == 2:
                if number == 1:
                    self.run_id = _text(v)
                elif number == 2:
                    self.entity = _text(v)
                elif number == 3:
                    self.project = _text(v)
                elif number == 4:
                    apply_items(self.config, decode_items(v, removes=True))
                elif number == 5:
                    self.summary_items.extend(decode_items(v, removes=True))
                elif number == 6:
                    self.group = _text(v)
                elif number == 7:
                    self.job_type = _text(v)
                elif number == 8:
                    self.display_name = _text(v)
                elif number == 9:
                    self.notes = _text(v)
                elif number == 10:
                    tags.append(_text(v))
                elif number == 12:
                    self.sweep_id = _text(v)
                elif number == 13:
                    self.host = _text(v)
                elif number == 17:
                    seconds = nanos = 0
                    for n2, w2, v2 in fields(v):
                        if n2 == 1 and w2 == 0:
                            seconds = _signed(v2)
                        elif n2 == 2 and w2 == 0:
                            nanos = _signed(v2)
                    self.start_time = seconds + nanos / 1e9
            elif wire == 0:
                if number == 14:
                    self.starting_step = _signed(v)
                elif number == 18:
                    self.resumed = bool(v)
        if tags:
            self.tags = tuple(tags)


def walk_records(bodies: list[bytes], wanted: int) -> Iterator[bytes]:
    """The oneof bytes of each record whose oneof is field `wanted`."""
    for body in bodies:
        number, value = record_oneof(body)
        if number == wanted:
            yield value
