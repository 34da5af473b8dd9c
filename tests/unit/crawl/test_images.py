"""The image stage on real photos: sizes per resize mode, rejections, modes, formats and skip_reencode."""

from __future__ import annotations

import io
import time
import warnings

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from clipline.pipelines.config import ImageConfig
from clipline.pipelines.crawl.images import ImageRejected, ProcessedImage, process_image
from support.images import decompression_bomb_png, tiny_jpeg, truncated_jpeg, wide_jpeg

WHITE = 255
LOSSLESS = {"encode_format": "png", "encode_quality": 1}  # PNG compression level 1: fast


def encode(image: Image.Image, fmt: str = "JPEG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skdata, name)())


def jpeg(name: str) -> bytes:
    return encode(photo(name), quality=90)


def pixels(result: ProcessedImage) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(result.data)).convert("RGB"), dtype=np.float32)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).mean())


def rejection(body: bytes, **config) -> str:
    with pytest.raises(ImageRejected) as caught:
        process_image(body, ImageConfig(**config))
    return str(caught.value)


# (width, height) of each photo, then the stored size per mode at image_size=256
EXPECTED_SIZES = {
    "astronaut": ((512, 512), {"no": (512, 512), "border": (256, 256), "keep_ratio": (256, 256),
                               "keep_ratio_largest": (256, 256), "center_crop": (256, 256)}),
    "coffee": ((600, 400), {"no": (600, 400), "border": (256, 256), "keep_ratio": (384, 256),
                            "keep_ratio_largest": (256, 171), "center_crop": (256, 256)}),
    "chelsea": ((451, 300), {"no": (451, 300), "border": (256, 256), "keep_ratio": (385, 256),
                             "keep_ratio_largest": (256, 170), "center_crop": (256, 256)}),
}


@pytest.mark.parametrize("mode", ["no", "border", "keep_ratio", "keep_ratio_largest", "center_crop"])
@pytest.mark.parametrize("name", sorted(EXPECTED_SIZES))
def test_each_resize_mode_stores_img2dataset_size(name, mode):
    original, sizes = EXPECTED_SIZES[name]
    result = process_image(jpeg(name), ImageConfig(resize_mode=mode, image_size=256))
    assert (result.original_width, result.original_height) == original
    assert (result.width, result.height) == sizes[mode]
    assert Image.open(io.BytesIO(result.data)).size == sizes[mode]
    assert result.ext == "jpg"


def test_border_centres_the_image_between_white_bands():
    # coffee 600x400 -> 256x171, padded with 42 rows above and 43 below
    result = process_image(encode(photo("coffee"), "PNG"),
                           ImageConfig(resize_mode="border", image_size=256, **LOSSLESS))
    out = pixels(result)
    assert (out[:42] == WHITE).all() and (out[42 + 171:] == WHITE).all()
    expected = photo("coffee").resize((256, 171), Image.Resampling.LANCZOS)
    assert mean_abs_diff(out[42:42 + 171], expected) < 3


def test_center_crop_keeps_the_centre_unscaled():
    # at image_size=400 coffee (600x400) is not scaled, so the crop is exactly columns 100..499
    result = process_image(encode(photo("coffee"), "PNG"),
                           ImageConfig(resize_mode="center_crop", image_size=400, **LOSSLESS))
    assert np.array_equal(pixels(result), skdata.coffee()[:, 100:500])


def test_center_crop_after_downscale_matches_resize_then_crop():
    body = jpeg("coffee")  # 600x400 -> 384x256, then columns 64..319
    result = process_image(body, ImageConfig(resize_mode="center_crop", image_size=256, **LOSSLESS))
    scaled = np.asarray(Image.open(io.BytesIO(body)).resize((384, 256), Image.Resampling.BOX))
    assert mean_abs_diff(pixels(result), scaled[:, 64:320]) < 1
    assert mean_abs_diff(pixels(result), scaled[:, :256]) > 10  # the left square is not what we kept


