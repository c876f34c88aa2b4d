"""Config loading: DEFAULT merge, every key's validation and its message, seed configs, -e selection."""

from __future__ import annotations

import copy
import glob
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import SEED_CONFIG_DIR

from wandb2numpy.config import (
    DEFAULT_HISTORY_SAMPLES,
    ExperimentConfig,
    Selection,
    ValueFilter,
    load_config,
    parse_config,
)
from wandb2numpy.errors import ConfigError

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "example_configs"
SEED_FILES = sorted(glob.glob(os.path.join(SEED_CONFIG_DIR, "**", "*.yaml"), recursive=True))
BASE = {"entity": "demo", "project": "synthetic", "fields": ["train/return"], "output_path": "wandb_data"}


def one(settings: dict[str, Any], **kw: Any) -> ExperimentConfig:
    """Parses a config with BASE in DEFAULT and one experiment 'e'."""
    (exp,) = parse_config({"DEFAULT": BASE, "e": settings}, source="cfg.yaml", **kw)
    return exp


def error(data: Any, **kw: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="cfg.yaml", **kw)
    return info.value


def exp_error(settings: dict[str, Any]) -> ConfigError:
    return error({"DEFAULT": BASE, "e": settings})


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- seed and example configs


def test_seed_configs_found() -> None:
    assert len(SEED_FILES) == 26  # 3 original examples + 23 user configs


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: os.path.relpath(p, SEED_CONFIG_DIR))
def test_every_seed_config_loads(path: str) -> None:
    configs = load_config(path)
    assert configs
    for exp in configs:
        assert exp.source == path
        assert exp.entity and exp.project and exp.output_path
        assert exp.selections


def test_original_example_nested_groups() -> None:
    e1, e2 = load_config(os.path.join(SEED_CONFIG_DIR, "user-configs", "example_config.yaml"))
    g1 = "fmnist_dropout_cnn_adam_standard_hpo_algo_1_env_1"
    g2 = "fmnist_dropout_cnn_new_gmore_elbo_mean_kl_standard_hpo_algo_1_env_1"
    assert (e1.name, e1.entity, e1.project) == ("experiment1", "kit-alr", "wandb_export")
    assert e1.fields == ("train_acc", "test_acc")
    assert e1.selections == (
        Selection(group=g1, job_types=("run_1",), runs=("exp_rep_00", "exp_rep_03")),
        Selection(group=g2, job_types=("run_1, run_2",), runs=("exp_rep_00", "exp_rep_03")),  # comma kept verbatim
    )
    values = ("hp_eval_config_0.yml", "hp_eval_config_1.yml")
    assert dict(e1.config_filters) == {"config_name": ValueFilter(values=values)}
    assert dict(e1.summary_filters) == {"best_test_acc": ValueFilter(min=0.92, max=0.921)}
    assert e1.output_data_type == "numpy" and e1.history_samples == DEFAULT_HISTORY_SAMPLES
    assert e1.output_path == Path("wandb_data")
    # experiment2 overrides fields; runs "all" for the second group
    assert e2.fields == ("test_loss",)
    assert e2.selections == (Selection(group=g1, runs=("exp_rep_00", "exp_rep_03")), Selection(group=g2))


def test_original_example_1_and_2() -> None:
    e1, e2 = load_config(os.path.join(SEED_CONFIG_DIR, "example_config_1.yaml"))
    assert e1.selections[0].runs is None and e1.selections[1].runs == ("exp_rep_00", "exp_rep_03")
    group = "fmnist_dropout_cnn_adam_standard_hpo_algo_1_env_1"
    assert e2.selections == (Selection(group=group, runs=("exp_rep_00", "exp_rep_03")),)
    m1, m2, m3, m4 = load_config(os.path.join(SEED_CONFIG_DIR, "example_config_2.yaml"))
    assert (m1.fields, m1.history_samples) == (None, 100)
    assert (m2.output_data_type, m2.history_samples) == ("csv", 500)
    assert m3.output_path == Path("my_data_dir")
    assert [s.tags for s in m4.selections] == [("tag_1", "tag_2"), ("tag_2", "tag_3")]


