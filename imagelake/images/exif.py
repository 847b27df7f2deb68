"""The few EXIF facts imagelake keeps, read defensively.

EXIF is written by cameras, phones, editors and, sometimes, by people who
want to break parsers. Every value is checked before it is trusted: an
orientation outside 1-8 counts as 1, a capture time that is not a real moment
between 1970 and the upload is dropped, text is cut to a sane length and
stripped of control characters, and a block Pillow cannot parse at all counts
as no EXIF. GPS is reduced to a flag: coordinates are never read into a value.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

from PIL import ExifTags, Image

T = TypeVar("T")

# Pillow warns once per hostile EXIF entry and then skips it, which is what we want; the
# warnings would only flood run logs with one line per broken upload.
warnings.filterwarnings(
    "ignore",
    message=r"(Corrupt EXIF data|Possibly corrupt EXIF|Tag data larger than file|Metadata Warning)",
    category=UserWarning,
)

_ORIENTATION = 0x0112
_MAKE = 0x010F
_MODEL = 0x0110
_DATETIME = 0x0132
_DATETIME_ORIGINAL = 0x9003
_OFFSET_TIME_ORIGINAL = 0x9011
_GPS_LATITUDE = 0x0002
_GPS_LONGITUDE = 0x0004

#: Longest camera make or model kept, in characters.
MAX_TEXT = 64
#: Capture times before this are treated as garbage (a zeroed or unset clock).
EARLIEST_CAPTURE = datetime(1970, 1, 1, tzinfo=UTC)

_EXIF_TIME = re.compile(r"^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class ExifFacts:
    orientation: int = 1
    captured_at: datetime | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    has_gps: bool = False


def clean_text(value: object) -> str | None:
    """A printable, trimmed string of at most ``MAX_TEXT`` characters, or ``None``."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    text = _CONTROL.sub("", value.split("\x00", 1)[0]).strip()[:MAX_TEXT].strip()
    return text or None


def parse_orientation(value: object) -> int:
    """EXIF orientation 1-8; anything else (garbage, huge, missing) is 1, upright."""
    if isinstance(value, tuple | list) and value:
        value = value[0]
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 8:
        return value
    return 1


def parse_capture_time(value: object, offset: object, not_after: datetime) -> datetime | None:
    """``YYYY:MM:DD HH:MM:SS`` (+ optional ``±HH:MM`` offset) as UTC, if it is a sane moment.

    Without an offset the camera's local time is taken as UTC: EXIF has no
    zone, and a fixed rule keeps re-runs identical.
    """
    text = clean_text(value)
    if text is None:
        return None
    match = _EXIF_TIME.match(text)
    if not match:
        return None
    try:
        year, month, day, hour, minute, second = (int(g) for g in match.groups())
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:  # month 13, day 0, hour 25 ...
        return None
    zone = _OFFSET.match(clean_text(offset) or "")
    if zone:
        sign = 1 if zone.group(1) == "+" else -1
        hours, minutes = int(zone.group(2)), int(zone.group(3))
        if hours <= 14 and minutes < 60:
            local = moment.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))
            moment = local.astimezone(UTC)
    if not EARLIEST_CAPTURE <= moment <= not_after:
        return None
    return moment


def _guarded(read: Callable[[], T], default: T) -> T:
    try:
        return read()
    except Exception:  # Pillow raises many types on hostile EXIF; it must not fail the image
        return default


def read_orientation(im: Image.Image) -> int:
    """The EXIF orientation of an opened image (1-8); a broken EXIF block counts as upright."""
    return _guarded(lambda: parse_orientation(im.getexif().get(_ORIENTATION)), 1)


def read_exif(im: Image.Image, not_after: datetime) -> ExifFacts:
    """The EXIF facts of an opened image; ``not_after`` bounds a believable capture time.

    Each fact is read on its own, so one broken entry loses only itself.
    """
    exif = _guarded(im.getexif, None)
    if exif is None:
        return ExifFacts()
    no_entries: dict[int, Any] = {}
    ifd = _guarded(lambda: exif.get_ifd(ExifTags.IFD.Exif), no_entries)
    gps = _guarded(lambda: exif.get_ifd(ExifTags.IFD.GPSInfo), no_entries)
    return ExifFacts(
        orientation=_guarded(lambda: parse_orientation(exif.get(_ORIENTATION)), 1),
        captured_at=_guarded(
            lambda: parse_capture_time(
                ifd.get(_DATETIME_ORIGINAL, exif.get(_DATETIME)), ifd.get(_OFFSET_TIME_ORIGINAL), not_after
            ),
            None,
        ),
        camera_make=_guarded(lambda: clean_text(exif.get(_MAKE)), None),
        camera_model=_guarded(lambda: clean_text(exif.get(_MODEL)), None),
        has_gps=_guarded(lambda: _GPS_LATITUDE in gps or _GPS_LONGITUDE in gps, False),
    )


#: EXIF orientations that swap width and height.
ROTATED = frozenset({5, 6, 7, 8})

#: The transpose that shows an image the way its EXIF orientation (2-8) says it is displayed.
EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
