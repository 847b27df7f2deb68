"""The Kafka sensor and the real-time batch run, against a real broker and a local lake."""

import json
import threading
import time
from datetime import timedelta

import dagster as dg
import pytest

from assets.curated import IMAGE_METADATA
from imagelake.catalog import Catalog
from imagelake.lake import layout
from imagelake.lake.layout import BatchId
from imagelake.lake.tables import read_batch_table
from imagelake.realtime.kafka import SENSOR_GROUP, group_lag
from imagelake.warehouse.days import DayWindow
from orchestration.resources import KafkaResource
from orchestration.warehouse_schedules import warehouse_refresh_sensor
from tests.conftest import dead_endpoint
from tests.support import sample_images as images
from tests.support.realtime_runs import run_batch, tick
from tests.support.servers import LateRelay
from tests.support.uploads import send, store_and_announce

pytestmark = pytest.mark.integration


def test_sensor_requests_one_run_per_offset_range_and_advances_its_cursor(stack):
    lake, kafka, instance, prod, _ = stack
    for i in range(4):
        store_and_announce(lake, prod, kafka.topic, images.jpeg(seed=i), partition=i % 2)
    result, _ = tick(instance, kafka, None)
    assert isinstance(result, dg.SensorResult)
    keys = sorted(r.run_key for r in result.run_requests)
    assert keys == [f"{kafka.topic}-0-0-1", f"{kafka.topic}-1-0-1"]
    assert all(r.partition_key == r.run_key for r in result.run_requests)
    assert json.loads(result.cursor) == {"0": 2, "1": 2, "2": 0}
    assert sorted(result.dynamic_partitions_requests[0].partition_keys) == keys
    [lag] = result.asset_events  # everything found was planned: no lag left, 4 new events
    assert {k: lag.metadata[k].value for k in ("kafka/consumer_lag", "kafka/new_events")} == {
        "kafka/consumer_lag": 0,
        "kafka/new_events": 4,
    }

    again, _ = tick(instance, kafka, result.cursor)
    assert isinstance(again, dg.SkipReason) and "no new upload events" in again.skip_message
    # The tick committed its stored cursor to the sensor's group: Kafka's own view of its lag.
    with kafka.consumer(SENSOR_GROUP) as consumer:
        assert group_lag(consumer, kafka.topic, timeout_s=10) == {0: 0, 1: 0, 2: 0}

    store_and_announce(lake, prod, kafka.topic, images.jpeg(seed=9), partition=2)
    with kafka.consumer(SENSOR_GROUP) as consumer:  # announced, not yet planned: lagging by one
        assert group_lag(consumer, kafka.topic, timeout_s=10) == {0: 0, 1: 0, 2: 1}
    third, _ = tick(instance, kafka, result.cursor)
    assert [r.run_key for r in third.run_requests] == [f"{kafka.topic}-2-0-0"]
    assert json.loads(third.cursor) == {"0": 2, "1": 2, "2": 1}


def test_sensor_skips_with_a_reason_when_kafka_is_down(stack):
    _, kafka, instance, _, _ = stack
    down = KafkaResource(bootstrap=dead_endpoint(), topic=kafka.topic)
    cursor = json.dumps({"0": 5, "1": 0, "2": 0})
    started = time.monotonic()
    result, context = tick(instance, down, cursor)
    assert time.monotonic() - started < 30, "a tick must stay well inside Dagster's 60 s timeout"
    assert isinstance(result, dg.SkipReason)
    assert "Kafka unavailable" in result.skip_message and "cursor unchanged" in result.skip_message
    assert context.cursor == cursor


def test_unreadable_cursor_is_an_error_not_a_silent_reset(stack):
    _, kafka, instance, _, _ = stack
    with pytest.raises(Exception, match="cursor"):
        tick(instance, kafka, "not json")


def test_batch_run_archives_events_and_writes_metadata(stack):
    lake, kafka, instance, prod, catalog = stack
    sent = [
        store_and_announce(lake, prod, kafka.topic, images.jpeg(80, 60, seed=i), partition=0)
        for i in range(3)
    ]
    batch_id = str(BatchId(kafka.topic, 0, 0, 2))
    result = run_batch(instance, batch_id, lake, kafka, catalog)
    assert result.success
    events = read_batch_table(lake, "upload_events", batch_id)
    assert events["image_id"].to_pylist() == [e.image_id for e in sent]
    meta = read_batch_table(lake, "image_metadata", batch_id).to_pylist()
    assert [(m["status"], m["width"], m["height"], m["format"]) for m in meta] == [
        ("processed", 80, 60, "JPEG")
    ] * 3
    assert {m["sha256"] for m in meta} == {e.sha256 for e in sent}
    [mat] = [
        m
        for m in result.asset_materializations_for_node("image_metadata")
        if m.asset_key.path == ["image_metadata"]
    ]
    assert mat.metadata["processed"].value == 3 and mat.metadata["failed"].value == 0
    assert {catalog.get(e.image_id)["status"] for e in sent} == {"processed"}


