"""Everything that touches the `wandb` client: connecting, listing runs, reading history. Which
failures are worth retrying, and what they mean, is `errors.py`'s (re-exported here).

The wandb 0.31 public API is blocking and hands every request to the `wandb-core` sidecar, which
retries on its own (20 times, up to a minute apart). We bound those inner retries through the
environment knobs wandb-core reads when it starts, so that the retry policy in `runner` is the
one in charge, and we read the HTTP status from the error text because that is the only place
wandb puts it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..config.defaults import CONNECT_TIMEOUT_S, DEFAULT_LISTING_PAGE, DEFAULT_PAGE_SIZE, DEFAULT_TIMEOUT_S
from ..errors import AuthError, FetchError
from ..models import KeyInfo, RunInfo
from ..series import ParquetColumns, series_from_table
from .errors import (
    CREDENTIALS_HINT,
    SILENT_ANSWER_S,
    SILENT_PROBE_AFTER_S,
    ParquetFileError,
    Verdict,
    _chain,
    _timed_out,
    classify,
    describe,
    http_status,
    key_format_problem,
    looks_down,
    network_problem,
    probe_server,
    scrub,
    silent_server,
    to_error,
    transport_problem,
)

if TYPE_CHECKING:  # pragma: no cover
    import wandb

# Re-exported: callers reach the error reading through `client` as they always did.
__all__ = [
    "CREDENTIALS_HINT",
    "ApiPool",
    "ClientSettings",
    "ParquetFileError",
    "Verdict",
    "classify",
    "describe",
    "http_status",
    "key_format_problem",
    "looks_down",
    "network_problem",
    "probe_server",
    "scrub",
    "silent_server",
    "to_error",
    "transport_problem",
]

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


@dataclass(frozen=True, kw_only=True)
class ClientSettings:
    """How to reach the server. `None` means: ask wandb (environment, then netrc)."""

    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    # Only saves wandb a `GetDefaultEntity` round trip per `Api`; every query names its entity.
    entity: str | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    page_size: int = DEFAULT_PAGE_SIZE
    # Runs per page of a run listing; reads are planned and sent a listing page at a time.
    listing_page: int = DEFAULT_LISTING_PAGE
    # Ask for many small runs' history in one request (`sampledHistory` on a runs listing). Off:
    # one request per run and key group, as the original tool did; an older server that refuses
    # the query turns it off by itself, with one warning.
    batch_small_runs: bool = True
    # Read finished runs' full history from their exported parquet files, a column at a time,
    # plus any live rows after them with pages. Off: pages only.
    parquet: bool = True

    def for_entity(self, entity: str | None) -> ClientSettings:
        """These settings, with `entity` if they name none."""
        return dataclasses.replace(self, entity=entity) if self.entity is None and entity else self

    def resolved_base_url(self) -> str | None:
        return self.base_url or os.environ.get("WANDB_BASE_URL")


def prepare_environment(settings: ClientSettings) -> None:
    """Bound wandb-core's own retries before it starts; respect values the user already set."""
    for key, value in _CORE_RETRY_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("WANDB__GRAPHQL_TIMEOUT_SECONDS", str(max(1, math.ceil(settings.timeout))))
    os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
    os.environ.setdefault("WANDB_SILENT", "true")


def start_core(settings: ClientSettings) -> None:
    """Start wandb-core now, in the background, and load the rest of wandb's API meanwhile.

    For a caller that knows it will talk to a W&B server and has other work before the first
    request (checking outputs, loading the pipeline). wandb-core takes a moment to start, and
    wandb waits for it by polling its port file every 0.2 s, a wait that holds no CPU: begun
    here, it passes while this thread loads `wandb.apis.public` (about as long again) and the
    caller does its own work, instead of after all of it. No request is sent. A failure to
    start is left for the first `Api` to meet and report.
    """
    with _started_guard:
        if _core_started:
            return
        _core_started.append(True)
    prepare_environment(settings)  # read by wandb-core when it starts
    from wandb.sdk import wandb_setup  # most of wandb's import time, in the caller's thread

    def start() -> None:
        try:
            wandb_setup.singleton().ensure_service()
        except Exception as exc:  # noqa: BLE001 - the first Api meets it again and says what it is
            log.debug("starting wandb-core early failed: %s", exc)

    threading.Thread(target=start, name="wandb2numpy-start-core", daemon=True).start()
    import wandb.apis.public  # noqa: F401 - while wandb-core starts


