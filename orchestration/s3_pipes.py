"""Dagster Pipes over S3: how a Spark job's context goes out and its messages come back, on EMR
Serverless and on a cluster alike.

Kept apart from orchestration/spark.py so that only a run that really starts a Spark job on EMR or a
cluster imports ``dagster_aws``: its import is costly (docs/benchmarks.md), and every run process (a
real-time batch every few seconds) would pay it.
"""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dagster as dg
from botocore.exceptions import BotoCoreError
from dagster_aws.pipes import PipesS3ContextInjector, PipesS3MessageReader

#: Where Pipes' context and messages go in their bucket (the EMR job role may write only there).
PIPES_PREFIX = "pipes"


class PrefixedS3MessageReader(PipesS3MessageReader):
    """Pipes' S3 reader, with its per-run message folder under a fixed prefix of the bucket.

    S3 out of reach for a while (a connection refused, a timeout) is "no new chunk yet", not the end
    of the run's messages: Dagster's reader would let its thread die on it and lose every later
    message, the job's report included.
    """

    def __init__(self, *, prefix: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prefix = prefix.strip("/")

    @contextmanager
    def get_params(self) -> Iterator[dict]:
        with super().get_params() as params:
            yield {**params, "key_prefix": f"{self.prefix}/{params['key_prefix']}"}

    def messages_are_readable(self, params: Mapping[str, Any]) -> bool:
        try:
            return super().messages_are_readable(params)
        except BotoCoreError:
            return False

    def download_messages_chunk(self, index: int, params: Mapping[str, Any]) -> str | None:
        try:
            return super().download_messages_chunk(index, params)
        except BotoCoreError:
            return None


def message_reader(s3: Any, bucket: str, interval: float) -> PrefixedS3MessageReader:
    return PrefixedS3MessageReader(prefix=PIPES_PREFIX, bucket=bucket, client=s3, interval=interval)


def subprocess_client(s3: Any, bucket: str, env: Mapping[str, str], cwd: str) -> dg.PipesSubprocessClient:
    """Runs ``spark-submit`` here, with the job's context written to and its messages read from
    ``bucket``: the driver and the executors need nothing of this machine's disk."""
    return dg.PipesSubprocessClient(
        env=dict(env),
        cwd=cwd,
        context_injector=PipesS3ContextInjector(bucket=bucket, client=s3, key_prefix=f"{PIPES_PREFIX}/"),
        message_reader=message_reader(s3, bucket, interval=2),
    )
