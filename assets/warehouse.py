"""The warehouse: dbt models (staging views, per-image detail, marts) as Dagster assets.

Sources over the lake map onto the Dagster assets that write them, so the
asset graph runs unbroken from the raw zone to the marts
(orchestration/dbt_translator.py). The models are partitioned by day: a run
rebuilds the days of its partition (or partition range) and dbt replaces those
days' rows whole, so re-running a day changes nothing. What starts a run is in
orchestration/warehouse_schedules.py; the dbt it runs, in
orchestration/dbt_resource.py.
"""

import shutil
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from imagelake.lake.store import Lake
from imagelake.settings import WAREHOUSE_FIRST_DAY, get_settings
from imagelake.warehouse.build_folders import BUILD_FOLDER_KEEP, prune_build_folders
from imagelake.warehouse.build_turns import environment, single_writer
from imagelake.warehouse.days import DayWindow
from imagelake.warehouse.storage_listing import ListingResult, list_storage
from orchestration.dbt_resource import dbt_project, events_and_row_counts
from orchestration.dbt_translator import ImagelakeDbtTranslator
from orchestration.run_worker import in_run_worker, yield_cpu_to_realtime

#: One partition per day (UTC), today included: the newest day refreshes while it fills.
warehouse_days = dg.DailyPartitionsDefinition(start_date=WAREHOUSE_FIRST_DAY, end_offset=1)

#: What a warehouse run runs. Unit tests check SQL logic on fixed rows: CI runs them
#: (tests/integration), refreshes do not. Nothing reads dbt's JSON artifacts (Dagster takes dbt's
#: events from its output) and the per-build log keeps warnings and errors only: writing what no one
#: reads would slow every refresh (docs/design.md, "Warehouse"; what it saves: docs/benchmarks.md,
#: "bench-marts", which builds with these arguments).
BUILD_ARGS = ["build", "--exclude", "resource_type:unit_test", "--no-write-json", "--log-level-file", "warn"]


#: The mart whose today's row the build's storage listing feeds (dagster-dbt names outputs by model).
STORAGE_MART_OUTPUT = dg.AssetKey(["marts", "storage_usage_daily"]).to_python_identifier()


def todays_storage(settings, window: DayWindow, log) -> ListingResult | None:
    """List the lake's objects of the window's days for today's storage figures (a build that does
    not rebuild today has no use for them); see imagelake/warehouse/storage_listing.py."""
    now = datetime.now(UTC)
    if now.date() not in window.days:
        return None
    _, result = list_storage(Lake.from_settings(settings), window.days, now, settings.retention_days)
    log.info(
        f"storage listing: {result.objects_listed} objects of {len(result.days_listed)} day(s)"
        f"{' (the whole lake: no earlier listing)' if result.whole_lake else ''} in {result.seconds:.2f}s; "
        + (f"written to {result.key}" if result.written else "unchanged since the last listing")
    )
    return result


def listing_metadata(result: ListingResult) -> dict[str, Any]:
    return {
        "storage_listing/objects_listed": result.objects_listed,
        "storage_listing/days_listed": ", ".join(d.isoformat() for d in result.days_listed),
        "storage_listing/whole_lake": result.whole_lake,
        "storage_listing/seconds": round(result.seconds, 3),
        "storage_listing/written": result.written,
    }


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
        listing = todays_storage(settings, window, context.log)
        context.log.info(f"rebuilding days {window}{' from scratch' if config.full_refresh else ''}")
        invocation = dbt.cli(args, context=context)
        events, failure, counts = events_and_row_counts(invocation, settings, context.log)
        try:
            for event in events:
                if isinstance(event, dg.Output):
                    extra: dict[str, Any] = {"days": str(window)}
                    if (rows := counts.get(str(event.metadata["unique_id"].value))) is not None:
                        extra["dagster/row_count"] = rows
                    if listing is not None and event.output_name == STORAGE_MART_OUTPUT:
                        extra.update(listing_metadata(listing))
                    event = event.with_metadata({**event.metadata, **extra})
                yield event
            if failure is not None:
                raise failure
        except Exception:
            context.log.error(
                f"dbt's files of this build (dbt.log, compiled SQL) are kept in {invocation.target_path}"
            )
            raise
    # A build that got here needs its dbt folder no more; a failed one keeps it, for a while
    # (imagelake/warehouse/build_folders.py).
    shutil.rmtree(invocation.target_path, ignore_errors=True)
    pruned = prune_build_folders(invocation.target_path.parent, context.op_execution_context.op.name)
    if pruned:
        context.log.info(f"removed {len(pruned)} build folder(s) older than {BUILD_FOLDER_KEEP}: {pruned}")
