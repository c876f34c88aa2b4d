"""What each run file said at the last incremental export, so files that did not change since are
not decoded again: keyed by path, size and modification time (to the nanosecond).

Kept beside the incremental cache (`<output_path>/.wandb2numpy/<experiment>/runfiles.json`). A
remembered file gives its listing (metadata, summary, each key's kind, rows and last step), not
its rows: the incremental cache holds those, and serves the run when its listing is unchanged. A
file that grew or changed is decoded again, whole; the incremental cache then asks for the steps
after the ones it holds. The entries describe file contents, so a stale or damaged file costs a
decode, never a wrong answer: anything that does not read back is ignored.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ...output.folder import atomic_write_bytes
from .decode import KeyRows, ParsedFile, Resume
from .proto import RunMeta
from .wire import Damage

__all__ = ["FILE_NAME", "Remembered", "entry_of", "load", "resume_of", "save", "stub"]

log = logging.getLogger(__name__)

FILE_NAME = "runfiles.json"
FORMAT_VERSION = 2  # 2: where to read a grown file on from

Remembered = dict[str, dict[str, Any]]  # file path -> entry


def load(path: Path) -> Remembered:
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.info("%s is unreadable (%s); decoding every run file", path, exc)
        return {}
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_VERSION or not isinstance(raw.get("files"), dict):
        return {}
    return {str(k): v for k, v in raw["files"].items() if isinstance(v, dict)}


def save(path: Path, files: Mapping[str, Mapping[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps({"format": FORMAT_VERSION, "files": files}, sort_keys=True, allow_nan=True)
    atomic_write_bytes(path, data.encode("utf-8"))


def unchanged(entry: Mapping[str, Any] | None, size: int, mtime_ns: int) -> bool:
    return entry is not None and entry.get("size") == size and entry.get("mtime_ns") == mtime_ns


def entry_of(parsed: ParsedFile, mtime_ns: int) -> dict[str, Any]:
    meta = dataclasses.asdict(parsed.meta)
    meta.pop("summary_items", None)
    return {
        "size": parsed.size,
        "mtime_ns": mtime_ns,
        "mtime": parsed.mtime,
        "records": parsed.records,
        "meta": meta,
        "summary": parsed.summary,
        "damage": dataclasses.asdict(parsed.damage),
        "keys": {name: [rows.types, rows.count, rows.last, rows.example] for name, rows in parsed.keys.items()},
        **({"resume": _resume_entry(parsed.resume)} if parsed.resume is not None else {}),
    }


def _resume_entry(r: Resume) -> dict[str, Any]:
    return {
        "offset": r.offset,
        "check": r.check,
        "summary": [[list(parts), value.decode("utf-8", "surrogateescape")] for parts, value in r.summary],
        "media": [list(p) for p in r.media],
        "last_step": r.last_step,
        "records": r.records,
        "tail": {k: list(v) for k, v in r.tail.items()},
    }


def resume_of(path: str, entry: Mapping[str, Any] | None) -> Resume | None:
    """Where to read a grown file on from, as its last listing left it (None: read it whole)."""
    if entry is None or not isinstance(entry.get("resume"), dict):
        return None
    base = stub(path, entry)
    if base is None:
        return None
    try:
        r = entry["resume"]
        last = r["last_step"]
        return Resume(
            offset=int(r["offset"]),
            check=int(r["check"]),
            meta=base.meta,
            summary=[
                (tuple(str(p) for p in parts), str(v).encode("utf-8", "surrogateescape")) for parts, v in r["summary"]
            ],
            media=[tuple(str(p) for p in m) for m in r["media"]],
            keys=base.keys,
            last_step=None if last is None else float(last),
            records=int(r["records"]),
            tail={str(k): (float(v[0]), float(v[1])) for k, v in r["tail"].items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        log.info("where to read %s on from does not read back (%s); reading it whole", path, exc)
        return None


def stub(path: str, entry: Mapping[str, Any]) -> ParsedFile | None:
    """The remembered listing of a file as a `ParsedFile` without rows; None if it does not read."""
    try:
        meta_fields = {f.name for f in dataclasses.fields(RunMeta)}
        meta = RunMeta(**{k: v for k, v in entry["meta"].items() if k in meta_fields})
        meta.tags = tuple(meta.tags)
        keys = {}
        for name, (types, count, last, example) in entry["keys"].items():
            last_step = None if last is None or (isinstance(last, float) and math.isnan(last)) else float(last)
            keys[str(name)] = KeyRows(None, None, dict(types), example, int(count), last_step)
        return ParsedFile(
            path=path,
            size=int(entry["size"]),
            mtime=float(entry["mtime"]),
            meta=meta,
            summary=dict(entry["summary"]),
            keys=keys,
            damage=Damage(**entry["damage"]),
            records=int(entry["records"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        log.info("the remembered listing of %s does not read back (%s); decoding it", path, exc)
        return None


def has_rows(files: Sequence[ParsedFile]) -> bool:
    return all(rows.steps is not None for f in files for rows in f.keys.values())
