"""The in-process handle: `LocalServer` and the `local_server` context manager.

Kept apart from the command line (`server.py`) so that `python -m wandb2numpy.testing.server`
does not find its own module already imported by the package.
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .backend import Backend
from .faults import FaultInjector, FaultSettings, Stats
from .httpserver import HTTPServer, RequestLog
from .protocol import Protocol
from .synthetic import (
    DEFAULT_ENTITY,
    DEFAULT_EVAL_EVERY,
    DEFAULT_METRICS,
    DEFAULT_PROJECT,
    DEFAULT_RUNS,
    DEFAULT_SEED,
    DEFAULT_STEPS,
    synthetic_project,
)

if TYPE_CHECKING:
    from .parquet import ParquetExports

DEFAULT_HOST = "127.0.0.1"
# The client insists on >= 40 characters of [A-Za-z0-9_] after an optional "prefix-".
DEFAULT_API_KEY = "local-" + "0123456789abcdefghijklmnopqrstuvwxyzABCD"


def _check_loopback(host: str) -> None:
    """The server holds fake credentials and injects faults: it must never face a network."""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"refusing to bind {host!r}: the local W&B server only listens on loopback")


def _read_data(data: Mapping[str, Any] | str | os.PathLike[str]) -> Mapping[str, Any]:
    if isinstance(data, Mapping):
        return data
    with open(data, encoding="utf-8") as fh:
        loaded = json.load(fh)  # accepts bare NaN/Infinity as well as the service's strings
    if not isinstance(loaded, Mapping):
        raise ValueError(f"{data}: expected a JSON object with a 'projects' list")
    return loaded


class LocalServer:
    """A W&B-compatible server on loopback; `start()` returns once it accepts connections."""

    def __init__(
        self,
        data: Mapping[str, Any] | str | os.PathLike[str] | None = None,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        entity: str | None = None,
        parquet: bool | str = False,
        parquet_lag_rows: int = 0,
        faults: FaultSettings | None = None,
        **fault_options: Any,
    ) -> None:
        _check_loopback(host)
        self.host = host
        self.port = port
        self.api_key = api_key
        self._entity = entity
        self.backend = Backend(default_entity=entity or DEFAULT_ENTITY)
        self.counters = Stats()
        self._initial_faults = (faults or FaultSettings()).replace(**fault_options)
        self.faults = FaultInjector(self._initial_faults)
        self.parquet: ParquetExports | None = None
        if parquet:
            from .parquet import ParquetExports  # pyarrow is only needed for this mode

            self.parquet = ParquetExports(self.backend, parquet_lag_rows)
        if parquet not in (False, True, "only"):
            raise ValueError(f"parquet must be False, True or 'only', not {parquet!r}")
        self.protocol = Protocol(
            self.backend,
            parquet_url=self.parquet.url_for if self.parquet else None,
            exported_pages_empty=parquet == "only",
            exported_rows=self.parquet.exported_rows if self.parquet else None,
            unlisted_runs=lambda: self.faults.settings.unlisted_runs,
        )
        self._log = RequestLog()
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._first_project: tuple[str, str] | None = None
        if data is not None:
            self.load(data)

    # ---- data ------------------------------------------------------------------------------

    def load(self, data: Mapping[str, Any] | str | os.PathLike[str]) -> None:
        """Adds or replaces the projects in `data` (the JSON fixture shape, a dict or a file)."""
        loaded = self.backend.load(_read_data(data))
        if loaded and self._first_project is None:
            self._first_project = (loaded[0].entity, loaded[0].name)
            if self._entity is None:  # the viewer's entity: where unqualified paths resolve
                self.backend.default_entity = loaded[0].entity
        if self.parquet is not None:
            self.parquet.invalidate()

    @property
    def entity(self) -> str:
        return self._first_project[0] if self._first_project else self.backend.default_entity

    @property
    def project(self) -> str | None:
        return self._first_project[1] if self._first_project else None

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> LocalServer:
        """Binds (the same port again after a `stop()`) and serves in a daemon thread."""
        if self._httpd is not None:
            return self
        httpd = HTTPServer((self.host, self.port), self)
        self.port = int(httpd.server_address[1])
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops listening and drops open connections; requests in progress are cut off."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.drop_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- observation and faults ----------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return self.counters.snapshot()

    def reset_stats(self) -> None:
        self.counters.reset()
        self._log.clear()

    def set_faults(self, **changes: Any) -> FaultSettings:
        """Changes fault settings while serving, e.g. `set_faults(error_rate=0.0)`."""
        return self.faults.configure(**changes)

    def reset_faults(self) -> FaultSettings:
        """Back to the fault settings the server was created with (and its seed's sequence)."""
        return self.faults.configure(**{f: getattr(self._initial_faults, f) for f in FaultSettings.field_names()})

    def request_log(self) -> list[dict[str, Any]]:
        """The recent emulated requests as {"op", "variables", "t" (arrival, `time.monotonic()`),
        and once answered "status" (0 for a reset) and "t_end"}, oldest first."""
        return self._log.items()

    def request_log_append(self, item: dict[str, Any]) -> None:
        self._log.append(item)


@contextmanager
def local_server(
    data: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    runs: int = DEFAULT_RUNS,
    steps: int = DEFAULT_STEPS,
    metrics: int = DEFAULT_METRICS,
    seed: int = DEFAULT_SEED,
    eval_every: int = DEFAULT_EVAL_EVERY,
    entity: str = DEFAULT_ENTITY,
    project: str = DEFAULT_PROJECT,
    **options: Any,
) -> Iterator[LocalServer]:
    """A started server holding `data`, or else the synthetic project built from the arguments."""
    if data is None:
        data = synthetic_project(
            runs=runs,
            steps=steps,
            metrics=metrics,
            seed=seed,
            eval_every=eval_every,
            entity=entity,
            project=project,
            columnar=True,
        )
        options.setdefault("seed", seed)
    server = LocalServer(data, **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
