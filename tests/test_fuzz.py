"""A seeded fuzz of everything a user types: config documents, and command lines of every
subcommand with hostile values (empty, over-long, NUL, folders, missing folders, bad numbers, bad
URLs, names of the tool's own files). Whatever the input, the outcome is an exit code of the
documented set and, without -v, never a Python traceback on stderr (issue 19).

Pure paths first, a few hundred cases in a few seconds: `parse_config` may only raise ConfigError,
and the CLI runs in-process against a history source that fails at its first listing, so every
check before the first request runs for real and nothing touches the network. Then a handful of
random command lines against the local server, all the way through."""

from __future__ import annotations

import dataclasses
import functools
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wandb2numpy import pipeline
from wandb2numpy.cli import main
from wandb2numpy.config import parse_config
from wandb2numpy.errors import ConfigError, FetchError
from wandb2numpy.runner import FetchStats
from wandb2numpy.testing import FAST_RETRIES, LocalServer, synthetic_project

SEED = 19
BASE = "http://127.0.0.1:9"  # never asked: the history source fails first
EXIT_CODES = {0, 1, 2, 3, 4}
FAST = dataclasses.replace(FAST_RETRIES, attempts=2, max_wait=0.1, rate_limit_pause=0.1)
DRIVES_CLI = True


def project_data() -> dict[str, Any]:
    return synthetic_project(runs=2, steps=10, metrics=2)


# --------------------------------------------------------------------------- hostile values

TEXTS = [
    "",
    " ",
    "-",
    "all",
    "x" * 300,
    "é" * 200,
    "a\x00b",
    "../..",
    ".",
    "..",
    "a/b",
    "a\\b",
    "\n",
    "DEFAULT",
    ".wandb2numpy.lock",
    ".wandb2numpy",
    ".x.tmp-1-0123456789abcdef",
    "train/return",
    "train/return",
    "ünïcödé",
    "0",
    "-1",
    "1e999",
    "nan",
    "inf",
    "12000",
    "all ",
]
NUMBERS = ["0", "-1", "1", "16", "nan", "inf", "-inf", "1e999", "1.5", "", "x", "99999999999999999999"]
URLS = ["http://127.0.0.1:9", "https://", "ftp://x", "", "localhost:8080", "http://[::1", "http://a b"]
PATHS = [
    "out",
    "",
    " ",
    "nodir/x.log",
    "dir",
    "dir/",
    "cfg.yaml",
    "cfg.yaml/x",
    "x" * 300,
    "dir/" + "é" * 130,
    "a\x00b",
    "-",
    "s.json",
    "dir/s.json",
    "deep/er/s.json",
    ".wandb2numpy.lock",
]
CONFIGS = [
    "cfg.yaml",
    "bad.yaml",
    "missing.yaml",
    "dir",
    "empty.yaml",
    "acme/rl-paper",
    "./demo",
    "",
    "x" * 300,
    "a\x00b",
    "notyaml.txt",
]


def _scalar(rng: random.Random) -> Any:
    return rng.choice(
        [
            None,
            True,
            False,
            0,
            -1,
            10**30,
            1.5,
            float("nan"),
            float("inf"),
            rng.choice(TEXTS),
            [],
            {},
            [rng.choice(TEXTS)],
            {"values": [rng.choice(TEXTS)]},
            {"min": "x", "max": None},
            [[rng.choice(TEXTS)]],
        ]
    )


KEYS = [
    "entity",
    "project",
    "fields",
    "output_path",
    "groups",
    "job_types",
    "runs",
    "tags",
    "history_samples",
    "output_data_type",
    "config",
    "summary",
    "x_axis",
    "grid",
    "bogus",
    "fileds",
]


def random_config(rng: random.Random, out: str = "out", mutations: int = 3) -> dict[Any, Any]:
    """A valid experiment with a few keys set to anything: near misses find more than noise."""
    exp: dict[Any, Any] = {"entity": "demo", "project": "synthetic", "fields": ["train/return"], "output_path": out}
    for key in rng.sample(KEYS, rng.randint(0, mutations)):
        exp[key] = _scalar(rng)
    if mutations == 0:
        return {"exp": exp}
    name: Any = rng.choice(["exp", "curves", *TEXTS, 5, None, True])
    doc: dict[Any, Any] = {name: exp}
    if rng.random() < 0.3:
        doc["DEFAULT"] = {rng.choice(KEYS): _scalar(rng)}
    if rng.random() < 0.1:
        doc = rng.choice([{}, {"DEFAULT": exp}, {"a": None}, {"a": [1, 2]}])
    return doc


