"""Real test images for crawl tests, built offline from photos bundled with scikit-image.

Crawl tests need bytes a real decoder accepts (and some it must reject), so everything here
is encoded with Pillow from real photographs rather than synthetic noise.  All builders are
cached: encoding is cheap but tests call these many times.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib

import numpy as np
from PIL import Image
from skimage import data as skdata

# Photos shipped inside the scikit-image wheel (skimage/data/*.png|jpg), so loading them
# never touches the network.  Fetcher-only datasets (pooch downloads) are deliberately absent.
PHOTO_NAMES = ("astronaut", "coffee", "chelsea", "rocket", "camera")

# Header-declared size of the bomb: 400 M pixels is over twice Pillow's MAX_IMAGE_PIXELS,
# so Image.open raises DecompressionBombError, while 1-bit zero rows deflate to ~50 KB.
BOMB_SIZE = (20_000, 20_000)

TINY_SIZE = (8, 8)
WIDE_SIZE = (1000, 50)


def _encode(array: np.ndarray, fmt: str = "JPEG", **params) -> bytes:
    """Encode an image array; grayscale becomes RGB so every photo has the same mode."""
    image = Image.fromarray(array)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return _save(image, fmt, **params)


def _save(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


@functools.cache
def real_photos() -> dict[str, bytes]:
    """JPEG bytes (quality 90) of real photos keyed by name.  Do not mutate the result."""
    return {name: _encode(getattr(skdata, name)(), quality=90) for name in PHOTO_NAMES}


@functools.cache
def reencoded(name: str, fmt: str) -> bytes:
    """Photo `name` re-encoded as `fmt` ("PNG", "WEBP", ...) to exercise other decoders."""
    image = Image.open(io.BytesIO(real_photos()[name]))
    return _save(image, fmt)


@functools.cache
def tiny_jpeg() -> bytes:
    """A real 8x8 JPEG: a downscaled photo, for minimum-size filters."""
    image = Image.open(io.BytesIO(real_photos()["astronaut"])).resize(TINY_SIZE)
    return _save(image, "JPEG", quality=90)


@functools.cache
def wide_jpeg() -> bytes:
    """A 1000x50 JPEG cropped from a real 1000-px-wide photo, for aspect-ratio filters."""
    photo = skdata.hubble_deep_field()  # 872x1000, bundled with scikit-image
    width, height = WIDE_SIZE
    top = (photo.shape[0] - height) // 2
    return _encode(photo[top : top + height, :width], quality=90)


@functools.cache
def truncated_jpeg() -> bytes:
    """The first 40% of a real JPEG: a valid header and a body cut off mid-scan."""
    photo = real_photos()["astronaut"]
    return photo[: len(photo) * 2 // 5]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(
        ">I", zlib.crc32(kind + payload)
    )


@functools.cache
def decompression_bomb_png() -> bytes:
    """A fully valid 1-bit PNG declaring BOMB_SIZE pixels, yet only ~50 KB on the wire.

    Written by hand, row by row, because Pillow would need ~400 MB to hold the image before
    saving it.  Every row is filter byte 0 plus zero bits, so deflate reaches its ~1000:1
    ceiling.  That ceiling is also why the file cannot be "a few KB": Pillow's bomb error
    needs > 179 M pixels, i.e. >= ~22 KB of deflate output even at 1 bit per pixel.
    """
    width, height = BOMB_SIZE
    row = bytes(1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )
