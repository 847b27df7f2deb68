"""The imagelake code location (``workspace.yaml`` loads this module)."""

import dagster as dg

from assets.curated import image_metadata
from assets.raw import raw_images, upload_events
from assets.warehouse import dbt_resource, warehouse_models
from imagelake.settings import get_settings
from orchestration.jobs import heartbeat_job, realtime_batch_job
from orchestration.resources import catalog_resource, kafka_resource, lake_resource
from orchestration.sensors import kafka_upload_sensor

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
    assets=[raw_images, upload_events, image_metadata, warehouse_models],
    jobs=[realtime_batch_job, heartbeat_job],
    sensors=[kafka_upload_sensor, warehouse_automation],
    resources={
        "lake": lake_resource(settings),
        "kafka": kafka_resource(settings),
        "catalog": catalog_resource(settings),
        "dbt": dbt_resource(settings),
    },
)
