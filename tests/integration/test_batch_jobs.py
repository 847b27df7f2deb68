"""The Spark jobs' logic on a real local Spark (one session for all), a real lake and DynamoDB Local."""

import io
import logging
import threading
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from functools import partial

import numpy as np
import pytest
from PIL import Image

from imagelake.batch.compaction import CompactParams
from imagelake.batch.day_derivatives import DeriveParams, derive_partition, images_to_derive, read_day
from imagelake.batch.garbage_collection import GC_PREFIXES, GcParams
from imagelake.lake import layout
from imagelake.lake.tables import write_batch_table
from spark_jobs import compaction_spark, derivatives_spark, garbage_collection_spark
from tests.conftest import dead_endpoint
from tests.support import sample_images as images
from tests.support.lakerows import (
    event_row,
    image_id_at,
    metadata_row,
    seed_batch,
    seed_closed_day_with_a_damaged_file,
    seed_gc_lake,
)

pytestmark = pytest.mark.integration

log = logging.getLogger("test-batch-jobs")
NOW = datetime.now(UTC)
DT = layout.dt_of(NOW)


def seed_images(
    lake, named: dict[str, bytes], dims: dict[str, tuple[int, int]], batch: str = "t-0-0-9"
) -> dict:
    """Store images and write the processed metadata rows the real-time run would have written."""
    ids, rows = {}, []
    for n, (name, data) in enumerate(named.items()):
        image_id = image_id_at(NOW, n)
        ids[name] = image_id
        lake.put(layout.raw_image_key(DT, image_id), data)
        width, height = dims[name]
        rows.append(metadata_row(image_id, NOW, batch, width=width, height=height, data=data))
    write_batch_table(lake, "image_metadata", batch, rows, [DT] * len(rows))
    return ids


def params(lake, catalog=None, **changes) -> DeriveParams:
    base = DeriveParams(
        lake_url=lake.url,
        dt=DT,
        sizes=(64, 128),
        formats=("webp",),
        max_pixels=64_000_000,
        run_id="run-1",
        catalog_table=catalog.table if catalog else "",
        catalog_endpoint=catalog.endpoint if catalog else "",
    )
    return DeriveParams(**{**asdict(base), **changes})


