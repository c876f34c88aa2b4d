"""The HTTP layer: a threaded HTTP/1.1 server that applies auth and faults, then the protocol.

Emulated routes are `POST /graphql` and parquet file GETs; `/sdk/otel/...` gets the 404 the
client tolerates. GraphQL answers follow the latency model as a whole (base latency plus a cost per
history row, building the answer included); file GETs follow storage: first bytes after the base
latency, then the body at `file_mb_per_s`. Control routes (`/_stats`, `/_faults`, `/_load`, `/_health`) never count in the
stats and never get faults, so a test can always observe and reconfigure a misbehaving server.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import socketserver
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from .faults import HISTORY_OPS, Decision
from .protocol import Reply, batch_history_field, error_reply, parse_request, unknown_field_reply

if TYPE_CHECKING:
    from .handle import LocalServer

log = logging.getLogger(__name__)


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: LocalServer) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), a DNS lookup that can stall for seconds.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up, and connections reset on purpose, are not news.

        Nothing is logged: handler threads outlive tests, and a test that attached (then closed)
        a handler on the root logger would otherwise get errors from this server's threads.
        """

    def drop_connections(self) -> None:
        """Closes every open keep-alive connection, as a server that goes away would."""
        with self.conn_lock:
            conns = list(self.connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.conn_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.conn_lock:
            self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        """Per-request lines are not logged; `LocalServer.request_log()` has them."""

    # ---- plumbing --------------------------------------------------------------------------

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        bytes_per_s: float = 0.0,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        if bytes_per_s <= 0:
            self.wfile.write(body)
            return
        # Storage streams: the client sees the first bytes at once and the rest at the rate, so
        # a read timeout between bytes does not fire, a deadline on the whole body does.
        self.wfile.flush()
        chunk = max(4096, int(bytes_per_s / 50))  # about 20 ms of data per write
        view = memoryview(body)
        started = time.monotonic()
        for offset in range(0, len(body), chunk):
            wait = started + offset / bytes_per_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self.wfile.write(view[offset : offset + chunk])
            self.wfile.flush()
        wait = started + len(body) / bytes_per_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def _send_json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode())

    def _reset(self, reply: Reply, mode: str) -> None:
        """Closes with RST (SO_LINGER 0): mid-body ("body") or before any byte ("connect")."""
        try:
            if mode == "body":
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body[: len(reply.body) // 2])
                self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            self.close_connection = True
            self.connection.close()

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                _, _, key = base64.b64decode(token).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return key == self.server.owner.api_key
        if scheme.lower() == "bearer":
            return token == self.server.owner.api_key
        return False

    def _base_url(self) -> str:
        return f"http://{self.headers.get('Host') or self.server.owner.base_url.split('//', 1)[1]}"

    # ---- routes ----------------------------------------------------------------------------

    def do_POST(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        body = self._body()
        if path == "/graphql":
            self._emulated(body)
        elif path.startswith("/_"):
            self._control("POST", path, body)
        else:
            self._send(404, b'{"error":"not found"}')

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        if path.startswith("/_"):
            self._control("GET", path, b"")
        elif path.startswith("/files/"):
            self._file(path)
        else:
            self._send(404, b'{"error":"not found"}')

    do_HEAD = do_GET

    def _control(self, method: str, path: str, body: bytes) -> None:
        owner = self.server.owner
        try:
            if path == "/_stats" and method == "GET":
                return self._send_json(200, owner.stats())
            if path == "/_stats/reset" and method == "POST":
                owner.reset_stats()
                return self._send_json(200, {"ok": True})
            if path == "/_faults":
                if method == "POST":
                    changes = json.loads(body or b"{}")
                    return self._send_json(200, owner.set_faults(**changes).to_json())
                return self._send_json(200, owner.faults.settings.to_json())
            if path == "/_load" and method == "POST":
                owner.load(json.loads(body))
                return self._send_json(200, {"ok": True})
            if path == "/_health":
                return self._send_json(200, {"ok": True, "base_url": owner.base_url})
            if path == "/_requests":
                return self._send_json(200, owner.request_log())
        except (ValueError, TypeError, KeyError) as exc:
            return self._send_json(400, {"error": str(exc)})
        self._send_json(404, {"error": f"no control route {method} {path}"})

    def _emulated(self, body: bytes) -> None:
        owner = self.server.owner
        try:
            req = parse_request(body)
        except ValueError as exc:
            return self._send(400, error_reply(f"bad request: {exc}").body)
        batch = batch_history_field(req.query)
        history = batch is not None or req.op in HISTORY_OPS
        run_id = req.run_id if history and batch is None else None
        entry = {"op": req.op, "variables": req.variables, "t": time.monotonic()}
        owner.request_log_append(entry)

        def produce() -> Reply:
            if batch is not None and not owner.faults.settings.batch_history:
                return unknown_field_reply(req.query, batch, "sampledHistory", "Run")
            return owner.protocol.handle(req, self._base_url())

        page_runs = owner.protocol.page_run_ids(req) if batch is not None else ()
        entry["status"] = self._serve(req.op, run_id, produce, history=history, page_runs=page_runs)
        entry["t_end"] = time.monotonic()

    def _file(self, path: str) -> None:
        owner = self.server.owner
        exports = owner.parquet
        if exports is None:
            return self._send(404, b"not found", "text/plain")
        run_id = unquote(path.rsplit("/", 1)[-1].removesuffix(".parquet"))
        rng = self.headers.get("Range")
        owner.request_log_append(
            {
                "op": "ParquetFile",
                "variables": {"path": path, "range": rng, "method": self.command},
                "t": time.monotonic(),
            }
        )
        self._serve("ParquetFile", run_id, lambda: exports.serve(path, rng))

    def _serve(
        self,
        op: str,
        run_id: str | None,
        produce: Callable[[], Reply],
        *,
        history: bool | None = None,
        page_runs: Iterable[str] = (),
    ) -> int:
        """Counts, authenticates, injects faults, then answers with `produce()`'s reply.

        The stats are updated before the first byte goes out, so a client that has its answer
        always finds the request counted. Returns the status sent (0: connection reset).
        """
        owner = self.server.owner
        owner.counters.begin(op, run_id, history=history, page_runs=page_runs)
        accounted = False
        status = 500
        try:
            reply, decision = self._answer(op, run_id, produce, history, page_runs)
            reset = decision is not None and decision.reset
            nbytes = len(reply.body)
            status = 0 if reset else reply.status
            owner.counters.end(status, rows=reply.rows, nbytes=nbytes, decision=decision, op=op)
            accounted = True
            if reset:
                self._reset(reply, owner.faults.settings.reset_mode)
            else:
                rate = owner.faults.settings.file_mb_per_s * 1e6 if op == "ParquetFile" else 0.0
                self._send(reply.status, reply.body, reply.content_type, reply.headers, bytes_per_s=rate)
        except OSError:
            self.close_connection = True
        except Exception as exc:  # a server bug: answer 500 rather than leave the client hanging
            log.exception("local W&B server failed on %s", op)
            self._send(500, error_reply(f"local W&B server error in {op}: {exc!r}", 500).body)
        finally:
            if not accounted:
                owner.counters.end(500)
        return status

    def _answer(
        self,
        op: str,
        run_id: str | None,
        produce: Callable[[], Reply],
        history: bool | None = None,
        page_runs: Iterable[str] = (),
    ) -> tuple[Reply, Decision | None]:
        owner = self.server.owner
        if op != "ParquetFile" and not self._authorized():
            return error_reply("local W&B server: invalid API key", 401), None
        started = time.monotonic()
        decision = owner.faults.decide(op, run_id, history=history, page_runs=page_runs)
        if decision.retry_after is not None:
            body = b'{"errors":[{"message":"rate limit exceeded"}]}'
            return Reply(status=429, body=body, headers={"Retry-After": str(decision.retry_after)}), decision
        if decision.status is not None:
            time.sleep(decision.delay_s)
            return Reply(status=decision.status, body=b'{"errors":[{"message":"injected server error"}]}'), decision
        reply = produce()
        # The latency model is the whole answer time: building the answer counts toward it, so one
        # Python process encoding many answers at once does not add to what the model says. A
        # file's rows cost nothing here: storage knows bytes, which `_send` paces.
        per_row_s = 0.0 if op == "ParquetFile" else decision.per_row_s
        left = started + decision.delay_s + per_row_s * reply.rows - time.monotonic()
        if left > 0:
            time.sleep(left)
        return reply, decision


class RequestLog:
    """The last few thousand (op, variables) pairs, for tests and for learning the client."""

    def __init__(self, maxlen: int = 5000) -> None:
        self._items: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def append(self, item: dict[str, Any]) -> None:
        with self._lock:
            self._items.append(item)

    def items(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
