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
