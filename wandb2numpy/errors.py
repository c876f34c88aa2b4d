"""One tree of exceptions, so callers can catch a whole kind; the CLI maps each to an exit code
(cli/errors.py, the one table).

    Wandb2NumpyError                 exit 1
    +-- ConfigError                  exit 2  (file, experiment, key: what was expected, what was found)
    +-- FetchError                   exit 1  (talking to the W&B server failed)
    |   +-- AuthError                        (bad or missing API key; never retried)
    +-- RunFileError                 exit 1  (a run folder source that cannot be read: no run file,
    |                                          a file that is not a run file)
    +-- OutputError                  exit 1  (writing results failed or would clobber files)
        +-- OutputExistsError                (files exist and overwrite was not asked for)
        +-- OutputLockedError                (another export holds the output folder)
        +-- ForeignFilesError                (overwrite would delete files no export wrote)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class Wandb2NumpyError(Exception):
    """Base class: every error this package raises on purpose."""


class ConfigError(Wandb2NumpyError):
    """A config that cannot be exported; raised before any request or write."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        experiment: str | None = None,
        key: str | None = None,
    ) -> None:
        self.source = source
        self.experiment = experiment
        self.key = key
        self.detail = message
        where = []
        if source:
            where.append(str(source))
        if experiment:
            where.append(f"experiment '{experiment}'")
        if key:
            where.append(f"key '{key}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class FetchError(Wandb2NumpyError):
    """Talking to the W&B server failed in a way retries could not fix."""


class AuthError(FetchError):
    """The server refused the API key. The key itself is never part of the message."""


class RunFileError(Wandb2NumpyError):
    """Run files on disk that cannot be read at all (damage inside a run file is only warned
    about: what can be read is read)."""


class OutputError(Wandb2NumpyError):
    """Results could not be written safely."""


class OutputExistsError(OutputError):
    """Files an earlier export wrote are in the way and overwrite was not asked for. Only those
    are listed: files a person added are kept by an overwrite, so they are not in the way."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        shown = ", ".join(str(p) for p in self.paths[:5])
        more = f" and {len(self.paths) - 5} more" if len(self.paths) > 5 else ""
        super().__init__(
            f"{len(self.paths)} file(s) of an earlier export already exist: {shown}{more}; "
            "pass -o/--overwrite to replace them (files wandb2numpy did not write are kept)"
        )


class OutputLockedError(OutputError):
    pass


class ForeignFilesError(OutputError):
    """Overwriting would delete or replace files that no earlier export wrote.

    Raised before any request, except for a clash with a file of ``fields: all``, whose names
    are only known once the runs are listed.
    """

    def __init__(self, folder: Path, paths: Sequence[Path], *, clash: bool = False) -> None:
        self.folder = folder
        self.paths = list(paths)
        shown = ", ".join(str(p) for p in self.paths[:5])
        more = f" and {len(self.paths) - 5} more" if len(self.paths) > 5 else ""
        if clash:
            what = (
                f"{folder} holds {len(self.paths)} file(s) that wandb2numpy did not write "
                f"where this export writes its own: {shown}{more}"
            )
        else:
            what = (
                f"{folder} was not written by wandb2numpy (no manifest of an earlier "
                f"export) and holds {len(self.paths)} file(s): {shown}{more}"
            )
        self.what = what
        never = "" if clash else "; -o/--overwrite never replaces such a folder"
        super().__init__(
            f"{what}{never}; move them away or choose another output_path or experiment name, or pass "
            "--delete-foreign-files (Python: delete_foreign_files=True) to replace the folder "
            "as a whole, deleting them"
        )
