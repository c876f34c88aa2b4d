"""Everything that touches the `wandb` client: connecting, listing runs, reading history, and the
one place that decides which failures are worth retrying.

The wandb 0.31 public API is blocking and hands every request to the `wandb-core` sidecar, which
retries on its own (20 times, up to a minute apart). We bound those inner retries through the
environment knobs wandb-core reads when it starts, so that the tenacity policy in `fetch.py` is the
one in charge, and we read the HTTP status from the error text because that is the only place
wandb puts it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from ..config.defaults import DEFAULT_PAGE_SIZE, DEFAULT_TIMEOUT_S
from ..errors import AuthError, FetchError
from ..models import KeyInfo, RunInfo
from ..series import ParquetColumns, series_from_table

if TYPE_CHECKING:  # pragma: no cover
    import wandb

log = logging.getLogger(__name__)


# How long the start-up probe (`probe_server`) waits for each of connect and answer.
PROBE_TIMEOUT_S = 5.0

# wandb-core serves at most this many requests at once per `wandb.Api` object.
REQUESTS_PER_API = 10

# Read by wandb-core when it starts (once per process). One inner retry, one second apart, keeps a
# transient blip cheap while leaving backoff, rate-limit pacing and giving up to our own policy.
_CORE_RETRY_ENV = {
    "WANDB__GRAPHQL_RETRY_MAX": "1",
    "WANDB__GRAPHQL_RETRY_WAIT_MIN_SECONDS": "1",
    "WANDB__GRAPHQL_RETRY_WAIT_MAX_SECONDS": "1",
}

Verdict = Literal["auth", "rate_limit", "transient", "fatal"]

# Seconds to open a TCP connection (our own requests: parquet files, the start-up probe); a read
# waits up to the request timeout (`--timeout`).
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True, kw_only=True)
class ClientSettings:
    """How to reach the server. `None` means: ask wandb (environment, then netrc)."""

    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    # Only saves wandb a `GetDefaultEntity` round trip per `Api`; every query names its entity.
    entity: str | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    page_size: int = DEFAULT_PAGE_SIZE
    # Ask for many small runs' history in one request (`sampledHistory` on a runs listing). Off:
    # one request per run and key group, as the original tool did; an older server that refuses
    # the query turns it off by itself, with one warning.
    batch_small_runs: bool = True
    # Read finished runs' full history from their exported parquet files, a column at a time,
    # plus any live rows after them with pages. Off: pages only.
    parquet: bool = True

    def resolved_base_url(self) -> str | None:
        return self.base_url or os.environ.get("WANDB_BASE_URL")


def prepare_environment(settings: ClientSettings) -> None:
    """Bound wandb-core's own retries before it starts; respect values the user already set."""
    for key, value in _CORE_RETRY_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("WANDB__GRAPHQL_TIMEOUT_SECONDS", str(max(1, math.ceil(settings.timeout))))
    os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
    os.environ.setdefault("WANDB_SILENT", "true")


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
            return f"the W&B API key is not in a valid format ({detail.splitlines()[0][:200]}); it was not sent anywhere"
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
        return (f"{url} redirects the W&B API to {where} (a login page or a proxy?), not a W&B server "
                f"({_ADDRESS_HINT})")
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
        with socket.create_connection((host, port), timeout=timeout) as sock, context.wrap_socket(
            sock, server_hostname=host
        ):
            return True
    except (OSError, ValueError):
        return False


def scrub(text: str, api_key: str | None) -> str:
    if api_key and api_key in text:
        text = text.replace(api_key, "***")
    return text


# --------------------------------------------------------------------------------------------
# Connections


