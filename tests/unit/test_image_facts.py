"""The facts the real-time run records per image, and the awkward images it must survive."""

import io
import tracemalloc
from datetime import UTC, datetime

import numpy as np
import pytest
from PIL import Image

from imagelake.images.checks import ImageRejected
from imagelake.images.facts import describe
from imagelake.images.phash import hamming
from imagelake.settings import DUPLICATE_MAX_DISTANCE
from tests.support import sample_images as images

#: The product's promise is about its threshold: a copy is within it, another picture beyond it
#: (the exact distances are the hash's rounding, not our contract).
NEAR = DUPLICATE_MAX_DISTANCE

CAP = 64_000_000
UPLOADED = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def facts_of(data: bytes):
    return describe(data, max_pixels=CAP, uploaded_at=UPLOADED)


def test_a_plain_photo_has_every_fact():
    facts = facts_of(images.photo(320, 240, seed=1))
    assert (facts.format, facts.width, facts.height, facts.mode) == ("JPEG", 320, 240, "RGB")
    assert (facts.bit_depth, facts.frame_count, facts.orientation) == (8, 1, 1)
    assert (facts.has_icc, facts.has_gps, facts.captured_at) == (False, False, None)
    assert facts.camera_make is None and facts.camera_model is None
    assert 0 <= facts.phash < 2**64
    assert 0 < facts.brightness_mean < 255 and facts.contrast > 0 and facts.colourfulness > 0


def test_every_accepted_format_is_described():
    for data, fmt in [
        (images.png(), "PNG"),
        (images.webp(), "WEBP"),
        (images.gif(), "GIF"),
        (images.tiff(), "TIFF"),
    ]:
        facts = facts_of(data)
        assert (facts.format, facts.width, facts.height) == (fmt, 64, 48)


def test_same_picture_in_another_size_and_format_hashes_alike_and_others_do_not():
    original = facts_of(images.photo(1200, 900, seed=4)).phash
    resized = images.encode(images.scene(1200, 900, seed=4).resize((600, 450)), "JPEG", quality=70)
    as_png = images.encode(images.scene(1200, 900, seed=4).resize((400, 300)), "PNG")
    assert hamming(original, facts_of(resized).phash) <= NEAR
    assert hamming(original, facts_of(as_png).phash) <= NEAR
    assert hamming(original, facts_of(images.photo(1200, 900, seed=5)).phash) > NEAR


def test_cmyk_jpeg():
    facts = facts_of(images.cmyk_jpeg(96, 64, seed=2))
    assert (facts.format, facts.mode, facts.width, facts.height) == ("JPEG", "CMYK", 96, 64)
    rgb = facts_of(images.encode(images.scene(96, 64, seed=2), "JPEG", quality=90))
    assert hamming(facts.phash, rgb.phash) <= NEAR  # the same picture, whatever the colour model
    assert abs(facts.brightness_mean - rgb.brightness_mean) < 25


def test_16_bit_png_is_scaled_not_clipped():
    facts = facts_of(images.png16(96, 64))
    assert (facts.format, facts.mode, facts.bit_depth) == ("PNG", "I;16", 16)
    # A ramp over 0-65535 is mid-grey on average; clipping to 255 would make it almost white.
    assert 110 < facts.brightness_mean < 145
    assert facts.contrast > 60


@pytest.mark.parametrize("dtype", [np.int32, np.float32])
def test_32_bit_greys_are_scaled_to_their_values_and_keep_their_picture(dtype):
    """A 32-bit scientific TIFF rarely spans its type: scaled to 2**32 it came out black,
    hashed to 0, and every such image was a near duplicate of every other."""
    ramp = np.tile(np.linspace(0, 50_000, 96), (64, 1))
    other = ramp[::-1] * 0.5 + np.sin(np.arange(64 * 96).reshape(64, 96) / 7.0) * 4000 + 4000
    first, second = (facts_of(images.encode(Image.fromarray(a.astype(dtype)), "TIFF")) for a in (ramp, other))
    assert (first.format, first.bit_depth) == ("TIFF", 32)
    assert 110 < first.brightness_mean < 145 and first.contrast > 60  # a ramp over its own range
    assert first.phash != 0 and hamming(first.phash, second.phash) > NEAR


def test_palette_png_with_transparency_is_composited_on_white():
    facts = facts_of(images.palette_png_with_transparency(96, 64))
    assert (facts.format, facts.mode, facts.bit_depth) == ("PNG", "P", 2)
    # Left half transparent (white), right half dark blue: a mean between the two.
    assert 120 < facts.brightness_mean < 160
    assert facts.colourfulness > 20


def test_animated_gif_counts_frames_and_hashes_the_first():
    facts = facts_of(images.gif(64, 48, seed=3, frames=5))
    assert (facts.format, facts.frame_count, facts.width, facts.height) == ("GIF", 5, 64, 48)
    first = facts_of(images.gif(64, 48, seed=3, frames=1))
    assert facts.phash == first.phash


