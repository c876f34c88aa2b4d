"""The fast run-file reader, compiled and numpy, against the exact reader.

The fast reader (`sources/runfolders/fast.py`, with its loops compiled in `_fastwire.c` when a C
compiler was there at install) reads clean files and declines everything else to the exact
reader. These tests hold it to that: files of every shape the writer makes read the same through
all readers, bit for bit; damaged files (cut, flipped, zeroed, overwritten at seeded random
places) read the same as the exact reader reads them, and never raise anything but a
`RunFileError`; the float parser rounds exactly as Python's float() does, and refuses what is not
a JSON number.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import shutil
import struct
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from conftest import same_bits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wandb2numpy.sources.runfolders import fast
from wandb2numpy.sources.runfolders.decode import ParsedFile, parse_file
from wandb2numpy.sources.runfolders.wire import BLOCK, RunFileError
from wandb2numpy.testing.runfiles import RunFileWriter

READERS = ["compiled", "numpy"]


@contextlib.contextmanager
def reader(name: str) -> Iterator[None]:
    if name == "compiled":
        if not fast.COMPILED:
            pytest.skip("the compiled loops were not built (no C compiler at install)")
        yield
    else:
        with fast.numpy_only():
            yield


def test_the_compiled_loops_are_built_where_a_compiler_is() -> None:
    """`pip install .` builds `_fastwire` when it can; a silent failure would cost 2-3x speed."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None or not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        pytest.skip(f"no C compiler ({cc}) or no Python headers here: the numpy loops are used")
    assert fast.COMPILED


def same(a: ParsedFile, b: ParsedFile) -> None:
    assert a.summary == b.summary
    assert a.meta == b.meta
    assert a.keys.keys() == b.keys.keys()
    for key, rows in a.keys.items():
        other = b.keys[key]
        assert (rows.types, rows.example, rows.count, rows.last) == (
            other.types,
            other.example,
            other.count,
            other.last,
        ), key
        assert rows.steps is not None and other.steps is not None
        assert same_bits(rows.steps, other.steps), key
        assert (rows.values is None) == (other.values is None), key
        if rows.values is not None:
            assert same_bits(rows.values, other.values), key


# ------------------------------------------------------------------------------ files of every shape


# A fixed start, so each test file's bytes (its timestamps' texts) are the same every run: the
# layout of records over blocks then is too (a layout the clock once made is tested by hand below).
START = 1_733_000_000.0


def _varied(root: Path, relog: bool = True) -> Path:
    """A run with what the fast reader must read or decline exactly: records in pieces over
    blocks, a key of 300 bytes, unicode and nested keys, text, media, NaN and infinities,
    booleans, sparse keys, steps past 2**31 and a step logged twice."""
    w = RunFileWriter(
        root, run_id="varied", project="p", entity="e", group="g", tags=("a", "b"), config={"lr": 0.1}, start_time=START
    )
    base = 3_000_000_000
    long_key = "k" * 300
    for i in range(1500):
        row: dict[str, Any] = {"loss": 1.0 / (i + 1), long_key: i, "λ/ümlaut": -i, "nested": {"a": {"b": i * 0.5}}}
        if i % 7 == 0:
            row["sparse"] = i
        if i % 100 == 3:
            row["special"] = [math.nan, math.inf, -math.inf][i % 3]
        if i % 50 == 0:
            row["flag"] = i % 100 == 0
        if i % 300 == 5:
            row["note"] = "x" * (40_000 if i == 5 else 5)
        if i % 400 == 9:
            row["img"] = {"_type": "image-file", "path": f"media/{i}.png", "width": 4}
        w.log(row, step=base + i)
    if relog:
        w.log({"loss": -1.0}, step=base + 10)  # step 10 again: the later row wins
    w.summary({"best": 7})
    return w.finish()


def _plain(root: Path, steps: int = 3000) -> Path:
    w = RunFileWriter(root, run_id="plain", project="p", entity="e", start_time=START)
    for i in range(steps):
        w.log({"loss": 1.0 / (i + 1), "acc": i / steps, "lr": 1e-3 * 0.999**i})
    return w.finish()


