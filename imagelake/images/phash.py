"""The 64-bit perceptual hash (pHash) and the Hamming distance between hashes.

pHash: shrink the image to 32x32 luma, take the 2-D DCT, keep the 8x8 lowest
frequencies and set one bit per coefficient that is above their median. The
bits are laid out row-major, first bit most significant, exactly as
``imagehash.phash`` lays them out, so a hash reads the same in both (the
benchmark and a test compare the two). The DCT is two small matrix products
with numpy; no scipy at run time.

Hashes are unsigned 64-bit integers in memory and in the hash index, and 16
hex digits in ``image_metadata.phash`` and the catalog.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

#: Bits per side of the hash (8 x 8 = 64 bits).
HASH_SIDE = 8
#: Side of the luma image the DCT runs on (4 x the hash side, as imagehash does).
DCT_SIDE = 32
HASH_BITS = HASH_SIDE * HASH_SIDE


class HashError(ValueError):
    """Not a perceptual hash (wrong length or not hexadecimal)."""


@lru_cache(maxsize=1)
def _dct_rows() -> np.ndarray:
    """The first ``HASH_SIDE`` rows of the unnormalised DCT-II matrix (scipy's ``dct`` type 2)."""
    k = np.arange(HASH_SIDE, dtype=np.float64)[:, None]
    n = np.arange(DCT_SIDE, dtype=np.float64)[None, :]
    return 2.0 * np.cos(np.pi * k * (2.0 * n + 1.0) / (2.0 * DCT_SIDE))


def phash_of_luma(luma: np.ndarray) -> int:
    """The hash of a ``DCT_SIDE`` x ``DCT_SIDE`` luma array (any numeric dtype)."""
    if luma.shape != (DCT_SIDE, DCT_SIDE):
        raise HashError(f"pHash needs a {DCT_SIDE}x{DCT_SIDE} luma array, got {luma.shape}")
    rows = _dct_rows()
    low = rows @ luma.astype(np.float64) @ rows.T  # the 8x8 lowest frequencies
    bits = (low > np.median(low)).reshape(-1)
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def luma_for_hash(im: Image.Image) -> np.ndarray:
    """Shrink an (already small, upright) image to the hash's luma grid."""
    grey = im if im.mode == "L" else im.convert("L")
    return np.asarray(grey.resize((DCT_SIDE, DCT_SIDE), Image.Resampling.LANCZOS))


def phash(im: Image.Image) -> int:
    """The perceptual hash of an image."""
    return phash_of_luma(luma_for_hash(im))


def to_hex(value: int) -> str:
    return f"{value:016x}"


def from_hex(text: str) -> int:
    if len(text) != 16:
        raise HashError(f"a perceptual hash is 16 hex digits, got {text!r}")
    try:
        return int(text, 16)
    except ValueError:
        raise HashError(f"a perceptual hash is 16 hex digits, got {text!r}") from None


def hamming(a: int, b: int) -> int:
    """Bits in which two hashes differ."""
    return (a ^ b).bit_count()


def distances(hashes: np.ndarray, query: int) -> np.ndarray:
    """Hamming distance from ``query`` to every hash of a ``uint64`` array, vectorised."""
    return np.bitwise_count(np.bitwise_xor(hashes, np.uint64(query)))
