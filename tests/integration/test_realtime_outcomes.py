"""What a real-time run makes of each image, as the lake and the catalog record it.

Real Kafka, real DynamoDB Local, real HTTP; every awkward input of the issue has a test here
or in tests/unit/test_image_facts.py.
"""

import dagster as dg
import httpx
import pytest

from imagelake.api.application import create_app
from imagelake.catalog import TTL_ATTRIBUTE, Catalog
from imagelake.lake.layout import BatchId
from imagelake.lake.store import Lake
from imagelake.lake.tables import read_batch_table
from imagelake.realtime.kafka import read_batch
from infra.local.stack import free_port, start_dynamodb
from orchestration.resources import KafkaResource
from tests.support import sample_images as images
from tests.support.realtime_runs import run_batch, tick
from tests.support.servers import serve
from tests.support.uploads import send, store_and_announce

pytestmark = pytest.mark.integration
KEY = {"X-API-Key": "dev-key"}


def announce(lake, prod, kafka, catalog, data, fmt="JPEG", partition=0, **kwargs):
    """Store and announce like the API, including the catalog's accepted item."""
    event = store_and_announce(lake, prod, kafka.topic, data, fmt=fmt, partition=partition, **kwargs)
    catalog.put_accepted(event, 7)
    return event


def keys_in(kafka: KafkaResource, batch_id: str) -> list[str]:
    """The image ids (message keys) of a batch, read straight from Kafka."""
    with kafka.consumer() as consumer:
        messages, _ = read_batch(consumer, BatchId.parse(batch_id), 10)
    return [m.key.decode() for m in messages]


def rows_of(lake: Lake, batch_id: str) -> dict[str, dict]:
    return {r["image_id"]: r for r in read_batch_table(lake, "image_metadata", batch_id).to_pylist()}


