"""The upload API over real HTTP, against a real Kafka broker."""

import hashlib
import json
import random
import socket
from datetime import datetime, timedelta

import httpx
import pytest

from imagelake.api.application import create_app
from imagelake.catalog import Catalog
from imagelake.lake.store import Lake
from imagelake.realtime.events import decode_event
from tests.conftest import dead_endpoint
from tests.support import sample_images as images
from tests.support.observed import all_messages, catalog_items, raw_objects
from tests.support.servers import serve
from tests.unit.test_imaging import huge_tiff, icc_chunk, with_chunk

pytestmark = pytest.mark.integration
KEY = {"X-API-Key": "dev-key"}


def raw_http(url: str, request: str) -> str:
    """Send a hand-written request head (no body) and return the response head."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request.encode())
        return sock.recv(4096).decode(errors="replace")


def upload_once(settings, lake: Lake, catalog: Catalog) -> httpx.Response:
    """One upload to an API started for it (for faults set up in ``settings``, ``lake`` or ``catalog``)."""
    with serve(create_app(settings, lake=lake, catalog=catalog)) as url:
        return httpx.post(
            f"{url}/v1/images",
            headers=KEY,
            files={"file": ("a.jpg", images.jpeg(), "image/jpeg")},
            timeout=30,
        )


@pytest.fixture
def api(settings_factory, kafka_bootstrap, topic, catalog):
    settings = settings_factory(
        IMAGELAKE_KAFKA_BOOTSTRAP=kafka_bootstrap,
        IMAGELAKE_UPLOADS_TOPIC=topic,
        IMAGELAKE_API_KEYS="dev-key:dev,other-key:other",
    )
    lake = Lake.from_settings(settings)
    app = create_app(settings, lake=lake, catalog=catalog)
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client, lake, settings


def test_upload_is_stored_and_announced(api, kafka_bootstrap):
    client, lake, settings = api
    data = images.jpeg(120, 80, seed=1)
    response = client.post("/v1/images", headers=KEY, files={"file": ("cat.jpg", data, "image/jpeg")})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "accepted"
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    [key] = raw_objects(lake)
    assert key.endswith("/" + body["image_id"]) and key.startswith("raw/images/dt=")
    assert lake.get(key) == data
    [value] = all_messages(kafka_bootstrap, settings.uploads_topic)
    event = decode_event(value)
    assert (event.image_id, event.client_id, event.key, event.sha256) == (
        body["image_id"],
        "dev",
        key,
        body["sha256"],
    )
    assert event.size_bytes == len(data) and event.format == "JPEG"


def test_healthz(api):
    client, _, _ = api
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"content": b"", "headers": {"Content-Type": "multipart/form-data; boundary=xyz"}}, 400),
        ({"files": {"other": ("a.jpg", images.jpeg(), "image/jpeg")}}, 400),
        ({"content": images.jpeg(), "headers": {"Content-Type": "image/jpeg"}}, 400),
        ({"files": {"file": ("empty.jpg", b"", "image/jpeg")}}, 400),
    ],
    ids=["empty-body", "missing-file-field", "not-multipart", "empty-file"],
)
def test_missing_or_empty_file_is_400(api, kwargs, status, kafka_bootstrap):
    client, lake, settings = api
    headers = {**KEY, **kwargs.pop("headers", {})}
    response = client.post("/v1/images", headers=headers, **kwargs)
    assert response.status_code == status, response.text
    assert "file" in response.json()["detail"] or "multipart" in response.json()["detail"]
    assert raw_objects(lake) == []
    assert all_messages(kafka_bootstrap, settings.uploads_topic) == []


def test_two_files_in_the_file_field_are_400_with_nothing_stored(api, kafka_bootstrap):
    """curl -F file=@a.png -F file=@b.jpg: the second image is not silently dropped."""
    client, lake, settings = api
    files = [("file", ("a.png", images.png(), "image/png")), ("file", ("b.jpg", images.jpeg(), "image/jpeg"))]
    response = client.post("/v1/images", headers=KEY, files=files)
    assert response.status_code == 400, response.text
    assert "send one file per request" in response.json()["detail"]
    assert raw_objects(lake) == []
    assert all_messages(kafka_bootstrap, settings.uploads_topic) == []


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}], ids=["missing", "wrong"])
def test_bad_api_key_is_401(api, headers):
    client, lake, _ = api
    response = client.post(
        "/v1/images", headers=headers, files={"file": ("a.jpg", images.jpeg(), "image/jpeg")}
    )
    assert response.status_code == 401
    assert "X-API-Key" in response.json()["detail"]
    assert raw_objects(lake) == []


@pytest.mark.parametrize(
    ("name", "data", "declared"),
    [
        ("notes.txt", b"just some text", "text/plain"),
        ("page.html", b"<html><body>hello</body></html>", "text/html"),
        ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml"),
        ("doc.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "application/pdf"),
        ("sneaky.jpg", b"%PDF-1.4 pretending to be a jpeg", "image/jpeg"),
    ],
)
def test_non_images_are_415(api, name, data, declared, kafka_bootstrap):
    client, lake, settings = api
    response = client.post("/v1/images", headers=KEY, files={"file": (name, data, declared)})
    assert response.status_code == 415, response.text
    assert "JPEG" in response.json()["detail"]
    assert raw_objects(lake) == []
    assert all_messages(kafka_bootstrap, settings.uploads_topic) == []


def test_truncated_jpeg_is_422(api):
    client, lake, _ = api
    data = images.jpeg(300, 200)
    response = client.post(
        "/v1/images", headers=KEY, files={"file": ("t.jpg", data[: len(data) // 2], "image/jpeg")}
    )
    assert response.status_code == 422
    assert "truncated" in response.json()["detail"]
    assert raw_objects(lake) == []


@pytest.mark.parametrize(
    ("name", "data", "size"),
    [
        ("big.png", images.huge_png(), "30000x30000 = 900,000,000"),
        ("big.tif", huge_tiff(12000, 12000), "12000x12000 = 144,000,000"),
    ],
    ids=["png", "tiff"],
)
def test_huge_image_is_refused_before_decoding_naming_only_our_limit(api, name, data, size, kafka_bootstrap):
    client, lake, settings = api
    response = client.post(
        "/v1/images", headers=KEY, files={"file": (name, data, "application/octet-stream")}
    )
    assert response.status_code == 422
    # Not Pillow's decompression-bomb text, which names its own limit (twice ours) beside ours.
    assert response.json()["detail"] == f"image is {size} pixels, more than the limit of 64,000,000"
    assert raw_objects(lake) == []
    assert all_messages(kafka_bootstrap, settings.uploads_topic) == []


def test_a_png_with_a_3_mb_icc_profile_is_accepted(api):
    """As the same profile in a JPEG is: Pillow's 1 MiB default for PNG metadata no longer refuses it."""
    client, lake, _ = api
    data = with_chunk(images.png(), b"iCCP", icc_chunk(random.Random(2).randbytes(3_000_000)))
    response = client.post("/v1/images", headers=KEY, files={"file": ("icc.png", data, "image/png")})
    assert response.status_code == 202, response.text
    [key] = raw_objects(lake)
    assert lake.get(key) == data


