"""The warehouse's dbt resource, and what a build asks of a dbt invocation.

``dbt_resource`` runs the dbt installed beside this interpreter on dbt_project/
with the settings' target (DuckDB locally, Redshift in prod).
``events_and_row_counts`` takes a build's events from its invocation, each
table's row count with them, the way the target allows.
"""

import importlib.metadata
import logging
import sys
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

import dagster as dg
import duckdb
from dagster_dbt import DbtCliInvocation, DbtCliResource, DbtProject
from packaging import version

from imagelake.settings import PROJECT_ROOT, Settings
from imagelake.warehouse.row_counts import count_rows

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"

#: What dagster-dbt makes of dbt's events (``DbtCliInvocation.stream``).
DbtEvent: TypeAlias = (
    dg.Output | dg.AssetMaterialization | dg.AssetObservation | dg.AssetCheckResult | dg.AssetCheckEvaluation
)

T = TypeVar("T")


def dbt_project(settings: Settings) -> DbtProject:
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target=settings.dbt_target)


class InstalledDbtCliResource(DbtCliResource):
    """dagster-dbt's resource without two start-up costs a warehouse run does not need.

    Every ``cli()`` call first runs ``dbt --version`` to learn whether the
    executable is dbt Core or Fusion: a second dbt process, which imports all
    of dbt, in every run. Then it loads dbt's adapter in this process, for
    dagster-dbt's metadata fetchers. The executable here is the dbt installed
    beside this interpreter (``dbt_resource``), so its version is the installed
    dbt-core's. On DuckDB the run counts rows itself once dbt has let go of the
    file (``table_row_counts``), so no adapter is loaded; Redshift's counts come
    through the adapter (``fetch_row_counts``). What each would cost a run:
    docs/benchmarks.md, "bench-marts". Both are private hooks of dagster-dbt
    (the version in uv.lock): tests/unit/test_dbt_resource.py fails if they move.
    """

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> Any:
        if self.target == "local":
            return None
        return super()._initialize_dbt_core_adapter(args)


def dbt_resource(settings: Settings) -> DbtCliResource:
    # The dbt installed beside this interpreter, whether or not the venv is on PATH.
    return InstalledDbtCliResource(
        # DbtCliResource.__init__ takes a DbtProject; mypy sees only the pydantic field (str).
        project_dir=dbt_project(settings),  # type: ignore[arg-type]
        target=settings.dbt_target,
        dbt_executable=str(Path(sys.executable).with_name("dbt")),
    )


def events_and_row_counts(
    invocation: DbtCliInvocation, settings: Settings, log: logging.Logger
) -> tuple[list[DbtEvent], Exception | None, dict[str, int]]:
    """A build's events, what stopped it early (if anything), and its tables' rows by dbt unique id.

    On DuckDB the build runs to its end first, and what stopped it comes back
    beside the events before it, so those are still reported. Redshift's counts
    come with the events as they stream, and a failure raises here.
    """
    if settings.dbt_target != "local":
        return list(invocation.stream().fetch_row_counts()), None, {}
    # DuckDB has one writer: the tables are counted once dbt has finished and let go of it.
    events, failure = drain(invocation.stream())
    try:
        counts = table_row_counts(settings.warehouse_path, invocation.manifest, events)
    except duckdb.Error as error:  # a figure missing is no reason to fail a build
        log.warning(f"row counts not read from {settings.warehouse_path}: {error}")
        counts = {}
    return events, failure, counts


def drain(events: Iterator[T]) -> tuple[list[T], Exception | None]:
    """Everything an iterator yields, and what stopped it early, if anything."""
    drained: list[T] = []
    try:
        drained.extend(events)
    except Exception as stopped:  # a failed dbt build: what it built before is still reported
        return drained, stopped
    return drained, None


def table_row_counts(warehouse: Path, manifest: Mapping[str, Any], events: list) -> dict[str, int]:
    """Rows in each table (not view) a build materialized, by dbt unique id: one read-only look."""
    nodes = manifest["nodes"]
    built = [str(e.metadata["unique_id"].value) for e in events if isinstance(e, dg.Output)]
    tables = {u: nodes[u]["relation_name"] for u in built if nodes[u]["config"]["materialized"] != "view"}
    return count_rows(warehouse, tables)
