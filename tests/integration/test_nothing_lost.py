"""Nothing accepted is ever lost or counted twice, under the interleavings a review found.

Each test drives a real Kafka broker, DynamoDB Local and the lake through the code the
product runs; each fails without the fix it guards.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import boto3
import dagster as dg
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from assets.curated import image_metadata
from assets.maintenance import garbage_collection
from assets.raw import upload_events
from imagelake.api.application import create_app
from imagelake.batch.compaction import COMPACTED_TABLES, compact_day
from imagelake.batch.garbage_collection import GC_PREFIXES, GcParams, GcPolicy, plan
from imagelake.catalog import Catalog
from imagelake.lake import layout
from imagelake.lake.read_rule import exactly_once, first_per_image
from imagelake.lake.store import Lake
from imagelake.lake.tables import day_files, read_table_file, rows_to_table, to_parquet_bytes
from imagelake.realtime.batches import REFUSED_UPLOAD
from imagelake.realtime.events import UploadEvent
from imagelake.realtime.kafka import (
    KafkaConnection,
    consumer_config,
    dump_cursor,
    ensure_topic,
    fetch_watermarks,
)
from imagelake.warehouse.days import DayWindow
from infra.local.stack import free_port, start_kafka
from orchestration.backlog import realtime_backlog, rerun_request
from orchestration.jobs import realtime_batch_job
from orchestration.resources import CatalogResource, KafkaResource, LakeResource
from spark_jobs import garbage_collection_spark
from tests.conftest import dead_endpoint
from tests.integration.test_spark_pipes import gc_resources
from tests.support import sample_images as images
from tests.support.lakerows import image_id_at, seed_batch
from tests.support.observed import catalog_items, raw_objects
from tests.support.realtime_runs import run_batch, tick
from tests.support.servers import AnswerHoldingKafkaRelay, serve
from tests.support.uploads import producer, store_and_announce
from tests.support.warehouse_builds import build, query


def short_retention_topic(bootstrap: str, name: str) -> str:
    """A 3-partition topic whose closed segments are deleted a second after they are written."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    config = {"retention.ms": "1000", "segment.ms": "200", "file.delete.delay.ms": "0"}
    admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1, config=config)])[name].result(
        30
    )
    return name


def low_watermark(bootstrap: str, topic: str, partition: int) -> int:
    consumer = Consumer(consumer_config(KafkaConnection(bootstrap)))
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)[0]
    finally:
        consumer.close()


def test_offsets_expired_by_retention_become_dead_letters_on_todays_date_and_gc_keeps_them(
    stack, kafka_bootstrap: str
):
    lake, _kafka, instance, _producer, catalog = stack
    topic = short_retention_topic(kafka_bootstrap, f"short-retention-{time.time_ns()}")
    kafka = KafkaResource(bootstrap=kafka_bootstrap, topic=topic)
    # The sensor has seen the topic empty: its cursor is at offset 0 of every partition.
    cursor = dump_cursor({0: 0, 1: 0, 2: 0})
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for n in range(5):
        producer.produce(topic, value=f"message {n}".encode(), partition=0)
    producer.flush(10)
    # Nobody reads them; Kafka's retention deletes their segment once a newer one is rolled.
    deadline = time.monotonic() + 60
    while low_watermark(kafka_bootstrap, topic, 0) < 5:
        assert time.monotonic() < deadline, "retention never deleted the first segment"
        producer.produce(topic, value=b"later", partition=0)
        producer.flush(10)
        time.sleep(0.5)
    low = low_watermark(kafka_bootstrap, topic, 0)

    result, _ = tick(instance, kafka, cursor)
    assert isinstance(result, dg.SensorResult)
    expired = [r for r in result.run_requests if "imagelake/expired_offsets" in r.tags]
    assert [r.partition_key for r in expired] == [f"{topic}-0-0-{low - 1}"]

    today = datetime.now(UTC).date().isoformat()
    run_batch(instance, expired[0].partition_key, lake, kafka, catalog)
    key = layout.batch_file_key("dead_letters", today, expired[0].partition_key)
    rows = pq.read_table(lake.root / key).to_pylist()  # type: ignore[operator]
    assert [(r["kafka_offset"], r["last_offset"]) for r in rows] == [(0, low - 1)]
    assert "expired from Kafka" in rows[0]["reason"]

    # Garbage collection keeps it for the retention period, like any dead letter.
    objects = [info for prefix in GC_PREFIXES for info in lake.list(prefix)]
    for days in (0, 6):
        policy = GcPolicy(datetime.now(UTC) + timedelta(days=days), 7, timedelta(hours=24))
        assert key not in {d.key for d in plan(objects, set(), policy)}
    policy = GcPolicy(datetime.now(UTC) + timedelta(days=8), 7, timedelta(hours=24))
    assert key in {d.key for d in plan(objects, set(), policy)}