def test_body_over_the_cap_is_413_and_cut_short(settings_factory, kafka_bootstrap, topic, catalog):
    settings = settings_factory(
        IMAGELAKE_KAFKA_BOOTSTRAP=kafka_bootstrap,
        IMAGELAKE_UPLOADS_TOPIC=topic,
        IMAGELAKE_MAX_UPLOAD_BYTES="200000",
    )
    lake = Lake.from_settings(settings)
    sent = {"bytes": 0}
    boundary = "b0undary"

    def body():  # streamed without Content-Length: the server must cut it, not buffer it
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.jpg"\r\n\r\n'.encode()
        chunk = b"\xff\xd8\xff" + b"\x00" * 65533
        for _ in range(2000):  # 128 MiB if it were all read
            sent["bytes"] += len(chunk)
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    app = create_app(settings, lake=lake, catalog=catalog)
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        try:
            response = client.post(
                "/v1/images",
                headers={**KEY, "Content-Type": f"multipart/form-data; boundary={boundary}"},
                content=body(),
            )
            assert response.status_code == 413
            assert "limit" in response.json()["detail"]
        except httpx.HTTPError:
            pass  # the server may close the connection while the client is still sending
        declared = raw_http(
            url,
            "POST /v1/images HTTP/1.1\r\nHost: x\r\nX-API-Key: dev-key\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 999999999\r\n\r\n",
        )
    assert declared.startswith("HTTP/1.1 413"), declared
    assert sent["bytes"] < 20 * 1024 * 1024, f"the server read {sent['bytes']} bytes of an oversized body"
    assert raw_objects(lake) == []


