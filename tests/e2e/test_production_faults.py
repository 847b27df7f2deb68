"""Faults of the production-mode stack: nothing accepted is lost, nothing is counted twice.

On the stack of tests/support/prod_mode.py (IMAGELAKE_ENV=prod, Dagster on
PostgreSQL, code servers as the container runs them, S3 through a relay a test
can take down). Each test provokes one fault, then looks from outside: the
answers over HTTP, the catalog, the lake's files on moto's S3, the Kafka offsets
and Dagster's records. Exactly once is checked where it would show: one archived
event and one metadata row per upload, across every file of the lake (no read
rule applied), and in the end the marts (test_production_mode.py) count every
accepted upload of the session once.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections import Counter

import dagster as dg
import pytest
from confluent_kafka import Consumer, TopicPartition
from dagster._core.definitions.run_request import InstigatorType
from dagster._serdes import serialize_value

from imagelake.lake.layout import BatchId
from imagelake.realtime.kafka import KafkaConnection, consumer_config
from imagelake.settings import UPLOADS_TOPIC, UPLOADS_TOPIC_PARTITIONS
from orchestration.backlog import PARTITION_TAG, RERUN_TAG
from tests.support import sample_images as images
from tests.support.prod_mode import ProdMode, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning:gql.*")]


def end_offsets(mode: ProdMode) -> dict[int, int]:
    consumer = Consumer(consumer_config(KafkaConnection.from_settings(mode.stack.settings())))
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(UPLOADS_TOPIC, p), timeout=10)[1]
            for p in range(UPLOADS_TOPIC_PARTITIONS)
        }
    finally:
        consumer.close()


def catalog_items(mode: ProdMode) -> int:
    catalog = mode.catalog()
    return catalog._client.scan(TableName=catalog.table, Select="COUNT", ConsistentRead=True)["Count"]


def assert_each_once(mode: ProdMode, ids: list[str]) -> None:
    """One archived event and one metadata row per upload in every file of the lake, and the catalog
    says processed: retried steps and re-run batches rewrote their files, they added none."""
    wanted = set(ids)
    events = Counter(
        r["image_id"] for r in mode.table_rows("upload_events", "raw/events") if r["image_id"] in wanted
    )
    rows = Counter(
        r["image_id"]
        for r in mode.table_rows("image_metadata", "curated/image_metadata")
        if r["image_id"] in wanted
    )
    assert events == Counter(ids) and rows == Counter(ids), (events, rows)
    assert set(mode.statuses(ids).values()) == {"processed"}


def new_batch_runs(mode: ProdMode, before: set[str]) -> list[dg.RunRecord]:
    return [r for r in mode.batch_runs() if r.dagster_run.run_id not in before]


def finished_batch_runs(mode: ProdMode, before: set[str], timeout: float = 120) -> list[dg.RunRecord]:
    """The batch runs since ``before``, once none of them is still queued or running (the catalog says
    processed before a run has recorded its last events)."""
    wait_for(
        lambda: all(r.dagster_run.is_finished for r in new_batch_runs(mode, before)),
        timeout,
        "the batch runs to finish",
    )
    return new_batch_runs(mode, before)


def events_of(mode: ProdMode, run_id: str, kind: dg.DagsterEventType) -> list:
    with mode.instance() as instance:
        return list(instance.get_records_for_run(run_id, of_type=kind).records)


#: How long PostgreSQL stays down mid-run. A run writes an event within a second or two of its
#: image_metadata step's start, when it is killed; dagster-postgres retries each write for about 6 s
#: and a failing run makes three writes (the event, STEP_FAILURE, RUN_FAILURE) before its process
#: gives up, about 18 s. Down for 12 s (and a second or two to restart), the caught run's first write
#: fails for good and its failure is recorded once the database is back. Much longer, and a run's
#: process exits with nothing recorded: Dagster's code server notices a dead run process only through
#: the database, and its check stops at the first error, so in this stack (DefaultRunLauncher, which
#: has no worker health check, unlike the Kubernetes launcher) the run would stay STARTED (observed
#: with 30 s; docs/design.md, "Production mode on one machine"). Much shorter, and the retries ride it out.
POSTGRES_OUTAGE_S = 12


def photos(seed: int, count: int) -> list[bytes]:
    return [images.jpeg(320, 240, seed=seed + i) for i in range(count)]


def test_s3_down_at_upload_answers_503_and_keeps_nothing(prod_mode: ProdMode):
    lake = prod_mode.lake()
    raw_before = {o.key for o in lake.list("raw/images")}
    offsets_before, items_before = end_offsets(prod_mode), catalog_items(prod_mode)
    body = images.jpeg(320, 240, seed=501)
    prod_mode.s3.down()
    try:
        started = time.monotonic()
        refused = prod_mode.upload(body)
        took = time.monotonic() - started
    finally:
        prod_mode.s3.up()
    assert refused.status_code == 503, refused.text
    assert "image store (lake) is unavailable" in refused.json()["detail"] and took < 30
    assert {o.key for o in lake.list("raw/images")} == raw_before  # no object
    assert end_offsets(prod_mode) == offsets_before  # no event
    assert catalog_items(prod_mode) == items_before  # no catalog item
    # S3 back: the client's retry is an upload like any other (the marts count it: test_production_mode.py)
    assert prod_mode.upload(body).status_code == 202


def test_s3_down_mid_batch_the_step_is_retried_and_each_upload_counted_once(prod_mode: ProdMode):
    before = {r.dagster_run.run_id for r in prod_mode.batch_runs()}
    ids = prod_mode.upload_all(photos(600, 6))
    prod_mode.s3.down()  # the sensor plans from Kafka; the batch's step then meets S3 down
    try:

        def retrying() -> bool:
            return any(
                events_of(prod_mode, r.dagster_run.run_id, dg.DagsterEventType.STEP_UP_FOR_RETRY)
                for r in new_batch_runs(prod_mode, before)
            )

        wait_for(retrying, 120, "a batch step to fail on S3 and wait for its retry")
    finally:
        prod_mode.s3.up()
    prod_mode.wait_processed(ids, 120)
    assert_each_once(prod_mode, ids)
    runs = finished_batch_runs(prod_mode, before)
    assert {r.dagster_run.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}  # the retry passed, in-run
    causes = [
        e.event_log_entry.dagster_event.step_retry_data.error.to_string()
        for r in runs
        for e in events_of(prod_mode, r.dagster_run.run_id, dg.DagsterEventType.STEP_UP_FOR_RETRY)
    ]
    assert causes and all(prod_mode.s3.endpoint.split("//")[1] in c for c in causes), causes


def test_postgres_down_when_runs_launch_fails_loudly_and_loses_nothing(prod_mode: ProdMode):
    """RDS gone while uploads arrive: the API accepts them (it needs no Dagster), the daemon cannot
    record ticks or launch runs and says so; once PostgreSQL is back they are processed once."""
    daemon_log = prod_mode.stack.services["daemon"].log_path
    assert daemon_log is not None
    logged = daemon_log.stat().st_size
    prod_mode.stack.postgres.stop()
    try:
        ids = prod_mode.upload_all(photos(700, 4))
        wait_for(
            lambda: "OperationalError" in daemon_log.read_text(errors="replace")[logged:],
            60,
            "the daemon to report that its database is unreachable",
        )
    finally:
        prod_mode.stack.start_postgres()
    prod_mode.wait_processed(ids, 180)
    assert_each_once(prod_mode, ids)
    assert not prod_mode.stack.dead()


def test_postgres_down_mid_run_fails_the_run_loudly_and_a_retry_completes_it(prod_mode: ProdMode):
    """RDS lost while a batch run executes its image_metadata step (PostgreSQL SIGKILLed): the run fails
    (RUN_FAILURE, recorded once the database is back, naming it), and runs again: a run whose worker lost
    the database is retried by Dagster's run retries; one whose step lost it while Dagster stored its
    output (a failed step Dagster does not retry) is run again by failed_batch_sensor at its next tick.
    Other runs may fail too (one starting records nothing, and its code server records that its process
    exited) or ride the outage out. Every upload is processed once."""
    before = {r.dagster_run.run_id for r in prod_mode.batch_runs()}
    ids: list[str] = []
    caught = None
    for attempt in range(4):  # a batch can finish before it is caught, or before the kill lands: again
        ids += prod_mode.upload_all(photos(800 + 20 * attempt, 12))
        caught = catch_mid_step(prod_mode, before)
        if caught is None:
            continue
        killed_at = time.time()
        prod_mode.stack.postgres.kill()  # a crash mid-run
        time.sleep(POSTGRES_OUTAGE_S)
        prod_mode.stack.start_postgres()
        if not succeeded_before(prod_mode, caught, killed_at):
            break
        before |= {caught}
        caught = None
    assert caught is not None, "never caught a batch run in its image_metadata step"
    prod_mode.wait_processed(ids, 240)
    runs = settled_batch_runs(prod_mode, before, 180)
    assert_each_once(prod_mode, ids)
    failed = [r.dagster_run for r in runs if r.dagster_run.status == dg.DagsterRunStatus.FAILURE]
    assert caught in {r.run_id for r in failed}, (
        f"the run caught mid-step did not fail: {[(r.dagster_run.run_id, r.dagster_run.status) for r in runs]}"
    )
    texts = event_texts(prod_mode, caught)
    assert any(names_database(t) for t in texts), (
        f"run {caught} failed without naming its database: " + "\n".join(t[:600] for t in texts[-6:])
    )
    for run in failed:
        # Another run may have been starting: its process exits having recorded nothing, and the code
        # server records that it "unexpectedly exited" and fails it. That is loud too; it is retried.
        texts = event_texts(prod_mode, run.run_id)
        assert any(loud_failure(text) for text in texts), (
            f"run {run.run_id} failed without saying why: " + "\n".join(t[:600] for t in texts[-6:])
        )
        later = [
            r.dagster_run
            for r in runs
            if r.dagster_run.tags.get(PARTITION_TAG) == run.tags[PARTITION_TAG]
            and r.create_timestamp.timestamp() > run_created(runs, run.run_id)
        ]
        assert any(r.parent_run_id == run.run_id or RERUN_TAG in r.tags for r in later), (
            f"failed run {run.run_id} ({run.tags[PARTITION_TAG]}) was not run again: {later}"
        )
    assert not prod_mode.stack.dead()


def catch_mid_step(mode: ProdMode, before: set[str], timeout: float = 120) -> str | None:
    """A new batch run in its image_metadata step, or None once every new run has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = new_batch_runs(mode, before)
        # Not while another run's process starts: one that loses the database before it has
        # written anything can exit unrecorded, and DefaultRunLauncher has no health check to
        # fail it (Kubernetes' launcher has): it would stay STARTED (docs/design.md).
        if not any(r.dagster_run.status in LAUNCHING for r in runs):
            caught = next((r.dagster_run.run_id for r in runs if mid_step(mode, r)), None)
            if caught is not None:
                return caught
        if runs and all(r.dagster_run.is_finished for r in runs):
            return None
        time.sleep(0.05)
    return None