def test_config_validation_raises_only_config_errors() -> None:
    rng = random.Random(SEED)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(400):
        doc = random_config(rng)
        try:
            parse_config(doc, source="fuzz.yaml")
            outcomes["ok"] += 1
        except ConfigError as exc:
            assert str(exc) and "\n" not in str(exc).strip("\n") or len(str(exc).splitlines()) < 40, exc
            outcomes["error"] += 1
    assert outcomes["ok"] > 10 and outcomes["error"] > 100  # both sides are exercised


# --------------------------------------------------------------------------- the command line


class _NoServer:
    """A history source whose first listing fails: the CLI's checks before the first request
    all run, and no case reaches the network."""

    stats = FetchStats()

    async def prepare(self) -> None:
        pass

    async def list_runs(self, exp: Any) -> list[Any]:
        raise FetchError("fuzz: no server here")

    async def read_runs(self, *args: Any, **kwargs: Any) -> list[Any]:
        raise AssertionError("never reached")

    def close(self) -> None:
        pass


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir").mkdir()
    (tmp_path / "cfg.yaml").write_text(
        json.dumps(
            {
                "DEFAULT": {"entity": "demo", "project": "synthetic", "output_path": "out"},
                "curves": {"fields": ["train/return"]},
                "losses": {"fields": ["train/loss"], "output_data_type": "csv"},
            }
        )
    )
    (tmp_path / "bad.yaml").write_text("exp: {entity: demo\n")
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "notyaml.txt").write_text("\x00\x01\x02")
    _exported(tmp_path / "out")  # so `plot out/curves` gets past the folder checks
    monkeypatch.setattr(pipeline, "export", functools.partial(pipeline.export, source=_NoServer()))
    monkeypatch.setattr(pipeline, "plan_export", functools.partial(pipeline.plan_export, source=_NoServer()))
    yield tmp_path


def _exported(out: Path) -> None:
    """A small export of experiment `curves` (three runs in two groups), written as the tool does."""
    import numpy as np
    from conftest import make_run

    from wandb2numpy.assemble import ExperimentResult, FieldArrays
    from wandb2numpy.output.folder import write_experiment

    runs = [make_run(f"r{i}", group="ab"[i % 2], job_type="train") for i in range(3)]
    values = np.array([[1.0, 2.0, 3.0, 4.0], [2.0, 3.0, np.nan, np.nan], [0.5, 1.5, 2.5, 3.5]])
    steps = np.array([[0.0, 1.0, 2.0, 3.0], [0.0, 2.0, np.nan, np.nan], [0.0, 1.0, 2.0, 3.0]])
    result = ExperimentResult(
        name="curves",
        runs=runs,
        fields={"train/return": FieldArrays(values=values, steps=steps)},
        skipped_fields={},
        failed_runs={},
    )
    write_experiment(result, out, data_type="numpy", overwrite=False)


