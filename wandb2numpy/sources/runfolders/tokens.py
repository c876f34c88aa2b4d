"""Cutting a chunk's history or summary records into fields in one regular-expression pass.

A logged step is three records (a history record and two summary updates) of a dozen small
fields each, so a Python step per record or per field would cap the reader at about 100k values a
second. Instead a chunk's records are joined into one buffer and cut by one regular expression
(`re.split`, in C) into record boundaries and items (key, value_json).

The cut is exact or it declines: every byte of the buffer must belong to a recognised field
(`split` leaves no gaps), every key it cut must decode as protobuf with its own lengths (checked
by the caller, `key_parts`), and JSON never holds a raw control byte, which is what lets a value
end where the next field's tag begins. Anything else (fields in another order, removals, a key
with control characters) gives None, and the caller reads those records one by one
(`slow_history`, or `proto`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from . import proto

__all__ = ["END", "Token", "key_parts", "learn", "slow_history", "tokenize", "trie"]

# A length of up to 2**28 bytes (what fits a record many times over), as a protobuf varint.
VARINT = rb"(?:[\x00-\x7f]|[\x80-\xff]{1,3}[\x00-\x7f])"
TEXT = rb"[^\x00-\x1f]"  # JSON and key text: never a raw control byte
INT = rb"[\x80-\xff]{0,9}[\x00-\x7f]"  # any varint: steps can be in the billions
# The start of a history or summary record (num, then the oneof's tag and length), together
# with the history step field (HistoryStep, field 2) that ends the record before it.
BOUNDARY = rb"(?:\x12(?:\x00|[\x02-\x0b]\x08" + INT + rb"))?\x08" + INT + rb"[\x12\x1a]" + VARINT
# A key no earlier record of the file had: key and nested_key fields, each a length and text.
ANY_KEY = rb"(?:[\x0a\x12]" + VARINT + TEXT + rb"*?)+?"
# Appended to a buffer so the last record's step field has a boundary to go with.
END = b"\x08\x00\x12\x00"
# Records read with the general pattern first, to learn the keys the fast one looks for.
LEARN = 64

Token = bytes | tuple[str, ...] | None  # raw key fields, decoded parts, or a record boundary


def trie(words: Sequence[bytes]) -> bytes:
    """A regex matching exactly `words`, branching byte by byte (an alternation of hundreds of
    keys would be tried one after another at every field)."""
    root: dict[int, Any] = {}
    for w in words:
        node = root
        for b in w:
            node = node.setdefault(b, {})
        node[-1] = {}

    def emit(node: dict[int, Any]) -> bytes:
        ends = -1 in node
        alts = [re.escape(bytes([b])) + emit(child) for b, child in sorted(node.items()) if b != -1]
        if not alts:
            return b""
        body = alts[0] if len(alts) == 1 else b"(?:" + b"|".join(alts) + b")"
        if ends:
            return (body if len(alts) > 1 else b"(?:" + body + b")") + b"?"
        return body

    return emit(root)


@lru_cache(maxsize=64)
def pattern(known: frozenset[bytes]) -> re.Pattern[bytes]:
    key = trie(sorted(known)) + b"|" + ANY_KEY if known else ANY_KEY
    item = rb"\x0a" + VARINT + b"(" + key + rb")\x82\x01" + VARINT + b"(" + TEXT + b"*)"
    return re.compile(item + b"|" + BOUNDARY, re.S)


def tokenize(bodies: list[bytes], known: frozenset[bytes]) -> tuple[list[Token], list[bytes | None]] | None:
    """(keys, values) of every field of the records, a None key at each record's start and one
    at the end; None when something in them is not recognised."""
    parts = pattern(known).split(b"".join(bodies) + END)
    if any(parts[0::3]):
        return None
    return parts[1::3], parts[2::3]


def learn(bodies: list[bytes], known: set[bytes]) -> None:
    """Add the keys of the first records to `known`, so the chunk is read with them literal."""
    got = tokenize(bodies[:LEARN], frozenset(known))
    if got is not None:
        known.update(k for k in got[0] if isinstance(k, bytes))


@lru_cache(maxsize=4096)
def key_parts(token: bytes) -> tuple[str, ...] | None:
    """A key's fields decoded with their own lengths (None: not exactly key fields, or not UTF-8);
    as wandb-core reads them: the nested key when there is one, else the plain key."""
    try:
        got = proto.fields(token)
        nested = tuple(bytes(v).decode() for n, w, v in got if n == 2 and w == 2)
        plain = [bytes(v).decode() for n, w, v in got if n == 1 and w == 2]
    except (ValueError, UnicodeDecodeError):
        return None
    if len(nested) + len(plain) != len(got) or not got:
        return None
    return nested if nested else (plain[-1],)


def slow_history(bodies: list[bytes]) -> tuple[list[Token], list[bytes | None]]:
    """The same (keys, values) as `tokenize`, record by record."""
    keys: list[Token] = []
    values: list[bytes | None] = []
    for body in bodies:
        try:
            number, buf = proto.record_oneof(body)
            items = proto.decode_items(buf) if number == proto.HISTORY else []
            own_step = proto.history_step(buf) if number == proto.HISTORY else None
        except proto.WireError:
            continue  # its checksum held, but it is no history record this reader knows
        step_items = [it for it in items if it.parts == ("_step",) and it.value_json is not None]
        if not step_items and own_step is None:
            continue  # no step: nowhere to put its values
        keys.append(None)
        values.append(None)
        for it in items:
            if it.parts != ("_step",):
                keys.append(it.parts)
                values.append(it.value_json)
        keys.append(("_step",))
        values.append(step_items[-1].value_json if step_items else str(own_step).encode())
    keys.append(None)
    values.append(None)
    return keys, values