def succeeded_before(mode: ProdMode, run_id: str, moment: float) -> bool:
    """Whether a run had recorded its success before ``moment`` (the kill came after its last write)."""

    def finished() -> bool:
        with mode.instance() as instance:
            run = instance.get_run_by_id(run_id)
            return run is not None and run.is_finished

    wait_for(finished, 120, f"run {run_id} to finish")
    done = events_of(mode, run_id, dg.DagsterEventType.RUN_SUCCESS)
    return any(r.event_log_entry.timestamp < moment for r in done)


#: A run whose process is being started.
LAUNCHING = {dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING}


def names_database(text: str) -> bool:
    """Whether an event blames the database (psycopg2's error, or Dagster's own retries giving up)."""
    return "OperationalError" in text or "DB connection" in text


def loud_failure(text: str) -> bool:
    """Whether an event says why a run failed in the outage: its database, or its process gone."""
    return names_database(text) or "unexpectedly exited" in text


def mid_step(mode: ProdMode, record: dg.RunRecord) -> bool:
    """Whether a run is executing its image_metadata step (started, not yet finished)."""
    if record.dagster_run.status != dg.DagsterRunStatus.STARTED:
        return False
    starts = events_of(mode, record.dagster_run.run_id, dg.DagsterEventType.STEP_START)
    return any(e.event_log_entry.step_key == "image_metadata" for e in starts)


