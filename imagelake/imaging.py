"""Image checks and facts with Pillow: sniffing, the pixel cap, integrity, dimensions.

Decoding is where time and memory go, so every function here decodes as little
as it can: the format is sniffed from magic bytes, the size read from the
header, and integrity checked by decoding JPEGs at 1/8 scale (DCT scaling) and
by PNG chunk CRCs, without ever allocating a full-resolution bitmap.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile

from imagelake.settings import ALLOWED_FORMATS

ImageFile.LOAD_TRUNCATED_IMAGES = False

#: Content types answered for each accepted format.
CONTENT_TYPES: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
}

_EXIF_ORIENTATION = 0x0112
_ROTATED = {5, 6, 7, 8}  # orientations that swap width and height


class ImageRejected(ValueError):
    """The bytes are not an acceptable image; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int


def sniff_format(head: bytes) -> str | None:
    """The image format named by the leading magic bytes, or ``None``."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    return None


def _open(data: bytes, fmt: str, max_pixels: int) -> Image.Image:
    """Open lazily (header only) with exactly one decoder plugin and the pixel cap."""
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=[fmt])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(422, f"image has more pixels than the limit of {max_pixels:,}: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(422, f"unreadable {fmt} image: {exc}") from None


def check_upload(data: bytes, *, max_pixels: int, allowed: tuple[str, ...] = ALLOWED_FORMATS) -> ImageHeader:
    """Accept or reject uploaded bytes before they reach the lake.

    415 for anything that is not one of the allowed formats (checked on the
    bytes, never on a file name or a declared type), 422 for a corrupt or
    truncated image or one over the pixel cap. The cap is checked on the
    header, before any pixel buffer is allocated.
    """
    if not data:
        raise ImageRejected(400, "the file is empty")
    fmt = sniff_format(data[:16])
    if fmt is None or fmt not in allowed:
        raise ImageRejected(
            415, f"unsupported media type: send one of {', '.join(allowed)} (detected from the bytes)"
        )
    im = _open(data, fmt, max_pixels)
    width, height = im.size
    if width <= 0 or height <= 0:
        raise ImageRejected(422, f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageRejected(
            422,
            f"image is {width}x{height} = {width * height:,} pixels, more than the limit of {max_pixels:,}",
        )
    try:
        if fmt == "JPEG":
            im.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            im.load()
        elif fmt == "PNG":
            im.verify()
        else:
            im.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageRejected(422, f"corrupt or truncated {fmt} image: {exc}") from None
    finally:
        im.close()
    return ImageHeader(fmt, width, height)


@dataclass(frozen=True)
class ImageFacts:
    """What the real-time run records about one stored image."""

    format: str
    width: int  # as displayed: EXIF orientation applied
    height: int


def describe(data: bytes, *, max_pixels: int) -> ImageFacts:
    """Facts about a stored image; raises :class:`ImageRejected` if it is unusable.

    The same checks as an upload (a raw object may have been written by
    something other than the API), then the EXIF orientation from the header.
    """
    header = check_upload(data, max_pixels=max_pixels)
    width, height = header.width, header.height
    with _open(data, header.format, max_pixels) as im:
        try:
            orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
        except Exception:  # a broken EXIF block does not make the image unusable
            orientation = 1
    if orientation in _ROTATED:
        width, height = height, width
    return ImageFacts(header.format, width, height)
