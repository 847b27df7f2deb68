"""The batch jobs on a real Spark cluster, with the lake and the Pipes bucket on S3 (moto's server).

A standalone master and two workers of one core each, each its own JVM (infra/local/spark_cluster.py),
run the jobs as IMAGELAKE_SPARK_MODE=cluster does (orchestration/spark.py): spark-submit in client
mode through Dagster Pipes over S3, every executor on the environment archive that make spark-package
built from the lock. Each job's own report (its materialization) says which executors ran its tasks
and with which Python; the tests read it.
"""

import io
import shutil
import tarfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import dagster as dg
import pytest
from PIL import Image

from assets.derivatives import derivatives
from assets.maintenance import garbage_collection, lake_compaction
from imagelake.batch.day_derivatives import DeriveParams, read_day
from imagelake.batch.garbage_collection import GC_PREFIXES
from imagelake.batch.packed_env import MANIFEST_NAME, PackedEnv
from imagelake.images.render import target_dimensions
from imagelake.lake import layout
from imagelake.lake.store import Lake
from imagelake.lake.tables import write_batch_table
from imagelake.settings import PROJECT_ROOT, SPARK_PACKAGE_NAME
from infra.local.spark_cluster import SparkCluster, remove, start_spark_cluster
from infra.local.stack import free_port
from infra.spark_package import built_manifest, ensure_package
from orchestration.resources import CatalogResource, KafkaResource, LakeResource
from orchestration.spark import SparkResource
from tests.support import sample_images as images
from tests.support.lakerows import event_row, image_id_at, metadata_row, seed_batch, seed_gc_lake
from tests.support.servers import OutageRelay

pytestmark = pytest.mark.integration

#: What each node has besides Java and Spark: credentials for S3 (moto) and DynamoDB Local.
NODE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}

#: JVMs that live for one short job on a shared 2-core machine: start quickly, JIT little.
SHORT_JVM = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1"
#: The operator's conf for this cluster: the driver on loopback like the workers, small executors,
#: and tasks held until both executors (2 cores) have registered, so that every job uses both workers.
CLUSTER_CONF = {
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.driver.memory": "1g",
    "spark.executor.memory": "512m",
    "spark.driver.extraJavaOptions": SHORT_JVM,
    "spark.executor.extraJavaOptions": SHORT_JVM,
    "spark.cores.max": "2",
    "spark.scheduler.minRegisteredResourcesRatio": "1.0",
    "spark.scheduler.maxRegisteredResourcesWaitingTime": "120s",
}
SIZES = (256, 512, 1024)


@pytest.fixture(scope="module")
def package() -> Path:
    """make spark-package's folder, built from the lock once (again only if the lock or sources changed)."""
    return ensure_package()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    started = start_spark_cluster(
        tmp_path_factory.mktemp("spark-cluster"), workers=2, cores=1, memory="1g", env=NODE_CREDENTIALS
    )
    try:
        yield started
    finally:
        remove(started)


@pytest.fixture
def workers(cluster: SparkCluster) -> SparkCluster:
    """The cluster with both its workers up (a test before may have killed one)."""
    for index, worker in enumerate(cluster.workers):
        if worker is None:
            cluster.start_worker(index)
    cluster.wait_for_workers(2)
    return cluster


