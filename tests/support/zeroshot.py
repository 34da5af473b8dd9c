"""Zero-shot top-1 of a CLIP checkpoint on digits: the three caption templates as a prompt ensemble."""

from __future__ import annotations

import numpy as np

from clipline.flows.demo_sample import DIGIT_NAMES
from clipline.pipelines.eval.features import embed_images, embed_texts, load_encoder
from support.shards import CAPTION_TEMPLATES, digit_images, png


def held_out_digits(offset: int, count: int) -> tuple[list[bytes], np.ndarray]:
    """`count` digits from index `offset` as PNG bytes, and their labels."""
    images, labels = digit_images()
    return [png(images[i]) for i in range(offset, offset + count)], labels[offset:offset + count].astype(int)


def digit_zero_shot_top1(checkpoint: str, images: list[bytes], labels: np.ndarray) -> float:
    encoder = load_encoder(checkpoint)
    prompts = [template.format(name) for name in DIGIT_NAMES for template in CAPTION_TEMPLATES]
    text = embed_texts(encoder, prompts).reshape(len(DIGIT_NAMES), len(CAPTION_TEMPLATES), -1).mean(1)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    predicted = (embed_images(encoder, images) @ text.T).argmax(1)
    return float((predicted == labels).mean())
