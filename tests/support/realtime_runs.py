"""Driving the real-time path in tests: a sensor tick, and one batch run as the job runs it."""

from __future__ import annotations

import dagster as dg

from assets.curated import image_metadata
from assets.raw import upload_events
from imagelake.catalog import Catalog
from imagelake.lake.store import Lake
from imagelake.settings import get_settings
from orchestration.resources import CatalogResource, KafkaResource, LakeResource
from orchestration.sensors import kafka_upload_sensor


def tick(instance: dg.DagsterInstance, kafka: KafkaResource, cursor: str | None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"kafka": kafka})
    return kafka_upload_sensor(context), context


def run_batch(
    instance: dg.DagsterInstance,
    batch_id: str,
    lake: Lake,
    kafka: KafkaResource,
    catalog: Catalog | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """Materialize one batch as realtime_batch_job does: events, metadata, index, catalog.

    Without ``catalog``, the one the process-wide settings name (in the integration tests: a
    fresh table in the session's DynamoDB Local, see tests/integration/conftest.py).
    """
    if catalog is None:
        catalog = Catalog.from_settings(get_settings())
        catalog.ensure_table()
    if not instance.has_dynamic_partition("upload_batches", batch_id):
        instance.add_dynamic_partitions("upload_batches", [batch_id])
    return dg.materialize(
        [upload_events, image_metadata],
        partition_key=batch_id,
        instance=instance,
        resources={
            "lake": LakeResource(url=lake.url),
            "kafka": kafka,
            "catalog": CatalogResource(table=catalog.table, endpoint=catalog.endpoint),
        },
        raise_on_error=raise_on_error,
    )
