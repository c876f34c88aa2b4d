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
                api = self._new_api()
                self._apis[index] = api
                self._reached = True
        return api

    @property
    def created(self) -> int:
        return len(self._apis)

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
            raise AuthError(f"no W&B API key found: {CREDENTIALS_HINT}") from exc
        except AuthenticationError as exc:
            url = base_url or "https://api.wandb.ai"
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
        problem = network_problem(exc)
        if problem == "refused":
            return (
                f"cannot connect to {url}: connection refused (is the server running? check "
                "--base-url or WANDB_BASE_URL)"
            )
        if problem == "no_host":
            host = urlsplit(url).hostname or url
            return f"cannot resolve host {host!r} of {url} (check --base-url or WANDB_BASE_URL)"
        return None


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


_READ_CHUNK = 1 << 20


def fetch_file(url: str, timeout: float, byte_range: str | None = None) -> tuple[int, Mapping[str, str], bytes]:
    """One GET of a file URL (`byte_range`: a `Range` header value): status, headers and body.

    `timeout` bounds the wait for each byte and the whole answer: storage streams a large file
    at its own pace, so a read timeout alone would let one request run for as long as the file
    takes. A request past it raises `ParquetFileError(timed_out=True)` with the bytes that came.
    """
    import http.client
    import time

    import requests
    import urllib3

    what = f"GET {_where(url)}" + (f" ({byte_range})" if byte_range else "")
    started = time.monotonic()
    parts: list[bytes] = []
    received = 0
    try:
        headers = {"Range": byte_range} if byte_range else None
        with _session().get(url, timeout=timeout, stream=True, headers=headers) as response:
            status = int(response.status_code)
            if status not in (200, 206):
                raise ParquetFileError(f"{what} answered HTTP {status}", status)
            # stream=True and reads of the raw body as it comes (`read1`): `.content` would
            # gather it 10 KB at a time through Python (about half of the client CPU of a
            # parquet export, measured).
            while True:
                part = response.raw.read1(_READ_CHUNK)
                if not part:
                    break
                parts.append(part)
                received += len(part)
                if time.monotonic() - started > timeout:
                    raise ParquetFileError(
                        f"{what} took longer than {timeout:g} s ({received} bytes had come)",
                        timed_out=True,
                        received=received,
                    )
            return status, dict(response.headers), b"".join(parts)
    except (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError) as exc:
        text = f"{what} timed out after {time.monotonic() - started:.1f} s ({received} bytes had come)"
        raise ParquetFileError(text, timed_out=True, received=received) from exc
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, http.client.HTTPException) as exc:
        raise ParquetFileError(f"{what} failed: {type(exc).__name__}", transient=True) from None


def read_parquet_columns(url: str, keys: Sequence[str], timeout: float) -> ParquetColumns:
    """`keys` from one exported file (one GET), as `Series` of the rows holding each key.

    Signed URLs need no credentials, so no API key goes to the file host. Only the needed
    columns are decoded, straight into float64 arrays (see `series.series_from_table`). A GET
    that times out is not for repeating: `wandb.files` reads the file by ranges instead.
    """
    import io

    import pyarrow.parquet as pq

    status, _, data = fetch_file(url, timeout)
    if status != 200:
        raise ParquetFileError(f"GET {_where(url)} answered HTTP {status} to a request without a range", status)
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
