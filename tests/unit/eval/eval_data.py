"""The same MNIST digits in every dataset layout the evaluation reads, and hand-made unit vectors."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np

from clipline.flows.demo_sample import DIGIT_NAMES, caption
from support.shards import digit_images, png

EVAL_OFFSET = 4000  # evaluation digits come after the training ones
TEMPLATES = ("a handwritten {c}", "a photo of the digit {c}", "{c}")


def eval_digits(count: int, offset: int = EVAL_OFFSET) -> tuple[list[bytes], list[int]]:
    images, labels = digit_images()
    indices = range(offset, offset + count)
    return [png(images[i]) for i in indices], [int(labels[i]) for i in indices]


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_clip_benchmark(root: Path, images: list[bytes], labels: list[int], per_shard: int = 50,
                         templates=TEMPLATES, split: str = "test", captions: bool = True) -> Path:
    """clip_benchmark's WebDataset layout: ROOT/SPLIT/{0..n-1}.tar + nshards.txt, classnames, templates."""
    (root / split).mkdir(parents=True, exist_ok=True)
    starts = range(0, len(images), per_shard)
    for shard, start in enumerate(starts):
        members = {}
        for i in range(start, min(start + per_shard, len(images))):
            members[f"s{i:07d}.png"] = images[i]
            members[f"s{i:07d}.cls"] = str(labels[i]).encode()
            if captions:
                members[f"s{i:07d}.txt"] = f"{caption(labels[i])}\nthe number {DIGIT_NAMES[labels[i]]}".encode()
        (root / split / f"{shard}.tar").write_bytes(tar_bytes(members))
    (root / split / "nshards.txt").write_text(str(len(starts)))
    (root / "classnames.txt").write_text("\n".join(DIGIT_NAMES) + "\n")
    (root / "zeroshot_classification_templates.txt").write_text("\n".join(templates) + "\n")
    return root


def write_class_folders(root: Path, images: list[bytes], labels: list[int]) -> Path:
    """ROOT/<class name>/<image>.png, names from DIGIT_NAMES."""
    for i, (data, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / DIGIT_NAMES[label]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:05d}.png").write_bytes(data)
    return root


def write_shards(root: Path, images: list[bytes], labels: list[int]) -> Path:
    """clipline shards: key.png + key.txt + key.json {"label": i}, plus classnames.txt beside them."""
    root.mkdir(parents=True, exist_ok=True)
    members = {}
    for i, (data, label) in enumerate(zip(images, labels, strict=True)):
        members[f"{i:09d}.png"] = data
        members[f"{i:09d}.txt"] = caption(label).encode()
        members[f"{i:09d}.json"] = json.dumps({"label": label}).encode()
    (root / "00000.tar").write_bytes(tar_bytes(members))
    (root / "classnames.txt").write_text("\n".join(DIGIT_NAMES) + "\n")
    return root


def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)
