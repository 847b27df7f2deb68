"""DynamoDB's item calls as signed JSON POSTs: the catalog's hot path without botocore's per-call machinery.

Every upload costs three catalog writes from our processes (the API's put, the run's claim and
outcome), and botocore spends most of each call's client CPU on its generic machinery: the
operation model, parameter validation, the event hooks, endpoint rules, response parsing
(``make bench-catalog-calls`` measures both ways). DynamoDB's wire protocol is small (a JSON body
named by ``X-Amz-Target``, signed with SigV4), so the item calls go straight to it; tables, TTL and
waiters stay on the boto3 client, which also resolves the endpoint and the credentials used here.

What botocore gave these calls is kept: SigV4 with refreshed credentials (IRSA in the pods),
DynamoDB's response checksum (``x-amz-crc32``), and its standard retries (three attempts,
throttling, 5xx and broken connections, with jittered backoff). Failures raise botocore's own
exceptions (``ClientError`` with DynamoDB's error code, ``HTTPClientError`` when unreachable), so
callers handle one set of errors whichever way a call went.
"""

from __future__ import annotations

import base64
import json
import random
import time
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError
from botocore.httpsession import get_cert_path

#: The item operations the catalog makes, sent directly, by their boto3 method names.
ITEM_OPERATIONS = {
    "get_item": "GetItem",
    "put_item": "PutItem",
    "update_item": "UpdateItem",
    "batch_get_item": "BatchGetItem",
}
#: botocore's standard retry mode, which the catalog's boto3 client uses too: attempts in all, and the
#: error codes it retries.
MAX_ATTEMPTS = 3
RETRIED_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "TransactionInProgressException",
        "LimitExceededException",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
_TARGET_PREFIX = "DynamoDB_20120810."
_CONTENT_TYPE = "application/x-amz-json-1.0"


class _Retry(Exception):
    """One attempt failed in a way botocore would retry; ``final`` is what to raise if none is left."""

    def __init__(self, final: Exception) -> None:
        super().__init__(str(final))
        self.final = final


def _default(value: Any) -> str:
    """JSON for binary attribute values (base64, as the protocol carries them)."""
    raw = getattr(value, "value", value)  # boto3's Binary wraps the bytes
    if isinstance(raw, bytes | bytearray):
        return base64.b64encode(raw).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not a DynamoDB attribute value")


def _binary_decoded(value: Any) -> Any:
    """A response with its binary attribute values as bytes again (botocore's parser does this)."""
    if isinstance(value, dict):
        if len(value) == 1:
            if isinstance(value.get("B"), str):
                return {"B": base64.b64decode(value["B"])}
            bs = value.get("BS")
            if isinstance(bs, list) and all(isinstance(v, str) for v in bs):
                return {"BS": [base64.b64decode(v) for v in bs]}
        return {k: _binary_decoded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_binary_decoded(v) for v in value]
    return value


def backoff_s(attempt: int) -> float:
    """Full jitter after failed attempt ``attempt`` (1, 2, ...), as botocore's standard mode: up to
    2**(attempt - 1) seconds, capped at 20."""
    return random.uniform(0, min(20.0, 2.0 ** (attempt - 1)))


class DynamoDbJson:
    """Item calls to one DynamoDB endpoint; thread-safe (a pool of ``max_connections``)."""

    def __init__(
        self,
        endpoint_url: str,
        region: str,
        credentials: Any,
        *,
        timeout_s: float,
        max_connections: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) endpoint: {endpoint_url!r}")
        self.endpoint_url = endpoint_url
        self.region = region
        self._credentials = credentials
        self._url = f"{parts.scheme}://{parts.netloc}/"
        # The Host header is signed: the one sent is the one signed (default ports left out, as botocore).
        default_port = {"http": 80, "https": 443}[parts.scheme]
        self._host = parts.hostname if parts.port in (None, default_port) else parts.netloc
        pool_args: dict[str, Any] = {
            "maxsize": max_connections,
            "block": False,
            "timeout": urllib3.Timeout(connect=timeout_s, read=timeout_s),
            "retries": False,
        }
        if parts.scheme == "https":
            pool_args["ca_certs"] = get_cert_path(True)
        self._pool = urllib3.connection_from_url(self._url, **pool_args)
        self._sleep = sleep

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """The response of the boto3 method ``method`` (one of :data:`ITEM_OPERATIONS`) with
        ``params``; raises as botocore's client would."""
        operation = ITEM_OPERATIONS[method]
        body = json.dumps(params, default=_default, separators=(",", ":")).encode()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return self._attempt(operation, body)
            except _Retry as retry:
                if attempt == MAX_ATTEMPTS:
                    raise retry.final from None
                self._sleep(backoff_s(attempt))
        raise AssertionError("unreachable")

    def _signed_headers(self, operation: str, body: bytes) -> dict[str, str]:
        credentials = self._credentials
        if credentials is None:
            raise NoCredentialsError()
        frozen = credentials.get_frozen_credentials()
        request = AWSRequest(
            method="POST",
            url=self._url,
            data=body,
            headers={
                "host": self._host,
                "Content-Type": _CONTENT_TYPE,
                "X-Amz-Target": _TARGET_PREFIX + operation,
            },
        )
        SigV4Auth(frozen, "dynamodb", self.region).add_auth(request)
        return dict(request.headers.items())

    def _attempt(self, operation: str, body: bytes) -> dict[str, Any]:
        headers = self._signed_headers(operation, body)
        try:
            response = self._pool.urlopen("POST", "/", body=body, headers=headers, preload_content=True)
        except urllib3.exceptions.HTTPError as exc:
            raise _Retry(HTTPClientError(error=exc)) from exc
        data = response.data
        crc = response.headers.get("x-amz-crc32")
        if crc is not None and str(zlib.crc32(data) & 0xFFFFFFFF) != crc.strip():
            raise _Retry(HTTPClientError(error=f"{operation}: the response's CRC32 does not match its body"))
        try:
            parsed = json.loads(data) if data else {}
        except ValueError:
            parsed = None
        if response.status == 200:
            if not isinstance(parsed, dict):
                raise _Retry(
                    HTTPClientError(error=f"{operation}: the answer is not a JSON object: {data[:200]!r}")
                )
            return _binary_decoded(parsed)
        error = self._client_error(operation, response.status, parsed, data)
        code = error.response["Error"]["Code"]
        if response.status >= 500 or code in RETRIED_CODES:
            raise _Retry(error)
        raise error

    @staticmethod
    def _client_error(operation: str, status: int, parsed: Any, raw: bytes) -> ClientError:
        """botocore's ClientError for a refused call: the code after the ``#`` of ``__type``."""
        parsed = parsed if isinstance(parsed, dict) else {}
        code = str(parsed.get("__type", "")).rpartition("#")[2] or str(status)
        message = parsed.get("message") or parsed.get("Message") or raw[:200].decode("utf-8", "replace")
        response: dict[str, Any] = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        if "Item" in parsed:  # ReturnValuesOnConditionCheckFailure
            response["Item"] = _binary_decoded(parsed["Item"])
        return ClientError(response, operation)
