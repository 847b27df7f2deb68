"""Dagster Pipes on EMR Serverless: the client and its message reader (prod only).

Kept apart from orchestration/spark.py so that only a run that really starts
an EMR job imports ``dagster_aws``: its import is costly (docs/benchmarks.md),
and every run process (a real-time batch every few seconds) would pay it.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster_aws.pipes import PipesEMRServerlessClient, PipesS3MessageReader

#: Where Pipes messages go in the ops bucket (the EMR job role may write only there).
PIPES_PREFIX = "pipes"


class PrefixedS3MessageReader(PipesS3MessageReader):
    """Pipes' S3 reader, with its per-run message folder under a fixed prefix of the bucket."""

    def __init__(self, *, prefix: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prefix = prefix.strip("/")

    @contextmanager
    def get_params(self) -> Iterator[dict]:
        with super().get_params() as params:
            yield {**params, "key_prefix": f"{self.prefix}/{params['key_prefix']}"}


def emr_serverless_client(emr: Any, s3: Any, pipes_bucket: str) -> PipesEMRServerlessClient:
    """A Pipes client that starts job runs with ``emr`` and reads messages from ``pipes_bucket``."""
    reader = PrefixedS3MessageReader(prefix=PIPES_PREFIX, bucket=pipes_bucket, client=s3, interval=10)
    return PipesEMRServerlessClient(client=emr, message_reader=reader, poll_interval=15)
