"""What several commands share: the experiments the arguments name, logging, the one-line failure."""

from __future__ import annotations

import argparse
import dataclasses
import glob
import logging
import os
import re
import sys
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypedDict

from ..config import ExperimentConfig, load_config, parse_config
from ..config.defaults import DEFAULT_RETRIES
from ..config.names import experiment_name_problem, output_path_problem
from ..errors import ConfigError, Wandb2NumpyError
from .errors import exit_code_of
from .report import STDOUT, Summary, TqdmLogHandler

if TYPE_CHECKING:
    from ..runner import RetryPolicy

log = logging.getLogger("wandb2numpy")


class _PolicyArg(TypedDict, total=False):
    policy: RetryPolicy


def policy(args: argparse.Namespace) -> _PolicyArg:
    """`policy=` only when an option asks for one, so a caller's default policy stays in force
    (tests/conftest.py hands `export` a short retry policy that way)."""
    retries = getattr(args, "retries", DEFAULT_RETRIES)
    deadline = getattr(args, "deadline", None)
    if not (args.max_rate or args.start_window or retries != DEFAULT_RETRIES or deadline):
        return {}
    from ..runner import RetryPolicy  # with the export, not before the config check

    return {
        "policy": RetryPolicy(
            max_rate=args.max_rate, start_window=args.start_window, attempts=retries + 1, export_deadline=deadline
        )
    }


PROJECT_OUTPUT_DIR = "wandb_data"  # where `export ENTITY/PROJECT` writes without -O, as the demo
_PROJECT_SOURCE = "command line"
_CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
_PROJECT_RE = re.compile(r"[^/\\\s]+(/[^/\\\s]+)?")


def configs(args: argparse.Namespace) -> list[ExperimentConfig]:
    """The experiments the arguments describe: the config file's (`output_path` replaced by
    -O/--output-dir when given), or one experiment named after the project when the fields are
    given on the command line. Both go through `parse_config`, so a mistake reads the same."""
    if is_run_folders(args.config):
        return parse_config(_folders_config(args), source=_PROJECT_SOURCE)
    if _project_mode(args):
        return parse_config(_project_config(args), source=_PROJECT_SOURCE)
    target: str = args.config
    if not os.path.exists(target) and not target.lower().endswith(_CONFIG_SUFFIXES) and _PROJECT_RE.fullmatch(target):
        raise ConfigError(
            f"no config file {target!r}; to export a project without one, name its fields: "
            f"wandb2numpy export ENTITY/PROJECT --fields KEY [KEY ...] (or --fields all)"
        )
    loaded = load_config(target, args.experiments)
    output_dir: str | None = getattr(args, "output_dir", None)
    if output_dir is None:
        return loaded
    _check_output_dir(output_dir)
    return [
        dataclasses.replace(c, output_path=Path(output_dir), raw=MappingProxyType({**c.raw, "output_path": output_dir}))
        for c in loaded
    ]


def is_run_folders(target: str | None) -> bool:
    """Whether the positional argument names run folders rather than a config or a project: a
    folder (./wandb, one run folder), a .wandb file, or a glob that matches something."""
    if target is None:
        return False
    path = os.path.expanduser(target)
    if os.path.isdir(path) or (os.path.isfile(path) and path.endswith(".wandb")):
        return True
    return any(c in target for c in "*?[") and bool(glob.glob(path))


def _folders_config(args: argparse.Namespace) -> dict[str, Any]:
    """The config dict of `export ./wandb --fields ...` (or `fields ./wandb`): one experiment
    named after the project folder, reading the run folders; no entity or project filter."""
    if args.experiments:
        raise ConfigError("-e/--experiments picks experiments of a config file; run folders are one experiment")
    target: str = args.config
    fields: list[str] | None = getattr(args, "fields", None)
    output_dir: str | None = getattr(args, "output_dir", None)
    exp: dict[str, Any] = {
        "source": target,
        "fields": "all" if fields is None or fields == ["all"] else fields,
        "output_path": output_dir if output_dir is not None else PROJECT_OUTPUT_DIR,
    }
    _add_selection(args, exp)
    return {_folders_name(target): exp}


def _add_selection(args: argparse.Namespace, exp: dict[str, Any]) -> None:
    """--groups and --samples into an experiment built from the command line."""
    if args.groups is not None:
        exp["groups"] = "all" if args.groups == ["all"] else args.groups
    samples: str | None = getattr(args, "samples", None)
    if samples is not None:
        exp["history_samples"] = int(samples) if samples.strip().lstrip("-").isdigit() else samples


def _folders_name(target: str) -> str:
    """The experiment (and output folder) name: the run folders' project folder, the one
    holding `wandb/`, when it makes a valid name."""
    path = Path(os.path.expanduser(target)).resolve() if not any(c in target for c in "*?[") else None
    if path is not None:
        if path.is_file():
            path = path.parent
        if path.name.startswith(("run-", "offline-run-")):
            path = path.parent
        if path.name == "wandb":
            path = path.parent
        if path.name and experiment_name_problem(path.name) is None:
            return path.name
    return "runs"


def _project_mode(args: argparse.Namespace) -> bool:
    if args.command == "fields":
        target = args.config
        if target is None or not (os.path.exists(target) or target.lower().endswith(_CONFIG_SUFFIXES)):
            return True
        if args.groups is not None:
            raise ConfigError("--groups goes with ENTITY/PROJECT; a config file names its own groups")
        return False
    if args.fields is None:
        if args.groups is not None or args.samples is not None:
            raise ConfigError(
                "--groups and --samples describe an export without a config file; "
                "they need --fields (a config file says them itself)"
            )
        return False
    if args.config is not None and (os.path.exists(args.config) or args.config.lower().endswith(_CONFIG_SUFFIXES)):
        what = "a folder, not ENTITY/PROJECT" if os.path.isdir(args.config) else "a config file: put the fields in it"
        raise ConfigError(
            f"--fields names the fields of an export without a config file, but {args.config!r} "
            f"is {what}, or give ENTITY/PROJECT"
        )
    return True