@pytest.mark.parametrize("name", READERS)
def test_every_shape_reads_as_the_exact_reader_reads_it(tmp_path: Path, name: str) -> None:
    path = _varied(tmp_path)
    exact = parse_file(path, fast_reader=False)
    assert exact.slow_chunks == (0, 0)
    with reader(name):
        got = parse_file(path)
        small = parse_file(path, wanted=frozenset({"loss", "_step"}))
    assert got.fast, "a clean file is read by the fast reader"
    same(got, exact)
    same(got, parse_file(path, bulk=False))
    assert got.keys["loss"].values is not None and got.keys["loss"].values[10] == -1.0
    assert got.keys["note"].example is not None and got.keys["img"].example == "image-file (media)"
    assert got.keys["flag"].values is not None and got.keys["flag"].values.tolist()[:2] == [1.0, 0.0]
    assert same_bits(
        got.keys["special"].values, np.array([math.nan, math.inf, -math.inf] * 5)[: got.keys["special"].count]
    )
    assert small.keys["nested.a.b"].values is None and small.keys["nested.a.b"].count == 1500  # listed, not read
    assert small.keys["loss"].values is not None


@pytest.mark.parametrize("name", READERS)
def test_a_summary_removal_is_declined_to_the_exact_reader(tmp_path: Path, name: str) -> None:
    w = RunFileWriter(tmp_path, run_id="rm", project="p")
    for i in range(200):
        w.log({"a": i})
    w.summary({"gone": 1, "kept": 2})
    w.remove_summary("gone")
    path = w.finish()
    with reader(name):
        got = parse_file(path)
    assert not got.fast and got.slow_chunks == (0, 1)
    assert got.summary["kept"] == 2 and "gone" not in got.summary


# ------------------------------------------------------------------------------ damage, at random places


def _mutations(data: bytes, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    n = len(data)
    for cut in [7, 8, 100, BLOCK - 3, BLOCK, BLOCK + 7, *(rng.randrange(8, n) for _ in range(20))]:
        yield f"cut at {cut}", data[:cut]
    for _ in range(40):
        at, bit = rng.randrange(7, n), 1 << rng.randrange(8)
        b = bytearray(data)
        b[at] ^= bit
        yield f"bit {bit} flipped at {at}", bytes(b)
    for _ in range(15):
        at, k = rng.randrange(7, n), rng.randrange(1, 3000)
        b = bytearray(data)
        b[at : at + k] = bytes(len(b[at : at + k]))
        yield f"{k} bytes zeroed at {at}", bytes(b)
    for _ in range(15):
        at, k = rng.randrange(7, n), rng.randrange(1, 200)
        b = bytearray(data)
        b[at : at + k] = rng.randbytes(len(b[at : at + k]))
        yield f"{k} random bytes at {at}", bytes(b)
    yield "a header cut to 3 bytes", data[:3]
    yield "not a run file", b"PK\x03\x04" + data[4:]


@pytest.mark.parametrize("name", READERS)
def test_damage_anywhere_reads_as_the_exact_reader_reads_it(tmp_path: Path, name: str) -> None:
    clean = _plain(tmp_path / "src", steps=1500).read_bytes()
    path = tmp_path / "run-x.wandb"
    rng = random.Random(20261202)
    read_fast = 0
    for what, data in _mutations(clean, rng):
        path.write_bytes(data)
        try:
            exact: ParsedFile | RunFileError = parse_file(path, fast_reader=False)
        except RunFileError as exc:
            exact = exc
        with reader(name):
            try:
                got: ParsedFile | RunFileError = parse_file(path)
            except RunFileError as exc:
                got = exc
        if isinstance(exact, RunFileError):
            assert isinstance(got, RunFileError) and str(got) == str(exact), what
            continue
        assert isinstance(got, ParsedFile), what
        same(got, exact)
        assert got.damage.describe() == exact.damage.describe(), what
        assert got.damage.truncated_bytes == exact.damage.truncated_bytes, what
        read_fast += got.fast
        if got.fast:  # what the fast reader accepts is undamaged, or cut short at its end
            assert not exact.damage.damaged, what
    assert 26 <= read_fast < 60  # the cuts, and flips the checksums do not see (in padding); not the rest


# ------------------------------------------------------------------------------ numbers and keys


def _floats(texts: list[bytes]) -> np.ndarray | None:
    buf = np.frombuffer(b"".join(texts) + bytes(16), np.uint8)
    ends = np.cumsum([len(t) for t in texts]).astype(np.int64)
    starts = ends - np.array([len(t) for t in texts], np.int64)
    got = fast._compiled.floats(buf, starts, ends)  # type: ignore[union-attr]
    return None if got is None else np.frombuffer(got, np.float64)


needs_compiled = pytest.mark.skipif(not fast.COMPILED, reason="the compiled loops were not built")

JSON_NUMBER = r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,3})?"