def checks_passed(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def materialization(result: dg.ExecuteInProcessResult, key: str) -> dict:
    [mat] = [m for m in result.asset_materializations_for_node("image_metadata") if m.asset_key.path == [key]]
    return {k: v.value for k, v in mat.metadata.items()}


def test_awkward_images_are_processed_with_the_facts_people_see(stack):
    lake, kafka, instance, prod, catalog = stack
    sent = {
        "cmyk": announce(lake, prod, kafka, catalog, images.cmyk_jpeg(96, 64)),
        "png16": announce(lake, prod, kafka, catalog, images.png16(96, 64), fmt="PNG"),
        "palette": announce(lake, prod, kafka, catalog, images.palette_png_with_transparency(), fmt="PNG"),
        "animated": announce(lake, prod, kafka, catalog, images.gif(64, 48, frames=4), fmt="GIF"),
        "rotated": announce(
            lake, prod, kafka, catalog, images.photo(96, 64, exif=images.exif_block(orientation=6))
        ),
        "garbage-exif": announce(
            lake,
            prod,
            kafka,
            catalog,
            images.photo(96, 64, exif=images.exif_block(orientation=65535, captured="junk", make="m" * 5000)),
        ),
    }
    batch_id = str(BatchId(kafka.topic, 0, 0, len(sent) - 1))
    result = run_batch(instance, batch_id, lake, kafka, catalog)
    assert result.success
    rows = rows_of(lake, batch_id)
    expect = {
        "cmyk": ("JPEG", "CMYK", 96, 64, 1),
        "png16": ("PNG", "I;16", 96, 64, 1),
        "palette": ("PNG", "P", 96, 64, 1),
        "animated": ("GIF", "P", 64, 48, 4),
        "rotated": ("JPEG", "RGB", 64, 96, 1),  # stored 96x64, displayed 64x96
        "garbage-exif": ("JPEG", "RGB", 96, 64, 1),
    }
    for name, event in sent.items():
        row = rows[event.image_id]
        assert row["status"] == "processed", (name, row["error"])
        assert (row["format"], row["mode"], row["width"], row["height"], row["frame_count"]) == expect[name]
        assert len(row["phash"]) == 16 and row["sha256"] == event.sha256
        item = catalog.get(event.image_id)
        assert (item["status"], item["width"], item["height"], item["phash"]) == (
            "processed",
            row["width"],
            row["height"],
            row["phash"],
        )
    assert rows[sent["png16"].image_id]["bit_depth"] == 16
    assert rows[sent["garbage-exif"].image_id]["orientation"] == 1
    assert rows[sent["garbage-exif"].image_id]["camera_make"] == "m" * 64
    assert checks_passed(result) == dict.fromkeys(
        ["rows_match_events", "sha256_present", "hash_for_every_decodable_image"], True
    )
    meta = materialization(result, "image_metadata")
    assert (meta["images"], meta["processed"], meta["failed"]) == (6, 6, 0)
    assert materialization(result, "image_catalog")["items_written"] == 6


def test_bad_objects_fail_with_their_reason_and_the_rest_of_the_batch_is_processed(stack):
    lake, kafka, instance, prod, catalog = stack
    good = announce(lake, prod, kafka, catalog, images.photo(80, 60, seed=1))
    truncated_bytes = images.photo(400, 300, seed=2)
    truncated = announce(lake, prod, kafka, catalog, truncated_bytes[: len(truncated_bytes) // 3])
    bad_crc = bytearray(images.png(200, 150, seed=3))
    bad_crc[200] ^= 0xFF
    corrupt = announce(lake, prod, kafka, catalog, bytes(bad_crc), fmt="PNG")
    not_an_image = announce(lake, prod, kafka, catalog, b"%PDF-1.7 placed in the raw zone by hand")
    deleted = announce(lake, prod, kafka, catalog, images.photo(80, 60, seed=4))
    lake.delete(deleted.key)  # gone before its batch runs
    never = store_and_announce(None, prod, kafka.topic, images.photo(80, 60, seed=5), partition=0)
    later_good = announce(lake, prod, kafka, catalog, images.photo(80, 60, seed=6))
    batch_id = str(BatchId(kafka.topic, 0, 0, 6))
    result = run_batch(instance, batch_id, lake, kafka, catalog)
    assert result.success, "a bad image must not fail the run"
    rows = rows_of(lake, batch_id)
    assert [rows[e.image_id]["status"] for e in (good, later_good)] == ["processed"] * 2
    reasons = {
        truncated.image_id: "truncated",
        corrupt.image_id: "checksum",
        not_an_image.image_id: "not an image",
        deleted.image_id: "missing",
        never.image_id: "missing",
    }
    for image_id, reason in reasons.items():
        assert rows[image_id]["status"] == "failed" and reason in rows[image_id]["error"], rows[image_id]
        item = catalog.get(image_id)
        assert (item["status"], item["error"]) == ("failed", rows[image_id]["error"])
        assert "width" not in item and "phash" not in item
    # The key that never existed had no accepted item: the run's write creates one that expires.
    assert catalog.get(never.image_id)[TTL_ATTRIBUTE] > 0
    assert all(checks_passed(result).values())
    meta = materialization(result, "image_metadata")
    assert (meta["processed"], meta["failed"]) == (2, 5)
    assert meta["failures"] == {"undecodable": 3, "missing": 2}


def test_the_same_event_delivered_twice_gives_one_row_and_one_item(stack):
    lake, kafka, instance, prod, catalog = stack
    event = announce(lake, prod, kafka, catalog, images.photo(64, 48, seed=8), partition=1)
    other = announce(lake, prod, kafka, catalog, images.photo(64, 48, seed=9), partition=1)
    send(prod, kafka.topic, event.encode(), key=event.image_id, partition=1)  # same batch
    send(prod, kafka.topic, event.encode(), key=event.image_id, partition=1)  # next batch
    first, second = str(BatchId(kafka.topic, 1, 0, 2)), str(BatchId(kafka.topic, 1, 3, 3))
    first_run = run_batch(instance, first, lake, kafka, catalog)
    second_run = run_batch(instance, second, lake, kafka, catalog)
    assert first_run.success and second_run.success
    assert sorted(rows_of(lake, first)) == sorted([event.image_id, other.image_id])
    assert rows_of(lake, second) == {}
    assert checks_passed(first_run)["rows_match_events"] and checks_passed(second_run)["rows_match_events"]
    assert materialization(second_run, "image_metadata")["redelivered"] == 1
    items = catalog._client.scan(TableName=catalog.table, ConsistentRead=True)["Items"]
    assert sorted(i["image_id"]["S"] for i in items) == sorted([event.image_id, other.image_id])
    assert catalog.get(event.image_id)["batch_id"] == first


def test_an_image_an_exact_copy_and_a_resized_copy_through_the_api(stack, settings_factory):
    """The issue's "done when": three processed items, both copies pointing to the first."""
    lake, kafka, instance, _, catalog = stack
    settings = settings_factory(
        IMAGELAKE_KAFKA_BOOTSTRAP=kafka.bootstrap,
        IMAGELAKE_UPLOADS_TOPIC=kafka.topic,
        IMAGELAKE_LAKE_URL=lake.url,
    )
    original = images.photo(1200, 800, seed=11)
    resized = images.encode(images.scene(1200, 800, seed=11).resize((600, 400)), "JPEG", quality=75)
    with serve(create_app(settings, lake=lake, catalog=catalog)) as url, httpx.Client(base_url=url) as client:
        sent = [
            client.post("/v1/images", headers=KEY, files={"file": (f"{i}.jpg", body, "image/jpeg")})
            for i, body in enumerate([original, original, resized])
        ]
        ids = [r.json()["image_id"] for r in sent]
        request_ids = [r.json()["request_id"] for r in sent]
        assert request_ids == [r.headers["X-Request-ID"] for r in sent] and len(set(request_ids)) == 3
        metrics = client.get("/metrics").text  # what /metrics makes of these uploads
        assert 'imagelake_uploads_total{outcome="accepted",status="202"} 3.0' in metrics
        total = len(original) * 2 + len(resized)
        assert f'imagelake_upload_bytes_total{{outcome="accepted"}} {float(total)}' in metrics
        assert 'imagelake_kafka_publish_duration_seconds_count{result="ok"} 3.0' in metrics
        assert 'imagelake_lake_write_duration_seconds_count{result="ok"} 3.0' in metrics
        result, _ = tick(instance, kafka, None)
        batches = sorted(r.partition_key for r in result.run_requests)
        # Keys are image ids, so the three uploads spread over partitions: one run each. Run the
        # original's batch last, as a lagging partition would, so its run has to correct the others.
        owner = next(b for b in batches if ids[0] in keys_in(kafka, b))
        for batch_id in [b for b in batches if b != owner] + [owner]:
            assert run_batch(instance, batch_id, lake, kafka, catalog).success
        answers = [client.get(f"/v1/images/{i}", headers=KEY).json() for i in ids]
    assert [a["status"] for a in answers] == ["processed"] * 3
    # The request that took each upload stays on its item through the run's writes.
    assert [catalog.get(i)["request_id"] for i in ids] == request_ids
    dims = [(a["metadata"]["format"], a["metadata"]["width"], a["metadata"]["height"]) for a in answers]
    assert dims == [("JPEG", 1200, 800), ("JPEG", 1200, 800), ("JPEG", 600, 400)]
    assert answers[0]["duplicate"] is None
    assert answers[1]["duplicate"] == {"of": ids[0], "kind": "exact", "distance": 0}
    assert answers[2]["duplicate"]["of"] == ids[0] and answers[2]["duplicate"]["kind"] == "near"
    assert answers[2]["duplicate"]["distance"] <= settings.duplicate_max_distance


def test_dynamodb_stopped_during_a_run_fails_loudly_and_a_rerun_completes(stack, tmp_path):
    lake, kafka, instance, prod, _ = stack
    port = free_port()
    data_dir, log = tmp_path / "dynamodb", tmp_path / "dynamodb.log"
    dynamo = start_dynamodb(data_dir, port, log)
    catalog = Catalog("images", f"http://127.0.0.1:{port}", timeout_s=2)
    try:
        catalog.ensure_table()
        sent = [
            announce(lake, prod, kafka, catalog, images.photo(64, 48, seed=30 + i), partition=2)
            for i in range(12)
        ]
        batch_id = str(BatchId(kafka.topic, 2, 0, 11))

        # Mid-way: the catalog dies after three items of the outcome write.
        written: list[str] = []

        def die_after_three(image_id: str) -> None:
            written.append(image_id)
            if len(written) == 3:
                dynamo.kill()

        rows = read_after_lake_work(instance, batch_id, lake, kafka, catalog)
        with pytest.raises(Exception, match="DynamoDB"):
            catalog.record_outcomes(rows, 7, workers=1, on_written=die_after_three)
        dynamo = start_dynamodb(data_dir, port, log)
        items = catalog.get_many(e.image_id for e in sent)
        processed = [i for i in items.values() if i["status"] == "processed"]
        assert 3 <= len(processed) < 12 and len(items) == 12
        assert all(i["width"] == 64 and len(i["phash"]) == 16 for i in processed), "half-written item"

        # A whole run with the catalog down: it fails, naming DynamoDB, at its first step (the uploads
        # are claimed in the catalog before anything of the batch is archived again).
        dynamo.kill()
        failed = run_batch(instance, batch_id, lake, kafka, catalog, raise_on_error=False)
        assert not failed.success
        failure = next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE")
        message = failure.step_failure_data.error.to_string()
        assert "DynamoDB" in message and "re-run the batch" in message, message
        assert failure.step_key == "upload_events"
        assert failed.asset_materializations_for_node("image_metadata") == []

        dynamo = start_dynamodb(data_dir, port, log)
        assert run_batch(instance, batch_id, lake, kafka, catalog).success
        items = catalog.get_many(e.image_id for e in sent)
        assert [items[e.image_id]["status"] for e in sent] == ["processed"] * 12
    finally:
        dynamo.stop()


def read_after_lake_work(instance, batch_id, lake, kafka, catalog) -> list[dict]:
    """Run the batch once (catalog up) so the lake holds its rows; return them."""
    assert run_batch(instance, batch_id, lake, kafka, catalog).success
    rows = list(rows_of(lake, batch_id).values())
    for row in rows:  # back to accepted, so the mid-way write has something to do
        catalog.update(row["image_id"], {"status": "accepted", "width": None, "phash": None})
    return rows
