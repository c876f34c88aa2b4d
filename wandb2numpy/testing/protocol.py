"""The GraphQL layer: operation name + variables in, the JSON the 0.31 client expects out.

There is no GraphQL parser. wandb-core sends a fixed set of documents, so the operation name
(from `operationName`, or the `query Name(` text when wandb-core leaves it empty) picks a
handler, the variables carry the arguments, and each handler returns the fields its document
asks for (extra fields are harmless: the client ignores them).

One shape is recognised by its text rather than its name: a project's `runs(...)` connection
whose nodes ask for `sampledHistory(specs: ...)` (the real schema has that field on every Run
node; wandb's own sweep query uses it). Its client picks the operation name, so the `runs(` and
`sampledHistory(` arguments are read from the query text and resolved against the variables.
`RunsSampledHistory` is the name this server counts as a history read (`faults.HISTORY_OPS`);
the shape is answered, and counted as a history read, under any name.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config.match import FilterError
from .backend import Backend, ProjectRecord, RunRecord
from .history import sample_indices

_OP_RE = re.compile(r"\b(query|mutation|subscription)\s+([A-Za-z_]\w*)")
_PROJECT_OPEN_RE = re.compile(r"\bproject\s*\([^)]*\)\s*\{")
_LISTING_TOKEN_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\{|\}|\bruns\s*\(([^)]*)\)')
_SAMPLED_FIELD_RE = re.compile(r"\bsampledHistory\s*\(([^)]*)\)")
_ARG_RE = re.compile(r"(\w+)\s*:\s*(\$\w+|\[[^\]]*\]|\"(?:[^\"\\]|\\.)*\"|[-\w.]+)")
_LIST_ITEM_RE = re.compile(r"\$\w+|\"(?:[^\"\\]|\\.)*\"|[-\w.]+")


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    op: str
    variables: dict[str, Any]
    query: str

    @property
    def entity(self) -> str | None:
        return self.variables.get("entity") or self.variables.get("entityName")

    @property
    def project(self) -> str | None:
        return self.variables.get("project") or self.variables.get("projectName")

    @property
    def run_id(self) -> str | None:
        v = self.variables
        return v.get("name") or v.get("run") or v.get("runName")


@dataclass(slots=True)
class Reply:
    status: int = 200
    body: bytes = b""
    rows: int = 0
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def parse_request(raw: bytes) -> GraphQLRequest:
    """Raises ValueError on a body that is not a GraphQL POST."""
    doc = json.loads(raw or b"{}")
    if not isinstance(doc, dict) or not isinstance(doc.get("query", ""), str):
        raise ValueError("expected a JSON object with a query")
    query = doc.get("query") or ""
    op = doc.get("operationName") or ""
    if not op:
        m = _OP_RE.search(query)
        op = m.group(2) if m else "Anonymous"
    return GraphQLRequest(op, doc.get("variables") or {}, query)


def json_reply(data: Any, rows: int = 0) -> Reply:
    return Reply(body=json.dumps({"data": data}, separators=(",", ":")).encode(), rows=rows)


def error_reply(message: str, status: int = 200) -> Reply:
    return Reply(status=status, body=json.dumps({"errors": [{"message": message}], "data": None}).encode())


def _cursor(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(base64.b64decode(cursor).decode().split(":", 1)[1])
    except (ValueError, IndexError) as exc:
        raise ValueError(f"bad cursor {cursor!r}") from exc


def _literal(token: str, variables: Mapping[str, Any]) -> Any:
    if token.startswith("$"):
        return variables.get(token[1:])
    if token.startswith("["):
        return [_literal(t, variables) for t in _LIST_ITEM_RE.findall(token[1:-1])]
    if token in ("null", "true", "false") or token.startswith('"') or token.lstrip("-").replace(".", "", 1).isdigit():
        return json.loads(token)
    return token  # an enum value


def field_args(text: str, variables: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments written inside a field's parentheses, with `$variables` resolved."""
    return {name: _literal(tok, variables) for name, tok in _ARG_RE.findall(text)}


def runs_listing(query: str) -> re.Match[str] | None:
    """The `runs(...)` field among the project's own fields (group 1: its arguments), if any."""
    opened = _PROJECT_OPEN_RE.search(query)
    if opened is None:
        return None
    depth = 1
    for tok in _LISTING_TOKEN_RE.finditer(query, opened.end()):
        text = tok.group(0)
        if text == "{":
            depth += 1
        elif text == "}":
            depth -= 1
            if depth == 0:
                return None
        elif tok.group(1) is not None and depth == 1:
            return tok
    return None