@needs_compiled
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=50))
def test_floats_round_trip_exactly(values: list[float]) -> None:
    texts = [repr(v).encode() for v in values]
    got = _floats(texts)
    assert got is not None and same_bits(got, np.array(values))


@needs_compiled
@settings(max_examples=400, deadline=None)
@given(st.lists(st.from_regex(JSON_NUMBER, fullmatch=True), min_size=1, max_size=30))
def test_json_numbers_round_as_float_rounds(texts: list[str]) -> None:
    want = [float(t) for t in texts]
    got = _floats([t.encode() for t in texts])
    if all(math.isfinite(v) for v in want):
        assert got is not None and same_bits(got, np.array(want))
    else:
        assert got is None  # past float64's range: left to the exact reader


@needs_compiled
def test_halfway_subnormal_and_special_values() -> None:
    rng = random.Random(7)
    texts = [b"NaN", b"Infinity", b"-Infinity", b"0", b"-0", b"5e-324", b"2.4703282292062328e-324", b"1e-400"]
    texts += [b"1.7976931348623157e308", b"2.2250738585072011e-308", b"9007199254740993", b"1e23", b"0.1"]
    from decimal import Decimal

    for _ in range(2000):  # exact midpoints between neighbouring floats: ties to even
        x = abs(struct.unpack("<d", struct.pack("<Q", rng.getrandbits(63)))[0])
        y = math.nextafter(x, math.inf)
        if math.isfinite(y) and x:
            texts.append(format((Decimal(x) + Decimal(y)) / 2, "e").encode())
    got = _floats(texts)
    assert got is not None
    assert same_bits(got[3:], np.array([float(t) for t in texts[3:]]))
    assert math.isnan(got[0]) and got[1] == math.inf and got[2] == -math.inf
    for bad in [b"1e400", b"true", b"01", b"1.", b".5", b"+1", b"nan", b"inf", b"1_0", b" 1", b"", b"-", b'"1"']:
        assert _floats([b"1", bad]) is None, bad


@pytest.mark.parametrize("name", READERS)
def test_key_codes_group_equal_keys(name: str) -> None:
    rng = random.Random(3)
    words = [rng.randbytes(rng.randrange(0, 40)) for _ in range(300)] + [b"a" * 600]
    keys = [rng.choice(words) for _ in range(20000)]
    buf = np.frombuffer(b"".join(keys) + bytes(16), np.uint8)
    end = np.cumsum([len(k) for k in keys]).astype(np.int64)
    start = end - np.array([len(k) for k in keys], np.int64)
    with reader(name):
        try:
            codes, distinct, last = fast.key_codes(buf, start, end)
        except fast.Decline:  # numpy's loop leaves keys of over 512 bytes to the exact reader
            assert name == "numpy"
            return
    assert [distinct[c] for c in codes.tolist()] == keys
    assert len(set(distinct)) == len(distinct)
    for code, at in enumerate(last.tolist()):
        assert keys[at] == distinct[code] and distinct[code] not in keys[at + 1 :]


# ------------------------------------------------------------------------------ reading on


@pytest.mark.parametrize("name", READERS)
def test_a_grown_file_read_on_from_where_it_was_equals_reading_it_whole(tmp_path: Path, name: str) -> None:
    """A file cut anywhere (between records, inside a record, inside a record of many pieces,
    inside a block's padding) and then grown to its end: reading on from the cut gives the
    whole file's listing (summary, metadata, kinds, counts, last steps) and exactly its rows
    from the last step read before on."""
    path = _varied(tmp_path / "src", relog=False)
    data = path.read_bytes()
    whole = parse_file(path, fast_reader=False)
    grown = tmp_path / "run-grown.wandb"
    rng = random.Random(5)
    for cut in [7, 100, BLOCK - 2, BLOCK, BLOCK + 9, *(rng.randrange(8, len(data)) for _ in range(12)), len(data)]:
        grown.write_bytes(data[:cut])
        with reader(name):
            before = parse_file(grown)
            assert before.fast and before.resume is not None, cut
            assert before.damage.truncated_bytes == parse_file(grown, fast_reader=False).damage.truncated_bytes
            grown.write_bytes(data)
            after = parse_file(grown, resume=before.resume)
            some = parse_file(grown, wanted=frozenset({"loss", "_step"}), resume=before.resume)
        assert some.read_from == after.read_from and some.keys.keys() == after.keys.keys()
        for key, rows in some.keys.items():  # keys not asked for: listed and counted too
            assert rows.count == after.keys[key].count and rows.steps is not None
            assert rows.values is None or len(rows.values) == len(rows.steps), key
        assert same_bits(some.keys["loss"].values, after.keys["loss"].values)  # type: ignore[arg-type]
        assert after.read_from == before.resume.offset and after.resumed_from == before.resume.last_step, cut
        assert after.fast
        assert after.summary == whole.summary and after.meta == whole.meta, cut
        for key, rows in whole.keys.items():
            got = after.keys[key]
            assert (got.types, got.example, got.count, got.last) == (rows.types, rows.example, rows.count, rows.last)
            assert got.steps is not None and rows.steps is not None
            # the rows from the old part's last step on: that row again, then the new part's
            since = rows.steps >= (before.resume.last_step if before.resume.last_step is not None else -math.inf)
            assert same_bits(got.steps, rows.steps[since]), (cut, key)
            if rows.values is not None:
                assert got.values is not None and same_bits(got.values, rows.values[since]), (cut, key)


