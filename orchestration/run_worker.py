"""What a process knows about being a Dagster run worker, and how a warehouse run yields the CPU."""

import multiprocessing
import os

from imagelake.settings import WAREHOUSE_BUILD_NICENESS


def in_run_worker() -> bool:
    """Whether this process is a run worker, which Dagster's code server starts with multiprocessing.

    Under ``dagster dev`` every process that loads the dbt assets would run
    ``dbt parse`` (``prepare_if_dev``), a whole dbt start-up under a file lock, in
    every run. The code server that launches a run has parsed the project when
    it loaded, so its run workers use that manifest.
    """
    return multiprocessing.parent_process() is not None


def yield_cpu_to_realtime() -> int | None:
    """Lower this process's CPU priority to ``WAREHOUSE_BUILD_NICENESS`` if it is a run worker.

    dbt inherits it. Only in a run worker: a test or an in-process
    materialization must not renice the process it shares (niceness cannot be
    raised back unprivileged). Idempotent: the warehouse code location calls it
    as a run worker loads it, the asset again. Returns the niceness, or None.
    """
    if not (in_run_worker() and hasattr(os, "nice")):
        return None
    current = os.nice(0)
    return os.nice(WAREHOUSE_BUILD_NICENESS - current) if current < WAREHOUSE_BUILD_NICENESS else current
