"""What the command line imports: pyarrow, pandas and matplotlib only where they are used.

Each check runs in a fresh interpreter (this one has them all loaded by other tests). pyarrow
costs 60-90 ms of start-up and pandas about 0.4 s; wandb 0.31 itself imports neither.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from wandb2numpy.testing import LocalServer, synthetic_project

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("pyarrow", "pandas", "matplotlib", "polars")


def loaded_after(code: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Runs `code` in a new interpreter; its last output line is {"heavy": [...], "out": ...}."""
    script = f"import json, sys\n{code}\nprint(json.dumps({{'heavy': [m for m in {HEAVY!r} if m in sys.modules], 'out': out}}))"
    run_env = dict(os.environ if env is None else env)
    run_env["PYTHONPATH"] = str(REPO) + os.pathsep + run_env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=run_env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_cli_import_and_parsing_load_no_heavy_library() -> None:
    got = loaded_after(
        "import wandb2numpy.cli\n"
        "from wandb2numpy.cli.parser import build_parser\n"
        "parser = build_parser()\n"
        "out = [parser.parse_args(a).handler for a in (['export', 'c.yaml', '-o'], ['fields', 'e/p'],\n"
        "       ['plot', 'out/exp', '--field', 'x'], ['demo'])]\n"
    )
    assert got["out"] == ["export", "fields", "plot", "demo"]
    assert got["heavy"] == []


def test_the_format_registry_loads_no_heavy_library() -> None:
    got = loaded_after("from wandb2numpy.output import formats\nout = list(formats.names())")
    assert "parquet" in got["out"]
    assert got["heavy"] == []


def _export_in_subprocess(server: LocalServer, tmp_path: Path, fmt: str, fields: list[str]) -> dict[str, Any]:
    config = {
        "exp": {
            "entity": "demo",
            "project": "synthetic",
            "fields": fields,
            "history_samples": "all",
            "output_path": str(tmp_path / "out"),
            "output_data_type": fmt,
        }
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))
    env = dict(os.environ, WANDB_API_KEY=server.api_key)
    return loaded_after(
        f"from wandb2numpy.cli import main\nout = main([{str(path)!r}, '--base-url', {server.base_url!r}])",
        env=env,
    )


@pytest.mark.server
def test_a_numpy_export_imports_neither_pyarrow_nor_pandas(tmp_path: Path) -> None:
    with LocalServer(synthetic_project(runs=3, steps=60, metrics=2)) as server:
        got = _export_in_subprocess(server, tmp_path, "numpy", ["train/loss"])
        assert server.stats()["ops"].get("RunParquetHistory", 0) == 0
    assert got["out"] == 0
    assert (tmp_path / "out" / "exp").is_dir()
    assert got["heavy"] == []


@pytest.mark.server
def test_a_parquet_served_export_reads_with_pyarrow_without_pandas(tmp_path: Path) -> None:
    """pyarrow's own `to_numpy` imports pandas; the reader takes the column buffers instead."""
    with LocalServer(synthetic_project(runs=2, steps=3000, metrics=2, all_finished=True), parquet=True) as server:
        got = _export_in_subprocess(server, tmp_path, "numpy", ["train/loss", "train/return"])
        assert server.stats()["ops"].get("ParquetFile", 0) >= 2  # the files were read
    assert got["out"] == 0
    assert got["heavy"] == ["pyarrow"]


def test_a_bad_config_is_refused_before_wandb_is_loaded(tmp_path: Path) -> None:
    """The config is checked before wandb (most of a second of imports) is loaded and wandb-core
    started, and before the export's own modules load, so a mistake is reported at once and
    costs no process; a good config starts wandb-core that much sooner."""
    path = tmp_path / "config.yaml"
    path.write_text(
        json.dumps(
            {"exp": {"entity": "e", "project": "p", "fields": ["x"], "output_path": "o", "history_samples": "lots"}}
        )
    )
    later = ("wandb", "anyio", "tenacity", "wandb2numpy.pipeline", "wandb2numpy.runner", "wandb2numpy.output.formats")
    got = loaded_after(
        f"from wandb2numpy.cli import main\nout = [main([{str(path)!r}, '--base-url', 'http://127.0.0.1:9']),\n"
        f"       [m for m in {later!r} if m in sys.modules]]"
    )
    assert got["out"] == [2, []]
    assert got["heavy"] == []
