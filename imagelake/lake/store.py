"""Object storage for the lake: one API over a local folder and S3 (obstore).

``file:///abs/path`` gives a :class:`~obstore.store.LocalStore`, ``s3://bucket/prefix``
an :class:`~obstore.store.S3Store` (with an optional endpoint for S3-compatible
servers such as moto). Keys are always the lake layout's keys
(:mod:`imagelake.lake.layout`); the store's own prefix is invisible to callers.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import uuid
from collections.abc import AsyncIterable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import boto3
import obstore
from botocore.exceptions import ClientError
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
    #: Names one version of the object's bytes (S3's ETag; locally inode, mtime and size).
    e_tag: str | None = None


def _info(meta: Mapping[str, Any]) -> ObjectInfo:
    return ObjectInfo(
        key=meta["path"], size=int(meta["size"]), last_modified=meta["last_modified"], e_tag=meta.get("e_tag")
    )


def _local_e_tag(path: Path) -> str:
    """The ETag obstore's LocalStore gives a file: inode, mtime (microseconds) and size, in hex."""
    st = path.stat()
    return f'"{st.st_ino:x}-{st.st_mtime_ns // 1000:x}-{st.st_size:x}"'


def _delete_local_if(path: Path, e_tag: str) -> bool:
    """Delete ``path`` only if it is still the file ``e_tag`` names.

    The file is first renamed aside (atomic), so what is checked is what is deleted. A file that
    changed is put back, unless something newer has taken its name meanwhile (that one stays).
    The aside name does not end in ``.parquet``: no reader's glob ever sees it.
    """
    aside = path.with_name(f".{path.name}.deleting-{uuid.uuid4().hex}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return True
    if _local_e_tag(aside) == e_tag:
        aside.unlink()
        return True
    with contextlib.suppress(FileExistsError):
        os.link(aside, path)
    aside.unlink()
    return False


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
        self._boto: Any = None

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

    def delete_if_unchanged(self, key: str, e_tag: str) -> bool:
        """Delete an object only if it still is the version ``e_tag`` names; False if it changed since
        (it is kept). True if it is gone, deleted now or before."""
        if self.root is not None:
            return _delete_local_if(self.root / key, e_tag)
        parsed = urlparse(self.url)
        prefix = parsed.path.strip("/")
        try:
            self._s3_client().delete_object(
                Bucket=parsed.netloc, Key=f"{prefix}/{key}" if prefix else key, IfMatch=e_tag
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "412"):
                return False
            if code in ("NoSuchKey", "404"):
                return True
            raise
        return True

    def _s3_client(self):
        """boto3 for what obstore does not offer (a conditional delete); same endpoint and region."""
        if self._boto is None:
            kwargs: dict[str, Any] = {"region_name": self.region}
            if self.s3_endpoint:
                kwargs["endpoint_url"] = self.s3_endpoint
            self._boto = boto3.client("s3", **kwargs)
        return self._boto

    async def delete_async(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await obstore.delete_async(self._store, key)

    # -- reads ----------------------------------------------------------------
    def get(self, key: str) -> bytes:
        return self.get_tagged(key)[0]

    def get_tagged(self, key: str) -> tuple[bytes, str | None]:
        """An object's bytes and the ETag of exactly those bytes (for :meth:`delete_if_unchanged`)."""
        try:
            result = obstore.get(self._store, key)
            return result.bytes().to_bytes(), result.meta.get("e_tag")
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

    def list_from(self, prefix: str, start_after: str) -> Iterator[ObjectInfo]:
        """Objects under a prefix whose keys sort after ``start_after`` (S3 starts its listing
        there, so a time-sorted name such as an image id skips everything older unread; the order
        of what comes back is the store's)."""
        for chunk in obstore.list(self._store, prefix.rstrip("/") + "/", offset=start_after):
            for meta in chunk:
                yield _info(meta)

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        """The immediate sub-folders of a prefix (e.g. its ``dt=`` partitions)."""
        result = obstore.list_with_delimiter(self._store, prefix.rstrip("/") + "/")
        return sorted(p.rstrip("/") + "/" for p in result["common_prefixes"])
