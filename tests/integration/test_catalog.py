"""The catalog against a real DynamoDB Local."""

import contextlib
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from imagelake.catalog import TTL_ATTRIBUTE, Catalog, CatalogUnavailable
from imagelake.lake import layout
from imagelake.realtime.batches import metadata_row
from imagelake.settings import PROJECT_ROOT
from tests.conftest import dead_endpoint
from tests.unit.test_events import make_event as make_event_at

pytestmark = pytest.mark.integration


def make_event(image_id: str | None = None, uploaded_at: datetime | None = None):
    """An upload event, uploaded now unless told otherwise: reads leave out items past their TTL."""
    uploaded_at = uploaded_at or datetime.now(UTC).replace(microsecond=0)
    image_id = image_id or make_event_at().image_id
    key = layout.raw_image_key(layout.dt_of(uploaded_at), image_id)
    return make_event_at(image_id=image_id, uploaded_at=uploaded_at, key=key)


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


def test_an_item_past_its_ttl_reads_as_gone_before_dynamodb_deletes_it(catalog):
    """DynamoDB deletes expired items up to days late, DynamoDB Local never: the API must not show
    an image whose files retention has already deleted."""
    old = make_event("01" + "E" * 24, uploaded_at=datetime.now(UTC) - timedelta(days=8))
    kept = make_event("01" + "F" * 24, uploaded_at=datetime.now(UTC) - timedelta(days=6))
    for event in (old, kept):
        catalog.put_accepted(event, retention_days=7)
    stored = catalog._client.get_item(TableName=catalog.table, Key={"image_id": {"S": old.image_id}})
    assert "Item" in stored  # still in the table, as it would be in DynamoDB for a while
    assert catalog.get(old.image_id) is None
    assert catalog.get(kept.image_id)["status"] == "accepted"
    assert set(catalog.get_many([old.image_id, kept.image_id])) == {kept.image_id}


def test_get_many_and_ensure_table_twice(catalog):
    events = [make_event(f"01{str(i).zfill(24)}") for i in range(150)]
    for e in events:
        catalog.put_accepted(e, 7)
    found = catalog.get_many([e.image_id for e in events] + ["01" + "Z" * 24])
    assert len(found) == 150
    catalog.ensure_table()


def test_as_many_concurrent_calls_as_the_api_makes_reuse_their_connections(catalog, caplog):
    """The upload API calls the catalog from 40 threads; past botocore's default pool of 10,
    every call dropped its connection with a warning in the API's log."""
    ids = [f"02{str(i).zfill(24)}" for i in range(120)]
    events = [make_event(i) for i in ids]
    start = threading.Barrier(catalog.max_connections)

    def put(event):
        with contextlib.suppress(threading.BrokenBarrierError):
            start.wait(timeout=10)
        catalog.put_accepted(event, 7)

    with (
        caplog.at_level(logging.WARNING, logger="urllib3"),
        ThreadPoolExecutor(catalog.max_connections) as pool,
    ):
        list(pool.map(put, events))
    assert len(catalog.get_many(ids)) == 120
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


def test_unreachable_dynamodb_is_a_clear_error():
    with pytest.raises(CatalogUnavailable, match="unreachable"):
        Catalog("t", f"http://{dead_endpoint()}", timeout_s=1).get("x")


def outcome(event, **changes):
    """An image_metadata row for an event, as a run writes it (a processed 64x48 JPEG)."""
    row = metadata_row(event, None, event.uploaded_at + timedelta(seconds=3), "t-0-0-0", 10**8)
    processed = {"status": "processed", "error": None, "format": "JPEG", "width": 64, "height": 48}
    return {**row, **processed, "phash": "00ff00ff00ff00ff", "brightness_mean": 127.12345678, **changes}


