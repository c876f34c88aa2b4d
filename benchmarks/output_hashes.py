"""The sha256 of every file that exporting each example config writes, against the bundled local
server: run it at two commits and compare, to show a change left the outputs byte-identical.

    python benchmarks/output_hashes.py [CONFIG_DIR] > before.txt   (at the old commit)
    python benchmarks/output_hashes.py > after.txt    (at the new one)
    diff before.txt after.txt

Every example config is exported as written and again as numpy, csv, npz and parquet, with
full history and sampled. The server listens on one fixed port (W2N_HASH_PORT, default 18765),
since the run tables hold URLs with it; runs.csv's url column is blanked all the same, and every
other byte counts. Uses only the public API, so it runs
unchanged at any commit since the API gained `export`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _digest(path: Path) -> str:
    data = path.read_bytes()
    if path.name == "runs.csv":
        rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
        if rows and "url" in rows[0]:
            col = rows[0].index("url")
            for row in rows[1:]:
                row[col] = ""
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        data = out.getvalue().encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def main() -> int:
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
    sandbox = Path(tempfile.mkdtemp(prefix="w2n-hashes-"))
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        os.environ[var] = str(sandbox / var.lower())
        os.makedirs(os.environ[var], exist_ok=True)
    from wandb2numpy import ClientSettings, export
    from wandb2numpy.testing import local_server

    lines: list[str] = []
    # a fixed port: the run tables (in runs.csv, data.npz and data.parquet) hold URLs with it
    with local_server(
        runs=24, steps=300, metrics=5, seed=0, port=int(os.environ.get("W2N_HASH_PORT", "18765"))
    ) as server:
        settings = ClientSettings(base_url=server.base_url, api_key=server.api_key)
        configs = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "example_configs"
        for cfg in sorted(configs.glob("*.yaml")):
            raw: dict[str, Any] = yaml.safe_load(cfg.read_text(encoding="utf-8"))
            for variant in ("as-written", "numpy", "csv", "npz", "parquet", "full"):
                data = yaml.safe_load(yaml.safe_dump(raw))
                out = sandbox / "out" / cfg.stem / variant
                for name, exp in data.items():
                    exp = data[name] = exp or {}
                    if name == "DEFAULT" or "output_path" in exp or "DEFAULT" not in data:
                        exp["output_path"] = str(out)
                    if variant in ("numpy", "csv", "npz", "parquet"):
                        exp["output_data_type"] = variant
                    if variant == "full":
                        exp["history_samples"] = "all"
                try:
                    result = export(data, settings=settings, overwrite=True)
                    code = result.exit_code
                except Exception as exc:  # noqa: BLE001 - a refusal is part of the record
                    lines.append(f"{cfg.stem}/{variant}: {type(exc).__name__}")
                    continue
                lines.append(f"{cfg.stem}/{variant}: exit {code}")
                for path in sorted(p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".wandb2numpy")):
                    lines.append(f"  {path.relative_to(out)} {_digest(path)}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
