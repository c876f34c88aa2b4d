"""Look before fetching: what an export would read, from the run listing alone.

`--dry-run` and `wandb2numpy fields` both stop after the listing: it already holds every matching
run's group, state, history row count and history keys (with types and counts), which is enough to
show what matched, which keys exist and how many history requests the export would plan. So a
wrong filter or a mistyped field costs one listing request per experiment, not a full export, and
nothing is written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ..config.defaults import DEFAULT_X_AXIS
from ..config.filters import describe_filters
from ..models import RunInfo
from ..plan import ExperimentPlan

__all__ = [
    "KeyStats",
    "dry_run_lines",
    "fields_lines",
    "key_stats",
]

RUNS_SHOWN = 50  # runs listed per experiment by --dry-run unless asked for all


@dataclass(frozen=True)
class KeyStats:
    """One history key over the matched runs."""

    key: str
    types: tuple[str, ...]  # every type any run logged it as
    runs: int  # runs that logged it
    rows: int  # rows holding it, over all those runs


def key_stats(runs: Sequence[RunInfo]) -> list[KeyStats]:
    """The history keys of `runs` by name, wandb's own `_wandb*` bookkeeping left out."""
    types: dict[str, dict[str, None]] = {}
    run_count: Counter[str] = Counter()
    rows: Counter[str] = Counter()
    for run in runs:
        for key, info in run.history_keys.items():
            if key.startswith("_wandb") or info.count == 0:
                continue
            types.setdefault(key, {}).update(dict.fromkeys(info.types))
            run_count[key] += 1
            rows[key] += info.count
    return [KeyStats(k, tuple(types[k]), run_count[k], rows[k]) for k in sorted(types)]


# --------------------------------------------------------------------------- text


_MAX_COLUMN = 60  # a longer cell (a 300-character key) stands on its own line above its row


def _printable(text: str) -> str:
    """A cell on one line: newlines, tabs and other control characters as escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> list[str]:
    cells = [[_printable(str(c)) for c in row] for row in (header, *rows)]
    widths = [max((len(c) for c in col if len(c) <= _MAX_COLUMN), default=0) for col in zip(*cells)]

    def line(row: Sequence[str]) -> list[str]:
        first = [row[0]] if len(row[0]) > widths[0] else []
        row = ["", *row[1:]] if first else list(row)
        return [f"  {c}" for c in first] + [
            "  "
            + "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
        ]

    return [text for row in cells for text in line(row)]


def _counts(values: Sequence[str]) -> str:
    return ", ".join(f"{v} {n}" for v, n in Counter(values).most_common())


def _matched(p: ExperimentPlan) -> str:
    exp = p.config
    return f"{exp.name}: {len(p.runs)} run(s) of {exp.location} match {describe_filters(exp)}"


def dry_run_lines(plans: Sequence[ExperimentPlan], *, all_runs: bool = False) -> list[str]:
    """What `--dry-run` prints: per experiment its plan (the runs, fields, files and requests), and the
    problems that make the export exit 4."""
    lines: list[str] = []
    for p in plans:
        lines.append(_matched(p))
        if p.runs:
            lines.append(f"  groups: {_counts([r.group or '(none)' for r in p.runs])}")
            lines.append(f"  states: {_counts([r.state or '(unknown)' for r in p.runs])}")
            shown = p.runs if all_runs else p.runs[:RUNS_SHOWN]
            lines += _table(
                ("id", "name", "group", "state", "rows"),
                [(r.id, r.name, r.group or "", r.state, str(r.history_line_count)) for r in shown],
                right=(4,),
            )
            if len(shown) < len(p.runs):
                lines.append(f"  ... and {len(p.runs) - len(shown)} more run(s) (-v lists them all)")
        plan = p.reads
        samples = "full history" if p.config.history_samples is None else f"{p.config.history_samples} samples"
        fields = ", ".join(p.fields) if p.fields else "(none)"
        lines.append(f"  fields ({samples}): {fields}")
        for name, why in p.left_out.items():
            lines.append(f"  left out: {name!r}: {why}")
        lines += _axis_lines(p)
        if p.files and not p.blocked:
            lines.append(f"  files (at most): {_shorten(p.files)}")
        rows = f"about {plan.rows} row(s)"
        if plan.unknown_runs:
            rows += f", plus {plan.unknown_runs} run(s) the listing gave no counts for"
        if p.config.run_folders is not None:
            lines.append(f"  planned: {rows} read from run files on disk, no request")
            continue
        lines.append(
            f"  planned: {plan.requests} history request(s) for {rows}: "
            f"{plan.batched_runs} run(s) in {plan.batch_requests} shared request(s), "
            f"{plan.single_runs} run(s) on their own in {plan.single_requests} request(s); "
            + (
                f"{plan.parquet_runs} run(s) from parquet exports in {2 * plan.parquet_runs} request(s) "
                "(one more per further file or live tail); "
                if plan.parquet_runs
                else ""
            )
            + (f"{plan.cached_runs} run(s) from the incremental cache; " if plan.cached_runs else "")
            + f"{plan.empty_runs} run(s) hold none of the fields"
        )
    total = sum(p.reads.requests for p in plans if p.config.run_folders is None)
    lines.append(
        f"dry run: {sum(len(p.runs) for p in plans)} run(s) matched, {total} history request(s) "
        "planned; no history fetched, nothing written"
    )
    return lines


def _shorten(files: Sequence[str], shown: int = 8) -> str:
    more = f", ... ({len(files) - shown} more)" if len(files) > shown else ""
    return ", ".join(files[:shown]) + more


def _axis_lines(p: ExperimentPlan) -> list[str]:
    """The x axis and grid, when the config sets them, with how many runs logged the key."""
    exp = p.config
    out = []
    if exp.x_axis != DEFAULT_X_AXIS:
        logged = sum(1 for r in p.runs if exp.x_axis in r.history_keys)
        known = sum(1 for r in p.runs if r.history_keys)
        out.append(f"  x_axis: {exp.x_axis}, logged by {logged} of {known} run(s) the listing gave keys for")
    if exp.grid is not None:
        g = exp.grid
        kind = (
            f"{g.points} points over the common range"
            if g.points is not None
            else f"every {g.every:g} inside the common range"
            if g.every is not None
            else f"{len(g.values or ())} given value(s)"
        )
        out.append(f"  grid: {kind}, method {g.method}")
    return out


def fields_lines(plans: Sequence[ExperimentPlan]) -> list[str]:
    """What `wandb2numpy fields` prints: per experiment the history keys of the matching runs."""
    lines: list[str] = []
    for p in plans:
        lines.append(_matched(p))
        stats = key_stats(p.runs)
        if not stats:
            lines.append("  (no history keys)")
            continue
        lines += _table(
            ("key", "type", "runs", "rows"),
            [(s.key, "/".join(s.types) or "unknown", str(s.runs), str(s.rows)) for s in stats],
            right=(2, 3),
        )
    return lines