def test_a_step_logged_again_after_where_it_was_read_to_is_read_whole(tmp_path: Path) -> None:
    path = _varied(tmp_path / "src")  # ends by logging step 10 again
    data = path.read_bytes()
    grown = tmp_path / "run-grown.wandb"
    grown.write_bytes(data[: len(data) // 2])
    before = parse_file(grown)
    grown.write_bytes(data)
    after = parse_file(grown, resume=before.resume)
    assert after.read_from == 0 and after.resumed_from is None  # read whole
    same(after, parse_file(grown, fast_reader=False))


def test_a_large_decode_without_the_compiled_loops_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Without the compiled loops the export is right but slower: one line says why and what
    builds them (a checkout run in place imports its own folder, where nothing was built)."""
    from wandb2numpy.sources.runfolders.source import RunFolderSource

    for i in range(2):
        w = RunFileWriter(tmp_path, run_id=f"r{i}", project="p")
        for step in range(50):
            w.log({"loss": float(step)})
        w.finish()
    for numpy_loops in (True, False):
        src = RunFolderSource(tmp_path / "wandb", workers=2, inline_bytes=0)
        caplog.clear()
        with caplog.at_level(logging.WARNING), contextlib.ExitStack() as stack:
            if numpy_loops:
                stack.enter_context(fast.numpy_only())
            try:
                anyio.run(src._parse_all, [(str(p), p.stat().st_size) for p in tmp_path.rglob("*.wandb")], None)
            finally:
                src.close()
        said = [r.getMessage() for r in caplog.records if "compiled run-file reader" in r.getMessage()]
        assert len(said) == (1 if numpy_loops or not fast.COMPILED else 0), said
        if said:
            assert "pip install ." in said[0] and "build_ext --inplace" in said[0]


@pytest.mark.parametrize("name", READERS)
def test_a_piece_of_a_record_is_never_read_as_a_record_start(tmp_path: Path, name: str) -> None:
    """A record's second piece can start with any bytes, such as a `num` field, a history tag
    and a length that runs on: only whole records are looked at that way (the numpy loops once
    declined such files, about one file in twenty of the test writer's)."""
    import zlib

    from wandb2numpy.sources.runfolders.wire import FIRST, HEADER, LAST

    def record(kind: int, data: bytes) -> bytes:
        return struct.pack("<IHB", zlib.crc32(data, zlib.crc32(bytes([kind]))), len(data), kind) + data

    second = b"\x08\x01\x12\xff\xff\xff\xff\xff\xff\x01" + b"x" * 50  # looks like num, history, a long length
    first_len = BLOCK - len(HEADER) - 7
    payload = b"y" * (first_len - 7) + second  # an unknown Record field (31) in two pieces: the second
    # begins with `second` (2 bytes of num and field, 3 of length before the payload)
    n, length = len(payload), b""
    while n >= 0x80:
        length, n = length + bytes([0x80 | n & 0x7F]), n >> 7
    body = b"\x08\x05" + b"\xfa\x01" + length + bytes([n]) + payload
    assert body[first_len:].startswith(second)
    data = HEADER + record(FIRST, body[:first_len]) + record(LAST, body[first_len:])
    path = tmp_path / "run-piece.wandb"
    path.write_bytes(data)
    with reader(name):
        got = parse_file(path)
    assert got.fast and not got.damage.damaged
    same(got, parse_file(path, fast_reader=False))
