"""The batch checks fail when the output is wrong, and say why."""

from imagelake.lake.layout import BatchId
from imagelake.realtime.batch_checks import hash_for_every_decodable_image, rows_match_events, sha256_present

BATCH = BatchId("t", 0, 10, 14)  # five offsets


def owner_is(batch: str):
    return lambda _image_id: batch


def test_rows_match_events_passes_for_a_clean_batch_and_counts_redeliveries():
    verdict = rows_match_events(BATCH, ["a", "b", "a", "c"], 1, ["a", "b", "c"], owner_is(str(BATCH)))
    assert verdict.passed and verdict.figures["redelivered_in_batch"] == 1


def test_rows_match_events_fails_on_a_missing_extra_or_doubled_row_or_lost_offsets():
    own = owner_is(str(BATCH))
    assert not rows_match_events(BATCH, ["a", "b", "c", "d"], 1, ["a", "b", "c"], own).passed
    assert not rows_match_events(BATCH, ["a", "b", "c", "d"], 1, ["a", "b", "c", "d", "e"], own).passed
    doubled = rows_match_events(BATCH, ["a", "b", "c", "d"], 1, ["a", "a", "b", "c", "d"], own)
    assert not doubled.passed and "more than one row" in doubled.description
    lost = rows_match_events(BATCH, ["a", "b"], 1, ["a", "b"], own)
    assert not lost.passed and "2 offsets" in lost.description


def test_an_image_owned_by_an_earlier_batch_is_not_expected_here():
    verdict = rows_match_events(BATCH, ["a"] * 5, 0, [], owner_is("t-0-0-3"))
    assert verdict.passed and verdict.figures["owned_by_earlier_batch"] == 1
    assert not rows_match_events(BATCH, ["a"] * 5, 0, ["a"], owner_is("t-0-0-3")).passed


def test_sha256_and_hash_checks_fail_on_bad_rows():
    good = {"image_id": "a", "status": "processed", "sha256": "f" * 64, "phash": "0" * 16, "width": 3}
    failed = {"image_id": "b", "status": "failed", "sha256": "e" * 64, "phash": None, "error": "missing: x"}
    assert sha256_present([good, failed]).passed
    assert not sha256_present([{**good, "sha256": None}]).passed
    assert not sha256_present([{**good, "sha256": "F" * 64}]).passed
    assert hash_for_every_decodable_image([good, failed]).passed
    assert not hash_for_every_decodable_image([{**good, "phash": None}]).passed
    assert not hash_for_every_decodable_image([{**good, "width": None}]).passed
    assert not hash_for_every_decodable_image([{**failed, "error": None}]).passed
