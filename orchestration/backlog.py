"""The real-time backlog: uploads announced on Kafka that no batch has processed yet.

Three places hold them: Kafka, past the sensor's cursor (the lag); batch runs that
wait or run; and batches whose run failed for good (its step retries spent: the
sensor's cursor has moved past them, so nothing else would run them again). The
failed ones are run again by ``failed_batch_sensor`` (orchestration/sensors.py) with a growing backoff,
and garbage collection collects no failed upload while anything is in the backlog,
because the events that would prove an upload accepted may be among them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.execution.plan.objects import ErrorSource

from imagelake.lake.layout import BatchId, LayoutError
from imagelake.realtime.kafka import KafkaUnavailable, consumer_lag, fetch_watermarks, parse_cursor
from imagelake.settings import get_settings
from orchestration.resources import KafkaResource
from orchestration.retries import batch_rerun_delay

#: The Kafka sensor and the job of its runs (orchestration/sensors.py, orchestration/jobs.py).
KAFKA_SENSOR = "kafka_upload_sensor"
REALTIME_BATCH_JOB = "realtime_batch_job"
PARTITION_TAG = "dagster/partition"
#: The tag of a run the failed-batch sensor launched: which attempt it is.
RERUN_TAG = "imagelake/rerun"
_WAITING = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dataclass(frozen=True)
class Backlog:
    failed: list[str] = field(default_factory=list)  # batches whose latest run failed
    waiting: list[str] = field(default_factory=list)  # batches whose latest run is queued or running
    lag: int | None = 0  # events on Kafka the sensor has not planned; None: not known

    @property
    def empty(self) -> bool:
        return not self.failed and not self.waiting and self.lag == 0

    def describe(self) -> str:
        parts = []
        if self.failed:
            parts.append(f"{len(self.failed)} failed batch(es) ({', '.join(self.failed[:5])})")
        if self.waiting:
            parts.append(f"{len(self.waiting)} batch(es) queued or running")
        if self.lag is None:
            parts.append("the Kafka sensor's lag is unknown (Kafka is unreachable)")
        elif self.lag:
            parts.append(f"{self.lag} event(s) on Kafka not yet planned by the sensor")
        return "; ".join(parts) or "nothing"


def latest_batch_runs(instance: dg.DagsterInstance, since: datetime) -> dict[str, dg.RunRecord]:
    """The newest run of each real-time batch created since ``since``, by batch id."""
    latest: dict[str, dg.RunRecord] = {}
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=REALTIME_BATCH_JOB, created_after=since),
        order_by="create_timestamp",
        ascending=True,
    )
    for record in records:  # oldest first: later runs of a batch replace earlier ones
        batch = record.dagster_run.tags.get(PARTITION_TAG)
        if batch is not None:
            latest[batch] = record
    return latest


def batches_in_flight(instance: dg.DagsterInstance) -> dict[int, int]:
    """Real-time batch runs queued, starting or running, by Kafka partition (the Kafka sensor starts no
    more than ``IMAGELAKE_SENSOR_RUNS_PER_PARTITION`` of them per partition)."""
    counts: Counter[int] = Counter()
    for run in instance.get_runs(dg.RunsFilter(job_name=REALTIME_BATCH_JOB, statuses=_WAITING)):
        try:
            counts[BatchId.parse(run.tags.get(PARTITION_TAG, "")).partition] += 1
        except LayoutError:
            continue
    return dict(counts)


def sensor_cursor(instance: dg.DagsterInstance) -> dict[int, int] | None:
    """The Kafka sensor's cursor as the daemon stored it, or None if it never ran."""
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == KAFKA_SENSOR and state.instigator_data is not None:
            return parse_cursor(getattr(state.instigator_data, "cursor", None))
    return None


def kafka_lag(instance: dg.DagsterInstance, kafka: KafkaResource) -> int | None:
    """Events on the upload topic past the sensor's cursor (a sensor that never ran starts at the
    earliest offsets); None when Kafka cannot be asked."""
    cursor = sensor_cursor(instance) or {}
    try:
        with kafka.consumer() as consumer:
            marks = fetch_watermarks(consumer, kafka.topic, timeout_s=10)
    except KafkaUnavailable:
        return None
    return consumer_lag(cursor, marks)


def realtime_backlog(instance: dg.DagsterInstance, lag: int | None) -> Backlog:
    since = datetime.now(UTC) - timedelta(days=get_settings().retention_days)
    latest = latest_batch_runs(instance, since)
    failed = sorted(b for b, r in latest.items() if r.dagster_run.status == dg.DagsterRunStatus.FAILURE)
    waiting = sorted(b for b, r in latest.items() if r.dagster_run.status in _WAITING)
    return Backlog(failed=failed, waiting=waiting, lag=lag)


def failed_in_dagster(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Whether a failed run failed in Dagster's own machinery, not in our step code: it has failed
    steps and the error of each came from the framework (for instance the instance's database out
    of reach while Dagster stored a step's output). Dagster applies no step retry policy to such an
    error, and its run retries skip a run whose steps failed, so nothing else runs the batch again
    soon (docs/design.md, "Production mode on one machine")."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    sources = {
        event.step_failure_data.error_source
        for r in records
        if (event := r.event_log_entry.dagster_event) is not None
    }
    return bool(sources) and ErrorSource.USER_CODE_ERROR not in sources


def rerun_request(
    batch: str, record: dg.RunRecord, now: datetime, *, failed_in_dagster: bool = False
) -> dg.RunRequest | None:
    """A new run for a failed batch once its backoff has passed (None before, or while Dagster's
    own run retry is due). A first failure in Dagster's own machinery (``failed_in_dagster``) is
    run again at once: its steps were never retried, and the cause (the instance's database) was
    back by the time the failure could be recorded."""
    run = record.dagster_run
    if run.tags.get("dagster/will_retry") == "true":
        return None
    attempt = int(run.tags.get(RERUN_TAG, "0")) + 1
    failed_at = datetime.fromtimestamp(record.update_timestamp.timestamp(), UTC)
    delay = timedelta(0) if failed_in_dagster and attempt == 1 else batch_rerun_delay(attempt)
    if now - failed_at < delay:
        return None
    try:
        partition = BatchId.parse(batch).partition
    except LayoutError:
        return None
    return dg.RunRequest(
        run_key=f"{batch}:rerun-{attempt}",
        partition_key=batch,
        tags={RERUN_TAG: str(attempt), "imagelake/kafka_partition": str(partition)},
    )
