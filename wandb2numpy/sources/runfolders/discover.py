"""Which `.wandb` files a source names: a folder of run folders (`./wandb`), a project folder with
a `wandb/` inside, one run folder, one run file, or a glob of any of these."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

from .wire import RunFileError

__all__ = ["NoRunFilesError", "find_run_files", "is_run_file_name"]

_GLOB_CHARS = frozenset("*?[")


class NoRunFilesError(RunFileError):
    """A source that names no run file."""


def is_run_file_name(name: str) -> bool:
    """`run-<id>.wandb`, as wandb names the file in every run folder (not `.wandb.synced`)."""
    return name.startswith("run-") and name.endswith(".wandb")


def _in_folder(folder: Path) -> list[Path]:
    """The run files under `folder`: its own if it is a run folder, else those of the run folders
    below it. Symbolic links to folders (wandb's `latest-run`) are not followed, so no run is
    found twice; a run folder's own subfolders (files/, logs/) are not searched."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        own = sorted(f for f in files if is_run_file_name(f))
        if own:
            found.extend(Path(root) / f for f in own)
            dirs.clear()
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return found


def find_run_files(source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every run file the source names, each once, sorted. Raises `NoRunFilesError` if there is
    none (naming the source and what was looked for)."""
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    found: dict[str, Path] = {}
    for src in sources:
        text = os.fspath(src)
        path = Path(text).expanduser()
        if path.exists():
            matches = [path]
        elif _GLOB_CHARS & set(text):
            matches = [Path(m) for m in sorted(glob.glob(os.path.expanduser(text), recursive=True))]
        else:
            raise NoRunFilesError(f"run folder source {text}: no such file or folder")
        for m in matches:
            files = [m] if m.is_file() else _in_folder(m) if m.is_dir() else []
            for f in files:
                found.setdefault(os.path.realpath(f), f)
    if not found:
        shown = ", ".join(os.fspath(s) for s in sources)
        raise NoRunFilesError(
            f"run folder source {shown}: no W&B run file found (looked for run-*.wandb in run "
            "folders such as wandb/run-* and wandb/offline-run-*)"
        )
    return sorted(found.values())
