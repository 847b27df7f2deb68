from datetime import UTC, datetime

import pytest

from imagelake.images.exif import clean_text, parse_capture_time, parse_orientation

LATEST = datetime(2026, 11, 25, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (6, 6),
        (1, 1),
        (8, 8),
        (0, 1),
        (9, 1),
        (65535, 1),
        (2**40, 1),
        (-3, 1),
        ("6", 1),
        (True, 1),
        ((6,), 6),
        (None, 1),
    ],
)
def test_orientation(value, expected):
    assert parse_orientation(value) == expected


@pytest.mark.parametrize(
    ("value", "offset", "expected"),
    [
        ("2026:11:20 08:30:00", None, datetime(2026, 11, 20, 8, 30, tzinfo=UTC)),
        ("2026:11:20 08:30:00", "+02:00", datetime(2026, 11, 20, 6, 30, tzinfo=UTC)),
        ("2026:11:20 08:30:00", "-05:30", datetime(2026, 11, 20, 14, 0, tzinfo=UTC)),
        ("2026:11:20 08:30:00", "+99:99", datetime(2026, 11, 20, 8, 30, tzinfo=UTC)),
        ("2026:11:20 08:30:00\x00\x00", None, datetime(2026, 11, 20, 8, 30, tzinfo=UTC)),
        (b"2026:11:20 08:30:00", None, datetime(2026, 11, 20, 8, 30, tzinfo=UTC)),
        ("0000:00:00 00:00:00", None, None),
        ("1969:12:31 23:59:59", None, None),
        ("2026:11:26 00:00:01", None, None),  # after the upload (+1 day): a wrong clock
        ("2026:02:30 10:00:00", None, None),
        ("yesterday", None, None),
        (12345, None, None),
        (None, None, None),
    ],
)
def test_capture_time(value, offset, expected):
    assert parse_capture_time(value, offset, LATEST) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Canon", "Canon"),
        ("  Nikon  ", "Nikon"),
        ("Sony\x00garbage after nul", "Sony"),
        (b"Fuji\xff", "Fuji\ufffd"),
        ("\x01\x02\x03", None),
        ("", None),
        (42, None),
        ("x" * 500, "x" * 64),
    ],
)
def test_clean_text(value, expected):
    assert clean_text(value) == expected
