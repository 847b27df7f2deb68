"""The catalog against a real DynamoDB Local."""

from datetime import timedelta

import pytest

from imagelake.catalog import TTL_ATTRIBUTE, Catalog, CatalogUnavailable
from tests.conftest import dead_endpoint
from tests.unit.test_events import make_event

pytestmark = pytest.mark.integration


def test_accepted_item_with_ttl_then_outcome(catalog):
    event = make_event()
    catalog.put_accepted(event, retention_days=7)
    item = catalog.get(event.image_id)
    assert item["status"] == "accepted" and item["client_id"] == "dev" and item["size_bytes"] == 10
    assert item[TTL_ATTRIBUTE] == int((event.uploaded_at + timedelta(days=7)).timestamp())
    ttl = catalog._client.describe_time_to_live(TableName=catalog.table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == TTL_ATTRIBUTE and ttl["TimeToLiveStatus"] == "ENABLED"

    catalog.update(
        event.image_id, {"status": "processed", "width": 64, "brightness_mean": 12.5, "error": None}
    )
    item = catalog.get(event.image_id)
    assert (item["status"], item["width"], item["brightness_mean"]) == ("processed", 64, 12.5)
    assert "error" not in item


def test_accepted_never_overwrites_and_updates_are_idempotent(catalog):
    event = make_event()
    catalog.put_accepted(event, 7)
    catalog.update(event.image_id, {"status": "processed"})
    catalog.put_accepted(event, 7)  # a retried write must not reset the status
    catalog.update(event.image_id, {"status": "processed"})
    assert catalog.get(event.image_id)["status"] == "processed"
    assert catalog.get("01" + "Z" * 24) is None


def test_get_many_and_ensure_table_twice(catalog):
    events = [
        make_event(image_id=f"01{str(i).zfill(24)}", key=f"raw/images/dt=2026-11-24/01{str(i).zfill(24)}")
        for i in range(150)
    ]
    for e in events:
        catalog.put_accepted(e, 7)
    found = catalog.get_many([e.image_id for e in events] + ["01" + "Z" * 24])
    assert len(found) == 150
    catalog.ensure_table()


def test_unreachable_dynamodb_is_a_clear_error():
    with pytest.raises(CatalogUnavailable, match="unreachable"):
        Catalog("t", f"http://{dead_endpoint()}", timeout_s=1).get("x")
