"""Worker processes that decode run files: `python -c` children fed jobs over pipes.

Not `multiprocessing`: its start methods other than fork import the caller's `__main__` again in
every worker (a script that calls `export` without an `if __name__ == "__main__"` guard would run
again in each, or fail), and fork copies a process that runs anyio's worker threads, whose locks a
child may inherit held. These children start clean, import only the decoder (not the package's
`__init__`, which loads the config and client layers: less time and memory per worker), and read
one pickled job at a time from stdin, answering on stdout.
"""

from __future__ import annotations

import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["WorkerError", "WorkerPool"]

_LEN = struct.Struct("<Q")
_HERE = Path(__file__).resolve()
_SHELLS = {"wandb2numpy": str(_HERE.parents[2]), "wandb2numpy.sources": str(_HERE.parents[1])}

# Run in each child: make the two parent packages empty shells (their submodules still import
# from the real folders), so importing the decoder does not run wandb2numpy/__init__.py.
_BOOT = f"""
import sys, types
for name, folder in {_SHELLS!r}.items():
    shell = types.ModuleType(name)
    shell.__path__ = [folder]
    sys.modules[name] = shell
from wandb2numpy.sources.runfolders.workers import serve
serve()
"""


class WorkerError(RuntimeError):
    """A worker process died or answered something unreadable."""


def _send(stream: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LEN.pack(len(data)))
    stream.write(data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    head = stream.read(_LEN.size)
    if len(head) < _LEN.size:
        raise EOFError
    (n,) = _LEN.unpack(head)
    data = stream.read(n)
    if len(data) < n:
        raise EOFError
    return pickle.loads(data)


def serve() -> None:
    """A worker's loop: (function name, args) in, (True, result) or (False, exception) out."""
    from . import decode

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but answers on the pipe
    while True:
        try:
            name, args = _receive(stdin)
        except EOFError:
            sys.stderr.flush()
            os._exit(0)  # no interpreter teardown: the caller may be waiting for us to go
        try:
            answer: tuple[bool, Any] = (True, getattr(decode, name)(*args))
        except Exception as exc:  # noqa: BLE001 - sent back, raised in the caller
            answer = (False, exc)
        try:
            _send(stdout, answer)
        except Exception as exc:  # noqa: BLE001 - an exception that does not pickle
            _send(stdout, (False, RuntimeError(f"{type(exc).__name__}: {exc}")))


class _Worker:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _BOOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def call(self, name: str, args: tuple[Any, ...]) -> tuple[bool, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            _send(self.proc.stdin, (name, args))
            ok, value = _receive(self.proc.stdout)
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            code = self.proc.poll()
            raise WorkerError(
                f"a decoding worker process {'exited with ' + str(code) if code is not None else 'failed'} ({exc!r})"
            ) from None
        return bool(ok), value

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


class WorkerPool:
    """`size` worker processes, started on first use and kept until `close`."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()

    def map(
        self, name: str, jobs: Sequence[tuple[Any, ...]], *, cancelled: Callable[[], bool] = lambda: False
    ) -> list[Any]:
        """`decode.<name>(*job)` for every job, spread over the workers (longest first is the
        caller's business: jobs are taken in order); results in job order. An exception a job
        raised is raised here (the first, by job order), after the other jobs finished."""
        with self._lock:
            while len(self._workers) < min(self.size, len(jobs)):
                self._workers.append(_Worker())
            workers = self._workers[: min(self.size, len(jobs))]
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(len(jobs)):
            todo.put(i)
        results: list[Any] = [None] * len(jobs)
        errors: dict[int, BaseException] = {}

        def drain(worker: _Worker) -> None:
            while not cancelled():
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    ok, value = worker.call(name, jobs[i])
                except WorkerError as exc:
                    errors[i] = exc
                    return
                if ok:
                    results[i] = value
                else:
                    errors[i] = value

        threads = [threading.Thread(target=drain, args=(w,), daemon=True) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            dead = [w for w in workers if w.proc.poll() is not None]
            if dead:
                with self._lock:
                    self._workers = [w for w in self._workers if w not in dead]
            raise errors[min(errors)]
        if cancelled():
            raise WorkerError("decoding was cancelled")
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            raise WorkerError(f"{len(missing)} decoding job(s) were not done")
        return results

    def close(self) -> None:
        with self._lock:
            workers, self._workers = self._workers, []
        for w in workers:  # all told first, so they exit side by side
            try:
                if w.proc.stdin is not None:
                    w.proc.stdin.close()
            except OSError:
                pass
        for w in workers:
            w.close()
