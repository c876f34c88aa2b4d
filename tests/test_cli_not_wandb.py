"""Addresses that are not a W&B API get their own one-line diagnosis with the URL, in seconds
(issue 19, item 2): a web server's HTML 404, an empty 404, an HTML page with 200, a redirect to a
login page, TLS spoken to plain HTTP and plain HTTP spoken to TLS; and a key of the wrong shape is
said to be one, not "refused by the server". The fake servers are plain `http.server` threads on
127.0.0.1. The bound is a hang guard: these took 74-85 s of retries, or named the key."""

from __future__ import annotations

import http.server
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wandb2numpy.cli import main

BOUND_S = 10.0
KEY = "k" * 40


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.hits += 1  # type: ignore[attr-defined]
        mode: str = self.server.mode  # type: ignore[attr-defined]
        headers: dict[str, str] = {}
        if mode == "html404":
            status, body, headers = 404, b"<html><body>Not Found</body></html>", {"Content-Type": "text/html"}
        elif mode == "empty404":
            status, body = 404, b""
        elif mode == "html503":
            status, body, headers = 503, b"<html>502 Bad Gateway</html>", {"Content-Type": "text/html"}
        elif mode == "json401":
            status, body, headers = 401, b'{"errors": [{"message": "bad key"}]}', {"Content-Type": "application/json"}
        elif mode == "html200":
            status, body, headers = 200, b"<!doctype html><title>Portal</title>", {"Content-Type": "text/html"}
        elif self.path.startswith("/login"):  # redirect
            status, body, headers = 200, b"<html>sign in</html>", {"Content-Type": "text/html"}
        else:
            status, body, headers = 302, b"", {"Location": "/login?next=/graphql"}
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


def _serve(mode: str, tls: ssl.SSLContext | None = None) -> http.server.ThreadingHTTPServer:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.mode = mode  # type: ignore[attr-defined]
    srv.hits = 0  # type: ignore[attr-defined]
    if tls is not None:
        srv.socket = tls.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[Any]:
    started: list[http.server.ThreadingHTTPServer] = []

    def start(mode: str, tls: ssl.SSLContext | None = None) -> str:
        srv = _serve(mode, tls)
        started.append(srv)
        return f"127.0.0.1:{srv.server_address[1]}"

    start.servers = started  # type: ignore[attr-defined]
    yield start
    for srv in started:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def tls_context(tmp_path: Path) -> ssl.SSLContext:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(f"e: {{entity: demo, project: p, fields: [a], output_path: {tmp_path / 'out'}}}\n")
    return path


def _run(tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, float, str]:
    started = time.monotonic()
    code = main([str(_config(tmp_path)), "--base-url", url])
    took = time.monotonic() - started
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert not (tmp_path / "out").exists()
    return code, took, lines[0]


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("html404", "answered HTTP 404 with an HTML page, not the W&B API"),
        ("empty404", "answered HTTP 404 with an empty body, not the W&B API"),
        ("html200", "answered HTTP 200 with an HTML page, not the W&B API"),
        ("redirect", "redirects the W&B API to /login?next=/graphql"),
    ],
)
def test_a_server_that_is_not_a_wandb_api_is_named_so(
    fake: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    expected: str,
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    url = "http://" + fake(mode)
    code, took, line = _run(tmp_path, url, capsys)
    assert code == 1
    assert line == f"wandb2numpy: error: {url} {expected}" + line.split(expected, 1)[1]
    assert "API key" not in line
    assert took < BOUND_S


def test_https_to_a_plain_http_server(
    fake: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    where = fake("html404")
    code, took, line = _run(tmp_path, f"https://{where}", capsys)
    assert code == 1
    assert f"https://{where} speaks plain HTTP, not HTTPS: use http://{where}" in line
    assert took < BOUND_S


def test_http_to_a_tls_server(
    fake: Any,
    tls_context: ssl.SSLContext,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    where = fake("html404", tls_context)
    code, took, line = _run(tmp_path, f"http://{where}", capsys)
    assert code == 1
    assert f"http://{where} speaks HTTPS, not plain HTTP: use https://{where}" in line
    assert took < BOUND_S


def test_a_key_of_the_wrong_shape_is_said_to_be_one(
    fake: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "short")
    url = "http://" + fake("html404")
    code, took, line = _run(tmp_path, url, capsys)
    assert code == 1
    assert "API key is not in a valid format" in line and "refused" not in line
    assert fake.servers[0].hits == 0  # checked here, never sent
    assert "short" not in line.replace("shorter", "")
    assert took < BOUND_S


@pytest.mark.parametrize("mode", ["html503", "json401"])
def test_the_probe_leaves_an_unavailable_server_and_a_refused_key_alone(fake: Any, mode: str) -> None:
    """A proxy's error page for a server that is down is the retry policy's business, and a JSON
    refusal is the key check's: neither is 'not the W&B API'."""
    from wandb2numpy.wandb.client import probe_server

    assert probe_server("http://" + fake(mode), 5.0) is None
