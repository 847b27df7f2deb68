"""The catalog's item calls as signed JSON POSTs: the same answers as botocore's client from a real
DynamoDB Local, a signature a SigV4 verifier written here from the specification accepts, and
botocore's retries and errors against a real HTTP server that misbehaves on purpose."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError

from imagelake.catalog import CatalogUnavailable
from imagelake.dynamodb_json import MAX_ATTEMPTS, DynamoDbJson
from tests.conftest import dead_endpoint
from tests.integration.test_catalog import make_event

pytestmark = pytest.mark.integration

SECRET = "test-secret"
CREDENTIALS = Credentials("test-access", SECRET, "test-session-token")


def direct(endpoint: str) -> DynamoDbJson:
    """A client of ``endpoint`` that keeps the backoffs it would have slept in ``sleeps``."""
    sleeps: list[float] = []
    client = DynamoDbJson(
        endpoint, "eu-west-1", CREDENTIALS, timeout_s=2.0, max_connections=4, sleep=sleeps.append
    )
    client.sleeps = sleeps  # type: ignore[attr-defined]
    return client


# -- against DynamoDB Local: what botocore's client answers ------------------------------------
def test_items_written_and_read_directly_are_what_botocore_reads_and_writes(catalog):
    item = {
        "image_id": {"S": "direct-1"},
        "size": {"N": "70123"},
        "ratio": {"N": "1.333"},
        "thumb": {"B": b"\x00\xffbytes"},
        "tags": {"SS": ["a", "b"]},
        "exif": {"M": {"Make": {"S": "Canon"}, "ISO": {"N": "200"}}},
        "sizes": {"L": [{"N": "128"}, {"BOOL": True}, {"NULL": True}]},
    }
    catalog._call("put_item", TableName=catalog.table, Item=item)
    key = {"image_id": {"S": "direct-1"}}
    by_botocore = catalog._client.get_item(TableName=catalog.table, Key=key, ConsistentRead=True)["Item"]
    by_json = catalog._call("get_item", TableName=catalog.table, Key=key, ConsistentRead=True)["Item"]
    assert by_json == by_botocore
    assert by_json["thumb"] == {"B": b"\x00\xffbytes"}

    # and the other way round: written by botocore, updated and read back directly
    catalog._client.put_item(TableName=catalog.table, Item={**item, "image_id": {"S": "direct-2"}})
    catalog._call(
        "update_item",
        TableName=catalog.table,
        Key={"image_id": {"S": "direct-2"}},
        UpdateExpression="SET #s = :s REMOVE sizes",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "processed"}},
    )
    got = catalog._client.get_item(TableName=catalog.table, Key={"image_id": {"S": "direct-2"}})["Item"]
    assert got["status"] == {"S": "processed"} and "sizes" not in got and got["thumb"] == item["thumb"]


def test_a_failed_condition_is_botocores_client_error_with_the_item_when_asked(catalog):
    catalog._call("put_item", TableName=catalog.table, Item={"image_id": {"S": "c-1"}, "n": {"N": "1"}})
    with pytest.raises(ClientError) as raised:
        catalog._call(
            "put_item",
            TableName=catalog.table,
            Item={"image_id": {"S": "c-1"}, "n": {"N": "2"}},
            ConditionExpression="attribute_not_exists(image_id)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    assert raised.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert raised.value.operation_name == "PutItem"
    assert raised.value.response["Item"] == {"image_id": {"S": "c-1"}, "n": {"N": "1"}}


def test_a_refused_request_names_its_cause_and_the_catalog_reports_it_unavailable(catalog):
    with pytest.raises(ClientError) as raised:
        catalog._items.call("get_item", {"TableName": "no-such-table", "Key": {"image_id": {"S": "x"}}})
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert raised.value.response["Error"]["Message"]
    catalog.table = "no-such-table"
    with pytest.raises(CatalogUnavailable, match="ResourceNotFoundException"):
        catalog.get("x")


def test_batch_reads_come_back_whole_through_the_catalog(catalog):
    events = [make_event() for _ in range(130)]  # two requests of at most 100 keys
    for event in events:
        catalog.put_accepted(event, 7)
    found = catalog.get_many([e.image_id for e in events], consistent=True)
    assert set(found) == {e.image_id for e in events}
    assert all(found[e.image_id]["status"] == "accepted" for e in events)


# -- against a real HTTP server that answers what a test tells it -------------------------------
class Scripted(ThreadingHTTPServer):
    """Answers each POST with the next of ``answers`` (status, JSON body or raw bytes, headers),
    the last one for ever; keeps every request it got."""

    daemon_threads = True

    def __init__(self, answers: list[tuple[int, object, dict[str, str]]]) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.answers = answers
        self.requests: list[tuple[dict[str, str], bytes]] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        server: Scripted = self.server  # type: ignore[assignment]
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
        n = len(server.requests) - 1
        status, answer, headers = server.answers[min(n, len(server.answers) - 1)]
        raw = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        self.send_response(status)
        headers = {"x-amz-crc32": str(zlib.crc32(raw)), **headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[Callable[..., Scripted]]:
    servers: list[Scripted] = []

    def start(*answers: tuple[int, object, dict[str, str]]) -> Scripted:
        server = Scripted(list(answers))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


OK = (200, {"Item": {"image_id": {"S": "a"}}}, {})
THROTTLED = (400, {"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"}, {})
GET = {"TableName": "t", "Key": {"image_id": {"S": "a"}}}


def sigv4_signature(headers: dict[str, str], body: bytes, secret: str) -> str:
    """The request's SigV4 signature, from the specification (not botocore): canonical request,
    string to sign, and the key derived from the secret, date, region and service in the scope."""
    authorization = headers["authorization"]
    fields = dict(part.strip().split("=", 1) for part in authorization.split(" ", 1)[1].split(","))
    signed = fields["SignedHeaders"].split(";")
    scope = fields["Credential"].split("/", 1)[1]
    date, region, service, _ = scope.split("/")
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            *(f"{name}:{' '.join(headers[name].split())}" for name in signed),
            "",
            ";".join(signed),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", headers["x-amz-date"], scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def test_the_request_is_signed_as_sigv4_specifies_with_the_host_it_is_sent_to(scripted):
    server = scripted(OK)
    assert direct(server.endpoint).call("get_item", GET) == {"Item": {"image_id": {"S": "a"}}}
    headers, body = server.requests[0]
    assert json.loads(body) == GET
    assert headers["x-amz-target"] == "DynamoDB_20120810.GetItem"
    assert headers["content-type"] == "application/x-amz-json-1.0"
    assert headers["x-amz-security-token"] == "test-session-token"
    signed = headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"host", "x-amz-date", "x-amz-target", "content-type"} <= set(signed)
    assert "/eu-west-1/dynamodb/aws4_request" in headers["authorization"]
    assert headers["host"] == server.endpoint.removeprefix("http://")
    assert headers["authorization"].endswith("Signature=" + sigv4_signature(headers, body, SECRET))
    assert sigv4_signature(headers, body, "another-secret") != sigv4_signature(headers, body, SECRET)


def test_throttling_and_server_errors_are_retried_as_botocore_retries_them(scripted):
    server = scripted(THROTTLED, (500, {"__type": "InternalServerError"}, {}), OK)
    client = direct(server.endpoint)
    assert client.call("get_item", GET)["Item"] == {"image_id": {"S": "a"}}
    assert len(server.requests) == 3
    assert len(client.sleeps) == 2 and all(0 <= s <= 2 for s in client.sleeps)


def test_a_call_throttled_every_time_gives_up_after_three_attempts_with_the_code(scripted):
    server = scripted(THROTTLED)
    with pytest.raises(ClientError) as raised:
        direct(server.endpoint).call("update_item", GET)
    assert raised.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert raised.value.operation_name == "UpdateItem"
    assert len(server.requests) == MAX_ATTEMPTS


def test_a_refusal_that_cannot_change_is_not_retried(scripted):
    server = scripted(
        (400, {"__type": "com.amazon.coral.validate#ValidationException", "message": "bad key"}, {})
    )
    with pytest.raises(ClientError, match="bad key") as raised:
        direct(server.endpoint).call("put_item", GET)
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert len(server.requests) == 1


def test_a_body_that_does_not_match_its_checksum_is_fetched_again(scripted):
    good = json.dumps(OK[1]).encode()
    server = scripted((200, good, {"x-amz-crc32": str(zlib.crc32(good) ^ 1)}), OK)
    assert direct(server.endpoint).call("get_item", GET) == OK[1]
    assert len(server.requests) == 2


def test_an_endpoint_nobody_answers_is_botocores_http_client_error_after_three_attempts():
    client = direct(f"http://{dead_endpoint()}")
    with pytest.raises(HTTPClientError):
        client.call("get_item", GET)
    assert len(client.sleeps) == MAX_ATTEMPTS - 1


def test_an_answer_that_is_not_json_is_a_client_error_with_the_status(scripted):
    server = scripted((502, b"<html>bad gateway</html>", {}))
    with pytest.raises(ClientError, match="bad gateway") as raised:
        direct(server.endpoint).call("get_item", GET)
    assert raised.value.response["Error"]["Code"] == "502"
    assert len(server.requests) == MAX_ATTEMPTS


def test_a_success_whose_body_is_not_json_is_fetched_again_and_then_an_http_client_error(scripted):
    server = scripted((200, b"<html>proxy page</html>", {}), OK)
    assert direct(server.endpoint).call("get_item", GET) == OK[1]
    server = scripted((200, b"[1, 2]", {}))
    with pytest.raises(HTTPClientError, match="not a JSON object"):
        direct(server.endpoint).call("get_item", GET)
    assert len(server.requests) == MAX_ATTEMPTS


def test_no_credentials_is_said_before_anything_is_sent(scripted):
    server = scripted(OK)
    client = DynamoDbJson(server.endpoint, "eu-west-1", None, timeout_s=1.0, max_connections=1)
    with pytest.raises(NoCredentialsError):
        client.call("get_item", GET)
    assert server.requests == []


def test_only_an_http_endpoint_is_taken():
    with pytest.raises(ValueError, match="not an http"):
        DynamoDbJson("localhost:8000", "eu-west-1", CREDENTIALS, timeout_s=1.0, max_connections=1)