# -- compaction deletes only what it verified ---------------------------------------------------


@pytest.fixture(params=["local", "s3"])
def any_lake(request, tmp_path, moto_endpoint, monkeypatch):
    """The lake as a folder, and on moto's S3 server (prod's code path: S3's conditional delete)."""
    if request.param == "local":
        return Lake((tmp_path / "lake").as_uri())
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    bucket = f"compaction-{time.time_ns()}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return Lake(f"s3://{bucket}/lake", s3_endpoint=moto_endpoint)


class RacingLake(Lake):
    """The lake, with a writer that lands once on ``key`` just before anything deletes it."""

    def __init__(self, lake: Lake, key: str, data: bytes) -> None:
        super().__init__(lake.url, lake.s3_endpoint, lake.region)
        self.race: tuple[str, bytes] | None = (key, data)

    def _land(self, key: str) -> None:
        if self.race is not None and self.race[0] == key:
            self.put(*self.race)
            self.race = None

    def delete(self, key: str) -> None:
        self._land(key)
        super().delete(key)

    def delete_if_unchanged(self, key: str, e_tag: str) -> bool:
        self._land(key)
        return super().delete_if_unchanged(key, e_tag)


def test_a_correction_rewritten_during_compactions_verify_and_delete_survives(any_lake):
    """A late batch's duplicate resolution rewrites a file after compaction verified it, just before
    compaction deletes it: the correction stays, and readers prefer it to the stale compacted copy."""
    day = datetime.now(UTC).replace(hour=1, minute=0, second=0, microsecond=0) - timedelta(days=2)
    dt = layout.dt_of(day)
    first, copy = image_id_at(day, 0), image_id_at(day + timedelta(minutes=2), 2)
    seed_batch(any_lake, "image-uploads", 0, 0, [(first, day, b"same bytes")])
    copy_batch = seed_batch(
        any_lake, "image-uploads", 1, 0, [(copy, day + timedelta(minutes=2), b"same bytes")]
    )
    copy_key = layout.batch_file_key(layout.IMAGE_METADATA, dt, copy_batch)
    rows = read_table_file(any_lake, layout.IMAGE_METADATA, copy_key).to_pylist()
    rows[0].update(duplicate_of=first, duplicate_kind="exact", duplicate_distance=0)
    corrected = to_parquet_bytes(rows_to_table(layout.IMAGE_METADATA, rows))
    lake = RacingLake(any_lake, copy_key, corrected)

    result = compact_day(
        lake, layout.IMAGE_METADATA, dt, target_bytes=1 << 27, today=day.date() + timedelta(days=2)
    )
    assert lake.race is None, "the writer landed"
    assert result.kept == [copy_key] and copy_key not in result.deleted
    assert lake.get(copy_key) == corrected
    # Readers following the rule see the correction beside the stale compacted copy.
    files = day_files(lake, layout.IMAGE_METADATA, dt)
    table = pa.concat_tables([read_table_file(lake, layout.IMAGE_METADATA, f.key) for f in files])
    winner = first_per_image(exactly_once(table, layout.IMAGE_METADATA).to_pylist())[copy]
    assert winner["duplicate_of"] == first
    # The next compaction folds it in.
    again = compact_day(
        lake, layout.IMAGE_METADATA, dt, target_bytes=1 << 27, today=day.date() + timedelta(days=2)
    )
    assert copy_key in again.deleted


def test_a_conditional_delete_leaves_an_object_that_changed(any_lake):
    lake = any_lake
    lake.put("curated/x/dt=2026-11-20/a.parquet", b"first")
    _, tag = lake.get_tagged("curated/x/dt=2026-11-20/a.parquet")
    lake.put("curated/x/dt=2026-11-20/a.parquet", b"secnd")  # same size, same second
    assert lake.delete_if_unchanged("curated/x/dt=2026-11-20/a.parquet", tag) is False
    assert lake.get("curated/x/dt=2026-11-20/a.parquet") == b"secnd"
    _, tag = lake.get_tagged("curated/x/dt=2026-11-20/a.parquet")
    assert lake.delete_if_unchanged("curated/x/dt=2026-11-20/a.parquet", tag) is True
    assert not lake.exists("curated/x/dt=2026-11-20/a.parquet")
    assert lake.delete_if_unchanged("curated/x/dt=2026-11-20/a.parquet", tag) is True  # gone already
    assert [o.key for o in lake.list("curated/x")] == []  # nothing left aside


