"""Every default of an export, written once: the config schema, the command line, the sources and
the runner read them from here, so `--help`, the README and the behaviour cannot drift apart."""

from __future__ import annotations

from typing import Final

DEFAULT_HISTORY_SAMPLES = 12000  # the original tool's default: rows per run and field, sampled by the server
DEFAULT_X_AXIS = "_step"  # W&B's own step counter, logged with every row
DEFAULT_CONCURRENCY = 16  # history requests in flight: wandb-core allows 10 per Api, we hold one Api per 10 slots
DEFAULT_TIMEOUT_S = 60  # one HTTP request to the server (`--timeout`)
# Retries of one request (`--retries`): while the server looks down waits double from 1 s to
# RETRY_MAX_WAIT_S, so 20 wait at least 360 s in all and a 5-minute outage of the whole server
# loses no run; a request the working server answers with a 500 is retried about once a second.
DEFAULT_RETRIES = 20
RETRY_MAX_WAIT_S = 30.0
DEFAULT_PAGE_SIZE = 1000  # rows per page of a full-history read, as wandb's own scan_history
# Runs per page of a run listing. Reads are planned a listing page at a time (`plan.reads.plan_reads`),
# so one page's reads may start while the next page is still coming (`sources.ahead`).
DEFAULT_LISTING_PAGE = 200
DEFAULT_OUTPUT_DATA_TYPE = "numpy"
GRID_SPANS = ("common", "all")  # grid.span: the x range every run covers, or from the earliest start to the latest end
DEFAULT_GRID_SPAN: Final = "common"  # no run seems to have data it did not log, and every x averages every run
OUTPUT_DATA_TYPES = ("numpy", "csv", "npz", "parquet")  # output/formats registers one format per name, in this order
CONNECT_TIMEOUT_S = 10.0  # our own TCP connects (parquet files, start-up probes); reads wait up to --timeout
