"""Schedules of the batch jobs: derivatives hourly, compaction and garbage collection daily.

Schedules only choose partitions; the jobs themselves skip what is done, so a
tick that runs twice (or a partition requested again) costs a Spark start-up
and changes nothing.
"""

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from imagelake.batch.compaction import COMPACTED_TABLES, days_to_compact
from imagelake.settings import get_settings
from orchestration.jobs import compaction_job, derivatives_job, garbage_collection_job
from orchestration.resources import LakeResource


def scheduled_at(context: dg.ScheduleEvaluationContext) -> datetime:
    """The tick's scheduled time in UTC (now, when a schedule is evaluated by hand)."""
    moment = context.scheduled_execution_time or datetime.now(UTC)
    return moment.astimezone(UTC)


def derivative_days(now: datetime) -> list[str]:
    """Today, and yesterday too: images uploaded just before midnight are processed after it."""
    today = now.date()
    return [(today - timedelta(days=1)).isoformat(), today.isoformat()]


def compaction_days(lake, today: date, retention_days: int) -> list[str]:
    """Yesterday, plus every closed day within retention that got files since its last compaction."""
    oldest = today - timedelta(days=retention_days)
    days = {(today - timedelta(days=1)).isoformat()}
    for table in COMPACTED_TABLES:
        days.update(days_to_compact(lake, table, today=today, oldest=oldest))
    return sorted(days)


@dg.schedule(
    job=derivatives_job,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every hour: derivatives of today's and yesterday's new images.",
)
def derivatives_hourly(context: dg.ScheduleEvaluationContext):
    moment = scheduled_at(context)
    return [
        dg.RunRequest(run_key=f"{day}@{moment:%Y-%m-%dT%H}", partition_key=day)
        for day in derivative_days(moment)
    ]


@dg.schedule(
    job=compaction_job,
    cron_schedule="30 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night: compact yesterday, and any closed day that got late files.",
)
def compaction_daily(context: dg.ScheduleEvaluationContext, lake: LakeResource):
    moment = scheduled_at(context)
    days = compaction_days(lake.lake(), moment.date(), get_settings().retention_days)
    return [dg.RunRequest(run_key=f"{day}@{moment:%Y-%m-%d}", partition_key=day) for day in days]


@dg.schedule(
    job=garbage_collection_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night: garbage collection and retention over the whole lake.",
)
def garbage_collection_daily(context: dg.ScheduleEvaluationContext):
    return dg.RunRequest(run_key=f"gc@{scheduled_at(context):%Y-%m-%d}")


batch_schedules = [derivatives_hourly, compaction_daily, garbage_collection_daily]
