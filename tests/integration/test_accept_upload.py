"""The upload service on its own, without HTTP: an upload is checked, stored, recorded and
announced, or refused with nothing of it left behind, whichever step fails."""

import asyncio
import hashlib

import pytest

from imagelake.api.multipart import UploadedFile
from imagelake.api.publisher import EventPublisher
from imagelake.api.upload import Accepted, UploadRefused, accept_upload
from imagelake.catalog import Catalog
from imagelake.lake.store import Lake
from imagelake.realtime.events import decode_event
from imagelake.realtime.kafka import KafkaConnection, producer_config
from tests.conftest import dead_endpoint
from tests.support import sample_images as images
from tests.support.observed import all_messages, catalog_items, raw_objects

pytestmark = pytest.mark.integration


def uploaded(data: bytes, *, is_file: bool = True) -> UploadedFile:
    return UploadedFile(data, hashlib.sha256(data).hexdigest(), "a.jpg" if is_file else None, is_file)


def publisher_to(bootstrap: str, topic: str, timeout_s: float) -> EventPublisher:
    return EventPublisher(producer_config(KafkaConnection(bootstrap), timeout_s), topic, timeout_s)


@pytest.fixture
def settings(settings_factory, kafka_bootstrap, topic):
    return settings_factory(IMAGELAKE_KAFKA_BOOTSTRAP=kafka_bootstrap, IMAGELAKE_UPLOADS_TOPIC=topic)


@pytest.fixture
def publisher(settings):
    pub = publisher_to(settings.kafka_bootstrap, settings.uploads_topic, settings.kafka_delivery_timeout_s)
    yield pub
    pub.close()


def accept(
    upload: UploadedFile, settings, lake: Lake, catalog: Catalog, publisher: EventPublisher
) -> Accepted:
    return asyncio.run(
        accept_upload(upload, "dev", settings=settings, lake=lake, catalog=catalog, publisher=publisher)
    )


def refusal(
    upload: UploadedFile, settings, lake: Lake, catalog: Catalog, publisher: EventPublisher
) -> UploadRefused:
    with pytest.raises(UploadRefused) as info:
        accept(upload, settings, lake, catalog, publisher)
    return info.value


def test_an_accepted_upload_is_in_the_lake_the_catalog_and_on_kafka(settings, lake, catalog, publisher):
    data = images.jpeg(120, 80, seed=1)
    accepted = accept(uploaded(data), settings, lake, catalog, publisher)
    assert (accepted.status, accepted.sha256) == ("accepted", hashlib.sha256(data).hexdigest())
    [key] = raw_objects(lake)
    assert key.endswith("/" + accepted.image_id) and lake.get(key) == data
    item = catalog.get(accepted.image_id)
    assert (item["status"], item["client_id"], item["key"], item["sha256"]) == (
        "accepted",
        "dev",
        key,
        accepted.sha256,
    )
    [value] = all_messages(settings.kafka_bootstrap, settings.uploads_topic)
    event = decode_event(value)
    assert (event.image_id, event.client_id, event.key, event.sha256, event.format) == (
        accepted.image_id,
        "dev",
        key,
        accepted.sha256,
        "JPEG",
    )


@pytest.mark.parametrize(
    ("data", "is_file", "status", "says"),
    [
        (b"just some text", True, 415, "JPEG"),
        (b"hello", False, 400, "must be a file upload"),  # curl -F file=hello
        (images.jpeg(300, 200)[:2000], True, 422, "truncated"),
    ],
    ids=["not-an-image", "text-value", "truncated"],
)
def test_an_image_the_check_refuses_is_never_stored(
    settings, lake, catalog, publisher, data, is_file, status, says
):
    refused = refusal(uploaded(data, is_file=is_file), settings, lake, catalog, publisher)
    assert refused.status == status and says in refused.reason, refused.reason
    assert raw_objects(lake) == []
    assert catalog_items(catalog) == []
    assert all_messages(settings.kafka_bootstrap, settings.uploads_topic) == []


