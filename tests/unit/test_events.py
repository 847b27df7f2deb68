import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from imagelake.lake import layout
from imagelake.lake.ids import new_image_id
from imagelake.realtime.events import EventDecodeError, UploadEvent, decode_event


def make_event(**overrides) -> UploadEvent:
    uploaded_at = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    image_id = new_image_id(int(uploaded_at.timestamp() * 1000), b"\x02" * 10)
    fields = {
        "image_id": image_id,
        "client_id": "dev",
        "key": layout.raw_image_key("2026-11-24", image_id),
        "sha256": "a" * 64,
        "size_bytes": 10,
        "format": "JPEG",
        "uploaded_at": uploaded_at,
    }
    fields.update(overrides)
    return UploadEvent(**fields)


def test_event_round_trips_through_json():
    event = make_event()
    again = decode_event(event.encode())
    assert again == event
    assert again.schema_version == 1 and again.dt == "2026-11-24"


def test_unknown_fields_are_ignored_for_forward_compatibility():
    raw = make_event().encode()
    event_json = raw[:-1] + b',"added_later":"x"}'
    assert decode_event(event_json) == make_event()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "empty message"),
        (b"", "empty message"),
        (b"not json", "invalid upload event"),
        (b"{}", "image_id"),
        (b"\xff\xfe\x00", "invalid upload event"),
    ],
)
def test_bad_messages_have_a_reason(raw, reason):
    with pytest.raises(EventDecodeError, match=reason):
        decode_event(raw)


def test_schema_version_and_consistency_are_checked():
    good = make_event()
    newer = json.dumps(good.model_dump(mode="json") | {"schema_version": 2}).encode()
    with pytest.raises(EventDecodeError, match="schema_version"):
        decode_event(newer)
    with pytest.raises(ValueError, match="does not match the lake layout"):
        make_event(key="raw/images/dt=2026-11-23/" + good.image_id)
    with pytest.raises(ValueError, match="format"):
        make_event(format="SVG")
    with pytest.raises(ValueError, match="timezone"):
        make_event(uploaded_at=datetime(2026, 11, 24, 10, 0))


def test_uploaded_at_is_normalised_to_utc():
    event = make_event(uploaded_at=datetime(2026, 11, 24, 11, 0, tzinfo=timezone(timedelta(hours=1))))
    assert event.uploaded_at.tzinfo == UTC
