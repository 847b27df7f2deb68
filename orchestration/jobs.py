"""Jobs: the real-time batch job the Kafka sensor launches."""

import dagster as dg

from assets.curated import image_metadata
from assets.maintenance import garbage_collection_preview
from assets.raw import upload_events
from orchestration.backlog import REALTIME_BATCH_JOB
from orchestration.retries import RUN_RETRY_TAGS

#: One run per Kafka micro-batch, in one process like every job here (the code location's
#: executor, orchestration/definitions.py): on a small machine process start-up dominates a batch.
realtime_batch_job = dg.define_asset_job(
    REALTIME_BATCH_JOB,
    tags=RUN_RETRY_TAGS,
    selection=dg.AssetSelection.assets(upload_events, image_metadata),
    description=(
        "Archive one Kafka batch of upload events, extract each image's metadata and perceptual hash, "
        "find duplicates over the retention window and record each outcome in the image catalog."
    ),
)

# -- batch jobs (Spark through the `spark` resource), launched by orchestration/schedules.py --------

#: Derivatives of one upload date (partition = the date).
derivatives_job = dg.define_asset_job(
    "derivatives_job",
    tags=RUN_RETRY_TAGS,
    selection=dg.AssetSelection.assets("derivatives"),
    description="Make every configured derivative of the processed images of one upload date.",
)

#: Compaction of one closed upload date.
compaction_job = dg.define_asset_job(
    "compaction_job",
    tags=RUN_RETRY_TAGS,
    selection=dg.AssetSelection.assets("lake_compaction"),
    description="Compact the batch files of one closed upload date into one file per table.",
)

#: Garbage collection and retention over the whole lake, then Dagster's own records.
garbage_collection_job = dg.define_asset_job(
    "garbage_collection_job",
    tags=RUN_RETRY_TAGS,
    selection=dg.AssetSelection.assets("storage_inventory"),
    description="Delete what is older than the retention period or orphaned; prune old runs and partitions.",
)


@dg.job(
    tags=RUN_RETRY_TAGS,
    description=(
        "Garbage collection's dry run: lists what garbage_collection_job would delete now, with counts, "
        "bytes and keys in the step's output metadata. Deletes nothing; records no materialization."
    ),
)
def garbage_collection_dry_run_job():
    garbage_collection_preview()


@dg.op(description="Does nothing: the run's duration is the cost of launching a run.")
def heartbeat(context: dg.OpExecutionContext) -> None:
    context.log.info("heartbeat: the code location loaded and a run executed")


@dg.job(
    description=(
        "An empty run, launched the same way as realtime_batch_job: how long a run takes to launch and "
        "finish with no work (the floor of upload-to-processed latency; `make bench-realtime`), and a "
        "quick check that the code location loads in a run worker."
    ),
)
def heartbeat_job():
    heartbeat()
