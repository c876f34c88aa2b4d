"""The one place that reads wandb's exceptions: which failures are worth retrying (`classify`),
what each means in one line (`describe`, the API key scrubbed), and what a failed first request
says about the address (`probe_server`, `transport_problem`, `silent_server`). wandb 0.31 puts the
HTTP status only in its error text, so the text is what is read. `to_error` turns any of them into
ours, for every caller above this package.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Literal
from urllib.parse import urlsplit

from ..config.defaults import CONNECT_TIMEOUT_S
from ..errors import AuthError, FetchError, Wandb2NumpyError

Verdict = Literal["auth", "rate_limit", "transient", "fatal"]


class ParquetFileError(Exception):
    """A parquet file that could not be read: the host's error status, a failed connection
    (`transient`), a request that ran out of time (`timed_out`, with the bytes that had arrived:
    not transient, since the same request would time out again; the caller asks for less), or a
    file that is not what it should be."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        *,
        transient: bool = False,
        timed_out: bool = False,
        received: int = 0,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient
        self.timed_out = timed_out
        self.received = received


# --------------------------------------------------------------------------------------------
# Error classification: the single place that reads wandb's exceptions.

# "HTTP 503: ..." from wandb-core's retry loop; "returned error 404: ..." from its answer to a
# request that was not retried.
_STATUS_RE = re.compile(r"(?:HTTP|returned error) (\d{3})")
_TRANSIENT_TEXT = (
    "did not respond in time",
    "timeout",
    "timed out",
    "connection",
    "reset by peer",
    "broken pipe",
    "eof",
    "refused",
    "unexpected end",
    "temporarily unavailable",
    "giving up after",
)


# What the network said before any HTTP answer, in Go's words (wandb-core) and in Python's.
_REFUSED_TEXT = ("connection refused", "errno 111", "actively refused")
_NO_HOST_TEXT = (
    "no such host",
    "name or service not known",
    "nodename nor servname",
    "temporary failure in name resolution",
    "getaddrinfo failed",
    "name resolution",
)

NetworkProblem = Literal["refused", "no_host"]


