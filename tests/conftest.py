"""Shared fixtures: real services on free ports in temp dirs, started once per session."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagelake.lake.store import Lake
from imagelake.realtime.kafka import KafkaConnection, ensure_topic
from imagelake.settings import Settings, load_settings
from infra.local.stack import Service, free_port, start_kafka, start_moto


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A real single-node Kafka broker (KRaft) for the whole session.

    It applies retention every second (not every five minutes), so a test can watch a topic with
    a short retention lose offsets.
    """
    service = start_kafka(
        tmp_path_factory.mktemp("kafka"),
        free_port(),
        extra_properties={"log.retention.check.interval.ms": "1000"},
    )
    try:
        ensure_topic(KafkaConnection(f"127.0.0.1:{service.port}"), "warmup", 1, timeout_s=60)
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: Service) -> str:
    return f"127.0.0.1:{kafka_broker.port}"


@pytest.fixture
def topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> str:
    """A fresh 3-partition upload topic per test, so tests never see each other's events."""
    name = f"image-uploads-{request.node.name[:40].replace('[', '-').replace(']', '')}-{time.time_ns()}"
    name = "".join(c if c.isalnum() or c in "-._" else "-" for c in name)
    ensure_topic(KafkaConnection(kafka_bootstrap), name, 3)
    return name


def dead_endpoint() -> str:
    """127.0.0.1 on a port nobody listens on: a Kafka (or anything) that is down."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
def settings_factory(tmp_path: Path):
    """Settings for a test: everything under tmp_path, services where the test says."""

    def make(**env: str) -> Settings:
        base = {
            "IMAGELAKE_ENV": "local",
            "IMAGELAKE_DATA_DIR": str(tmp_path / "data"),
            "IMAGELAKE_KAFKA_DELIVERY_TIMEOUT_S": "3",
            "IMAGELAKE_KAFKA_POLL_TIMEOUT_S": "10",
        }
        return load_settings({**base, **env})

    return make


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake((tmp_path / "lake").as_uri())


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server over real HTTP: the one stand-in for AWS."""
    port = free_port()
    service = start_moto(port, tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        service.stop()


@pytest.fixture
def imagelake_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Point the process-wide settings (what the code location reads) at this test's stack."""
    from imagelake.settings import get_settings

    def configure(**env: str) -> Settings:
        base = {
            "IMAGELAKE_ENV": "local",
            "IMAGELAKE_DATA_DIR": str(tmp_path / "data"),
            "IMAGELAKE_KAFKA_POLL_TIMEOUT_S": "10",
        }
        for name, value in {**base, **env}.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        return get_settings()

    yield configure
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def dynamodb_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A real DynamoDB Local (in memory) for the whole session."""
    from infra.local.stack import start_dynamodb

    service = start_dynamodb(None, free_port(), tmp_path_factory.mktemp("dynamodb") / "dynamodb.log")
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def dynamodb_endpoint(dynamodb_local: Service) -> str:
    return f"http://127.0.0.1:{dynamodb_local.port}"


@pytest.fixture
def catalog(dynamodb_endpoint: str):
    """A fresh catalog table per test."""
    from imagelake.catalog import Catalog

    name = f"images-{time.time_ns()}"
    cat = Catalog(name, dynamodb_endpoint)
    cat.ensure_table()
    return cat


# -- batch jobs (issue 4): one local Spark for the whole session, and the Pipes launcher ---------------
@pytest.fixture(scope="session")
def spark():
    """A real local Spark (2 cores) shared by every test of the session: start-ups cost ~15 s each."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from orchestration.spark import LOCAL_CONF

    builder = SparkSession.builder.master("local[2]").appName("imagelake-tests")
    for key, value in {**LOCAL_CONF, "spark.driver.memory": "1g"}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture
def spark_local():
    """The Spark resource as `make dev` has it (spark-submit through Pipes), sized for a test."""
    from orchestration.spark import SparkResource

    return SparkResource(mode="local", spark_master="local[2]", spark_conf={"spark.driver.memory": "1g"})
