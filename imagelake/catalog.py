"""The image catalog on DynamoDB: one item per image, what became of it.

Lifecycle of an item: the API writes ``accepted``; the real-time run writes
``processed`` (with metadata and duplicate info) or ``failed`` (with the
reason); the batch jobs add derivative keys. Every item carries ``expires_at``
(upload time + retention, epoch seconds), DynamoDB's TTL attribute, so the
catalog keeps the same 7 days as the lake.

Writes are idempotent: they set attributes to values derived from the image,
so a repeated write leaves the same item.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from imagelake.events import UploadEvent
from imagelake.settings import CATALOG_PARTITION_KEY, CATALOG_TTL_ATTRIBUTE

#: DynamoDB's time-to-live attribute on every item (epoch seconds), and the partition key.
TTL_ATTRIBUTE = CATALOG_TTL_ATTRIBUTE
KEY_ATTRIBUTE = CATALOG_PARTITION_KEY

_SER = TypeSerializer()
_DES = TypeDeserializer()


class CatalogUnavailable(RuntimeError):
    """DynamoDB could not be reached or refused the request."""


def expires_at(uploaded_at: datetime, retention_days: int) -> int:
    return int((uploaded_at + timedelta(days=retention_days)).timestamp())


def _to_dynamo(value: Any) -> Any:
    """Python values as DynamoDB accepts them (floats as Decimal, datetimes as ISO text)."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    return value


@dataclass
class Catalog:
    """A handle on the catalog table (DynamoDB Local when ``endpoint`` is set)."""

    table: str
    endpoint: str = ""
    region: str = "us-east-1"
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        kwargs: dict[str, Any] = {
            "region_name": self.region,
            "config": Config(
                connect_timeout=self.timeout_s,
                read_timeout=self.timeout_s,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        }
        if self.endpoint:
            kwargs["endpoint_url"] = self.endpoint
            # DynamoDB Local accepts any credentials; real AWS uses the normal chain.
            kwargs.setdefault("aws_access_key_id", "local")
            kwargs.setdefault("aws_secret_access_key", "local")
        self._client = boto3.client("dynamodb", **kwargs)

    @classmethod
    def from_settings(cls, settings) -> Catalog:
        return cls(settings.catalog_table, settings.dynamodb_endpoint, settings.aws_region)

    def _call(self, method: str, **kwargs: Any) -> dict:
        try:
            return getattr(self._client, method)(**kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise
            raise CatalogUnavailable(f"DynamoDB {method} on {self.table} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise CatalogUnavailable(
                f"DynamoDB at {self.endpoint or 'AWS'} is unreachable ({method} on {self.table}): {exc}"
            ) from exc

    # -- table ----------------------------------------------------------------
    def ensure_table(self) -> None:
        """Create the table with its TTL if missing (local stack and tests; prod uses infra/aws)."""
        existing = self._call("list_tables").get("TableNames", [])
        if self.table not in existing:
            try:
                self._call(
                    "create_table",
                    TableName=self.table,
                    KeySchema=[{"AttributeName": KEY_ATTRIBUTE, "KeyType": "HASH"}],
                    AttributeDefinitions=[{"AttributeName": KEY_ATTRIBUTE, "AttributeType": "S"}],
                    BillingMode="PAY_PER_REQUEST",
                )
            except CatalogUnavailable as exc:
                if "ResourceInUseException" not in str(exc):
                    raise
            self._client.get_waiter("table_exists").wait(TableName=self.table)
        ttl = self._call("describe_time_to_live", TableName=self.table)["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            self._call(
                "update_time_to_live",
                TableName=self.table,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
            )

    # -- writes ---------------------------------------------------------------
    def put_accepted(self, event: UploadEvent, retention_days: int) -> None:
        """Record an accepted upload; never overwrites an item that already exists."""
        item = {
            KEY_ATTRIBUTE: event.image_id,
            "client_id": event.client_id,
            "status": "accepted",
            "key": event.key,
            "sha256": event.sha256,
            "size_bytes": event.size_bytes,
            "format": event.format,
            "uploaded_at": event.uploaded_at.isoformat(),
            TTL_ATTRIBUTE: expires_at(event.uploaded_at, retention_days),
        }
        with contextlib.suppress(ClientError):  # already recorded: the first write wins
            self._call(
                "put_item",
                TableName=self.table,
                Item={k: _SER.serialize(_to_dynamo(v)) for k, v in item.items()},
                ConditionExpression="attribute_not_exists(image_id)",
            )

    def update(self, image_id: str, attributes: Mapping[str, Any]) -> None:
        """Set attributes of an item (creating it if needed); ``None`` values are removed."""
        sets = {k: v for k, v in attributes.items() if v is not None and k != KEY_ATTRIBUTE}
        removes = [k for k, v in attributes.items() if v is None and k != KEY_ATTRIBUTE]
        names = {f"#a{i}": k for i, k in enumerate([*sets, *removes])}
        by_name = {v: k for k, v in names.items()}
        expression = []
        if sets:
            expression.append("SET " + ", ".join(f"{by_name[k]} = :v{i}" for i, k in enumerate(sets)))
        if removes:
            expression.append("REMOVE " + ", ".join(by_name[k] for k in removes))
        if not expression:
            return
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Key": {KEY_ATTRIBUTE: {"S": image_id}},
            "UpdateExpression": " ".join(expression),
            "ExpressionAttributeNames": names,
        }
        if sets:
            kwargs["ExpressionAttributeValues"] = {
                f":v{i}": _SER.serialize(_to_dynamo(v)) for i, v in enumerate(sets.values())
            }
        self._call("update_item", **kwargs)

    # -- reads ----------------------------------------------------------------
    def get(self, image_id: str) -> dict[str, Any] | None:
        response = self._call(
            "get_item", TableName=self.table, Key={KEY_ATTRIBUTE: {"S": image_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        if item is None:
            return None
        return _from_dynamo({k: _DES.deserialize(v) for k, v in item.items()})

    def get_many(self, image_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Items by id (missing ids are absent), 100 per request as DynamoDB allows."""
        ids = list(dict.fromkeys(image_ids))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 100):
            request = {self.table: {"Keys": [{KEY_ATTRIBUTE: {"S": i}} for i in ids[start : start + 100]]}}
            while request:
                response = self._call("batch_get_item", RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    decoded = _from_dynamo({k: _DES.deserialize(v) for k, v in item.items()})
                    found[decoded[KEY_ATTRIBUTE]] = decoded
                request = response.get("UnprocessedKeys") or {}
        return found
