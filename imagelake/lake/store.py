"""Object storage for the lake: one API over a local folder and S3 (obstore).

``file:///abs/path`` gives a :class:`~obstore.store.LocalStore`, ``s3://bucket/prefix``
an :class:`~obstore.store.S3Store` (with an optional endpoint for S3-compatible
servers such as moto). Keys are always the lake layout's keys
(:mod:`imagelake.lake.layout`); the store's own prefix is invisible to callers.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import AsyncIterable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import obstore
from obstore.exceptions import AlreadyExistsError
from obstore.store import LocalStore, S3Store

from imagelake.settings import check_lake_url


class ObjectMissing(FileNotFoundError):
    """The object is not in the lake (never written, deleted or expired)."""


class ObjectExists(FileExistsError):
    """A create-only put met an object that is already there."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime


def _info(meta: Mapping[str, Any]) -> ObjectInfo:
    return ObjectInfo(key=meta["path"], size=int(meta["size"]), last_modified=meta["last_modified"])


class Lake:
    """The lake's object store, addressed with layout keys."""

    def __init__(self, url: str, s3_endpoint: str = "", region: str = "us-east-1") -> None:
        check_lake_url(url)
        self.url = url.rstrip("/")
        parsed = urlparse(self.url)
        if parsed.scheme == "file":
            self.root: Path | None = Path(unquote(parsed.path))
            self._store: LocalStore | S3Store = LocalStore(prefix=self.root, mkdir=True)
        else:  # s3://bucket[/prefix]
            self.root = None
            prefix = parsed.path.strip("/") or None
            if s3_endpoint:
                self._store = S3Store(
                    parsed.netloc,
                    prefix=prefix,
                    region=region,
                    endpoint=s3_endpoint,
                    allow_http=s3_endpoint.startswith("http://"),
                )
            else:
                self._store = S3Store(parsed.netloc, prefix=prefix, region=region)
        self.s3_endpoint = s3_endpoint
        self.region = region

    @classmethod
    def from_settings(cls, settings) -> Lake:
        return cls(settings.lake_url, settings.s3_endpoint, settings.aws_region)

    def uri(self, key: str) -> str:
        """An absolute location for a key (a path locally, ``s3://`` in prod) for DuckDB or Spark."""
        if self.root is not None:
            return str(self.root / key)
        return f"{self.url}/{key}"

    # -- writes ---------------------------------------------------------------
    def put(self, key: str, data: bytes | Iterable[bytes], *, create_only: bool = False) -> None:
        """Write atomically; ``create_only`` refuses to replace an existing object."""
        try:
            obstore.put(self._store, key, data, mode="create" if create_only else "overwrite")
        except AlreadyExistsError as exc:
            raise ObjectExists(key) from exc

    async def put_async(
        self, key: str, data: bytes | AsyncIterable[bytes], *, create_only: bool = False
    ) -> None:
        try:
            await obstore.put_async(self._store, key, data, mode="create" if create_only else "overwrite")
        except AlreadyExistsError as exc:
            raise ObjectExists(key) from exc

    def delete(self, key: str) -> None:
        """Delete an object; deleting a missing object is not an error."""
        with contextlib.suppress(FileNotFoundError):
            obstore.delete(self._store, key)

    async def delete_async(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await obstore.delete_async(self._store, key)

    # -- reads ----------------------------------------------------------------
    def get(self, key: str) -> bytes:
        try:
            return obstore.get(self._store, key).bytes().to_bytes()
        except FileNotFoundError as exc:
            raise ObjectMissing(key) from exc

    def head(self, key: str) -> ObjectInfo | None:
        try:
            return _info(obstore.head(self._store, key))
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under a prefix, recursively."""
        for chunk in obstore.list(self._store, prefix.rstrip("/") + "/" if prefix else None):
            for meta in chunk:
                yield _info(meta)

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        """The immediate sub-folders of a prefix (e.g. its ``dt=`` partitions)."""
        result = obstore.list_with_delimiter(self._store, prefix.rstrip("/") + "/")
        return sorted(p.rstrip("/") + "/" for p in result["common_prefixes"])
