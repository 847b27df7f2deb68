from datetime import date, datetime, timedelta, timezone

import pytest

from imagelake.lake import layout
from imagelake.lake.ids import new_image_id
from imagelake.lake.layout import BatchId, LayoutError

IMAGE_ID = new_image_id(1_700_000_000_000, b"\x01" * 10)


def test_keys_follow_the_design_contract():
    assert layout.raw_image_key("2026-11-24", IMAGE_ID) == f"raw/images/dt=2026-11-24/{IMAGE_ID}"
    assert layout.batch_file_key("upload_events", "2026-11-24", "image-uploads-0-0-9") == (
        "raw/events/dt=2026-11-24/image-uploads-0-0-9.parquet"
    )
    assert layout.batch_file_key("image_metadata", "2026-11-24", "image-uploads-0-0-9") == (
        "curated/image_metadata/dt=2026-11-24/image-uploads-0-0-9.parquet"
    )
    assert layout.derivative_key(256, IMAGE_ID, ".webp") == f"derivatives/256/{IMAGE_ID}.webp"


def test_dt_is_the_utc_date():
    late_evening_in_new_york = datetime(2026, 11, 24, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert layout.dt_of(late_evening_in_new_york) == "2026-11-25"
    assert layout.dt_of(date(2026, 1, 2)) == "2026-01-02"
    with pytest.raises(LayoutError, match="naive"):
        layout.dt_of(datetime(2026, 1, 1))
    assert layout.parse_dt("raw/images/dt=2026-11-24/X") == date(2026, 11, 24)
    with pytest.raises(LayoutError):
        layout.parse_dt("raw/images/X")


@pytest.mark.parametrize("bad", ["../etc/passwd", "abc", IMAGE_ID.lower(), IMAGE_ID + "/x", ""])
def test_only_server_generated_ids_reach_a_key(bad):
    with pytest.raises(LayoutError):
        layout.raw_image_key("2026-11-24", bad)


def test_unknown_table_is_refused():
    with pytest.raises(LayoutError, match="unknown table"):
        layout.table_prefix("nope")


def test_batch_id_round_trips_with_dashes_in_the_topic():
    batch = BatchId("image-uploads", 2, 10, 19)
    assert str(batch) == "image-uploads-2-10-19"
    assert BatchId.parse(str(batch)) == batch
    assert batch.size == 10
    for bad in ["image-uploads-2-10", "x-a-1-2", "image-uploads-1-9-3", "-1-2-3"]:
        with pytest.raises(LayoutError):
            BatchId.parse(bad)


def test_an_image_id_is_read_in_any_case_and_a_non_id_is_named_as_given():
    image_id = layout.check_image_id("01M85QCKHR3ZJSJNCNT7KSAN6A")
    assert layout.canonical_image_id(image_id.lower()) == image_id
    # Crockford's aliases, as people copy ids by hand: O is 0, I and L are 1
    assert layout.canonical_image_id("oIM85QCKHR3ZJSJNCNT7KSAN6A") == image_id
    assert layout.canonical_image_id("0lM85QCKHR3ZJSJNCNT7KSAN6A") == image_id
    for bad in ("../../etc/passwd", "01m85qckhr3zjsjncnt7ksan6\u017f", "01M85QCKHR3ZJSJNCNT7KSAN6U"):
        with pytest.raises(layout.LayoutError) as info:
            layout.canonical_image_id(bad)
        assert repr(bad) in str(info.value)