def run_created(runs: list[dg.RunRecord], run_id: str) -> float:
    return next(r.create_timestamp.timestamp() for r in runs if r.dagster_run.run_id == run_id)


def event_texts(mode: ProdMode, run_id: str) -> list[str]:
    """Every event of a run, serialized (errors and their causes included)."""
    with mode.instance() as instance:
        return [serialize_value(entry) for entry in instance.all_logs(run_id)]


def settled_batch_runs(mode: ProdMode, before: set[str], timeout: float) -> list[dg.RunRecord]:
    """The batch runs since ``before``, once the latest run of each of their batches has succeeded
    (a failed run's retry or re-run may not exist yet when the failure is recorded)."""

    def settled() -> bool:
        latest: dict[str, dg.RunRecord] = {}
        for r in sorted(new_batch_runs(mode, before), key=lambda r: r.create_timestamp):
            latest[r.dagster_run.tags[PARTITION_TAG]] = r
        return bool(latest) and all(
            r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in latest.values()
        )

    wait_for(
        settled,
        timeout,
        "the latest run of every new batch to succeed",
        lambda: str(
            [
                (r.dagster_run.tags.get(PARTITION_TAG), r.dagster_run.status)
                for r in new_batch_runs(mode, before)
            ]
        ),
    )
    return new_batch_runs(mode, before)


