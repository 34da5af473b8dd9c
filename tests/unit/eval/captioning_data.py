"""Digits with templated captions, several per class: training shards and held-out shards with more references."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from clipline.flows.demo_sample import DIGIT_NAMES
from clipline.pipelines.crawl.writer import tar_sink
from clipline.pipelines.models.registry import build_model
from clipline.pipelines.train.checkpoint import save_checkpoint
from support.shards import digit_images, png

CAPTION_TEMPLATES = ("a handwritten {c}", "the digit {c}", "a photo of the number {c}", "a {c} written by hand")
HELD_OUT = 4000  # held-out digits come after the training ones


@functools.cache
def _digits():
    return digit_images()


def write_captioned_digits(path: Path, count: int, offset: int = 0, more_references: bool = False) -> str:
    """One shard of `count` digits; sample i's key.txt is template i % 4 of its class. With `more_references`,
    key.json lists the other templates under "captions" (the multi-reference layout)."""
    images, labels = _digits()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tar_sink(str(path)) as sink:
        for i in range(count):
            label = int(labels[offset + i])
            texts = [t.format(c=DIGIT_NAMES[label]) for t in CAPTION_TEMPLATES]
            caption = texts[i % len(texts)]
            meta = {"label": label, **({"captions": [t for t in texts if t != caption]} if more_references else {})}
            sink.add(f"{offset + i:09d}", {"png": png(images[offset + i]), "txt": caption.encode(),
                                           "json": json.dumps(meta).encode()})
    return str(path)


def untrained_clip(folder: Path) -> str:
    """An untrained clipline-tiny checkpoint: plumbing tests need a real model, not a good one."""
    built = build_model("clipline-tiny", augment=False)
    config = {"model_cfg": built.model_cfg, "preprocess_cfg": built.preprocess_cfg}
    return save_checkpoint(str(folder), 1, built.model, config, {"step": 1})