def test_filename_with_path_traversal_is_ignored(api, tmp_path):
    client, lake, _ = api
    response = client.post(
        "/v1/images", headers=KEY, files={"file": ("../../../etc/passwd", images.png(), "image/png")}
    )
    assert response.status_code == 202
    [key] = raw_objects(lake)
    assert ".." not in key and "passwd" not in key
    assert key == f"raw/images/{key.split('/')[2]}/{response.json()['image_id']}"
    assert not any(p.name == "passwd" for p in tmp_path.rglob("*"))


def test_a_very_long_file_name_is_400_naming_the_header_limit(api, kafka_bootstrap):
    client, lake, settings = api
    ok = client.post("/v1/images", headers=KEY, files={"file": ("é" * 1000, images.png(), "image/png")})
    assert ok.status_code == 202, ok.text
    [stored] = raw_objects(lake)
    response = client.post("/v1/images", headers=KEY, files={"file": ("é" * 4000, images.png(), "image/png")})
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert "header of a multipart part is longer than the 4,224-byte limit" in detail, detail
    assert "shorter name" in detail
    assert raw_objects(lake) == [stored]
    assert len(all_messages(kafka_bootstrap, settings.uploads_topic)) == 1


def test_kafka_down_at_upload_time_is_503_with_nothing_left_behind(settings_factory, topic, catalog):
    settings = settings_factory(
        IMAGELAKE_KAFKA_BOOTSTRAP=dead_endpoint(), IMAGELAKE_KAFKA_DELIVERY_TIMEOUT_S="2"
    )
    lake = Lake.from_settings(settings)
    response = upload_once(settings, lake, catalog)
    assert response.status_code == 503
    assert "retry" in response.json()["detail"]
    assert raw_objects(lake) == []
    # the item stays as a tombstone, so an event that reaches Kafka late is never processed
    [item] = catalog_items(catalog)
    assert item["status"]["S"] == "refused"


def test_every_upload_gets_its_own_key(api):
    client, lake, _ = api
    data = images.jpeg(seed=3)
    ids = {
        client.post("/v1/images", headers=KEY, files={"file": ("a.jpg", data, "image/jpeg")}).json()[
            "image_id"
        ]
        for _ in range(3)
    }
    assert len(ids) == 3
    assert len(raw_objects(lake)) == 3
    assert json.dumps(sorted(ids))  # ids are plain strings


def test_the_catalog_holds_accepted_at_once_and_get_answers_it(api, catalog):
    client, _, settings = api
    data = images.photo(120, 80, seed=1)
    body = client.post("/v1/images", headers=KEY, files={"file": ("a.jpg", data, "image/jpeg")}).json()
    item = catalog.get(body["image_id"])
    assert (item["status"], item["client_id"], item["sha256"]) == ("accepted", "dev", body["sha256"])
    answer = client.get(f"/v1/images/{body['image_id']}", headers=KEY)
    assert answer.status_code == 200, answer.text
    status = answer.json()
    assert (status["image_id"], status["status"], status["duplicate"]) == (body["image_id"], "accepted", None)
    assert status["metadata"]["sha256"] == body["sha256"] and status["metadata"]["width"] is None
    expires = datetime.fromisoformat(status["expires_at"])
    uploaded = datetime.fromisoformat(status["uploaded_at"])
    assert expires - uploaded == timedelta(days=settings.retention_days) - timedelta(
        microseconds=uploaded.microsecond
    )