class ApiPool:
    """`wandb.Api` objects shared by the worker slots, ten slots to an `Api`.

    wandb-core serves at most ten requests at once per `Api`, so a single shared one caps any
    concurrency at ten; one per worker costs a `Viewer` round trip each, which a rate-limited
    server charges us for. Slot i uses `Api` i // 10, created on first use.
    """

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self._apis: dict[int, wandb.Api] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()
        # Until one `Api` has been made, the server has not been reached: a refused connection,
        # an unknown host or a non-W&B answer then means a wrong address and ends the export at
        # once (kept here so every slot waiting for the first `Api` gets the same answer).
        self._reached = False
        self._startup_error: FetchError | None = None
        prepare_environment(settings)

    def existing(self, slot: int) -> wandb.Api | None:
        """The slot's `Api` if it was made already: no thread hop needed to get it."""
        return self._apis.get(slot // REQUESTS_PER_API)

    def for_slot(self, slot: int) -> wandb.Api:
        index = slot // REQUESTS_PER_API
        api = self._apis.get(index)
        if api is not None:
            return api
        with self._guard:
            lock = self._locks.setdefault(index, threading.Lock())
        with lock:
            api = self._apis.get(index)
            if api is None:
                if self._startup_error is not None:
                    raise self._startup_error
                api = self._new_api() if self._reached else self._first_api()
                self._apis[index] = api
                self._reached = True
        return api

    @property
    def created(self) -> int:
        return len(self._apis)

    def _first_api(self) -> wandb.Api:
        """The first `Api`, watched: its `Viewer` query is the first word with the server, and a
        server that accepts the connection but never answers would hold it for the whole timeout
        and wandb-core's retry (minutes, with the message "service process is busy"). Past
        `SILENT_PROBE_AFTER_S` without an answer, a probe of our own tells a silent server
        (named at once, see `silent_server`) from a slow one (waited for)."""
        done = threading.Event()
        box: dict[str, Any] = {}

        def make() -> None:
            try:
                box["api"] = self._new_api()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                box["error"] = exc
            finally:
                done.set()

        started = time.monotonic()
        threading.Thread(target=make, name="wandb2numpy-first-api", daemon=True).start()
        if not done.wait(SILENT_PROBE_AFTER_S):
            url = self.settings.resolved_base_url() or "https://api.wandb.ai"
            wait = max(1.0, started + SILENT_ANSWER_S - time.monotonic())
            diagnosis = silent_server(url, wait, total=SILENT_ANSWER_S)
            if diagnosis is not None:
                self._startup_error = FetchError(diagnosis)
                raise self._startup_error
            done.wait()
        if "error" in box:
            raise box["error"]
        api: wandb.Api = box["api"]
        return api

    def _new_api(self) -> wandb.Api:
        import wandb
        from wandb.errors import AuthenticationError, UsageError

        overrides: dict[str, Any] = {}
        base_url = self.settings.resolved_base_url()
        if base_url:
            overrides["base_url"] = base_url
        if self.settings.entity:
            overrides["entity"] = self.settings.entity
        try:
            return wandb.Api(
                overrides=overrides,
                timeout=int(math.ceil(self.settings.timeout)),
                api_key=self.settings.api_key,
            )
        except UsageError as exc:
            # wandb found no key at all (environment, netrc, settings): nothing was sent
            where = base_url or "https://api.wandb.ai"
            raise AuthError(f"no W&B API key found for {where}: {CREDENTIALS_HINT}") from exc
        except AuthenticationError as exc:
            url = base_url or "https://api.wandb.ai"
            key_problem = key_format_problem(exc)
            if key_problem is not None:
                raise AuthError(f"{key_problem}: {CREDENTIALS_HINT} with a key for {url}") from None
            diagnosis = self._startup_diagnosis(exc, url)
            if diagnosis is not None:
                error = FetchError(diagnosis)
                if not self._reached:
                    self._startup_error = error
                raise error from exc
            if classify(exc) != "auth":
                raise  # the server was unavailable, not unwilling: let the retry policy decide
            raise AuthError(
                f"the W&B server at {url} refused the API key ({CREDENTIALS_HINT} with a key for "
                "this server): " + scrub(str(exc).splitlines()[0] if str(exc) else "", self.settings.api_key)
            ) from exc

    def _startup_diagnosis(self, exc: BaseException, url: str) -> str | None:
        """One line for a start-up query that shows a wrong address rather than a bad key or a
        passing fault; None for anything the retry policy or the key check should handle."""
        status = http_status(exc)
        if status == 404 or (status is not None and 400 <= status < 500 and status not in (401, 403, 408, 425, 429)):
            return (
                f"{url} answered HTTP {status} to the W&B API: it is not the address of a W&B "
                "server (check --base-url or WANDB_BASE_URL; the public service is https://api.wandb.ai)"
            )
        if self._reached:
            return None
        transport = transport_problem(exc, url)
        if transport is not None:
            return transport
        problem = network_problem(exc)
        if problem == "refused":
            return (
                f"cannot connect to {url}: connection refused (is the server running? check "
                "--base-url or WANDB_BASE_URL)"
            )
        if problem == "no_host":
            host = urlsplit(url).hostname or url
            return f"cannot resolve host {host!r} of {url} (check --base-url or WANDB_BASE_URL)"
        if (status is not None and (status >= 500 or status in (408, 425, 429))) or _timed_out(exc):
            return None  # unavailable or slow, not a wrong address: the retry policy's business
        return probe_server(url, min(PROBE_TIMEOUT_S, self.settings.timeout), exc)


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


# --------------------------------------------------------------------------------------------
# Listing runs


# A listing shorter than the count the server sent with it is asked again this many times in all,
# then reported: a short listing must never pass for a complete one.
LISTING_ATTEMPTS = 3


def list_runs(
    api: wandb.Api, entity: str, project: str, filters: Mapping[str, Any], *, per_page: int = 200
) -> list[RunInfo]:
    """All matching runs in one query with `lazy=False`, so config, summary and history keys come
    with the listing instead of one request per run; de-duplicated by run id, listing order kept.

    The listing is checked against the `runCount` the server sends with every page (counted with
    the same filters): a listing with fewer distinct runs is read again from the start, and if it
    stays short the call fails rather than exporting a partial experiment as a whole one.
    """
    try:
        for _ in range(LISTING_ATTEMPTS):
            runs, expected = _list_once(api, entity, project, filters, per_page)
            if expected is None or len(runs) >= expected:
                return runs
            log.warning(
                "listing %s/%s gave %d runs where the server counted %d; listing again",
                entity,
                project,
                len(runs),
                expected,
            )
    except ValueError as exc:
        if "project" in str(exc).lower() and http_status(exc) is None:
            raise FetchError(f"project {entity}/{project} not found on the server") from exc
        raise
    raise FetchError(
        f"listing runs of {entity}/{project} gave {len(runs)} runs where the server counted "
        f"{expected}, {LISTING_ATTEMPTS} times; not exporting a partial experiment"
    )


def _list_once(
    api: wandb.Api, entity: str, project: str, filters: Mapping[str, Any], per_page: int
) -> tuple[list[RunInfo], int | None]:
    """One full pass over the listing: the runs, and the run count the last page reported."""
    listing = _new_listing(api, entity, project, filters, per_page)
    seen: dict[str, RunInfo] = {}
    for run in listing:
        info = run_info(run, entity, project)
        seen.setdefault(info.id, info)
    project_doc = (listing.last_response or {}).get("project") or {}
    count = project_doc.get("runCount")
    return list(seen.values()), int(count) if isinstance(count, int) else None


def _new_listing(
    api: wandb.Api, entity: str, project: str, filters: Mapping[str, Any], per_page: int
) -> Any:
    """A `Runs` paginator of our own, never one shared with another listing.

    `Api.runs` caches its `Runs` objects by path, filters and order and hands the same one to
    every caller, and a `Runs` is its own iterator: its position and loaded pages live on the
    object. Listings of one project with the same filters on one `Api` (up to ten worker slots
    share one) then step through one position together, each seeing only part of the runs, and
    a later listing gets the pages loaded earlier instead of the server's current runs.
    """
    from wandb.apis.public import Runs

    service = getattr(api, "_service_api", None)
    if service is None:  # a future client without it: its own cache, still checked by count
        return api.runs(
            f"{entity}/{project}",
            filters=dict(filters),
            order="+created_at",
            per_page=per_page,
            lazy=False,
        )
    return Runs(
        service,
        entity,
        project,
        filters=dict(filters),
        order="+created_at",
        per_page=per_page,
        lazy=False,
        api_key=api.api_key,
    )


def run_info(run: Any, entity: str, project: str) -> RunInfo:
    attrs: Mapping[str, Any] = run._attrs  # the listing's own fields, already fetched
    hist = _json(attrs.get("historyKeys")) or {}
    keys: dict[str, KeyInfo] = {}
    for name, meta in (hist.get("keys") or {}).items():
        counts = (meta or {}).get("typeCounts") or []
        types = tuple(str(c.get("type")) for c in counts)
        count = max((int(c.get("count") or 0) for c in counts), default=0)
        keys[name] = KeyInfo(types=types, count=count)
    last_step = hist.get("lastStep")
    return RunInfo(
        entity=entity,
        project=project,
        id=str(attrs.get("name")),
        name=str(attrs.get("displayName") or attrs.get("name")),
        group=attrs.get("group"),
        job_type=attrs.get("jobType"),
        state=str(attrs.get("state") or ""),
        tags=tuple(attrs.get("tags") or ()),
        created_at=attrs.get("createdAt"),
        heartbeat_at=attrs.get("heartbeatAt"),
        history_line_count=int(attrs.get("historyLineCount") or 0),
        last_step=int(last_step) if last_step is not None else -1,
        history_keys=keys,
        config=dict(run.config or {}),
        summary=dict(_json(attrs.get("summaryMetrics")) or {}),
        url=_run_url(run),
    )


def _run_url(run: Any) -> str | None:
    """wandb's own link to the run's page (the app host for the cloud, the server's own URL for a
    local one), built from settings without a request; None if this client cannot say."""
    try:
        url = run.url
    except Exception:  # noqa: BLE001 - a link is a nicety, never a reason to fail a listing
        return None
    return url if isinstance(url, str) and url else None


def _json(value: Any) -> Any:
    if isinstance(value, (str, bytes, bytearray)):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


# --------------------------------------------------------------------------------------------
# History


def bind_run(api: wandb.Api, info: RunInfo) -> Any:
    """A `Run` handle on this worker's `Api`, without a request.

    A `Run` stays bound to the `Api` that produced it; binding it to the worker's own `Api` is what
    lets more than ten requests run at once. The attributes we pass are the ones the listing sent.
    """
    from wandb.apis.public import Run

    service = getattr(api, "_service_api", None)
    attrs = {
        "id": info.id,
        "name": info.id,
        "displayName": info.name,
        "state": info.state,
        "group": info.group,
        "jobType": info.job_type,
        "tags": list(info.tags),
    }
    if service is None:  # a future client without it: one extra request, same result
        return api.run(info.path)
    return Run(service, info.entity, info.project, info.id, attrs=attrs, lazy=True)


def sampled_history(
    api: wandb.Api, info: RunInfo, keys: Sequence[str], samples: int
) -> list[dict[str, Any]]:
    """Rows holding every one of `keys`, sampled by the server to at most `samples`."""
    run = bind_run(api, info)
    rows = run.history(samples=samples, keys=list(keys), pandas=False)
    return list(rows)


# The page query wandb-core's own history reader sends, word for word on the wire.
_PAGE_QUERY = """
query SampledHistoryPage($entity: String!, $project: String!, $run: String!, $spec: JSONString!) {
    project(name: $project, entityName: $entity) { run(name: $run) { sampledHistory(specs: [$spec]) } }
}
"""


def history_window(
    api: wandb.Api,
    info: RunInfo,
    keys: Sequence[str],
    min_step: int,
    max_step: int,
    samples: int,
) -> list[dict[str, Any]]:
    """Rows in [min_step, max_step) holding every one of `keys`, at most `samples`: one request.

    The page query wandb-core's own scan sends, straight through `execute_graphql`, which skips
    what the scan adds per call (a `RunParquetHistory` request, and a protobuf message plus one
    `json.loads` per value for every row). The server thins a window holding more than `samples`
    rows, so an answer of exactly `samples` rows may be incomplete: the planner then splits the
    window (see `sources.wandb_source`). One request per call keeps an interrupt prompt.
    """
    service = getattr(api, "_service_api", None)
    if service is None or not hasattr(service, "execute_graphql"):  # a future client without it
        return scan_history(api, info, keys, min_step, max_step, max(1, max_step - min_step))
    spec = {"keys": ["_step", *keys], "minStep": min_step, "maxStep": max_step - 1, "samples": samples}
    data = service.execute_graphql(
        _PAGE_QUERY,
        {"entity": info.entity, "project": info.project, "run": info.id, "spec": json.dumps(spec)},
    )
    run = (data.get("project") or {}).get("run")
    if run is None:
        raise FetchError(f"run {info.path} is no longer on the server")
    rows: list[dict[str, Any]] = run["sampledHistory"][0]
    return rows


# The query wandb-core's own history reader sends first, word for word on the wire.
_PARQUET_QUERY = """
query RunParquetHistory ($entity: String!, $project: String!, $runName: String!, $liveKeys: [String!]!) {
	project(name: $project, entityName: $entity) {
		run(name: $runName) {
			parquetHistory(liveKeys: $liveKeys) {
				parquetUrls
				liveData
			}
		}
	}
}
"""


@dataclass(frozen=True)
class ParquetPlan:
    """Where a run's exported history is: its files, and the first step not in them (None: the
    export holds every row)."""

    urls: list[str]
    live_min_step: int | None


def parquet_history(api: wandb.Api, info: RunInfo) -> ParquetPlan:
    """The run's exported parquet files and where its live rows start: one request."""
    service = getattr(api, "_service_api", None)
    if service is None or not hasattr(service, "execute_graphql"):
        raise FetchError("this wandb client cannot send the parquet history query")
    data = service.execute_graphql(
        _PARQUET_QUERY,
        {"entity": info.entity, "project": info.project, "runName": info.id, "liveKeys": ["_step"]},
    )
    run = (data.get("project") or {}).get("run")
    if run is None:
        raise FetchError(f"run {info.path} is no longer on the server")
    doc = run.get("parquetHistory") or {}
    urls = [str(u) for u in doc.get("parquetUrls") or [] if u]
    live: int | None = None
    for row in doc.get("liveData") or []:
        row = _json(row) if isinstance(row, (str, bytes, bytearray)) else row
        step = row.get("_step") if isinstance(row, Mapping) else None
        if isinstance(step, (int, float)) and not isinstance(step, bool) and math.isfinite(step):
            live = int(step) if live is None else min(live, int(step))
    return ParquetPlan(urls, live)


class ParquetFileError(Exception):
    """A parquet file that could not be read: the host's error status, a failed connection
    (`transient`), or a file that is not what it should be (neither)."""

    def __init__(self, message: str, status: int | None = None, *, transient: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient


_sessions = threading.local()


def _session() -> Any:
    """One keep-alive `requests.Session` per worker thread: files of one host reuse connections."""
    import requests

    session = getattr(_sessions, "session", None)
    if session is None:
        session = requests.Session()
        _sessions.session = session
    return session


def _where(url: str) -> str:
    """The URL without its query: signed URLs carry their signature there, kept out of logs."""
    return url.split("?", 1)[0]


def read_parquet_columns(url: str, keys: Sequence[str], timeout: float) -> ParquetColumns:
    """`keys` from one exported file (one GET), as `Series` of the rows holding each key.

    Signed URLs need no credentials, so no API key goes to the file host. Only the needed
    columns are decoded, straight into float64 arrays (see `series.series_from_table`).
    """
    import http.client
    import io

    import pyarrow.parquet as pq
    import requests
    import urllib3

    try:
        # stream=True and one read of the raw body: `.content` would gather it 10 KB at a time
        # through Python (about half of the client CPU of a parquet export, measured).
        with _session().get(url, timeout=(min(CONNECT_TIMEOUT_S, timeout), timeout), stream=True) as response:
            if response.status_code != 200:
                status = int(response.status_code)
                raise ParquetFileError(f"GET {_where(url)} answered HTTP {status}", status)
            data = response.raw.read(decode_content=True)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, http.client.HTTPException) as exc:
        text = f"GET {_where(url)} failed: {type(exc).__name__}"
        raise ParquetFileError(text, transient=True) from None
    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
        names = set(parquet.schema_arrow.names)
        columns = [k for k in dict.fromkeys(["_step", *keys]) if k in names]
        table = parquet.read(columns=columns, use_threads=False)
        return series_from_table(table, keys)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one error for the caller
        raise ParquetFileError(f"{_where(url)} could not be read: {type(exc).__name__}: {exc}") from None


# Many runs' sampled history in one request: `sampledHistory` asked on the nodes of a `runs`
# connection, as wandb's own sweep query does. The runs are picked by id.
_BATCH_QUERY = """
query RunsSampledHistory($entity: String!, $project: String!, $filters: JSONString, $first: Int,
                         $specs: [JSONString!]!) {
    project(name: $project, entityName: $entity) {
        runs(filters: $filters, order: "+created_at", first: $first) {
            edges { node { name sampledHistory(specs: $specs) } }
        }
    }
}
"""

BATCH_REFUSED_TEXT = 'Cannot query field "sampledHistory"'


def batch_history(
    api: wandb.Api,
    entity: str,
    project: str,
    run_ids: Sequence[str],
    specs: Sequence[Mapping[str, Any]],
) -> dict[str, list[list[dict[str, Any]]]]:
    """Per run id, one list of rows per spec: the history of many runs in one request.

    Runs the server did not return (deleted since the listing) are simply absent: the caller
    reads them on their own. A server without the field raises; `is_batch_refusal` tells that
    apart from other failures.
    """
    service = getattr(api, "_service_api", None)
    if service is None or not hasattr(service, "execute_graphql"):
        raise FetchError("this wandb client cannot send batched history queries")
    by_id: dict[str, Any] = {"name": {"$in": list(run_ids)}}
    data = service.execute_graphql(
        _BATCH_QUERY,
        {
            "entity": entity,
            "project": project,
            "filters": json.dumps(by_id),
            "first": len(run_ids),
            "specs": [json.dumps(spec) for spec in specs],
        },
    )
    project_data = data.get("project")
    if project_data is None:
        raise FetchError(f"project {entity}/{project} not found on the server")
    out: dict[str, list[list[dict[str, Any]]]] = {}
    for edge in project_data["runs"]["edges"]:
        node = edge["node"]
        out[str(node["name"])] = node["sampledHistory"]
    return out


def is_batch_refusal(exc: BaseException) -> bool:
    """Whether the server does not know `sampledHistory` on runs of a listing (an older server)."""
    return any(BATCH_REFUSED_TEXT in str(e) for e in _chain(exc))


def scan_history(
    api: wandb.Api,
    info: RunInfo,
    keys: Sequence[str],
    min_step: int,
    max_step: int | None,
    page_size: int,
) -> list[dict[str, Any]]:
    """Every row in [min_step, max_step) holding every one of `keys`, page by page.

    `max_step=None` scans to the run's last step, which the client then asks the server for."""
    run = bind_run(api, info)
    service = getattr(run, "_service_api", None)
    if max_step is not None and service is not None:
        # `run.scan_history` first asks the server for the run's last step (one `RunHistoryKeys`
        # round trip per call); the listing already told us, so build the scan directly.
        from wandb.apis.public import HistoryScan

        scan = HistoryScan(
            run=run,
            service_api=service,
            min_step=min_step,
            max_step=min(max_step, info.last_step + 1) if info.last_step >= 0 else max_step,
            keys=list(keys),
            page_size=page_size,
            use_cache=False,
        )
    else:
        scan = run.scan_history(
            keys=list(keys),
            page_size=page_size,
            min_step=min_step,
            max_step=max_step,
            use_cache=False,
        )
    return list(scan)


# --------------------------------------------------------------------------------------------
# Ending wandb-core


def stop_core(wait: float = 0.5) -> None:
    """Stop the wandb-core process wandb started for this process, if it started one: SIGTERM,
    then SIGKILL after `wait` seconds. Used on the way out after an interrupt, when wandb's own
    teardown (a message to wandb-core, then waiting for it) could block on a request in flight.
    Reads wandb's private singleton: a client without it simply leaves wandb-core to notice our
    exit by itself."""
    import sys

    if "wandb" not in sys.modules:
        return
    try:
        from wandb.sdk import wandb_setup

        setup = getattr(wandb_setup, "_singleton", None)
        connection = getattr(setup, "_connection", None)
        proc = getattr(getattr(connection, "_proc", None), "_process", None)
    except Exception:  # noqa: BLE001 - an unknown client layout: nothing to stop
        return
    if proc is None or not hasattr(proc, "terminate") or proc.poll() is not None:
        return
    try:
        proc.terminate()
        try:
            proc.wait(timeout=wait)
        except Exception:  # noqa: BLE001 - still running: kill it
            proc.kill()
    except OSError:
        pass
