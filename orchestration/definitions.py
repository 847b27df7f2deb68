"""The imagelake code location (``workspace.yaml`` loads this module)."""

import dagster as dg

from assets.curated import image_metadata
from assets.raw import dead_letters, raw_images, upload_events
from assets.warehouse import dbt_resource, warehouse_models
from imagelake.settings import get_settings
from orchestration.jobs import realtime_batch_job
from orchestration.resources import catalog_resource, kafka_resource, lake_resource
from orchestration.sensors import kafka_upload_sensor
from orchestration.warehouse_schedules import (
    warehouse_hourly_schedule,
    warehouse_job,
    warehouse_refresh_sensor,
)

settings = get_settings()

defs = dg.Definitions(
    assets=[raw_images, upload_events, image_metadata, warehouse_models, dead_letters],
    jobs=[realtime_batch_job, warehouse_job],
    sensors=[kafka_upload_sensor, warehouse_refresh_sensor],
    schedules=[warehouse_hourly_schedule],
    resources={
        "lake": lake_resource(settings),
        "kafka": kafka_resource(settings),
        "catalog": catalog_resource(settings),
        "dbt": dbt_resource(settings),
    },
)
