"""The image stage of the crawl: check, resize and encode one downloaded body.

`process_image` keeps img2dataset's options and meanings (resizer.py, 1.47), with Pillow
instead of OpenCV so that the expensive steps can be skipped rather than sped up:

- Size limits are read from the header before any pixel is decoded: `Image.open` only
  parses headers, so decompression bombs cost microseconds.
- JPEGs are decoded at 1/2, 1/4 or 1/8 scale when the target allows (libjpeg's DCT
  scaling, `Image.draft`), never below the size the resize needs, and the crop of
  `center_crop` is folded into the resize (`box=`) so no pixel outside it is resampled.
- With `skip_reencode`, a body whose pixels would not change is stored as downloaded.

Behaviour a reader should know (each follows img2dataset unless said otherwise):

- Downscaling uses `DOWNSCALE_FILTER`, upscaling Lanczos (img2dataset: cv2 INTER_AREA and
  INTER_LANCZOS4).
- `border` pads with white, centred (img2dataset pads with value 255); transparency is
  composited on white, as img2dataset's alpha matting does.
- `resize_only_if_bigger`: an image whose reference side (shorter for keep_ratio and
  center_crop, longer for border and keep_ratio_largest) is not larger than image_size is
  kept whole: no resize, no crop and no border.
- EXIF orientation is applied (img2dataset ignores it), after resizing so that it costs a
  transpose of the small result. Every resize mode is symmetric under rotation, so this
  equals rotating first, except that odd crop and border offsets may move by one pixel.
  Sizes, original ones included, are reported upright.
- PNG takes encode_quality as its compression level, clipped to 0-9 (img2dataset
  refuses quality > 9 for PNG; here the default 95 means level 9, the slowest).
- Pillow's own bomb guard (Image.MAX_IMAGE_PIXELS, never changed here) still warns once
  over 1x that limit and refuses over 2x, inside Image.open; a refusal (or the warning, where
  warnings are errors) becomes the same "image too large: WxH pixels exceeds ..." message.
- Grayscale stays one channel until after the resize; 16-bit grayscale keeps its top 8 bits.
"""

from __future__ import annotations

import contextlib
import io
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from PIL import ExifTags, Image, UnidentifiedImageError

from clipline.pipelines.config import ImageConfig
from clipline.pipelines.crawl.sample import DecodedSample, SampleRejected