def test_user_config_dotted_key_and_nested_tags() -> None:
    path = os.path.join(SEED_CONFIG_DIR, "user-configs", "configs_box_pushing_bp_mdp.yaml")
    configs = load_config(path)
    assert [c.name for c in configs] == ["mprl-mp3-bb", "mprl-mp3-rp", "mprl-mp3-rp-gpt", "mprl-mp3-rp-rnn"]
    bb = configs[0]
    assert bb.fields is not None and bb.fields[1] == "eval/reward" and len(bb.fields) == 6
    assert bb.selections == (Selection(group="mprl-mp3-bb", tags=("pomdp_1st",)),)
    assert bb.config_filters["sampler.args.env_id"].values == (
        "BoxPushingTSMDPProMP-v0",
        "BoxPushingTSMDPReplanProDMP-v0",
        "BoxPushingTSMDPReplanProDMPIA-v0",
    )
    assert bb.output_path == Path("wandb_data/box_pushing/bp_mdp")


def test_user_config_without_groups() -> None:
    (exp,) = load_config(os.path.join(SEED_CONFIG_DIR, "user-configs", "example_configs_jmlr_default.yaml"))
    assert exp.selections == (Selection(),)
    assert exp.config_filters["out_dir"].values == ("results/sac_bp_Tsparse_new_ctrl0.02",)
    (tcp,) = load_config(os.path.join(SEED_CONFIG_DIR, "user-configs", "example_configs_box_dense_tcp.yaml"))
    assert tcp.config_filters["policy.args.mp.args.num_basis"].values == (4,)


@pytest.mark.parametrize(
    "name", ["basic.yaml", "groups_and_filters.yaml", "full_history_csv.yaml", "demo.yaml", "curves.yaml"]
)
def test_example_configs_parse(name: str) -> None:
    configs = load_config(EXAMPLES_DIR / name)
    assert configs
    for exp in configs:
        assert (exp.entity, exp.project, exp.output_path) == ("demo", "synthetic", Path("wandb_data"))


def test_example_configs_show_every_option() -> None:
    keys: set[str] = set()
    for path in EXAMPLES_DIR.glob("*.yaml"):
        for exp in load_config(path):
            keys |= set(exp.raw)
    assert keys == {
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
        "x_axis",
        "grid",
    }


# --------------------------------------------------------------------------- DEFAULT merge


def test_default_is_deep_merged_and_experiment_wins() -> None:
    data = {
        "DEFAULT": {**BASE, "config": {"lr": {"min": 0.1}, "seed": {"values": [1]}}, "tags": ["a", "b"]},
        "e": {"project": "other", "config": {"lr": {"max": 0.5}}, "tags": ["c"]},
    }
    (exp,) = parse_config(data)
    assert exp.project == "other" and exp.entity == "demo"
    assert dict(exp.config_filters) == {"lr": ValueFilter(min=0.1, max=0.5), "seed": ValueFilter(values=(1,))}
    assert exp.selections == (Selection(tags=("c",)),)  # lists are replaced, not merged
    assert exp.raw["config"] == {"lr": {"min": 0.1, "max": 0.5}, "seed": {"values": [1]}}


def test_empty_experiment_takes_everything_from_default() -> None:
    configs = parse_config({"DEFAULT": BASE, "a": None, "b": {}})
    assert [c.name for c in configs] == ["a", "b"]
    assert configs[0].fields == ("train/return",) and configs[0].selections == (Selection(),)


def test_no_default_block() -> None:
    (exp,) = parse_config({"x": dict(BASE)})
    assert exp.name == "x" and exp.source == "<config>"


