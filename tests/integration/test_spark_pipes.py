"""The batch assets end to end: Dagster -> Pipes -> a real ``spark-submit`` -> the lake, the catalog, metadata."""

import threading
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import httpx
import psutil
import pytest

from assets.derivatives import derivatives
from assets.maintenance import garbage_collection, lake_compaction, prune_dagster_records
from imagelake.api.application import create_app
from imagelake.batch.day_derivatives import read_day
from imagelake.batch.garbage_collection import GC_PREFIXES
from imagelake.lake import layout
from imagelake.lake.store import Lake
from imagelake.lake.tables import write_batch_table
from imagelake.settings import spark_job_file
from orchestration.jobs import garbage_collection_dry_run_job
from orchestration.resources import CatalogResource, KafkaResource, LakeResource
from orchestration.spark import SparkResource
from tests.integration.test_realtime import run_batch, tick
from tests.support import sample_images as images
from tests.support.lakerows import (
    image_id_at,
    metadata_row,
    seed_batch,
    seed_closed_day_with_a_damaged_file,
    seed_gc_lake,
)
from tests.support.servers import serve

pytestmark = pytest.mark.integration


def materialize(assets, instance, resources, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(assets, instance=instance, resources=resources, raise_on_error=False, **kwargs)


def metadata_of(result: dg.ExecuteInProcessResult, node: str) -> dict:
    [mat] = result.asset_materializations_for_node(node)
    return {k: v.value for k, v in mat.metadata.items()}


def test_uploads_through_the_api_get_every_derivative_and_the_api_says_why_one_could_not_be_made(
    imagelake_env, kafka_bootstrap, topic, catalog, spark_local
):
    settings = imagelake_env(
        IMAGELAKE_KAFKA_BOOTSTRAP=kafka_bootstrap,
        IMAGELAKE_UPLOADS_TOPIC=topic,
        IMAGELAKE_DERIVATIVE_FORMATS="webp,jpeg",
    )
    lake = Lake.from_settings(settings)
    kafka = KafkaResource(bootstrap=kafka_bootstrap, topic=topic)
    uploads = [
        images.jpeg(1600, 1200, seed=1),
        images.png(700, 500, seed=2),
        images.jpeg(200, 150, seed=3),
        images.jpeg(300, 200, seed=4),  # its raw object goes before the derivatives run
    ]
    headers = {"X-API-Key": "dev-key"}
    with (
        serve(create_app(settings, lake=lake, catalog=catalog)) as url,
        httpx.Client(base_url=url, timeout=30, headers=headers) as client,
    ):
        *ids, gone = [
            client.post("/v1/images", files={"file": ("i", data)}).json()["image_id"] for data in uploads
        ]
        with dg.instance_for_test() as instance:
            requests, _ = tick(instance, kafka, None)
            for request in requests.run_requests:
                assert run_batch(instance, request.partition_key, lake, kafka, catalog).success
            [raw_key] = [o.key for o in lake.list("raw/images") if gone in o.key]
            lake.delete(raw_key)
            result = materialize(
                [derivatives],
                instance,
                {
                    "spark": spark_local,
                    "lake": LakeResource(url=lake.url),
                    "catalog": CatalogResource(table=catalog.table, endpoint=catalog.endpoint),
                },
                partition_key=layout.parse_dt(raw_key).isoformat(),  # the upload day, whatever the clock says
            )
            assert result.success
        answers = {image_id: client.get(f"/v1/images/{image_id}").json() for image_id in [*ids, gone]}
    meta = metadata_of(result, "derivatives")
    assert meta["images"] == 4 and meta["images_failed"] == 1 and meta["derivatives_written"] == 3 * 3 * 2
    assert meta["by_size"] == {"256": 6, "512": 6, "1024": 6} and meta["derivative_bytes"] > 0
    for image_id in ids:
        entry = answers[image_id]["derivatives"]
        assert answers[image_id]["derivatives_error"] is None and set(entry) == {"256", "512", "1024"}
        for size, keys in entry.items():
            assert keys == {
                "webp": layout.derivative_key(int(size), image_id, "webp"),
                "jpeg": layout.derivative_key(int(size), image_id, "jpg"),
            }
            assert all(lake.exists(k) for k in keys.values())
    assert answers[gone]["status"] == "processed" and answers[gone]["derivatives"] == {}
    assert answers[gone]["derivatives_error"].startswith("missing: the raw object was deleted")


def job_processes(job: str) -> list[psutil.Process]:
    """The spark-submit of one job (its JVM, Python driver and workers), not the tests' shared Spark."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if spark_job_file(job) in " ".join(child.cmdline()):
                found += [child, *child.children(recursive=True)]
        except psutil.Error:
            continue
    return found


def test_a_job_killed_half_way_is_retried_and_leaves_every_derivative_exactly_once(
    imagelake_env, spark_local
):
    settings = imagelake_env()
    lake = Lake.from_settings(settings)
    now = datetime.now(UTC)
    uploads = [(image_id_at(now, i), now, images.jpeg(2400, 1800, seed=i)) for i in range(24)]
    batch = seed_batch(lake, "t", 0, 0, uploads)
    rows = [metadata_row(i, now, batch, width=2400, height=1800, data=d) for i, _, d in uploads]
    write_batch_table(lake, "image_metadata", batch, rows, [layout.dt_of(now)] * len(rows))
    single = SparkResource(mode="local", spark_master="local[1]", spark_conf={"spark.driver.memory": "1g"})
    resources = {"spark": single, "lake": LakeResource(url=lake.url), "catalog": CatalogResource(table="")}
    day = layout.dt_of(now)

    with dg.instance_for_test() as instance:
        outcome = {}
        runner = threading.Thread(
            target=lambda: outcome.update(
                result=materialize([derivatives], instance, resources, partition_key=day)
            )
        )
        runner.start()
        deadline = time.monotonic() + 240
        while len(list(lake.list("derivatives"))) < 9:
            assert time.monotonic() < deadline and runner.is_alive(), "the job never got going"
            time.sleep(0.05)
        killed = job_processes("derivatives")
        assert killed, "no spark-submit of the derivatives job was running"
        for process in killed:
            process.kill()
        # Looked at before the step's retry starts (10 s later, orchestration/retries.py):
        partial_objects = {o.key for o in lake.list("derivatives")}
        assert 9 <= len(partial_objects) < 72, "the kill came too late to test a half-done job"
        assert read_day(lake, "derivatives", day).num_rows == 0  # no manifest: the attempt did not finish

        runner.join(300)  # the step runs again in the same run and finishes the day
        again = outcome["result"]
        assert again.success
        assert [e for e in again.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    meta = metadata_of(again, "derivatives")
    assert meta["images"] == 24 and meta["images_failed"] == 0 and meta["reused"] > 0
    objects = {o.key for o in lake.list("derivatives")}
    expected = {layout.derivative_key(s, i, "webp") for i, _, _ in uploads for s in (256, 512, 1024)}
    assert objects == expected  # each exactly once, nothing else
    manifest = read_day(lake, "derivatives", day).to_pylist()
    assert sorted(r["key"] for r in manifest) == sorted(expected)  # no derivative without its manifest row
    stray = [p for p in (lake.root / "derivatives").rglob("*") if p.is_file() and p.suffix != ".webp"]
    assert stray == [], f"a killed write left files behind: {stray}"


def gc_resources(spark, lake, catalog, kafka_bootstrap: str, topic: str) -> dict:
    """Garbage collection's resources: the catalog it asks about failed uploads, and an upload
    topic with nothing on it (no backlog holds failed uploads)."""
    return {
        "spark": spark,
        "lake": LakeResource(url=lake.url),
        "catalog": CatalogResource(table=catalog.table, endpoint=catalog.endpoint),
        "kafka": KafkaResource(bootstrap=kafka_bootstrap, topic=topic),
    }


def test_garbage_collection_asset_deletes_what_it_should_and_reports_it(
    imagelake_env, spark_local, catalog, kafka_bootstrap, topic
):
    settings = imagelake_env(IMAGELAKE_GC_GRACE_HOURS=str(1 / 3600), IMAGELAKE_RETENTION_DAYS="7")
    lake = Lake.from_settings(settings)
    expected = seed_gc_lake(lake, datetime.now(UTC))
    doomed = set().union(*(keys for reason, keys in expected.items() if reason != "stay"))
    time.sleep(1.2)
    with dg.instance_for_test() as instance:
        result = materialize(
            [garbage_collection], instance, gc_resources(spark_local, lake, catalog, kafka_bootstrap, topic)
        )
        assert result.success
    meta = metadata_of(result, "garbage_collection")
    remaining = {o.key for z in GC_PREFIXES for o in lake.list(z)}
    assert remaining - {meta["inventory_file"]} == expected["stay"]
    assert meta["deleted_objects"] == len(doomed) and meta["deleted_bytes"] > 0
    assert meta["by_reason"]["failed_upload"] == {"objects": 1, "bytes": len(b"no event")}
    assert meta["by_reason"]["orphan_derivative"] == {"objects": 1, "bytes": len(b"source gone")}
    assert meta["dagster_runs_pruned"] == 0  # nothing in this instance is older than the retention


def test_a_garbage_collection_dry_run_deletes_nothing_and_records_no_materialization(
    imagelake_env, spark_local, catalog, kafka_bootstrap, topic
):
    settings = imagelake_env(IMAGELAKE_GC_GRACE_HOURS=str(1 / 3600), IMAGELAKE_RETENTION_DAYS="7")
    lake = Lake.from_settings(settings)
    expected = seed_gc_lake(lake, datetime.now(UTC))
    doomed = set().union(*(keys for reason, keys in expected.items() if reason != "stay"))
    before = {o.key for z in GC_PREFIXES for o in lake.list(z)}
    time.sleep(1.2)
    with dg.instance_for_test() as instance:
        result = garbage_collection_dry_run_job.execute_in_process(
            instance=instance, resources=gc_resources(spark_local, lake, catalog, kafka_bootstrap, topic)
        )
        assert result.success
        assert instance.get_latest_materialization_event(dg.AssetKey("storage_inventory")) is None
    assert result.get_asset_materialization_events() == []
    assert {o.key for z in GC_PREFIXES for o in lake.list(z)} == before  # nothing deleted
    [output] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_OUTPUT]
    meta = {k: v.value for k, v in output.event_specific_data.metadata.items()}
    assert meta["dry_run"] is True and meta["deleted_objects"] == 0 and meta["files"] == []
    assert meta["would_delete_objects"] == len(doomed) and meta["would_delete_bytes"] > 0
    assert {k["key"] for k in meta["keys"]} == doomed
    assert meta["by_reason"]["failed_upload"] == {"objects": 1, "bytes": len(b"no event")}
    assert meta["dagster_runs_to_prune"] == 0


def test_compaction_asset_says_which_tables_a_damaged_file_stopped_then_compacts_the_day(
    imagelake_env, spark_local
):
    settings = imagelake_env()
    lake = Lake.from_settings(settings)
    day, damaged = seed_closed_day_with_a_damaged_file(lake, batches=3)
    resources = {"spark": spark_local, "lake": LakeResource(url=lake.url)}
    with dg.instance_for_test() as instance:
        failed = materialize([lake_compaction], instance, resources, partition_key=layout.dt_of(day))
        assert not failed.success
        [failure] = [e for e in failed.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        told = str(failure.event_specific_data.error)
        retried = [e for e in failed.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
        assert not retried, "a damaged file cannot be cured by retrying the step"
        assert damaged in told and "upload_events (compacted)" in told and "run the job again" in told
        assert [layout.is_compacted_key(o.key) for o in lake.list("raw/events")] == [True]

        lake.delete(damaged)
        result = materialize([lake_compaction], instance, resources, partition_key=layout.dt_of(day))
        assert result.success
    meta = metadata_of(result, "lake_compaction")
    assert (
        meta["by_table"]["upload_events"] == "unchanged" and meta["by_table"]["image_metadata"] == "compacted"
    )
    assert meta["tables_compacted"] == 1 and meta["files_deleted"] == 3 and meta["rows"] == 9


def test_retention_prunes_dagster_runs_and_upload_batches_partitions_older_than_the_cutoff():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("upload_batches", ["t-0-0-1", "t-0-2-3", "t-0-4-5"])

        @dg.asset(partitions_def=dg.DynamicPartitionsDefinition(name="upload_batches"))
        def batch_step() -> None:
            return None

        for key in ("t-0-0-1", "t-0-2-3"):
            assert dg.materialize([batch_step], instance=instance, partition_key=key).success
        cutoff = datetime.now(UTC) + timedelta(seconds=1)  # everything so far counts as old
        dry = prune_dagster_records(instance, cutoff, dry_run=True)
        assert dry == {"runs": 2, "partitions": ["t-0-0-1", "t-0-2-3"]}
        assert len(instance.get_runs()) == 2
        pruned = prune_dagster_records(instance, cutoff, dry_run=False)
        assert pruned == dry
        assert instance.get_runs() == []
        # A partition no run has touched yet (the sensor just added it) stays.
        assert instance.get_dynamic_partitions("upload_batches") == ["t-0-4-5"]
