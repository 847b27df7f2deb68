"""What every run loads beyond its code location and instance, loaded once in the forkserver it forks from.

``orchestration/code_server.py`` preloads this module, so each run starts with:

- pandas: pyarrow imports it the first time it converts Python rows (``Table.from_pylist``), which
  every batch does;
- boto3's default session with the S3 and DynamoDB models parsed: botocore reads a service's JSON
  models once per session, and each run makes its clients from the default session (the catalog's
  DynamoDB client, the compute-log manager's S3 resource), so each run parsed them again.

The clients made here carry placeholder keys, so no credentials are looked up, and are discarded:
only the parsed models stay, in the session's loader.
"""

import logging

import boto3
import pandas  # noqa: F401  (imported for its side effect: loaded before the fork)

#: The services whose models every run needs.
SERVICES = ("s3", "dynamodb")


def warm_default_session() -> None:
    """Parse the models of ``SERVICES`` (and S3's resource model) into boto3's default session.

    Never raises: the forkserver would die with it, and every run launch after it; a warm-up that
    fails leaves each run to parse the models itself, as without it.
    """
    keys = {"region_name": "us-east-1", "aws_access_key_id": "preload", "aws_secret_access_key": "preload"}
    try:
        for service in SERVICES:
            boto3.client(service, **keys)
        boto3.resource("s3", **keys)
    except Exception:  # any: see the docstring
        logging.getLogger(__name__).warning("boto3's models not preloaded for runs", exc_info=True)


warm_default_session()