@pytest.fixture
def buckets(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A lake bucket and an ops bucket (Pipes' context and messages) of this test's own, on moto."""
    for name, value in NODE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    stamp = time.time_ns()
    lake_bucket, ops_bucket = f"lake-{stamp}", f"ops-{stamp}"
    for bucket in (lake_bucket, ops_bucket):
        s3.create_bucket(Bucket=bucket)
    return lake_bucket, ops_bucket


def on_cluster(cluster: SparkCluster | str, package: Path, endpoint: str, ops_bucket: str) -> SparkResource:
    master = cluster if isinstance(cluster, str) else cluster.master_url
    return SparkResource(
        mode="cluster",
        spark_master=master,
        spark_code_uri=str(package),
        pipes_bucket=ops_bucket,
        aws_endpoint=endpoint,
        spark_conf=CLUSTER_CONF,
    )


def seed_uploads(lake: Lake, moment: datetime, pictures: list[bytes], topic: str) -> list[str]:
    """Images in the raw zone with their batch's events and processed metadata, as a real-time run
    leaves them; returns their ids."""
    ids = [image_id_at(moment, n) for n in range(len(pictures))]
    batch = f"{topic}-0-0-{len(pictures) - 1}"
    events, rows = [], []
    for offset, (image_id, data) in enumerate(zip(ids, pictures, strict=True)):
        lake.put(layout.raw_image_key(layout.dt_of(moment), image_id), data)
        events.append(event_row(image_id, moment, batch, offset, data))
        with Image.open(io.BytesIO(data)) as picture:
            width, height = picture.size
        rows.append(metadata_row(image_id, moment, batch, width=width, height=height, data=data))
    days = [layout.dt_of(moment)] * len(ids)
    write_batch_table(lake, "upload_events", batch, events, days)
    write_batch_table(lake, layout.IMAGE_METADATA, batch, rows, days)
    return ids


def materialize(assets, instance, resources, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(assets, instance=instance, resources=resources, raise_on_error=False, **kwargs)


def report(result: dg.ExecuteInProcessResult, node: str) -> dict:
    """The job's own report: the materialization metadata it sent through Pipes."""
    [materialization] = result.asset_materializations_for_node(node)
    return {key: value.value for key, value in materialization.metadata.items()}


def step_events(result: dg.ExecuteInProcessResult, kind: dg.DagsterEventType) -> list[dg.DagsterEvent]:
    return [e for e in result.all_events if e.event_type == kind]


def assert_ran_on_both_workers_from_the_package(job: dict, cluster: SparkCluster, package: Path) -> None:
    """Tasks ran on two executors, one on each worker, each with the Python of the environment
    archive as that executor unpacked it, importing nothing from this checkout or its venv."""
    manifest = built_manifest(package)
    assert manifest is not None
    assert len(job["executor_ids"]) == 2, job["executors"]
    workers_used = set()
    for python in job["executor_pythons"]:
        prefix = Path(python["prefix"])
        # <worker dir>/<application id>/<executor id>/environment
        [worker] = [i for i in (0, 1) if prefix.is_relative_to(cluster.worker_dir(i))]
        workers_used.add(worker)
        assert prefix.name == "environment" and prefix.parent.name in job["executor_ids"]
        assert Path(python["executable"]).is_relative_to(prefix)
        assert not prefix.is_relative_to(PROJECT_ROOT)  # neither the checkout nor its .venv
        assert python["package"] == manifest.digest and python["python"] == manifest.python
        assert python["imported_from_outside"] == []
    assert workers_used == {0, 1}


def derivative_keys(ids: list[str]) -> set[str]:
    return {layout.derivative_key(size, image_id, "webp") for image_id in ids for size in SIZES}


def assert_every_derivative_exactly_once(lake: Lake, ids: list[str], dims: tuple[int, int]) -> None:
    """Each derivative object is there, whole, once in the day's manifest; nothing else is."""
    expected = derivative_keys(ids)
    assert {o.key for o in lake.list(layout.DERIVATIVES)} == expected
    day = layout.dt_of(datetime.now(UTC))
    manifest = read_day(lake, "derivatives", day).to_pylist()
    assert sorted(r["key"] for r in manifest) == sorted(expected)
    assert all(r["status"] == "written" for r in manifest)
    for key in expected:
        size = int(key.split("/")[1])
        with Image.open(io.BytesIO(lake.get(key))) as made:  # decodes: no half-written object
            made.load()
            assert made.size == target_dimensions(*dims, size)


def sorted_rows(lake: Lake, table: str, day: str) -> list[tuple]:
    return sorted(tuple(sorted(row.items())) for row in read_day(lake, table, day).to_pylist())


def test_an_archive_missing_or_built_for_another_python_fails_before_any_task_runs(
    workers, package, buckets, moto_endpoint, imagelake_env, tmp_path
):
    imagelake_env()
    lake_bucket, ops_bucket = buckets
    lake = Lake(f"s3://{lake_bucket}/imagelake", moto_endpoint)
    seed_uploads(lake, datetime.now(UTC), [images.jpeg(320, 240, seed=1)], "p")
    real = built_manifest(package)
    assert real is not None
    missing, other = tmp_path / "missing", tmp_path / "other-python"
    for folder in (missing, other):
        shutil.copytree(package / "spark_jobs", folder / "spark_jobs")
    # What make spark-package writes on a machine with Python 3.12: its manifest, its pyvenv.cfg, its
    # interpreter's name (the libraries, which change nothing here, left out).
    elsewhere = PackedEnv(python="3.12.8", platform=real.platform, digest=real.digest)
    with tarfile.open(other / SPARK_PACKAGE_NAME, "w:gz") as tar:
        for name, text in ((MANIFEST_NAME, elsewhere.to_json()), ("pyvenv.cfg", "version = 3.12.8\n")):
            member = tarfile.TarInfo(name)
            member.size = len(text.encode())
            tar.addfile(member, io.BytesIO(text.encode()))
        link = tarfile.TarInfo("bin/python")
        link.type, link.linkname = tarfile.SYMTYPE, "python3.12"
        tar.addfile(link)
    applications = {a["id"] for a in workers.state()["completedapps"] + workers.state()["activeapps"]}

    for folder, told in ((missing, "run `make spark-package`"), (other, "built for Python 3.12.8")):
        spark = on_cluster(workers, folder, moto_endpoint, ops_bucket)
        resources = {
            "spark": spark,
            "lake": LakeResource(url=lake.url, s3_endpoint=moto_endpoint),
            "catalog": CatalogResource(table=""),
        }
        with dg.instance_for_test() as instance:
            result = materialize(
                [derivatives], instance, resources, partition_key=layout.dt_of(datetime.now(UTC))
            )
        assert not result.success
        assert not step_events(
            result, dg.DagsterEventType.STEP_UP_FOR_RETRY
        )  # a rebuild, not a retry, cures it
        [failure] = step_events(result, dg.DagsterEventType.STEP_FAILURE)
        said = failure.step_failure_data.user_failure_data.description
        assert str(folder / SPARK_PACKAGE_NAME) in said and told in said, said
    now = {a["id"] for a in workers.state()["completedapps"] + workers.state()["activeapps"]}
    assert now == applications  # no application reached the master: no executor, no task
    assert not list(lake.list(layout.DERIVATIVES)) and not list(lake.list("curated/derivatives"))


def test_a_master_down_at_submit_fails_at_once_naming_it_and_writes_nothing(
    package, buckets, moto_endpoint, imagelake_env
):
    imagelake_env()
    lake_bucket, ops_bucket = buckets
    lake = Lake(f"s3://{lake_bucket}/imagelake", moto_endpoint)
    seed_uploads(lake, datetime.now(UTC), [images.jpeg(320, 240, seed=2)], "m")
    down = f"spark://127.0.0.1:{free_port()}"
    params = DeriveParams(
        lake_url=lake.url,
        s3_endpoint=moto_endpoint,
        dt=layout.dt_of(datetime.now(UTC)),
        sizes=SIZES,
        formats=("webp",),
        max_pixels=64_000_000,
        run_id="r",
    )

    # The derivatives asset's own call, retried at once (the asset waits 10 s, then 20 s).
    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=1))
    def derive_now(context: dg.AssetExecutionContext, spark: SparkResource) -> dg.MaterializeResult:
        return spark.run(context, "derivatives", params.to_extras()).get_materialize_result()

    with dg.instance_for_test() as instance:
        result = materialize(
            [derive_now], instance, {"spark": on_cluster(down, package, moto_endpoint, ops_bucket)}
        )
    assert not result.success
    assert step_events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)  # a master may come back: retried
    [failure] = step_events(result, dg.DagsterEventType.STEP_FAILURE)
    said = failure.step_failure_data.user_failure_data.description
    assert f"the Spark master {down} is not reachable" in said and "nothing was submitted" in said
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    assert s3.list_objects_v2(Bucket=ops_bucket).get("KeyCount") == 0  # not even Pipes' context
    assert not list(lake.list(layout.DERIVATIVES)) and not list(lake.list("curated/derivatives"))


