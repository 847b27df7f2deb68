"""Partitions shared by assets, jobs and sensors."""

from datetime import UTC, date, datetime

import dagster as dg

from imagelake.batch.garbage_collection import oldest_day_kept
from imagelake.settings import get_settings

#: One partition per Kafka micro-batch; the key is the batch id
#: ``<topic>-<partition>-<first offset>-<last offset>``, added by the Kafka sensor.
UPLOAD_BATCHES = "upload_batches"
#: Run tag: the UTC day the Kafka sensor planned a batch; dead letters without a Kafka timestamp
#: (offsets lost from Kafka) are filed under it.
PLANNED_ON_TAG = "imagelake/planned_on"
upload_batches = dg.DynamicPartitionsDefinition(name=UPLOAD_BATCHES)

#: One partition per upload date (UTC), today's included: the batch jobs' unit of work.
#: Data older than the retention period is gone, so only the last days' partitions hold anything.
upload_days = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_offset=1, timezone="UTC")


def checked_upload_day(context: dg.AssetExecutionContext) -> str:
    """The run's upload day, refused if ``upload_days`` has no such partition.

    Dagster checks the key when a run is launched from the UI or ``materialize``, but not
    when it comes as a ``dagster/partition`` run tag (the CLI, GraphQL, a re-execution with
    edited tags): such a run would succeed on a day outside the set, a future one say, and
    record a materialization of no partition at all.
    """
    key = context.partition_key
    if not upload_days.has_partition_key(key):
        raise dg.Failure(
            description=(
                f"{key!r} is not an upload day: the days run from {upload_days.start:%Y-%m-%d} to today "
                "(UTC), written YYYY-MM-DD. Pick a day in the partition bar or pass one to --partition."
            ),
            allow_retries=False,
        )
    retention_days = get_settings().retention_days
    oldest = oldest_day_kept(datetime.now(UTC), retention_days)
    if date.fromisoformat(key) < oldest:
        raise dg.Failure(
            description=(
                f"{key} is past the retention period ({retention_days} days, IMAGELAKE_RETENTION_DAYS): "
                f"garbage collection has removed its data, so there is nothing to do. The oldest day "
                f"kept is {oldest}."
            ),
            allow_retries=False,
        )
    return key
