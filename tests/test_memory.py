"""_memory: glibc's mmap threshold is fixed once per process, unless the user says not to."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

CODE = "from wandb2numpy import _memory; print(_memory.map_large_blocks(), _memory.map_large_blocks())"


def _run(**env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, timeout=60, env={**os.environ, **env}
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_threshold_is_set_once_on_glibc() -> None:
    assert _run(WANDB2NUMPY_MALLOC="") == "True True"


def test_users_can_keep_the_default_malloc() -> None:
    assert _run(WANDB2NUMPY_MALLOC="default") == "False False"