def connect_early(settings: ClientSettings) -> None:
    """Make the first `Api` (its `Viewer` query) now, in the background, for the export with
    these settings to take over (`ApiPool.take`): the query is answered while the export is
    still loading. Only for a caller that has refused already whatever the export would refuse
    before its first request; a pool nobody takes is dropped by `forget_started`."""
    with _started_guard:
        if settings in _started:
            return  # begun already (the command line, then the export it calls)
        pool = _started[settings] = ApiPool(settings)
    threading.Thread(target=pool.connect_early, name="wandb2numpy-connect", daemon=True).start()


def forget_started() -> None:
    """Drop pools `connect_early` made that no export took (its config named other
    settings, or it ended before connecting): a later export in this process starts afresh."""
    with _started_guard:
        _started.clear()


# --------------------------------------------------------------------------------------------
# Connections

# Pools `connect_early` began, by settings, until an export takes its own.
_started: dict[ClientSettings, ApiPool] = {}
_started_guard = threading.Lock()
_core_started: list[bool] = []  # whether `start_core` ran in this process (wandb-core lives as long)


class ApiPool:
    """`wandb.Api` objects shared by the worker slots, ten slots to an `Api`.

    wandb-core serves at most ten requests at once per `Api`, so a single shared one caps any
    concurrency at ten; one per worker would cost a `Viewer` round trip each, which a
    rate-limited server charges us for. Slot i uses `Api` i // 10, created on first use; only
    the first sends `Viewer`, the others are its siblings (`_sibling_api`).
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
        self._early_error: BaseException | None = None  # of `connect_early`, for the first caller
        prepare_environment(settings)

    @classmethod
    def take(cls, settings: ClientSettings) -> ApiPool:
        """The pool `connect_early(settings)` began connecting, else a new one."""
        with _started_guard:
            pool = _started.pop(settings, None)
        return pool if pool is not None else cls(settings)

    def connect_early(self) -> None:
        """Make slot 0's `Api` now, ahead of any caller. Its failure is kept, not raised: the
        first caller of slot 0 gets it, as if its own attempt had failed that way."""
        with self._guard:
            lock = self._locks.setdefault(0, threading.Lock())
        with lock:
            if self._apis or self._startup_error is not None:
                return
            try:
                self._apis[0] = self._first_api()
                self._reached = True
            except BaseException as exc:  # noqa: BLE001 - handed to slot 0's first caller
                self._early_error = exc

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
                early, self._early_error = self._early_error, None
                if early is not None:
                    raise early
                made = list(self._apis.values())
                api = self._sibling_api(made[0]) if made else None
                if api is None:
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

    def _sibling_api(self, first: wandb.Api) -> wandb.Api | None:
        """Another `Api` for ten more slots, without the `Viewer` round trip `wandb.Api()` sends.

        That query only checks the key, and the first `Api`, made with the same settings, had it
        checked already; what the extra slots need is their own session in wandb-core (whose
        limit of ten requests in flight is per session), which a new `ServiceApi` on the same
        settings opens on its first request. A copy of the first `Api` with its own session and
        empty caches is then what `wandb.Api()` would have built. None when this client is laid
        out otherwise: the caller makes a full `Api`, at one `Viewer` more.
        """
        service = getattr(first, "_service_api", None)
        core_settings = getattr(service, "_settings", None)
        if core_settings is None:
            return None
        try:
            from wandb.apis.public.service_api import ServiceApi

            api = copy.copy(first)
            api._service_api = ServiceApi(settings=core_settings, timeout=getattr(first, "_timeout", None))
        except Exception as exc:  # noqa: BLE001 - an unknown client layout: a full Api instead
            log.debug("could not derive an Api from the first one: %s", exc)
            return None
        api.settings = dict(first.settings)
        for cache in ("_projects", "_runs", "_sweeps", "_reports"):
            if isinstance(getattr(first, cache, None), dict):
                setattr(api, cache, {})
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


# --------------------------------------------------------------------------------------------
# Listing runs


# A listing shorter than the count the server sent with it is asked again this many times in all,
# then reported: a short listing must never pass for a complete one.
LISTING_ATTEMPTS = 3


def list_runs(
    api: wandb.Api,
    entity: str,
    project: str,
    filters: Mapping[str, Any],
    *,
    per_page: int = DEFAULT_LISTING_PAGE,
    on_runs: Callable[[list[RunInfo]], None] | None = None,
) -> list[RunInfo]:
    """All matching runs in one query with `lazy=False`, so config, summary and history keys come
    with the listing instead of one request per run; de-duplicated by run id, listing order kept.

    The listing is checked against the `runCount` the server sends with every page (counted with
    the same filters): a listing with fewer distinct runs is read again from the start, and if it
    stays short the call fails rather than exporting a partial experiment as a whole one.

    `on_runs` is given the runs listed so far whenever the listing is known to go on past them
    (`_goes_on`), so their full pages are not its last (a listing asked again starts over from
    none): what may be read while the rest is still coming.
    """
    _load_while_listing()
    try:
        for _ in range(LISTING_ATTEMPTS):
            runs, expected = _list_once(api, entity, project, filters, per_page, on_runs)
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


# What wandb loads when it turns the first page of a listing into runs (`requests`, from
# `wandb.apis.normalize`): about 0.1 s, spent after the page came unless loaded while it comes.
_LISTING_MODULES = ("requests",)


def _load_while_listing() -> None:
    """Load `_LISTING_MODULES` in a thread while this one waits for the listing's first page (a
    round trip in which this process has nothing else to do), so the runs are built, and the
    first history requests sent, that much sooner. Nothing is lost if wandb stops needing them."""
    import sys

    missing = [m for m in _LISTING_MODULES if m not in sys.modules]
    if not missing:
        return

    def load() -> None:
        import importlib

        for module in missing:
            try:
                importlib.import_module(module)
            except Exception as exc:  # noqa: BLE001 - wandb will say what is wrong when it needs it
                log.debug("loading %s ahead of the listing failed: %s", module, exc)

    threading.Thread(target=load, name="wandb2numpy-load", daemon=True).start()


def _list_once(
    api: wandb.Api,
    entity: str,
    project: str,
    filters: Mapping[str, Any],
    per_page: int,
    on_runs: Callable[[list[RunInfo]], None] | None = None,
) -> tuple[list[RunInfo], int | None]:
    """One full pass over the listing: the runs, and the run count the last page reported."""
    listing = _new_listing(api, entity, project, filters, per_page)
    seen: dict[str, RunInfo] = {}
    for run in listing:
        info = run_info(run, entity, project)
        if info.id in seen:
            continue
        seen[info.id] = info
        if on_runs is not None and _goes_on(listing, len(seen), per_page):
            on_runs(list(seen.values()))
    project_doc = (listing.last_response or {}).get("project") or {}
    count = project_doc.get("runCount")
    return list(seen.values()), int(count) if isinstance(count, int) else None


def _goes_on(listing: Any, listed: int, per_page: int) -> bool:
    """Whether the listing is known to go on past its first `listed` runs, just now: a full page
    whose answer says another follows, or (a client that keeps no answer) a run of a new page."""
    if listed % per_page == 0:
        page = ((getattr(listing, "last_response", None) or {}).get("project") or {}).get("runs") or {}
        return bool((page.get("pageInfo") or {}).get("hasNextPage"))
    return listed > per_page and (listed - 1) % per_page == 0


def _new_listing(api: wandb.Api, entity: str, project: str, filters: Mapping[str, Any], per_page: int) -> Any:
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


def sampled_history(api: wandb.Api, info: RunInfo, keys: Sequence[str], samples: int) -> list[dict[str, Any]]:
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

    import requests
    import urllib3

    what = f"GET {_where(url)}" + (f" ({byte_range})" if byte_range else "")
    started = time.monotonic()
    parts: list[bytes] = []
    received = 0
    try:
        headers = {"Range": byte_range} if byte_range else None
        limits = (min(CONNECT_TIMEOUT_S, timeout), timeout)
        with _session().get(url, timeout=limits, stream=True, headers=headers) as response:
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