def test_input_is_not_mutated_and_raw_is_a_copy() -> None:
    data = {"DEFAULT": {**BASE, "config": {"lr": {"min": 1}}}, "a": {"config": {"lr": {"max": 2}}}, "b": {}}
    before = copy.deepcopy(data)
    a, b = parse_config(data)
    assert data == before
    assert dict(b.config_filters) == {"lr": ValueFilter(min=1)}  # a's override did not leak into DEFAULT
    assert a.raw == {**BASE, "config": {"lr": {"min": 1, "max": 2}}}
    with pytest.raises(TypeError):
        a.raw["entity"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        a.config_filters["x"] = ValueFilter(min=1)  # type: ignore[index]


def test_experiment_config_is_frozen_and_hashable() -> None:
    exp = one({})
    with pytest.raises(AttributeError):
        exp.name = "x"  # type: ignore[misc]
    assert hash(exp) == hash(one({}))
    assert exp == one({})


def test_null_optional_keys_mean_unset() -> None:
    data = {
        "DEFAULT": {**BASE, "groups": ["ppo"], "tags": [["x"]], "config": {"lr": {"min": 1}}},
        "e": {"groups": None, "tags": None, "config": None, "summary": None},
    }
    (exp,) = parse_config(data)
    assert exp.selections == (Selection(),) and dict(exp.config_filters) == {}


def test_yaml_anchors_and_merge_keys(tmp_path: Path) -> None:
    text = """
base: &base
  entity: demo
  project: synthetic
  fields: [a]
  output_path: out
other:
  <<: *base
  fields: [b]
"""
    base, other = load_config(write(tmp_path, text))
    assert base.fields == ("a",) and other.fields == ("b",) and other.entity == "demo"


# --------------------------------------------------------------------------- fields


@pytest.mark.parametrize(
    "value, expected",
    [
        ("all", None),
        (["all"], None),
        ("eval/reward", ("eval/reward",)),
        (["b", "a", "b", "c", "a"], ("b", "a", "c")),
        (["num_global_steps", "eval/box_goal_pos_dist"], ("num_global_steps", "eval/box_goal_pos_dist")),
        (["a" * 200], ("a" * 200,)),
        (["_step", "x.y/z w"], ("_step", "x.y/z w")),
    ],
)
def test_fields_accepted(value: Any, expected: Any) -> None:
    assert one({"fields": value}).fields == expected


@pytest.mark.parametrize(
    "value, key, fragment",
    [
        (["../x"], "fields[0]", "'..' path segment"),
        (["a", "eval/../../etc"], "fields[1]", "'..' path segment"),
        (["/etc/passwd"], "fields[0]", "absolute path"),
        (["a//b"], "fields[0]", "empty path segment"),
        (["a/"], "fields[0]", "empty path segment"),
        (["./a"], "fields[0]", "'.' path segment"),
        (["a\x00b"], "fields[0]", "NUL"),
        (["a" * 201], "fields[0]", "longer than 200 characters"),
        (["ok/" + "b" * 201], "fields[0]", "longer than 200 characters"),
        ([], "fields", "empty"),
        ([""], "fields[0]", "non-empty"),
        (["all", "x"], "fields", "'all' cannot be combined"),
        ([1], "fields[0]", "found integer 1 (put it in quotes"),
        (5, "fields", "expected a list of field names or 'all'; found integer 5"),
        ({"a": 1}, "fields", "found mapping {'a': 1}"),
        (None, "fields", "found null"),
    ],
)
def test_fields_rejected(value: Any, key: str, fragment: str) -> None:
    err = exp_error({"fields": value})
    assert (err.source, err.experiment, err.key) == ("cfg.yaml", "e", key)
    assert fragment in str(err)
    assert str(err).startswith(f"cfg.yaml, experiment 'e', key '{key}': ")


# --------------------------------------------------------------------------- required keys and plain strings


def test_missing_required_keys_are_all_named() -> None:
    err = error({"e": {"project": "p"}})
    text = str(err)
    for key in ("entity", "fields", "output_path"):
        assert f"experiment 'e', key '{key}': required key '{key}' is missing" in text
    assert "3 problems" in text


def test_single_missing_key() -> None:
    err = error({"DEFAULT": {k: v for k, v in BASE.items() if k != "entity"}, "e": {}})
    assert (err.experiment, err.key) == ("e", "entity")
    assert "set it in this experiment or in DEFAULT" in str(err)


@pytest.mark.parametrize("key", ["entity", "project"])
@pytest.mark.parametrize(
    "value, fragment",
    [
        (5, "found integer 5 (put it in quotes to make it text)"),
        (True, "found boolean True"),
        ("", "non-empty"),
        ("a/b", "cannot contain '/'"),
        (["x"], "found list ['x']"),
    ],
)
def test_entity_and_project(key: str, value: Any, fragment: str) -> None:
    err = exp_error({key: value})
    assert (err.experiment, err.key) == ("e", key) and fragment in str(err)


def test_output_path() -> None:
    assert one({"output_path": "data/out"}).output_path == Path("data/out")
    assert one({"output_path": Path("/abs/out")}).output_path == Path("/abs/out")  # Python API leniency
    for bad, fragment in ((3, "found integer 3"), ("", "found string ''"), ("a\x00", "NUL"), (None, "found null")):
        err = exp_error({"output_path": bad})
        assert err.key == "output_path" and fragment in str(err)


# --------------------------------------------------------------------------- groups, job_types, runs, tags


def test_flat_selection_without_groups() -> None:
    exp = one({"job_types": ["train"], "runs": ["r1", "r2", "r1"], "tags": ["baseline"]})
    assert exp.selections == (Selection(job_types=("train",), runs=("r1", "r2"), tags=("baseline",)),)


@pytest.mark.parametrize("groups", ["all", None])
def test_groups_all_keeps_flat_lists(groups: Any) -> None:
    exp = one({"groups": groups, "job_types": ["eval"], "tags": "all", "runs": ["all"]})
    assert exp.selections == (Selection(job_types=("eval",)),)


def test_nested_selection_with_groups() -> None:
    exp = one(
        {
            "groups": ["ppo", "sac", "td3"],
            "job_types": [["train"], "all", ["all"]],
            "runs": "all",
            "tags": [["a", "b"], ["c"], "all"],
        }
    )
    assert exp.selections == (
        Selection(group="ppo", job_types=("train",), tags=("a", "b")),
        Selection(group="sac", tags=("c",)),
        Selection(group="td3"),
    )


def test_flat_list_with_groups_is_explained() -> None:
    err = exp_error({"groups": ["a", "b"], "job_types": ["train", "eval"]})
    assert (err.experiment, err.key) == ("e", "job_types")
    assert err.detail == (
        'with groups: [a, b], job_types needs one entry per group, e.g. [[...], "all"]; found a flat list of 2 strings'
    )


def test_flat_list_with_one_group() -> None:
    err = exp_error({"groups": ["mprl-mp3-bb"], "tags": ["pomdp_1st"]})
    assert err.key == "tags"
    assert err.detail == (
        "with groups: [mprl-mp3-bb], tags needs one entry per group, e.g. [[...]]; found a flat list of 1 string"
    )


def test_wrong_number_of_entries() -> None:
    err = exp_error({"groups": ["a", "b"], "runs": [["x"]]})
    assert err.key == "runs" and "needs one entry per group (2); found 1 entry" in str(err)


def test_bad_entry_names_the_group() -> None:
    err = exp_error({"groups": ["a", "b"], "job_types": [["train"], "eval"]})
    assert err.key == "job_types[1]"
    assert "the entry for group 'b' must be a list of job types or 'all'; found string 'eval'" in str(err)
    err = exp_error({"groups": ["a", "b"], "tags": [["x"], [3]]})
    assert err.key == "tags[1][0]" and "found integer 3" in str(err)
    err = exp_error({"groups": ["a"], "runs": [[]]})
    assert err.key == "runs[0]" and "empty" in str(err)


def test_nested_list_without_groups() -> None:
    err = exp_error({"job_types": [["train"], ["eval"]]})
    assert err.key == "job_types"
    assert "without a groups list, job_types must be a flat list of job types or 'all'; found a nested list" in str(err)


def test_nesting_error_names_inherited_value() -> None:
    err = error({"DEFAULT": {**BASE, "tags": [["t"], ["u"]]}, "e": {"groups": ["a"]}})
    assert (err.experiment, err.key) == ("e", "tags") and "(inherited from DEFAULT)" in str(err)


def test_default_may_hold_nested_lists_for_experiments_groups() -> None:
    (exp,) = parse_config({"DEFAULT": {**BASE, "tags": [["t"]]}, "e": {"groups": ["g"]}})
    assert exp.selections == (Selection(group="g", tags=("t",)),)


@pytest.mark.parametrize(
    "settings, key, fragment",
    [
        ({"groups": "ppo"}, "groups", "expected a list of group names or 'all'; found string 'ppo'"),
        ({"groups": []}, "groups", "empty"),
        ({"groups": ["all"]}, "groups", "write groups: all"),
        ({"groups": ["a", 1]}, "groups[1]", "found integer 1"),
        ({"tags": "baseline"}, "tags", "expected a list of tags or 'all'; found string 'baseline'"),
        ({"tags": []}, "tags", "empty, which would match nothing"),
        ({"runs": ["all", "x"]}, "runs", "'all' cannot be combined"),
        ({"job_types": {"a": 1}}, "job_types", "found mapping"),
        ({"runs": [True]}, "runs[0]", "found boolean True (put it in quotes"),
    ],
)
def test_selection_rejected(settings: dict[str, Any], key: str, fragment: str) -> None:
    err = exp_error(settings)
    assert (err.experiment, err.key) == ("e", key) and fragment in str(err)


# --------------------------------------------------------------------------- config and summary filters


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"values": ["a", 1, 2.5, True, None]}, ValueFilter(values=("a", 1, 2.5, True, None))),
        ({"values": "adam"}, ValueFilter(values=("adam",))),
        ({"values": 0.0003}, ValueFilter(values=(0.0003,))),
        ({"min": 0}, ValueFilter(min=0)),
        ({"max": 1.5}, ValueFilter(max=1.5)),
        ({"min": 1, "max": 1}, ValueFilter(min=1, max=1)),
        ({"values": [1, 2], "min": 0, "max": 3}, ValueFilter(values=(1, 2), min=0, max=3)),
    ],
)
@pytest.mark.parametrize("section", ["config", "summary"])
def test_value_filters_accepted(section: str, spec: dict[str, Any], expected: ValueFilter) -> None:
    exp = one({section: {"a.b.c": spec}})
    filters = exp.config_filters if section == "config" else exp.summary_filters
    assert dict(filters) == {"a.b.c": expected}


