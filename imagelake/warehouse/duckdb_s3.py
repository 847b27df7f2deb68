"""DuckDB reading the lake on S3: the httpfs extension from PyPI, and the S3 secret dbt gives it.

DuckDB reads ``s3://`` through its httpfs extension, which it would download
from extensions.duckdb.org on first use: nothing may be downloaded at run time
here. The ``duckdb-extension-httpfs`` package on PyPI ships the extension built
for one DuckDB version, so the lock pins DuckDB to that version (pyproject.toml)
and dbt loads the file from the package (profiles.yml: ``extensions``). This is
how the production-mode stack builds the marts with DuckDB over the same files
Redshift Spectrum reads in production.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import duckdb

if TYPE_CHECKING:
    from imagelake.settings import Settings


class HttpfsUnavailable(RuntimeError):
    """The httpfs extension for the installed DuckDB is not installed; the message says what to do."""


def httpfs_extension() -> Path:
    """The httpfs extension file matching the installed DuckDB."""
    spec = importlib.util.find_spec("duckdb_extension_httpfs")
    wanted = f"v{duckdb.__version__}"
    if spec is None or not spec.submodule_search_locations:
        raise HttpfsUnavailable(
            "DuckDB needs its httpfs extension to read the lake on S3: install the locked environment "
            "(make setup), which has duckdb-extension-httpfs"
        )
    found = (
        Path(next(iter(spec.submodule_search_locations))) / "extensions" / wanted / "httpfs.duckdb_extension"
    )
    if not found.exists():
        raise HttpfsUnavailable(
            f"duckdb-extension-httpfs ships no extension for DuckDB {duckdb.__version__} (looked for {found}): "
            "pin duckdb to the version the extension package is built for (pyproject.toml), then make lock"
        )
    return found


def s3_secret(settings: Settings) -> dict[str, str]:
    """DuckDB's S3 secret for the lake: the credentials boto3 finds, the endpoint and region of the settings."""
    import boto3

    credentials = boto3.Session(region_name=settings.aws_region).get_credentials()
    if credentials is None:
        raise HttpfsUnavailable(
            "DuckDB cannot read the lake on S3: no AWS credentials found (AWS_ACCESS_KEY_ID, ...)"
        )
    frozen = credentials.get_frozen_credentials()
    secret = {
        "type": "s3",
        "key_id": frozen.access_key,
        "secret": frozen.secret_key,
        "region": settings.aws_region,
    }
    if frozen.token:
        secret["session_token"] = frozen.token
    if settings.s3_endpoint:
        endpoint = urlparse(settings.s3_endpoint)
        secret |= {
            "endpoint": endpoint.netloc,
            "url_style": "path",  # moto and most S3-compatible servers: no bucket sub-domains
            "use_ssl": "true" if endpoint.scheme == "https" else "false",
        }
    return secret


def duckdb_s3_env(settings: Settings) -> dict[str, str]:
    """What profiles.yml reads (``as_native``) to load httpfs and create the S3 secret."""
    return {
        "IMAGELAKE_DUCKDB_EXTENSIONS": json.dumps([str(httpfs_extension())]),
        "IMAGELAKE_DUCKDB_SECRETS": json.dumps([s3_secret(settings)]),
    }
