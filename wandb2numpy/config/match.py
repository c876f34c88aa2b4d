"""Mongo-style run filters and ordering, evaluated the way the W&B service does.

The filter `config.filters.build_filters` sends to the service is evaluated here wherever no
service does it: by the local test server, and by the run-folder source over runs on disk, so
both agree with each other and with the service by construction.

A run is seen as a document: top-level fields (`tags`, `group`, `state`, ...) under both their
GraphQL and snake_case spellings, plus `config.*` and `summary_metrics.*` paths. Missing fields
follow Mongo: `$ne`/`$nin` match them, comparisons and `$regex` never do, `{field: null}` does.
A run attribute that is null (a run without a group) counts as missing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

MISSING: Any = object()
_DATE_FIELDS = {"createdAt", "created_at", "heartbeatAt", "heartbeat_at", "updatedAt", "updated_at"}
_ALIASES = {
    "jobType": "job_type",
    "displayName": "display_name",
    "createdAt": "created_at",
    "heartbeatAt": "heartbeat_at",
    "updatedAt": "heartbeat_at",
    "updated_at": "heartbeat_at",
    "summaryMetrics": "summary_metrics",
    "summary": "summary_metrics",
    "group_name": "group",
    "groupName": "group",
    "sweepName": "sweep",
}


class FilterError(ValueError):
    """A filter the service would reject (unknown operator, bad operand)."""


def parse_date(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return dt.astimezone(timezone.utc).replace(tzinfo=None) if dt.tzinfo else dt


def _nested(root: Any, parts: list[str], *, skip_value: bool) -> Any:
    """Walks `parts`; a literal dotted key wins over nesting, and `config.k.value` means `config.k`."""
    if not parts:
        return root
    if not isinstance(root, Mapping):
        return MISSING
    joined = ".".join(parts)
    if joined in root:
        return root[joined]
    for i in range(len(parts), 0, -1):
        head = ".".join(parts[:i])
        if head in root:
            rest = parts[i:]
            if (
                skip_value
                and rest
                and rest[0] == "value"
                and not (isinstance(root[head], Mapping) and "value" in root[head])
            ):
                rest = rest[1:]
            return _nested(root[head], rest, skip_value=False)
    return MISSING


def resolve(doc: Mapping[str, Any], field: str) -> Any:
    """The value of a filter/order field in a run document, or MISSING."""
    head, _, rest = field.partition(".")
    head = _ALIASES.get(head, head)
    if head in ("config", "summary_metrics") and rest:
        return _nested(doc.get(head, {}), rest.split("."), skip_value=head == "config")
    value = doc.get(_ALIASES.get(field, field), MISSING)
    return MISSING if value is None else value


# ---- comparison helpers ------------------------------------------------------------------


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_num(a) and _is_num(b):
        return bool(a == b)
    if type(a) is not type(b) and not (isinstance(a, str) and isinstance(b, str)):
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            return len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b))
        return False
    if isinstance(a, Mapping):
        return a.keys() == b.keys() and all(_eq(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _candidates(value: Any) -> list[Any]:
    """An array field matches if the array itself or any element does (Mongo)."""
    if isinstance(value, (list, tuple)):
        return [value, *value]
    return [value]


def _matches_eq(value: Any, operand: Any) -> bool:
    if value is MISSING:
        return operand is None
    return any(_eq(c, operand) for c in _candidates(value))


def _compare(value: Any, operand: Any, op: Callable[[Any, Any], bool], date: bool) -> bool:
    if value is MISSING or operand is None:
        return False
    for c in _candidates(value):
        a, b = c, operand
        if date:
            da, db = parse_date(a), parse_date(b)
            if da is not None and db is not None:
                a, b = da, db
        if (
            (_is_num(a) and _is_num(b))
            or (isinstance(a, str) and isinstance(b, str))
            or (isinstance(a, datetime) and isinstance(b, datetime))
        ) and op(a, b):
            return True
    return False


def _regex(value: Any, pattern: Any, options: str) -> bool:
    if value is MISSING:
        return False
    flags = 0
    for ch, flag in (("i", re.I), ("m", re.M), ("s", re.S), ("x", re.X)):
        if ch in options:
            flags |= flag
    try:
        rx = re.compile(str(pattern), flags)
    except re.error as exc:
        raise FilterError(f"bad $regex {pattern!r}: {exc}") from exc
    return any(isinstance(c, str) and rx.search(c) for c in _candidates(value))


_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


_last_text_set: tuple[object, frozenset[str] | None] = (None, None)


def _text_set(operand: list[Any]) -> frozenset[str] | None:
    """An all-text `$in` list as a set (None otherwise), remembered for the list last asked about:
    a query evaluates the same list against every run of the project."""
    global _last_text_set
    last, texts = _last_text_set
    if last is operand:
        return texts
    texts = frozenset(operand) if all(isinstance(o, str) for o in operand) else None
    _last_text_set = (operand, texts)
    return texts


def _eval_ops(value: Any, ops: Mapping[str, Any], field: str) -> bool:
    date = field in _DATE_FIELDS
    for op, operand in ops.items():
        if op == "$eq":
            ok = _matches_eq(value, operand)
        elif op == "$ne":
            ok = not _matches_eq(value, operand)
        elif op in _CMP:
            ok = _compare(value, operand, _CMP[op], date)
        elif op in ("$in", "$nin"):
            if not isinstance(operand, list):
                raise FilterError(f"{op} needs a list")
            if isinstance(value, str) and (texts := _text_set(operand)) is not None:
                hit = value in texts  # the batch query's name $in [...]: a set, not 125 comparisons
            else:
                hit = any(_matches_eq(value, o) for o in operand)
            ok = hit if op == "$in" else not hit
        elif op == "$exists":
            ok = (value is not MISSING) == bool(operand)
        elif op == "$regex":
            ok = _regex(value, operand, str(ops.get("$options", "")))
        elif op == "$options":
            continue
        elif op == "$not":
            ok = not (_eval_ops(value, operand, field) if isinstance(operand, Mapping) else _regex(value, operand, ""))
        else:
            raise FilterError(f"unknown operator {op}")
        if not ok:
            return False
    return True


def matches(doc: Mapping[str, Any], flt: Mapping[str, Any] | None) -> bool:
    """Whether a run document satisfies a Mongo-style filter."""
    if not flt:
        return True
    for key, cond in flt.items():
        if key in ("$and", "$or", "$nor"):
            if not isinstance(cond, list):
                raise FilterError(f"{key} needs a list")
            results = (matches(doc, c) for c in cond)
            ok = all(results) if key == "$and" else (any(results) if key == "$or" else not any(results))
        elif key.startswith("$"):
            raise FilterError(f"unknown top-level operator {key}")
        else:
            value = resolve(doc, key)
            if isinstance(cond, Mapping) and cond and all(str(k).startswith("$") for k in cond):
                ok = _eval_ops(value, cond, key)
            else:
                ok = _matches_eq(value, cond)
        if not ok:
            return False
    return True


# ---- ordering ----------------------------------------------------------------------------


def _rank(v: Any, date: bool) -> tuple[int, Any]:
    """Mongo's cross-type sort order: missing/null < numbers < strings < objects < arrays < bools."""
    if v is MISSING or v is None:
        return (0, 0)
    if isinstance(v, bool):
        return (5, v)
    if _is_num(v):
        return (1, float(v))
    if isinstance(v, str):
        d = parse_date(v) if date else None
        return (2, d.isoformat()) if d else (2, v)
    if isinstance(v, Mapping):
        return (3, repr(sorted(v.items())))
    return (4, repr(v))


def order_key(order: str | None) -> tuple[str, bool]:
    """`+created_at` / `-summary_metrics.loss` / `config.lr` -> (field, descending)."""
    order = (order or "+created_at").strip() or "+created_at"
    desc = order.startswith("-")
    field = order.lstrip("+-").strip()
    return field, desc


def sort_docs(docs: Sequence[Mapping[str, Any]], order: str | None) -> list[Mapping[str, Any]]:
    field, desc = order_key(order)
    date = _ALIASES.get(field, field) in _DATE_FIELDS
    # ties broken by creation time then id, so pages never overlap or skip
    base = sorted(docs, key=lambda d: (_rank(d.get("created_at"), True), d.get("name", "")))
    return sorted(base, key=lambda d: _rank(resolve(d, field), date), reverse=desc)