@pytest.mark.parametrize(
    "spec, key, fragment",
    [
        ({"min": 2, "max": 1}, "config.lr", "min (2) is greater than max (1)"),
        ({}, "config.lr", "needs at least one of 'values', 'min' or 'max'"),
        ({"min": True}, "config.lr.min", "expected a number; found boolean True"),
        ({"max": "1"}, "config.lr.max", "expected a number; found string '1'"),
        ({"min": float("nan")}, "config.lr.min", "expected a finite number; found float nan"),
        ({"max": float("inf")}, "config.lr.max", "finite"),
        ({"min": 2**70}, "config.lr.min", "64 bits"),
        ({"values": []}, "config.lr.values", "empty"),
        ({"values": [[1, 2]]}, "config.lr.values[0]", "found list [1, 2]"),
        ({"values": [1, {"a": 1}]}, "config.lr.values[1]", "found mapping {'a': 1}"),
        ({"mni": 1}, "config.lr.mni", "unknown key 'mni'; did you mean 'min'?"),
        ({"value": [1]}, "config.lr.value", "did you mean 'values'?"),
    ],
)
def test_value_filters_rejected(spec: dict[str, Any], key: str, fragment: str) -> None:
    err = exp_error({"config": {"lr": spec}})
    assert (err.experiment, err.key) == ("e", key) and fragment in str(err)


