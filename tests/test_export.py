"""The exporter end to end: the unmodified wandb client against the local server, over HTTP."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import wandb2numpy
from wandb2numpy import ClientSettings, RetryPolicy, export, export_data
from wandb2numpy.testing import FAST_RETRIES, LocalServer

FAST = FAST_RETRIES

# A hand-made project. History: `loss` on every step (5 + i steps), `return` on even steps,
# `eval/score` on steps divisible by 3: fields logged on different steps, which the original tool
# lost when asked for together.
RUNS = [
    # id, name, group, job_type, tags, lr, env, seed, summary return
    ("a1", "ppo-h-0", "ppo", "train", ["baseline"], 1e-3, "hopper", 0, 100.0),
    ("a2", "ppo-h-1", "ppo", "train", ["baseline", "long"], 1e-3, "hopper", 1, 200.0),
    ("a3", "ppo-w-0", "ppo", "eval", ["ablation"], 3e-4, "walker", 0, 300.0),
    ("a4", "sac-h-0", "sac", "train", ["baseline"], 3e-4, "hopper", 0, 400.0),
    ("a5", "sac-w-0", "sac", "eval", [], 1e-4, "walker", 1, 500.0),
    ("a6", "td3-h-0", "td3", "train", ["ablation"], 1e-4, "hopper", 2, 600.0),
    ("a7", "nogroup-0", None, "train", ["baseline"], 1e-3, "walker", 0, 700.0),
    ("a8", "sac-h-1", "sac", "train", ["long"], 1e-3, "hopper", 1, 800.0),
]


def _history(i: int, run_id: str) -> list[dict[str, Any]]:
    rows = []
    for step in range(5 + i):
        row: dict[str, Any] = {"_step": step, "loss": 1.0 / (step + 1) + i}
        if step % 2 == 0:
            row["return"] = 10.0 * step + i
        if step % 3 == 0 and run_id != "a5":
            row["eval/score"] = step * 0.5 + i
        if run_id == "a6":
            row["note"] = f"text {step}"
            row["hist"] = {"_type": "histogram", "values": [1, 2], "bins": [0, 1, 2]}
        if run_id == "a2":
            row["flag"] = step % 2 == 0
        rows.append(row)
    if run_id == "a1":
        rows[2]["loss"] = "NaN"
        rows[3]["loss"] = "Infinity"
        rows[4]["loss"] = "-Infinity"
    return rows


def project_data() -> dict[str, Any]:
    runs = []
    for i, (rid, name, group, job, tags, lr, env, seed, ret) in enumerate(RUNS):
        runs.append(
            {
                "id": rid,
                "name": name,
                "group": group,
                "job_type": job,
                "tags": tags,
                "state": "finished",
                "created_at": f"2024-01-01T00:0{i}:00Z",
                "config": {"lr": lr, "env": {"name": env}, "seed": seed},
                "summary": {"return": ret},
                "history": _history(i, rid),
            }
        )
    return {"projects": [{"entity": "acme", "name": "rl", "runs": runs}]}


def settings(srv: LocalServer, **extra: Any) -> ClientSettings:
    return ClientSettings(base_url=srv.base_url, api_key=srv.api_key, timeout=20, **extra)


def per_run(srv: LocalServer, **extra: Any) -> ClientSettings:
    """Settings for tests about retries, pacing and concurrency, which need many requests from
    these tiny runs: one request per run and key group, as without batching."""
    return settings(srv, batch_small_runs=False, **extra)


def cfg(tmp_path: Path, **exp: Any) -> dict[str, Any]:
    base = {"entity": "acme", "project": "rl", "fields": ["loss"], "output_path": str(tmp_path / "out")}
    base.update(exp)
    return {"exp": base}


def run_ids(result: Any, name: str = "exp") -> list[str]:
    return [r.id for r in result.experiments[name].result.runs]


FILTER_CASES = [
    ({}, ["a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"]),
    ({"groups": ["ppo", "sac"], "job_types": [["train"], "all"]}, ["a1", "a2", "a4", "a5", "a8"]),
    ({"groups": ["ppo", "sac"], "runs": [["ppo-h-0"], ["sac-h-1"]]}, ["a1", "a8"]),
    ({"groups": ["ppo", "sac"], "tags": [["long"], ["baseline"]]}, ["a2", "a4"]),
    ({"groups": ["ppo", "td3"], "job_types": "all", "tags": ["all", ["ablation"]]}, ["a1", "a2", "a3", "a6"]),
    ({"job_types": ["eval"]}, ["a3", "a5"]),  # ignored by the original tool without groups
    ({"tags": ["ablation", "long"]}, ["a2", "a3", "a6", "a8"]),
    ({"runs": ["td3-h-0", "nogroup-0"]}, ["a6", "a7"]),
    ({"groups": "all", "job_types": ["train"]}, ["a1", "a2", "a4", "a6", "a7", "a8"]),
    ({"config": {"lr": {"values": [1e-3]}}}, ["a1", "a2", "a7", "a8"]),
    ({"config": {"env.name": {"values": ["walker"]}}}, ["a3", "a5", "a7"]),
    ({"config": {"lr": {"min": 2e-4, "max": 1e-3}}}, ["a1", "a2", "a3", "a4", "a7", "a8"]),
    ({"summary": {"return": {"min": 250, "max": 650}}}, ["a3", "a4", "a5", "a6"]),
    (
        {"groups": ["sac"], "job_types": [["train"]], "config": {"seed": {"values": [1]}}},
        ["a8"],
    ),
    ({"config": {"lr": {"values": [1e-3]}}, "summary": {"return": {"max": 200}}}, ["a1", "a2"]),
]


@pytest.mark.parametrize("filters,expected", FILTER_CASES)
def test_filter_table(srv: LocalServer, tmp_path: Path, filters: dict, expected: list[str]) -> None:
    result = export(cfg(tmp_path, **filters), write=False, settings=settings(srv), policy=FAST)
    assert run_ids(result) == expected


@pytest.mark.parametrize("samples", [12000, "all"])
def test_sparse_fields_all_exported_and_rows_aligned(srv: LocalServer, tmp_path: Path, samples: Any) -> None:
    config = cfg(tmp_path, fields=["loss", "return", "eval/score"], history_samples=samples)
    result = export(config, settings=settings(srv), policy=FAST)
    out = tmp_path / "out" / "exp"
    ids = [row["id"] for row in csv.DictReader((out / "runs.csv").read_text(encoding="utf-8").splitlines())]
    assert ids == [r[0] for r in RUNS]
    for i, rid in enumerate(ids):
        hist = _history(i, rid)
        for field in ("loss", "return", "eval/score"):
            values = np.load(out / f"{field}.npy")
            steps = np.load(out / f"{field}.steps.npy")
            assert values.shape == steps.shape and values.shape[0] == len(RUNS)
            want = [(r["_step"], r[field]) for r in hist if field in r]
            if not want:  # a5 never logs eval/score: a row of NaN, the run stays in place
                assert np.isnan(values[i]).all() and np.isnan(steps[i]).all()
                continue
            got_steps = steps[i][~np.isnan(steps[i])]
            assert got_steps.tolist() == [s for s, _ in want]
            expected = [
                float({"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}.get(v, v))
                if isinstance(v, str)
                else float(v)
                for _, v in want
            ]
            np.testing.assert_array_equal(values[i][: len(want)], expected)
            assert np.isnan(values[i][len(want) :]).all()
    assert result.exit_code == 0


def test_fields_all_skips_internal_and_non_numeric(srv: LocalServer, tmp_path: Path, caplog: Any) -> None:
    result = export(cfg(tmp_path, fields="all"), write=False, settings=settings(srv), policy=FAST)
    res = result.experiments["exp"].result
    assert sorted(res.fields) == ["eval/score", "flag", "loss", "return"]
    # bools become 0/1
    flag = res.fields["flag"]
    row = [r.id for r in res.runs].index("a2")
    assert flag.values[row, :3].tolist() == [1.0, 0.0, 1.0]


def test_non_numeric_field_left_out_with_warning(srv: LocalServer, tmp_path: Path, caplog: Any) -> None:
    config = cfg(tmp_path, fields=["loss", "note", "hist"], runs=["td3-h-0"])
    with caplog.at_level("WARNING", logger="wandb2numpy"):
        result = export(config, write=False, settings=settings(srv), policy=FAST)
    res = result.experiments["exp"].result
    assert list(res.fields) == ["loss"]
    assert set(res.skipped_fields) == {"note", "hist"}
    assert "note" in caplog.text and "hist" in caplog.text


def test_runs_without_any_field_are_skipped_not_padded(srv: LocalServer, tmp_path: Path) -> None:
    result = export(cfg(tmp_path, fields=["eval/score"]), write=False, settings=settings(srv), policy=FAST)
    assert "a5" not in run_ids(result)
    assert result.experiments["exp"].skipped_runs == 1


def test_csv_layout_with_subfolders(srv: LocalServer, tmp_path: Path) -> None:
    config = cfg(tmp_path, fields=["loss", "eval/score"], output_data_type="csv", runs=["ppo-h-0", "ppo-h-1"])
    result = export(config, settings=settings(srv), policy=FAST)
    out = tmp_path / "out" / "exp"
    rows = list(csv.reader((out / "eval" / "score.csv").read_text(encoding="utf-8").splitlines()))
    assert rows[0][0] == "id" and [r[0] for r in rows[1:]] == ["a1", "a2"]
    assert float(rows[1][1]) == 0.0 and float(rows[1][2]) == 1.5
    loss = list(csv.reader((out / "loss.csv").read_text(encoding="utf-8").splitlines()))
    assert loss[1][3:6] == ["nan", "inf", "-inf"]
    steps = list(csv.reader((out / "loss.steps.csv").read_text(encoding="utf-8").splitlines()))
    assert steps[1][1:4] == ["0", "1", "2"]
    assert {p.name for p in result.files} >= {"runs.csv", "loss.csv", "loss.steps.csv", "score.csv"}


def test_existing_output_untouched_without_overwrite(srv: LocalServer, tmp_path: Path) -> None:
    config = cfg(tmp_path)
    export(config, settings=settings(srv), policy=FAST)
    target = tmp_path / "out" / "exp" / "loss.npy"
    before = target.read_bytes()
    srv.reset_stats()
    with pytest.raises(wandb2numpy.OutputExistsError) as info:
        export(cfg(tmp_path, fields=["return"]), settings=settings(srv), policy=FAST)
    assert "loss.npy" in str(info.value)
    assert srv.stats()["requests"] == 0  # refused before any request
    assert target.read_bytes() == before
    export(cfg(tmp_path, fields=["return"]), overwrite=True, settings=settings(srv), policy=FAST)
    assert not target.exists() and (tmp_path / "out" / "exp" / "return.npy").exists()


def test_export_data_like_the_original(srv: LocalServer, tmp_path: Path) -> None:
    config = {
        "DEFAULT": {"entity": "acme", "project": "rl", "output_path": str(tmp_path / "never")},
        "one": {"fields": ["loss", "return"], "groups": ["ppo"]},
        "two": {"fields": ["return"], "runs": ["sac-h-0"]},
    }
    data, configs = export_data(config, settings=settings(srv), policy=FAST)
    assert set(data) == {"one", "two"}
    assert data["one"]["loss"].shape == (3, 7)  # a1..a3: 5, 6, 7 steps
    assert data["two"]["return"].shape == (1, 4)
    assert [c["fields"] for c in configs] == [["loss", "return"], ["return"]]
    assert not (tmp_path / "never").exists()  # the Python API writes nothing
    nested, _ = export_data(config, ["one"], by_group_and_job_type=True, settings=settings(srv), policy=FAST)
    assert set(nested["one"]["ppo"]) == {"train", "eval"}
    assert nested["one"]["ppo"]["train"]["loss"].shape == (2, 6)
    assert nested["one"]["ppo"]["eval"]["loss"].shape == (1, 7)


@pytest.mark.parametrize("samples", [12000, "all"])
def test_small_runs_share_history_requests(srv: LocalServer, tmp_path: Path, samples: Any) -> None:
    """One listing query; the small runs' history in shared requests; no per-run query at all."""
    config = cfg(tmp_path, fields=["loss", "return"], history_samples=samples)
    result = export(config, write=False, concurrency=4, settings=settings(srv), policy=FAST)
    ops = srv.stats()["ops"]
    assert ops.get("Runs") == 1
    assert "Run" not in ops and "RunSampledHistory" not in ops and "SampledHistoryPage" not in ops
    assert 1 <= ops["RunsSampledHistory"] <= 4  # 8 tiny runs, 4 workers
    assert len(result.experiments["exp"].result.runs) == len(RUNS)


