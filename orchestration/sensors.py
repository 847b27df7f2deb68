"""The Kafka sensor: the only consumer of the upload topic.

Its cursor is ``{"<partition>": <next offset>}``. Each tick reads the
partitions' offsets (never the messages), cuts the unread range into batches
and returns one run request per batch with ``run_key`` = batch id, the new
dynamic partitions and the advanced cursor together in one ``SensorResult``:
the cursor moves only with the runs that cover it, and a re-proposed batch is
de-duplicated by its run key. The run reads its batch back by offset.
While batch runs wait in the run queue, a tick starts nothing new, and a
partition whose batch run is still queued or running gets no new batch: the
events wait on Kafka and a later tick cuts them into fewer, larger batches.

Each tick that finds events reports the consumer lag (end offsets minus the cursor) as an
observation of ``upload_events`` (its metadata plots in the UI), and every tick commits the stored
cursor to the consumer group ``SENSOR_GROUP``, so that the lag is also where Kafka's tools, MSK's
``OffsetLag`` metrics and the API's ``imagelake_kafka_consumer_lag`` gauge look for it.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from assets.partitions import PLANNED_ON_TAG, upload_batches
from imagelake.lake.layout import BatchId
from imagelake.realtime.kafka import (
    SENSOR_GROUP,
    KafkaUnavailable,
    cap_slots,
    commit_cursor,
    consumer_lag,
    dump_cursor,
    fetch_watermarks,
    parse_cursor,
    plan_batches,
)
from imagelake.settings import get_settings
from orchestration.backlog import (
    KAFKA_SENSOR,
    RERUN_TAG,
    batches_in_flight,
    failed_in_dagster,
    latest_batch_runs,
    rerun_request,
)
from orchestration.jobs import realtime_batch_job
from orchestration.resources import KafkaResource
from orchestration.ticks import interval_note, minimum_interval


def queued_batch_runs(instance: dg.DagsterInstance) -> int:
    """Batch runs waiting for a run slot (queued, not yet launched).

    Every run is a new process that loads the code location, a few seconds of
    CPU. When runs already wait, launching more only lengthens the queue;
    skipping lets the next tick cut fewer, larger batches (backpressure).
    """
    return instance.get_runs_count(
        dg.RunsFilter(
            job_name=realtime_batch_job.name,
            statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED],
        )
    )


_settings = get_settings()


@dg.sensor(
    name=KAFKA_SENSOR,
    job=realtime_batch_job,
    minimum_interval_seconds=minimum_interval(_settings.sensor_interval_s),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Turns new upload events on Kafka into one realtime_batch_job run per offset range. "
        + interval_note(_settings.sensor_interval_s)
    ),
)
def kafka_upload_sensor(
    context: dg.SensorEvaluationContext, kafka: KafkaResource
) -> dg.SensorResult | dg.SkipReason:
    settings = get_settings()
    cursor = parse_cursor(context.cursor)
    timeout_s = min(10.0, settings.kafka_poll_timeout_s)
    try:
        with kafka.consumer(SENSOR_GROUP) as consumer:
            marks = fetch_watermarks(consumer, kafka.topic, timeout_s=timeout_s)
            try:
                commit_cursor(consumer, kafka.topic, cursor, timeout_s)
            except KafkaUnavailable as exc:  # monitoring only: the next tick commits again
                context.log.warning(f"the cursor was not committed to {SENSOR_GROUP}: {exc}")
    except KafkaUnavailable as exc:
        return dg.SkipReason(
            f"Kafka unavailable at {kafka.bootstrap}, cursor unchanged, retrying next tick: {exc}"
        )
    queued = queued_batch_runs(context.instance)
    if queued >= settings.sensor_max_queued_runs:
        lag = consumer_lag(cursor, marks)
        return dg.SensorResult(
            skip_reason=(
                f"{queued} batch run(s) still wait for a run slot; {lag} new event(s) stay on Kafka (cursor "
                "unchanged) and join the next tick's batches, so a busy machine makes fewer, larger runs"
            ),
            asset_events=[lag_observation(cursor, cursor, marks)] if lag else [],
        )

    busy = batches_in_flight(context.instance)
    slots = {p: max(0, settings.sensor_runs_per_partition - busy.get(p, 0)) for p in marks}
    if settings.sensor_max_runs_in_flight:
        free = settings.sensor_max_runs_in_flight - sum(busy.values())
        slots = cap_slots(slots, cursor, marks, free)
    plan = plan_batches(
        kafka.topic, cursor, marks, settings.sensor_batch_size, settings.sensor_max_runs_per_tick, slots
    )
    for lost in plan.expired:
        context.log.error(
            f"{kafka.topic}[{lost.partition}] offsets {lost.first}-{lost.last} expired from Kafka before they "
            f"were read: batch {lost} records them as a dead letter"
        )
    if not plan.batches and not plan.expired:
        waiting = sorted(p for p, (_, high) in marks.items() if plan.cursor.get(p, high) < high)
        reason = (
            f"partition(s) {', '.join(map(str, waiting))} have new events but their batch still runs (or "
            "IMAGELAKE_SENSOR_MAX_RUNS_IN_FLIGHT runs are in flight); the events join the next batch"
            if waiting
            else "no new upload events"
        )
        if plan.cursor != cursor:
            return dg.SensorResult(cursor=dump_cursor(plan.cursor), skip_reason=reason)
        return dg.SkipReason(f"{reason} (next offsets {dump_cursor(plan.cursor)})")
    planned_on = datetime.now(UTC).date().isoformat()
    requests = [batch_request(b, planned_on) for b in plan.batches]
    requests += [batch_request(b, planned_on, expired=True) for b in plan.expired]
    keys = [r.partition_key for r in requests if r.partition_key]
    context.log.info(f"{len(keys)} new batch(es): {', '.join(keys)}")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[upload_batches.build_add_request(keys)],
        cursor=dump_cursor(plan.cursor),
        asset_events=[lag_observation(cursor, plan.cursor, marks)],
    )


def lag_observation(
    cursor: dict[int, int], planned: dict[int, int], marks: dict[int, tuple[int, int]]
) -> dg.AssetObservation:
    """The consumer lag as ``upload_events`` metadata: what the tick found past its cursor, and what
    still waits on Kafka once it has planned its runs (backpressure, or more than a tick's runs)."""
    return dg.AssetObservation(
        asset_key=dg.AssetKey("upload_events"),
        metadata={
            "kafka/consumer_lag": consumer_lag(planned, marks),
            "kafka/new_events": consumer_lag(cursor, marks),
            "kafka/lag_by_partition": dg.MetadataValue.json(
                {str(p): max(0, high - planned.get(p, low)) for p, (low, high) in sorted(marks.items())}
            ),
        },
    )


def batch_request(batch: BatchId, planned_on: str, expired: bool = False) -> dg.RunRequest:
    """The run of one batch: its run key is the batch id, so a re-proposed batch runs once."""
    key = str(batch)
    tags = {"imagelake/kafka_partition": str(batch.partition), PLANNED_ON_TAG: planned_on}
    tags["imagelake/events"] = "0" if expired else str(batch.size)
    if expired:
        tags["imagelake/expired_offsets"] = str(batch.size)
    return dg.RunRequest(run_key=key, partition_key=key, tags=tags)


@dg.sensor(
    job=realtime_batch_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Runs a real-time batch again when its run failed for good (step retries spent), after a backoff "
        "that grows with each attempt; its events stay archived in Kafka meanwhile. A run that failed in "
        "Dagster itself (its database out of reach mid-run) runs again at the next tick. Lists the backlog."
    ),
)
def failed_batch_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    now = datetime.now(UTC)
    since = now - timedelta(days=get_settings().retention_days)
    latest = latest_batch_runs(context.instance, since)
    failed = {b: r for b, r in latest.items() if r.dagster_run.status == dg.DagsterRunStatus.FAILURE}
    if not failed:
        return dg.SkipReason("no failed real-time batch")
    requests = []
    for batch, record in sorted(failed.items()):
        # Only a first failure can be re-run at once (rerun_request), so only then is its cause asked.
        first = RERUN_TAG not in record.dagster_run.tags
        in_dagster = first and failed_in_dagster(context.instance, record.dagster_run.run_id)
        if (request := rerun_request(batch, record, now, failed_in_dagster=in_dagster)) is not None:
            requests.append(request)
    context.log.warning(f"failed real-time batches: {', '.join(sorted(failed))}")
    if not requests:
        return dg.SkipReason(
            f"{len(failed)} failed batch(es) wait for their next attempt: {', '.join(sorted(failed))}"
        )
    context.log.info(f"running again: {', '.join(r.partition_key or '' for r in requests)}")
    return dg.SensorResult(run_requests=requests)