def random_argv(rng: random.Random) -> list[str]:
    command = rng.choice(["", "export", "export", "fields", "plot", "demo"])
    argv = [command] if command else []
    if command in ("", "export"):
        if rng.random() < 0.9:
            argv.append("cfg.yaml" if rng.random() < 0.6 else rng.choice(CONFIGS))
        options: list[tuple[str, list[str] | None]] = [
            ("-o", None),
            ("--delete-foreign-files", None),
            ("-O", PATHS),
            ("--dry-run", None),
            ("-e", ["curves", "losses", "nope", *TEXTS]),
            ("--concurrency", NUMBERS),
            ("--base-url", URLS),
            ("--allow-empty", None),
            ("--max-rate", NUMBERS),
            ("--start-window", NUMBERS),
            ("--incremental", None),
            ("--log-file", PATHS),
            ("--json-summary", PATHS),
            ("-q", None),
            ("--fields", TEXTS),
            ("--groups", TEXTS),
            ("--samples", NUMBERS + ["all"]),
            ("--bogus", None),
            ("--help", None),
        ]
    elif command == "fields":
        argv.append(rng.choice(CONFIGS))
        options = [("-e", ["curves", *TEXTS]), ("--groups", TEXTS), ("--base-url", URLS), ("--help", None)]
    elif command == "plot":
        argv.append(rng.choice(["out/curves", "out/curves", "out/curves", "dir", "missing", "", "cfg.yaml", "x" * 300]))
        argv += ["--field", rng.choice(["train/return", *TEXTS])]
        options = [
            ("--by", ["group", "job_type", "config.", "config.lr", *TEXTS]),
            ("--stat", ["mean", "median", "iqm", "max", ""]),
            ("--ci", NUMBERS + ["100", "99.9"]),
            ("--points", NUMBERS),
            ("-o", PATHS),
            ("--help", None),
            ("--span", ["common", "all", "x"]),
            ("--title", TEXTS),
            ("--size", ["8,5", "0,0", "x", "1e9,1"]),
            ("--dpi", NUMBERS),
            ("--log-y", None),
            ("--legend", ["best", "outside", "none", "x"]),
        ]
    else:  # demo: only bad values, so it never starts its server here
        if rng.random() < 0.3:
            return [*argv, "--output", rng.choice(["", " ", "x" * 300, "a\x00b"])]
        return [*argv, rng.choice(["--runs", "--steps", "--concurrency"]), rng.choice(["0", "-1", "x", "nan", ""])]
    good = {
        "-O": ["out", "out2"],
        "-e": ["curves", "losses"],
        "--concurrency": ["4"],
        "--base-url": [BASE],
        "--max-rate": ["5"],
        "--start-window": ["2"],
        "--log-file": ["run.log", "dir/run.log"],
        "--json-summary": ["s.json", "dir/s.json", "-"],
        "--fields": ["train/return"],
        "--groups": ["ppo"],
        "--samples": ["10", "all"],
        "--field": ["train/return"],
        "--points": ["20"],
        "--ci": ["90"],
    }
    for option, values in rng.sample(options, rng.randint(0, min(3, len(options)))):
        argv.append(option)
        if values is not None:
            hostile = rng.random() < 0.35 or option not in good
            argv.append(rng.choice(values if hostile else good[option]))
    return argv


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: usage errors (2), --help and --version (0)
        code = exc.code if isinstance(exc.code, int) else 2
    _, err = capsys.readouterr()
    return code, err


def test_command_lines_end_in_an_exit_code_and_never_a_traceback(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(SEED)
    seen: dict[int, int] = {}
    for _ in range(400):
        argv = random_argv(rng)
        code, err = _run(argv, capsys)
        seen[code] = seen.get(code, 0) + 1
        assert code in EXIT_CODES, (argv, code, err)
        assert "Traceback" not in err and "unexpected" not in err, (argv, err)  # no bug behind the net
        if code:
            assert "error" in err or "usage:" in err, (argv, err)
    assert seen.get(2, 0) > 50 and seen.get(1, 0) > 15 and seen.get(0, 0) > 5, (
        seen
    )  # plots drawn too  # both refusals and the failing listing


def test_through_to_the_local_server(
    srv: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A handful of random configs and options, exported for real."""
    monkeypatch.chdir(tmp_path)
    rng = random.Random(SEED)
    codes = []
    for i in range(6):
        cfg = tmp_path / f"c{i}.yaml"
        cfg.write_text(json.dumps(random_config(rng, out=f"out{i}", mutations=i % 3), default=str))
        extra = rng.sample(["-o", "--allow-empty", "-q", "--dry-run", "--incremental"], rng.randint(0, 2))
        code, err = _run([str(cfg), "--base-url", srv.base_url, "--json-summary", f"s{i}.json", *extra], capsys)
        codes.append(code)
        assert code in EXIT_CODES, (cfg.read_text(), code, err)
        assert "Traceback" not in err and "unexpected" not in err, err
    assert codes.count(2) < len(codes)  # some got past validation
