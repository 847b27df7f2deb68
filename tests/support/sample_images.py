"""Deterministic test images: every byte is a function of the arguments."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def pixels(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """A smooth gradient with seeded noise: compresses like a photo, differs per seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            (x / max(width - 1, 1)) * 255,
            (y / max(height - 1, 1)) * 255,
            ((x + y) / max(width + height - 2, 1)) * 255,
        ],
        axis=-1,
    )
    base += rng.normal(0, 12, size=base.shape).astype(np.float32)
    im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    return im if mode == "RGB" else im.convert(mode)


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    im.save(out, format=fmt, **params)
    return out.getvalue()


def jpeg(width: int = 64, height: int = 48, seed: int = 0, quality: int = 85, **params: object) -> bytes:
    return encode(pixels(width, height, seed), "JPEG", quality=quality, **params)


def png(width: int = 64, height: int = 48, seed: int = 0, mode: str = "RGB") -> bytes:
    return encode(pixels(width, height, seed, mode), "PNG")


def webp(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    return encode(pixels(width, height, seed), "WEBP", quality=80)


def gif(width: int = 64, height: int = 48, seed: int = 0, frames: int = 1) -> bytes:
    images = [pixels(width, height, seed + i).convert("P") for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, format="GIF", save_all=frames > 1, append_images=images[1:], duration=80, loop=0)
    return out.getvalue()


def tiff(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    return encode(pixels(width, height, seed), "TIFF")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(width: int = 30000, height: int = 30000) -> bytes:
    """A valid 1-bit PNG of ``width`` x ``height`` pixels, only kilobytes long.

    Decoding it would allocate ``width * height`` pixels; a safe reader
    rejects it from the header alone.
    """
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def png_with_idat(idat: bytes, width: int = 100, height: int = 100, interlaced: bool = False) -> bytes:
    """An 8-bit RGB PNG whose one IDAT chunk holds ``idat``, every chunk with a valid CRC: what
    Pillow's ``verify()`` passes whatever the pixel data is."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 1 if interlaced else 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def png_pixel_stream(width: int, height: int, interlaced: bool = False) -> bytes:
    """The inflated pixel data (filter byte 0, black pixels) of an RGB PNG, interlaced (Adam7) or not."""
    passes = [
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    ]
    sizes = (
        [(-(-(width - x) // dx), -(-(height - y) // dy)) for x, y, dx, dy in passes]
        if interlaced
        else [(width, height)]
    )
    return b"".join((b"\x00" + b"\x00" * 3 * w) * h for w, h in sizes if w > 0 and h > 0)


# -- photo-like images and the awkward inputs of the real-time pipeline ------------------------


def scene(width: int = 320, height: int = 240, seed: int = 0) -> Image.Image:
    """Blurred shapes on a background with mild noise: structure a perceptual hash can see.

    ``pixels`` is mostly noise, which no perceptual hash survives resizing;
    photos are not. Every byte is still a function of the arguments.
    """
    from PIL import ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(im)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1 = x0 + int(rng.integers(width // 8, width // 2))
        y1 = y0 + int(rng.integers(height // 8, height // 2))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([x0, y0, x1, y1], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    im = im.filter(ImageFilter.GaussianBlur(max(1, width // 400)))
    noise = rng.normal(0, 4, (height, width, 3)).astype(np.float32)
    return Image.fromarray(np.clip(np.asarray(im, np.float32) + noise, 0, 255).astype(np.uint8), "RGB")


def photo(width: int = 320, height: int = 240, seed: int = 0, quality: int = 90, **params: object) -> bytes:
    """A photo-like JPEG."""
    return encode(scene(width, height, seed), "JPEG", quality=quality, **params)


def cmyk_jpeg(width: int = 96, height: int = 64, seed: int = 0) -> bytes:
    return encode(scene(width, height, seed).convert("CMYK"), "JPEG", quality=90)


def png16(width: int = 96, height: int = 64) -> bytes:
    """A 16-bit greyscale PNG whose values span 0-65535 (mid-grey on average)."""
    ramp = np.linspace(0, 65535, width * height).reshape(height, width).astype(np.uint16)
    return encode(Image.fromarray(ramp), "PNG")


def palette_png_with_transparency(width: int = 96, height: int = 64) -> bytes:
    """A 4-colour palette PNG whose left half is fully transparent."""
    rgba = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    rgba.paste((20, 40, 200, 255), (width // 2, 0, width, height))
    return encode(rgba.quantize(colors=4), "PNG", transparency=0)


def exif_block(**tags: object) -> bytes:
    """EXIF bytes for Pillow's ``exif=`` save parameter.

    Keyword names: orientation, make, model, captured (DateTimeOriginal),
    offset (OffsetTimeOriginal), gps (True adds latitude and longitude).
    """
    exif = Image.Exif()
    if "orientation" in tags:
        exif[0x0112] = tags["orientation"]
    if "make" in tags:
        exif[0x010F] = tags["make"]
    if "model" in tags:
        exif[0x0110] = tags["model"]
    if "captured" in tags or "offset" in tags:
        ifd = exif.get_ifd(0x8769)
        if "captured" in tags:
            ifd[0x9003] = tags["captured"]
        if "offset" in tags:
            ifd[0x9011] = tags["offset"]
    if tags.get("gps"):
        gps = exif.get_ifd(0x8825)
        gps[1], gps[2] = "N", (52.0, 31.0, 12.0)
        gps[3], gps[4] = "E", (13.0, 24.0, 36.0)
    return exif.tobytes()


def with_raw_app1(jpeg_bytes: bytes, payload: bytes) -> bytes:
    """A JPEG with an APP1 (EXIF) segment of exactly ``payload`` inserted after SOI."""
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg_bytes[:2] + segment + jpeg_bytes[2:]
