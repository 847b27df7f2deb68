"""The imagelake code location: the lake, the real-time path and the batch jobs (``workspace.yaml``).

The dbt models are a location of their own (orchestration/warehouse_definitions.py),
so a real-time batch run, a new process per sensor tick, does not import dbt.
"""

import dagster as dg

from assets.curated import image_metadata
from assets.derivatives import derivatives
from assets.maintenance import garbage_collection, lake_compaction
from assets.raw import dead_letters, raw_images, upload_events
from imagelake.settings import get_settings
from orchestration.jobs import (
    compaction_job,
    derivatives_job,
    garbage_collection_dry_run_job,
    garbage_collection_job,
    heartbeat_job,
    realtime_batch_job,
)
from orchestration.resources import catalog_resource, kafka_resource, lake_resource
from orchestration.schedules import batch_schedules
from orchestration.sensors import failed_batch_sensor, kafka_upload_sensor
from orchestration.spark import spark_resource

settings = get_settings()

defs = dg.Definitions(
    assets=[
        raw_images,
        upload_events,
        dead_letters,
        image_metadata,
        derivatives,
        lake_compaction,
        garbage_collection,
    ],
    jobs=[
        realtime_batch_job,
        derivatives_job,
        compaction_job,
        garbage_collection_job,
        garbage_collection_dry_run_job,
        heartbeat_job,
    ],
    schedules=batch_schedules,
    sensors=[kafka_upload_sensor, failed_batch_sensor],
    # Every job here is one or two steps: a step subprocess per run (the multiprocess default) would
    # only add a second Python start with every import of this location to each run, which on a
    # small machine is most of a run's CPU (docs/benchmarks.md, bench-realtime).
    executor=dg.in_process_executor,
    resources={
        "lake": lake_resource(settings),
        "kafka": kafka_resource(settings),
        "catalog": catalog_resource(settings),
        "spark": spark_resource(settings),
    },
)