def test_malformed_message_is_dead_lettered_and_the_partition_keeps_flowing(stack):
    lake, kafka, instance, prod, catalog = stack
    good = store_and_announce(lake, prod, kafka.topic, images.png(seed=1), fmt="PNG", partition=1)
    send(prod, kafka.topic, b'{"image_id": "not valid"}', partition=1)
    send(prod, kafka.topic, b"\x00\x01binary junk", partition=1)
    later = store_and_announce(lake, prod, kafka.topic, images.png(seed=2), fmt="PNG", partition=1)

    first, _ = tick(instance, kafka, None)
    [request] = first.run_requests
    assert run_batch(instance, request.partition_key, lake, kafka, catalog).success
    dead = read_batch_table(lake, "dead_letters", request.partition_key).to_pylist()
    assert [d["kafka_offset"] for d in dead] == [1, 2]
    assert all(d["reason"].startswith("invalid upload event") for d in dead)
    assert dead[1]["message_value"] == b"\x00\x01binary junk"
    events = read_batch_table(lake, "upload_events", request.partition_key)
    assert events["image_id"].to_pylist() == [good.image_id, later.image_id]

    newest = store_and_announce(lake, prod, kafka.topic, images.png(seed=3), fmt="PNG", partition=1)
    second, _ = tick(instance, kafka, first.cursor)
    [request2] = second.run_requests
    assert request2.partition_key == f"{kafka.topic}-1-4-4"
    assert run_batch(instance, request2.partition_key, lake, kafka, catalog).success
    assert read_batch_table(lake, "upload_events", request2.partition_key)["image_id"].to_pylist() == [
        newest.image_id
    ]


def test_the_same_batch_run_twice_rewrites_identical_files(stack):
    lake, kafka, instance, prod, catalog = stack
    for i in range(3):
        store_and_announce(lake, prod, kafka.topic, images.jpeg(seed=20 + i), partition=2)
    batch_id = str(BatchId(kafka.topic, 2, 0, 2))
    assert run_batch(instance, batch_id, lake, kafka, catalog).success
    before = {o.key: lake.get(o.key) for o in lake.list("raw/events")} | {
        o.key: lake.get(o.key) for o in lake.list("curated")
    }
    assert run_batch(instance, batch_id, lake, kafka, catalog).success
    after = {o.key: lake.get(o.key) for o in lake.list("raw/events")} | {
        o.key: lake.get(o.key) for o in lake.list("curated")
    }
    assert after == before and len(before) == 3  # events, metadata, hash index