@pytest.mark.parametrize(
    ("key", "image_id", "status"),
    [
        ("other-key", None, 404),  # another client's image is answered like a missing one
        ("dev-key", "01" + "Z" * 24, 404),  # well-formed, never uploaded
        ("dev-key", "../../etc/passwd", 404),
        ("dev-key", "not-an-id", 404),
        ("wrong-key", None, 401),
    ],
    ids=["other-client", "unknown", "traversal", "malformed", "bad-key"],
)
def test_get_refuses_what_the_caller_may_not_see(api, key, image_id, status):
    client, _, _ = api
    uploaded = client.post(
        "/v1/images", headers=KEY, files={"file": ("a.jpg", images.photo(64, 48), "image/jpeg")}
    ).json()["image_id"]
    response = client.get(f"/v1/images/{image_id or uploaded}", headers={"X-API-Key": key})
    assert response.status_code == status, response.text
    if status == 404:
        # Answered by the route, or for a path with slashes by the router: either way, nothing leaks.
        assert response.json()["detail"].startswith("no image") or image_id.startswith("..")
        assert "sha256" not in response.text


def test_catalog_down_at_upload_time_is_503_with_nothing_left_behind(
    settings_factory, kafka_bootstrap, topic
):
    settings = settings_factory(
        IMAGELAKE_KAFKA_BOOTSTRAP=kafka_bootstrap,
        IMAGELAKE_UPLOADS_TOPIC=topic,
        IMAGELAKE_DYNAMODB_ENDPOINT=f"http://{dead_endpoint()}",
    )
    lake = Lake.from_settings(settings)
    unreachable = Catalog("images", settings.dynamodb_endpoint, timeout_s=1)
    with serve(create_app(settings, lake=lake, catalog=unreachable)) as url:
        response = httpx.post(
            f"{url}/v1/images",
            headers=KEY,
            files={"file": ("a.jpg", images.jpeg(), "image/jpeg")},
            timeout=60,
        )
        status = httpx.get(f"{url}/v1/images/{'01' + 'Z' * 24}", headers=KEY, timeout=60)
    assert response.status_code == 503 and "catalog" in response.json()["detail"]
    assert status.status_code == 503 and "retry" in status.json()["detail"]
    assert raw_objects(lake) == []
    assert all_messages(kafka_bootstrap, topic) == []


def test_a_duplicate_is_shown_only_when_the_original_is_the_callers_own(api, catalog):
    """Telling a client its image repeats another client's would tell it what that client uploaded."""
    client, _, _ = api
    data = images.photo(64, 48, seed=7)

    def upload(key: str) -> str:
        files = {"file": ("a.jpg", data, "image/jpeg")}
        return client.post("/v1/images", headers={"X-API-Key": key}, files=files).json()["image_id"]

    original, own_copy, others_copy = upload("dev-key"), upload("dev-key"), upload("other-key")
    verdict = {"duplicate_of": original, "duplicate_kind": "exact", "duplicate_distance": 0}
    for copy in (own_copy, others_copy):
        catalog.update(copy, {"status": "processed", **verdict})

    own = client.get(f"/v1/images/{own_copy}", headers=KEY).json()
    assert own["duplicate"] == {"of": original, "kind": "exact", "distance": 0}
    others = client.get(f"/v1/images/{others_copy}", headers={"X-API-Key": "other-key"}).json()
    assert (others["status"], others["duplicate"]) == ("processed", None)
    assert original not in json.dumps(others)


def test_a_body_cut_short_inside_the_file_says_so(api, kafka_bootstrap):
    client, lake, settings = api
    head = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
    body = head + images.jpeg()[:500]  # no closing boundary: the client stopped sending
    response = client.post(
        "/v1/images", headers={**KEY, "Content-Type": "multipart/form-data; boundary=xyz"}, content=body
    )
    assert response.status_code == 400 and "cut short" in response.json()["detail"], response.text
    assert raw_objects(lake) == []
    assert all_messages(kafka_bootstrap, settings.uploads_topic) == []


def test_lake_unwritable_at_upload_time_is_503_with_nothing_left_behind(
    settings_factory, kafka_bootstrap, topic, catalog, tmp_path
):
    settings = settings_factory(IMAGELAKE_KAFKA_BOOTSTRAP=kafka_bootstrap, IMAGELAKE_UPLOADS_TOPIC=topic)
    lake = Lake((tmp_path / "lake").as_uri())
    (tmp_path / "lake" / "raw").write_text("a file where the raw zone's folder should be")  # writes fail
    response = upload_once(settings, lake, catalog)
    assert response.status_code == 503, response.text
    assert "image store" in response.json()["detail"] and "retry" in response.json()["detail"]
    assert catalog_items(catalog) == []
    assert all_messages(kafka_bootstrap, settings.uploads_topic) == []