@pytest.mark.parametrize(
    ("orientation", "size"), [(1, (96, 64)), (3, (96, 64)), (6, (64, 96)), (8, (64, 96))]
)
def test_exif_rotated_jpeg_is_described_as_displayed(orientation, size):
    stored = images.scene(96, 64, seed=7)
    data = images.encode(stored, "JPEG", quality=95, exif=images.exif_block(orientation=orientation))
    facts = facts_of(data)
    assert (facts.width, facts.height, facts.orientation) == (*size, orientation)
    shown = {
        1: stored,
        3: stored.rotate(180),
        6: stored.rotate(270, expand=True),
        8: stored.rotate(90, expand=True),
    }
    upright = facts_of(images.encode(shown[orientation], "JPEG", quality=95))
    assert hamming(facts.phash, upright.phash) <= NEAR  # the hash is of the picture as people see it


def test_exif_facts_are_read_and_gps_is_only_a_flag():
    block = images.exif_block(
        make="Canon\x00\x00", model="  EOS R5  ", captured="2026:11:20 08:30:00", offset="+02:00", gps=True
    )
    facts = facts_of(images.photo(64, 48, exif=block))
    assert (facts.camera_make, facts.camera_model) == ("Canon", "EOS R5")
    assert facts.captured_at == datetime(2026, 11, 20, 6, 30, tzinfo=UTC)
    assert facts.has_gps is True
    assert not any(isinstance(v, tuple) for v in vars(facts).values())  # no coordinates anywhere


@pytest.mark.parametrize(
    "tags",
    [
        {"orientation": 65535, "captured": "garbage!", "make": "x" * 60000},
        {"orientation": 0, "captured": "0000:00:00 00:00:00", "model": b"\xff\xfe\x00junk"},
        {"orientation": 9, "captured": "2999:01:01 00:00:00", "offset": "+99:99"},
        {"captured": "2026:13:45 25:61:61", "make": "\x01\x02\x03"},
    ],
    ids=["huge", "zeroes", "future", "impossible-date"],
)
def test_exif_with_garbage_or_huge_values_is_ignored_not_fatal(tags):
    facts = facts_of(images.photo(64, 48, exif=images.exif_block(**tags)))
    assert (facts.width, facts.height, facts.orientation, facts.captured_at) == (64, 48, 1, None)
    assert facts.camera_make is None or len(facts.camera_make) <= 64
    assert facts.camera_model is None or facts.camera_model.isprintable()


@pytest.mark.parametrize(
    "payload",
    [
        bytes(range(256)) * 40,  # not TIFF at all
        b"MM\x00*\x00\x00\x00\x08\x00\x01\x87\x69\x00\x04\x00\x00\x00\x01\x7f\xff\xff\xff\x00\x00\x00\x00",
        b"II*\x00\x08\x00\x00\x00\x01\x00\x25\x88\x04\x00\x01\x00\x00\x00\xff\xff\xff\x0f\x00\x00\x00\x00",
        b"II*\x00\x08\x00\x00\x00\x01\x00\x0f\x01\x02\x00\xff\xff\xff\x7f\x10\x00\x00\x00\x00\x00\x00\x00",
    ],
    ids=["random-bytes", "exif-pointer-past-end", "gps-pointer-past-end", "make-count-2gb"],
)
def test_an_exif_block_that_lies_about_its_structure_is_ignored(payload):
    data = images.with_raw_app1(images.photo(64, 48), b"Exif\x00\x00" + payload)
    facts = facts_of(data)
    assert (facts.format, facts.width, facts.height, facts.orientation) == ("JPEG", 64, 48, 1)
    assert (facts.camera_make, facts.captured_at, facts.has_gps) == (None, None, False)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "gif", "webp"])
def test_truncated_or_corrupt_images_are_rejected_with_a_reason(fmt):
    data = getattr(images, fmt)(200, 150)
    with pytest.raises(ImageRejected, match=r"corrupt|truncated|unreadable"):
        facts_of(data[: len(data) // 2])


def test_not_an_image_is_rejected():
    with pytest.raises(ImageRejected) as info:
        facts_of(b"%PDF-1.7 not an image")
    assert info.value.status == 415


def test_a_12_megapixel_jpeg_is_decoded_at_reduced_scale():
    data = images.photo(4000, 3000, seed=1, quality=85)
    tracemalloc.start()
    try:
        facts = facts_of(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (facts.width, facts.height) == (4000, 3000)
    # A full decode needs 36 MB for the RGB bitmap alone; DCT scaling decodes 500x375.
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB: the JPEG was decoded at full size"


def test_facts_are_a_function_of_the_bytes():
    data = images.photo(
        160, 120, seed=9, exif=images.exif_block(orientation=6, captured="2026:11:01 10:00:00")
    )
    assert facts_of(data) == facts_of(bytes(io.BytesIO(data).getvalue()))


def test_pixel_cap_applies():
    with pytest.raises(ImageRejected, match="limit"):
        describe(images.photo(200, 100), max_pixels=1000, uploaded_at=UPLOADED)


def test_icc_profile_is_flagged():
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    facts = facts_of(images.encode(images.scene(64, 48), "JPEG", icc_profile=profile))
    assert facts.has_icc is True
    assert Image.open(io.BytesIO(images.photo(64, 48))).info.get("icc_profile") is None