def test_failures_are_recorded_and_the_rest_of_the_batch_is_processed(stack):
    lake, kafka, instance, prod, catalog = stack
    ok = store_and_announce(lake, prod, kafka.topic, images.jpeg(seed=1), partition=0)
    never_stored = store_and_announce(None, prod, kafka.topic, images.jpeg(seed=2), partition=0)
    corrupt = images.jpeg(200, 100, seed=3)
    broken = store_and_announce(lake, prod, kafka.topic, corrupt[: len(corrupt) // 3], partition=0)
    batch_id = str(BatchId(kafka.topic, 0, 0, 2))
    assert run_batch(instance, batch_id, lake, kafka, catalog).success
    rows = {r["image_id"]: r for r in read_batch_table(lake, "image_metadata", batch_id).to_pylist()}
    assert rows[ok.image_id]["status"] == "processed"
    assert rows[never_stored.image_id]["status"] == "failed"
    assert rows[never_stored.image_id]["error"].startswith("missing")
    assert rows[broken.image_id]["status"] == "failed"
    assert "truncated" in rows[broken.image_id]["error"]


def test_while_batch_runs_wait_for_a_slot_the_sensor_starts_nothing_and_then_cuts_larger_batches(stack):
    from dagster._core.test_utils import create_run_for_test

    lake, kafka, instance, prod, _ = stack
    store_and_announce(lake, prod, kafka.topic, images.jpeg(seed=1), partition=0)
    first, _ = tick(instance, kafka, None)
    waiting = create_run_for_test(
        instance, job_name="realtime_batch_job", status=dg.DagsterRunStatus.NOT_STARTED
    )
    store_and_announce(lake, prod, kafka.topic, images.jpeg(seed=2), partition=0)
    store_and_announce(lake, prod, kafka.topic, images.jpeg(seed=3), partition=0)
    held, context = tick(instance, kafka, first.cursor)
    assert isinstance(held, dg.SensorResult) and not held.run_requests
    assert held.skip_reason is not None and "wait for a run slot" in held.skip_reason.skip_message
    assert "2 new event(s) stay on Kafka" in held.skip_reason.skip_message
    [lag] = held.asset_events  # the growing lag is reported while nothing is started
    assert lag.asset_key == dg.AssetKey("upload_events") and lag.metadata["kafka/consumer_lag"].value == 2
    assert context.cursor == first.cursor  # nothing read past, nothing lost
    instance.delete_run(waiting.run_id)  # the queue drains
    after, _ = tick(instance, kafka, first.cursor)
    assert [r.run_key for r in after.run_requests] == [f"{kafka.topic}-0-1-2"]  # one run for both events


def test_a_partition_whose_batch_still_runs_gets_no_new_batch_and_then_one_for_all_that_waited(stack):
    """Under load batches grow instead of runs multiplying: at most IMAGELAKE_SENSOR_RUNS_PER_PARTITION
    (1) batch run per Kafka partition is queued or running."""
    from dagster._core.test_utils import create_run_for_test

    lake, kafka, instance, prod, _ = stack
    store_and_announce(lake, prod, kafka.topic, images.jpeg(seed=11), partition=0)
    first, _ = tick(instance, kafka, None)
    running = create_run_for_test(
        instance,
        job_name="realtime_batch_job",
        status=dg.DagsterRunStatus.STARTED,
        tags={"dagster/partition": f"{kafka.topic}-0-0-0"},
    )
    for seed in (12, 13, 14):
        store_and_announce(lake, prod, kafka.topic, images.jpeg(seed=seed), partition=0)
    store_and_announce(lake, prod, kafka.topic, images.jpeg(seed=15), partition=1)
    second, _ = tick(instance, kafka, first.cursor)
    assert [r.run_key for r in second.run_requests] == [f"{kafka.topic}-1-0-0"]  # partition 0 waits
    held, context = tick(instance, kafka, second.cursor)
    assert isinstance(held, dg.SkipReason) and "partition(s) 0 have new events" in held.skip_message
    assert context.cursor == second.cursor  # nothing read past, nothing lost
    instance.report_run_failed(running)  # the run is over (however it ended)
    after, _ = tick(instance, kafka, second.cursor)
    assert [r.run_key for r in after.run_requests] == [f"{kafka.topic}-0-1-3"]  # one batch for all three


def test_a_catalog_outage_is_retried_inside_the_run_and_the_batch_completes(stack, dynamodb_endpoint):
    """Started as the UI's Materialize button starts it (an asset job, not realtime_batch_job):
    the step retry comes with the assets (orchestration/retries.py)."""
    lake, kafka, instance, prod, catalog = stack
    sent = [
        store_and_announce(lake, prod, kafka.topic, images.jpeg(80, 60, seed=i), partition=1)
        for i in range(2)
    ]
    batch_id = str(BatchId(kafka.topic, 1, 0, 1))
    dynamodb = LateRelay(dynamodb_endpoint.removeprefix("http://"))  # down until opened
    outcome = {}
    runner = threading.Thread(
        target=lambda: outcome.update(
            result=run_batch(
                instance,
                batch_id,
                lake,
                kafka,
                Catalog(catalog.table, dynamodb.endpoint),
                raise_on_error=False,
            )
        )
    )
    runner.start()
    try:
        deadline = time.monotonic() + 120
        while not any(
            instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
            for run in instance.get_runs()
        ):
            assert runner.is_alive() and time.monotonic() < deadline, "the failed step was not retried"
            time.sleep(0.2)
        dynamodb.open()  # DynamoDB is back before the retry, 10 s after the failure
        runner.join(120)
    finally:
        dynamodb.close()
    result = outcome["result"]
    assert result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert "catalog" in str(failure.event_specific_data.error).lower()
    assert {catalog.get(e.image_id)["status"] for e in sent} == {"processed"}
    assert len(read_batch_table(lake, "image_metadata", batch_id)) == 2


def test_the_catalog_tells_a_client_only_of_its_own_earlier_copy_and_the_lake_keeps_the_earliest(stack):
    """Client A uploads a picture, then B uploads it twice (the new-user trial's case)."""
    lake, kafka, instance, prod, catalog = stack
    picture = images.jpeg(90, 60, seed=5)
    a, b1, b2 = (
        store_and_announce(lake, prod, kafka.topic, picture, client_id=client, partition=0)
        for client in ("a", "b", "b")
    )
    batch_id = str(BatchId(kafka.topic, 0, 0, 2))
    assert run_batch(instance, batch_id, lake, kafka, catalog).success

    lake_verdicts = {
        r["image_id"]: r["duplicate_of"]
        for r in read_batch_table(lake, "image_metadata", batch_id).to_pylist()
    }
    assert lake_verdicts == {
        a.image_id: None,
        b1.image_id: a.image_id,
        b2.image_id: a.image_id,
    }  # for analysts
    told = {e.image_id: catalog.get(e.image_id).get("duplicate_of") for e in (a, b1, b2)}
    assert told == {a.image_id: None, b1.image_id: None, b2.image_id: b1.image_id}  # for each client
    assert catalog.get(b2.image_id)["duplicate_kind"] == "exact"

    assert run_batch(instance, batch_id, lake, kafka, catalog).success  # a re-run changes nothing
    assert {e.image_id: catalog.get(e.image_id).get("duplicate_of") for e in (a, b1, b2)} == told


def test_a_damaged_index_file_fails_the_batch_once_naming_it_and_nothing_is_lost(stack):
    lake, kafka, instance, prod, catalog = stack
    sent = store_and_announce(lake, prod, kafka.topic, images.jpeg(80, 60, seed=8), partition=2)
    damaged = layout.hash_index_key(layout.dt_of(sent.uploaded_at), "t-9-0-0")
    lake.put(damaged, b"not parquet")
    batch_id = str(BatchId(kafka.topic, 2, 0, 0))
    failed = run_batch(instance, batch_id, lake, kafka, catalog, raise_on_error=False)
    assert not failed.success
    assert not [e for e in failed.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    [failure] = [e for e in failed.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert damaged in failure.step_failure_data.user_failure_data.description
    assert catalog.get(sent.image_id) is None or catalog.get(sent.image_id)["status"] == "accepted"

    lake.delete(damaged)  # the operator moves it out, then re-executes the run
    assert run_batch(instance, batch_id, lake, kafka, catalog).success
    assert catalog.get(sent.image_id)["status"] == "processed"


def test_a_late_original_lists_the_later_files_it_rewrote_so_the_warehouse_refreshes_their_day(stack):
    """An event a day late is the original of a picture uploaded today: the late batch rewrites
    today's batch file (its duplicate answer changed), and the marts of today must follow."""
    lake, kafka, instance, prod, catalog = stack
    picture = images.jpeg(90, 60, seed=11)
    copy = store_and_announce(lake, prod, kafka.topic, picture, partition=1)
    first = str(BatchId(kafka.topic, 1, 0, 0))
    assert run_batch(instance, first, lake, kafka, catalog).success
    refresh = warehouse_refresh_sensor(dg.build_sensor_context(instance=instance))
    original = store_and_announce(
        lake, prod, kafka.topic, picture, uploaded_at=copy.uploaded_at - timedelta(days=1), partition=1
    )
    result = run_batch(instance, str(BatchId(kafka.topic, 1, 1, 1)), lake, kafka, catalog)
    assert result.success

    [row] = read_batch_table(lake, "image_metadata", first).to_pylist()
    assert row["duplicate_of"] == original.image_id  # today's file was rewritten
    [mat] = [m for m in result.get_asset_materialization_events() if m.asset_key == IMAGE_METADATA]
    files = mat.materialization.metadata["files"].value
    assert layout.batch_file_key("image_metadata", layout.dt_of(copy.uploaded_at), first) in files
    [request] = warehouse_refresh_sensor(
        dg.build_sensor_context(instance=instance, cursor=refresh.cursor)
    ).run_requests
    assert request.tags["imagelake/days"] == str(
        DayWindow(original.uploaded_at.date(), copy.uploaded_at.date())
    )