def text_field_body(value: bytes) -> bytes:
    """What ``curl -F file=<value>`` sends: the field as a text value (no filename, no Content-Type)."""
    return b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\n' + value + b"\r\n--xyz--\r\n"


@pytest.mark.parametrize("value", [b"hello", b""], ids=["text", "empty-text"])
def test_a_text_value_in_the_file_field_is_400_saying_to_upload_a_file(api, value, kafka_bootstrap):
    client, lake, settings = api
    response = client.post(
        "/v1/images",
        headers={**KEY, "Content-Type": "multipart/form-data; boundary=xyz"},
        content=text_field_body(value),
    )
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert "must be a file upload" in detail and "file=@photo.jpg" in detail, detail
    assert raw_objects(lake) == []
    assert all_messages(kafka_bootstrap, settings.uploads_topic) == []


def test_image_bytes_sent_as_a_text_value_are_still_accepted(api):
    """``curl -F 'file=<photo.jpg'`` sends the bytes as a text value: the format is read from the
    bytes, never from how the part was declared, so this keeps working as it always did."""
    client, lake, _ = api
    data = images.jpeg(seed=5)
    response = client.post(
        "/v1/images",
        headers={**KEY, "Content-Type": "multipart/form-data; boundary=xyz"},
        content=text_field_body(data),
    )
    assert response.status_code == 202, response.text
    [key] = raw_objects(lake)
    assert lake.get(key) == data


def head_exchange(url: str, path: str, key: str = "dev-key") -> tuple[str, dict[str, str], bytes]:
    """A HEAD request by hand, reading to the end of the connection: status line, headers, and
    every byte the server sent after them (httpx would never read a HEAD response's body)."""
    host, port = url.removeprefix("http://").split(":")
    request = f"HEAD {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nConnection: close\r\n\r\n"
    received = b""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request.encode())
        while chunk := sock.recv(65536):
            received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return status, headers, rest


def test_head_answers_like_get_without_a_body(api):
    client, _, _ = api
    uploaded = client.post(
        "/v1/images", headers=KEY, files={"file": ("a.jpg", images.jpeg(), "image/jpeg")}
    ).json()["image_id"]
    url = str(client.base_url).rstrip("/")
    cases = [
        ("/healthz", "dev-key", 200),
        (f"/v1/images/{uploaded}", "dev-key", 200),
        (f"/v1/images/{'01' + 'Z' * 24}", "dev-key", 404),
        (f"/v1/images/{uploaded}", "wrong-key", 401),
    ]
    for path, key, expected in cases:
        got = client.get(path, headers={"X-API-Key": key})
        status, headers, body = head_exchange(url, path, key)
        assert (got.status_code, status.split(" ")[1]) == (expected, str(expected)), (path, status)
        assert body == b"", (path, body)
        for name in ("content-type", "content-length"):
            assert headers.get(name) == got.headers.get(name), (path, name, headers)


def test_a_wrong_method_is_405_naming_every_method_the_path_answers(api):
    """GET and HEAD are separate routes: the Allow header must name both, not only the first."""
    client, _, _ = api
    cases = [
        ("DELETE", "/healthz", "GET, HEAD"),
        ("DELETE", f"/v1/images/{'01' + 'Z' * 24}", "GET, HEAD"),
        ("PUT", f"/v1/images/{'01' + 'Z' * 24}/", "GET, HEAD"),
        ("PUT", "/v1/images", "POST"),
    ]
    for method, path, allow in cases:
        response = client.request(method, path, headers=KEY)
        assert (response.status_code, response.headers.get("allow")) == (405, allow), (method, path)
        expected = f"{method} is not allowed here: use {allow.replace(', ', ' or ')}"
        assert response.json()["detail"] == expected


