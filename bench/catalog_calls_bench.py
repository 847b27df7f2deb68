"""``make bench-catalog-calls``: the client CPU our processes spend per catalog write.

Every upload costs three catalog writes from our processes: the API's ``accepted`` put, and the
run's claim and outcome updates (imagelake/catalog.py). bench-load puts the catalog's share of our
CPU per image among the largest parts of the floor that does not fall with the rate; this measures
it apart, on DynamoDB Local in memory as the production-mode stack runs it: the client's CPU (this
process, ``time.process_time``) per write, as the pipeline makes them (the put one at a time, the
claims and outcomes through ``claim_all`` and ``record_outcomes``, eight threads), as signed JSON
POSTs (imagelake/dynamodb_json.py).

The baseline is the same catalog with every call through botocore's client, as it was before the
item calls went direct. Also printed: the claims and outcomes sent as botocore ``TransactWriteItems``
of 100, the largest batch DynamoDB takes with the conditions the claim needs. A transactional write
costs twice the capacity units of a plain one (docs/benchmarks.md prices it), which is why the
product does not batch. Each round times every way on new images; the medians over the rounds are
printed. The last line is ``RESULT catalog_calls accepted_ms=<a> claim_ms=<b> outcome_ms=<c>
per_image_ms=<a+b+c> botocore_ms=<the same three writes through botocore> ratio=<botocore /
per_image> batched_ms=<claim and outcome in transactions, per image>``.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.args import positive_int
from bench.load_bench import web_photo
from imagelake.catalog import Catalog, outcome_attributes
from imagelake.lake import layout
from imagelake.lake.ids import new_image_id
from imagelake.realtime.batches import metadata_row
from imagelake.realtime.events import UploadEvent
from imagelake.settings import MAX_IMAGE_PIXELS
from infra.local.stack import free_port, start_dynamodb

#: DynamoDB's limit on the actions of one ``TransactWriteItems``.
TRANSACTION_ACTIONS = 100
RETENTION_DAYS = 7


def upload_events(photo: bytes, count: int) -> list[UploadEvent]:
    """``count`` uploads of one photo, as the API records them (each its own image id)."""
    now = datetime.now(UTC)
    digest = hashlib.sha256(photo).hexdigest()
    events = []
    for _ in range(count):
        image_id = new_image_id()
        key = layout.raw_image_key(layout.dt_of(now), image_id)
        events.append(
            UploadEvent(
                image_id=image_id,
                client_id="bench-client",
                key=key,
                sha256=digest,
                size_bytes=len(photo),
                format="JPEG",
                uploaded_at=now,
            )
        )
    return events


def cpu_ms_per(count: int, write: Callable[[], object]) -> float:
    started = time.process_time()
    write()
    return (time.process_time() - started) / count * 1000


def transact(catalog: Catalog, requests: list[dict]) -> None:
    """Send ``Update`` actions in transactions of at most :data:`TRANSACTION_ACTIONS`."""
    for start in range(0, len(requests), TRANSACTION_ACTIONS):
        chunk = requests[start : start + TRANSACTION_ACTIONS]
        catalog._client.transact_write_items(TransactItems=[{"Update": r} for r in chunk])


class BotocoreCatalog(Catalog):
    """The catalog with every call through botocore's client (the baseline)."""

    def _call(self, method: str, **kwargs: Any) -> dict:
        return getattr(self._client, method)(**kwargs)


def pipeline_writes(catalog: Catalog, events: list[UploadEvent], rows: dict, batch: str) -> dict[str, float]:
    """Client CPU per image of each of the three writes, made as the API and a run make them."""
    ids = [e.image_id for e in events]
    return {
        "accepted": cpu_ms_per(
            len(events), lambda: [catalog.put_accepted(e, RETENTION_DAYS) for e in events]
        ),
        "claim": cpu_ms_per(len(events), lambda: catalog.claim_all(ids, batch)),
        "outcome": cpu_ms_per(
            len(events), lambda: catalog.record_outcomes([rows[i] for i in ids], RETENTION_DAYS)
        ),
    }


def one_round(
    catalog: Catalog, baseline: Catalog, photo: bytes, images: int, round_no: int
) -> dict[str, float]:
    """Each write's client CPU per image, as the pipeline makes it, through botocore (the baseline)
    and batched in transactions."""
    events = upload_events(photo, 3 * images)
    ours, botocore, batched = events[:images], events[images : 2 * images], events[2 * images :]
    batch = f"bench-{round_no}"
    # The rows a run writes: the photo's real metadata, made once (its cost is not the catalog's).
    template = metadata_row(events[0], photo, datetime.now(UTC), batch, MAX_IMAGE_PIXELS)
    rows = {e.image_id: {**template, "image_id": e.image_id, "key": e.key} for e in events}
    figures = pipeline_writes(catalog, ours, rows, batch)
    figures["botocore"] = sum(pipeline_writes(baseline, botocore, rows, batch).values())
    for event in batched:
        catalog.put_accepted(event, RETENTION_DAYS)
    claims = [catalog.claim_request(e.image_id, batch) for e in batched]
    outcomes = [
        catalog.update_request(e.image_id, outcome_attributes(rows[e.image_id], RETENTION_DAYS))
        for e in batched
    ]
    figures["batched"] = cpu_ms_per(images, lambda: (transact(catalog, claims), transact(catalog, outcomes)))
    # Every write must have landed, both ways alike, or the comparison is void.
    items = catalog.get_many([e.image_id for e in events], consistent=True)
    for event in events:
        item = items.get(event.image_id)
        if item is None or item.get("status") != "processed" or item.get("claimed_by") != batch:
            raise SystemExit(f"image {event.image_id} was not claimed and processed: {item}")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=positive_int, default=1000, help="images per round and way")
    parser.add_argument("--rounds", type=positive_int, default=3)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as scratch:
        port = free_port()
        service = start_dynamodb(None, port, Path(scratch) / "dynamodb.log")
        try:
            catalog = Catalog("bench-catalog-calls", f"http://127.0.0.1:{port}", "us-east-1")
            catalog.ensure_table()
            baseline = BotocoreCatalog(catalog.table, catalog.endpoint, catalog.region)
            photo = web_photo(0)
            one_round(catalog, baseline, photo, 100, -1)  # warm-up: botocore loads its models on first use
            rounds = []
            for round_no in range(args.rounds):
                figures = one_round(catalog, baseline, photo, args.images, round_no)
                rounds.append(figures)
                print(
                    f"round {round_no + 1}: client CPU per write: accepted {figures['accepted']:.3f} ms, "
                    f"claim {figures['claim']:.3f} ms, outcome {figures['outcome']:.3f} ms; the three through "
                    f"botocore {figures['botocore']:.3f} ms; claim and outcome in botocore transactions of "
                    f"{TRANSACTION_ACTIONS}: {figures['batched']:.3f} ms",
                    flush=True,
                )
        finally:
            service.stop()

    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    per_image = med["accepted"] + med["claim"] + med["outcome"]
    print(
        f"RESULT catalog_calls accepted_ms={med['accepted']:.3f} claim_ms={med['claim']:.3f} "
        f"outcome_ms={med['outcome']:.3f} per_image_ms={per_image:.3f} botocore_ms={med['botocore']:.3f} "
        f"ratio={med['botocore'] / per_image:.2f} batched_ms={med['batched']:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
