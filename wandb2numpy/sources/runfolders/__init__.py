"""W&B run folders on disk (`wandb/run-*`, `wandb/offline-run-*`) as a history source.

`wire` frames the `.wandb` file; `tokens` cuts history and summary records into fields in bulk,
`decode` makes a file's history into arrays, `summary` replays its summary, `proto` decodes the
rest record by record; `runs` merges a run's files into its listing; `discover` finds the files,
`workers` decodes them in other processes, `remember` keeps listings for incremental exports;
`source.RunFolderSource` is the `HistorySource`. (Nothing is imported here: the workers import
the decoder alone.)
"""

from __future__ import annotations