@pytest.mark.parametrize("section", ["config", "summary"])
@pytest.mark.parametrize(
    "mapping, key, fragment",
    [
        (
            {"lr": [1, 2]},
            "lr",
            "expected a mapping with 'values', 'min' and/or 'max', e.g. lr: {values: [...]}; found list [1, 2]",
        ),
        ({"lr": 0.1}, "lr", "found float 0.1"),
        ({"lr": None}, "lr", "found null"),
        ({1: {"min": 1}}, "1", "keys must be strings; found integer 1"),
        ({"a..b": {"min": 1}}, "a..b", "dotted keys need a name between every pair of dots"),
        ({".a": {"min": 1}}, ".a", "dotted keys"),
    ],
)
def test_filter_mappings_rejected(section: str, mapping: dict[Any, Any], key: str, fragment: str) -> None:
    err = exp_error({section: mapping})
    assert err.key == f"{section}.{key}" and fragment in str(err)


@pytest.mark.parametrize("section", ["config", "summary"])
def test_filter_section_must_be_mapping(section: str) -> None:
    err = exp_error({section: ["lr"]})
    assert err.key == section and "expected a mapping from keys to {values, min, max}; found list ['lr']" in str(err)


# --------------------------------------------------------------------------- history_samples, output_data_type


@pytest.mark.parametrize("value, expected", [(1, 1), (500, 500), ("all", None), (2**31 - 1, 2**31 - 1)])
def test_history_samples_accepted(value: Any, expected: Any) -> None:
    assert one({"history_samples": value}).history_samples == expected