def _project_config(args: argparse.Namespace) -> dict[str, Any]:
    """The config dict of `export ENTITY/PROJECT --fields ...`, with WANDB_ENTITY / WANDB_PROJECT
    filling in what the argument leaves out, as wandb itself does."""
    if args.experiments:
        raise ConfigError("-e/--experiments picks experiments of a config file; without one there is only the project")
    target: str | None = args.config
    entity = os.environ.get("WANDB_ENTITY") or None
    project = os.environ.get("WANDB_PROJECT") or None
    if target is not None:
        if not _PROJECT_RE.fullmatch(target):
            raise ConfigError(f"expected ENTITY/PROJECT or PROJECT; found {target!r}", source=_PROJECT_SOURCE)
        entity, _, project = target.rpartition("/") if "/" in target else (entity, "", target)
    fields: list[str] | None = getattr(args, "fields", None)
    if not project or not entity:
        missing = "project" if not project else "entity"
        swallowed = ""
        if target is None and fields and fields[-1] != "all":
            swallowed = (
                f"; every word after --fields is read as a field, {fields[-1]!r} too: put ENTITY/PROJECT "
                "before --fields, as in: wandb2numpy export ENTITY/PROJECT --fields KEY ..."
            )
        raise ConfigError(
            f"no {missing} given: name ENTITY/PROJECT, or set WANDB_ENTITY and WANDB_PROJECT{swallowed}",
            source=_PROJECT_SOURCE,
        )
    output_dir: str | None = getattr(args, "output_dir", None)
    exp: dict[str, Any] = {
        "entity": entity,
        "project": project,
        "fields": "all" if fields is None or fields == ["all"] else fields,
        "output_path": output_dir if output_dir is not None else PROJECT_OUTPUT_DIR,
    }
    _add_selection(args, exp)
    return {project: exp}


def _check_output_dir(path: str) -> None:
    problem = output_path_problem(path)
    if problem:
        raise ConfigError(f"-O/--output-dir: {problem}")


def check_file_option(path: str | None, option: str) -> None:
    """A file the user names for the tool to write (a log, a summary) is checked before the first
    request: a folder in its place or a missing parent would otherwise fail at the end, after the
    export, or create folders nobody asked for. The parent folder is never created."""
    if path is None or path == STDOUT:
        return
    if not path.strip():
        raise ConfigError(f"{option}: expected a file path; found an empty string")
    problem = output_path_problem(path)
    if problem:
        raise ConfigError(f"{option}: {problem.replace('output path', 'path')}")
    target = Path(path)
    parent = target.parent
    try:
        if target.is_dir():
            raise ConfigError(f"{option}: {path} is a folder; name a file (in it, for example)")
        if not parent.is_dir():
            what = "is not a folder" if parent.exists() else "does not exist (it is not created)"
            raise ConfigError(f"{option}: the folder {parent} of {path} {what}")
        if os.path.lexists(target) and not os.access(target, os.W_OK):
            raise ConfigError(f"{option}: {path} is not writable")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(f"{option}: cannot create files in {parent} (permission denied)")
    except OSError as exc:
        raise ConfigError(f"{option}: cannot use {path}: {exc.strerror or exc}") from None


class PipeSafe:
    """stdout that a closed reader cannot break (`wandb2numpy ... | head`, `| true`): the first
    BrokenPipeError points the file descriptor at /dev/null and writing goes on there, so the export,
    its JSON summary file and its exit code are those of a run with a reader. (Without it, the
    first print raised, the summary was never written and the exit code was 1.)"""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.broken = False

    def _silence(self) -> None:
        self.broken = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):  # not a real file (a test's capture)
            pass

    def write(self, text: str) -> int:
        if self.broken:
            return len(text)
        try:
            return int(self._stream.write(text))
        except BrokenPipeError:
            self._silence()
            return len(text)

    def flush(self) -> None:
        if self.broken:
            return
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._silence()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def fail(args: argparse.Namespace, exc: Wandb2NumpyError, summary: Summary | None = None) -> int:
    """One line on stderr (a traceback with -v), the exit code of the error's kind."""
    if args.verbose:
        log.exception("%s failed", args.command)
    else:
        log.error("%s", exc, extra={"console": False})
    print(f"wandb2numpy: error: {exc}", file=sys.stderr)
    code = exit_code_of(exc)
    return summary.fail(code, str(exc)) if summary is not None else code


def setup_logging(verbose: bool, quiet: bool, log_file: str | None = None) -> None:
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING
    # On a terminal the progress bars are drawn there too: log lines go above them, through tqdm.
    handler: logging.Handler = TqdmLogHandler(sys.stderr) if sys.stderr.isatty() else logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("wandb2numpy: %(levelname)s: %(message)s"))
    handler.addFilter(lambda record: getattr(record, "console", True))
    root = logging.getLogger("wandb2numpy")
    root.handlers[:] = [handler]
    root.setLevel(level)
    if log_file:
        try:
            file_handler = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:  # checked before; this is a race with someone else
            raise ConfigError(f"--log-file: cannot open {log_file}: {exc.strerror or exc}") from None
        file_handler.setLevel(logging.DEBUG if verbose else logging.INFO)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(file_handler)
        root.setLevel(min(level, file_handler.level))
    root.propagate = False
