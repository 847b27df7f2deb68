"""The image catalog on DynamoDB: one item per image, what became of it.

Lifecycle of an item: the API writes ``accepted``; the real-time run claims it
(``claimed_by``: the batch that archived its event) and writes ``processed``
(with metadata and duplicate info) or ``failed`` (with the reason); the batch
jobs add derivative keys. An upload the API refused after writing the item (its
event's delivery timed out) becomes ``refused``: the claim and the refusal are
conditional writes on the one item, so exactly one of them wins, and an event
that reaches Kafka after all is archived as a dead letter, never processed. Every item carries ``expires_at``
(upload time + retention, epoch seconds), DynamoDB's TTL attribute, so the
catalog keeps the same 7 days as the lake; reads leave out an item past it
that DynamoDB has not deleted yet.

Writes are idempotent: they set attributes to values derived from the image,
so a repeated write leaves the same item.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError

from imagelake.dynamodb_json import ITEM_OPERATIONS, MAX_ATTEMPTS, DynamoDbJson
from imagelake.lake.schemas import FACT_COLUMNS
from imagelake.realtime.events import UploadEvent
from imagelake.settings import CATALOG_PARTITION_KEY, CATALOG_TTL_ATTRIBUTE

#: DynamoDB's time-to-live attribute on every item (epoch seconds), and the partition key.
TTL_ATTRIBUTE = CATALOG_TTL_ATTRIBUTE
KEY_ATTRIBUTE = CATALOG_PARTITION_KEY

_SER = TypeSerializer()
_DES = TypeDeserializer()
#: The keys a handle on DynamoDB Local signs with (it accepts any).
LOCAL_KEY = "local"


class CatalogUnavailable(RuntimeError):
    """DynamoDB could not be reached or refused the request."""


def expires_at(uploaded_at: datetime, retention_days: int) -> int:
    return int((uploaded_at + timedelta(days=retention_days)).timestamp())


def is_expired(item: Mapping[str, Any], now: float) -> bool:
    """Past its TTL. DynamoDB deletes an expired item only some time later (up to days),
    and DynamoDB Local never does, so reads treat it as gone themselves."""
    expires = item.get(TTL_ATTRIBUTE)
    return isinstance(expires, int) and expires <= now


def _live(item: Mapping[str, Any], now: float) -> dict[str, Any] | None:
    """A DynamoDB item as Python values, or None once it is past its TTL."""
    decoded = _from_dynamo({k: _DES.deserialize(v) for k, v in item.items()})
    return None if is_expired(decoded, now) else decoded


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


#: Item statuses: written by the API, then by the real-time run (see the module's docstring).
ACCEPTED, PROCESSED, FAILED, REFUSED = "accepted", "processed", "failed", "refused"
#: The outcome of a batch's claim on an upload's item.
CLAIMED, MISSING = "claimed", "missing"
#: Items that remember an ``Idempotency-Key`` share the table, under keys no image id can take.
IDEMPOTENCY_PREFIX = "idempotency#"


def idempotency_item_key(client_id: str, key: str) -> str:
    """The item of one client's ``Idempotency-Key`` (hashed: a key is any text the client chose)."""
    return f"{IDEMPOTENCY_PREFIX}{client_id}#{hashlib.sha256(key.encode()).hexdigest()[:40]}"


#: Item attributes holding a run's duplicate answer (the same names as the image_metadata columns).
DUPLICATE_ATTRIBUTES = ("duplicate_of", "duplicate_kind", "duplicate_distance")

#: image_metadata columns a run writes to the item, beside status and duplicates.
OUTCOME_COLUMNS = (
    "client_id",
    "key",
    "error",
    "sha256",
    "size_bytes",
    *FACT_COLUMNS,
    "uploaded_at",
    "processed_at",
    "batch_id",
)


def outcome_attributes(row: Mapping[str, Any], retention_days: int) -> dict[str, Any]:
    """The item attributes of an image_metadata row (``None`` removes an attribute)."""
    values = {c: row[c] for c in OUTCOME_COLUMNS}
    return {
        "status": row["status"],
        # Statistics are float32 in Parquet; three decimals say all they know.
        **{c: round(v, 3) if isinstance(v, float) else v for c, v in values.items()},
        TTL_ATTRIBUTE: expires_at(row["uploaded_at"], retention_days),
    }


