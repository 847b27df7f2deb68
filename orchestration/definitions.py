"""The imagelake code location (``workspace.yaml`` loads this module)."""

import dagster as dg

from assets.curated import image_metadata
from assets.derivatives import derivatives
from assets.maintenance import garbage_collection, lake_compaction
from assets.raw import raw_images, upload_events
from assets.warehouse import dbt_resource, warehouse_models
from imagelake.settings import get_settings
from orchestration.jobs import compaction_job, derivatives_job, garbage_collection_job, realtime_batch_job
from orchestration.resources import catalog_resource, kafka_resource, lake_resource
from orchestration.schedules import batch_schedules
from orchestration.sensors import kafka_upload_sensor
from orchestration.spark import spark_resource

settings = get_settings()

#: Evaluates the warehouse's automation conditions: marts refresh after new data.
warehouse_automation = dg.AutomationConditionSensorDefinition(
    "warehouse_automation_sensor",
    target=dg.AssetSelection.assets(warehouse_models),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=15,
    description="Refreshes the dbt models after new curated data lands.",
)

defs = dg.Definitions(
    assets=[
        raw_images,
        upload_events,
        image_metadata,
        warehouse_models,
        derivatives,
        lake_compaction,
        garbage_collection,
    ],
    jobs=[realtime_batch_job, derivatives_job, compaction_job, garbage_collection_job],
    schedules=[*batch_schedules],
    sensors=[kafka_upload_sensor, warehouse_automation],
    resources={
        "lake": lake_resource(settings),
        "kafka": kafka_resource(settings),
        "catalog": catalog_resource(settings),
        "dbt": dbt_resource(settings),
        "spark": spark_resource(settings),
    },
)
