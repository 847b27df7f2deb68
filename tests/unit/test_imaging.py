import random
import struct
import tracemalloc
import zlib
from datetime import UTC, datetime

import pytest

from imagelake.images.checks import (
    PNG_METADATA_CHUNK_LIMIT,
    PNG_METADATA_TOTAL_LIMIT,
    ImageRejected,
    check_upload,
    sniff_format,
)
from imagelake.images.facts import describe
from imagelake.images.render import decode_for
from tests.support import sample_images as images

CAP = 64_000_000


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (images.jpeg(), "JPEG"),
        (images.png(), "PNG"),
        (images.webp(), "WEBP"),
        (images.gif(), "GIF"),
        (images.tiff(), "TIFF"),
    ],
)
def test_allowed_formats_are_accepted(data, fmt):
    assert sniff_format(data[:16]) == fmt
    header = check_upload(data, max_pixels=CAP)
    assert (header.format, header.width, header.height) == (fmt, 64, 48)


@pytest.mark.parametrize(
    "data",
    [
        b"hello, this is text",
        b"<!doctype html><html><body>hi</body></html>",
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n",
    ],
    ids=["text", "html", "svg", "pdf"],
)
def test_non_images_are_415(data):
    with pytest.raises(ImageRejected) as info:
        check_upload(data, max_pixels=CAP)
    assert info.value.status == 415


def test_format_outside_the_allowlist_is_415():
    with pytest.raises(ImageRejected) as info:
        check_upload(images.png(), max_pixels=CAP, allowed=("JPEG",))
    assert info.value.status == 415


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_truncated_images_are_422(fmt):
    data = getattr(images, fmt)(400, 300)
    with pytest.raises(ImageRejected) as info:
        check_upload(data[: len(data) // 2], max_pixels=CAP)
    assert info.value.status == 422
    assert "truncated" in info.value.reason or "unreadable" in info.value.reason


def rejected_with_peak_memory(data: bytes) -> tuple[pytest.ExceptionInfo[ImageRejected], int]:
    """The rejection of an upload and the most memory Python allocated on the way."""
    tracemalloc.start()
    try:
        with pytest.raises(ImageRejected) as info:
            check_upload(data, max_pixels=CAP)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return info, peak


def test_huge_png_is_rejected_from_its_header_without_allocating_pixels():
    data = images.huge_png(30000, 30000)
    assert len(data) < 1_000_000
    info, peak = rejected_with_peak_memory(data)
    assert info.value.status == 422
    assert "pixels" in info.value.reason
    assert peak < 20 * 1024 * 1024  # 900 MP would need ~112 MB even at 1 bit per pixel


def huge_tiff(width: int = 12000, height: int = 12000) -> bytes:
    """An uncompressed 8-bit grey TIFF header of ``width`` x ``height``, without its pixels
    (opening is lazy: the header is all a size check reads)."""
    tags = [(256, width), (257, height), (258, 8), (259, 1), (262, 1), (273, 8), (277, 1), (278, height)]
    tags.append((279, width * height))
    ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", tag, 4, 1, v) for tag, v in tags)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (huge_tiff(12000, 12000), "12000x12000 = 144,000,000"),  # over twice the cap: Pillow's error
        (huge_tiff(9000, 9000), "9000x9000 = 81,000,000"),  # over the cap: Pillow's warning
        (images.huge_png(30000, 30000), "30000x30000 = 900,000,000"),
    ],
    ids=["tiff-over-twice-the-cap", "tiff-over-the-cap", "png"],
)
def test_over_the_pixel_cap_names_only_our_limit_and_the_pixel_count(data, size):
    with pytest.raises(ImageRejected) as info:
        check_upload(data, max_pixels=CAP)
    assert info.value.status == 422
    assert info.value.reason == f"image is {size} pixels, more than the limit of 64,000,000"


def test_pixel_cap_is_a_setting():
    with pytest.raises(ImageRejected, match=r"limit of 1,000"):
        check_upload(images.png(64, 48), max_pixels=1000)


def test_empty_file_is_400():
    with pytest.raises(ImageRejected) as info:
        check_upload(b"", max_pixels=CAP)
    assert info.value.status == 400


def test_describe_applies_exif_orientation():
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: displayed as 48 x 64
    data = images.jpeg(64, 48, exif=exif.tobytes())
    facts = describe(data, max_pixels=CAP, uploaded_at=datetime.now(UTC))
    assert (facts.format, facts.width, facts.height, facts.orientation) == ("JPEG", 48, 64, 6)


def _not_zlib() -> bytes:
    return bytes(range(256)) * 4


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("idat", "why"),
    [
        (_not_zlib(), "not a valid zlib stream"),
        (_half(zlib.compress(images.png_pixel_stream(100, 100))), "ends early"),
        (zlib.compress(images.png_pixel_stream(100, 50)), "ends early"),
    ],
    ids=["not-zlib", "cut-short", "too-few-rows"],
)
def test_a_png_whose_pixel_data_is_broken_under_valid_crcs_is_422(idat, why):
    """Pillow's verify() passes these (it checks CRCs only); a decode would fail or misread them."""
    with pytest.raises(ImageRejected) as info:
        check_upload(images.png_with_idat(idat), max_pixels=CAP)
    assert info.value.status == 422 and why in info.value.reason


@pytest.mark.parametrize("interlaced", [False, True], ids=["plain", "adam7"])
@pytest.mark.parametrize(("width", "height"), [(100, 100), (1, 1), (3, 7), (9, 2)])
def test_whole_pngs_pass_and_decode(width, height, interlaced):
    data = images.png_with_idat(
        zlib.compress(images.png_pixel_stream(width, height, interlaced)), width, height, interlaced
    )
    assert check_upload(data, max_pixels=CAP).width == width
    facts = describe(data, max_pixels=CAP, uploaded_at=datetime.now(UTC))
    assert (facts.width, facts.height, facts.brightness_mean) == (width, height, 0.0)