def test_a_trailing_slash_is_served_like_the_path_without_it(api, kafka_bootstrap):
    """No 307 with an empty body: a client that does not follow redirects gets the real answer."""
    client, lake, settings = api
    assert not client.follow_redirects
    data = images.jpeg(seed=9)
    response = client.post("/v1/images/", headers=KEY, files={"file": ("a.jpg", data, "image/jpeg")})
    assert response.status_code == 202, (response.status_code, response.headers, response.text)
    image_id = response.json()["image_id"]
    [key] = raw_objects(lake)
    assert key.endswith(image_id) and lake.get(key) == data
    status = client.get(f"/v1/images/{image_id}/", headers=KEY)
    assert status.status_code == 200 and status.json()["image_id"] == image_id, status.text
    assert client.get("/healthz/").json() == {"status": "ok"}
    missing = client.get(f"/v1/images/{'01' + 'Z' * 24}/", headers=KEY)
    assert missing.status_code == 404 and missing.json()["detail"].startswith("no image")
    # A bad upload through the slashed path is refused the same way, and leaves nothing behind.
    refused = client.post(
        "/v1/images/", headers=KEY, files={"file": ("notes.txt", b"just some text", "text/plain")}
    )
    assert refused.status_code == 415 and "JPEG" in refused.json()["detail"], refused.text
    assert raw_objects(lake) == [key]
    assert [decode_event(v).image_id for v in all_messages(kafka_bootstrap, settings.uploads_topic)] == [
        image_id
    ]


def test_image_ids_are_case_insensitive(api):
    """ULIDs are Crockford base32: any case names the same image, answered in canonical upper case."""
    client, _, _ = api
    image_id = client.post(
        "/v1/images", headers=KEY, files={"file": ("a.jpg", images.jpeg(), "image/jpeg")}
    ).json()["image_id"]
    mixed = "".join(c.lower() if i % 2 else c for i, c in enumerate(image_id))
    aliased = image_id.replace("0", "o").replace("1", "l")  # Crockford reads O as 0, I and L as 1
    for spelled in (image_id.lower(), mixed, aliased):
        response = client.get(f"/v1/images/{spelled}", headers=KEY)
        assert response.status_code == 200, response.text
        assert response.json()["image_id"] == image_id
    # Still refused with the clear error: not ids in any case, and letters that only upper-case
    # into the alphabet (U+017F, the long s, becomes S) or are outside it and no alias (u).
    for not_an_id in ("not-an-id", image_id[:-1].lower() + "\u017f", image_id[:-1].lower() + "u"):
        response = client.get(f"/v1/images/{not_an_id}", headers=KEY)
        assert response.status_code == 404, (not_an_id, response.text)
        assert response.json()["detail"] == f"no image {not_an_id!r} for this API key"


def test_a_long_malformed_id_is_echoed_cut_short(api):
    client, _, _ = api
    long_id = "A" * 26 + "x" * 4974
    response = client.get(f"/v1/images/{long_id}", headers=KEY)
    assert response.status_code == 404, response.text
    assert response.json()["detail"] == f"no image {long_id[:40] + '…'!r} for this API key"
    exactly_40 = "0" * 40  # up to 40 characters the id is repeated whole
    assert client.get(f"/v1/images/{exactly_40}", headers=KEY).json()["detail"] == (
        f"no image {exactly_40!r} for this API key"
    )


def test_openapi_documents_the_upload_body_and_every_answer(api):
    client, _, _ = api
    document = client.get("/openapi.json").json()
    upload = document["paths"]["/v1/images"]["post"]
    schema = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert upload["requestBody"]["required"] is True
    assert schema["required"] == ["file"]
    assert schema["properties"]["file"]["type"] == "string"
    assert schema["properties"]["file"]["format"] == "binary"
    assert set(upload["responses"]) == {"202", "400", "401", "409", "413", "415", "422", "503"}
    assert "Idempotency-Key" in [p["name"] for p in upload["parameters"] if p["in"] == "header"]
    status = document["paths"]["/v1/images/{image_id}"]["get"]
    assert set(status["responses"]) == {"200", "401", "404", "503"}
    for operation in (upload, status):
        for code, answer in operation["responses"].items():
            assert answer["description"] and answer["description"] != "Validation Error", code
            assert "application/json" in answer.get("content", {}), code
    assert "200" in document["paths"]["/healthz"]["get"]["responses"]
    assert client.get("/docs").status_code == 200