def network_problem(exc: BaseException) -> NetworkProblem | None:
    """Whether a failure never reached a server: nothing listening, or a host name that does
    not resolve. Mid-export both are worth retrying (a restart, a DNS blip); at start-up they
    almost always mean a wrong address, so `ApiPool` reports them at once."""
    if http_status(exc) is not None:
        return None
    text = " ".join(str(e) for e in _chain(exc)).lower()
    if any(t in text for t in _NO_HOST_TEXT):
        return "no_host"
    if any(t in text for t in _REFUSED_TEXT):
        return "refused"
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """An error and what caused it, innermost last; wandb wraps the useful text several layers deep
    and a cycle (an error raised while handling itself) must not loop forever."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def http_status(exc: BaseException) -> int | None:
    """The HTTP status wandb buried in an error message, looking through the cause chain."""
    for cur in _chain(exc):
        match = _STATUS_RE.findall(str(cur))
        if match:
            return int(match[-1])
    return None


def classify(exc: BaseException) -> Verdict:
    """Decide what a failure means for the retry policy.

    Auth problems and requests the server understood and refused (400, 404, a null project) are
    final; rate limits get the shared back-off; everything that smells of the network is retried.
    """
    from wandb.errors import AuthenticationError

    status = http_status(exc)
    if isinstance(exc, AuthenticationError):
        # wandb reports any failure of the start-up `Viewer` query as an authentication error,
        # a 503 or a dropped connection included: only a refusal of the key is final.
        # Nor is a wandb-core too busy to answer in time, which wandb reports the same way.
        text = " ".join(str(e) for e in _chain(exc)).lower()
        if status in (401, 403) or (status is None and not any(t in text for t in _TRANSIENT_TEXT)):
            return "auth"
    elif isinstance(exc, AuthError):
        return "auth"
    elif isinstance(exc, ParquetFileError):
        # A signed file URL is not our key: a 403 means expired or refused, never "bad API key".
        if exc.status == 429:
            return "rate_limit"
        if exc.status is None:
            return "transient" if exc.transient else "fatal"
        return "transient" if exc.status >= 500 or exc.status in (408, 425) else "fatal"
    elif isinstance(exc, FetchError):
        return "fatal"
    if status is not None:
        if status == 429:
            return "rate_limit"
        if status in (401, 403):
            return "auth"
        if status >= 500 and status != 501:
            return "transient"
        if status in (408, 425):
            return "transient"
        return "fatal"
    text = " ".join(str(e) for e in _chain(exc)).lower()
    if isinstance(exc, (TimeoutError, ConnectionError, OSError)):
        return "transient"
    if any(t in text for t in _TRANSIENT_TEXT):
        return "transient"
    return "fatal"


# Answers that mean the server (or the gateway before it) is unavailable, not that this request
# failed on a working server.
_DOWN_STATUSES = frozenset({429, 502, 503, 504})


def looks_down(exc: BaseException) -> bool:
    """Whether a retried failure looks like the server being unavailable: no HTTP answer at all
    (refused, reset, timed out) or a gateway's 502/503/504 (and 429). A 500 is the server itself
    answering that this request failed: it works, and retrying this request slowly helps no one."""
    status = exc.status if isinstance(exc, ParquetFileError) else http_status(exc)
    return status is None or status in _DOWN_STATUSES


def describe(exc: BaseException, api_key: str | None = None) -> str:
    """A one-line message for logs and summaries, scrubbed of the API key."""
    problem = network_problem(exc)
    if problem is not None:  # wandb repeats the Go error three times in one message
        return f"{type(exc).__name__}: {_PROBLEM_TEXT[problem]}"
    status = http_status(exc)
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    if status is not None and f"HTTP {status}" not in first:
        first = f"HTTP {status}: {first}"
    return scrub(f"{type(exc).__name__}: {first}"[:500], api_key)


_PROBLEM_TEXT: dict[NetworkProblem, str] = {
    "refused": "connection refused (nothing listening at that address)",
    "no_host": "host name not found (DNS lookup failed)",
}

CREDENTIALS_HINT = "set WANDB_API_KEY or run `wandb login`"


# --------------------------------------------------------------------------------------------
# Start-up diagnosis: what a failed first request says about the address, not about the key.

# wandb checks a key's shape before sending it and reports a bad one as an authentication error.
_KEY_FORMAT_TEXT = ("api key must have", "invalid api key format", "api key is empty")
# Go's words (wandb-core) and Python's for TLS spoken to a plain HTTP server.
_TLS_TO_PLAIN_TEXT = (
    "first record does not look like a tls handshake",
    "server gave http response to https client",
    "wrong version number",
    "record layer failure",
    "packet length too long",
)
_CERT_TEXT = ("x509:", "certificate verify failed", "certificate is not valid", "unknown authority")
# A plain HTTP request to a TLS port: the server hangs up on it.
_HUNG_UP_TEXT = ("connection reset", "reset by peer", "eof", "malformed http response", "unexpected end")
_ADDRESS_HINT = "check --base-url or WANDB_BASE_URL; the public service is https://api.wandb.ai"


_TIMEOUT_TEXT = ("timeout", "timed out", "deadline exceeded", "did not respond in time")


def _timed_out(exc: BaseException) -> bool:
    """A request that got no answer in time: probing would only wait as long again."""
    text = " ".join(str(e) for e in _chain(exc)).lower()
    return isinstance(exc, TimeoutError) or any(t in text for t in _TIMEOUT_TEXT)


def key_format_problem(exc: BaseException) -> str | None:
    """wandb's own words when the key's shape is wrong: checked on this machine, never sent."""
    for cur in _chain(exc):
        text = str(cur).strip()
        if any(t in text.lower() for t in _KEY_FORMAT_TEXT):
            detail = text.split(":", 1)[-1].strip() if ":" in text else text
            return (
                f"the W&B API key is not in a valid format ({detail.splitlines()[0][:200]}); it was not sent anywhere"
            )
    return None


def transport_problem(exc: BaseException, url: str) -> str | None:
    """TLS where the server speaks plain HTTP, or a certificate this machine does not trust,
    read from the error text (no request)."""
    text = " ".join(str(e) for e in _chain(exc)).lower()
    scheme = urlsplit(url).scheme
    if any(t in text for t in _TLS_TO_PLAIN_TEXT) and scheme == "https":
        plain = "http://" + url.split("://", 1)[1]
        return f"{url} speaks plain HTTP, not HTTPS: use {plain} ({_ADDRESS_HINT})"
    if any(t in text for t in _CERT_TEXT):
        return f"{url}: the server's TLS certificate is not trusted on this machine ({_ADDRESS_HINT})"
    return None


def probe_server(url: str, timeout: float, exc: BaseException | None = None) -> str | None:
    """One plain request to `url`'s GraphQL endpoint, without the API key, to tell an address that
    is not a W&B API (a web server, a proxy, a login portal, a TLS port spoken to in plain HTTP)
    from a server that refused the key. None: it answers like a GraphQL API (or cannot be told).

    Kept apart from the wandb client on purpose: it runs only after a failed first request, and
    each of its outcomes has one line to say."""
    import requests

    endpoint = url.rstrip("/") + "/graphql"
    try:
        response = requests.post(
            endpoint,
            json={"query": "query Probe { viewer { id } }"},
            timeout=(timeout, timeout),
            allow_redirects=False,
            headers={"User-Agent": "wandb2numpy-probe"},
        )
    except requests.exceptions.SSLError as err:
        probe_exc: BaseException = err
        return transport_problem(probe_exc, url) or f"{url}: TLS failed ({type(err).__name__}); {_ADDRESS_HINT}"
    except requests.RequestException as err:
        text = " ".join(str(e) for e in _chain(err)).lower() + " " + (str(exc).lower() if exc else "")
        if urlsplit(url).scheme == "http" and any(t in text for t in _HUNG_UP_TEXT) and _speaks_tls(url, timeout):
            secure = "https://" + url.split("://", 1)[1]
            return f"{url} speaks HTTPS, not plain HTTP: use {secure} ({_ADDRESS_HINT})"
        return None
    status = response.status_code
    if status >= 500 or status in (408, 425, 429):
        return None  # a proxy's error page for a server that is down says nothing about the address
    body = response.content[:4096]
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if 300 <= status < 400:
        where = response.headers.get("Location", "?")
        return f"{url} redirects the W&B API to {where} (a login page or a proxy?), not a W&B server ({_ADDRESS_HINT})"
    looks_html = kind in ("text/html", "application/xhtml+xml") or body.lstrip()[:1] == b"<"
    if looks_html:
        return f"{url} answered HTTP {status} with an HTML page, not the W&B API ({_ADDRESS_HINT})"
    if not body.strip():
        if status in (401, 403):
            return None  # a refusal without a word: the key check says it
        return f"{url} answered HTTP {status} with an empty body, not the W&B API ({_ADDRESS_HINT})"
    try:
        json.loads(body if len(response.content) <= 4096 else response.content)
    except ValueError:
        return f"{url} answered HTTP {status} with something other than JSON, not the W&B API ({_ADDRESS_HINT})"
    return None


def _speaks_tls(url: str, timeout: float) -> bool:
    """Whether the host and port of an http:// URL complete a TLS handshake (certificate not
    checked: this only tells which protocol to use)."""
    import socket
    import ssl

    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 80
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            context.wrap_socket(sock, server_hostname=host),
        ):
            return True
    except (OSError, ValueError):
        return False


def scrub(text: str, api_key: str | None) -> str:
    if api_key and api_key in text:
        text = text.replace(api_key, "***")
    return text


# A first `Viewer` query unanswered after this many seconds starts the silent-server probe ...
SILENT_PROBE_AFTER_S = 2.0
# ... which names the server silent once nothing answered this many seconds after the start.
SILENT_ANSWER_S = 10.0


def silent_server(url: str, wait: float, *, total: float | None = None) -> str | None:
    """One line if the server at `url` accepts a TCP connection but sends nothing within `wait`
    seconds (`total`: the seconds to name, counted from the first request); None if it answers
    anything at all, or cannot be connected to (the retry policy and the other start-up
    diagnoses handle those). A plain `GET` of the base path: any byte back means alive."""
    import socket
    import ssl

    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    where = f"{host}:{port}"
    shown = total if total is not None else wait
    deadline = time.monotonic() + wait
    try:
        sock = socket.create_connection((host, port), timeout=min(wait, CONNECT_TIMEOUT_S))
    except OSError:
        return None
    try:
        if tls:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            except TimeoutError:
                return _silent_text(where, shown)
            except (OSError, ssl.SSLError):
                return None  # answered, if only with a failed handshake: not silent
        path = parts.path or "/"
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode())
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            sock.recv(1)
        except TimeoutError:
            return _silent_text(where, shown)
        except OSError:
            return None
        return None
    finally:
        sock.close()


def _silent_text(where: str, seconds: float) -> str:
    return (
        f"connected to {where}, no answer in {seconds:g} s: something accepts connections there but "
        "does not respond (a hung server or a proxy; check --base-url or WANDB_BASE_URL)"
    )


def to_error(exc: BaseException, what: str, api_key: str | None = None) -> Wandb2NumpyError:
    """Any failure of a call as one of ours, to be raised `from exc`: ours pass as they are, a
    refused key becomes an AuthError, anything else a FetchError naming what failed."""
    if isinstance(exc, Wandb2NumpyError):
        return exc
    message = describe(exc, api_key)
    if classify(exc) == "auth":
        return AuthError(f"the W&B server refused the API key ({CREDENTIALS_HINT}): {message}")
    return FetchError(f"{what} failed: {message}")
