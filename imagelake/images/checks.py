"""Admission checks of an image with Pillow: the format sniffed, the pixel cap, integrity, PNG bounds.

Decoding is where time and memory go, so every check here decodes as little
as it can: the format is sniffed from magic bytes, the size read from the
header, and integrity checked by decoding JPEGs at 1/8 scale (DCT scaling) and
by PNG chunk CRCs. Every image is opened through :func:`open_checked` (the upload
API, the real-time facts and the Spark derivatives job alike).
"""

from __future__ import annotations

import io
import warnings
import zlib
from dataclasses import dataclass

from PIL import Image, ImageFile, PngImagePlugin

from imagelake.images import png_stream
from imagelake.settings import ALLOWED_FORMATS, MAX_UPLOAD_BYTES

ImageFile.LOAD_TRUNCATED_IMAGES = False

#: The most one PNG metadata chunk may inflate to: an ICC profile (iCCP) or compressed text
#: (zTXt, or iTXt, where XMP lives). Pillow's default, 1 MiB, refused valid photos whose 3 MB
#: profile a JPEG, WebP or TIFF carries (uncompressed) without trouble; the upload cap is the
#: largest profile such an accepted file can carry, so a PNG may carry as much. It stays a
#: bound, not unlimited: zlib inflates about 1000-fold, so a 25 MiB upload could otherwise ask
#: for some 25 GB. Pillow's limits are process-wide, so this is the default cap (the constant),
#: not a deployment's IMAGELAKE_MAX_UPLOAD_BYTES. Every image is opened through this module (the
#: upload API, the real-time metadata run and the Spark derivatives job alike), so setting
#: Pillow's limits here, once, at import, sets them for all of them; :func:`png_metadata_error`
#: checks the same bounds first, so a refusal names the chunk and the limit.
PNG_METADATA_CHUNK_LIMIT = MAX_UPLOAD_BYTES
#: The most all of a PNG's metadata chunks may inflate to together: Pillow's own bound for
#: its text chunks (MAX_TEXT_MEMORY, 64 MiB), kept, and here counting the ICC profile too.
PNG_METADATA_TOTAL_LIMIT = 64 * 1024 * 1024
PngImagePlugin.MAX_TEXT_CHUNK = PNG_METADATA_CHUNK_LIMIT
PngImagePlugin.MAX_TEXT_MEMORY = PNG_METADATA_TOTAL_LIMIT

#: PNG chunks that hold metadata Pillow reads (inflating the compressed ones), as a reason names them.
PNG_METADATA_CHUNKS = {
    b"iCCP": "ICC colour profile (iCCP chunk)",
    b"zTXt": "compressed text (zTXt chunk)",
    b"iTXt": "international text (iTXt chunk, where XMP is kept)",
    b"tEXt": "text (tEXt chunk)",
}

#: Content types answered for each accepted format.
CONTENT_TYPES: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
}


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
    if head.startswith(png_stream.SIGNATURE):
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
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's text names its own limits (ours, and twice ours for the error): say only ours.
        raise ImageRejected(422, _over_cap_reason(data, fmt, max_pixels)) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(422, f"unreadable {fmt} image: {exc}") from None


def _over_cap_reason(data: bytes, fmt: str, max_pixels: int) -> str:
    """Why an image Pillow refused as a decompression bomb is refused: its size against our cap.

    The size is read again from the header by the format's plugin alone (what ``Image.open``
    does before its bomb check), so still no pixel is decoded.
    """
    try:
        factory, _ = Image.OPEN[fmt]
        with factory(io.BytesIO(data), "") as probe:
            width, height = probe.size
    except Exception:  # the header was read once already: never fail the refusal itself
        return f"image has more pixels than the limit of {max_pixels:,}"
    return f"image is {width}x{height} = {width * height:,} pixels, more than the limit of {max_pixels:,}"


def _mib(size: int) -> str:
    return f"{size:,} bytes ({size / (1 << 20):g} MiB)"


def _inflated_size(stream: memoryview, limit: int) -> int:
    """How many bytes the zlib ``stream`` inflates to, counted a step at a time and never held;
    once past ``limit`` the count stops there. A broken stream counts what came out before the
    fault (Pillow ignores such a chunk)."""
    inflater = zlib.decompressobj()
    size = 0
    try:
        for at in range(0, len(stream), png_stream.STEP):
            pending: bytes | memoryview = stream[at : at + png_stream.STEP]
            while pending:
                size += len(inflater.decompress(pending, png_stream.STEP))
                if size > limit or inflater.eof:
                    return size
                pending = inflater.unconsumed_tail
        while not inflater.eof and (out := inflater.decompress(b"", png_stream.STEP)):
            size += len(out)
            if size > limit:
                return size
    except zlib.error:
        pass
    return size


