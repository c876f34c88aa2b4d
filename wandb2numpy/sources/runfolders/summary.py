"""A run's summary from its summary records: every update replayed in file order.

Only each key's last update matters, so a chunk's summary records are not read one by one: the
chunk is checked to hold nothing but record starts and known keys' items (one match over the
buffer, or one deletion pass), and each key's last item is then found by searching back from the
end of the buffer. Anything else in it (a removal, a key no history record had) is read from the
few bytes the check leaves, or the chunk is read record by record.
"""

from __future__ import annotations

import re
import sys
from functools import lru_cache
from typing import Any

from . import proto
from .tokens import BOUNDARY, END, TEXT, VARINT, key_parts, tokenize, trie
from .wire import read_varint

__all__ = ["Summary"]


class Summary:
    """The run's summary: every update in file order, the last one per key kept."""

    def __init__(self) -> None:
        self.state: dict[tuple[str, ...], bytes] = {}

    def apply(self, items: list[proto.Item]) -> None:
        for it in items:
            if it.remove:
                n = len(it.parts)
                for k in [k for k in self.state if k[:n] == it.parts]:
                    del self.state[k]
            elif it.value_json is not None:
                self.state.pop(it.parts, None)
                self.state[it.parts] = it.value_json

    def add_bulk(self, bodies: list[bytes], known: set[bytes]) -> bool:
        """Take in a chunk's summary records without reading each: all that matters is the last
        update of each key. Every field must be a known key's item (checked by deleting those
        and reading what is left, usually nothing); the last item of each key is then found from
        the end. False: something else is there (a removal, say); read them one by one."""
        if len(known) > FIND_LAST_UP_TO:
            return self._add_split(bodies, known)
        buf = b"".join(bodies) + END
        frozen = frozenset(known)
        whole = _all_known(frozen)
        rest = b"" if whole is not None and whole.fullmatch(buf) else _known_items(frozen).sub(b"", buf)
        if rest:
            got = tokenize([rest], frozenset())
            if got is None:
                return False
            known.update(k for k in set(got[0]) if isinstance(k, bytes))
        last: list[tuple[int, bytes, bytes]] = []
        for token in known:
            hit = _last_item(buf, token)
            if hit is not None:
                last.append((hit[0], token, hit[1]))
        updates = []
        for _, token, value in sorted(last):
            parts = key_parts(token)
            if parts is None:
                return False
            updates.append(proto.Item(parts, value))
        self.apply(updates)
        return True

    def _add_split(self, bodies: list[bytes], known: set[bytes]) -> bool:
        """`add_bulk` for runs with many keys: every field cut out (the search from the end
        would read the chunk once per key)."""
        got = tokenize(bodies, frozenset(known))
        if got is None:
            return False
        keys, values = got
        last = dict(zip(keys, values))
        at = dict(zip(keys, range(len(keys))))
        last.pop(None, None)
        updates = []
        for token in sorted(last, key=at.__getitem__):
            parts = token if isinstance(token, tuple) else key_parts(token)
            if parts is None:
                return False
            updates.append(proto.Item(parts, last[token]))
        known.update(k for k in last if isinstance(k, bytes))
        self.apply(updates)
        return True

    def add_slow(self, bodies: list[bytes]) -> None:
        for body in bodies:
            try:
                number, buf = proto.record_oneof(body)
                if number == proto.SUMMARY:
                    self.apply(proto.decode_items(buf, removes=True))
            except proto.WireError:
                continue

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        proto.apply_items(out, [proto.Item(p, v) for p, v in self.state.items()])
        return out


# Up to this many keys, each key's last item is found by searching back from the end of a chunk;
# with more, the chunk is cut into fields once.
FIND_LAST_UP_TO = 32


@lru_cache(maxsize=64)
def _known_items(known: frozenset[bytes]) -> re.Pattern[bytes]:
    """A record start or an item of a known key (deleted to see what else is there; matching
    one at a time is faster than runs of them, which keep a backtracking point per field)."""
    item = rb"\x0a" + VARINT + b"(?:" + trie(sorted(known)) + rb")\x82\x01" + VARINT + TEXT + b"*"
    return re.compile((item + b"|" if known else b"") + BOUNDARY, re.S)


@lru_cache(maxsize=64)
def _all_known(known: frozenset[bytes]) -> re.Pattern[bytes] | None:
    """The whole buffer as record starts and known keys' items: one match, no output, and no
    backtracking state kept per field (possessive repetition, Python 3.11 on), a third faster
    than deleting the items one by one. None where `re` has no possessive repetition."""
    if sys.version_info < (3, 11) or not known:
        return None
    item = rb"\x0a" + VARINT + b"(?:" + trie(sorted(known)) + rb")\x82\x01" + VARINT + TEXT + b"*+"
    return re.compile(b"(?:" + item + b"|" + BOUNDARY + b")*+", re.S)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _last_item(buf: bytes, token: bytes) -> tuple[int, bytes] | None:
    """Where the last item of key `token` starts and its value_json. A hit is an item only if
    an item header of the right length precedes it (a key can also end another, nested key)."""
    needle = token + b"\x82\x01"
    end = len(buf)
    while True:
        p = buf.rfind(needle, 0, end)
        if p < 0:
            return None
        end = p + len(needle) - 1
        try:
            length, start = read_varint(buf, p + len(needle))
        except (IndexError, ValueError):
            continue
        head = b"\x0a" + _varint(start + length - p)
        if buf[p - len(head) : p] == head:
            return p, buf[start : start + length]