@pytest.mark.server
def test_a_server_refusing_batches_gets_per_run_requests_and_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with LocalServer(project_data(), batch_history=False).start() as srv:
        config = cfg(tmp_path, fields=["loss", "return"])
        batched = export(config, write=False, concurrency=4, settings=settings(srv), policy=FAST)
        ops = srv.stats()["ops"]
    # `loss` and `return` are logged on different steps: one request each per run.
    assert ops["RunSampledHistory"] == 2 * len(RUNS)
    assert ops["RunsSampledHistory"] >= 1  # the refused tries
    assert batched.exit_code == 0 and len(batched.experiments["exp"].result.runs) == len(RUNS)
    warnings = [r for r in caplog.records if "batched history" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"


def test_bad_key_fails_fast_and_never_shows_key(srv: LocalServer, tmp_path: Path) -> None:
    bad = "local-" + "Z" * 40
    with pytest.raises(wandb2numpy.AuthError) as info:
        export(cfg(tmp_path), settings=ClientSettings(base_url=srv.base_url, api_key=bad), policy=FAST)
    assert bad not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_unknown_project_is_a_clear_error(srv: LocalServer, tmp_path: Path) -> None:
    with pytest.raises(wandb2numpy.FetchError, match="nope"):
        export(cfg(tmp_path, project="nope"), write=False, settings=settings(srv), policy=FAST)


@pytest.mark.slow
def test_retries_through_429_and_5xx(srv: LocalServer, tmp_path: Path) -> None:
    clean = export(cfg(tmp_path, fields=["loss", "return"]), write=False, settings=per_run(srv), policy=FAST)
    srv.set_faults(error_rate=0.3, seed=3)
    faulty = export(cfg(tmp_path, fields=["loss", "return"]), write=False, settings=per_run(srv), policy=FAST)
    srv.set_faults(error_rate=0.0, rate_limit=5.0)
    limited = export(cfg(tmp_path, fields=["loss", "return"]), write=False, settings=per_run(srv), policy=FAST)
    stats = srv.stats()
    assert stats["injected_5xx"] > 0 and stats["injected_429"] > 0
    for other in (faulty, limited):
        assert other.exit_code == 0
        for field, arrays in clean.experiments["exp"].result.fields.items():
            got = other.experiments["exp"].result.fields[field]
            np.testing.assert_array_equal(got.values, arrays.values)
            np.testing.assert_array_equal(got.steps, arrays.steps)


@pytest.mark.server
def test_concurrency_reaches_the_server(tmp_path: Path) -> None:
    data = project_data()
    runs = data["projects"][0]["runs"]
    for k in range(24):  # 32 runs, each one history request, 400 ms each
        extra = dict(runs[k % 8], id=f"x{k:02d}", name=f"extra-{k}")
        runs.append(extra)
    # 400 ms, not 150: with both cores busy (the suite beside other work) the 16th request could
    # leave after the first had come back, and 14 were seen at once
    with LocalServer(data, latency_ms=400).start() as srv:
        export(cfg(tmp_path, fields=["loss"]), write=False, concurrency=16, settings=per_run(srv), policy=FAST)
        assert srv.stats()["max_in_flight"] == 16


@pytest.mark.server
def test_one_viewer_query_however_many_apis(tmp_path: Path) -> None:
    """Slots 10, 20 and 30 each need an `Api` of their own (wandb-core serves ten requests at
    once per `Api`), but only the first checks the key with a `Viewer` query."""
    data = project_data()
    runs = data["projects"][0]["runs"]
    for k in range(56):  # 64 runs, each one history request, 400 ms each, so all 32 slots overlap on a busy machine too
        runs.append(dict(runs[k % 8], id=f"x{k:02d}", name=f"extra-{k}"))
    with LocalServer(data, latency_ms=400).start() as srv:
        result = export(cfg(tmp_path, fields=["loss"]), write=False, concurrency=32, settings=per_run(srv), policy=FAST)
        stats = srv.stats()
    assert result.exit_code == 0 and len(run_ids(result)) == 64
    assert stats["max_in_flight"] == 32
    assert stats["ops"]["Viewer"] == 1


def test_a_library_export_begins_its_first_request_early_and_takes_it_over(
    srv: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`export()` called from a program starts wandb-core and the first `Api` as soon as its
    checks pass, as the command does, and uses that `Api`: one `Viewer`, nothing left begun.
    An export its checks refuse (files of someone else's in the output folder) sends nothing."""
    import wandb2numpy.begin as begin
    from wandb2numpy.wandb import client

    begun: list[object] = []
    real = begin.connect_early
    monkeypatch.setattr(begin, "connect_early", lambda settings: begun.append(settings) or real(settings))
    srv.reset_stats()
    result = export(cfg(tmp_path, fields=["loss"]), settings=settings(srv), policy=FAST)
    assert result.exit_code == 0 and len(begun) == 1
    assert srv.stats()["ops"]["Viewer"] == 1 and not client._started

    other = tmp_path / "theirs"
    (other / "exp").mkdir(parents=True)
    (other / "exp" / "notes.txt").write_text("not ours")
    srv.reset_stats()
    with pytest.raises(wandb2numpy.Wandb2NumpyError):
        export({"exp": {**cfg(tmp_path)["exp"], "output_path": str(other)}}, settings=settings(srv), policy=FAST)
    assert srv.stats()["requests"] == 0 and len(begun) == 1


def test_history_samples_limits_points(srv: LocalServer, tmp_path: Path) -> None:
    result = export(
        cfg(tmp_path, history_samples=3, runs=["sac-h-1"]), write=False, settings=settings(srv), policy=FAST
    )
    steps = result.experiments["exp"].result.fields["loss"].steps
    assert steps.shape == (1, 3)
    assert steps[0, 0] == 0 and steps[0, -1] == 11  # evenly spread, first and last kept


EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "example_configs").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_configs_run_against_the_server(wandb_server_reset: LocalServer, tmp_path: Path, path: Path) -> None:
    """Every example is parsed and exported from the synthetic project it is written for."""
    import yaml

    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    for body in raw.values():
        if isinstance(body, dict) and "output_path" in body:
            body["output_path"] = str(tmp_path / "out")
    configs = wandb2numpy.load_config(path)
    assert configs
    srv = wandb_server_reset
    result = export(raw, settings=settings(srv), policy=FAST)
    assert result.exit_code == 0
    for name, report in result.experiments.items():
        assert report.result.runs, f"{path.name}: experiment {name} matched no run"
        assert report.files and all(p.is_file() for p in report.files)


def test_demo_config_matches_example_file() -> None:
    from wandb2numpy.cli.demo import DEMO_CONFIG

    example = Path(__file__).resolve().parents[1] / "example_configs" / "demo.yaml"
    assert example.read_text(encoding="utf-8") == DEMO_CONFIG


def test_more_workers_than_runs_gives_the_same_sampled_arrays(srv: LocalServer, tmp_path: Path) -> None:
    """With spare workers, a sample that keeps every row is fetched as parallel step ranges."""
    config = cfg(tmp_path, fields=["loss", "return", "eval/score"])
    few = export(config, write=False, concurrency=2, settings=settings(srv), policy=FAST)
    srv.reset_stats()
    paged = ClientSettings(base_url=srv.base_url, api_key=srv.api_key, page_size=4)
    many = export(config, write=False, concurrency=64, settings=paged, policy=FAST)
    assert srv.stats()["ops"].get("SampledHistoryPage", 0) > 0
    for field, arrays in few.experiments["exp"].result.fields.items():
        got = many.experiments["exp"].result.fields[field]
        np.testing.assert_array_equal(got.values, arrays.values)
        np.testing.assert_array_equal(got.steps, arrays.steps)


@pytest.mark.slow
def test_known_rate_limit_is_paced_without_429s(srv: LocalServer, tmp_path: Path) -> None:
    """With the server's rate given (`--max-rate`), requests are paced from the first one."""
    config = cfg(tmp_path, fields=["loss", "return"])
    clean = export(config, write=False, concurrency=4, settings=per_run(srv), policy=FAST)
    srv.set_faults(rate_limit=5.0)
    srv.reset_stats()
    paced_policy = RetryPolicy(attempts=6, initial_wait=0.05, max_wait=0.3, max_rate=4.0)
    paced = export(config, write=False, concurrency=16, settings=per_run(srv), policy=paced_policy)
    stats = srv.stats()
    assert stats["requests"] > 5  # more than the server's burst
    assert stats["injected_429"] == 0
    for field, arrays in clean.experiments["exp"].result.fields.items():
        np.testing.assert_array_equal(paced.experiments["exp"].result.fields[field].values, arrays.values)


def test_full_history_asks_one_page_query_per_page_and_nothing_else(srv: LocalServer, tmp_path: Path) -> None:
    """Full history reads the pages the listing's `lastStep` implies: no `RunHistoryKeys` and no
    `RunParquetHistory` round trip per run, and the same rows as wandb's own `scan_history`.
    (The page path alone: with `parquet` on, finished runs first ask for their export.)"""
    import wandb

    srv.reset_stats()
    paged = ClientSettings(base_url=srv.base_url, api_key=srv.api_key, page_size=4, parquet=False)
    result = export(
        cfg(tmp_path, fields=["loss"], history_samples="all"), write=False, concurrency=1, settings=paged, policy=FAST
    )
    ops = srv.stats()["ops"]
    # run i logs steps 0 .. 4+i: ceil((5 + i) / 4) pages of 4 steps
    assert ops.get("SampledHistoryPage") == sum(-(-(5 + i) // 4) for i in range(len(RUNS)))
    assert "RunParquetHistory" not in ops and "RunHistoryKeys" not in ops
    api = wandb.Api(overrides={"base_url": srv.base_url}, api_key=srv.api_key)
    arrays = result.experiments["exp"].result.fields["loss"]
    for i, run in enumerate(result.experiments["exp"].result.runs):
        rows = list(api.run(run.path).scan_history(keys=["loss"], page_size=3))
        want = [float(r["loss"]) for r in rows]
        got = arrays.values[i][~np.isnan(arrays.steps[i])]
        np.testing.assert_array_equal(got, np.array(want, dtype=float))


@pytest.mark.server
def test_start_window_holds_back_the_first_requests(tmp_path: Path) -> None:
    """`RetryPolicy(start_window=2)`: the runs listing's success widens the window to three, so
    three history requests go out, and the fourth only after one of them has been answered; the
    arrays are those of an export without a window."""
    with LocalServer(project_data(), latency_ms=200).start() as srv:
        config = cfg(tmp_path, fields=["loss"])
        plain = export(config, write=False, concurrency=16, settings=per_run(srv), policy=FAST)
        srv.reset_stats()
        windowed = RetryPolicy(attempts=6, initial_wait=0.05, max_wait=0.3, start_window=2)
        slow = export(config, write=False, concurrency=16, settings=per_run(srv), policy=windowed)
        starts = [r["t"] for r in srv.request_log() if r["op"] == "RunSampledHistory"]
        assert len(starts) == len(RUNS)
        assert starts[2] - starts[0] < 0.15 <= starts[3] - starts[0]  # answers take 200 ms
        assert srv.stats()["max_in_flight"] < 8
        for field, arrays in plain.experiments["exp"].result.fields.items():
            np.testing.assert_array_equal(slow.experiments["exp"].result.fields[field].values, arrays.values)


@pytest.mark.server
@pytest.mark.slow
def test_unknown_rate_limit_cold_start_stops_at_the_limit(tmp_path: Path) -> None:
    """32 workers, a server allowing 20 requests/s (burst 20), about 180 one-page calls: the start
    ramps, wandb-core's log reports the first refusals at once, and pacing takes over, so few
    requests are refused (a blind fan-out of 32 has over a third refused) and the arrays are exact.

    The ramp's overshoot is a fixed cost: 2-4 refusals when the first refusal is heard within
    0.2 s, up to 20 on a starved machine where the ramp's third wave leaves first (measured with
    three busy processes on two cores). The export is long enough that pacing, not that cost,
    decides the share: about 70 calls made it 5% or 25% by which of the two happened."""
    data = project_data()
    for run in data["projects"][0]["runs"]:  # histories 2.5 times as long, the same fields
        rows = run["history"]
        run["history"] = [{**r, "_step": r["_step"] + k * len(rows)} for k in range(3) for r in rows][
            : len(rows) * 5 // 2
        ]
    with LocalServer(data).start() as srv:
        paged = ClientSettings(base_url=srv.base_url, api_key=srv.api_key, page_size=1, timeout=20, parquet=False)
        config = cfg(tmp_path, fields=["loss"], history_samples="all")
        clean = export(config, write=False, concurrency=32, settings=paged, policy=FAST)
        srv.set_faults(rate_limit=20.0)
        srv.reset_stats()
        limited = export(config, write=False, concurrency=32, settings=paged, policy=FAST)
        stats = srv.stats()
    assert stats["requests"] > 150
    assert limited.stats.rate_limited_in_core >= 1  # wandb-core's log was found and read
    assert stats["injected_429"] <= 0.2 * stats["requests"]  # blind: 42 of 115 when measured
    assert limited.exit_code == 0
    np.testing.assert_array_equal(
        limited.experiments["exp"].result.fields["loss"].values, clean.experiments["exp"].result.fields["loss"].values
    )


@pytest.mark.server
def test_history_kept_only_in_exported_files_is_read_again_with_wandbs_scan(tmp_path: Path) -> None:
    """Should a service answer page queries only for live steps, an exported run's pages come back
    short of the count its listing gave; those keys are then read with wandb's own scan, which
    reads the parquet files, and the arrays equal those of a server that answers pages."""
    pytest.importorskip("pyarrow")
    config = cfg(tmp_path, fields=["loss", "return", "eval/score"], history_samples="all")
    with LocalServer(project_data()).start() as plain:
        want = export(config, write=False, concurrency=4, settings=settings(plain), policy=FAST)
    with LocalServer(project_data(), parquet="only").start() as srv:
        got = export(config, write=False, concurrency=4, settings=per_run(srv), policy=FAST)
        ops = srv.stats()["ops"]
    assert ops.get("RunParquetHistory", 0) > 0 and ops.get("ParquetFile", 0) > 0
    assert got.exit_code == 0
    for field, arrays in want.experiments["exp"].result.fields.items():
        other = got.experiments["exp"].result.fields[field]
        np.testing.assert_array_equal(other.steps, arrays.steps)
        np.testing.assert_array_equal(other.values, arrays.values)


@pytest.mark.server
def test_export_starts_wandb_core_once_the_config_checks_out(
    srv: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A script calling `export` gets wandb-core started as the command does, before the folders
    are checked and the export loads; a config refused first, or another source, starts none."""
    import wandb2numpy.begin as begin

    started: list[ClientSettings] = []
    real = begin.start_core
    monkeypatch.setattr(begin, "start_core", lambda s: (started.append(s), real(s))[1])
    with pytest.raises(wandb2numpy.ConfigError):  # colliding names: refused before any request
        export(cfg(tmp_path, fields=["a", "a.steps"]), write=False, settings=settings(srv), policy=FAST)
    assert started == []
    result = export(cfg(tmp_path), write=False, settings=settings(srv), policy=FAST)
    assert result.exit_code == 0 and run_ids(result)
    assert [(s.base_url, s.entity) for s in started] == [(srv.base_url, "acme")]
