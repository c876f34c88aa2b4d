"""W&B run folders on disk (`wandb/run-*`, `wandb/offline-run-*`) as a history source.

`wire` frames the `.wandb` file, `proto` decodes its metadata records, `decode` reads history and
summary into arrays, `discover` finds the files, `source` is the `HistorySource`.
"""

from __future__ import annotations
