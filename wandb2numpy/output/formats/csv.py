"""``output_data_type: csv``: one CSV per array, a header ``id,0,1,...`` and one line per run.

Values are written as the shortest text that parses back to the same float (``nan``, ``inf`` and
``-0.0`` included), whole steps as integers; so reading a file back gives the arrays that were
written, except for NaN payloads.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ..._fs import sync_file
from ._base import PerFieldFormat

# Values per formatted CSV chunk: bounds the temporary Python floats and strings to a few MB
# however wide a row is.
CSV_CHUNK_VALUES = 1 << 16


def _csv_cell(text: str) -> str:
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _format_values(chunk: np.ndarray) -> Iterable[str]:
    # repr(float) is the shortest string that parses back to the same bits: nan, inf, -0.0 too.
    return map(repr, chunk.tolist())


def _format_steps(chunk: np.ndarray) -> Iterable[str]:
    """Whole steps as integers (``12``, not ``12.0``); anything else exactly like values."""
    with np.errstate(invalid="ignore"):
        whole = (
            np.isfinite(chunk)
            & (chunk == np.trunc(chunk))
            & (np.abs(chunk) < 2.0**53)
            & ~((chunk == 0) & np.signbit(chunk))
        )
    if whole.all():
        return map(str, chunk.astype(np.int64).tolist())
    return [str(int(v)) if w else repr(v) for v, w in zip(chunk.tolist(), whole.tolist())]


def _chunks(width: int) -> Iterator[tuple[int, int]]:
    for lo in range(0, width, CSV_CHUNK_VALUES):
        yield lo, min(lo + CSV_CHUNK_VALUES, width)


class CsvFormat(PerFieldFormat):
    name = "csv"
    values_suffix = ".csv"
    steps_suffix = ".steps.csv"
    description = "<field>.csv and <field>.steps.csv: header id,0,1,..., one line per run"

    def write_array(self, path: Path, array: np.ndarray, ids: Sequence[str], *, steps: bool) -> None:
        fmt = _format_steps if steps else _format_values
        width = array.shape[1]
        with open(path, "x", encoding="utf-8", errors="backslashreplace", newline="") as f:
            f.write("id")
            for lo, hi in _chunks(width):
                f.write(",")
                f.write(",".join(map(str, range(lo, hi))))
            f.write("\n")
            for run_id, row in zip(ids, array):
                f.write(_csv_cell(run_id))
                for lo, hi in _chunks(width):
                    f.write(",")
                    f.write(",".join(fmt(row[lo:hi])))
                f.write("\n")
            sync_file(f)

    def read_array(self, path: Path) -> np.ndarray:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        width = len(rows[0]) - 1 if rows else 0
        # float() reads back every spelling the writer uses: "nan", "inf", "-0.0", "12", "1e+300".
        values = [[float(x) for x in row[1:]] for row in rows[1:]]
        return np.array(values, dtype=np.float64).reshape(len(values), width)
