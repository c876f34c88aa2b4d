"""Where history comes from. `base` says what a source is; each other module is one source."""

from __future__ import annotations

from .base import HistorySource, ProgressFn, RunEvent, RunOutcome

__all__ = ["HistorySource", "ProgressFn", "RunEvent", "RunOutcome"]
