"""Hostile input: generated configs, names that try to leave output_path, and the API key's secrecy.

Every case drives the real CLI (`main([...])`) against the local server. A config ends in a clear
error or a valid export, never a traceback, and an error writes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from wandb2numpy.cli import main
from wandb2numpy.testing import FAST_RETRIES, LocalServer, synthetic_project

FAST = dataclasses.replace(FAST_RETRIES, attempts=3, max_wait=0.2, rate_limit_pause=0.1)
WRONG_KEY = "local-" + "w" * 34 + "WRONGKEY"


def hostile_project() -> dict[str, Any]:
    """The synthetic project plus one run whose history keys look like paths out of the folder."""
    data = synthetic_project(runs=3, steps=20, metrics=2)
    evil_keys = ["../evil", "a/../../b", "/etc/evil", "x" * 300, "ok/fine", "dot/./x", "back\\slash"]
    history = [{"_step": s, "train/return": float(s), **{k: float(s) for k in evil_keys}} for s in range(5)]
    data["projects"].append(
        {
            "entity": "demo",
            "name": "evil",
            "runs": [
                {
                    "id": "evil1",
                    "name": "../../evil-run",
                    "group": "../g",
                    "state": "finished",
                    "config": {"../lr": 1, "a\x00b": 2},
                    "summary": {},
                    "history": history,
                }
            ],
        }
    )
    return data


DRIVES_CLI = True
project_data = hostile_project


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every entry under root: file bytes, or None for folders."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), root)] = None
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def run_cli(
    srv: LocalServer, config_text: str, workdir: Path, *extra: str, capfd: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """Write the config outside workdir, run the CLI with workdir as the current folder."""
    cfg = workdir.parent / "config.yaml"
    cfg.write_text(config_text, encoding="utf-8", errors="surrogatepass")
    old = os.getcwd()
    os.chdir(workdir)
    try:
        code = main([str(cfg), "--base-url", srv.base_url, *extra])
    finally:
        os.chdir(old)
    out, err = capfd.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------- generated configs

names = st.text(min_size=0, max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["all", "demo", "synthetic", "train/return", "numpy", "csv", "ppo", "train", "0.0003"])
)
structures = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(names | st.sampled_from(["values", "min", "max", "fields", "groups"]), children, max_size=4)
    ),
    max_leaves=12,
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
    "bogus_key",
]
VALID = {"entity": "demo", "project": "synthetic", "fields": ["train/return"], "output_path": "out"}


@st.composite
def mutated_configs(draw: st.DrawFn) -> Any:
    """A valid config with some keys set to anything: near misses find more bugs than noise."""
    exp = dict(VALID)
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=3, unique=True)):
        if key == "output_path":  # the user's own choice of folder: only relative or wrong types
            exp[key] = draw(st.sampled_from(["out", "out/sub", "out/ünïcödé", 5, None, [], ""]))
        else:
            exp[key] = draw(structures)
    name = draw(st.sampled_from(["exp", "ünï", "with space", "0", "DEFAULT"]) | names)
    top: dict[Any, Any] = {name: exp}
    if draw(st.booleans()):
        top["DEFAULT"] = draw(st.dictionaries(st.sampled_from(KEYS), structures, max_size=2))
    return top


@st.composite
def yaml_texts(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["mutated", "mutated", "random", "anchors", "text"]))
    if kind == "mutated":
        return yaml.safe_dump(draw(mutated_configs()), allow_unicode=True)
    if kind == "random":
        return yaml.safe_dump(draw(structures), allow_unicode=True)
    if kind == "anchors":
        value = yaml.safe_dump(draw(structures), default_flow_style=True, allow_unicode=True).strip()
        if value.endswith("..."):
            value = value[:-3].strip()
        return draw(
            st.sampled_from(
                [
                    f"DEFAULT: &d\n  entity: demo\n  project: synthetic\n  output_path: out\n  fields: [train/return]\n"
                    f"a: *d\nb:\n  <<: *d\n  history_samples: {value}\n",
                    f"base: &b {value}\nexp:\n  entity: demo\n  project: synthetic\n  output_path: out\n  fields: *b\n",
                    "a: &a [*a]\n",
                    "l0: &l0 [x, x, x, x, x, x, x, x, x]\nl1: &l1 [*l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0]\n"
                    "l2: &l2 [*l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1]\n"
                    "l3: &l3 [*l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2]\n"
                    "l4: &l4 [*l3, *l3, *l3, *l3, *l3, *l3, *l3, *l3, *l3]\n"
                    "exp: {entity: demo, project: synthetic, output_path: out, fields: *l4}\n",
                    f"exp: &e\n  entity: demo\n  project: synthetic\n  output_path: out\n  fields: [train/return]\n"
                    f"  config: {{lr: {{values: {value}}}}}\nother: *e\n",
                ]
            )
        )
    return draw(st.text(max_size=80))  # arbitrary text, usually not even a mapping


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(text=yaml_texts())
def test_generated_configs_end_in_an_error_or_an_export(
    srv: LocalServer, capfd: pytest.CaptureFixture[str], text: str
) -> None:
    base = Path(tempfile.mkdtemp(prefix="w2n-hostile-"))
    try:
        work = base / "work"
        work.mkdir()
        code, out, err = run_cli(srv, text, work, "-o", capfd=capfd)
        assert "Traceback" not in err and "Traceback" not in out
        assert code in (0, 1, 2, 3, 4), (code, err)
        event(f"exit {code}")
        if code == 2:
            assert err.startswith("wandb2numpy: error:") or "usage:" in err, err
            assert snapshot(work) == {}, "a config error must write nothing"
        if code in (1, 4):  # 4: an experiment came back empty, said on stderr
            assert "wandb2numpy: error:" in err, err
        if code in (0, 4):
            assert "done:" in out
        assert sorted(os.listdir(base)) == ["config.yaml", "work"]  # nothing beside the work folder
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "---\n...\n",
        "[1, 2, 3]",
        "exp: 5",
        "exp: {entity: demo, project: synthetic, output_path: out, fields: [train/return], history_samples: 1e400}",
        "exp: {entity: demo, project: synthetic, output_path: out, fields: [train/return], history_samples: 99999999999999999999999999}",
        "exp: {entity: demo, project: synthetic, output_path: out, fields: [train/return], config: {lr: {min: .nan, max: .inf}}}",
        "exp: {entity: demo, project: synthetic, output_path: out, fields: [train/return], summary: {x: {values: [{a: 1}]}}}",
        "exp: {entity: demo, project: synthetic, output_path: out, fields: [train/return], groups: [[[[x]]]]}",
        "exp: {entity: demo, project: synthetic, output_path: out, fields: [train/return]}\nexp: {entity: x}\n",
        "? [a, b]\n: {entity: demo}\n",
        "exp: !!python/object/apply:os.system [echo pwned]\n",
        "exp: &x {entity: demo, project: synthetic, output_path: out, fields: *x}\n",
        "\ufeffexp: {entity: démo, project: синтетика, output_path: out, fields: [训练/回报]}",
        "exp:\n\tentity: demo\n",
        "- " * 5000 + "x",
        "[" * 5000,
    ],
)
def test_hand_written_hostile_configs(
    srv: LocalServer, tmp_path: Path, capfd: pytest.CaptureFixture[str], text: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    code, out, err = run_cli(srv, text, work, capfd=capfd)
    assert "Traceback" not in err
    assert code in (0, 1, 2), err
    if code != 0:
        assert "wandb2numpy: error:" in err
    if code == 2:
        assert snapshot(work) == {}


# ------------------------------------------------------------------------------- escaping names

ESCAPES = ["../x", "/etc/x", "a/../../b", "nul\x00name", "x" * 300, "..", ".", "a\\..\\b", ""]


def _quoted(name: str) -> str:
    return json.dumps(name)  # a JSON string is a YAML double-quoted scalar, NUL included


NAME_PLACES = {
    # where the name goes -> a one-experiment config with it there
    "experiment": "{name}: {{entity: demo, project: synthetic, output_path: out, fields: [train/return]}}\n",
    "field": "exp: {{entity: demo, project: synthetic, output_path: out, fields: [train/return, {name}]}}\n",
}


@pytest.mark.parametrize("place", sorted(NAME_PLACES))
@pytest.mark.parametrize("name", ESCAPES, ids=lambda n: repr(n[:20]))
def test_names_cannot_leave_output_path(
    srv: LocalServer, tmp_path: Path, capfd: pytest.CaptureFixture[str], name: str, place: str
) -> None:
    work = tmp_path / "a" / "b" / "work"
    work.mkdir(parents=True)
    before = snapshot(tmp_path)
    code, out, err = run_cli(srv, NAME_PLACES[place].format(name=_quoted(name)), work, capfd=capfd)
    assert code == 2, err
    assert place in err and "Traceback" not in err
    after = snapshot(tmp_path)
    after.pop(os.path.join("a", "b", "config.yaml"))
    assert after == before
    assert srv.stats()["requests"] == 0


def test_hostile_history_keys_with_fields_all(
    srv: LocalServer, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """`fields: all` takes key names from the server: a hostile one must not write outside."""
    work = tmp_path / "a" / "b" / "work"
    work.mkdir(parents=True)
    text = "exp: {entity: demo, project: evil, output_path: out, fields: all}\n"
    code, out, err = run_cli(srv, text, work, capfd=capfd)
    assert "Traceback" not in err
    assert code in (0, 1, 3), err
    if code == 1:
        assert "wandb2numpy: error:" in err
    outside = {k for k in snapshot(tmp_path) if not k.startswith(os.path.join("a", "b", "work"))}
    assert outside == {"a", os.path.join("a", "b"), os.path.join("a", "b", "config.yaml")}
    for path in (work / "out").rglob("*") if (work / "out").exists() else []:
        assert path.resolve().is_relative_to((work / "out").resolve())
        assert len(path.name.encode()) <= 255


# ------------------------------------------------------------------------------- the API key


def _every_output(root: Path) -> list[tuple[str, bytes]]:
    return [(str(p), p.read_bytes()) for p in root.rglob("*") if p.is_file()]


def _assert_secret_absent(secret: str, texts: list[tuple[str, Any]]) -> None:
    needle = secret.encode()
    tail = secret[-12:].encode()  # a partial leak counts too
    for where, data in texts:
        raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
        assert needle not in raw and tail not in raw, f"API key leaked into {where}"


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["ok", "partial", "wrong_key", "unreachable", "bad_config"])
def test_api_key_never_appears(
    srv: LocalServer, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, scenario: str
) -> None:
    key = srv.api_key
    base_url = srv.base_url
    expected = {"ok": 0, "partial": 3, "wrong_key": 1, "unreachable": 1, "bad_config": 2}[scenario]
    if scenario == "wrong_key":
        key = WRONG_KEY
        monkeypatch.setenv("WANDB_API_KEY", key)
    if scenario == "partial":
        srv.set_faults(fail_runs=synthetic_project(runs=3, steps=20, metrics=2)["projects"][0]["runs"][0]["id"])
    if scenario == "unreachable":
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base_url = f"http://127.0.0.1:{s.getsockname()[1]}"
    fields = "[train/return]" if scenario != "bad_config" else f"[{key}, 5]"
    cfg = tmp_path / "config.yaml"
    out_dir = tmp_path / "out"
    cfg.write_text(
        f"exp: {{entity: demo, project: synthetic, output_path: {out_dir}, fields: {fields}}}\n"
        f"csv: {{entity: demo, project: synthetic, output_path: {out_dir}, fields: [train/loss],"
        f" output_data_type: csv}}\n"
    )
    log_file = tmp_path / "log.txt"
    summary = tmp_path / "summary.json"
    code = main([str(cfg), "--base-url", base_url, "-v", "--log-file", str(log_file), "--json-summary", str(summary)])
    stdout, stderr = capfd.readouterr()
    assert code == expected, stderr
    texts: list[tuple[str, Any]] = [("stdout", stdout), ("stderr", stderr)]
    texts += [(p, d) for p, d in _every_output(tmp_path) if p != str(cfg)]
    assert log_file.exists() and summary.exists()
    _assert_secret_absent(key, texts)
    if scenario != "wrong_key":
        _assert_secret_absent(WRONG_KEY, texts)


@pytest.mark.slow
def test_api_key_never_appears_in_a_subprocess(srv: LocalServer, tmp_path: Path) -> None:
    """Also what wandb itself prints to the real stderr, outside Python's logging."""
    out_dir = tmp_path / "out"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"exp: {{entity: demo, project: synthetic, output_path: {out_dir}, fields: [train/return]}}\n")
    for key, expected in ((srv.api_key, 0), (WRONG_KEY, 1)):
        env = dict(os.environ, WANDB_API_KEY=key)
        env.pop("WANDB_SILENT", None)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "wandb2numpy.cli",
                str(cfg),
                "-o",
                "-v",
                "--base-url",
                srv.base_url,
                "--log-file",
                str(tmp_path / "log.txt"),
                "--json-summary",
                str(tmp_path / "s.json"),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert proc.returncode == expected, proc.stderr
        _assert_secret_absent(
            key,
            [
                ("stdout", proc.stdout),
                ("stderr", proc.stderr),
                *[(p, d) for p, d in _every_output(tmp_path) if p != str(cfg)],
            ],
        )
