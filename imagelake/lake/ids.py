"""Server-generated, time-sortable image ids (ULID: 48-bit ms time + 80 random bits).

Ids sort by upload time, so listing ``raw/images/dt=.../`` returns them in
upload order, and no client-supplied text ever becomes part of a key.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(_CROCKFORD)}


def new_image_id(now_ms: int | None = None, randomness: bytes | None = None) -> str:
    """A 26-character ULID for ``now_ms`` (default: the current time)."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    if not 0 <= ms < 1 << 48:
        raise ValueError(f"timestamp out of ULID range: {ms}")
    rand = os.urandom(10) if randomness is None else randomness
    if len(rand) != 10:
        raise ValueError("ULID randomness must be 10 bytes")
    value = (ms << 80) | int.from_bytes(rand, "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def image_id_time(image_id: str) -> datetime:
    """The upload moment (UTC, millisecond precision) encoded in an image id."""
    value = 0
    for ch in image_id[:10]:
        value = (value << 5) | _DECODE[ch]
    return datetime.fromtimestamp(value / 1000, tz=UTC)
