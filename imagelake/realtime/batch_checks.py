"""Checks of a real-time batch's output, computed from what the lake holds after the run.

Each check returns whether it passed and the figures behind the verdict, so a
failed check says what is wrong without anyone opening the files.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from imagelake.lake.layout import BatchId

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PHASH = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class Verdict:
    passed: bool
    description: str
    figures: Mapping[str, Any] = field(default_factory=dict)


def rows_match_events(
    batch: BatchId,
    event_ids: list[str],
    dead_letters: int,
    metadata_ids: list[str],
    owner: Callable[[str], str | None],
) -> Verdict:
    """One row per image the batch's valid events announce: rows = events - dead letters.

    An event delivered twice counts once, and an image another (smaller)
    batch also received is that batch's row. Every offset of the batch must
    be an event or a dead letter.
    """
    distinct = list(dict.fromkeys(event_ids))
    owned_elsewhere = [i for i in distinct if owner(i) not in (None, str(batch))]
    expected = sorted(set(distinct) - set(owned_elsewhere))
    figures = {
        "offsets": batch.size,
        "events": len(event_ids),
        "dead_letters": dead_letters,
        "redelivered_in_batch": len(event_ids) - len(distinct),
        "owned_by_earlier_batch": len(owned_elsewhere),
        "expected_rows": len(expected),
        "rows": len(metadata_ids),
    }
    problems = []
    if len(event_ids) + dead_letters != batch.size:
        problems.append(
            f"{batch.size - len(event_ids) - dead_letters} offsets are neither event nor dead letter"
        )
    if len(metadata_ids) != len(set(metadata_ids)):
        problems.append("an image has more than one row")
    if sorted(set(metadata_ids)) != expected:
        missing = sorted(set(expected) - set(metadata_ids))[:5]
        extra = sorted(set(metadata_ids) - set(expected))[:5]
        problems.append(f"rows differ from events: missing {missing}, unexpected {extra}")
    return Verdict(not problems, "; ".join(problems) or "one row per announced image", figures)


def sha256_present(rows: list[dict]) -> Verdict:
    """Every row carries the sha256 of its bytes (of the event, for a missing object)."""
    bad = [r["image_id"] for r in rows if not _SHA256.match(r.get("sha256") or "")]
    return Verdict(
        not bad,
        f"{len(bad)} rows without a valid sha256: {bad[:5]}" if bad else "every row has a sha256",
        {"rows": len(rows), "without_sha256": len(bad)},
    )


def hash_for_every_decodable_image(rows: list[dict]) -> Verdict:
    """Every processed image has a perceptual hash and dimensions; every failed one a reason."""
    processed = [r for r in rows if r["status"] == "processed"]
    unhashed = [
        r["image_id"] for r in processed if not _PHASH.match(r.get("phash") or "") or not r.get("width")
    ]
    unexplained = [r["image_id"] for r in rows if r["status"] != "processed" and not r.get("error")]
    problems = []
    if unhashed:
        problems.append(f"{len(unhashed)} processed images without a hash or size: {unhashed[:5]}")
    if unexplained:
        problems.append(f"{len(unexplained)} failed images without a reason: {unexplained[:5]}")
    return Verdict(
        not problems,
        "; ".join(problems) or "every decodable image is hashed, every failure explained",
        {"processed": len(processed), "failed": len(rows) - len(processed), "unhashed": len(unhashed)},
    )
