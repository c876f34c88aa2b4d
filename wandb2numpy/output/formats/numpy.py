"""``output_data_type: numpy``: one ``.npy`` per array, every bit kept (NaN payloads included)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..._fs import sync_file
from ._base import PerFieldFormat


class NumpyFormat(PerFieldFormat):
    name = "numpy"
    values_suffix = ".npy"
    steps_suffix = ".steps.npy"
    description = "<field>.npy and <field>.steps.npy: float64 arrays, one row per run"

    def write_array(self, path: Path, array: np.ndarray, ids: Sequence[str], *, steps: bool) -> None:
        # "xb": a second file mapping to the same path (case-insensitive file systems) fails loudly.
        with open(path, "xb") as f:
            np.save(f, array, allow_pickle=False)  # writes straight from the array buffer
            sync_file(f)

    def write_axis(self, path: Path, x: np.ndarray) -> None:
        self.write_array(path, x, [], steps=True)  # 1-D, as np.linspace gives it

    def read_axis(self, path: Path) -> np.ndarray:
        return self.read_array(path)

    def read_array(self, path: Path) -> np.ndarray:
        array: np.ndarray = np.load(path, allow_pickle=False)
        return array
