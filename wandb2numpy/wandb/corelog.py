"""Early word of rate limiting: the 429 answers wandb-core retries by itself, read from its log.

wandb-core retries a 429 once on its own, after `Retry-After`, before Python hears of it, and the
public API reports nothing about it. A call that was refused and then accepted only looks a second
slower. But wandb-core writes a line to its own debug log the moment it decides to retry:

    {"time": ..., "level": "INFO", "msg": "api: retrying HTTP error", "status": 429, ...}

Reading those lines tells the rate gate about a refusal within a few milliseconds instead of a
second or more later, which is what lets the first burst of calls stop at the server's limit. It
is an accelerator only: if the log is not found, or its format changes, nothing is reported and
the gate falls back to what it sees itself (visible 429s, slow calls). Nothing is written.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)

RETRY_MESSAGE = "api: retrying HTTP error"


def log_dirs() -> list[Path]:
    """Where wandb-core 0.31 writes `core-debug-*.log`: `<cache>/wandb/logs`, the cache being
    `WANDB_CACHE_DIR` if set, else the user's cache folder."""
    dirs: list[Path] = []
    cache = os.environ.get("WANDB_CACHE_DIR")
    if cache:
        dirs.append(Path(cache) / "wandb" / "logs")
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg) if xdg else Path.home() / ".cache"
        dirs.append(base / "wandb" / "logs")
    return dirs


def find_core_log(pid: int, since: float, dirs: Iterable[Path] | None = None) -> Path | None:
    """The log of the wandb-core started by process `pid`: its first line names the parent pid."""
    needle = f'"pid":{pid},'
    candidates: list[tuple[float, Path]] = []
    for d in dirs if dirs is not None else log_dirs():
        try:
            for p in d.glob("core-debug-*.log"):
                mtime = p.stat().st_mtime
                if mtime >= since:
                    candidates.append((mtime, p))
        except OSError:
            continue
    for _, p in sorted(candidates, reverse=True):
        try:
            with p.open("r", encoding="utf-8", errors="replace") as f:
                head = f.read(2000)
        except OSError:
            continue
        if needle in head:
            return p
    return None


def refusal_times(lines: Iterable[str], default: float) -> list[float]:
    """When (Unix time, from each line's own stamp) wandb-core was refused, for every line that
    reports a 429 it is about to retry; `default` where a stamp cannot be read.

    The stamp, not the moment the line is read, is what the gate needs: on a starved machine the
    line is read a few tenths of a second late, and every call started in between would otherwise
    count as one that got through."""
    out: list[float] = []
    for line in lines:
        if RETRY_MESSAGE not in line or "429" not in line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("msg") == RETRY_MESSAGE and rec.get("status") == 429:
            out.append(_stamp(rec.get("time"), default))
    return out


def _stamp(text: object, default: float) -> float:
    """wandb-core's RFC 3339 stamp ("2026-12-02T22:50:36.330849384Z") as Unix time, to the
    microsecond."""
    if not isinstance(text, str):
        return default
    m = _STAMP.match(text)
    if m is None:
        return default
    micro = ((m.group(2) or ".")[1:] + "000000")[:6]  # Go trims trailing zeros; Python 3.10 wants six digits
    try:
        when = datetime.fromisoformat(f"{m.group(1)}.{micro}{m.group(3).replace('Z', '+00:00')}")
    except ValueError:
        return default
    return when.timestamp()


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


class CoreLogWatcher:
    """A daemon thread that tails this process's wandb-core log and queues the time of every 429
    wandb-core retries by itself. The gate drains the queue from the event loop (`drain`), so no
    state is shared across threads but a deque."""

    POLL_S = 0.02
    FIND_FOR_S = 5.0

    def __init__(self, pid: int | None = None, dirs: Iterable[Path] | None = None) -> None:
        self.pid = pid if pid is not None else os.getpid()
        self.dirs = list(dirs) if dirs is not None else None
        self.path: Path | None = None
        self._events: deque[float] = deque()
        self._stop = threading.Event()
        self._since = time.time() - 60.0
        self._thread = threading.Thread(target=self._run, name="wandb2numpy-corelog", daemon=True)

    def start(self) -> CoreLogWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)

    def drain(self) -> list[float]:
        """Monotonic times of the refusals seen since the last call: when wandb-core was refused,
        by its log's stamps, not when the lines were read."""
        out = []
        while self._events:
            out.append(self._events.popleft())
        return out

    def _run(self) -> None:
        deadline = time.monotonic() + self.FIND_FOR_S
        while self.path is None and not self._stop.is_set():
            self.path = find_core_log(self.pid, self._since, self.dirs)
            if self.path is None:
                if time.monotonic() > deadline:
                    log.debug("wandb-core's log not found: 429s it retries are seen late")
                    return
                self._stop.wait(0.05)
        if self.path is None:
            return
        try:
            with self.path.open("r", encoding="utf-8", errors="replace") as f:
                f.seek(0, os.SEEK_END)  # wandb-core lives as long as the process: earlier exports' lines are not ours
                pending = ""
                while not self._stop.is_set():
                    chunk = f.read()
                    if not chunk:
                        self._stop.wait(self.POLL_S)
                        continue
                    pending += chunk
                    lines = pending.split("\n")
                    pending = lines.pop()  # an unfinished last line waits for the rest
                    now, wall = time.monotonic(), time.time()
                    for at in refusal_times(lines, wall):
                        self._events.append(now - max(0.0, wall - at))  # on the monotonic clock, never ahead
        except OSError as exc:
            log.debug("reading wandb-core's log stopped: %s", exc)