def kafka_sensor_tick(instance: dg.DagsterInstance):
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == "kafka_upload_sensor":
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
            return ticks[0] if ticks else None
    return None


def test_the_daemon_killed_mid_tick_skips_no_event_and_processes_none_twice(prod_mode: ProdMode):
    from dagster._core.scheduler.instigation import TickStatus

    before = {r.dagster_run.run_id for r in prod_mode.batch_runs()}
    ids: list[str] = []
    stop = threading.Event()

    def stream() -> None:
        for body in photos(900, 24):
            if stop.is_set():
                return
            ids.extend(prod_mode.upload_all([body]))
            time.sleep(0.25)

    sender = threading.Thread(target=stream)
    sender.start()
    daemon = prod_mode.stack.services["daemon"]
    killed_tick = None
    try:
        with prod_mode.instance() as instance:
            deadline = time.monotonic() + 90
            while killed_tick is None and time.monotonic() < deadline:
                tick = kafka_sensor_tick(instance)
                if tick is not None and tick.status == TickStatus.STARTED and ids:
                    os.killpg(daemon.process.pid, signal.SIGKILL)
                    daemon.process.wait(10)
                    killed_tick = tick
                time.sleep(0.01)
        assert killed_tick is not None, "never caught the Kafka sensor mid-tick"
        time.sleep(2)
        prod_mode.stack.start_daemon()
    finally:
        sender.join()
        stop.set()
    prod_mode.wait_processed(ids, 240)
    assert_each_once(prod_mode, ids)
    # every offset in exactly one successful batch: the runs' offset ranges do not overlap
    runs = finished_batch_runs(prod_mode, before)
    assert {r.dagster_run.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
    ranges = [BatchId.parse(r.dagster_run.tags["dagster/partition"]) for r in runs]
    by_partition: dict[int, list[tuple[int, int]]] = {}
    for batch in ranges:
        by_partition.setdefault(batch.partition, []).append((batch.first, batch.last))
    for partition, spans in by_partition.items():
        spans = sorted(set(spans))
        assert all(a[1] < b[0] for a, b in itertools.pairwise(spans)), (partition, spans)
