"""Rendering derivatives: sizes, formats, orientation, colour, metadata, and the bad inputs."""

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from imagelake.images.render import DerivativeError, DerivativeSpec, render, target_dimensions
from tests.support import sample_images as images

CAP = 64_000_000


def opened(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def by_size(rendered) -> dict[int, Image.Image]:
    return {r.size: opened(r.data) for r in rendered}


def halves(width: int, height: int, left: tuple, right: tuple, mode: str = "RGB") -> Image.Image:
    im = Image.new(mode, (width, height), left)
    im.paste(Image.new(mode, (width - width // 2, height), right), (width // 2, 0))
    return im


@pytest.mark.parametrize(
    ("source", "size", "expected"),
    [((4000, 3000), 1024, (1024, 768)), ((3000, 4000), 256, (192, 256)), ((100, 80), 512, (100, 80))],
)
def test_target_dimensions_keep_the_aspect_and_never_upscale(source, size, expected):
    assert target_dimensions(*source, size) == expected


def test_every_size_in_every_format_from_one_image():
    spec = DerivativeSpec(sizes=(256, 512, 1024), formats=("webp", "jpeg"))
    rendered = render(images.jpeg(2000, 1500, seed=3), spec, max_pixels=CAP)
    assert sorted((r.size, r.format) for r in rendered) == sorted(
        (s, f) for s in (256, 512, 1024) for f in ("webp", "jpeg")
    )
    for r in rendered:
        im = opened(r.data)
        assert im.format == {"webp": "WEBP", "jpeg": "JPEG"}[r.format]
        assert im.size == (r.width, r.height) == target_dimensions(2000, 1500, r.size)
        assert r.ext == {"webp": "webp", "jpeg": "jpg"}[r.format]


def test_small_images_are_never_upscaled():
    rendered = render(images.png(100, 80, seed=1), DerivativeSpec(), max_pixels=CAP)
    assert {r.size: (r.width, r.height) for r in rendered} == {
        256: (100, 80),
        512: (100, 80),
        1024: (100, 80),
    }


def test_metadata_is_stripped():
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"  # Make
    exif[0x8825] = {0x0001: "N"}  # a GPS block
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = images.jpeg(800, 600, seed=2, exif=exif.tobytes(), icc_profile=icc)
    assert "exif" in opened(data).info and "icc_profile" in opened(data).info
    for r in render(data, DerivativeSpec(formats=("webp", "jpeg")), max_pixels=CAP):
        im = opened(r.data)
        assert "exif" not in im.info and "icc_profile" not in im.info and "xmp" not in im.info
        assert not im.getexif()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_exif_rotated_image_comes_out_the_right_way_up(fmt):
    # Stored 600x400, red left and blue right; orientation 6 displays it turned 90 degrees clockwise,
    # so the viewer sees a 400x600 image, red on top and blue at the bottom. (Pillow turns a TIFF
    # upright itself when it loads one: turning it again put red on the right.)
    stored = halves(600, 400, (255, 0, 0), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    data = images.encode(stored, fmt, exif=exif.tobytes(), **options)
    out = by_size(render(data, DerivativeSpec(sizes=(256, 512)), max_pixels=CAP))
    assert out[512].size == (341, 512) and out[256].size == (171, 256)
    for im in out.values():
        rgb = im.convert("RGB")
        top, bottom = rgb.getpixel((im.width // 2, 5)), rgb.getpixel((im.width // 2, im.height - 5))
        assert top[0] > 200 and top[2] < 60, top
        assert bottom[2] > 200 and bottom[0] < 60, bottom


def test_cmyk_jpeg_becomes_srgb():
    red = Image.new("RGB", (300, 200), (220, 30, 30)).convert("CMYK")
    data = images.encode(red, "JPEG", quality=95)
    assert opened(data).mode == "CMYK"
    for r in render(data, DerivativeSpec(sizes=(128,), formats=("webp", "jpeg")), max_pixels=CAP):
        im = opened(r.data)
        assert im.mode == "RGB"
        pixel = im.getpixel((60, 40))
        assert pixel[0] > 180 and pixel[1] < 80 and pixel[2] < 80, pixel


def test_16_bit_image_is_scaled_not_clipped():
    deep = Image.fromarray(np.full((120, 160), 40000, dtype=np.uint16))
    data = images.encode(deep, "PNG")
    assert opened(data).mode.startswith("I")
    [r] = render(data, DerivativeSpec(sizes=(64,)), max_pixels=CAP)
    value = opened(r.data).convert("RGB").getpixel((10, 10))
    assert all(abs(channel - 40000 // 256) <= 3 for channel in value), value  # 156, not 255


@pytest.mark.parametrize("dtype", [np.int32, np.float32])
def test_32_bit_greys_are_scaled_to_their_values_as_the_metadata_sees_them(dtype):
    """32-bit integers were shifted by 8 bits and wrapped to noise; floats were taken as 0-1
    and came out white. Both now look as their metadata's view does: a ramp stays a ramp."""
    ramp = np.tile(np.linspace(0, 50_000, 160), (120, 1)).astype(dtype)
    data = images.encode(Image.fromarray(ramp), "TIFF")
    [r] = render(data, DerivativeSpec(sizes=(160,)), max_pixels=CAP)
    grey = np.asarray(opened(r.data).convert("L"), dtype=np.int32)[60]
    assert grey[2] < 20 and grey[-3] > 235, grey
    assert np.all(np.diff(grey[2:-2]) >= -3), grey  # rising left to right, no wrap-around


def test_palette_with_transparency_keeps_its_alpha():
    im = Image.new("P", (200, 100), 1)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(0, (0, 0, 100, 100))  # left half: the transparent index
    data = images.encode(im, "PNG", transparency=0)
    [webp] = render(data, DerivativeSpec(sizes=(100,)), max_pixels=CAP)
    out = opened(webp.data)
    assert out.mode == "RGBA"
    assert out.getpixel((10, 25))[3] == 0
    assert out.getpixel((90, 25))[3] == 255 and out.getpixel((90, 25))[0] > 200
    [jpeg] = render(data, DerivativeSpec(sizes=(100,), formats=("jpeg",)), max_pixels=CAP)
    assert opened(jpeg.data).mode == "RGB"  # flattened on white: JPEG has no alpha
    assert opened(jpeg.data).getpixel((10, 25)) >= (240, 240, 240)


def test_animated_gif_gives_its_first_frame_as_a_still():
    frames = [Image.new("RGB", (120, 90), colour).convert("P") for colour in ((220, 20, 20), (20, 220, 20))]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
    data = out.getvalue()
    assert getattr(opened(data), "n_frames", 1) == 2
    for r in render(data, DerivativeSpec(sizes=(64,), formats=("webp", "jpeg")), max_pixels=CAP):
        still = opened(r.data)
        assert getattr(still, "n_frames", 1) == 1
        red, green, _ = still.convert("RGB").getpixel((30, 20))
        assert red > 180 and green < 70


def test_an_image_at_the_pixel_cap_is_rendered_and_one_over_is_refused():
    data = images.png(500, 400, seed=5)
    rendered = render(data, DerivativeSpec(sizes=(256,)), max_pixels=500 * 400)
    assert rendered[0].width == 256
    with pytest.raises(DerivativeError, match="pixel"):
        render(data, DerivativeSpec(sizes=(256,)), max_pixels=500 * 400 - 1)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (images.jpeg(400, 300)[:1500], "undecodable"),
        (b"\xff\xd8\xff" + b"\x00" * 200, "undecodable"),
        (b"plain text, not an image", "undecodable"),
    ],
    ids=["zero-byte", "truncated-jpeg", "corrupt-jpeg", "not-an-image"],
)
def test_corrupt_and_empty_sources_raise_a_reason(data, reason):
    with pytest.raises(DerivativeError) as info:
        render(data, DerivativeSpec(), max_pixels=CAP)
    assert info.value.reason.startswith(reason)


def test_spec_refuses_unknown_formats_and_sizes():
    with pytest.raises(ValueError, match="formats"):
        DerivativeSpec(formats=("gif",))
    with pytest.raises(ValueError, match="sizes"):
        DerivativeSpec(sizes=(0,))
