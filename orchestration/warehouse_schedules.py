"""What refreshes the warehouse: new lake data (a sensor) and the clock (hourly).

The real-time assets are partitioned per Kafka batch and one batch can carry
events of several upload days, so no partition mapping ties a batch to a day.
The sensor reads the days from what each upstream materialization wrote (the
``dt=`` of its files) and asks for one run over those days; the hourly schedule
rebuilds today and the lookback days whatever happened, which also picks up
data whose writer names no days. See docs/design.md, "Warehouse".
"""

import json
from datetime import UTC, date, datetime

import dagster as dg

from assets.stats_snapshot import stats_snapshot
from assets.warehouse import warehouse_models
from imagelake.settings import WAREHOUSE_FIRST_DAY, get_settings
from imagelake.warehouse.days import DayWindow, days_of_materialization, lookback, refresh_window
from orchestration.dbt_translator import LAKE_TABLE_ASSETS
from orchestration.retries import NO_RUN_RETRY_TAGS
from orchestration.schedules import scheduled_at
from orchestration.ticks import interval_note, minimum_interval

warehouse_job = dg.define_asset_job(
    "warehouse_job",
    tags=NO_RUN_RETRY_TAGS,
    selection=dg.AssetSelection.assets(warehouse_models, stats_snapshot),
    description=(
        "dbt build of the warehouse for a day or a range of days, then the statistics snapshot the API serves."
    ),
)

#: Upstream assets whose new materializations can change the marts.
UPSTREAM_ASSETS = sorted({dg.AssetKey(name) for name in LAKE_TABLE_ASSETS.values()}, key=str)
#: Materializations read per asset and tick; the rest wait for the next tick.
RECORDS_PER_TICK = 1000
_WAITING = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING]


def window_run_request(window: DayWindow, run_key: str | None, reason: str) -> dg.RunRequest:
    """One run of the warehouse job over a range of day partitions."""
    return dg.RunRequest(
        run_key=run_key,
        tags={
            "dagster/asset_partition_range_start": window.first.isoformat(),
            "dagster/asset_partition_range_end": window.last.isoformat(),
            "imagelake/days": str(window),
            "imagelake/reason": reason,
        },
    )


def today_utc() -> date:
    return datetime.now(UTC).date()


@dg.sensor(
    job=warehouse_job,
    minimum_interval_seconds=minimum_interval(get_settings().warehouse_refresh_interval_s),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Refreshes the warehouse for the upload days that new lake data touched "
        "(late events included), one run at a time. "
        + interval_note(get_settings().warehouse_refresh_interval_s)
    ),
)
def warehouse_refresh_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    unfinished = context.instance.get_runs(
        dg.RunsFilter(job_name=warehouse_job.name, statuses=[*_WAITING, dg.DagsterRunStatus.STARTED]), limit=2
    )
    if len(unfinished) >= 2 or any(run.status in _WAITING for run in unfinished):
        # One run builds, at most one more waits (for its turn in the `warehouse` pool); the
        # cursor stays, so the next run after them covers this data's days too.
        return dg.SkipReason(
            "a warehouse run is already waiting for its turn; new data goes into the next one"
        )
    days: set[date] = set()
    seen = dict(cursor)
    for key in UPSTREAM_ASSETS:
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, after_storage_id=cursor.get(key.to_user_string())),
            limit=RECORDS_PER_TICK,
            ascending=True,
        ).records
        for record in records:
            materialization = record.asset_materialization
            if materialization is None:
                continue
            metadata = {
                name: getattr(value, "value", value) for name, value in materialization.metadata.items()
            }
            touched = days_of_materialization(metadata, materialization.partition)
            if touched is None:
                # A writer that names no day may still have changed something: the routine window.
                touched = set(lookback(today_utc(), get_settings().warehouse_lookback_days).days)
            days |= touched
            seen[key.to_user_string()] = record.storage_id
    if seen == cursor:
        return dg.SkipReason("no new lake data since the last refresh")
    new_cursor = json.dumps(seen, sort_keys=True)
    if not days:
        return dg.SensorResult(
            cursor=new_cursor,
            skip_reason="new materializations wrote no lake files (dry runs, empty days): nothing to refresh",
        )
    window = refresh_window(days, today_utc(), date.fromisoformat(WAREHOUSE_FIRST_DAY))
    if window is None:
        return dg.SensorResult(
            cursor=new_cursor, skip_reason="new data only for days before the warehouse's first day"
        )
    context.log.info(f"new lake data for {window}; requesting a warehouse run")
    run_key = "refresh-" + "-".join(str(seen[k]) for k in sorted(seen))
    return dg.SensorResult(
        run_requests=[window_run_request(window, run_key, "new lake data")], cursor=new_cursor
    )


@dg.schedule(
    job=warehouse_job,
    cron_schedule="7 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Rebuilds today and the lookback days every hour, whatever data arrived.",
)
def warehouse_hourly_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    window = lookback(scheduled_at(context).date(), get_settings().warehouse_lookback_days)
    return window_run_request(window, run_key=None, reason="hourly")