def exif_rotated() -> bytes:
    stored = Image.new("RGB", (300, 200), (255, 0, 0))
    stored.paste(Image.new("RGB", (150, 200), (0, 0, 255)), (150, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    return images.encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def palette_with_transparency() -> bytes:
    im = Image.new("P", (200, 100), 1)
    im.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    im.paste(0, (0, 0, 100, 100))
    return images.encode(im, "PNG", transparency=0)


def test_every_size_for_every_image_with_catalog_keys_and_bad_sources_recorded(spark, lake, catalog):
    corpus = {
        "jpeg": (images.jpeg(640, 480, seed=1), (640, 480)),
        "png": (images.png(300, 200, seed=2), (300, 200)),
        "cmyk": (
            images.encode(Image.new("RGB", (200, 150), (200, 40, 40)).convert("CMYK"), "JPEG"),
            (200, 150),
        ),
        "16bit": (images.encode(Image.fromarray(np.full((90, 120), 30000, np.uint16)), "PNG"), (120, 90)),
        "palette": (palette_with_transparency(), (200, 100)),
        "animated": (images.gif(120, 90, seed=3, frames=3), (120, 90)),
        "rotated": (exif_rotated(), (200, 300)),
        "at_cap": (images.png(640, 480, seed=4), (640, 480)),
        "over_cap": (images.png(641, 480, seed=5), (641, 480)),
        "corrupt": (images.jpeg(300, 200)[:900], (300, 200)),
        "zero": (b"", (10, 10)),
    }
    ids = seed_images(lake, {k: v[0] for k, v in corpus.items()}, {k: v[1] for k, v in corpus.items()})
    catalog.update(ids["over_cap"], {"status": "processed"})  # as the real-time run left it
    p = params(lake, catalog, max_pixels=640 * 480)
    summary = derivatives_spark.run(spark, p, log)

    bad = ("corrupt", "zero", "over_cap")
    good = [k for k in corpus if k not in bad]
    assert summary["images"] == len(corpus) and summary["images_failed"] == len(bad)
    assert summary["derivatives_written"] == 2 * len(good)
    assert {f["image_id"] for f in summary["failures"]} == {ids[k] for k in bad}
    for name in good:
        entry = catalog.get(ids[name])["derivatives"]
        assert entry == {str(s): {"webp": layout.derivative_key(s, ids[name], "webp")} for s in (64, 128)}
        for s in (64, 128):
            im = Image.open(io.BytesIO(lake.get(layout.derivative_key(s, ids[name], "webp"))))
            assert max(im.size) == min(s, max(corpus[name][1])) and im.mode in ("RGB", "RGBA")
            assert im.size[0] >= im.size[1] or name == "rotated"
    rotated = Image.open(io.BytesIO(lake.get(layout.derivative_key(128, ids["rotated"], "webp")))).convert(
        "RGB"
    )
    assert (
        rotated.size == (85, 128)
        and rotated.getpixel((40, 5))[0] > 200
        and rotated.getpixel((40, 120))[2] > 200
    )
    assert catalog.get(ids["corrupt"]) is None  # no item to say it on: none is made up
    assert "pixels" in catalog.get(ids["over_cap"])["derivatives_error"]

    manifest = read_day(lake, "derivatives", DT).to_pylist()
    assert len(manifest) == 2 * len(corpus)
    failed = {r["image_id"]: r["error"] for r in manifest if r["status"] == "failed"}
    assert failed[ids["zero"]].startswith("empty") and failed[ids["corrupt"]].startswith("undecodable")
    assert "pixels" in failed[ids["over_cap"]]

    again = derivatives_spark.run(spark, p, log)
    assert again["images"] == 0 and again["derivatives_written"] == 0  # done, failed for good: skipped
    # ... and what it shows is the day, not its own zeros: the UI shows the latest run's figures.
    assert (again["day_images_with_derivatives"], again["day_derivatives"]) == (len(good), 2 * len(good))
    assert (
        again["day_images_failed"] == len(bad)
        and again["day_derivative_bytes"] == summary["derivative_bytes"]
    )
    forced = derivatives_spark.run(
        spark, params(lake, catalog, max_pixels=640 * 480, force=True, run_id="run-2"), log
    )
    assert forced["images"] == len(corpus) and forced["reused"] == 0
    rows = read_day(lake, "derivatives", DT).to_pylist()
    assert len(rows) == 2 * len(corpus) and {r["run_id"] for r in rows} == {"run-2"}

    with pytest.raises(
        derivatives_spark.RequestedImagesFailed, match=f"image_ids.*{ids['corrupt']}: undecodable"
    ):
        derivatives_spark.run(spark, params(lake, catalog, image_ids=(ids["corrupt"],), run_id="run-x"), log)

    # The operator raises the cap and makes that one image again, not the whole day (any case of its id).
    one = params(lake, catalog, max_pixels=641 * 480, image_ids=(ids["over_cap"].lower(),), run_id="run-3")
    redone = derivatives_spark.run(spark, one, log)
    assert redone["images"] == 1 and redone["images_failed"] == 0 and redone["derivatives_written"] == 2
    rows = read_day(lake, "derivatives", DT).to_pylist()
    assert {r["run_id"] for r in rows if r["image_id"] == ids["over_cap"]} == {"run-3"}
    assert len(rows) == 2 * len(corpus) and {r["run_id"] for r in rows} == {"run-2", "run-3", "run-x"}
    item = catalog.get(ids["over_cap"])
    assert "derivatives_error" not in item and set(item["derivatives"]) == {"64", "128"}


def test_a_raw_object_deleted_mid_job_fails_that_image_only(spark, lake):
    ids = seed_images(
        lake,
        {f"img{i}": images.jpeg(320, 240, seed=i) for i in range(6)},
        {f"img{i}": (320, 240) for i in range(6)},
    )
    p = params(lake)
    plan = images_to_derive(lake, DT, p.spec, force=False)
    assert len(plan) == 6
    lake.delete(layout.raw_image_key(DT, ids["img3"]))  # gone after planning, before its task reads it
    rows = (
        spark.sparkContext.parallelize([asdict(i) for i in plan], 3)
        .mapPartitions(partial(derive_partition, p.to_extras()))
        .collect()
    )
    failed = {r["image_id"] for r in rows if r["status"] == "failed"}
    assert failed == {ids["img3"]}
    assert all(r["error"].startswith("missing") for r in rows if r["status"] == "failed")
    assert sum(r["status"] == "written" for r in rows) == 10


def test_gc_removes_exactly_what_is_expired_or_orphaned_and_a_dry_run_removes_nothing(spark, lake, catalog):
    now = datetime.now(UTC)
    expected = seed_gc_lake(lake, now)
    everything = {o.key for z in GC_PREFIXES for o in lake.list(z)}
    time.sleep(1.2)
    p = GcParams(
        lake_url=lake.url,
        retention_days=7,
        grace_hours=1 / 3600,
        dry_run=True,
        catalog_table=catalog.table,
        catalog_endpoint=catalog.endpoint,
    )

    dry = garbage_collection_spark.run(spark, p, log)
    assert {o.key for z in GC_PREFIXES for o in lake.list(z)} == everything
    assert dry["deleted_objects"] == 0 and dry["inventory_file"] is None
    would = {k["key"]: k["reason"] for k in dry["keys"]}
    assert set(would) == everything - expected["stay"]

    real = garbage_collection_spark.run(spark, GcParams(**{**asdict(p), "dry_run": False}), log)
    remaining = {o.key for z in GC_PREFIXES for o in lake.list(z)}
    assert remaining - {real["inventory_file"]} == expected["stay"]
    by_reason = real["by_reason"]
    assert by_reason["expired"]["objects"] == len(expected["expired"])
    assert by_reason["expired_dead_letter"]["objects"] == 1
    assert by_reason["failed_upload"]["objects"] == 1 and by_reason["orphan_derivative"]["objects"] == 1
    assert real["deleted_objects"] == len(everything - expected["stay"])
    assert real["deleted_bytes"] == sum(k["bytes"] for k in dry["keys"])
    inventory = read_day(
        lake, "storage_inventory", layout.parse_dt(real["inventory_file"]).isoformat()
    ).to_pylist()
    assert sum(r["objects"] for r in inventory) == len(expected["stay"])


def test_gc_while_uploads_and_derivative_writes_go_on_deletes_nothing_referenced_or_young(
    spark, lake, catalog
):
    now = datetime.now(UTC)
    expected = seed_gc_lake(lake, now)
    stop, written = threading.Event(), []

    def uploader() -> None:
        """Like the API then the real-time run then the derivatives job: raw, event, derivative."""
        n = 0
        while not stop.is_set():
            moment = datetime.now(UTC)
            image_id = image_id_at(moment, 1000 + n)
            raw = layout.raw_image_key(layout.dt_of(moment), image_id)
            lake.put(raw, b"fresh")
            time.sleep(0.05)
            batch = f"live-0-{n}-{n}"
            write_batch_table(
                lake,
                "upload_events",
                batch,
                [event_row(image_id, moment, batch, n, b"fresh")],
                [layout.dt_of(moment)],
            )
            derivative = layout.derivative_key(256, image_id, "webp")
            lake.put(derivative, b"thumb")
            written.extend(
                [raw, derivative, layout.batch_file_key("upload_events", layout.dt_of(moment), batch)]
            )
            n += 1

    time.sleep(1.2)
    thread = threading.Thread(target=uploader)
    thread.start()
    try:
        time.sleep(0.5)
        result = garbage_collection_spark.run(
            spark,
            GcParams(
                lake_url=lake.url,
                retention_days=7,
                grace_hours=1 / 3600,
                catalog_table=catalog.table,
                catalog_endpoint=catalog.endpoint,
            ),
            log,
        )
    finally:
        stop.set()
        thread.join(10)
    remaining = {o.key for z in GC_PREFIXES for o in lake.list(z)}
    assert written and set(written) <= remaining, "an object written during GC was deleted"
    assert expected["stay"] <= remaining
    assert not (expected["failed_upload"] | expected["orphan"] | expected["expired"]) & remaining
    assert result["references_complete"]


def test_compaction_job_compacts_every_table_of_a_closed_day(spark, lake):
    day = datetime.now(UTC) - timedelta(days=1)
    for b in range(3):
        seed_batch(
            lake, "t", b, 0, [(image_id_at(day, b * 10 + i), day, f"{b}-{i}".encode()) for i in range(4)]
        )
    p = CompactParams(lake_url=lake.url, dt=layout.dt_of(day), target_bytes=1 << 27)
    summary = compaction_spark.run(spark, p, log)
    assert summary["by_table"]["upload_events"] == summary["by_table"]["image_metadata"] == "compacted"
    assert summary["files_before"] == 6 and summary["files_deleted"] == 6 and summary["files_written"] == 2
    assert summary["rows"] == 24 and summary["duplicate_rows_dropped"] == 0
    assert len(read_day(lake, "upload_events", layout.dt_of(day))) == 12
    assert compaction_spark.run(spark, p, log)["tables_compacted"] == 0


def test_a_table_that_cannot_be_compacted_fails_the_job_and_the_others_stay_compacted(spark, lake):
    day, damaged = seed_closed_day_with_a_damaged_file(lake, batches=2)
    p = CompactParams(lake_url=lake.url, dt=layout.dt_of(day), target_bytes=1 << 27)

    with pytest.raises(compaction_spark.CompactionBlocked) as failed:  # by a damaged file: final
        compaction_spark.run(spark, p, log)
    message = str(failed.value)
    assert f"1 of {len(p.tables)} tables not compacted. image_metadata: {damaged}" in message
    assert "upload_events (compacted)" in message and "run the job again" in message
    [events_file] = list(lake.list(layout.day_prefix("upload_events", layout.dt_of(day))))
    assert (
        layout.is_compacted_key(events_file.key)
        and len(read_day(lake, "upload_events", layout.dt_of(day))) == 6
    )
    assert lake.get(damaged) == b"not parquet"  # nothing of the failed table was touched

    lake.delete(damaged)
    again = compaction_spark.run(spark, p, log)
    assert again["by_table"]["upload_events"] == "unchanged"
    assert again["by_table"]["image_metadata"] == "compacted"


def test_a_catalog_outage_fails_the_step_after_the_work_and_the_next_run_completes_the_catalog(
    spark, lake, catalog
):
    ids = seed_images(
        lake,
        {f"img{i}": images.jpeg(320, 240, seed=i) for i in range(3)},
        {f"img{i}": (320, 240) for i in range(3)},
    )
    down = params(lake, catalog, catalog_endpoint=f"http://{dead_endpoint()}")
    with pytest.raises(derivatives_spark.DerivativesIncomplete, match="catalog was unavailable for 3 image"):
        derivatives_spark.run(spark, down, log)  # failed, so Dagster's step retry takes it again
    assert len(list(lake.list("derivatives"))) == 6  # the objects are written all the same
    assert all(catalog.get(i) is None for i in ids.values())

    back = derivatives_spark.run(spark, params(lake, catalog, run_id="run-2"), log)
    assert back["images"] == 3 and back["reused"] == 6 and back["images_failed"] == 0
    assert all(set(catalog.get(i)["derivatives"]) == {"64", "128"} for i in ids.values())