def test_derivatives_compaction_and_garbage_collection_run_on_both_workers_from_the_packed_environment(
    workers, package, buckets, moto_endpoint, imagelake_env, catalog, kafka_bootstrap, topic
):
    imagelake_env(IMAGELAKE_GC_GRACE_HOURS=str(1 / 3600), IMAGELAKE_RETENTION_DAYS="7")
    lake_bucket, ops_bucket = buckets
    lake = Lake(f"s3://{lake_bucket}/imagelake", moto_endpoint)
    now = datetime.now(UTC)
    today = seed_uploads(lake, now, [images.jpeg(640, 480, seed=i) for i in range(8)], "r")
    closed = now - timedelta(days=1)
    for b in range(3):
        uploads = [(image_id_at(closed, 100 + 10 * b + i), closed, f"c{b}-{i}".encode()) for i in range(4)]
        seed_batch(lake, "c", b, 0, uploads)
    closed_day = layout.dt_of(closed)
    before = {t: sorted_rows(lake, t, closed_day) for t in ("upload_events", layout.IMAGE_METADATA)}
    expected_gc = seed_gc_lake(lake, now)
    resources = {
        "spark": on_cluster(workers, package, moto_endpoint, ops_bucket),
        "lake": LakeResource(url=lake.url, s3_endpoint=moto_endpoint),
        "catalog": CatalogResource(table=catalog.table, endpoint=catalog.endpoint),
        "kafka": KafkaResource(bootstrap=kafka_bootstrap, topic=topic),
    }
    with dg.instance_for_test() as instance:
        made = materialize([derivatives], instance, resources, partition_key=layout.dt_of(now))
        assert made.success
        compacted = materialize([lake_compaction], instance, resources, partition_key=closed_day)
        assert compacted.success
        listed = {o.key for zone in GC_PREFIXES for o in lake.list(zone)}
        collected = materialize([garbage_collection], instance, resources)
        assert collected.success

    job = report(made, "derivatives")
    assert_ran_on_both_workers_from_the_package(job, workers, package)
    assert job["images"] == 8 and job["derivatives_written"] == 24 and job["images_failed"] == 0
    made_today = {o.key for o in lake.list(layout.DERIVATIVES) if o.key.rsplit("/", 1)[1][:26] in today}
    assert made_today == derivative_keys(today)
    manifest = read_day(lake, "derivatives", layout.dt_of(now)).to_pylist()
    assert sorted(r["key"] for r in manifest) == sorted(derivative_keys(today))  # each exactly once
    for image_id in today:
        assert catalog.get(image_id)["derivatives"] == {
            str(size): {"webp": layout.derivative_key(size, image_id, "webp")} for size in SIZES
        }

    job = report(compacted, "lake_compaction")
    assert_ran_on_both_workers_from_the_package(job, workers, package)
    assert job["by_table"]["upload_events"] == job["by_table"][layout.IMAGE_METADATA] == "compacted"
    assert job["files_deleted"] == 6 and job["rows"] == 24 and job["duplicate_rows_dropped"] == 0
    assert {t: sorted_rows(lake, t, closed_day) for t in before} == before  # the same rows, compacted
    for table in before:
        [file] = lake.list(layout.day_prefix(table, closed_day))
        assert layout.is_compacted_key(file.key)

    job = report(collected, "garbage_collection")
    assert_ran_on_both_workers_from_the_package(job, workers, package)
    doomed = set().union(*(keys for reason, keys in expected_gc.items() if reason != "stay"))
    remaining = {o.key for zone in GC_PREFIXES for o in lake.list(zone)}
    assert remaining == (listed - doomed) | {job["inventory_file"]}  # nothing referenced went
    assert {k["key"] for k in job["keys"]} == doomed
    assert job["by_reason"]["expired"]["objects"] == len(expected_gc["expired"])
    assert (
        job["by_reason"]["failed_upload"]["objects"] == job["by_reason"]["orphan_derivative"]["objects"] == 1
    )