def test_history_samples_default() -> None:
    assert one({}).history_samples == DEFAULT_HISTORY_SAMPLES == 12000


@pytest.mark.parametrize(
    "value, fragment",
    [
        (0, "found integer 0"),
        (-5, "found integer -5"),
        (True, "found boolean True"),
        (100.0, "found float 100.0"),
        ("100", "found string '100'"),
        ("ALL", "found string 'ALL'"),
        (None, "found null"),
        (2**31, "more samples than the server accepts"),
        pytest.param(10**5000, "more samples than the server accepts", id="5000-digits"),
    ],
)
def test_history_samples_rejected(value: Any, fragment: str) -> None:
    err = exp_error({"history_samples": value})
    assert (err.experiment, err.key) == ("e", "history_samples") and fragment in str(err)


@pytest.mark.parametrize("value", ["numpy", "csv", "npz", "parquet"])
def test_output_data_type_accepted(value: str) -> None:
    assert one({"output_data_type": value}).output_data_type == value


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("CSV", "found string 'CSV'; did you mean 'csv'?"),
        ("nump", "did you mean 'numpy'?"),
        ("hdf5", "expected one of 'numpy', 'csv', 'npz', 'parquet'; found string 'hdf5'"),
        ("Parquet", "found string 'Parquet'; did you mean 'parquet'?"),
        (1, "found integer 1"),
    ],
)
def test_output_data_type_rejected(value: Any, fragment: str) -> None:
    err = exp_error({"output_data_type": value})
    assert err.key == "output_data_type" and fragment in str(err)


# --------------------------------------------------------------------------- unknown keys, DEFAULT errors


@pytest.mark.parametrize(
    "typo, suggestion",
    [
        ("fileds", "fields"),
        ("job_type", "job_types"),
        ("group", "groups"),
        ("history_sample", "history_samples"),
        ("output", "output_path"),
        ("Tags", "tags"),
        ("sumary", "summary"),
    ],
)
def test_unknown_key_suggests_nearest(typo: str, suggestion: str) -> None:
    err = exp_error({typo: ["x"]})
    assert (err.experiment, err.key) == ("e", typo)
    assert err.detail == f"unknown key '{typo}'; did you mean '{suggestion}'?"


def test_unknown_key_without_near_match_lists_valid_keys() -> None:
    err = exp_error({"zzzzzz": 1})
    assert "unknown key 'zzzzzz' (valid keys: entity, project, fields, output_path" in str(err)


def test_error_in_default_is_reported_once_under_default() -> None:
    err = error({"DEFAULT": {**BASE, "fileds": ["x"]}, "a": {}, "b": {}})
    assert (err.experiment, err.key) == ("DEFAULT", "fileds")
    assert str(err) == "cfg.yaml, experiment 'DEFAULT', key 'fileds': unknown key 'fileds'; did you mean 'fields'?"


def test_default_must_be_mapping() -> None:
    err = error({"DEFAULT": ["x"], "e": BASE})
    assert err.experiment == "DEFAULT" and "expected a mapping of settings; found list ['x']" in str(err)


def test_problems_of_several_experiments_are_collected() -> None:
    err = error({"DEFAULT": BASE, "a": {"fields": 5}, "ok": {}, "b": {"history_samples": 0}})
    text = str(err)
    assert text.startswith("cfg.yaml: 2 problems:")
    assert "experiment 'a', key 'fields': expected a list of field names" in text
    assert "experiment 'b', key 'history_samples': expected a positive integer" in text


# --------------------------------------------------------------------------- top level and experiment names