# Pillow's BOX filter is area averaging, i.e. cv2 INTER_AREA, img2dataset's downscale. On 200
# JPEGs of 100-1500 px to a 256 px center_crop it ran 1.25x BICUBIC and 1.5x LANCZOS end to end,
# within 1/255 mean absolute difference of a full-decode area resize (draft decoding on).
DOWNSCALE_FILTER = Image.Resampling.BOX
UPSCALE_FILTER = Image.Resampling.LANCZOS  # img2dataset: cv2 INTER_LANCZOS4
BACKGROUND = (255, 255, 255)  # border padding and alpha matting, as img2dataset
FORMAT_EXT = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp"}  # MPO: phone JPEGs
ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "La", "RGBa"})
SIXTEEN_BIT_GRAY = frozenset({"I;16", "I"})  # 16-bit grayscale PNG, by Pillow version
ORIENTATION_TRANSPOSE = {  # EXIF orientation tag -> the transpose that makes it upright
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
SAVE_OPTIONS: dict[str, Callable[[int], dict]] = {  # encode_format -> Pillow save() arguments
    "jpg": lambda quality: {"format": "JPEG", "quality": quality},
    "png": lambda quality: {"format": "PNG", "compress_level": min(quality, 9)},
    "webp": lambda quality: {"format": "WEBP", "quality": quality},
}


@dataclass(frozen=True)
class ProcessedImage:
    data: bytes  # encoded image bytes to store
    ext: str  # "jpg" | "png" | "webp": the member's extension in the tar
    width: int  # stored size
    height: int
    original_width: int  # size of the downloaded image, upright
    original_height: int


class ImageRejected(SampleRejected):
    """A body that cannot become a stored image; str(e) is the specific error_message for the status table."""


@dataclass(frozen=True)
class Geometry:
    """Where an image's pixels go: scale it, keep a crop of the scaled image, centre that on a canvas."""

    scale: float  # scaled side / original side
    scaled: tuple[int, int]  # the whole image after scaling
    crop: tuple[int, int, int, int]  # (left, top, right, bottom) kept, in scaled pixels
    canvas: tuple[int, int]  # output size; larger than the crop means a border


def _unchanged(width: int, height: int) -> Geometry:
    return Geometry(1.0, (width, height), (0, 0, width, height), (width, height))


def _scaled(width: int, height: int, scale: float) -> Geometry:
    # round() as albumentations' smallest/longest_max_size, which img2dataset calls
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return Geometry(scale, size, (0, 0, *size), size)


def _keep_ratio(width: int, height: int, image_size: int) -> Geometry:
    return _scaled(width, height, image_size / min(width, height))


def _keep_ratio_largest(width: int, height: int, image_size: int) -> Geometry:
    return _scaled(width, height, image_size / max(width, height))


def _center_crop(width: int, height: int, image_size: int) -> Geometry:
    scaled = _keep_ratio(width, height, image_size)
    left, top = (scaled.scaled[0] - image_size) // 2, (scaled.scaled[1] - image_size) // 2
    crop = (left, top, left + image_size, top + image_size)
    return Geometry(scaled.scale, scaled.scaled, crop, (image_size, image_size))


def _border(width: int, height: int, image_size: int) -> Geometry:
    scaled = _keep_ratio_largest(width, height, image_size)
    return Geometry(scaled.scale, scaled.scaled, scaled.crop, (image_size, image_size))


RESIZE_MODES: dict[str, Callable[[int, int, int], Geometry]] = {
    "no": lambda width, height, _: _unchanged(width, height),
    "border": _border,
    "keep_ratio": _keep_ratio,
    "keep_ratio_largest": _keep_ratio_largest,
    "center_crop": _center_crop,
}


def plan_geometry(width: int, height: int, config: ImageConfig) -> Geometry:
    """The geometry `config` gives an image of this size."""
    geometry = RESIZE_MODES[config.resize_mode](width, height, config.image_size)
    if config.resize_only_if_bigger and geometry.scale >= 1:
        return _unchanged(width, height)  # img2dataset skips the pad and the crop too
    return geometry


def process_image(body: bytes, config: ImageConfig) -> ProcessedImage:
    """Check, resize and encode one downloaded body; raise ImageRejected saying why not."""
    image = _open(body, config.max_pixels)
    _check_shape(*image.size, config)
    original_size = image.size
    geometry = plan_geometry(*original_size, config)
    draft_box = _decode(image, geometry)
    orientation = _orientation(image)
    if config.skip_reencode and orientation == 1 and _keeps_bytes(image, geometry, config):
        return ProcessedImage(body, config.encode_format, *original_size, *original_size)
    pixels = _fit(image, geometry, draft_box)
    if orientation in ORIENTATION_TRANSPOSE:
        pixels = pixels.transpose(ORIENTATION_TRANSPOSE[orientation])
        original_size = original_size[::-1] if orientation >= 5 else original_size  # 5-8 turn by 90 degrees
    return ProcessedImage(encode_image(pixels, config), config.encode_format, *pixels.size, *original_size)


def resize_image(image: Image.Image, config: ImageConfig) -> Image.Image:
    """Resize an already-decoded image (a video frame) as process_image would: same modes, filters and padding."""
    return _fit(image, plan_geometry(*image.size, config), (0, 0, *image.size))


def _open(body: bytes, max_pixels: int) -> Image.Image:
    """Parse the header only, and refuse images with more than `max_pixels` before decoding."""
    try:
        image = Image.open(io.BytesIO(body))
    except UnidentifiedImageError:
        raise ImageRejected(f"not an image: cannot identify image format ({_describe_start(body)})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise _bomb_rejection(body, e, max_pixels) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise _decode_failure(e) from None
    if image.width * image.height > max_pixels:
        raise _too_large(*image.size, max_pixels)
    return image


def _too_large(width: int, height: int, max_pixels: int) -> ImageRejected:
    # the other limit is Pillow's guard (2 x Image.MAX_IMAGE_PIXELS) when max_pixels is set higher
    limit = f"max_pixels {max_pixels}" if width * height > max_pixels else "Pillow's decompression-bomb limit"
    return ImageRejected(f"image too large: {width}x{height} pixels exceeds {limit}")


def _bomb_rejection(body: bytes, error: Exception, max_pixels: int) -> ImageRejected:
    """Pillow's guard fires inside Image.open, before the size is ours: read it again past the guard.

    Only this rare path calls a format's opener straight from Pillow's registry (what Image.open
    does, minus the guard); it parses the header and decodes nothing.
    """
    for format_id in Image.ID:
        opener, accepts = Image.OPEN[format_id]
        accepted = accepts is None or accepts(body[:16])
        if accepted and not isinstance(accepted, str):  # a str is Pillow's "nearly, but no"
            with contextlib.suppress(SyntaxError, IndexError, TypeError, struct.error, OSError, ValueError):
                return _too_large(*opener(io.BytesIO(body), "").size, max_pixels)
    return ImageRejected(f"image too large: {error}")


def _describe_start(body: bytes) -> str:
    return f"starts with '{repr(body[:16])[2:-1]}'" if body else "empty body"  # escaped, without b''


def _check_shape(width: int, height: int, config: ImageConfig) -> None:
    """img2dataset's filters, on the downloaded size."""
    if min(width, height) < config.min_image_size:
        raise ImageRejected(f"image too small: {width}x{height}, shorter side under min_image_size "
                            f"{config.min_image_size}")
    ratio = max(width, height) / min(width, height)
    if config.max_aspect_ratio is not None and ratio > config.max_aspect_ratio:
        raise ImageRejected(f"aspect ratio too large: {width}x{height} ({ratio:.2f}) exceeds max_aspect_ratio "
                            f"{config.max_aspect_ratio}")


def _keeps_bytes(image: Image.Image, geometry: Geometry, config: ImageConfig) -> bool:
    """Whether the downloaded bytes already hold the output: same pixels, RGB, in the wanted format."""
    return (geometry == _unchanged(*image.size) and image.mode == "RGB" and "transparency" not in image.info
            and FORMAT_EXT.get(image.format or "") == config.encode_format)


def _decode(image: Image.Image, geometry: Geometry) -> tuple[float, float, float, float]:
    """Decode the pixels, at the smallest JPEG scale still >= the scaled size; return where the image now lies.

    The box is the whole original image in decoded pixels: libjpeg rounds the scaled size up,
    so it is not always (0, 0, *image.size).
    """
    drafted = image.draft("RGB", geometry.scaled)  # None for every format but JPEG
    with _decode_errors():
        image.load()
    return drafted[1] if drafted else (0, 0, *image.size)


@contextlib.contextmanager
def _decode_errors() -> Iterator[None]:
    try:
        yield
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise _decode_failure(e) from None


def _decode_failure(error: Exception) -> ImageRejected:
    # Pillow says "image file is truncated" (cut in the data) or "Truncated File Read" (in a header)
    kind = "truncated image" if "truncated" in str(error).lower() else "corrupt image"
    return ImageRejected(f"{kind}: {error}")


def _orientation(image: Image.Image) -> int:
    # getexif() is cheap once loaded, and reads malformed EXIF as empty rather than raising
    return image.getexif().get(ExifTags.Base.Orientation, 1)


def _resize(image: Image.Image, geometry: Geometry, draft_box: tuple[float, float, float, float]) -> Image.Image:
    """Scale and crop in one resampling pass: only the kept region is read, in decoded-pixel coordinates."""
    image = _resizable(image)
    x_ratio, y_ratio = draft_box[2] / geometry.scaled[0], draft_box[3] / geometry.scaled[1]
    left, top, right, bottom = geometry.crop
    box = (left * x_ratio, top * y_ratio, right * x_ratio, bottom * y_ratio)
    resample = DOWNSCALE_FILTER if geometry.scale < 1 else UPSCALE_FILTER
    return image.resize((right - left, bottom - top), resample, box=box)


def _resizable(image: Image.Image) -> Image.Image:
    """The image in a mode Pillow resamples well: L and RGB as they are, transparency as RGBA."""
    if image.mode in ALPHA_MODES or "transparency" in image.info:
        return image if image.mode == "RGBA" else image.convert("RGBA")
    if image.mode in SIXTEEN_BIT_GRAY:  # convert() would clip every value over 255 to white
        return image.point(lambda value: value / 256).convert("L")
    return image if image.mode in ("L", "RGB") else image.convert("RGB")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGBA":  # alpha matting on white: rgb * alpha + white * (1 - alpha)
        matted = Image.new("RGB", image.size, BACKGROUND)
        matted.paste(image, mask=image)
        return matted
    return image.convert("RGB") if image.mode != "RGB" else image


def _pad(image: Image.Image, canvas: tuple[int, int]) -> Image.Image:
    if image.size == canvas:
        return image
    padded = Image.new("RGB", canvas, BACKGROUND)
    padded.paste(image, ((canvas[0] - image.width) // 2, (canvas[1] - image.height) // 2))
    return padded


def _fit(image: Image.Image, geometry: Geometry, draft_box: tuple[float, float, float, float]) -> Image.Image:
    """The RGB pixels `geometry` asks for: resized and cropped, alpha matted, padded."""
    return _pad(_to_rgb(_resize(image, geometry, draft_box)), geometry.canvas)


def encode_image(image: Image.Image, config: ImageConfig) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, **SAVE_OPTIONS[config.encode_format](config.encode_quality))
    return buffer.getvalue()


@dataclass(frozen=True)
class ImageDecoder:
    """The crawl's decoder for image URLs (see pipelines.crawl.sample)."""

    config: ImageConfig
    fields: tuple[str, ...] = ("width", "height", "original_width", "original_height")

    def __call__(self, body: bytes, row: dict) -> DecodedSample:
        image = process_image(body, self.config)
        return DecodedSample({image.ext: image.data}, {
            "width": image.width, "height": image.height,
            "original_width": image.original_width, "original_height": image.original_height})
