"""Fixtures of the integration tests of the real-time path."""

import dagster as dg
import pytest

from imagelake.store import Lake
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
