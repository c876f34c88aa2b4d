"""Value texts (value_json) as numbers, for the readers of `decode` and `fast`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["ARROW_FROM", "NONFINITE", "floats", "looks_numeric", "parse_floats"]

NONFINITE = {b"NaN": math.nan, b"Infinity": math.inf, b"-Infinity": -math.inf}

# From this many values on, texts are parsed by Arrow's cast (fast_float: correctly rounded, as
# float() is, and five times faster); below it, importing pyarrow would cost more than it saves.
ARROW_FROM = 256


def parse_floats(vals: Sequence[bytes]) -> np.ndarray:
    """float() of every text, rounding exactly as float() does; ValueError if one is no number."""
    if len(vals) >= ARROW_FROM:
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            got = pc.cast(pa.array(vals, pa.binary()).cast(pa.string()), pa.float64())
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError):
            raise ValueError("not all numbers") from None
        arr: np.ndarray = got.to_numpy(zero_copy_only=False)
        return arr
    return np.fromiter(map(float, vals), np.float64, len(vals))


def floats(vals: Sequence[bytes]) -> np.ndarray | None:
    """value_json texts as float64 when all are JSON numbers or NaN/±Infinity, else None."""
    try:
        arr = parse_floats(vals)
    except ValueError:
        return None
    if not np.isfinite(arr).all():
        # the parsers also read "inf", "nan" and digits past float64's range: keep only what
        # wandb writes for non-finite values
        bad = np.flatnonzero(~np.isfinite(arr))
        if any(vals[i] not in NONFINITE for i in bad.tolist()):
            return None
    return arr


def looks_numeric(vals: Sequence[bytes]) -> bool:
    """Whether every value is a number, NaN, ±Infinity or a bool, judged by its first byte: for
    keys nobody asked for, whose kind is all the listing needs (a byte search, not a parse)."""
    joined = b"\x00" + b"\x00".join(vals)
    return not (b'\x00"' in joined or b"\x00{" in joined or b"\x00[" in joined or b"\x00n" in joined)
