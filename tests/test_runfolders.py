"""Run folders as a source: files the real wandb SDK wrote offline, read back exactly.

The SDK writes the module's project once (a subprocess, `WANDB_MODE=offline`, temporary folders,
no network): eight runs in groups, job types and tags, with config and summary values, sparse
keys, NaN and infinities, booleans, text, a histogram, an image, nested dict metrics, a failed
run and a run resumed in a second folder at a step offset. What was logged is `SPEC`; every value
read back is compared with it bit for bit. The same project served by the local server gives the
same arrays through the W&B source.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from conftest import same_bits
from test_export import FILTER_CASES, RUNS

from wandb2numpy import ClientSettings, export
from wandb2numpy.config import ExperimentConfig, parse_config
from wandb2numpy.models import RunInfo
from wandb2numpy.sources.base import RunOutcome
from wandb2numpy.sources.runfolders import fast, proto
from wandb2numpy.sources.runfolders.decode import parse_file
from wandb2numpy.sources.runfolders.discover import NoRunFilesError, find_run_files
from wandb2numpy.sources.runfolders.source import RunFolderSource, sample_rows
from wandb2numpy.sources.runfolders.wire import BLOCK, NotARunFileError, RunFileError, read_chunks
from wandb2numpy.testing import LocalServer
from wandb2numpy.testing.runfiles import RunFileWriter

NAN, INF = "__nan__", "__inf__"  # how SPEC writes what JSON cannot hold


def _rows(i: int, rid: str) -> list[tuple[int, dict[str, Any]]]:
    """Run i's logged rows (step, values), test_export's history plus what only the SDK makes."""
    rows = []
    for step in range(5 + i):
        row: dict[str, Any] = {"loss": 1.0 / (step + 1) + i}
        if step % 2 == 0:
            row["return"] = 10.0 * step + i
        if step % 3 == 0 and rid != "a5":
            row["eval/score"] = step * 0.5 + i
        if rid == "a6":
            row["note"] = f"text {step}"
            row["hist"] = {"__hist__": [1, 2, step]}
        if rid == "a2":
            row["flag"] = step % 2 == 0
        if rid == "a3":
            row["eval2"] = {"mean": step * 1.5, "deep": {"x": step - 2}}
        if rid == "a4" and step == 1:
            row["frame"] = {"__image__": 4}
        rows.append((step, row))
    if rid == "a1":
        rows[2][1]["loss"] = NAN
        rows[3][1]["loss"] = INF
        rows[4][1]["loss"] = "__-inf__"
    return rows


def _spec() -> list[dict[str, Any]]:
    """What the SDK logs, run by run (a8 in two folders: resumed, at a step offset)."""
    out = []
    for i, (rid, name, group, job, tags, lr, env, seed, ret) in enumerate(RUNS):
        run = {
            "id": rid,
            "name": name,
            "group": group,
            "job_type": job,
            "tags": tags,
            "config": {"lr": lr, "env": {"name": env}, "seed": seed},
            "summary": {"return": ret},
            "rows": _rows(i, rid),
            "exit_code": 1 if rid == "a7" else 0,
        }
        if rid == "a8":
            first = dict(run, rows=run["rows"][:6], summary={})
            out.append(first)
            run = dict(run, rows=run["rows"][6:], resume=True)
        out.append(run)
    return out


SPEC = _spec()
IDS = [r[0] for r in RUNS]

GENERATOR = r"""
import json, os, sys
import numpy as np
import wandb

def value(v):
    if v == "__nan__":
        return float("nan")
    if v == "__inf__":
        return float("inf")
    if v == "__-inf__":
        return float("-inf")
    if isinstance(v, dict):
        if "__image__" in v:
            return wandb.Image(np.zeros((v["__image__"], v["__image__"], 3), dtype=np.uint8))
        if "__hist__" in v:
            counts = v["__hist__"]
            return wandb.Histogram(np_histogram=(counts, list(range(len(counts) + 1))))
        return {k: value(x) for k, x in v.items()}
    return v

for r in json.load(open(sys.argv[1])):
    run = wandb.init(project="rl", entity="acme", id=r["id"], name=r["name"], group=r["group"],
                     job_type=r["job_type"], tags=r["tags"], config=r["config"],
                     resume="allow" if r.get("resume") else None)
    for step, row in r["rows"]:
        run.log({k: value(v) for k, v in row.items()}, step=step, commit=True)
    if r["summary"]:
        run.summary.update(r["summary"])
    run.finish(exit_code=r["exit_code"])