def test_draft_decoding_matches_a_full_decode_resize():
    # 2048 px: libjpeg decodes at 1/8 scale, straight to the 256 px target
    big = photo("astronaut").resize((2048, 2048), Image.Resampling.LANCZOS)
    result = process_image(encode(big, quality=95), ImageConfig(resize_mode="center_crop", image_size=256))
    full = Image.open(io.BytesIO(encode(big, quality=95))).resize((256, 256), Image.Resampling.LANCZOS)
    assert (result.width, result.height) == (256, 256)
    assert mean_abs_diff(pixels(result), full) < 3


def test_resize_only_if_bigger_keeps_smaller_images_whole():
    body = jpeg("chelsea")  # 451x300
    kept = process_image(body, ImageConfig(resize_mode="border", image_size=512, resize_only_if_bigger=True))
    grown = process_image(body, ImageConfig(resize_mode="border", image_size=512))
    assert (kept.width, kept.height) == (451, 300)  # no upscale, and no border either
    assert kept.data == body  # nothing changed, so the download is stored as is
    assert (grown.width, grown.height) == (512, 512)


def test_too_small_is_rejected():
    message = rejection(tiny_jpeg(), min_image_size=10)
    assert message == "image too small: 8x8, shorter side under min_image_size 10"
    assert process_image(tiny_jpeg(), ImageConfig(min_image_size=8)).original_width == 8


def test_too_elongated_is_rejected():
    message = rejection(wide_jpeg(), max_aspect_ratio=10)
    assert message == "aspect ratio too large: 1000x50 (20.00) exceeds max_aspect_ratio 10.0"
    assert process_image(wide_jpeg(), ImageConfig(max_aspect_ratio=20)).original_height == 50


def test_more_pixels_than_max_pixels_is_rejected():
    message = rejection(jpeg("astronaut"), max_pixels=512 * 512 - 1)
    assert message == "image too large: 512x512 pixels exceeds max_pixels 262143"
    assert process_image(jpeg("astronaut"), ImageConfig(max_pixels=512 * 512)).width == 256


def test_decompression_bomb_is_rejected_from_its_header():
    bomb = decompression_bomb_png()  # 20000x20000: Pillow's own guard fires inside Image.open
    started = time.perf_counter()
    assert rejection(bomb) == "image too large: 20000x20000 pixels exceeds max_pixels 89478485"
    assert time.perf_counter() - started < 0.5  # decoding 400 M pixels would take seconds
    message = rejection(bomb, max_pixels=10**12)  # Pillow's guard still holds above its limit
    assert message == "image too large: 20000x20000 pixels exceeds Pillow's decompression-bomb limit"


def test_pillow_bomb_warning_never_escapes():
    # 100 M pixels: over Image.MAX_IMAGE_PIXELS (a warning), under twice it (Pillow's error)
    body = encode(Image.new("1", (10_000, 10_000)), "PNG")
    for action in ("ignore", "error"):
        with warnings.catch_warnings():
            warnings.simplefilter(action, Image.DecompressionBombWarning)
            assert rejection(body) == "image too large: 10000x10000 pixels exceeds max_pixels 89478485"


@pytest.mark.parametrize("body", [truncated_jpeg(), jpeg("astronaut")[:300]], ids=["in-scan", "in-header"])
def test_truncated_jpeg_is_rejected(body):
    assert rejection(body).startswith("truncated image: ")


def test_truncated_jpeg_is_rejected_even_when_bytes_would_be_kept():
    assert rejection(truncated_jpeg(), resize_mode="no").startswith("truncated image: ")


@pytest.mark.parametrize(("body", "reason"), [
    (b"<!DOCTYPE html>\n<html><body>Not found</body></html>", "starts with '<!DOCTYPE html>\\n'"),
    (b"", "empty body"),
])
def test_non_images_are_rejected_with_what_they_start_with(body, reason):
    assert rejection(body) == f"not an image: cannot identify image format ({reason})"


def rgba_astronaut() -> Image.Image:
    image = photo("astronaut").convert("RGBA")
    alpha = np.zeros((512, 512), dtype=np.uint8)
    alpha[:, 256:] = 255  # left half transparent, right half opaque
    image.putalpha(Image.fromarray(alpha))
    return image


