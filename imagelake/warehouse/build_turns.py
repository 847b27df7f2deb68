"""Warehouse builds take turns: DuckDB has one writer, and dbt reads its window from the environment.

``single_writer`` holds a build back while another builds, and says why in
the build's log; ``environment`` hands dbt the settings and the build's days
(``DayWindow.dbt_env``) as process environment variables, which is why two
builds in one process cannot overlap on any target.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from imagelake.settings import Settings
from imagelake.warehouse.locks import exclusive, wait_until_unused

#: How long a build waits for another to release the local warehouse before it gives up.
WRITER_WAIT_S = 30 * 60

#: How long a build waits for another process (an analyst's session) to close the local warehouse.
READER_WAIT_S = 10 * 60

_env_lock = threading.Lock()


@contextmanager
def single_writer(settings: Settings, log: logging.Logger) -> Iterator[None]:
    """One build at a time where the warehouse needs it, and the window kept to its own build.

    DuckDB has one writer, and a second one fails instead of waiting. The
    ``warehouse`` pool already queues Dagster's runs; this file lock also holds
    a build back while another process or thread builds (a second code server,
    an in-process run), and says so in the run's log. Then the build waits for
    any other process that has the file open, even read-only: an analyst's
    open duckdb session would otherwise fail every refresh. Redshift takes
    concurrent builds; there only builds in one process take turns, because
    the window travels to dbt in the process environment.
    """
    if settings.dbt_target != "local":
        with _env_lock:
            yield
        return
    lock = settings.warehouse_path.with_name(settings.warehouse_path.name + ".lock")
    with exclusive(
        lock, WRITER_WAIT_S, on_wait=lambda: log.info(f"waiting for another build to release {lock}")
    ):
        wait_until_unused(
            settings.warehouse_path,
            READER_WAIT_S,
            on_wait=lambda: log.warning(
                f"{settings.warehouse_path} is open in another process (a duckdb session or notebook?), "
                f"which keeps DuckDB's one writer out: waiting up to {READER_WAIT_S // 60} min for it to close"
            ),
        )
        yield


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block (dbt reads them), then put back what was there."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
