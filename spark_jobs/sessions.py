"""What every Spark job shares: the Pipes session and the Spark session."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dagster_pipes import (
    PipesContext,
    PipesDefaultMessageWriter,
    PipesEnvVarParamsLoader,
    PipesS3MessageWriter,
    open_dagster_pipes,
)


def _message_writer() -> PipesDefaultMessageWriter | PipesS3MessageWriter:
    """S3 when Dagster's reader asked for a bucket (EMR Serverless), a local file otherwise."""
    params = PipesEnvVarParamsLoader().load_messages_params()
    if "bucket" in params:
        import boto3

        return PipesS3MessageWriter(client=boto3.client("s3"), interval=5)
    return PipesDefaultMessageWriter()


@contextmanager
def pipes_session() -> Iterator[PipesContext]:
    with open_dagster_pipes(message_writer=_message_writer()) as pipes:
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