# -- what the client is told is what is counted ------------------------------------------------

KEY = {"X-API-Key": "dev-key"}


def post_image(url: str, data: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/images",
        headers={**KEY, **headers},
        files={"file": ("a.jpg", data, "image/jpeg")},
        timeout=60,
    )


def process_and_count(settings, lake: Lake, kafka: KafkaResource, catalog, instance) -> int:
    """Run every batch now on Kafka, build today's marts, and return today's images count."""
    planned, _ = tick(instance, kafka, None)
    for request in getattr(planned, "run_requests", []):
        assert run_batch(instance, request.partition_key, lake, kafka, catalog).success
    today = datetime.now(UTC).date()
    assert build(settings, instance, DayWindow(today, today)).success
    return sum(n for (n,) in query(settings, "select images from marts.daily_upload_stats"))


def test_a_retried_upload_with_the_same_idempotency_key_is_counted_once(
    imagelake_env, kafka_bootstrap, topic, catalog
):
    settings = imagelake_env(IMAGELAKE_KAFKA_BOOTSTRAP=kafka_bootstrap, IMAGELAKE_UPLOADS_TOPIC=topic)
    lake = Lake.from_settings(settings)
    kafka = KafkaResource(bootstrap=kafka_bootstrap, topic=topic)
    photo = images.jpeg(seed=7)
    with serve(create_app(settings, lake=lake, catalog=catalog)) as url:
        answers = [post_image(url, photo, **{"Idempotency-Key": "order-7"}) for _ in range(3)]
        other = post_image(url, images.jpeg(seed=8), **{"Idempotency-Key": "order-7"})
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert len({a.json()["image_id"] for a in answers}) == 1  # the first outcome, every time
    assert other.status_code == 422 and "different image" in other.json()["detail"]
    assert len(raw_objects(lake)) == 1
    with dg.instance_for_test() as instance:
        assert process_and_count(settings, lake, kafka, catalog, instance) == 1