@dataclass
class Catalog:
    """A handle on the catalog table (DynamoDB Local when ``endpoint`` is set)."""

    table: str
    endpoint: str = ""
    region: str = "us-east-1"
    timeout_s: float = 5.0
    #: Concurrent calls one handle serves. The upload API calls it from Starlette's thread
    #: pool (40 threads); botocore's default of 10 drops and reopens connections past that,
    #: with a warning per call.
    max_connections: int = 40

    def __post_init__(self) -> None:
        kwargs: dict[str, Any] = {
            "region_name": self.region,
            "config": Config(
                connect_timeout=self.timeout_s,
                read_timeout=self.timeout_s,
                retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
                max_pool_connections=self.max_connections,
            ),
        }
        if self.endpoint:
            kwargs["endpoint_url"] = self.endpoint
            # DynamoDB Local accepts any credentials; real AWS uses the normal chain.
            kwargs.setdefault("aws_access_key_id", LOCAL_KEY)
            kwargs.setdefault("aws_secret_access_key", LOCAL_KEY)
        # boto3's default session: its parsed models and resolved credentials serve every handle of
        # the process (a session of its own would parse the models again for each run's handles, and
        # resolve the credentials again: with IRSA, a call to STS).
        self._client = boto3.client("dynamodb", **kwargs)
        if self.endpoint:
            credentials = Credentials(LOCAL_KEY, LOCAL_KEY)
        else:
            assert boto3.DEFAULT_SESSION is not None  # boto3.client made it
            credentials = boto3.DEFAULT_SESSION.get_credentials()
        # The item calls (every upload's three writes) skip botocore's per-call machinery
        # (imagelake/dynamodb_json.py); the endpoint and the credentials are the client's.
        self._items = DynamoDbJson(
            self._client.meta.endpoint_url,
            self._client.meta.region_name,
            credentials,
            timeout_s=self.timeout_s,
            max_connections=self.max_connections,
        )

    @classmethod
    def from_settings(cls, settings) -> Catalog:
        return cls(settings.catalog_table, settings.dynamodb_endpoint, settings.aws_region)

    def _call(self, method: str, **kwargs: Any) -> dict:
        try:
            if method in ITEM_OPERATIONS:
                return self._items.call(method, kwargs)
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
    def put_accepted(self, event: UploadEvent, retention_days: int, request_id: str | None = None) -> None:
        """Record an accepted upload; never overwrites an item that already exists. ``request_id``
        names the API request that took it (the run's later writes set other attributes only)."""
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
        if request_id is not None:
            item["request_id"] = request_id
        with contextlib.suppress(ClientError):  # already recorded: the first write wins
            self._call(
                "put_item",
                TableName=self.table,
                Item={k: _SER.serialize(_to_dynamo(v)) for k, v in item.items()},
                ConditionExpression="attribute_not_exists(image_id)",
            )

    def update(
        self,
        image_id: str,
        attributes: Mapping[str, Any],
        *,
        condition: str | None = None,
        condition_values: Mapping[str, Any] | None = None,
    ) -> None:
        """Set attributes of an item (creating it if needed); ``None`` values are removed.

        ``condition`` is a DynamoDB condition expression over the item, its
        attribute names written as they are and its values as ``:name`` keys
        of ``condition_values``; when it is false, botocore's
        ``ConditionalCheckFailedException`` is raised and nothing changes.
        """
        request = self.update_request(
            image_id, attributes, condition=condition, condition_values=condition_values
        )
        if request is not None:
            self._call("update_item", **request)

    def update_request(
        self,
        image_id: str,
        attributes: Mapping[str, Any],
        *,
        condition: str | None = None,
        condition_values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """The ``UpdateItem`` parameters of :meth:`update` (None: nothing to set or remove)."""
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
            return None
        request: dict[str, Any] = {
            "TableName": self.table,
            "Key": {KEY_ATTRIBUTE: {"S": image_id}},
            "UpdateExpression": " ".join(expression),
            "ExpressionAttributeNames": names,
        }
        values = {f":v{i}": _SER.serialize(_to_dynamo(v)) for i, v in enumerate(sets.values())}
        if condition:
            values.update({k: _SER.serialize(_to_dynamo(v)) for k, v in (condition_values or {}).items()})
            request["ConditionExpression"] = condition
        if values:
            request["ExpressionAttributeValues"] = values
        return request

    def record_outcome(self, row: Mapping[str, Any], retention_days: int) -> None:
        """Write what a run made of an image: its status, metadata and duplicate info.

        One atomic update per item, so an item never says ``processed``
        without its metadata. ``duplicate_of`` only ever moves earlier (the read
        rule's :func:`~imagelake.lake.read_rule.is_earlier_original`, here as a
        DynamoDB condition): a run that saw fewer images never replaces an
        earlier original another run found, so the item converges whatever
        order runs finish in.
        """
        attributes = outcome_attributes(row, retention_days)
        if row.get("duplicate_of") is None:
            self.update(row["image_id"], attributes)
            return
        duplicate = {c: row[c] for c in DUPLICATE_ATTRIBUTES}
        try:
            self.update(
                row["image_id"],
                {**attributes, **duplicate},
                condition="attribute_not_exists(duplicate_of) OR duplicate_of >= :earliest",
                condition_values={":earliest": row["duplicate_of"]},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            self.update(row["image_id"], attributes)  # an earlier original is already recorded

    def record_outcomes(
        self,
        rows: Iterable[Mapping[str, Any]],
        retention_days: int,
        *,
        workers: int = 8,
        on_written: Callable[[str], None] | None = None,
    ) -> int:
        """:meth:`record_outcome` for many rows in parallel; the first failure stops the rest and raises.

        ``on_written`` is called with each image id once its item is written (progress).
        """
        rows = list(rows)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(self.record_outcome, row, retention_days): row["image_id"] for row in rows}
            try:
                for future in as_completed(futures):
                    future.result()
                    if on_written is not None:
                        on_written(futures[future])
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return len(rows)

    def record_derivatives_failure(self, image_id: str, reason: str) -> bool:
        """Say on an image's item why its derivatives could not be made (the GET shows it).

        Only on an item that exists: an image the catalog has forgotten gets no partial item.
        Returns whether it was written. A later run that makes them clears it.
        """
        try:
            self.update(
                image_id,
                {"derivatives_error": reason},
                condition=f"attribute_exists({KEY_ATTRIBUTE})",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def _failed_condition(self, exc: ClientError) -> bool:
        return exc.response["Error"]["Code"] == "ConditionalCheckFailedException"

    # -- the claim and the refusal: exactly one wins per upload -------------------------
    def claim(self, image_id: str, batch_id: str) -> str:
        """Take an upload for the batch that archives its event: :data:`CLAIMED`, :data:`REFUSED`
        (the API refused it first: the event must not be processed) or :data:`MISSING` (no item:
        the event is processed as before). A batch's re-run claims again, with the same answer."""
        try:
            self._call("update_item", **self.claim_request(image_id, batch_id))
        except ClientError as exc:
            if not self._failed_condition(exc):
                raise
            item = self.get(image_id)
            return REFUSED if item is not None and item.get("status") == REFUSED else MISSING
        return CLAIMED

    def claim_request(self, image_id: str, batch_id: str) -> dict[str, Any]:
        """The ``UpdateItem`` parameters of :meth:`claim`."""
        return {
            "TableName": self.table,
            "Key": {KEY_ATTRIBUTE: {"S": image_id}},
            "UpdateExpression": "SET claimed_by = if_not_exists(claimed_by, :batch)",
            "ConditionExpression": f"attribute_exists({KEY_ATTRIBUTE}) AND #s <> :refused",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":batch": {"S": batch_id}, ":refused": {"S": REFUSED}},
        }

    def claim_all(self, image_ids: Iterable[str], batch_id: str, *, workers: int = 8) -> dict[str, str]:
        """:meth:`claim` for many uploads in parallel: image id -> outcome."""
        ids = list(dict.fromkeys(image_ids))
        if not ids:
            return {}
        with ThreadPoolExecutor(max_workers=min(workers, len(ids))) as pool:
            return dict(zip(ids, pool.map(lambda i: self.claim(i, batch_id), ids), strict=True))

    def put_refused(self, image_id: str, client_id: str, reason: str, retention_days: int) -> None:
        """Record that an upload the API never stored did not stand (for an ``Idempotency-Key`` that
        reserved it: a retry is then a new upload at once, not a 409)."""
        now = datetime.now(UTC)
        item = {
            KEY_ATTRIBUTE: image_id,
            "client_id": client_id,
            "status": REFUSED,
            "error": reason,
            TTL_ATTRIBUTE: expires_at(now, retention_days),
        }
        with contextlib.suppress(ClientError):  # an item already there says more
            self._call(
                "put_item",
                TableName=self.table,
                Item={k: _SER.serialize(_to_dynamo(v)) for k, v in item.items()},
                ConditionExpression=f"attribute_not_exists({KEY_ATTRIBUTE})",
            )

    def refuse(self, image_id: str, reason: str) -> bool:
        """Mark an ``accepted`` upload refused, unless a batch has claimed it: True if refused now
        (its event, should it reach Kafka, is never processed), False if the upload stands."""
        try:
            self._call(
                "update_item",
                TableName=self.table,
                Key={KEY_ATTRIBUTE: {"S": image_id}},
                UpdateExpression="SET #s = :refused, #e = :reason",
                ConditionExpression="#s = :accepted AND attribute_not_exists(claimed_by)",
                ExpressionAttributeNames={"#s": "status", "#e": "error"},
                ExpressionAttributeValues={
                    ":refused": {"S": REFUSED},
                    ":accepted": {"S": ACCEPTED},
                    ":reason": {"S": reason},
                },
            )
        except ClientError as exc:
            if not self._failed_condition(exc):
                raise
            return False
        return True

    # -- idempotency keys ---------------------------------------------------------------
    def idempotency_record(self, client_id: str, key: str) -> dict[str, Any] | None:
        """What an earlier request with this ``Idempotency-Key`` reserved (``image_id``,
        ``reserved_at``), if it is within the retention period."""
        item = self.get(idempotency_item_key(client_id, key))
        return None if item is None else {"image_id": item["upload_id"], "reserved_at": item["reserved_at"]}

    def reserve_idempotency_key(
        self, client_id: str, key: str, image_id: str, *, replaces: str | None, retention_days: int
    ) -> bool:
        """Bind an ``Idempotency-Key`` to the upload ``image_id``: only if no request holds it, or, with
        ``replaces``, if it still names that earlier upload (which did not stand). False if another
        request got there first."""
        now = datetime.now(UTC)
        item = {
            KEY_ATTRIBUTE: idempotency_item_key(client_id, key),
            "upload_id": image_id,
            "reserved_at": now.isoformat(),
            TTL_ATTRIBUTE: expires_at(now, retention_days),
        }
        condition: dict[str, Any] = {"ConditionExpression": f"attribute_not_exists({KEY_ATTRIBUTE})"}
        if replaces is not None:
            condition = {
                "ConditionExpression": "upload_id = :previous",
                "ExpressionAttributeValues": {":previous": {"S": replaces}},
            }
        try:
            self._call(
                "put_item",
                TableName=self.table,
                Item={k: _SER.serialize(_to_dynamo(v)) for k, v in item.items()},
                **condition,
            )
        except ClientError as exc:
            if not self._failed_condition(exc):
                raise
            return False
        return True

    # -- reads ----------------------------------------------------------------
    def get(self, image_id: str) -> dict[str, Any] | None:
        response = self._call(
            "get_item", TableName=self.table, Key={KEY_ATTRIBUTE: {"S": image_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        if item is None:
            return None
        return _live(item, time.time())

    def get_many(self, image_ids: Iterable[str], *, consistent: bool = False) -> dict[str, dict[str, Any]]:
        """Items by id (missing and expired ids are absent), 100 per request as DynamoDB allows;
        ``consistent`` reads see every write acknowledged before the call."""
        ids = list(dict.fromkeys(image_ids))
        now = time.time()
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 100):
            keys = [{KEY_ATTRIBUTE: {"S": i}} for i in ids[start : start + 100]]
            request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": consistent}}
            while request:
                response = self._call("batch_get_item", RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    if (decoded := _live(item, now)) is not None:
                        found[decoded[KEY_ATTRIBUTE]] = decoded
                request = response.get("UnprocessedKeys") or {}
        return found