def run_in_background(assets, instance, resources, **kwargs) -> tuple[threading.Thread, dict]:
    outcome: dict = {}
    runner = threading.Thread(
        target=lambda: outcome.update(result=materialize(assets, instance, resources, **kwargs))
    )
    runner.start()
    return runner, outcome


def wait_for_objects(lake: Lake, count: int, runner: threading.Thread, timeout_s: float = 300) -> None:
    """Until the job has written ``count`` derivative objects (it is rendering: mid-job)."""
    deadline = time.monotonic() + timeout_s
    while len(list(lake.list(layout.DERIVATIVES))) < count:
        assert runner.is_alive() and time.monotonic() < deadline, "the job never got to rendering"
        time.sleep(0.2)


def test_s3_out_of_reach_for_seconds_mid_job_is_ridden_out_and_every_derivative_is_made_once(
    workers, package, buckets, moto_endpoint, imagelake_env
):
    imagelake_env()
    lake_bucket, ops_bucket = buckets
    lake = Lake(f"s3://{lake_bucket}/imagelake", moto_endpoint)
    ids = seed_uploads(lake, datetime.now(UTC), [images.jpeg(1600, 1200, seed=i) for i in range(24)], "o")
    relay = OutageRelay(moto_endpoint.removeprefix("http://"))  # the lake and the Pipes bucket, for the job
    resources = {
        "spark": on_cluster(workers, package, relay.endpoint, ops_bucket),
        "lake": LakeResource(url=lake.url, s3_endpoint=relay.endpoint),
        "catalog": CatalogResource(table=""),
    }
    try:
        with dg.instance_for_test() as instance:
            runner, outcome = run_in_background(
                [derivatives], instance, resources, partition_key=layout.dt_of(datetime.now(UTC))
            )
            wait_for_objects(lake, 3, runner)
            relay.outage(5)
            assert runner.is_alive(), "the job ended before S3 came back: no outage mid-job"
            runner.join(600)
    finally:
        relay.close()
    result = outcome["result"]
    assert relay.refused > 0  # the job's clients met the outage
    assert result.success  # S3's calls were retried (or the step was, and its re-run completed)
    job = report(result, "derivatives")
    assert job["images_failed"] == 0 and job["day_derivatives"] == 3 * len(ids)
    assert_every_derivative_exactly_once(lake, ids, (1600, 1200))


