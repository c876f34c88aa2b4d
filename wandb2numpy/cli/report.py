"""What the command line tells people and monitors: exit codes, the printed summary, the JSON
summary and the progress bars.

Kept apart from `cli` so every subcommand (`export`, `demo`, ...) reports the same way without
importing the argument parser, and typed against the exporter's own result types so a change there
shows up here as a type error rather than as a wrong summary.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import Wandb2NumpyError
from .errors import EXIT_EMPTY, EXIT_OK, EXIT_PARTIAL

if TYPE_CHECKING:
    from tqdm import tqdm

    from ..models import RunInfo
    from ..result import ExportResult
    from ..runner import FetchStats


def exit_code(result: ExportResult, *, allow_empty: bool = False) -> int:
    """4 (empty) before 3 (partial): a field name or filter that matches nothing stays wrong on
    the next try, while failed runs may come back. `allow_empty` accepts empty experiments."""
    if result.problems and not allow_empty:
        return EXIT_EMPTY
    return EXIT_PARTIAL if result.runs_failed else EXIT_OK


STDOUT = "-"  # `--json-summary -`: the JSON goes to stdout, and nothing else does


class Summary:
    """The `--json-summary` record: written whatever happened, so a monitor always has one."""

    def __init__(self, config: object, path: str | None = None) -> None:
        self.path = path
        self.started = time.time()
        self.data: dict[str, Any] = {"config": str(config), "exit_code": None, "error": None}

    def budget(self, *, retries: int, deadline: float | None, timeout: float) -> None:
        """The limits the operator set (or the defaults), so a monitor reads them beside the outcome."""
        self.data.update(retries_per_request=retries, deadline_s=deadline, timeout_s=timeout)

    def fail(self, code: int, message: str) -> int:
        self.data.update(exit_code=code, error=message)
        return code

    def done(self, result: ExportResult, code: int | None = None) -> None:
        experiments: dict[str, dict[str, Any]] = {}
        bytes_written = 0
        for name, report in result.experiments.items():
            res = report.result
            size = sum(p.stat().st_size for p in report.files if p.exists())
            bytes_written += size
            experiments[name] = {
                "runs_listed": report.listed_runs,
                "runs_exported": len(res.runs),
                "runs_unchanged": report.unchanged_runs,
                "runs_grown": report.grown_runs,
                "runs_gone": list(report.gone_runs),
                "runs_failed": len(res.failed_runs),
                "runs_skipped": report.skipped_runs,
                "failed_runs": dict(res.failed_runs),
                "fields": {f: list(a.values.shape) for f, a in res.fields.items()},
                "fields_left_out": dict(res.skipped_fields),
                "x_axis": res.x_axis,
                "rows_without_x": dict(report.x_dropped),
                "grid_points": None if res.grid is None else len(res.grid),
                "grid": None if res.grid_range is None else res.grid_range.as_json(),
                "files": [str(p) for p in report.files],
                "bytes_written": size,
            }
        stats = result.stats
        self.data.update(
            exit_code=result.exit_code if code is None else code,
            problems=list(result.problems),
            experiments=experiments,
            runs_exported=result.runs_exported,
            runs_unchanged=sum(r.unchanged_runs for r in result.experiments.values()),
            runs_failed=result.runs_failed,
            runs_skipped=result.runs_skipped,
            calls=stats.calls,
            requests=stats.requests,
            rows_fetched=stats.rows,
            retries=stats.retries,
            rate_limited=stats.rate_limited,
            rate_limited_in_core=stats.rate_limited_in_core,
            deadline_passed=stats.deadline_passed,
            bytes_written=bytes_written,
        )

    def write(self) -> None:
        if not self.path:
            return
        self.data["wall_s"] = round(time.time() - self.started, 3)
        text = json.dumps(self.data, indent=2) + "\n"
        try:
            if self.path == STDOUT:
                sys.stdout.write(text)
                sys.stdout.flush()
                return
            from ..output.folder import atomic_write_bytes

            atomic_write_bytes(self.path, text.encode("utf-8"), make_parents=False)
        except (OSError, Wandb2NumpyError) as exc:
            # Reported, but the exit code stays the export's: the data files are what it is about,
            # and a monitor that finds no summary file knows already that something is off.
            print(f"wandb2numpy: error: could not write the JSON summary {self.path}: {exc}", file=sys.stderr)


_SPANS = {
    "common": "span common: the range every run covers",
    "all": "span all: every run's whole range, NaN where a run has no data",
    "values": "the configured values",
}


def print_summary(result: ExportResult, out: TextIO) -> None:
    from ..grid import format_x

    for name, report in result.experiments.items():
        res = report.result
        print(
            f"{name}: {len(res.runs)} run(s) exported, {len(res.failed_runs)} failed, "
            f"{report.skipped_runs} skipped (no requested field); {len(report.files)} file(s)",
            file=out,
        )
        if report.incremental:
            grown = f" ({report.grown_runs} only their new steps)" if report.grown_runs else ""
            print(f"  incremental: {report.fetched_runs} fetched{grown}, {report.unchanged_runs} unchanged", file=out)
            if report.gone_runs:
                shown = ", ".join(report.gone_runs[:20]) + (", ..." if len(report.gone_runs) > 20 else "")
                print(
                    f"  incremental: {len(report.gone_runs)} run(s) of the last export no longer listed "
                    f"(deleted on the server, or no longer matching the filters): {shown}",
                    file=out,
                )
        if not report.listed_runs:  # every field would read "absent": say why once instead
            print("  no run matched the experiment's filters", file=out)
            continue
        if res.grid is not None:
            span = res.grid_range
            where = (
                ""
                if span is None
                else (f" from {format_x(span.lo)} to {format_x(span.hi)} ({_SPANS.get(span.span, span.span)})")
            )
            print(f"  grid: {len(res.grid)} x value(s) of {res.x_axis}{where}, shared by every field", file=out)
            if span is not None and span.outliers:
                print(f"  grid: short runs: {span.short_runs()}", file=out)
        for field, arrays in res.fields.items():
            print(f"  {field}: shape {arrays.values.shape}", file=out)
        if report.x_dropped or report.runs_without_x:
            dropped = ", ".join(f"{f} {n:,}" for f, n in report.x_dropped.items())
            never = f"; {report.runs_without_x} run(s) never logged it" if report.runs_without_x else ""
            print(
                f"  x_axis {res.x_axis}: {sum(report.x_dropped.values()):,} row(s) without it dropped"
                f"{f' ({dropped})' if dropped else ''}{never}",
                file=out,
            )
        for field, reason in res.skipped_fields.items():
            print(f"  {field}: left out, {reason}", file=out)
        for run_id, error in res.failed_runs.items():
            print(f"  failed run {run_id}: {error}", file=out)
    stats = result.stats
    rate = stats.rows / result.wall_s if result.wall_s > 0 else 0.0
    print(
        f"done: {result.runs_exported} run(s) exported, {result.runs_failed} failed, "
        f"{result.runs_skipped} skipped; {len(result.files)} file(s) written in {result.wall_s:.1f} s; "
        f"{stats.rows} rows ({rate:,.0f} rows/s), {stats.retries} retries, "
        f"{stats.rate_limited + stats.rate_limited_in_core} rate-limited (429)",
        file=out,
    )


class TqdmLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Log lines written with `tqdm.write`, so they go above the progress bars instead of
    breaking them."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


class TqdmProgress:
    """One bar per experiment (runs done of total, rows fetched), in config order, each timing
    from its own start; below them one overall line with rows/s, retries and 429s."""

    def __init__(self) -> None:
        self._bars: dict[str, tqdm[Any]] = {}
        self._rows: dict[str, int] = {}
        self._order: list[str] = []
        self._stats: FetchStats | None = None
        self._overall: tqdm[Any] | None = None
        self._started = time.monotonic()

    def begin(self, experiments: Sequence[str], stats: FetchStats | None = None) -> None:
        """The experiments in config order, before any starts, so their bars stand in that order
        whichever listing comes back first; `stats` feeds the overall line."""
        from tqdm import tqdm

        self._order = list(experiments)
        self._stats = stats
        self._started = time.monotonic()
        for name in self._order:
            self._new_bar(name, None)
        self._overall = tqdm(
            total=None,
            desc="overall",
            unit="run",
            position=len(self._order),
            leave=True,
            bar_format="{desc}: {n_fmt} run(s){postfix}",  # tqdm puts ", " before a postfix
        )
        self._refresh_overall()

    def _new_bar(self, experiment: str, total: int | None) -> tqdm[Any]:
        from tqdm import tqdm

        position = self._order.index(experiment) if experiment in self._order else len(self._bars)
        bar = tqdm(total=total, desc=experiment, unit="run", position=position, leave=True)
        self._bars[experiment] = bar
        self._rows[experiment] = 0
        return bar

    def start(self, experiment: str, total_runs: int) -> None:
        bar = self._bars.get(experiment)
        if bar is None:
            bar = self._new_bar(experiment, total_runs)
        self._rows[experiment] = 0
        bar.reset(total=total_runs)  # the clock starts now, not when the bars were drawn

    def advance(self, experiment: str, run: RunInfo, rows: int, failed: bool) -> None:
        bar = self._bars.get(experiment)
        if bar is None:
            return
        self._rows[experiment] += rows
        bar.set_postfix(rows=self._rows[experiment], refresh=False)
        bar.update(1)
        if self._overall is not None:
            self._overall.update(1)
            self._refresh_overall()

    def _refresh_overall(self) -> None:
        if self._overall is None:
            return
        rows = sum(self._rows.values())
        elapsed = max(time.monotonic() - self._started, 1e-9)
        stats = self._stats
        retries = stats.retries if stats is not None else 0
        limited = (stats.rate_limited + stats.rate_limited_in_core) if stats is not None else 0
        self._overall.set_postfix_str(f"{rows} rows, {rows / elapsed:,.0f} rows/s, {retries} retries, {limited} x 429")

    def finish(self, experiment: str) -> None:
        bar = self._bars.get(experiment)
        if bar is not None:
            bar.refresh()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        if self._overall is not None:
            self._refresh_overall()
            self._overall.close()


HEARTBEAT_S = 30.0  # off a terminal: a line at least this often while retries or waits run


class LineProgress:
    """Progress off a terminal (cron, CI, a pipe), where no bar is drawn: every `every` seconds
    one line, when requests were retried or are waiting to be since the last one, saying what
    and how far the export got, so a log never falls silent for minutes while an outage is
    ridden out. Quiet while everything works: a clean export prints nothing extra."""

    def __init__(self, every: float = HEARTBEAT_S, out: TextIO | None = None) -> None:
        self.every = every
        self.out = out
        self._stats: FetchStats | None = None
        self._totals: dict[str, int | None] = {}
        self._done = 0
        self._failed = 0
        self._retries_seen = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def begin(self, experiments: Sequence[str], stats: FetchStats | None = None) -> None:
        self._stats = stats
        self._totals = {name: None for name in experiments}
        self._thread = threading.Thread(target=self._loop, name="wandb2numpy-progress", daemon=True)
        self._thread.start()

    def start(self, experiment: str, total_runs: int) -> None:
        self._totals[experiment] = total_runs

    def advance(self, experiment: str, run: RunInfo, rows: int, failed: bool) -> None:
        self._done += 1
        self._failed += failed

    def finish(self, experiment: str) -> None:
        pass

    def close(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            line = self.line()
            if line is not None:
                print(line, file=self.out or sys.stderr, flush=True)

    def line(self) -> str | None:
        """The progress line, or None when nothing was retried or waited for since the last one."""
        stats = self._stats
        retries = stats.retries if stats is not None else 0
        waiting = stats.waiting if stats is not None else 0
        if retries == self._retries_seen and not waiting:
            return None
        new = retries - self._retries_seen
        self._retries_seen = retries
        known = [t for t in self._totals.values() if t is not None]
        total = f" of {sum(known)}" if known and len(known) == len(self._totals) else ""
        failed = f", {self._failed} failed" if self._failed else ""
        latest = stats.last_retry[:200] if stats is not None and stats.last_retry else ""
        return (
            f"wandb2numpy: still working: {self._done}{total} run(s) done{failed}; "
            f"{new} request(s) retried in the last {self.every:g} s, {waiting} waiting to retry"
            + (f"; latest: {latest}" if latest else "")
        )