@pytest.mark.parametrize(
    "data, fragment",
    [
        (None, "the config is empty"),
        ([1, 2], "expected a mapping of experiment names to settings; found list [1, 2]"),
        ("text", "found string 'text'"),
        ({"DEFAULT": BASE}, "no experiments"),
        ({}, "no experiments"),
    ],
)
def test_top_level_rejected(data: Any, fragment: str) -> None:
    err = error(data)
    assert err.source == "cfg.yaml" and fragment in str(err)


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("a/b", "cannot be a folder name"),
        ("..", "cannot be a folder name"),
        (".", "cannot be a folder name"),
        ("a\x00", "cannot be a folder name"),
        ("x" * 201, "longer than 200 characters"),
        ("", "must not be empty"),
    ],
)
def test_bad_experiment_names(name: str, fragment: str) -> None:
    err = error({"DEFAULT": BASE, name: {}})
    assert fragment in str(err)


@pytest.mark.parametrize("name", [5, True, None])
def test_non_string_experiment_names(name: Any) -> None:
    err = error({"DEFAULT": BASE, name: {}})
    assert "experiment names must be strings" in str(err) and "(put the name in quotes)" in str(err)


def test_long_experiment_name_at_limit_is_fine() -> None:
    (exp,) = parse_config({"DEFAULT": BASE, "x" * 200: {}})
    assert exp.name == "x" * 200


def test_setting_at_top_level_is_explained() -> None:
    err = error({"DEFAULT": BASE, "e": {}, "entity": "demo"})
    assert err.experiment == "entity"
    assert "'entity' is a setting, so indent it under DEFAULT or under an experiment" in str(err)


def test_misspelled_default_block_is_explained() -> None:
    err = error({"default": {"entity": "demo", "fields": ["a"]}, "e": BASE})
    assert "experiment 'default', key 'project': required key 'project' is missing" in str(err)
    assert "the shared block must be spelled 'DEFAULT'" in str(err)


# --------------------------------------------------------------------------- -e selection


def test_select_experiments_in_file_order() -> None:
    data = {"DEFAULT": BASE, "a": {}, "b": {}, "c": {}}
    assert [c.name for c in parse_config(data, experiments=["c", "a"])] == ["a", "c"]
    assert [c.name for c in parse_config(data, experiments=["b", "b"])] == ["b"]
    assert [c.name for c in parse_config(data, experiments=None)] == ["a", "b", "c"]
    assert [c.name for c in parse_config(data, experiments="b")] == ["b"]  # type: ignore[arg-type]


def test_only_selected_experiments_are_validated() -> None:
    data = {"DEFAULT": BASE, "good": {}, "bad": {"fields": 5}}
    assert [c.name for c in parse_config(data, experiments=["good"])] == ["good"]
    with pytest.raises(ConfigError):
        parse_config(data)


def test_unknown_experiment_suggests_nearest() -> None:
    err = error({"DEFAULT": BASE, "ppo_hopper": {}, "sac_walker": {}}, experiments=["ppo_hoper"])
    assert str(err) == (
        "cfg.yaml: experiment 'ppo_hoper' is not in the config (did you mean 'ppo_hopper'?); "
        "available: ppo_hopper, sac_walker"
    )


def test_unknown_experiments_all_named() -> None:
    err = error({"DEFAULT": BASE, "a": {}}, experiments=["x", "a", "y"])
    assert "experiment 'x' is not in the config (also unknown: y); available: a" in str(err)


def test_default_is_not_an_experiment() -> None:
    err = error({"DEFAULT": BASE, "a": {}}, experiments=["DEFAULT"])
    assert "'DEFAULT' is the shared block, not an experiment" in str(err)


def test_load_config_selection(tmp_path: Path) -> None:
    path = os.path.join(SEED_CONFIG_DIR, "example_config_2.yaml")
    assert [c.name for c in load_config(path, ["my_exp_4", "my_exp_2"])] == ["my_exp_2", "my_exp_4"]
    with pytest.raises(ConfigError, match="did you mean 'my_exp_1'"):
        load_config(path, ["my_exp1"])


