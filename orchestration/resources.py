"""Dagster resources: thin handles on the lake and Kafka, built from imagelake's settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from confluent_kafka import Consumer

from imagelake.batch.job_params import LakeLocation
from imagelake.catalog import Catalog
from imagelake.lake.store import Lake
from imagelake.realtime.kafka import KafkaConnection, consumer_config
from imagelake.settings import Settings


class LakeResource(dg.ConfigurableResource):
    """The object store holding every zone of the lake."""

    url: str
    s3_endpoint: str = ""
    region: str = "us-east-1"

    def lake(self) -> Lake:
        return Lake(self.url, self.s3_endpoint, self.region)

    def location(self) -> LakeLocation:
        """Where the lake is, as the batch jobs' parameters name it."""
        return LakeLocation(lake_url=self.url, s3_endpoint=self.s3_endpoint, region=self.region)


class KafkaResource(dg.ConfigurableResource):
    """The brokers carrying upload events (MSK in prod)."""

    bootstrap: str
    topic: str
    extra: dict[str, str] = {}
    auth: str = "none"
    region: str = "us-east-1"

    def connection(self) -> KafkaConnection:
        return KafkaConnection(self.bootstrap, dict(self.extra), self.auth, self.region)

    @contextmanager
    def consumer(self, group: str = "imagelake-readers") -> Iterator[Consumer]:
        """A short-lived assign/seek consumer, always closed."""
        consumer = Consumer(consumer_config(self.connection(), group))
        try:
            yield consumer
        finally:
            consumer.close()


class CatalogResource(dg.ConfigurableResource):
    """The per-image catalog table on DynamoDB (DynamoDB Local when ``endpoint`` is set)."""

    table: str
    endpoint: str = ""
    region: str = "us-east-1"

    def catalog(self) -> Catalog:
        return Catalog(self.table, self.endpoint, self.region)


def lake_resource(settings: Settings) -> LakeResource:
    return LakeResource(url=settings.lake_url, s3_endpoint=settings.s3_endpoint, region=settings.aws_region)


def kafka_resource(settings: Settings) -> KafkaResource:
    return KafkaResource(
        bootstrap=settings.kafka_bootstrap,
        topic=settings.uploads_topic,
        extra=dict(settings.kafka_extra),
        auth=settings.kafka_auth,
        region=settings.aws_region,
    )


def catalog_resource(settings: Settings) -> CatalogResource:
    return CatalogResource(
        table=settings.catalog_table, endpoint=settings.dynamodb_endpoint, region=settings.aws_region
    )
