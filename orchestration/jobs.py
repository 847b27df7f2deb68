"""Jobs: the real-time batch job the Kafka sensor launches."""

import dagster as dg

from assets.curated import image_metadata
from assets.raw import upload_events

#: One run per Kafka micro-batch. The in-process executor keeps a small run
#: to a single process: on a small machine process start-up dominates a batch.
realtime_batch_job = dg.define_asset_job(
    "realtime_batch_job",
    selection=dg.AssetSelection.assets(upload_events, image_metadata),
    executor_def=dg.in_process_executor,
    description=(
        "Archive one Kafka batch of upload events, extract each image's metadata and perceptual hash, "
        "find duplicates over the retention window and record each outcome in the image catalog."
    ),
)


@dg.op(description="Does nothing: the run's duration is the cost of launching a run.")
def heartbeat(context: dg.OpExecutionContext) -> None:
    context.log.info("heartbeat: the code location loaded and a run executed")


@dg.job(
    executor_def=dg.in_process_executor,
    description=(
        "An empty run, launched the same way as realtime_batch_job: how long a run takes to launch and "
        "finish with no work (the floor of upload-to-processed latency; `make bench-realtime`), and a "
        "quick check that the code location loads in a run worker."
    ),
)
def heartbeat_job():
    heartbeat()