def test_a_worker_killed_mid_job_has_its_tasks_rescheduled_and_every_derivative_is_made_once(
    workers, package, buckets, moto_endpoint, imagelake_env
):
    imagelake_env()
    lake_bucket, ops_bucket = buckets
    lake = Lake(f"s3://{lake_bucket}/imagelake", moto_endpoint)
    ids = seed_uploads(lake, datetime.now(UTC), [images.jpeg(2400, 1800, seed=i) for i in range(32)], "k")
    resources = {
        "spark": on_cluster(workers, package, moto_endpoint, ops_bucket),
        "lake": LakeResource(url=lake.url, s3_endpoint=moto_endpoint),
        "catalog": CatalogResource(table=""),
    }
    with dg.instance_for_test() as instance:
        runner, outcome = run_in_background(
            [derivatives], instance, resources, partition_key=layout.dt_of(datetime.now(UTC))
        )
        wait_for_objects(lake, 3, runner)
        workers.kill_worker(1)  # the worker, its executor and that executor's Python workers
        runner.join(600)
    result = outcome["result"]
    assert result.success
    assert not step_events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)  # Spark rescheduled, in the job
    job = report(result, "derivatives")
    [lost] = [e["id"] for e in job["executors"] if not e["active"]]
    [survivor] = [e for e in job["executors"] if e["active"]]
    application = Path(job["executor_pythons"][0]["prefix"]).parents[1].name
    assert (workers.worker_dir(1) / application / lost).is_dir()  # the lost one is the killed worker's
    assert job["failed_task_attempts"] >= 1  # the task its executor was running when the worker died ...
    assert survivor["completed_tasks"] > 0  # ... ran again on the other
    assert job["images_failed"] == 0 and job["day_derivatives"] == 3 * len(ids)
    assert_every_derivative_exactly_once(lake, ids, (2400, 1800))
