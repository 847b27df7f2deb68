"""The facts the real-time path records about an image (``image_metadata``), from one reduced decode.

The facts (:func:`describe`) come from one reduced decode: hash and statistics
are computed on an image whose shorter side is 64-127 pixels, never on a
full-resolution 12 MP bitmap of a JPEG.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from PIL import Image

from imagelake.images.checks import ImageRejected, open_checked
from imagelake.images.exif import EXIF_TRANSPOSE, ROTATED, read_exif
from imagelake.images.phash import phash

#: The reduced image the statistics and the hash are computed on: its shorter side is at least this.
SMALL_SIDE = 64
#: Background transparent pixels are composited on before hashing (white, as most viewers show them).
BACKGROUND = (255, 255, 255)

#: Modes Pillow can box-reduce and whose reduction means the same as that of their RGB view.
_REDUCIBLE = frozenset({"L", "LA", "RGB", "RGBA", "CMYK", "I", "F", "YCbCr"})


@dataclass(frozen=True)
class ImageFacts:
    """What the real-time run records about one stored image (``image_metadata``)."""

    format: str
    width: int  # as displayed: EXIF orientation applied
    height: int
    mode: str  # Pillow mode as stored: RGB, CMYK, P, I;16, ...
    bit_depth: int  # bits per channel (per palette index for P)
    frame_count: int
    orientation: int
    has_icc: bool
    has_gps: bool
    captured_at: datetime | None
    camera_make: str | None
    camera_model: str | None
    phash: int  # unsigned 64-bit
    brightness_mean: float  # 0-255
    contrast: float  # standard deviation of luma
    colourfulness: float  # Hasler-Suesstrunk


def bit_depth(data: bytes, im: Image.Image) -> int:
    """Bits per channel, from the file header where the mode does not say it."""
    if im.format == "PNG" and data[12:16] == b"IHDR":
        return data[24]
    if im.format == "JPEG":
        return int(getattr(im, "bits", 8))
    if im.format == "TIFF":
        bits = getattr(im, "tag_v2", {}).get(258)  # BitsPerSample
        if isinstance(bits, tuple) and bits:
            bits = bits[0]
        if isinstance(bits, int) and 0 < bits <= 64:
            return bits
    if im.mode == "1":
        return 1
    if im.mode.startswith("I;16"):
        return 16
    if im.mode in ("I", "F"):
        return 32
    return 8


def _decode_small(im: Image.Image, data: bytes, fmt: str) -> Image.Image:
    """Decode as little as the facts need: JPEG through DCT scaling, the rest whole, then reduce.

    For a JPEG, libjpeg decodes straight to 1/2, 1/4 or 1/8 scale, so a 12 MP
    photo costs a 500x375 bitmap. Other formats are decoded once at full size.
    Raises :class:`ImageRejected` for a truncated or corrupt image.
    """
    try:
        if fmt == "JPEG":
            im.draft("RGB", (SMALL_SIDE, SMALL_SIDE))
        elif fmt == "PNG":
            with Image.open(io.BytesIO(data), formats=["PNG"]) as check:
                check.verify()  # chunk CRCs: catches corruption the decoder would not notice
        im.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, EOFError) as exc:
        raise ImageRejected(422, f"corrupt or truncated {fmt} image: {exc}") from None
    return im


def grey_to_8bit(im: Image.Image, depth: int) -> Image.Image:
    """An 8-bit greyscale ("L") image of a deep grey one (modes I, I;16, F); Pillow would clip.

    Up to 16 bits, the scale is the bit depth's range, as for a photo. 32-bit integers and
    floats (scientific images) rarely span their type: they are scaled to their own maximum,
    or every such image would come out black, hash to 0 and "nearly" duplicate every other.
    """
    values = np.asarray(im, dtype=np.float64)
    top = max(1.0, float(values.max())) if im.mode == "F" or depth > 16 else float(2 ** max(depth, 1) - 1)
    return Image.fromarray(np.clip(values * (255.0 / top), 0, 255).astype(np.uint8), "L")


def to_rgb8(im: Image.Image, depth: int) -> Image.Image:
    """An 8-bit RGB view of any mode: deep greys scaled (``grey_to_8bit``), transparency on white."""
    mode = im.mode
    if mode.startswith("I") or mode == "F":
        return grey_to_8bit(im, depth).convert("RGB")
    if mode == "P" or mode == "PA":
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = im.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if mode == "RGB":
        return im
    try:
        return im.convert("RGB")
    except ValueError as exc:
        raise ImageRejected(422, f"cannot read pixels of mode {mode}: {exc}") from None


def shrink(im: Image.Image, side: int = SMALL_SIDE) -> Image.Image:
    """Box-reduce by an integer factor so the shorter side stays at or above ``side``."""
    factor = max(1, min(im.size) // side)
    return im.reduce(factor) if factor > 1 else im


def statistics(rgb: Image.Image) -> tuple[float, float, float]:
    """Mean luma, luma standard deviation (contrast) and Hasler-Suesstrunk colourfulness."""
    px = np.asarray(rgb, dtype=np.float32)
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b  # ITU-R 601, as Pillow's L
    rg = r - g
    yb = 0.5 * (r + g) - b
    colourfulness = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    return round(float(luma.mean()), 3), round(float(luma.std()), 3), round(float(colourfulness), 3)


def describe(data: bytes, *, max_pixels: int, uploaded_at: datetime) -> ImageFacts:
    """Every fact ``image_metadata`` holds about a stored image, or :class:`ImageRejected`.

    The same checks as an upload (a raw object may have been written by
    something other than the API), one reduced decode (see ``_decode_small``),
    and the hash and statistics from that reduced, upright image.
    ``uploaded_at`` bounds a believable EXIF capture time, so the result is a
    function of the bytes and the event alone.
    """
    fmt, opened = open_checked(data, max_pixels=max_pixels)
    with opened as im:
        width, height = im.size
        mode = im.mode
        depth = bit_depth(data, im)
        frames = int(getattr(im, "n_frames", 1) or 1)
        has_icc = bool(im.info.get("icc_profile"))
        # Decode before EXIF: reading a PNG's EXIF loads the pixels, and a load that fails
        # inside the EXIF reader (which must not fail the image) would leave a black bitmap.
        decoded = _decode_small(im, data, fmt)
        exif = read_exif(im, not_after=uploaded_at + timedelta(days=1))
        if decoded.mode in _REDUCIBLE:  # shrink first: converting a full-size bitmap costs more
            small = to_rgb8(shrink(decoded), depth)
        else:
            small = shrink(to_rgb8(decoded, depth))
    transpose = EXIF_TRANSPOSE.get(exif.orientation)
    if transpose is not None:
        small = small.transpose(transpose)
        if exif.orientation in ROTATED:
            width, height = height, width
    brightness, contrast, colourfulness = statistics(small)
    return ImageFacts(
        format=fmt,
        width=width,
        height=height,
        mode=mode,
        bit_depth=depth,
        frame_count=frames,
        orientation=exif.orientation,
        has_icc=has_icc,
        has_gps=exif.has_gps,
        captured_at=exif.captured_at,
        camera_make=exif.camera_make,
        camera_model=exif.camera_model,
        phash=phash(small),
        brightness_mean=brightness,
        contrast=contrast,
        colourfulness=colourfulness,
    )
