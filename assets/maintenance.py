"""Keeping the lake tidy: compaction of closed days, garbage collection and 7-day retention.

Both run Spark jobs through the ``spark`` resource and share the
``lake_maintenance`` pool with the derivatives, so they never overlap.
Retention also prunes Dagster's own records: the ``upload_batches``
partitions and the runs older than the retention period.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from assets.curated import IMAGE_METADATA
from assets.derivatives import derivatives
from assets.partitions import UPLOAD_BATCHES, checked_upload_day, upload_days
from assets.raw import raw_images, upload_events
from imagelake.batch.compaction import CompactParams, is_open_day
from imagelake.batch.garbage_collection import GcParams
from imagelake.settings import get_settings
from orchestration.backlog import kafka_lag, realtime_backlog
from orchestration.resources import CatalogResource, KafkaResource, LakeResource
from orchestration.retries import STEP_RETRY
from orchestration.spark import SparkResource

_ALL_BATCHES = dg.AllPartitionMapping()
_FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
_PARTITION_TAG = "dagster/partition"


@dg.asset(
    partitions_def=upload_days,
    retry_policy=STEP_RETRY,
    deps=[
        dg.AssetDep(upload_events, partition_mapping=_ALL_BATCHES),
        dg.AssetDep(IMAGE_METADATA, partition_mapping=_ALL_BATCHES),
        derivatives,
    ],
    group_name="maintenance",
    kinds={"spark", "parquet"},
    pool="lake_maintenance",
    description=(
        "Rewrites the batch files of a closed upload date (raw/events, raw/dead_letters, curated/*) "
        "into one verified file per table (a few of ~128 MB for big days), then deletes the small files. "
        "Readers following the exactly-once rule (imagelake/lake/layout.py) never see a row twice or miss one."
    ),
)
def lake_compaction(
    context: dg.AssetExecutionContext, spark: SparkResource, lake: LakeResource
) -> dg.MaterializeResult:
    day = checked_upload_day(context)
    if is_open_day(day, datetime.now(UTC).date()):
        # Uploads still land on this day: there is nothing to compact yet, and saying "materialized"
        # would mark the day done in the partition bar.
        raise dg.Failure(
            description=(
                f"{day} is still open (today, UTC): compaction takes closed days only. The compaction "
                "schedule compacts it at 00:30 UTC tomorrow; until then its batch files are read as they are."
            ),
            allow_retries=False,
        )
    params = CompactParams(
        **lake.location(),
        dt=day,
        target_bytes=get_settings().compaction_target_bytes,
    )
    return spark.run(context, "compaction", params.to_extras()).get_materialize_result()


def prune_dagster_records(instance: dg.DagsterInstance, cutoff: datetime, dry_run: bool) -> dict:
    """Delete finished runs created before ``cutoff`` and the ``upload_batches`` partitions only they ran."""
    old_runs: list[dg.RunRecord] = []
    cursor = None
    while True:
        page = instance.get_run_records(
            filters=dg.RunsFilter(created_before=cutoff, statuses=_FINISHED), limit=500, cursor=cursor
        )
        if not page:
            break
        old_runs += page
        cursor = page[-1].dagster_run.run_id
    recent = instance.get_run_records(filters=dg.RunsFilter(created_after=cutoff))
    keep = {r.dagster_run.tags.get(_PARTITION_TAG) for r in recent}
    batches = set(instance.get_dynamic_partitions(UPLOAD_BATCHES))
    ran_before = {r.dagster_run.tags.get(_PARTITION_TAG) for r in old_runs}
    stale = sorted(batches & ran_before - keep)
    if not dry_run:
        for key in stale:
            instance.delete_dynamic_partition(UPLOAD_BATCHES, key)
        for record in old_runs:
            instance.delete_run(record.dagster_run.run_id)
    return {"runs": len(old_runs), "partitions": stale}


@dg.multi_asset(
    name="garbage_collection",
    specs=[
        dg.AssetSpec(
            "storage_inventory",
            deps=[raw_images, upload_events, IMAGE_METADATA, derivatives, lake_compaction],
            group_name="maintenance",
            kinds={"spark", "parquet"},
            description=(
                "Garbage collection and retention over one snapshot of the lake: deletes everything older "
                "than the retention period (IMAGELAKE_RETENTION_DAYS), raw images of failed uploads (no event "
                "announced them and the catalog holds no accepted upload; none while the real-time backlog "
                "is not empty) and derivatives whose source is gone (both after a grace period), and expired "
                "dead letters; "
                "prunes Dagster's runs and upload_batches partitions older than the retention period; "
                "writes what remains, per zone/prefix/date, to `curated/storage_inventory/`."
            ),
        )
    ],
    pool="lake_maintenance",
    retry_policy=STEP_RETRY,
)
def garbage_collection(
    context: dg.AssetExecutionContext,
    spark: SparkResource,
    lake: LakeResource,
    catalog: CatalogResource,
    kafka: KafkaResource,
):
    params = gc_params(context, lake, catalog, kafka, dry_run=False)
    result = spark.run(context, "garbage_collection", params.to_extras())
    pruned = prune_old_dagster_records(context, dry_run=False)
    yield dg.MaterializeResult(
        asset_key="storage_inventory",
        metadata={
            **(result.get_materialize_result().metadata or {}),
            "dagster_runs_pruned": pruned["runs"],
            "upload_batches_pruned": dg.MetadataValue.json(pruned["partitions"][:200]),
        },
    )


@dg.op(
    out=dg.Out(dg.Nothing),
    pool="lake_maintenance",
    retry_policy=STEP_RETRY,
    description=(
        "Garbage collection's dry run: what it would delete now (objects, bytes and keys by reason) and "
        "the Dagster runs and partitions retention would prune. Deletes nothing and, being an op, records "
        "no materialization: storage_inventory keeps its last real snapshot."
    ),
)
def garbage_collection_preview(
    context: dg.OpExecutionContext,
    spark: SparkResource,
    lake: LakeResource,
    catalog: CatalogResource,
    kafka: KafkaResource,
):
    params = gc_params(context, lake, catalog, kafka, dry_run=True)
    summary = spark.summary(context, "garbage_collection", params.to_extras())
    pruned = prune_old_dagster_records(context, dry_run=True)
    context.log.info(
        f"would delete {summary['would_delete_objects']} objects ({summary['would_delete_bytes']:,} bytes) "
        f"of {summary['listed_objects']} listed"
    )
    return dg.Output(
        None,
        metadata={
            **{k: dg.MetadataValue.json(v) if isinstance(v, dict | list) else v for k, v in summary.items()},
            "dagster_runs_to_prune": pruned["runs"],
            "upload_batches_to_prune": dg.MetadataValue.json(pruned["partitions"][:200]),
        },
    )


def gc_params(
    context: dg.OpExecutionContext | dg.AssetExecutionContext,
    lake: LakeResource,
    catalog: CatalogResource,
    kafka: KafkaResource,
    dry_run: bool,
) -> GcParams:
    """One collection's parameters; failed uploads are held while the real-time backlog could
    still hold their events (orchestration/backlog.py)."""
    settings = get_settings()
    backlog = realtime_backlog(context.instance, kafka_lag(context.instance, kafka))
    held = "" if backlog.empty else backlog.describe()
    if held:
        context.log.warning(f"failed uploads are not collected this run; the real-time backlog holds {held}")
    return GcParams(
        **lake.location(),
        retention_days=settings.retention_days,
        grace_hours=settings.gc_grace_hours,
        dry_run=dry_run,
        catalog_table=catalog.table,
        catalog_endpoint=catalog.endpoint,
        failed_uploads_held=held,
    )


def prune_old_dagster_records(
    context: dg.OpExecutionContext | dg.AssetExecutionContext, dry_run: bool
) -> dict:
    """Retention of Dagster's own records, logged: what ``prune_dagster_records`` did or would do."""
    cutoff = datetime.now(UTC) - timedelta(days=get_settings().retention_days)
    pruned = prune_dagster_records(context.instance, cutoff, dry_run)
    verb = "would prune" if dry_run else "pruned"
    context.log.info(
        f"{verb} {pruned['runs']} Dagster runs and {len(pruned['partitions'])} upload_batches partitions"
    )
    return pruned