@pytest.mark.parametrize(("source", "fmt"), [
    (lambda: photo("camera"), "JPEG"),  # L
    (lambda: photo("camera"), "PNG"),
    (lambda: photo("astronaut").convert("P"), "PNG"),
    (lambda: photo("astronaut").convert("CMYK"), "JPEG"),
    (lambda: photo("camera").convert("LA"), "PNG"),
    (rgba_astronaut, "PNG"),
    (rgba_astronaut, "WEBP"),
], ids=["L-jpeg", "L-png", "P-png", "CMYK-jpeg", "LA-png", "RGBA-png", "RGBA-webp"])
def test_every_input_mode_is_stored_as_rgb(source, fmt):
    body = encode(source(), fmt)
    result = process_image(body, ImageConfig(resize_mode="no", **LOSSLESS))
    stored = Image.open(io.BytesIO(result.data))
    assert stored.mode == "RGB" and stored.size == source().size
    downloaded = Image.open(io.BytesIO(body)).convert("RGBA")
    on_white = Image.alpha_composite(Image.new("RGBA", downloaded.size, "white"), downloaded).convert("RGB")
    assert mean_abs_diff(stored, on_white) < 1


def test_transparency_is_composited_on_white():
    result = process_image(encode(rgba_astronaut(), "PNG"), ImageConfig(resize_mode="no", **LOSSLESS))
    out = pixels(result)
    assert (out[:, :256] == WHITE).all()
    assert np.array_equal(out[:, 256:], skdata.astronaut()[:, 256:])


def test_sixteen_bit_grayscale_keeps_its_range():
    depth16 = Image.fromarray(skdata.camera().astype(np.uint16) * 257)  # full 16-bit range
    result = process_image(encode(depth16, "PNG"), ImageConfig(resize_mode="no", **LOSSLESS))
    assert mean_abs_diff(pixels(result)[..., 0], skdata.camera()) < 1


@pytest.mark.parametrize("config", [
    ImageConfig(resize_mode="no"),
    ImageConfig(resize_mode="center_crop", image_size=512),  # already 512x512
    ImageConfig(resize_mode="keep_ratio", image_size=1024, resize_only_if_bigger=True),
], ids=["no", "already-target-size", "only-if-bigger"])
def test_skip_reencode_stores_the_downloaded_bytes(config):
    body = jpeg("astronaut")
    result = process_image(body, config)
    assert result.data == body and result.ext == "jpg"
    assert (result.width, result.height, result.original_width, result.original_height) == (512, 512, 512, 512)


def test_reencodes_when_format_mode_or_setting_differs():
    body = jpeg("astronaut")
    assert process_image(body, ImageConfig(resize_mode="no", skip_reencode=False)).data != body
    assert process_image(body, ImageConfig(resize_mode="no", **LOSSLESS)).data != body
    gray = encode(photo("camera"), quality=90)
    assert Image.open(io.BytesIO(process_image(gray, ImageConfig(resize_mode="no")).data)).mode == "RGB"


@pytest.mark.parametrize(("fmt", "pillow_format"), [("png", "PNG"), ("webp", "WEBP"), ("jpg", "JPEG")])
def test_each_encode_format_decodes_to_the_stored_size(fmt, pillow_format):
    result = process_image(jpeg("chelsea"), ImageConfig(resize_mode="keep_ratio", image_size=128,
                                                        encode_format=fmt, encode_quality=80))
    stored = Image.open(io.BytesIO(result.data))
    assert result.ext == fmt and stored.format == pillow_format
    assert stored.size == (result.width, result.height) == (192, 128)
    assert mean_abs_diff(stored.convert("RGB"), photo("chelsea").resize((192, 128))) < 6


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: turn 90 degrees clockwise to view
    body = encode(photo("coffee"), quality=95, exif=exif)  # 600x400 as stored
    result = process_image(body, ImageConfig(resize_mode="keep_ratio", image_size=200))
    assert (result.original_width, result.original_height) == (400, 600)
    assert (result.width, result.height) == (200, 300)
    upright = photo("coffee").transpose(Image.Transpose.ROTATE_270).resize((200, 300))
    assert mean_abs_diff(pixels(result), upright) < 4
