"""Video shards (clipline's video ingest: `key.txt`, `key.f000.jpg`, `key.f001.jpg`, ...) -> clip tensors.

The shard reading, splitting between workers, shuffling, batching and skip
counting are pipelines.data.loader's; this module only turns one sample into a
(frames, 3, H, W) tensor and its caption. A model takes a fixed number of
frames: a clip stored with another count is sampled uniformly, the frame at the
centre of each of `num_frames` equal segments (as the ingest samples a video),
so a clip with fewer frames repeats some.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable

import torch
from PIL import Image

from clipline.pipelines.data.loader import Decode
from clipline.pipelines.shard_format import sample_frames


def frame_indices(num_stored: int, num_frames: int) -> list[int]:
    """Indices of the stored frames at the centres of `num_frames` equal segments of the clip."""
    return [min(num_stored - 1, int((i + 0.5) * num_stored / num_frames)) for i in range(num_frames)]


def _decode(sample: dict, preprocess: Callable, num_frames: int) -> tuple[torch.Tensor, str]:
    frames = sample_frames(sample)
    if not frames or "txt" not in sample:
        raise ValueError(f"sample {sample.get('__key__')} has no frames (key.f000.jpg, ...) or no caption")
    decoded: dict[int, torch.Tensor] = {}
    for index in set(frame_indices(len(frames), num_frames)):
        with Image.open(io.BytesIO(frames[index])) as image:
            decoded[index] = preprocess(image.convert("RGB"))
    clip = torch.stack([decoded[i] for i in frame_indices(len(frames), num_frames)])
    return clip, sample["txt"].decode("utf-8")


def video_sample(preprocess: Callable, num_frames: int) -> Decode:
    """Decode video-text samples: `num_frames` frames through `preprocess`, stacked, and the caption."""
    return functools.partial(_decode, preprocess=preprocess, num_frames=num_frames)