@pytest.fixture(scope="module")
def relayed_kafka(tmp_path_factory):
    """A broker of its own: producers bootstrapping from its CLIENT listener reach it through an
    AnswerHoldingKafkaRelay, consumers (the sensor, the runs) directly."""
    direct, client, controller = free_port(), free_port(), free_port()
    relay = AnswerHoldingKafkaRelay(f"127.0.0.1:{client}")
    listeners = {
        "listeners": (
            f"PLAINTEXT://127.0.0.1:{direct},CLIENT://127.0.0.1:{client},CONTROLLER://127.0.0.1:{controller}"
        ),
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{direct},CLIENT://127.0.0.1:{relay.port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CLIENT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    }
    service = start_kafka(
        tmp_path_factory.mktemp("relayed-kafka"), direct, controller, extra_properties=listeners
    )
    try:
        yield f"127.0.0.1:{direct}", f"127.0.0.1:{relay.port}", relay
    finally:
        relay.close()
        service.stop()


def test_a_kafka_delivery_timeout_ends_with_one_count_or_none_matching_what_the_client_was_told(
    imagelake_env, relayed_kafka, catalog
):
    direct, relayed, relay = relayed_kafka
    topic = f"image-uploads-held-{time.time_ns()}"
    ensure_topic(KafkaConnection(direct), topic, 3)
    settings = imagelake_env(
        IMAGELAKE_KAFKA_BOOTSTRAP=relayed,
        IMAGELAKE_UPLOADS_TOPIC=topic,
        IMAGELAKE_KAFKA_DELIVERY_TIMEOUT_S="3",
    )
    lake = Lake.from_settings(settings)
    kafka = KafkaResource(bootstrap=direct, topic=topic)

    # 1. The broker writes the event, its answer never comes, nobody takes the upload meanwhile:
    #    the API refuses it (503) and the event, on Kafka all the same, must never count.
    with serve(create_app(settings, lake=lake, catalog=catalog)) as url:
        told_first = post_image(url, images.jpeg(seed=31))
    assert relay.produced.is_set() and told_first.status_code == 503
    relay.reset()

    # 2. The same, but a batch takes the upload while the API still waits: the upload stands (202).
    patient = settings.with_overrides(kafka_delivery_timeout_s=30.0)
    told: dict[str, httpx.Response] = {}
    with dg.instance_for_test() as instance, serve(create_app(patient, lake=lake, catalog=catalog)) as url:
        waiting = threading.Thread(target=lambda: told.update(second=post_image(url, images.jpeg(seed=32))))
        waiting.start()
        assert relay.produced.wait(30), "the upload's event never reached the broker"
        deadline = time.monotonic() + 30
        while sum(high for _low, high in all_watermarks(direct, topic).values()) < 2:
            assert time.monotonic() < deadline, "the second event is not on Kafka"
            time.sleep(0.2)
        count = process_and_count(settings, lake, kafka, catalog, instance)
        waiting.join(60)
    assert told["second"].status_code == 202
    second = told["second"].json()["image_id"]
    assert count == 1  # the second upload, once; the refused one, never
    assert catalog.get(second)["status"] == "processed"
    [refused] = [i for i in catalog_items(catalog) if i["status"]["S"] == "refused"]
    dead = [r for o in lake.list("raw/dead_letters") for r in pq.read_table(lake.root / o.key).to_pylist()]
    assert [r["reason"] for r in dead] == [REFUSED_UPLOAD]
    assert UploadEvent.model_validate_json(dead[0]["message_value"]).image_id == refused["image_id"]["S"]


def all_watermarks(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    consumer = Consumer(consumer_config(KafkaConnection(bootstrap)))
    try:
        return fetch_watermarks(consumer, topic, timeout_s=10)
    finally:
        consumer.close()


# -- an accepted upload whose batch failed is never collected, and is processed when re-run -----


def run_realtime_job(instance, batch: str, lake: Lake, kafka: KafkaResource, catalog, tags=None):
    """One batch as realtime_batch_job runs it (a run of that job, as the backlog sees it)."""
    if not instance.has_dynamic_partition("upload_batches", batch):
        instance.add_dynamic_partitions("upload_batches", [batch])
    defs = dg.Definitions(
        assets=[upload_events, image_metadata],
        jobs=[realtime_batch_job],
        resources={
            "lake": LakeResource(url=lake.url),
            "kafka": kafka,
            "catalog": CatalogResource(table=catalog.table, endpoint=catalog.endpoint),
        },
    )
    return defs.resolve_job_def(realtime_batch_job.name).execute_in_process(
        partition_key=batch, instance=instance, tags=tags or {}, raise_on_error=False
    )


def test_an_accepted_upload_whose_batch_failed_is_kept_by_gc_and_processed_when_rerun_days_later(
    imagelake_env, kafka_bootstrap, topic, catalog, spark_local, spark
):
    settings = imagelake_env(
        IMAGELAKE_KAFKA_BOOTSTRAP=kafka_bootstrap,
        IMAGELAKE_UPLOADS_TOPIC=topic,
        IMAGELAKE_GC_GRACE_HOURS=str(1 / 3600),
    )
    lake = Lake.from_settings(settings)
    kafka = KafkaResource(bootstrap=kafka_bootstrap, topic=topic)
    event = store_and_announce(lake, producer(kafka_bootstrap), topic, images.jpeg(seed=41), partition=0)
    catalog.put_accepted(event, settings.retention_days)  # what the API wrote before its 202
    raw_key = event.key
    down = Catalog(catalog.table, f"http://{dead_endpoint()}", timeout_s=1)
    with dg.instance_for_test() as instance:
        planned, _ = tick(instance, kafka, None)
        [request] = planned.run_requests
        batch = request.partition_key
        # DynamoDB is out of reach for the whole run: its step retries are spent, the run fails for
        # good, and the sensor's cursor has moved past its events.
        failed = run_realtime_job(instance, batch, lake, kafka, down)
        assert not failed.success
        assert realtime_backlog(instance, lag=0).failed == [batch]

        # Garbage collection meanwhile, under a 1 s grace: the raw image has no archived event.
        time.sleep(1.2)
        result = dg.materialize(
            [garbage_collection], instance=instance,
            resources=gc_resources(spark_local, lake, catalog, kafka_bootstrap, topic), raise_on_error=False,
        )  # fmt: skip
        assert result.success
        [mat] = result.asset_materializations_for_node("garbage_collection")
        held = mat.metadata["failed_uploads_held"].value
        assert batch in held  # it says why no failed upload is collected
        assert lake.exists(raw_key)
        # Even without the hold, the catalog's accepted item keeps it.
        unheld = GcParams(
            **LakeResource(url=lake.url).location(), retention_days=7, grace_hours=1 / 3600,
            catalog_table=catalog.table, catalog_endpoint=catalog.endpoint,
        )  # fmt: skip
        summary = garbage_collection_spark.run(spark, unheld, logging.getLogger("gc"))
        assert (
            summary["kept_as_accepted_uploads"] == 1 and summary["by_reason"]["failed_upload"]["objects"] == 0
        )
        assert lake.exists(raw_key)

        # Three days later the failed-batch sensor runs it again (DynamoDB is back), and it is processed.
        [record] = instance.get_run_records(dg.RunsFilter(run_ids=[failed.run_id]))
        assert rerun_request(batch, record, datetime.now(UTC)) is None  # not before its backoff
        rerun = rerun_request(batch, record, datetime.now(UTC) + timedelta(days=3))
        assert rerun is not None and rerun.partition_key == batch
        assert run_realtime_job(instance, batch, lake, kafka, catalog, tags=rerun.tags).success
        assert realtime_backlog(instance, lag=0).empty
    item = catalog.get(event.image_id)
    assert item["status"] == "processed" and item["claimed_by"] == batch


# -- the read rule under a re-run after compaction ---------------------------------------------


def test_a_rerun_after_compaction_then_a_correction_agree_in_catalog_lake_and_marts(
    imagelake_env, kafka_bootstrap, topic, catalog
):
    settings = imagelake_env(IMAGELAKE_KAFKA_BOOTSTRAP=kafka_bootstrap, IMAGELAKE_UPLOADS_TOPIC=topic)
    lake = Lake.from_settings(settings)
    kafka = KafkaResource(bootstrap=kafka_bootstrap, topic=topic)
    prod = producer(kafka_bootstrap)
    day = datetime.now(UTC).replace(hour=6, minute=0, second=0, microsecond=0) - timedelta(days=2)
    dt = layout.dt_of(day)
    photo = images.jpeg(seed=51)

    def announce(moment: datetime, data: bytes = photo, partition: int = 0):
        event = store_and_announce(lake, prod, topic, data, uploaded_at=moment, partition=partition)
        catalog.put_accepted(event, settings.retention_days)
        return event

    with dg.instance_for_test() as instance:
        later = announce(day + timedelta(hours=2))  # the copy, processed first
        announce(day + timedelta(hours=3), images.jpeg(seed=52), partition=1)  # another batch that day
        planned, _ = tick(instance, kafka, None)
        cursor = planned.cursor
        batches = sorted(r.partition_key for r in planned.run_requests)
        for batch in batches:
            assert run_batch(instance, batch, lake, kafka, catalog).success
        first_batch = batches[0]  # partition 0: the copy's
        for table in COMPACTED_TABLES:  # the closed day is compacted: the batch files are folded away
            compact_day(lake, table, dt, target_bytes=1 << 27, today=datetime.now(UTC).date())
        assert all(layout.is_compacted_key(f.key) for f in day_files(lake, layout.IMAGE_METADATA, dt))
        assert run_batch(instance, first_batch, lake, kafka, catalog).success  # re-run after compaction

        earlier = announce(day + timedelta(hours=1))  # a late event: the original, uploaded before it
        planned, _ = tick(instance, kafka, cursor)
        [late_batch] = [r.partition_key for r in planned.run_requests]
        assert run_batch(instance, late_batch, lake, kafka, catalog).success  # corrects the copy's row

        assert catalog.get(later.image_id)["duplicate_of"] == earlier.image_id
        rows = pa.concat_tables(
            [
                read_table_file(lake, layout.IMAGE_METADATA, f.key)
                for f in day_files(lake, layout.IMAGE_METADATA, dt)
            ]
        )
        assert first_per_image(rows.to_pylist())[later.image_id]["duplicate_of"] == earlier.image_id
        assert build(settings, instance, DayWindow(day.date(), day.date())).success
    assert query(settings, "select image_id, duplicate_of from marts.duplicate_images") == [
        (later.image_id, earlier.image_id)
    ]