# --------------------------------------------------------------------------- files and YAML


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.source == str(path) and "config file not found" in str(info.value)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="found a directory"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("e: [1, 2\n", "invalid YAML at line 2, column 1"),
        ("e:\n  entity: demo\n project: x\n", "invalid YAML at line 3, column 2"),
        ("\tx: 1\n", "line 1, column 1"),
        ("a: 1\n---\nb: 2\n", "expected a single document"),
        ("a: {entity: x}\nb: {}\na: {}\n", "line 3, column 1: duplicate key 'a' (first defined on line 1)"),
        ("e:\n  fields: [a]\n  fields: [b]\n", "duplicate key 'fields'"),
        ("a: 2023-02-30\n", "invalid YAML"),
        pytest.param("a: " + "9" * 5000 + "\n", "invalid YAML", id="5000-digits"),
        pytest.param("[" * 5000, "invalid YAML", id="deep-nesting"),
        (b"\xff\xfe\x00bad".decode("latin-1"), "invalid YAML"),
        ("", "the config is empty"),
        ("# only a comment\n", "the config is empty"),
        ("- a\n- b\n", "expected a mapping of experiment names"),
    ],
)
def test_bad_yaml_files(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.source == str(path) and fragment in str(info.value)


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"e: \xff\xfe\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(path)


def test_self_referencing_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "DEFAULT: {entity: demo, project: p, output_path: o}\ne:\n  fields: &x [a, *x]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "fields[1]"


def test_alias_bombs_stay_fast(tmp_path: Path) -> None:
    levels = ["l0: &l0 {a: 1, b: [x, y]}"]
    levels += [f"l{i}: &l{i} {{" + ", ".join(f"k{j}: *l{i - 1}" for j in range(9)) + "}" for i in range(1, 10)]
    text = "anchors:\n" + "\n".join("  " + line for line in levels) + "\n"
    text += "DEFAULT:\n  entity: demo\n  project: p\n  fields: [a]\n  output_path: o\n  config: {lr: {min: 1}}\n"
    text += "e:\n  config: *l9\n  junk: *l9\n  fields: *l9\n"
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, ["e"])  # 9**9 paths if anything walked the tree naively
    text = str(info.value)
    assert "experiment 'e', key 'fields': expected a list of field names or 'all'; found mapping {'k0': {'k0'" in text
    assert "... and" in text and len(text) < 5000
    with pytest.raises(ConfigError):
        load_config(path)


def test_yaml_12_floats(tmp_path: Path) -> None:
    text = (
        "e:\n  entity: demo\n  project: p\n  fields: [a]\n  output_path: o\n"
        "  config:\n    lr: {values: [1e-4, 3E-4], min: 1e-5, max: 1.0e-3}\n"
    )
    (exp,) = load_config(write(tmp_path, text))
    assert exp.config_filters["lr"] == ValueFilter(values=(1e-4, 3e-4), min=1e-5, max=1e-3)


def test_unquoted_date_is_explained(tmp_path: Path) -> None:
    text = "e:\n  entity: demo\n  project: 2024-01-01\n  fields: [a]\n  output_path: o\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert info.value.key == "project" and "found date 2024-01-01 (put it in quotes" in str(info.value)


def test_unicode_names(tmp_path: Path) -> None:
    text = "expérience-ü:\n  entity: demo\n  project: p\n  fields: [метрика/α, 損失]\n  output_path: dönnées\n"
    (exp,) = load_config(write(tmp_path, text))
    assert exp.name == "expérience-ü" and exp.fields == ("метрика/α", "損失")
    assert exp.output_path == Path("dönnées")


def test_path_like_argument(tmp_path: Path) -> None:
    path = write(tmp_path, "e:\n  entity: demo\n  project: p\n  fields: all\n  output_path: o\n")
    (exp,) = load_config(path)
    assert exp.source == str(path) and exp.fields is None
    (same,) = load_config(str(path))
    assert same == exp


def test_backslash_field_refused_at_load(tmp_path: Path) -> None:
    """The writers refuse a backslash; the config must too, before any request is made."""
    path = write(
        tmp_path,
        "DEFAULT: {entity: demo, project: synthetic, output_path: out}\n"
        "exp:\n  fields: [train/return, 'eval\\reward']\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert (err.source, err.experiment, err.key) == (str(path), "exp", "fields[1]")
    assert "backslash" in str(err) and "eval\\\\reward" in str(err)


def test_a_field_listed_twice_is_exported_once_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="wandb2numpy"):
        (exp,) = parse_config(
            {"e": {"entity": "x", "project": "p", "fields": ["b", "a", "c", "b"], "output_path": "o"}}, source="c.yaml"
        )
    assert exp.fields == ("b", "a", "c")
    assert "c.yaml, experiment 'e', key 'fields': 'b' listed more than once; exported once" in caplog.text
