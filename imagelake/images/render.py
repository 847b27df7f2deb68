"""Derivatives of one image: every configured size and format from a single decode.

The expensive part of a thumbnail is decoding a 12 MP JPEG. So each image is
decoded once, at the smallest DCT scale that still covers the largest size
requested (Pillow's draft mode), and each smaller size is resized from the
previous, larger result (a cascade) instead of from the full image.

Every output is upright (EXIF orientation applied), 8-bit sRGB (ICC profiles
converted, CMYK and 16-bit reduced, palettes expanded), the first frame of an
animation, and carries no metadata: no EXIF, no ICC profile, no XMP.
Sizes are the longest edge in pixels; an image is never upscaled.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageCms

from imagelake.images.checks import ImageRejected, open_checked
from imagelake.images.exif import EXIF_TRANSPOSE, ROTATED, read_orientation
from imagelake.images.facts import bit_depth, grey_to_8bit

#: Output formats: file extension and Pillow encoder of each.
EXTENSIONS: dict[str, str] = {"webp": "webp", "jpeg": "jpg"}
_ENCODERS: dict[str, str] = {"webp": "WEBP", "jpeg": "JPEG"}

#: Resampling as Pillow's own ``thumbnail()`` does it: bicubic, after a box reduction for factors
#: of 2 and more. After the draft decode every step is a reduction by less than about 2, where
#: bicubic is as sharp as Lanczos to the eye and a third cheaper (bench/derivatives_bench.py).
RESAMPLE = Image.Resampling.BICUBIC
REDUCING_GAP = 2.0

_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


class DerivativeError(ValueError):
    """The source cannot be turned into derivatives; ``reason`` goes into the manifest."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DerivativeSpec:
    """What to produce for every image: sizes (longest edge, px), formats and encoder settings."""

    sizes: tuple[int, ...] = (256, 512, 1024)
    formats: tuple[str, ...] = ("webp",)
    webp_quality: int = 80
    webp_method: int = 4
    jpeg_quality: int = 85

    def __post_init__(self) -> None:
        if not self.sizes or any(s < 1 for s in self.sizes):
            raise ValueError(f"derivative sizes must be positive pixel counts, got {self.sizes}")
        unknown = sorted(set(self.formats) - set(EXTENSIONS))
        if not self.formats or unknown:
            raise ValueError(f"derivative formats must be among {sorted(EXTENSIONS)}, got {self.formats}")

    def encode_options(self, fmt: str) -> dict[str, object]:
        if fmt == "webp":
            return {"quality": self.webp_quality, "method": self.webp_method}
        return {"quality": self.jpeg_quality}


@dataclass(frozen=True)
class Rendered:
    """One encoded derivative."""

    size: int
    format: str
    data: bytes
    width: int
    height: int

    @property
    def ext(self) -> str:
        return EXTENSIONS[self.format]


def target_dimensions(width: int, height: int, size: int) -> tuple[int, int]:
    """The dimensions of a derivative whose longest edge is ``size``: never larger than the source."""
    longest = max(width, height)
    if longest <= size:
        return width, height
    scale = size / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_8bit(im: Image.Image, depth: int) -> Image.Image:
    """Modes the resizers and encoders take: RGB, RGBA, L or CMYK (deep greys scaled as the
    metadata's are, palettes expanded)."""
    if im.mode in ("RGB", "RGBA", "L", "CMYK"):
        return im
    if im.mode.startswith("I") or im.mode == "F":
        return grey_to_8bit(im, depth)
    if im.mode in ("P", "PA"):
        return im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
    if im.mode in ("LA", "La", "RGBa"):
        return im.convert("RGBA")
    return im.convert("RGB")


def _to_srgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """8-bit sRGB (RGB, or RGBA when the source has alpha), through the embedded ICC profile if any."""
    alpha = im.getchannel("A") if im.mode == "RGBA" else None
    colour = im.convert("RGB") if alpha is not None else im
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(colour, source, _SRGB, outputMode="RGB")
            colour = converted if converted is not None else colour.convert("RGB")  # None only in place
        except (ImageCms.PyCMSError, OSError, ValueError):
            colour = colour.convert("RGB")  # a broken profile: use the values as they are
    elif colour.mode != "RGB":
        colour = colour.convert("RGB")
    if alpha is not None:
        colour = colour.convert("RGBA")
        colour.putalpha(alpha)
    return colour


def _encode(im: Image.Image, fmt: str, spec: DerivativeSpec) -> bytes:
    if fmt == "jpeg" and im.mode == "RGBA":
        flat = Image.new("RGB", im.size, (255, 255, 255))
        flat.paste(im, mask=im.getchannel("A"))
        im = flat
    im.info = {}  # nothing of the source's metadata travels into a derivative
    out = io.BytesIO()
    im.save(out, format=_ENCODERS[fmt], **spec.encode_options(fmt))
    return out.getvalue()


def decode_for(data: bytes, largest: int, *, max_pixels: int) -> tuple[Image.Image, int, int]:
    """Decode once, reduced as far as DCT scaling allows while still covering ``largest``.

    Returns the upright 8-bit sRGB image resized to the largest derivative and the
    source's upright dimensions.
    """
    if not data:
        raise DerivativeError("empty: the raw object has zero bytes")
    try:
        fmt, source = open_checked(data, max_pixels=max_pixels)
    except ImageRejected as exc:
        raise DerivativeError(f"undecodable: {exc.reason}") from None
    with source:
        width, height = source.size
        first = target_dimensions(width, height, largest)
        try:
            if fmt == "JPEG":
                source.draft("RGB", first)  # DCT scaling: decodes at 1/2, 1/4 or 1/8 when that still covers
            source.seek(0)  # the first frame of an animation
            source.load()
            # Read after loading: Pillow turns a TIFF upright as it loads it (its size already is)
            # and drops the tag; other formats keep theirs and are turned below.
            orientation = read_orientation(source)
            icc = source.info.get("icc_profile")
            im = _to_8bit(source, bit_depth(data, source))
            if im.size != first:
                im = im.resize(first, RESAMPLE, reducing_gap=REDUCING_GAP)
            elif im is source:
                im = source.copy()  # the source closes below
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise DerivativeError(f"undecodable: corrupt or truncated {fmt} image: {exc}") from None
    if orientation != 1:
        im = im.transpose(EXIF_TRANSPOSE[orientation])
    if orientation in ROTATED:
        width, height = height, width
    return _to_srgb(im, icc), width, height


def render(data: bytes, spec: DerivativeSpec, *, max_pixels: int) -> list[Rendered]:
    """Every size of ``spec`` in every format, from one decode; raises :class:`DerivativeError`."""
    sizes = sorted(set(spec.sizes), reverse=True)
    current, width, height = decode_for(data, sizes[0], max_pixels=max_pixels)
    rendered: list[Rendered] = []
    for size in sizes:
        dims = target_dimensions(width, height, size)
        if current.size != dims:
            current = current.resize(dims, RESAMPLE, reducing_gap=REDUCING_GAP)
        for fmt in spec.formats:
            rendered.append(Rendered(size, fmt, _encode(current, fmt, spec), dims[0], dims[1]))
    return rendered
