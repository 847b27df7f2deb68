"""The statistics snapshot: the serving tables published to the lake after each warehouse build.

The API replicas serve the statistics endpoints from these files (imagelake/stats/), so they never
open the warehouse nor wait for its one writer. The asset runs in the warehouse job right after
dbt, in the same ``warehouse`` pool and under the same turn-taking as a build, and is partitioned
like the dbt models so that a run over a range of days is one step. A snapshot that does not read
back as written fails the step, and the manifest keeps pointing at the last good generation; the
asset check reads what is current, as a replica would.
"""

import time
from datetime import UTC, datetime

import dagster as dg

from assets.warehouse import warehouse_days
from imagelake.lake.store import Lake
from imagelake.settings import get_settings
from imagelake.stats.answers import SnapshotIncompatible, served_rows
from imagelake.stats.snapshot_files import (
    SERVED_TABLES,
    SnapshotDamaged,
    load_generation,
    publish,
    read_manifest,
)
from imagelake.warehouse.build_turns import single_writer
from imagelake.warehouse.serving_tables import SERVING_SCHEMA, read_serving_tables
from orchestration.dbt_translator import MART_FRESHNESS
from orchestration.retries import STEP_RETRY

SERVING_MODELS = [dg.AssetKey([SERVING_SCHEMA, model]) for model in SERVED_TABLES.values()]


@dg.asset(
    deps=SERVING_MODELS,
    partitions_def=warehouse_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="warehouse",
    group_name="serving",
    kinds={"parquet"},
    retry_policy=STEP_RETRY,
    freshness_policy=MART_FRESHNESS,  # what the API serves is as stale as this
    description=(
        "The serving tables as a Parquet snapshot in the lake (serving/stats/), which the API's "
        "statistics endpoints read; published after every warehouse build."
    ),
)
def stats_snapshot(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    settings = get_settings()
    lake = Lake.from_settings(settings)
    started = time.perf_counter()
    with single_writer(settings, context.log):
        tables = read_serving_tables(settings, SERVED_TABLES)
    now = datetime.now(UTC)
    try:
        generation, pruned = publish(lake, tables, now)
    except SnapshotDamaged as exc:
        raise dg.Failure(
            f"{exc}. The API keeps serving the last good snapshot; the next build publishes again.",
            allow_retries=True,
        ) from None
    context.log.info(f"published statistics snapshot {generation.id}; pruned {pruned or 'nothing'}")
    return dg.MaterializeResult(
        metadata={
            "generation": generation.id,
            "published_at": dg.MetadataValue.timestamp(now),
            "seconds": round(time.perf_counter() - started, 3),
            **{f"{name}/rows": f.rows for name, f in generation.files.items()},
            **{f"{name}/bytes": f.bytes for name, f in generation.files.items()},
            "files": dg.MetadataValue.json({name: f.key for name, f in generation.files.items()}),
            "pruned_generations": len(pruned),
        }
    )


@dg.asset_check(
    asset=stats_snapshot, blocking=False, description="The current snapshot reads as a replica reads it."
)
def stats_snapshot_readable() -> dg.AssetCheckResult:
    """Read the manifest's newest generation back, checksums and columns, as an API replica does: a
    file damaged since it was published fails here, visibly, while replicas fall back on the one
    before."""
    lake = Lake.from_settings(get_settings())
    try:
        manifest = read_manifest(lake)
        if manifest is None or not manifest.generations:
            return dg.AssetCheckResult(passed=False, description="no snapshot has been published")
        newest = manifest.generations[0]
        served_rows(load_generation(lake, newest))
    except (SnapshotDamaged, SnapshotIncompatible) as exc:
        return dg.AssetCheckResult(passed=False, description=str(exc), metadata={"error": str(exc)})
    return dg.AssetCheckResult(passed=True, metadata={"generation": newest.id})
