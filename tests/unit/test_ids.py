from datetime import UTC, datetime

from imagelake.lake.ids import image_id_time, new_image_id
from imagelake.lake.layout import check_image_id


def test_ids_are_valid_unique_and_sort_by_time():
    ids = [new_image_id(1_700_000_000_000 + i) for i in range(200)]
    assert len(set(ids)) == 200
    assert ids == sorted(ids)
    for image_id in ids[:5]:
        assert check_image_id(image_id) == image_id


def test_id_encodes_its_upload_time():
    moment = datetime(2026, 11, 24, 12, 0, 0, 123000, tzinfo=UTC)
    image_id = new_image_id(int(moment.timestamp() * 1000))
    assert image_id_time(image_id) == moment


def test_same_inputs_give_the_same_id():
    assert new_image_id(5, b"\x00" * 10) == new_image_id(5, b"\x00" * 10) == "0000000005" + "0" * 16