def test_a_lake_that_cannot_be_written_refuses_with_nothing_recorded(settings, catalog, publisher, tmp_path):
    lake = Lake((tmp_path / "lake").as_uri())
    (tmp_path / "lake" / "raw").write_text("a file where the raw zone's folder should be")  # writes fail
    refused = refusal(uploaded(images.jpeg()), settings, lake, catalog, publisher)
    assert refused.status == 503 and "image store" in refused.reason and "retry" in refused.reason
    assert catalog_items(catalog) == []
    assert all_messages(settings.kafka_bootstrap, settings.uploads_topic) == []


def test_a_catalog_that_cannot_be_written_gets_the_raw_object_removed(settings, lake, publisher):
    unreachable = Catalog("images", f"http://{dead_endpoint()}", timeout_s=1)
    refused = refusal(uploaded(images.jpeg()), settings, lake, unreachable, publisher)
    assert refused.status == 503 and "catalog" in refused.reason and "retry" in refused.reason
    assert raw_objects(lake) == []  # it was written, then removed
    assert all_messages(settings.kafka_bootstrap, settings.uploads_topic) == []


def test_kafka_refusing_the_event_gets_the_raw_object_removed_and_the_item_refused(settings, lake, catalog):
    down = publisher_to(dead_endpoint(), settings.uploads_topic, 2)
    try:
        refused = refusal(uploaded(images.jpeg()), settings, lake, catalog, down)
    finally:
        down.close()
    assert refused.status == 503 and "event log" in refused.reason and "retry" in refused.reason
    assert raw_objects(lake) == []  # written before Kafka refused, then removed
    [item] = catalog_items(catalog)  # kept as refused: an event that reaches Kafka late is set aside
    assert item["status"]["S"] == "refused"


# -- Idempotency-Key ---------------------------------------------------------------------------


def accept_keyed(
    upload: UploadedFile, key: str, settings, lake: Lake, catalog: Catalog, publisher
) -> Accepted:
    return asyncio.run(
        accept_upload(
            upload,
            "dev",
            settings=settings,
            lake=lake,
            catalog=catalog,
            publisher=publisher,
            idempotency_key=key,
        )
    )


def test_a_retry_with_the_same_key_answers_the_first_outcome_and_stores_nothing(
    settings, lake, catalog, publisher
):
    photo = uploaded(images.jpeg(seed=61))
    first = accept_keyed(photo, "k-1", settings, lake, catalog, publisher)
    again = accept_keyed(photo, "k-1", settings, lake, catalog, publisher)
    assert again == first
    assert (
        len(raw_objects(lake)) == 1
        and len(all_messages(settings.kafka_bootstrap, settings.uploads_topic)) == 1
    )
    with pytest.raises(UploadRefused) as other:
        accept_keyed(uploaded(images.jpeg(seed=62)), "k-1", settings, lake, catalog, publisher)
    assert other.value.status == 422 and "different image" in other.value.reason
    fresh = accept_keyed(photo, "k-2", settings, lake, catalog, publisher)  # another key: another upload
    assert fresh.image_id != first.image_id


def test_a_retry_after_a_failed_attempt_is_a_new_upload_at_once(settings, catalog, publisher, tmp_path):
    photo = uploaded(images.jpeg(seed=63))
    broken = Lake((tmp_path / "broken").as_uri())
    (tmp_path / "broken" / "raw").write_text("a file where the raw zone's folder should be")
    with pytest.raises(UploadRefused) as failed:
        accept_keyed(photo, "k-3", settings, broken, catalog, publisher)
    assert failed.value.status == 503
    lake = Lake((tmp_path / "lake").as_uri())
    retried = accept_keyed(photo, "k-3", settings, lake, catalog, publisher)
    assert raw_objects(lake) == [o for o in raw_objects(lake) if o.endswith(retried.image_id)] != []


def test_a_key_another_request_holds_right_now_is_a_409(settings, lake, catalog, publisher):
    catalog.reserve_idempotency_key(
        "dev", "k-4", "01KZZZZZZZZZZZZZZZZZZZZZZZ", replaces=None, retention_days=7
    )
    with pytest.raises(UploadRefused) as busy:
        accept_keyed(uploaded(images.jpeg(seed=64)), "k-4", settings, lake, catalog, publisher)
    assert busy.value.status == 409 and "retry" in busy.value.reason
    assert raw_objects(lake) == []
