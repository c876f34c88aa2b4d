"""A server that accepts connections and never answers: the hung backend behind a live socket.

Kept apart from the W&B-compatible server because it must not speak HTTP at all; tests of the
start-up diagnosis and of interrupts against a silent server start one. `python -m
wandb2numpy.testing.silent` prints its URL and serves until stopped (for tests of other processes).
"""

from __future__ import annotations

import socket
import sys
import threading
from types import TracebackType


class SilentServer:
    """Listens on 127.0.0.1, accepts every connection, reads what comes and never replies."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._sock = socket.create_server((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="silent-server", daemon=True)
        self.accepted = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SilentServer:
        self._thread.start()
        return self

    def _serve(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            conn.setblocking(False)  # what the client sends is left unread: it never gets an answer
            self._conns.append(conn)
            self.accepted += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for conn in self._conns:
            conn.close()
        self._sock.close()

    def __enter__(self) -> SilentServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main() -> int:
    server = SilentServer().start()
    print(server.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
