"""Property tests: whatever the input, parsing returns experiments or raises ConfigError, nothing else."""

from __future__ import annotations

import datetime
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wandb2numpy.config import ExperimentConfig, load_config, parse_config
from wandb2numpy.errors import ConfigError

KEYS = [
    "entity",
    "project",
    "fields",
    "output_path",
    "groups",
    "job_types",
    "runs",
    "tags",
    "config",
    "summary",
    "history_samples",
    "output_data_type",
    "values",
    "min",
    "max",
    "fileds",
    "DEFAULT",
]
WORDS = [
    "all",
    "numpy",
    "csv",
    "ppo",
    "sac",
    "train",
    "eval",
    "a/b",
    "..",
    "/abs",
    "",
    "\x00",
    "x" * 201,
    "lr",
    "env.name",
    "a..b",
    "ü/名",
    "1e-4",
]
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([0, -1, 2**31, 2**63, -(2**70), 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(WORDS),
    st.dates(),
)
keys = st.one_of(
    st.sampled_from(KEYS), st.sampled_from(WORDS), st.text(max_size=8), st.integers(), st.none(), st.booleans()
)
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(keys, inner, max_size=4),
    ),
    max_leaves=20,
)

# Structures shaped like configs, so the checks behind the first few keys are reached too.
valueish = st.one_of(
    junk,
    st.fixed_dictionaries({}, optional={"values": junk, "min": scalars, "max": scalars}),
)
experiment = st.one_of(
    st.none(),
    junk,
    st.fixed_dictionaries(
        {},
        optional={
            "entity": st.one_of(st.just("demo"), scalars),
            "project": st.one_of(st.just("synthetic"), scalars),
            "fields": st.one_of(st.just(["train/return"]), junk),
            "output_path": st.one_of(st.just("out"), scalars),
            "groups": st.one_of(st.just(["ppo", "sac"]), st.just("all"), junk),
            "job_types": st.one_of(st.just([["train"], "all"]), st.just(["train"]), junk),
            "runs": junk,
            "tags": st.one_of(st.just([["a"], ["b"]]), junk),
            "config": st.one_of(
                st.dictionaries(st.sampled_from(["lr", "env.name", "a..b"]), valueish, max_size=3), junk
            ),
            "summary": st.dictionaries(keys, valueish, max_size=3),
            "history_samples": scalars,
            "output_data_type": scalars,
            "fileds": junk,
        },
    ),
)
configs = st.one_of(
    junk,
    st.dictionaries(st.one_of(st.sampled_from(["DEFAULT", "a", "b", "../x", ""]), keys), experiment, max_size=4),
)


def _check(result: list[ExperimentConfig]) -> None:
    assert isinstance(result, list) and result
    for exp in result:
        assert isinstance(exp, ExperimentConfig)
        assert exp.selections
        assert exp.history_samples is None or exp.history_samples > 0
        for name in exp.fields or ():
            assert ".." not in name.split("/") and not name.startswith("/")


@pytest.mark.slow
@SETTINGS
@given(data=configs)
def test_parse_config_never_raises_anything_else(data: Any) -> None:
    try:
        result = parse_config(data, source="prop.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("prop.yaml")
        assert "Traceback" not in str(exc) and "pydantic" not in str(exc).lower()
    else:
        _check(result)


@pytest.mark.slow
@SETTINGS
@given(data=configs, wanted=st.lists(st.sampled_from(["a", "b", "c", "DEFAULT"]), max_size=3))
def test_selection_never_raises_anything_else(data: Any, wanted: list[str]) -> None:
    try:
        result = parse_config(data, experiments=wanted)
    except ConfigError:
        return
    if wanted:
        assert {e.name for e in result} <= set(wanted)


_TMP = Path(tempfile.mkdtemp(prefix="w2n-config-props-"))
yaml_tokens = st.sampled_from(
    [
        "DEFAULT:",
        "e:",
        "  ",
        "    ",
        "\n",
        "entity: demo",
        "fields: [a, b]",
        "fields: all",
        "groups: [ppo]",
        "job_types: [[train]]",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        "&a ",
        "*a",
        "<<: *a",
        "!!python/object:os.system",
        "'",
        '"',
        "#",
        "\t",
        "1e-4",
        "2024-02-30",
        "yes",
        "~",
        "---",
        "%YAML 1.1",
        "? ",
        "|",
        ">",
    ]
)
yaml_texts = st.one_of(st.lists(yaml_tokens, max_size=30).map("".join), st.text(max_size=60))


@settings(max_examples=200, deadline=None)
@given(text=yaml_texts)
def test_load_config_never_raises_anything_else(text: str) -> None:
    path = _TMP / "c.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        result = load_config(path)
    except ConfigError as exc:
        assert exc.source == str(path)
    else:
        _check(result)


names = st.text(st.characters(codec="utf-8", exclude_characters="/\\\x00."), min_size=1, max_size=12).filter(
    lambda s: s != "all"  # the one word that means every field or group, not a name
)


@settings(max_examples=100, deadline=None)
@given(
    groups=st.lists(names, min_size=1, max_size=4),
    fields=st.lists(names, min_size=1, max_size=5),
    samples=st.one_of(st.just("all"), st.integers(1, 10**6)),
    lo=st.floats(-1e6, 1e6),
    span=st.floats(0, 1e6),
    day=st.dates(min_value=datetime.date(2000, 1, 1), max_value=datetime.date(2000, 1, 2)),
)
def test_valid_configs_parse_as_written(
    groups: list[str], fields: list[str], samples: Any, lo: float, span: float, day: datetime.date
) -> None:
    data = {
        "DEFAULT": {"entity": "demo", "project": "p", "output_path": "out"},
        "e": {
            "fields": fields,
            "groups": groups,
            "job_types": [[g] for g in groups],
            "tags": ["all"] * len(groups),
            "history_samples": samples,
            "summary": {"x": {"min": lo, "max": lo + span}},
            "config": {"d": {"values": [day.isoformat()]}},
        },
    }
    (exp,) = parse_config(data)
    assert exp.fields == tuple(dict.fromkeys(fields))
    assert [s.group for s in exp.selections] == groups
    assert [s.job_types for s in exp.selections] == [(g,) for g in groups]
    assert all(s.tags is None for s in exp.selections)
    assert exp.history_samples == (None if samples == "all" else samples)
    assert exp.summary_filters["x"].min == lo
