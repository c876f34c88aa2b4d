"""Reading wandb-core's log for the 429s it retries by itself: pure file handling, no server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from wandb2numpy.wandb.corelog import RETRY_MESSAGE, CoreLogWatcher, find_core_log, refusal_times


def _line(**rec: object) -> str:
    return json.dumps({"time": "2026-11-26T05:52:41Z", "level": "INFO", **rec}, separators=(",", ":"))


START = _line(msg="main: starting server", pid=4242, detached=False)
REFUSED = _line(msg=RETRY_MESSAGE, status=429, url="http://127.0.0.1:1/graphql", body="rate limit exceeded")
UNAVAILABLE = _line(msg=RETRY_MESSAGE, status=503, url="http://127.0.0.1:1/graphql", body="x")


def test_refusals_counts_only_retried_429s() -> None:
    other = _line(msg="connection: closing", status=429)
    assert len(refusal_times([START, REFUSED, UNAVAILABLE, other, REFUSED, "not json 429 " + RETRY_MESSAGE], 0.0)) == 2


def test_refusal_times_are_the_lines_own_stamps() -> None:
    """Go writes nanoseconds and trims trailing zeros; an unreadable stamp gives the default."""
    lines = [
        _line(msg=RETRY_MESSAGE, status=429, time="2026-12-02T22:50:36.330849384Z"),
        _line(msg=RETRY_MESSAGE, status=429, time="2026-12-02T22:50:36.5Z"),
        _line(msg=RETRY_MESSAGE, status=429, time="2026-12-02T23:50:37+01:00"),
        _line(msg=RETRY_MESSAGE, status=429, time="yesterday"),
        UNAVAILABLE,
    ]
    base = 1796251836.0  # 2026-12-02T22:50:36Z
    got = refusal_times(lines, -1.0)
    assert got[:3] == [pytest.approx(base + 0.330849), pytest.approx(base + 0.5), pytest.approx(base + 1.0)]
    assert got[3:] == [-1.0]


def test_find_core_log_picks_the_file_of_this_process(tmp_path: Path) -> None:
    ours = tmp_path / "core-debug-20261126_055240.log"
    theirs = tmp_path / "core-debug-20261126_055241.log"
    ours.write_text(START + "\n")
    theirs.write_text(START.replace("4242", "4243") + "\n")
    assert find_core_log(4242, 0.0, [tmp_path]) == ours
    assert find_core_log(4243, 0.0, [tmp_path]) == theirs
    assert find_core_log(4244, 0.0, [tmp_path]) is None
    assert find_core_log(4242, time.time() + 60, [tmp_path]) is None  # too old to be ours
    assert find_core_log(4242, 0.0, [tmp_path / "missing"]) is None


def test_watcher_reports_new_refusals_only(tmp_path: Path) -> None:
    path = tmp_path / "core-debug-20261126_055240.log"
    path.write_text(START + "\n" + REFUSED + "\n")  # a refusal from before the watcher started
    watcher = CoreLogWatcher(pid=4242, dirs=[tmp_path]).start()
    try:
        deadline = time.monotonic() + 5
        while watcher.path is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        with path.open("a") as f:
            f.write(REFUSED + "\n" + UNAVAILABLE + "\n" + REFUSED[:20])  # the last line unfinished
            f.flush()
            time.sleep(0.1)
            first = watcher.drain()
            f.write(REFUSED[20:] + "\n")
        deadline = time.monotonic() + 5
        second: list[float] = []
        while not second and time.monotonic() < deadline:
            time.sleep(0.01)
            second = watcher.drain()
    finally:
        watcher.stop()
    assert watcher.path == path
    assert len(first) == 1 and len(second) == 1
    assert watcher.drain() == []


def test_watcher_without_a_log_gives_up_quietly(tmp_path: Path) -> None:
    watcher = CoreLogWatcher(pid=4242, dirs=[tmp_path])
    watcher.FIND_FOR_S = 0.1
    watcher.start()
    time.sleep(0.3)
    watcher.stop()
    assert watcher.path is None and watcher.drain() == []
