"""What every Spark job shares: the Pipes session and the Spark session."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster_pipes import (
    PipesContext,
    PipesDefaultContextLoader,
    PipesDefaultMessageWriter,
    PipesEnvVarParamsLoader,
    PipesS3ContextLoader,
    PipesS3MessageWriter,
    open_dagster_pipes,
)

from imagelake.settings import S3_RETRY_ATTEMPTS


def _s3() -> Any:
    """boto3's S3 client, retrying a while (S3_RETRY_ATTEMPTS); its endpoint as boto3 finds it
    (``AWS_ENDPOINT_URL_S3`` when the bucket is not AWS's, as in the tests)."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": S3_RETRY_ATTEMPTS}))


def _context_loader() -> PipesDefaultContextLoader | PipesS3ContextLoader:
    """S3 when Dagster put the context in a bucket (a cluster), the environment or a file otherwise."""
    if "bucket" in PipesEnvVarParamsLoader().load_context_params():
        return PipesS3ContextLoader(client=_s3())
    return PipesDefaultContextLoader()


def _message_writer() -> PipesDefaultMessageWriter | PipesS3MessageWriter:
    """S3 when Dagster's reader asked for a bucket (EMR Serverless, a cluster), a local file otherwise."""
    if "bucket" in PipesEnvVarParamsLoader().load_messages_params():
        return PipesS3MessageWriter(client=_s3(), interval=5)
    return PipesDefaultMessageWriter()


@contextmanager
def pipes_session() -> Iterator[PipesContext]:
    with open_dagster_pipes(context_loader=_context_loader(), message_writer=_message_writer()) as pipes:
        yield pipes


def spark_session(name: str):
    """The job's SparkSession; the master and resources come from spark-submit."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(f"imagelake-{name}").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def slices(items: int, parallelism: int) -> int:
    """Tasks for ``items`` units of work: a few per core so the cores stay evenly busy."""
    return max(1, min(items, parallelism * 8))


def report(pipes: PipesContext, summary: dict) -> None:
    """Report a job's summary as the asset's materialization metadata (lists and maps as JSON)."""
    metadata = {
        key: {"raw_value": value, "type": "json"} if isinstance(value, dict | list) else value
        for key, value in summary.items()
    }
    pipes.report_asset_materialization(metadata=metadata)


def run_job(name: str, params_type, run) -> None:
    """A job's ``main``: params from the Pipes extras, ``run(spark, params, log)``, its summary reported:
    as the asset's materialization, or, launched from an op (a dry run changes no asset), as a message."""
    with pipes_session() as pipes:
        params = params_type.from_extras(dict(pipes.extras))
        summary = run(spark_session(name), params, pipes.log)
        if pipes.is_asset_step:
            report(pipes, summary)
        else:
            pipes.report_custom_message(summary)
