from datetime import UTC

import pyarrow as pa

from imagelake.lake.tables import read_batch_table, to_parquet_bytes, write_batch_table
from imagelake.realtime.batches import split_messages
from tests.unit.test_batches import BATCH, msg
from tests.unit.test_events import make_event


def test_batch_files_are_split_by_upload_date_and_read_back(lake):
    from datetime import datetime

    e1 = make_event()
    e2 = make_event(
        uploaded_at=datetime(2026, 11, 21, 9, 0, tzinfo=UTC),
        image_id=e1.image_id,
        key=f"raw/images/dt=2026-11-21/{e1.image_id}",
    )
    split = split_messages(BATCH, [msg(10, e1.encode()), msg(11, e2.encode())], [], "2026-11-24")
    files = write_batch_table(lake, "upload_events", str(BATCH), split.event_rows, split.event_dts)
    assert [f.key for f in files] == [
        f"raw/events/dt=2026-11-21/{BATCH}.parquet",
        f"raw/events/dt=2026-11-24/{BATCH}.parquet",
    ]
    table = read_batch_table(lake, "upload_events", str(BATCH))
    assert sorted(table["kafka_offset"].to_pylist()) == [10, 11]
    assert read_batch_table(lake, "upload_events", "image-uploads-0-0-0").num_rows == 0


def test_rewriting_a_batch_gives_identical_bytes(lake):
    split = split_messages(BATCH, [msg(10, make_event().encode())], [], "2026-11-24")
    first = write_batch_table(lake, "upload_events", str(BATCH), split.event_rows, split.event_dts)
    before = lake.get(first[0].key)
    again = write_batch_table(lake, "upload_events", str(BATCH), split.event_rows, split.event_dts)
    assert first == again and lake.get(first[0].key) == before


def test_serialisation_is_deterministic():
    table = pa.table({"a": [1, 2, 3]})
    assert to_parquet_bytes(table) == to_parquet_bytes(table)