def test_duplicate_of_only_moves_earlier_whatever_order_runs_write_in(catalog):
    event = make_event()
    earliest, later = "01" + "A" * 24, "01" + "B" * 24
    catalog.put_accepted(event, 7)
    catalog.record_outcome(outcome(event, duplicate_of=later, duplicate_kind="near", duplicate_distance=5), 7)
    catalog.record_outcome(
        outcome(event, duplicate_of=earliest, duplicate_kind="exact", duplicate_distance=0), 7
    )
    catalog.record_outcome(outcome(event, duplicate_of=later, duplicate_kind="near", duplicate_distance=5), 7)
    catalog.record_outcome(outcome(event), 7)  # a run that saw no original at all
    item = catalog.get(event.image_id)
    assert (item["duplicate_of"], item["duplicate_kind"], item["duplicate_distance"]) == (
        earliest,
        "exact",
        0,
    )
    assert (item["status"], item["width"], item["format"], item["brightness_mean"]) == (
        "processed",
        64,
        "JPEG",
        127.123,
    )
    assert item[TTL_ATTRIBUTE] == int((event.uploaded_at + timedelta(days=7)).timestamp())


def test_an_outcome_keeps_derivative_keys_and_a_failure_clears_stale_metadata(catalog):
    event = make_event()
    catalog.put_accepted(event, 7)
    catalog.update(event.image_id, {"derivatives": {"256": "derivatives/256/x.webp"}})
    catalog.record_outcome(outcome(event), 7)
    catalog.record_outcome(outcome(event, status="failed", error="undecodable: broken", width=None), 7)
    item = catalog.get(event.image_id)
    assert (item["status"], item["error"]) == ("failed", "undecodable: broken")
    assert "width" not in item and item["derivatives"] == {"256": "derivatives/256/x.webp"}


def test_outcomes_are_written_in_parallel_and_reported_one_by_one(catalog):
    events = [make_event(f"01{str(i).zfill(24)}") for i in range(30)]
    seen = []
    assert catalog.record_outcomes([outcome(e) for e in events], 7, on_written=seen.append) == 30
    assert sorted(seen) == sorted(e.image_id for e in events)
    assert {i["status"] for i in catalog.get_many(seen).values()} == {"processed"}


def test_an_item_created_by_a_run_without_an_accepted_write_still_expires(catalog):
    event = make_event()
    catalog.record_outcome(outcome(event, status="failed", error="missing: the raw object does not exist"), 7)
    item = catalog.get(event.image_id)
    assert item["status"] == "failed" and item["client_id"] == "dev" and item[TTL_ATTRIBUTE] > 0


def test_dynamodb_local_keeps_its_files_beside_its_log_and_sends_no_telemetry(dynamodb_local, catalog):
    """DynamoDB Local writes dynamodb-local-metadata.json into its working directory: that
    was the checkout (and the file got committed once)."""
    catalog.get("01" + "Z" * 24)  # it is up and serving
    assert dynamodb_local.log_path is not None
    assert Path(f"/proc/{dynamodb_local.process.pid}/cwd").resolve() == dynamodb_local.log_path.parent
    assert "-disableTelemetry" in dynamodb_local.process.args
    assert not (PROJECT_ROOT / "dynamodb-local-metadata.json").exists()


def test_the_catalog_call_benchmark_checks_its_writes_landed_and_prints_its_figures(capsys):
    """bench-catalog-calls compares the pipeline's writes with the same writes in transactions: both must
    have claimed and processed their images (it exits otherwise), and the RESULT line carries figures."""
    from bench import catalog_calls_bench

    assert catalog_calls_bench.main(["--images", "20", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    found = re.search(
        r"^RESULT catalog_calls accepted_ms=([\d.]+) claim_ms=([\d.]+) outcome_ms=([\d.]+) "
        r"per_image_ms=([\d.]+) botocore_ms=([\d.]+) ratio=([\d.]+) batched_ms=([\d.]+)$",
        out,
        re.M,
    )
    assert found, out
    accepted, claim, outcome, per_image, botocore, ratio, batched = map(float, found.groups())
    assert min(accepted, claim, outcome, botocore, batched) > 0
    assert per_image == pytest.approx(accepted + claim + outcome, abs=0.002)
    assert ratio == pytest.approx(botocore / per_image, abs=0.01)


def test_update_request_is_what_update_sends(catalog):
    """The benchmark batches :meth:`Catalog.update_request`; it must be the update itself."""
    event = make_event()
    catalog.put_accepted(event, retention_days=7)
    request = catalog.update_request(event.image_id, {"status": "processed", "error": None})
    catalog._client.update_item(**request)
    assert catalog.get(event.image_id)["status"] == "processed"
    assert catalog.update_request(event.image_id, {}) is None