def batch_history_field(query: str) -> re.Match[str] | None:
    """The `sampledHistory(...)` asked for on the nodes of a project's runs listing, if any."""
    listing = runs_listing(query)
    return _SAMPLED_FIELD_RE.search(query, listing.end()) if listing else None


def unknown_field_reply(query: str, match: re.Match[str], field_name: str, type_name: str) -> Reply:
    """The validation error a GraphQL server gives for a field its schema lacks (HTTP 200)."""
    line = query.count("\n", 0, match.start()) + 1
    column = match.start() - (query.rfind("\n", 0, match.start()) + 1) + 1
    err = {
        "message": f'Cannot query field "{field_name}" on type "{type_name}".',
        "locations": [{"line": line, "column": column}],
    }
    return Reply(body=json.dumps({"errors": [err], "data": None}).encode())


class Protocol:
    """Dispatches parsed requests to the backend; `parquet_url` is set by the parquet mode.

    `exported_pages_empty` models a service that keeps an exported run's history only in its
    files: step-windowed `sampledHistory` specs (the page queries) then return only its live rows
    (those after the file's, see `exported_rows`), while a whole-run sample (`run.history`) still
    returns every row. `exported_rows` tells how many of a run's first rows its file holds. `unlisted_runs` names the runs a
    listing counts but leaves out of its pages (`FaultSettings.unlisted_runs`).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        parquet_url: Callable[[RunRecord, str], str | None] | None = None,
        exported_pages_empty: bool = False,
        exported_rows: Callable[[RunRecord], int] | None = None,
        unlisted_runs: Callable[[], frozenset[str]] = frozenset,
    ) -> None:
        self.backend = backend
        self.parquet_url = parquet_url
        self.exported_pages_empty = exported_pages_empty
        self.exported_rows = exported_rows
        self.unlisted_runs = unlisted_runs
        self.handlers: dict[str, Callable[[GraphQLRequest, str], Reply]] = {
            "Viewer": self.viewer,
            "GetDefaultEntity": self.viewer,
            "Runs": self.runs,
            "Run": self.run,
            "RunState": self.run,
            "RunSampledHistory": self.sampled_history,
            "RunFullHistory": self.full_history,
            "RunHistoryKeys": self.history_keys,
            "RunParquetHistory": self.parquet_history,
            "HistoryPage": self.history_page,
            "SampledHistoryPage": self.sampled_history,
            "Project": self.project_query,
        }

    def handle(self, req: GraphQLRequest, base_url: str) -> Reply:
        handler = self.handlers.get(req.op)
        if handler is not self.runs and batch_history_field(req.query):
            handler = self.runs  # a runs listing with history, under whatever name its client chose
        if handler is None:
            if "viewer" in req.query and "project(" not in req.query:
                return self.viewer(req, base_url)
            return error_reply(f"local W&B server: unsupported operation {req.op}")
        try:
            return handler(req, base_url)
        except (FilterError, ValueError, TypeError, KeyError) as exc:
            return error_reply(f"{req.op}: {exc}")

    # ---- viewer and projects ---------------------------------------------------------------

    def viewer(self, req: GraphQLRequest, base_url: str) -> Reply:
        ent = self.backend.default_entity
        return json_reply(
            {
                "viewer": {
                    "id": base64.b64encode(f"User:{ent}".encode()).decode(),
                    "entity": ent,
                    "username": ent,
                    "email": f"{ent}@localhost",
                    "admin": False,
                    "flags": "{}",
                    "teams": {"edges": [{"node": {"name": p.entity}} for p in self._entities()]},
                }
            }
        )

    def _entities(self) -> list[Any]:
        seen: dict[str, Any] = {}
        for p in self.backend.projects():
            seen.setdefault(p.entity, p)
        return list(seen.values())

    def project_query(self, req: GraphQLRequest, base_url: str) -> Reply:
        proj = self.backend.project(req.entity, req.project)
        if proj is None:
            return json_reply({"project": None})
        pid = base64.b64encode(f"Project:v1:{proj.name}:{proj.entity}".encode()).decode()
        return json_reply({"project": {"id": pid, "name": proj.name, "entityName": proj.entity, "internalId": pid}})

    def runs(self, req: GraphQLRequest, base_url: str) -> Reply:
        proj = self.backend.project(req.entity, req.project)
        if proj is None:
            return json_reply({"project": None})
        matched, start, per_page = self._listing(proj, req)
        window = matched[start : start + per_page]
        unlisted = self.unlisted_runs()
        # (cursor offset, run); an unlisted run is left out but keeps its place and its count
        listed = [(start + i + 1, r) for i, r in enumerate(window) if r.id not in unlisted]
        full = "summaryMetrics" in req.query or "historyKeys" in req.query
        nodes = [r.full_json if full else r.light_json for _, r in listed]
        rows = 0
        sampled = batch_history_field(req.query)
        if sampled is not None:
            specs = field_args(sampled.group(1), req.variables).get("specs")
            if not isinstance(specs, list):
                raise ValueError("sampledHistory needs specs: [JSONString!]!")
            for i, (_, r) in enumerate(listed):
                out = self._sample(r, specs, base_url)
                rows += sum(len(o) for o in out)
                nodes[i] = '%s,"sampledHistory":%s}' % (nodes[i][:-1], json.dumps(out, separators=(",", ":")))
        edges = ",".join('{"node":%s,"cursor":"%s"}' % (n, _cursor(pos)) for n, (pos, _) in zip(nodes, listed))
        end_cursor = json.dumps(_cursor(start + len(window)) if window else None)
        internal = json.dumps(base64.b64encode(f"Project:v1:{proj.name}:{proj.entity}".encode()).decode())
        body = (
            '{"data":{"project":{"internalId":%s,"runCount":%d,"readOnly":false,"runs":{"edges":[%s],'
            '"pageInfo":{"endCursor":%s,"hasNextPage":%s}}}}}'
            % (internal, len(matched), edges, end_cursor, "true" if start + len(window) < len(matched) else "false")
        )
        return Reply(body=body.encode(), rows=rows)

    def _listing(self, proj: ProjectRecord, req: GraphQLRequest) -> tuple[list[RunRecord], int, int]:
        """The matching runs in order, the page's offset and its size.

        The `runs(...)` arguments come from the query text when it has them (wandb's `Runs`
        passes `first: $perPage, after: $cursor`; other clients name their variables freely),
        else from the variable names wandb's `Runs` uses.
        """
        v = req.variables
        listing = runs_listing(req.query)
        if listing is not None:
            args = field_args(listing.group(1), v)
        else:
            args = {"filters": v.get("filters"), "order": v.get("order"), "after": v.get("cursor")}
            args["first"] = v.get("perPage")
        filters = args.get("filters") or {}
        if isinstance(filters, str):
            filters = json.loads(filters or "{}") or {}
        if not isinstance(filters, Mapping):
            raise FilterError("filters must be an object")
        return proj.query(filters, args.get("order")), _offset(args.get("after")), int(args.get("first") or 50)

    def page_run_ids(self, req: GraphQLRequest) -> list[str]:
        """The runs a batch history request reads, known before it is answered (for `fail_runs`)."""
        proj = self.backend.project(req.entity, req.project)
        if proj is None or batch_history_field(req.query) is None:
            return []
        try:
            matched, start, per_page = self._listing(proj, req)
        except (FilterError, ValueError, TypeError, KeyError):
            return []  # the answer will be the error
        return [r.id for r in matched[start : start + per_page]]

    # ---- one run ---------------------------------------------------------------------------

    def _run_or_reply(self, req: GraphQLRequest) -> RunRecord | Reply:
        proj = self.backend.project(req.entity, req.project)
        if proj is None:
            return json_reply({"project": None})
        run = proj.runs.get(req.run_id or "")
        if run is None:
            return json_reply({"project": {"run": None}})
        return run

    def run(self, req: GraphQLRequest, base_url: str) -> Reply:
        run = self._run_or_reply(req)
        if isinstance(run, Reply):
            return run
        node = run.full_json if "summaryMetrics" in req.query or "historyKeys" in req.query else run.light_json
        return Reply(body=('{"data":{"project":{"run":%s}}}' % node).encode())

    def history_keys(self, req: GraphQLRequest, base_url: str) -> Reply:
        run = self._run_or_reply(req)
        if isinstance(run, Reply):
            return run
        return json_reply({"project": {"run": {"historyKeys": run.history.history_keys()}}})

    def sampled_history(self, req: GraphQLRequest, base_url: str) -> Reply:
        """RunSampledHistory (`specs`, one list per spec) and SampledHistoryPage (one `spec`)."""
        run = self._run_or_reply(req)
        if isinstance(run, Reply):
            return run
        specs = req.variables.get("specs")
        if specs is None:
            specs = [req.variables["spec"]]
        out = self._sample(run, specs, base_url)
        return json_reply({"project": {"run": {"sampledHistory": out}}}, rows=sum(len(o) for o in out))

    def _sample(self, run: RunRecord, specs: list[Any], base_url: str) -> list[list[dict[str, Any]]]:
        """One run's `sampledHistory(specs:)`: one list of rows per spec, whichever query asks.

        A spec is {"keys", "samples"} with optional "minStep" and "maxStep" (inclusive), as a JSON
        string or already decoded.
        """
        h = run.history
        out: list[list[dict[str, Any]]] = []
        exported = self.exported_pages_empty and self._exported_rows(run, base_url)
        for spec in specs:
            if isinstance(spec, str):
                spec = json.loads(spec)
            keys = list(dict.fromkeys(str(k) for k in spec.get("keys") or ["_step"]))
            lo_step, hi_step = spec.get("minStep"), spec.get("maxStep")  # maxStep is inclusive
            lo, hi = h.step_slice(lo_step, None if hi_step is None else int(hi_step) + 1)
            if exported and "minStep" in spec:  # pages see only the live rows
                lo = max(lo, exported)
                hi = max(lo, hi)
            idx = sample_indices(h.rows_with_all(keys, lo, hi), int(spec.get("samples", 500)))
            out.append(h.rows(idx, keys))
        return out

    def full_history(self, req: GraphQLRequest, base_url: str) -> Reply:
        run = self._run_or_reply(req)
        if isinstance(run, Reply):
            return run
        if "events(" in req.query:  # the system-metrics stream: this server records none
            return json_reply({"project": {"run": {"events": []}}})
        h = run.history
        idx = sample_indices(np.arange(len(h)), int(req.variables.get("samples") or 500))
        lines = [json.dumps(r, separators=(",", ":")) for r in h.rows(idx)]
        return json_reply({"project": {"run": {"history": lines}}}, rows=len(lines))

    def history_page(self, req: GraphQLRequest, base_url: str) -> Reply:
        run = self._run_or_reply(req)
        if isinstance(run, Reply):
            return run
        h = run.history
        v = req.variables
        lo, hi = h.step_slice(int(v.get("minStep", 0)), int(v["maxStep"]) if v.get("maxStep") is not None else None)
        hi = min(hi, lo + int(v.get("pageSize") or (hi - lo)))
        lines = [json.dumps(r, separators=(",", ":")) for r in h.rows(np.arange(lo, hi))]
        return json_reply({"project": {"run": {"history": lines}}}, rows=len(lines))

    def _exported_rows(self, run: RunRecord, base_url: str) -> int:
        """How many of the run's first rows its exported file holds (0: no file)."""
        if self.parquet_url is None or self.parquet_url(run, base_url) is None:
            return 0
        return len(run.history) if self.exported_rows is None else self.exported_rows(run)

    def parquet_history(self, req: GraphQLRequest, base_url: str) -> Reply:
        """No exported files (every step live) unless the parquet mode exports this run."""
        run = self._run_or_reply(req)
        if isinstance(run, Reply):
            return run
        url = self.parquet_url(run, base_url) if self.parquet_url else None
        h = run.history
        live_keys = tuple(str(k) for k in req.variables.get("liveKeys") or ["_step"])
        if url is not None:
            live_rows = h.rows(np.arange(self._exported_rows(run, base_url), len(h)), live_keys)
            doc = {"parquetUrls": [url], "liveData": live_rows}
            return json_reply({"project": {"run": {"parquetHistory": doc}}})
        live = h.encoded_cache.get(live_keys)
        if live is None:  # every scan asks for every live step: encode once per run
            live = json.dumps(h.rows(np.arange(len(h)), live_keys), separators=(",", ":"))
            h.encoded_cache[live_keys] = live
        body = '{"data":{"project":{"run":{"parquetHistory":{"parquetUrls":[],"liveData":%s}}}}}' % live
        return Reply(body=body.encode())
