"""The one table from what went wrong to the exit code, used by every command.

    0 done; 1 failed (server, key, output); 2 bad config or usage; 3 partial (some runs failed);
    4 empty (no run matched, a filter value or named field matched nothing); 130 SIGINT; 143 SIGTERM.

The library raises typed errors and never exits; only this module turns them into codes, so a
new error kind gets its code here and nowhere else.
"""

from __future__ import annotations

from ..errors import ConfigError, Wandb2NumpyError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_EMPTY = 0, 1, 2, 3, 4
EXIT_SIGINT, EXIT_SIGTERM = 130, 143

# Most specific first: the first class an error is an instance of decides its code.
ERROR_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (ConfigError, EXIT_USAGE),
    (Wandb2NumpyError, EXIT_FAILED),
)


def exit_code_of(exc: BaseException) -> int:
    for kind, code in ERROR_CODES:
        if isinstance(exc, kind):
            return code
    return EXIT_FAILED


def message_of(exc: BaseException) -> str:
    """The one line shown without -v: the error's own text, first line only."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
