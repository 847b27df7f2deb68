"""Dagster Pipes on EMR Serverless: the client (prod only; its messages: orchestration/s3_pipes.py).

Kept apart from orchestration/spark.py so that only a run that really starts
an EMR job imports ``dagster_aws``: its import is costly (docs/benchmarks.md),
and every run process (a real-time batch every few seconds) would pay it.
"""

from typing import Any

from dagster_aws.pipes import PipesEMRServerlessClient

from orchestration.s3_pipes import message_reader


def emr_serverless_client(emr: Any, s3: Any, pipes_bucket: str) -> PipesEMRServerlessClient:
    """A Pipes client that starts job runs with ``emr`` and reads messages from ``pipes_bucket``."""
    return PipesEMRServerlessClient(
        client=emr, message_reader=message_reader(s3, pipes_bucket, interval=10), poll_interval=15
    )
