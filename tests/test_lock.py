"""The output lock cannot be held twice, even when a holder releases it between a newcomer's
`open` and its `flock` (the race of issue 19: the released file was deleted, the late process locked
the deleted file while a third created and locked a new one)."""

from __future__ import annotations

import fcntl
import threading
from pathlib import Path
from typing import Any

import pytest

from wandb2numpy.errors import OutputError, OutputLockedError
from wandb2numpy.output import lock as lock_module
from wandb2numpy.output.lock import LOCK_NAME, output_lock


class _DelayedFlock:
    """`fcntl` for the lock module, whose `flock` waits in the thread named "late" until told to
    go on: the late process has opened the lock file but not locked it yet."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.go = threading.Event()
        self.LOCK_EX = fcntl.LOCK_EX
        self.LOCK_NB = fcntl.LOCK_NB

    def flock(self, fd: int, op: int) -> Any:
        if threading.current_thread().name == "late" and not self.go.is_set():
            self.opened.set()
            assert self.go.wait(10)
        return fcntl.flock(fd, op)


def test_a_delayed_flock_never_makes_a_second_holder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    delayed = _DelayedFlock()
    monkeypatch.setattr(lock_module, "fcntl", delayed)
    outcome: dict[str, object] = {}

    def late() -> None:
        try:
            with output_lock(out):
                outcome["late"] = "held"
        except OutputLockedError as exc:
            outcome["late"] = exc

    first = output_lock(out)
    first.__enter__()  # holder 1
    thread = threading.Thread(target=late, name="late")
    thread.start()
    assert delayed.opened.wait(10)  # the late one opened the file holder 1 locked
    first.__exit__(None, None, None)  # holder 1 releases (and deletes the file)
    with output_lock(out):  # a newcomer takes the lock on a new file
        delayed.go.set()  # now the late one locks what it opened
        thread.join(10)
        assert not thread.is_alive()
        assert isinstance(outcome["late"], OutputLockedError), outcome  # one holder: the newcomer
    assert not (out / LOCK_NAME).exists()


def test_the_lock_is_taken_again_after_release(tmp_path: Path) -> None:
    for _ in range(3):
        with output_lock(tmp_path), pytest.raises(OutputLockedError), output_lock(tmp_path):
            pass


def test_a_folder_where_the_lock_file_goes_is_one_line(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).mkdir()
    with pytest.raises(OutputError, match="cannot create the lock file"), output_lock(tmp_path):
        pass