def _metadata_size(kind: bytes, payload: memoryview, limit: int) -> int:
    """The size of the metadata a PNG chunk holds, parsed as Pillow parses it (inflated where
    compressed), counted up to just past ``limit``; 0 where Pillow reads nothing or refuses the
    chunk for another reason (an unknown compression method)."""
    raw = bytes(payload)  # one copy, as Pillow makes: find() on it, and views of it, copy no more
    view = memoryview(raw)
    key_end = raw.find(b"\0")
    if key_end < 0:
        return 0
    at = key_end + 1
    if kind == b"tEXt":
        return len(raw) - at
    if kind in (b"iCCP", b"zTXt"):  # keyword NUL, compression method (0: zlib), compressed data
        return _inflated_size(view[at + 1 :], limit) if raw[at : at + 1] == b"\0" else 0
    # iTXt: keyword NUL, compression flag, method, language tag NUL, translated keyword NUL, text.
    flag, method = raw[at : at + 1], raw[at + 1 : at + 2]
    lang_end = raw.find(b"\0", at + 2)
    tkey_end = raw.find(b"\0", lang_end + 1) if lang_end >= 0 else -1
    if not method or tkey_end < 0:
        return 0
    if flag == b"\0":
        return len(raw) - tkey_end - 1
    return _inflated_size(view[tkey_end + 1 :], limit) if method == b"\0" else 0


def png_metadata_error(data: bytes) -> str | None:
    """Why a PNG's metadata is over :data:`PNG_METADATA_CHUNK_LIMIT` (one chunk) or
    :data:`PNG_METADATA_TOTAL_LIMIT` (all together), or None. Checked before Pillow reads the
    chunks, so the reason names the chunk and our limit, not Pillow's internals; memory stays
    bounded whatever the chunks inflate to."""
    total = 0
    for kind, payload in png_stream.chunks(data):
        if kind == b"IEND":
            break
        if kind not in PNG_METADATA_CHUNKS:
            continue
        size = _metadata_size(kind, payload, PNG_METADATA_CHUNK_LIMIT)
        if size > PNG_METADATA_CHUNK_LIMIT:
            return (
                f"the PNG's {PNG_METADATA_CHUNKS[kind]} is more than {_mib(PNG_METADATA_CHUNK_LIMIT)} "
                "once decompressed, the limit for one metadata chunk: strip or shrink that metadata "
                "(for example with exiftool or an image editor's export option) and upload again"
            )
        total += size
        if total > PNG_METADATA_TOTAL_LIMIT:
            return (
                f"the PNG's metadata chunks (ICC profile and text, such as XMP) are more than "
                f"{_mib(PNG_METADATA_TOTAL_LIMIT)} together once decompressed, the limit for all of them: "
                "strip or shrink the metadata and upload again"
            )
    return None


def open_checked(
    data: bytes, *, max_pixels: int, allowed: tuple[str, ...] = ALLOWED_FORMATS
) -> tuple[str, Image.Image]:
    """Open bytes that must be an image of an allowed format, within the pixel cap: its format
    (as sniffed) and the lazily opened image, which the caller closes.

    The format is sniffed from the bytes (never a file name or a declared
    type) and the cap is checked on the header, before any pixel buffer is
    allocated. Rejections carry the HTTP status an upload would get: 400
    empty, 415 not an allowed format, 422 unreadable or over the cap.
    """
    if not data:
        raise ImageRejected(400, "the file is empty")
    fmt = sniff_format(data[:16])
    if fmt is None or fmt not in allowed:
        raise ImageRejected(
            415,
            f"not an image of an accepted format: send one of {', '.join(allowed)} (detected from the bytes)",
        )
    if fmt == "PNG" and (error := png_metadata_error(data)):
        raise ImageRejected(422, error)
    im = _open(data, fmt, max_pixels)
    width, height = im.size
    if width <= 0 or height <= 0:
        reason = f"image has no pixels ({width}x{height})"
    elif width * height > max_pixels:
        reason = (
            f"image is {width}x{height} = {width * height:,} pixels, more than the limit of {max_pixels:,}"
        )
    else:
        return fmt, im
    im.close()
    raise ImageRejected(422, reason)


def check_upload(data: bytes, *, max_pixels: int, allowed: tuple[str, ...] = ALLOWED_FORMATS) -> ImageHeader:
    """Accept or reject uploaded bytes before they reach the lake (:func:`open_checked`), then
    decode enough to find a corrupt or truncated image (422)."""
    fmt, im = open_checked(data, max_pixels=max_pixels, allowed=allowed)
    width, height = im.size
    try:
        if fmt == "JPEG":
            im.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            im.load()
        elif fmt == "PNG":
            im.verify()  # chunk CRCs; the pixel data below
        else:
            im.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageRejected(422, f"corrupt or truncated {fmt} image: {exc}") from None
    finally:
        im.close()
    if fmt == "PNG" and (error := png_stream.pixel_data_error(data)):
        raise ImageRejected(422, f"corrupt or truncated PNG image: {error}")
    return ImageHeader(fmt, width, height)
