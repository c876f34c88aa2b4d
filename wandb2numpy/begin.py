"""Begin the first requests' slow parts while an export is still getting ready.

wandb-core takes a moment to start and the first `Api` a round trip (`Viewer`); a bare script
pays both before anything else, and so did we, after our own config checks and imports. Begun
here as soon as the config is known good, they overlap that work. The command line calls this
before it loads the pipeline, the pipeline again for library callers (a second call does
nothing). The rule that keeps it honest: a request goes out early only when nothing the export
checks before its first request can refuse it, so a refused export still sends none.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .config import ExperimentConfig, server_entity
from .errors import Wandb2NumpyError
from .wandb.client import ClientSettings, connect_early, start_core


def begin_requests(
    chosen: Sequence[ExperimentConfig], settings: ClientSettings, *, write: bool, incremental: bool
) -> None:
    """wandb-core starts once the config names a W&B project. When nothing can be refused either
    (the fields check out, no output folder exists yet, nothing is cached), the first request
    goes out too (`client.connect_early`), for the export to take over (`ApiPool.take`)."""
    if not any(c.run_folders is None for c in chosen):
        return
    settings = settings.for_entity(server_entity(chosen))  # as the export will make them
    start_core(settings)
    if incremental:
        return
    from .output.checks import check_fields, check_output_paths

    try:
        check_fields(chosen)
        if write:
            check_output_paths(chosen)
    except Wandb2NumpyError:
        return  # the export refuses it, before any request
    if write and any(os.path.lexists(c.output_path) for c in chosen):
        return  # files in the way, a lock, a previous export: the export's checks decide first
    connect_early(settings)
