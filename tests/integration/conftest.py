"""Fixtures of the integration tests of the real-time path."""

import time

import dagster as dg
import pytest

from imagelake.lake.store import Lake
from orchestration.resources import KafkaResource
from tests.support.uploads import producer


@pytest.fixture
def stack(imagelake_env, kafka_bootstrap, topic, catalog):
    """A local lake, a fresh topic, a Dagster instance, a producer and a catalog table for one test."""
    settings = imagelake_env(IMAGELAKE_KAFKA_BOOTSTRAP=kafka_bootstrap, IMAGELAKE_UPLOADS_TOPIC=topic)
    lake = Lake.from_settings(settings)
    kafka = KafkaResource(bootstrap=kafka_bootstrap, topic=topic)
    with dg.instance_for_test() as instance:
        yield lake, kafka, instance, producer(kafka_bootstrap), catalog


@pytest.fixture(autouse=True)
def catalog_settings(monkeypatch: pytest.MonkeyPatch, dynamodb_endpoint: str) -> None:
    """Batch runs write the image catalog, so every integration test's process-wide settings
    name DynamoDB Local and a table of its own (created when a run first needs it)."""
    monkeypatch.setenv("IMAGELAKE_DYNAMODB_ENDPOINT", dynamodb_endpoint)
    monkeypatch.setenv("IMAGELAKE_CATALOG_TABLE", f"images-{time.time_ns()}")