"""


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project as the SDK writes it offline: the folder holding `wandb/`."""
    root = tmp_path_factory.mktemp("sdk")
    spec = root / "spec.json"
    spec.write_text(json.dumps(SPEC))
    env = dict(os.environ, WANDB_MODE="offline", WANDB_DIR=str(root), WANDB_SILENT="true")
    env.pop("WANDB_API_KEY", None)
    done = subprocess.run(
        [sys.executable, "-c", GENERATOR, str(spec)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return root


@pytest.fixture
def folder(logged: Path, tmp_path: Path) -> Path:
    """A copy of the logged project's `wandb/` a test may change."""
    return Path(shutil.copytree(logged / "wandb", tmp_path / "wandb", symlinks=True))


# ------------------------------------------------------------------------------ what was logged


def _number(v: Any) -> float | None:
    if v == NAN:
        return math.nan
    if v == INF:
        return math.inf
    if v == "__-inf__":
        return -math.inf
    if isinstance(v, (bool, int, float)):
        return float(v)
    return None


def _flat(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, dict) and not ({"__hist__", "__image__"} & set(v)):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def truth(rid: str) -> dict[str, tuple[list[float], list[float]]]:
    """Per numeric key of run `rid`: the steps and values logged (later segments win)."""
    merged: dict[str, dict[int, float]] = {}
    for run in SPEC:
        if run["id"] != rid:
            continue
        for step, row in run["rows"]:
            for key, v in _flat(row).items():
                x = _number(v)
                if x is not None:
                    merged.setdefault(key, {})[step] = x
    return {k: (sorted(d), [d[s] for s in sorted(d)]) for k, d in merged.items()}


NUMERIC = ["loss", "return", "eval/score", "flag", "eval2.mean", "eval2.deep.x"]


def experiment(tmp_path: Path, **exp: Any) -> ExperimentConfig:
    base = {
        "entity": "acme",
        "project": "rl",
        "fields": NUMERIC,
        "output_path": str(tmp_path / "out"),
        "history_samples": "all",
    }
    base.update(exp)
    return parse_config({"exp": base})[0]


def listed(source: RunFolderSource, exp: ExperimentConfig) -> list[RunInfo]:
    async def go() -> list[RunInfo]:
        return await source.list_runs(exp)

    return anyio.run(go)


def read(
    source: RunFolderSource,
    runs: list[RunInfo],
    fields: list[str],
    samples: int | None = None,
    starts: list[int] | None = None,
) -> list[RunOutcome]:
    async def go() -> list[RunOutcome]:
        return await source.read_runs(runs, fields, samples=samples, starts=starts)

    return anyio.run(go)


@pytest.fixture
def source(logged: Path) -> Iterator[RunFolderSource]:
    src = RunFolderSource(logged / "wandb", workers=1)
    yield src
    src.close()


def _run_files(root: Path) -> list[Path]:
    return sorted(root.rglob("run-*.wandb"))


# ------------------------------------------------------------------------------ listing and values


def test_runs_are_listed_as_the_service_lists_them(source: RunFolderSource, tmp_path: Path) -> None:
    runs = listed(source, experiment(tmp_path))
    assert [r.id for r in runs] == IDS  # creation order
    by_id = {r.id: r for r in runs}
    for rid, name, group, job, tags, lr, env, seed, ret in RUNS:
        r = by_id[rid]
        assert (r.name, r.group, r.job_type, list(r.tags)) == (name, group, job, tags)
        assert (r.entity, r.project) == ("acme", "rl")
        assert r.config == {"lr": lr, "env": {"name": env}, "seed": seed}
        assert r.summary["return"] == ret
        assert r.state == ("failed" if rid == "a7" else "finished")
        assert r.last_step == max(max(s) for s, _ in truth(rid).values())
        assert r.created_at is not None and r.created_at.endswith("Z")
    keys = by_id["a6"].history_keys
    assert keys["note"].types == ("string",) and not keys["note"].numeric
    assert keys["hist"].types == ("histogram",) and keys["hist"].count == 10
    assert keys["loss"].types == ("number",) and keys["loss"].count == 10
    assert "hist.values" not in keys and "hist._type" not in keys  # a media object is one key
    assert by_id["a2"].history_keys["flag"].types == ("boolean",)
    assert by_id["a4"].history_keys["frame"].types == ("image-file",)
    assert by_id["a3"].history_keys["eval2.deep.x"].count == 7
    assert {"_step", "_runtime", "_timestamp"} <= set(keys)


def test_full_history_is_exactly_what_was_logged(source: RunFolderSource, tmp_path: Path) -> None:
    exp = experiment(tmp_path)
    runs = listed(source, exp)
    outcomes = read(source, runs, NUMERIC)
    for run, outcome in zip(runs, outcomes):
        expected = truth(run.id)
        assert outcome.error is None
        assert set(outcome.series) == set(expected) & set(NUMERIC), run.id
        for key, series in outcome.series.items():
            steps, values = expected[key]
            assert same_bits(series.steps, np.array(steps, dtype=np.float64)), (run.id, key)
            assert same_bits(series.values, np.array(values, dtype=np.float64)), (run.id, key)
    a1 = outcomes[0].series["loss"].values
    assert math.isnan(a1[2]) and a1[3] == math.inf and a1[4] == -math.inf


def test_text_and_media_are_reported_not_exported(source: RunFolderSource, tmp_path: Path) -> None:
    exp = experiment(tmp_path, fields=["loss", "note", "hist", "frame"])
    runs = listed(source, exp)
    outcomes = dict(zip([r.id for r in runs], read(source, runs, ["loss", "note", "hist", "frame"])))
    assert outcomes["a6"].non_numeric == {"note": "logged as string", "hist": "logged as histogram"}
    assert outcomes["a4"].non_numeric == {"frame": "logged as image-file"}
    assert set(outcomes["a6"].series) == {"loss"}


def test_resumed_run_is_one_run_from_both_folders(logged: Path, source: RunFolderSource, tmp_path: Path) -> None:
    runs = listed(source, experiment(tmp_path, runs=["sac-h-1"]))
    assert [r.id for r in runs] == ["a8"]
    assert len(list((logged / "wandb").glob("offline-run-*-a8*"))) == 2
    (outcome,) = read(source, runs, ["loss", "return"])
    steps, values = truth("a8")["loss"]
    assert outcome.series["loss"].steps.tolist() == steps == list(range(12))
    assert outcome.series["loss"].values.tolist() == values
    assert runs[0].summary["return"] == 800.0


@pytest.mark.parametrize("filters,expected", FILTER_CASES)
def test_every_filter_works_as_on_the_service(logged: Path, tmp_path: Path, filters: dict, expected: list[str]) -> None:
    src = RunFolderSource(logged / "wandb", workers=1)
    try:
        assert [r.id for r in listed(src, experiment(tmp_path, **filters))] == expected
    finally:
        src.close()


def test_entity_and_project_leave_out_runs_recorded_elsewhere(source: RunFolderSource, tmp_path: Path) -> None:
    assert listed(source, experiment(tmp_path, project="other")) == []
    assert listed(source, experiment(tmp_path, entity="someone-else")) == []
    everything = dataclasses.replace(experiment(tmp_path), entity="", project="")
    assert [r.id for r in listed(source, everything)] == IDS


def test_sampling_keeps_first_last_and_evenly_spaced_rows(source: RunFolderSource, tmp_path: Path) -> None:
    exp = experiment(tmp_path, runs=["sac-h-1", "td3-h-0"], history_samples=4)
    runs = listed(source, exp)
    once = read(source, runs, ["loss"], samples=4)
    again = read(source, runs, ["loss"], samples=4)
    for run, a, b in zip(runs, once, again):
        steps, values = truth(run.id)["loss"]
        pick = np.rint(np.linspace(0, len(steps) - 1, 4)).astype(int)
        assert a.series["loss"].steps.tolist() == [steps[i] for i in pick]
        assert a.series["loss"].values.tolist() == [values[i] for i in pick]
        assert a.series["loss"].steps[0] == steps[0] and a.series["loss"].steps[-1] == steps[-1]
        assert b.series["loss"].steps.tolist() == a.series["loss"].steps.tolist()  # deterministic
    assert sample_rows(3, 10).tolist() == [0, 1, 2]
    assert sample_rows(10, 1).tolist() == [0]


def test_starts_read_only_the_steps_after(source: RunFolderSource, tmp_path: Path) -> None:
    runs = listed(source, experiment(tmp_path, runs=["sac-h-1"]))
    (outcome,) = read(source, runs, ["loss"], starts=[7])
    assert outcome.series["loss"].steps.tolist() == [7, 8, 9, 10, 11]


def test_fields_not_read_at_listing_are_read_when_asked(source: RunFolderSource, tmp_path: Path) -> None:
    runs = listed(source, experiment(tmp_path, fields=["loss"]))
    outcomes = read(source, runs, ["return", "_runtime"])
    for run, outcome in zip(runs, outcomes):
        assert outcome.series["return"].values.tolist() == truth(run.id)["return"][1]
        assert len(outcome.series["_runtime"]) == run.history_line_count


def test_worker_processes_give_the_same_result(logged: Path, tmp_path: Path) -> None:
    exp = experiment(tmp_path)
    inline = RunFolderSource(logged / "wandb", workers=1)
    pooled = RunFolderSource(logged / "wandb", workers=2, inline_bytes=0)
    try:
        a, b = listed(inline, exp), listed(pooled, exp)
        assert a == b
        for x, y in zip(read(inline, a, NUMERIC), read(pooled, b, NUMERIC)):
            assert x.series.keys() == y.series.keys()
            for k in x.series:
                assert same_bits(x.series[k].values, y.series[k].values)
    finally:
        inline.close()
        pooled.close()


# ------------------------------------------------------------------------------ the decoders


def _pb() -> Any:
    from wandb.proto import wandb_internal_pb2

    return wandb_internal_pb2


def _records(path: Path) -> list[bytes]:
    from wandb2numpy.sources.runfolders.wire import Damage

    out: list[bytes] = []
    for chunk in read_chunks(path, Damage()):
        out += chunk.other + chunk.history + chunk.summary
    return out


def test_reader_agrees_with_wandbs_own_protobuf(logged: Path) -> None:
    """Every SDK-written file, decoded record by record with wandb_internal_pb2, gives the run
    metadata, config and history this reader gives."""
    pb = _pb()
    for path in _run_files(logged):
        parsed = parse_file(path)
        history: dict[str, dict[float, Any]] = {}
        n_records = 0
        for body in _records(path):
            rec = pb.Record.FromString(body)
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                r = rec.run
                assert (parsed.meta.run_id, parsed.meta.display_name, parsed.meta.group, parsed.meta.job_type) == (
                    r.run_id,
                    r.display_name,
                    r.run_group,
                    r.job_type,
                )
                assert parsed.meta.tags == tuple(r.tags)
                assert parsed.meta.start_time == pytest.approx(r.start_time.seconds + r.start_time.nanos / 1e9)
                assert parsed.meta.config == {
                    it.key or ".".join(it.nested_key): json.loads(it.value_json) for it in r.config.update
                }
            elif kind == "exit":
                assert parsed.meta.exit_code == rec.exit.exit_code
            elif kind == "history":
                n_records += 1
                items = {tuple(it.nested_key) or (it.key,): it.value_json for it in rec.history.item}
                step = float(json.loads(items[("_step",)]))
                for parts, raw in items.items():
                    history.setdefault(".".join(parts), {})[step] = json.loads(raw)
        assert parsed.records == n_records
        for key, rows in parsed.keys.items():
            if rows.values is None:
                continue
            expected = history[key]
            assert rows.steps.tolist() == sorted(expected), (path, key)
            assert same_bits(rows.values, np.array([float(expected[s]) for s in sorted(expected)])), (path, key)


def test_bulk_reading_equals_reading_record_by_record(logged: Path) -> None:
    """Every reader reads the SDK's files alike: record by record, in bulk, in bulk by small
    chunks, and the fast reader (compiled and numpy), which reads all of them (none declined)."""
    for path in _run_files(logged):
        bulk = parse_file(path, fast_reader=False)
        assert bulk.slow_chunks == (0, 0), path  # the SDK's files need no record-by-record reading
        slow = parse_file(path, bulk=False)
        small_chunks = parse_file(path, chunk_blocks=1, fast_reader=False)
        quick = parse_file(path)
        with fast.numpy_only():
            quick_numpy = parse_file(path)
        assert quick.fast and quick_numpy.fast, path
        for other in (slow, small_chunks, quick, quick_numpy):
            assert other.meta == bulk.meta
            assert other.summary == bulk.summary
            assert other.keys.keys() == bulk.keys.keys()
            for key, rows in bulk.keys.items():
                got = other.keys[key]
                assert got.types == rows.types and got.example == rows.example, (path, key)
                assert same_bits(got.steps, rows.steps)
                assert (got.values is None) == (rows.values is None)
                if rows.values is not None:
                    assert same_bits(got.values, rows.values)


def _in_file_order(path: Path) -> list[bytes]:
    """The file's records in order, framed the plain way (no damage handling): the reference."""
    data = path.read_bytes()
    out: list[bytes] = []
    pieces = b""
    pos = 7
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:
            pos += BLOCK - pos % BLOCK
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        pieces += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            out.append(pieces)
            pieces = b""
    return out


def test_summary_follows_every_update_in_order(logged: Path) -> None:
    pb = _pb()
    for path in _run_files(logged):
        expected: dict[str, Any] = {}
        for body in _in_file_order(path):
            rec = pb.Record.FromString(body)
            kind = rec.WhichOneof("record_type")
            updates = rec.summary.update if kind == "summary" else rec.run.summary.update if kind == "run" else []
            proto.apply_items(
                expected, [proto.Item(tuple(it.nested_key) or (it.key,), it.value_json.encode()) for it in updates]
            )
        assert json.dumps(parse_file(path).summary, sort_keys=True) == json.dumps(expected, sort_keys=True), path
    a6 = next(p for p in _run_files(logged) if "-a6" in str(p))
    summary = parse_file(a6).summary
    assert summary["hist"]["_type"] == "histogram" and summary["return"] == 600.0
    assert summary["note"] == "text 9" and summary["_step"] == 9 and summary["_wandb"] == {"runtime": 0}


def test_written_files_read_like_sdk_files(logged: Path, tmp_path: Path) -> None:
    """The benchmark's writer writes what the SDK writes: wandb's protobuf reads every record,
    and the reader gets the same rows from both."""
    pb = _pb()
    spec = next(r for r in SPEC if r["id"] == "a3")
    w = RunFileWriter(
        tmp_path,
        run_id="a3",
        project="rl",
        entity="acme",
        display_name=spec["name"],
        group=spec["group"],
        job_type=spec["job_type"],
        tags=tuple(spec["tags"]),
        config=spec["config"],
    )
    for step, row in spec["rows"]:
        w.log({k: _number(v) if _number(v) is not None else v for k, v in row.items()}, step=step)
    w.summary(spec["summary"])
    written = parse_file(w.finish())
    sdk = parse_file(next(p for p in _run_files(logged) if "-a3" in str(p)))
    for body in _records(Path(written.path)):
        assert pb.Record.FromString(body).WhichOneof("record_type") in {"header", "run", "history", "summary", "exit"}
    assert written.meta.config == sdk.meta.config and written.meta.tags == sdk.meta.tags
    assert (written.meta.group, written.meta.job_type, written.meta.exit_code) == ("ppo", "eval", 0)
    assert written.keys.keys() == sdk.keys.keys()
    for key in written.keys.keys() - {"_runtime", "_timestamp"}:
        assert same_bits(written.keys[key].steps, sdk.keys[key].steps)
        assert same_bits(written.keys[key].values, sdk.keys[key].values)  # type: ignore[arg-type]
    assert {k: v for k, v in written.summary.items() if not k.startswith("_")} == {
        k: v for k, v in sdk.summary.items() if not k.startswith("_")
    }


def test_records_across_blocks_and_odd_keys(tmp_path: Path) -> None:
    """Records in several pieces, keys of 200 bytes, unicode keys, a key written as `key`
    rather than `nested_key`: the bulk reader reads them or declines to the exact reader."""
    w = RunFileWriter(tmp_path, run_id="odd", project="p")
    long_key = "k" * 200
    for step in range(300):
        w.log({"loss": step * 0.25, long_key: step, "λ/ümlaut": -step, "text": "x" * (40_000 if step == 7 else 3)})
    path = w.finish()
    bulk, slow = parse_file(path, fast_reader=False), parse_file(path, bulk=False)
    assert bulk.slow_chunks == (0, 0)
    _same_files(parse_file(path), bulk)
    assert bulk.keys["loss"].values.tolist() == [s * 0.25 for s in range(300)]  # type: ignore[union-attr]
    assert bulk.keys[long_key].values.tolist() == list(range(300))  # type: ignore[union-attr]
    assert bulk.keys["λ/ümlaut"].values.tolist() == [-s for s in range(300)]  # type: ignore[union-attr]
    assert bulk.keys["text"].example is not None and len(bulk.keys["text"].steps) == 300
    assert bulk.summary == slow.summary and bulk.summary["text"] == "xxx"
    for key in bulk.keys:
        assert same_bits(bulk.keys[key].steps, slow.keys[key].steps)


def _same_files(a: Any, b: Any) -> None:
    assert a.summary == b.summary
    assert a.keys.keys() == b.keys.keys()
    for key, rows in a.keys.items():
        other = b.keys[key]
        assert same_bits(rows.steps, other.steps), key
        assert (rows.values is None) == (other.values is None), key
        if rows.values is not None:
            assert same_bits(rows.values, other.values), key


def test_many_sparse_keys_steps_in_the_billions_repeats_and_removals(tmp_path: Path) -> None:
    """What the bulk reader meets less often: 40 keys logged on different steps, steps past
    2**31, a step logged twice (the later row wins), summary removals and config updates."""
    w = RunFileWriter(tmp_path, run_id="many", project="p", config={"a": 1})
    base = 3_000_000_000
    for i in range(400):
        w.log({f"k{j:02d}": i * 100 + j for j in range(40) if i % (j + 1) == 0}, step=base + i)
    w.log({"k00": -1.0, "late": 5}, step=base + 10)  # step 10 again, out of order
    w.summary({"best": 7, "gone": 1})
    w.remove_summary("gone")
    w.config({"b": 2})
    path = w.finish()
    bulk = parse_file(path)
    assert bulk.slow_chunks == (0, 1)  # only the summary chunk with the removal is read one by one
    _same_files(bulk, parse_file(path, bulk=False))
    _same_files(bulk, parse_file(path, chunk_blocks=1))
    assert bulk.keys["k00"].steps[:12].tolist() == [base + i for i in range(12)]
    assert bulk.keys["k00"].values[10] == -1.0  # type: ignore[index]
    assert bulk.keys["k01"].steps.tolist() == [base + i for i in range(0, 400, 2)]
    assert bulk.keys["late"].steps.tolist() == [base + 10]
    assert bulk.summary["best"] == 7 and "gone" not in bulk.summary
    assert bulk.meta.config == {"_wandb": {}, "a": 1, "b": 2}


# ------------------------------------------------------------------------------ damaged and live files


@pytest.fixture
def long_run(tmp_path: Path) -> Path:
    """A finished run of 2,000 steps over about twenty blocks, written without the SDK."""
    w = RunFileWriter(tmp_path / "long", run_id="long1", project="rl", entity="acme", display_name="long")
    for step in range(2000):
        w.log({"loss": 1.0 / (step + 1), "acc": step / 2000.0})
    return w.finish()


def _one_run(root: Path, caplog: pytest.LogCaptureFixture, **kw: Any) -> tuple[RunInfo, RunOutcome, list[str]]:
    src = RunFolderSource(root, workers=1, **kw)
    exp = parse_config(
        {
            "exp": {
                "entity": "acme",
                "project": "rl",
                "fields": ["loss", "acc"],
                "output_path": str(root / "out"),
                "history_samples": "all",
            }
        }
    )[0]
    try:
        with caplog.at_level(logging.WARNING, logger="wandb2numpy"):
            caplog.clear()
            (run,) = listed(src, exp)
            (outcome,) = read(src, [run], ["loss", "acc"])
        return run, outcome, [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    finally:
        src.close()


def test_live_run_is_read_to_its_last_record(long_run: Path, caplog: pytest.LogCaptureFixture) -> None:
    w = RunFileWriter(long_run.parent.parent.parent / "live", run_id="live1", project="rl")
    for step in range(50):
        w.log({"loss": float(step)})
    w.close()  # no exit record: still running
    run, outcome, warnings = _one_run(w.path.parent, caplog)
    assert run.state == "running" and len(outcome.series["loss"]) == 50
    assert len(warnings) == 1 and "still being written" in warnings[0]


@pytest.mark.parametrize("cut", [3, 7, 40, 1000, BLOCK, BLOCK + 3, 5 * BLOCK + 100, -1])
def test_cut_file_reads_up_to_its_last_whole_record(long_run: Path, caplog: pytest.LogCaptureFixture, cut: int) -> None:
    size = long_run.stat().st_size
    data = long_run.read_bytes()[: cut if cut > 0 else size + cut]
    long_run.write_bytes(data)
    old = time.time() - 3600
    os.utime(long_run, (old, old))
    src_root = long_run.parent
    if 0 < cut < 100:  # cut before the run record ends: nothing names the run
        src = RunFolderSource(src_root, workers=1)
        try:
            with caplog.at_level(logging.WARNING, logger="wandb2numpy"):
                assert listed(src, dataclasses.replace(experiment(src_root), entity="", project="")) == []
        finally:
            src.close()
        (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert "no run record" in warning and str(long_run) in warning
        return
    run, outcome, warnings = _one_run(src_root, caplog)
    assert run.state == "crashed"
    assert len(warnings) == 1 and "without an exit record" in warnings[0], warnings
    loss = outcome.series["loss"]
    n = len(loss)
    assert n <= 2000 and loss.steps.tolist() == list(range(n))  # a prefix, nothing invented
    assert loss.values.tolist() == [1.0 / (s + 1) for s in range(n)]
    parsed = parse_file(long_run)
    assert parsed.damage.end <= len(data) and not parsed.damage.damaged


def test_flipped_byte_skips_one_block_and_says_what_was_lost(long_run: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = bytearray(long_run.read_bytes())
    at = 3 * BLOCK + 5000
    data[at] ^= 0x40
    long_run.write_bytes(bytes(data))
    run, outcome, warnings = _one_run(long_run.parent, caplog)
    assert run.state == "finished"
    damage = parse_file(long_run).damage
    assert len(damage.bad_blocks) == 1 and 3 * BLOCK <= damage.bad_blocks[0] <= at
    assert 0 < damage.skipped_bytes <= BLOCK
    assert len(warnings) == 1 and "damaged block" in warnings[0] and str(damage.skipped_bytes) in warnings[0]
    loss = outcome.series["loss"]
    assert 1900 < len(loss) < 2000  # only that block's steps are missing
    for s, v in zip(loss.steps.tolist(), loss.values.tolist()):
        assert v == 1.0 / (s + 1)
    assert loss.steps[-1] == 1999


def test_a_file_that_is_not_a_run_file_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "wandb" / "offline-run-20240101_000000-bad" / "run-bad.wandb"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(NotARunFileError, match="run-bad.wandb is not a W&B run file"):
        parse_file(bad)
    src = RunFolderSource(tmp_path / "wandb", workers=1)
    try:
        with pytest.raises(RunFileError, match=str(bad)):
            listed(src, experiment(tmp_path))
    finally:
        src.close()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NoRunFilesError, match="no W&B run file"):
        find_run_files(empty)


def test_discovery_takes_folders_run_folders_files_and_globs(logged: Path) -> None:
    files = _run_files(logged)
    assert len(files) == len(SPEC)
    assert find_run_files(logged) == find_run_files(logged / "wandb") == files  # latest-run not twice
    assert find_run_files(files[0].parent) == [files[0]]
    assert find_run_files(files[0]) == [files[0]]
    assert find_run_files(str(logged / "wandb" / "offline-run-*-a1")) == [f for f in files if "-a1" in str(f)]
    with pytest.raises(NoRunFilesError, match="no such file"):
        find_run_files(logged / "nowhere")


# ------------------------------------------------------------------------------ the whole export


def test_export_through_the_pipeline(logged: Path, tmp_path: Path) -> None:
    config = {
        "exp": {
            "entity": "acme",
            "project": "rl",
            "fields": ["loss", "return"],
            "history_samples": "all",
            "output_path": str(tmp_path / "out"),
            "output_data_type": "npz",
            "x_axis": "_step",
        }
    }
    src = RunFolderSource(logged / "wandb", workers=1)
    try:
        result = export(config, source=src)
    finally:
        src.close()
    arrays = result.experiments["exp"].result
    assert [r.id for r in arrays.runs] == IDS
    loss = arrays.fields["loss"]
    for i, rid in enumerate(IDS):
        steps, values = truth(rid)["loss"]
        assert same_bits(loss.values[i, : len(values)], np.array(values))
        assert np.isnan(loss.values[i, len(values) :]).all()
    assert (tmp_path / "out" / "exp" / "data.npz").exists()


# ------------------------------------------------------------------------------ the same through the service


def project_data() -> dict[str, Any]:
    """The logged project as the local server holds it (built from SPEC, what was logged)."""
    runs = []
    for i, (rid, name, group, job, tags, lr, env, seed, ret) in enumerate(RUNS):
        rows: dict[int, dict[str, Any]] = {}
        for run in SPEC:
            if run["id"] == rid:
                for step, row in run["rows"]:
                    target = rows.setdefault(step, {"_step": step})
                    for key, v in _flat(row).items():
                        x = _number(v)
                        if x is not None and not isinstance(v, bool):
                            target[key] = (
                                x
                                if math.isfinite(x)
                                else ("NaN" if math.isnan(x) else "Infinity" if x > 0 else "-Infinity")
                            )
                        elif isinstance(v, bool):
                            target[key] = v
        runs.append(
            {
                "id": rid,
                "name": name,
                "group": group,
                "job_type": job,
                "tags": tags,
                "state": "failed" if rid == "a7" else "finished",
                "created_at": f"2024-01-01T00:0{i}:00Z",
                "config": {"lr": lr, "env": {"name": env}, "seed": seed},
                "summary": {"return": ret},
                "history": [rows[s] for s in sorted(rows)],
            }
        )
    return {"projects": [{"entity": "acme", "name": "rl", "runs": runs}]}


def test_same_arrays_as_through_the_service(server: LocalServer, logged: Path, tmp_path: Path) -> None:
    """One export of two experiments: the project from the server, and as logged offline from
    its run folders (config key `source`, no entity or project): identical arrays."""
    common = {"fields": NUMERIC, "history_samples": "all", "output_path": str(tmp_path / "out")}
    config = {
        "svc": {"entity": "acme", "project": "rl", **common},
        "files": {"source": str(logged / "wandb"), **common},
    }
    settings = ClientSettings(base_url=server.base_url, api_key=server.api_key, timeout=20)
    result = export(config, write=False, settings=settings)
    via_service, via_files = result.experiments["svc"].result, result.experiments["files"].result
    assert [r.id for r in via_files.runs] == [r.id for r in via_service.runs] == IDS
    assert via_files.fields.keys() == via_service.fields.keys() == set(NUMERIC)
    for key in NUMERIC:
        assert same_bits(via_files.fields[key].values, via_service.fields[key].values), key
        assert same_bits(via_files.fields[key].steps, via_service.fields[key].steps), key


# ------------------------------------------------------------------------------ config, formats, CLI, incremental


@pytest.mark.parametrize("data_type", ["numpy", "csv", "npz", "parquet"])
def test_every_output_format_from_the_source_key(logged: Path, tmp_path: Path, data_type: str) -> None:
    from wandb2numpy import load

    config = {
        "exp": {
            "source": str(logged / "wandb"),
            "fields": ["loss", "eval2.mean"],
            "history_samples": "all",
            "output_path": str(tmp_path / "out"),
            "output_data_type": data_type,
            "groups": ["ppo"],
        }
    }
    result = export(config).experiments["exp"].result
    back = load(tmp_path / "out" / "exp")
    assert back.ids == [r.id for r in result.runs] == ["a1", "a2", "a3"]
    for key in ("loss", "eval2.mean"):
        assert same_bits(back.fields[key].values, result.fields[key].values), key
        for i, rid in enumerate(back.ids):
            expected = truth(rid).get(key, ([], []))
            n = len(expected[1])
            assert same_bits(back.fields[key].values[i, :n], np.array(expected[1], dtype=np.float64)), (rid, key)
    rows = {r["id"]: r for r in back.run_rows}
    assert rows["a1"]["config.lr"] == "0.001" and rows["a1"]["summary.return"] == "100.0"


def test_x_axis_and_grid_from_run_folders(logged: Path, tmp_path: Path) -> None:
    base = {
        "source": str(logged / "wandb"),
        "fields": ["loss"],
        "history_samples": "all",
        "output_path": str(tmp_path / "out"),
        "runs": ["ppo-w-0"],
    }
    on_x = export({"exp": {**base, "x_axis": "eval2.mean"}}, write=False).experiments["exp"].result
    steps, values = truth("a3")["loss"]
    assert same_bits(on_x.fields["loss"].steps[0], np.array([s * 1.5 for s in steps]))  # a3 logs eval2.mean = 1.5 step
    assert same_bits(on_x.fields["loss"].values[0], np.array(values))
    gridded = export({"exp": {**base, "grid": {"points": 5}}}, write=False).experiments["exp"].result
    assert gridded.grid is not None and gridded.grid.tolist() == [0.0, 1.5, 3.0, 4.5, 6.0]
    assert same_bits(gridded.fields["loss"].values[0], np.interp(gridded.grid, steps, values))


def test_config_source_needs_no_entity_and_must_exist(tmp_path: Path) -> None:
    from wandb2numpy.errors import ConfigError

    with pytest.raises(ConfigError, match="key 'source': no run folders at"):
        parse_config({"e": {"source": str(tmp_path / "missing"), "fields": ["a"], "output_path": "o"}})
    with pytest.raises(ConfigError, match="key 'entity': required key 'entity' is missing"):
        parse_config({"e": {"project": "p", "fields": ["a"], "output_path": "o"}})
    exp = parse_config({"e": {"source": str(tmp_path), "fields": ["a"], "output_path": "o"}})[0]
    assert (exp.entity, exp.project, exp.run_folders, exp.location) == ("", "", str(tmp_path), str(tmp_path))


def test_cli_exports_and_lists_run_folders(
    logged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from wandb2numpy.cli import main

    monkeypatch.chdir(tmp_path)
    folder = str(logged / "wandb")
    assert main(["fields", folder]) == 0
    listed = capsys.readouterr().out
    assert f"8 run(s) of {folder} match all runs" in listed
    assert "eval2.deep.x" in listed and "histogram" in listed
    code = main(["export", folder, "--fields", "loss", "flag", "note", "--samples", "all", "-O", "out", "-q"])
    assert code == 0
    name = logged.name  # the folder holding wandb/
    loss = np.load(tmp_path / "out" / name / "loss.npy")
    for i, rid in enumerate(IDS):
        values = truth(rid)["loss"][1]
        assert same_bits(loss[i, : len(values)], np.array(values))
    assert main(["export", folder, "--fields", "loss", "--dry-run"]) == 0
    assert "8 run(s)" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "nowhere"), "--fields", "loss"]) == 2  # a project name, no config


def test_incremental_reads_only_files_that_changed(tmp_path: Path) -> None:
    """Unchanged run files are not decoded again (their listing is remembered by size and
    mtime); a file that grew is read again and only its new steps are taken."""
    full = RunFileWriter(tmp_path / "whole", run_id="grow1", project="rl")
    for step in range(3000):
        full.log({"loss": 1.0 / (step + 1)})
    whole = full.finish()
    other = RunFileWriter(tmp_path / "runs", run_id="same1", project="rl")
    for step in range(100):
        other.log({"loss": float(step)})
    other.finish()
    growing = tmp_path / "runs" / "wandb" / whole.parent.name / whole.name
    growing.parent.mkdir(parents=True)
    growing.write_bytes(whole.read_bytes()[: 2 * BLOCK + 77])  # a job killed part way
    old = time.time() - 3600
    os.utime(growing, (old, old))
    config = {
        "exp": {
            "source": str(tmp_path / "runs" / "wandb"),
            "fields": ["loss"],
            "history_samples": "all",
            "output_path": str(tmp_path / "out"),
        }
    }

    def run_once() -> tuple[Any, RunFolderSource]:
        src = RunFolderSource(tmp_path / "runs" / "wandb", workers=1, listing_cache=True)
        try:
            return export(config, incremental=True, source=src).experiments["exp"], src
        finally:
            src.close()

    first, src = run_once()
    assert src.files_decoded == 2
    cut = len(first.result.fields["loss"].values[[r.id for r in first.result.runs].index("grow1")])
    again, src = run_once()
    assert src.files_decoded == 0 and again.unchanged_runs == 2  # nothing decoded, nothing read
    growing.write_bytes(whole.read_bytes())  # the run went on and finished
    grown, src = run_once()
    assert src.files_decoded == 1 and grown.grown_runs == 1 and grown.unchanged_runs == 1
    assert src.files_read_on == 1  # from its last whole record on, not from the start
    row = [r.id for r in grown.result.runs].index("grow1")
    values = grown.result.fields["loss"].values[row]
    assert cut < 3000 and values.tolist() == [1.0 / (s + 1) for s in range(3000)]
    assert grown.result.runs[row].summary == parse_file(whole).summary | {}  # the listing is whole too


def test_a_grown_file_is_read_whole_when_the_rows_before_are_not_at_hand(tmp_path: Path) -> None:
    """Reading on from where the last export stopped gives only the new rows: when the
    incremental cache cannot give the rest (deleted), or the file changed before that point,
    the file is read whole and the arrays are still complete."""
    full = RunFileWriter(tmp_path / "whole", run_id="grow2", project="rl")
    for step in range(3000):
        full.log({"loss": 1.0 / (step + 1)})
    whole = full.finish().read_bytes()
    path = tmp_path / "runs" / "wandb" / "offline-run-20240101_000000-grow2" / "run-grow2.wandb"
    path.parent.mkdir(parents=True)
    out = tmp_path / "out"
    config = {"exp": {"source": str(path.parent.parent), "fields": ["loss"], "history_samples": "all"}}
    config["exp"]["output_path"] = str(out)

    def run_once() -> tuple[list[float], RunFolderSource]:
        src = RunFolderSource(path.parent.parent, workers=1, listing_cache=True)
        try:
            got = export(config, incremental=True, source=src, overwrite=True).experiments["exp"]
            return got.result.fields["loss"].values[0].tolist(), src
        finally:
            src.close()

    expected = [1.0 / (s + 1) for s in range(3000)]
    path.write_bytes(whole[: 3 * BLOCK + 100])
    run_once()
    for cache in (out / ".wandb2numpy" / "exp").iterdir():
        if cache.name != "runfiles.json":  # the arrays' cache goes, the listing stays
            shutil.rmtree(cache) if cache.is_dir() else cache.unlink()
    path.write_bytes(whole)
    values, src = run_once()
    assert values == expected and src.files_read_on == 1  # read on, then read whole to serve the rows
    path.write_bytes(whole[: 3 * BLOCK + 100])
    run_once()
    other = RunFileWriter(tmp_path / "other", run_id="grow2", project="rl")  # another run, same id and place
    for step in range(3000):
        other.log({"loss": -1.0 * step})
    path.write_bytes(other.finish().read_bytes())
    values, src = run_once()
    assert src.files_read_on == 0 and src.files_decoded == 1
    assert values == [-1.0 * s for s in range(3000)]
