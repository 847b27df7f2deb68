"""moto's S3 server: the one stand-in for AWS, an S3 API over real HTTP on 127.0.0.1.

It keeps objects in memory: when it stops, the buckets and their objects are
gone (hence the production-mode stack starts from an empty state each time).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

from infra.local.stack import Service, StackError, port_in_use, spawn, wait_for_port

#: The credentials every client of the stand-in signs with (moto checks none).
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def start_moto(port: int, log_path: Path, timeout: float = 60.0, keep_fds: tuple[int, ...] = ()) -> Service:
    if port_in_use(port):
        raise StackError(f"port {port} is in use: another S3 server (or stack) is running; stop it first")
    env = {**os.environ, **CREDENTIALS}
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    service = spawn("moto-s3", cmd, port, log_path, env=env, keep_fds=keep_fds)
    wait_for_port(service, timeout)
    return service


def ensure_buckets(endpoint: str, buckets: list[str], region: str = "us-east-1") -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    for bucket in buckets:
        try:
            s3.create_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise
