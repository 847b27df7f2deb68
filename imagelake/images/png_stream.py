"""Whether a PNG's pixel data is whole, without decoding it into a bitmap.

Pillow's ``verify()`` checks chunk CRCs only: an IDAT stream cut short, or one
that is not zlib at all, passes it (the CRCs are computed over whatever bytes
are there). A full decode at upload would find it but allocates the whole
bitmap (up to the pixel cap, hundreds of MB) per request. Inflating the stream
and counting its bytes finds the same faults in bounded memory.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Samples per pixel of each PNG colour type (grey, RGB, palette, grey+alpha, RGBA).
SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: Adam7 passes: first column, first row, column step, row step.
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
#: Inflate this much at a time, so a hostile stream cannot make one call allocate a lot.
STEP = 1 << 20


def raw_size(width: int, height: int, bit_depth: int, colour_type: int, interlaced: bool) -> int:
    """Bytes of filtered scanlines (a filter byte per row) the IDAT stream must inflate to."""
    bits = SAMPLES[colour_type] * bit_depth

    def rows(w: int, h: int) -> int:
        return h * (1 + (w * bits + 7) // 8) if w > 0 and h > 0 else 0

    if not interlaced:
        return rows(width, height)
    return sum(rows((width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy) for x0, y0, dx, dy in ADAM7)


def chunks(data: bytes) -> Iterator[tuple[bytes, memoryview]]:
    """(type, payload) of each chunk; stops at the end of the data or a chunk that runs past it.
    Payloads are views of ``data``, not copies (an upload's IDAT is up to its whole size)."""
    view = memoryview(data)
    at = len(SIGNATURE)
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", view[at : at + 8])
        payload = view[at + 8 : at + 8 + length]
        if len(payload) < length:
            return
        yield kind, payload
        at += 12 + length


def pixel_data_error(data: bytes) -> str | None:
    """Why the PNG's pixel data is not whole, or None. Expects a PNG whose header Pillow read."""
    header = next((p for k, p in chunks(data) if k == b"IHDR"), None)
    if header is None or len(header) < 13:
        return "no image header (IHDR)"
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header[:13])
    if colour not in SAMPLES:
        return f"unknown colour type {colour}"
    expected = raw_size(width, height, depth, colour, interlace == 1)
    stream = zlib.decompressobj()
    inflated = 0
    try:
        for kind, payload in chunks(data):
            if kind != b"IDAT":
                continue
            pending: bytes | memoryview = payload
            while not stream.eof:
                out = len(stream.decompress(pending, STEP))
                inflated += out
                pending = stream.unconsumed_tail
                if inflated >= expected:  # whole; more is ignored, as libpng and Pillow do
                    return None
                if not pending and out < STEP:  # this chunk's bytes are all inflated
                    break
    except zlib.error as exc:
        return f"pixel data is not a valid zlib stream: {exc}"
    return f"pixel data ends early: {inflated:,} of {expected:,} bytes"
