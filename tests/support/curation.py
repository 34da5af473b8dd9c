"""Shards of real images for the curation tests: scikit-image photos and their copies, a micro CLIP checkpoint."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from clipline.pipelines.crawl.writer import tar_sink

# scikit-image photos that load offline and are distinct (`cat` is `chelsea` again, so it is left out).
PHOTOS = ["astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "colorwheel", "grass", "gravel",
          "horse", "hubble_deep_field", "immunohistochemistry", "logo", "moon", "page", "retina", "rocket", "text",
          "checkerboard", "microaneurysms", "shepp_logan_phantom", "binary_blobs", "cell"]


def photo(name: str) -> Image.Image:
    from skimage import data

    pixels = np.asarray(getattr(data, name)())
    if pixels.dtype != np.uint8:  # boolean or float images: stretch to 0-255
        pixels = pixels.astype(np.float64)
        pixels = (255 * (pixels - pixels.min()) / (pixels.max() - pixels.min())).astype(np.uint8)
    return Image.fromarray(pixels[..., :3] if pixels.ndim == 3 else pixels).convert("RGB")


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def write_shard(path: Path, samples: list[tuple[str, bytes, str | None]], ext: str = "png") -> str:
    """A tar of (key, image bytes, caption or None) samples, each with a json of its stored size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tar_sink(str(path)) as sink:
        for key, data, caption in samples:
            members = {ext: data}
            if caption is not None:
                members["txt"] = caption.encode()
            sink.add(key, members)
    return str(path)


def write_json_shard(path: Path, samples: list[tuple[str, bytes, str, dict]]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tar_sink(str(path)) as sink:
        for key, data, caption, meta in samples:
            sink.add(key, {"png": data, "txt": caption.encode(), "json": json.dumps(meta).encode()})
    return str(path)


MICRO = Path(__file__).resolve().parent / "curate-micro.json"  # a 1-layer CLIP on 28 px: scores in milliseconds


def save_untrained(run: Path, model_json: Path = MICRO, edit=None) -> str:
    """An untrained checkpoint of `model_json`; `edit(open_clip_config)` may change its config file first."""
    import torch

    from clipline.pipelines.models.registry import build_model
    from clipline.pipelines.train.checkpoint import save_checkpoint

    torch.manual_seed(0)  # the same random towers every session: scores (and what the filters keep) repeat
    built = build_model(str(model_json), augment=False)
    config = {"model_cfg": built.model_cfg, "preprocess_cfg": built.preprocess_cfg}
    if edit:
        edit(config)
    return save_checkpoint(str(run), 1, built.model, config, {"step": 1})

# A 2-layer CLIP on 28 px digits that learns to tell digits apart in about a minute of CPU training (the caption-noise
# test and bench/curate_learning.py train it).
NOISE_MODEL = Path(__file__).resolve().parent / "digits-clip.json"