def test_describe_rejects_a_png_whose_pixels_do_not_decode_instead_of_reading_black():
    """Reading a PNG's EXIF decodes it; a failure there must not leave a black image behind."""
    with pytest.raises(ImageRejected) as info:
        describe(images.png_with_idat(_not_zlib()), max_pixels=CAP, uploaded_at=datetime.now(UTC))
    assert info.value.status == 422


def test_pixel_data_longer_than_the_image_is_accepted_as_libpng_and_pillow_read_it():
    data = images.png_with_idat(zlib.compress(images.png_pixel_stream(100, 200)))
    assert check_upload(data, max_pixels=CAP).height == 100


def test_real_pngs_of_every_mode_pass_the_pixel_data_check():
    for data in (
        images.png(),
        images.png16(),
        images.palette_png_with_transparency(),
        images.png(33, 17, mode="L"),
    ):
        check_upload(data, max_pixels=CAP)


def with_chunk(png: bytes, kind: bytes, payload: bytes, *, after_pixels: bool = False) -> bytes:
    """``png`` with one more chunk (valid CRC), before its first IDAT or just before IEND."""
    chunk = struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    at = png.rindex(b"IEND") - 4 if after_pixels else png.index(b"IDAT") - 4
    return png[:at] + chunk + png[at:]


def icc_chunk(profile: bytes) -> bytes:
    return b"ICC Profile\0\0" + zlib.compress(profile)


def xmp_chunk(xmp: bytes) -> bytes:
    """An iTXt chunk holding compressed XMP, as Adobe's tools write it."""
    return b"XML:com.adobe.xmp\0\1\0\0\0" + zlib.compress(xmp)


MB3 = 3 * 1000 * 1000


@pytest.mark.parametrize(
    ("kind", "payload", "after_pixels"),
    [
        (b"iCCP", icc_chunk(random.Random(1).randbytes(MB3)), False),
        (b"iTXt", xmp_chunk(b"<x:xmpmeta>" + b"x" * MB3 + b"</x:xmpmeta>"), True),
        (b"zTXt", b"Comment\0\0" + zlib.compress(b"y" * MB3), True),
    ],
    ids=["icc-profile", "xmp-after-the-pixels", "ztxt-after-the-pixels"],
)
def test_a_png_with_megabytes_of_metadata_is_accepted_and_described(kind, payload, after_pixels):
    """A 3 MB ICC profile or XMP packet is accepted in a JPEG; a PNG carrying one is as valid."""
    data = with_chunk(images.png(), kind, payload, after_pixels=after_pixels)
    header = check_upload(data, max_pixels=CAP)
    assert (header.format, header.width, header.height) == ("PNG", 64, 48)
    facts = describe(data, max_pixels=CAP, uploaded_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert (facts.width, facts.height, facts.has_icc) == (64, 48, kind == b"iCCP")
    rendered, width, height = decode_for(data, 32, max_pixels=CAP)  # the derivatives job's decode
    assert (width, height) == (64, 48) and max(rendered.size) == 32


@pytest.mark.parametrize(
    ("kind", "payload", "named"),
    [
        (b"iCCP", icc_chunk(bytes(PNG_METADATA_CHUNK_LIMIT + 1)), "ICC colour profile (iCCP chunk)"),
        (b"iTXt", xmp_chunk(bytes(PNG_METADATA_CHUNK_LIMIT + 1)), "international text (iTXt chunk"),
        (
            b"zTXt",
            b"Comment\0\0" + zlib.compress(bytes(2 * PNG_METADATA_CHUNK_LIMIT)),
            "compressed text (zTXt",
        ),
    ],
    ids=["icc-profile", "xmp", "ztxt"],
)
def test_png_metadata_over_the_bound_is_422_naming_the_chunk_and_the_limit(kind, payload, named):
    """Zeros inflate a thousand-fold: the bound, not the upload cap, stops such a chunk."""
    data = with_chunk(images.png(), kind, payload, after_pixels=kind != b"iCCP")
    assert len(data) < 100_000
    with pytest.raises(ImageRejected) as info:
        check_upload(data, max_pixels=CAP)
    assert info.value.status == 422
    reason = info.value.reason
    assert named in reason and f"{PNG_METADATA_CHUNK_LIMIT:,} bytes (25 MiB)" in reason, reason
    assert "limit for one metadata chunk" in reason and "MAX_TEXT" not in reason
    with pytest.raises(ImageRejected):
        describe(data, max_pixels=CAP, uploaded_at=datetime(2026, 1, 1, tzinfo=UTC))


def test_png_metadata_over_the_total_bound_is_422():
    chunk = b"Comment\0\0" + zlib.compress(bytes(PNG_METADATA_CHUNK_LIMIT))  # each within the bound
    data = images.png()
    for _ in range(3):
        data = with_chunk(data, b"zTXt", chunk)
    with pytest.raises(ImageRejected) as info:
        check_upload(data, max_pixels=CAP)
    assert info.value.status == 422
    assert f"{PNG_METADATA_TOTAL_LIMIT:,} bytes (64 MiB) together" in info.value.reason


def test_a_png_metadata_bomb_is_refused_in_bounded_memory():
    """1 GiB of zeros compresses to 1 MB: refused without inflating it whole."""
    data = with_chunk(images.png(), b"zTXt", b"Comment\0\0" + zlib.compress(bytes(1 << 30)))
    info, peak = rejected_with_peak_memory(data)
    assert info.value.status == 422 and "zTXt" in info.value.reason
    assert peak < 16 * 1024 * 1024
