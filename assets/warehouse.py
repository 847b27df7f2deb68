"""The warehouse: dbt models (staging views, per-image detail, marts) as Dagster assets.

Sources over the lake map onto the Dagster assets that write them, so the
asset graph runs unbroken from the raw zone to the marts. The models are
partitioned by day: a run rebuilds the days of its partition (or partition
range) and dbt replaces those days' rows whole, so re-running a day changes
nothing. What starts a run is in orchestration/warehouse_schedules.py.
"""

import importlib.metadata
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import duckdb
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets
from packaging import version

from imagelake.settings import PROJECT_ROOT, WAREHOUSE_FIRST_DAY, Settings, get_settings
from imagelake.warehouse.build_folders import BUILD_FOLDER_KEEP, prune_build_folders
from imagelake.warehouse.build_turns import environment, single_writer
from imagelake.warehouse.days import DayWindow
from imagelake.warehouse.row_counts import count_rows
from orchestration.dbt_translator import ImagelakeDbtTranslator
from orchestration.run_worker import in_run_worker, yield_cpu_to_realtime

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"

#: One partition per day (UTC), today included: the newest day refreshes while it fills.
warehouse_days = dg.DailyPartitionsDefinition(start_date=WAREHOUSE_FIRST_DAY, end_offset=1)

#: What a warehouse run runs. Unit tests check SQL logic on fixed rows: CI runs them
#: (tests/integration), refreshes do not. Nothing reads dbt's JSON artifacts (Dagster takes dbt's
#: events from its output) and the per-build log keeps warnings and errors only: writing what no one
#: reads would slow every refresh (docs/design.md, "Warehouse"; what it saves: docs/benchmarks.md,
#: "bench-marts", which builds with these arguments).
BUILD_ARGS = ["build", "--exclude", "resource_type:unit_test", "--no-write-json", "--log-level-file", "warn"]

T = TypeVar("T")


def dbt_project(settings: Settings) -> DbtProject:
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target=settings.dbt_target)


class WarehouseBuildConfig(dg.Config):
    """Launchpad options of a warehouse run."""

    #: Rebuild every incremental table from the whole lake (after a model change).
    full_refresh: bool = False


_project = dbt_project(get_settings())
if not in_run_worker():  # the code server parsed already; a run must not pay for it again
    _project.prepare_if_dev()


@dbt_assets(
    manifest=_project.manifest_path,
    project=_project,
    dagster_dbt_translator=ImagelakeDbtTranslator(),
    partitions_def=warehouse_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="warehouse",
)
def warehouse_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, config: WarehouseBuildConfig):
    """``dbt build`` of the run's days: models and their data tests (surfaced as asset checks)."""
    settings = get_settings()
    window = DayWindow.from_time_window(*context.partition_time_window)
    args = [*BUILD_ARGS, "--full-refresh"] if config.full_refresh else BUILD_ARGS
    if settings.dbt_target == "local":
        settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    niceness = yield_cpu_to_realtime()
    if niceness is not None:
        context.log.info(f"warehouse build runs at niceness {niceness}: real-time runs take the CPU first")
    with single_writer(settings, context.log), environment({**settings.dbt_env(), **window.dbt_env()}):
        context.log.info(f"rebuilding days {window}{' from scratch' if config.full_refresh else ''}")
        invocation = dbt.cli(args, context=context)
        if settings.dbt_target == "local":
            # DuckDB has one writer: the tables are counted once dbt has finished and let go of it.
            events, failure = drain(invocation.stream())
            try:
                counts = table_row_counts(settings.warehouse_path, invocation.manifest, events)
            except duckdb.Error as error:  # a figure missing is no reason to fail a build
                context.log.warning(f"row counts not read from {settings.warehouse_path}: {error}")
                counts = {}
        else:
            events, failure, counts = list(invocation.stream().fetch_row_counts()), None, {}
        try:
            for event in events:
                if isinstance(event, dg.Output):
                    extra: dict[str, Any] = {"days": str(window)}
                    if (rows := counts.get(str(event.metadata["unique_id"].value))) is not None:
                        extra["dagster/row_count"] = rows
                    event = event.with_metadata({**event.metadata, **extra})
                yield event
            if failure is not None:
                raise failure
        except Exception:
            context.log.error(
                f"dbt's files of this build (dbt.log, compiled SQL) are kept in {invocation.target_path}"
            )
            raise
    # Each build writes its compiled SQL, artifacts and dbt.log to a folder of its own, and the sensor
    # refreshes all day: kept, the folders would fill the disk. A failed build keeps its folder, for a while.
    shutil.rmtree(invocation.target_path, ignore_errors=True)
    pruned = prune_build_folders(invocation.target_path.parent, context.op_execution_context.op.name)
    if pruned:
        context.log.info(f"removed {len(pruned)} build folder(s) older than {BUILD_FOLDER_KEEP}: {pruned}")


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
