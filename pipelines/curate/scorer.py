"""The CLIP scorer: a checkpoint loaded with evaluation's `load_encoder`, checked before any shard is read.

A checkpoint whose tokenizer yields ids its text tower has no embedding for,
or sequences of another length than its context, or whose transform makes
images of another size than its image tower takes, would fail (or silently
mis-score) deep inside a Ray task; `check_scorer` finds it up front.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.eval.checkpoints import CheckpointRef, resolve_checkpoint
from clipline.pipelines.eval.features import Encoder, embed_images, embed_texts, load_encoder

PROBE_TEXT = "a probe caption with several words"
FIX = "use the tokenizer and image size the checkpoint was trained with (its open_clip_config.json)"


@dataclass(frozen=True)
class ScorerSpec:
    """A resolved scorer: what Ray tasks load, and the id its scores are stored under."""

    ref: CheckpointRef
    scorer_id: str  # short digest of the checkpoint's label: scores of one scorer are reused, never mixed


def resolve_scorer(checkpoint: str, pretrained: str | None) -> ScorerSpec:
    ref = resolve_checkpoint(checkpoint, pretrained)
    return ScorerSpec(ref, hashlib.sha256(ref.label.encode()).hexdigest()[:16])


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value), int(value))


def check_scorer(encoder: Encoder) -> None:
    """Raise a ClipLineError unless the tokenizer and transform fit the model's towers."""
    model = encoder.model
    tokens = encoder.tokenizer([PROBE_TEXT])
    vocab, context = getattr(model, "vocab_size", None), getattr(model, "context_length", None)
    if context is not None and tokens.shape[-1] != context:
        raise ClipLineError(f"scorer {encoder.label}: its tokenizer makes sequences of {tokens.shape[-1]} tokens, "
                            f"its text tower takes {context}", FIX)
    if vocab is not None and int(tokens.max()) >= vocab:
        raise ClipLineError(f"scorer {encoder.label}: its tokenizer yields token id {int(tokens.max())}, its text "
                            f"tower has only {vocab} token embeddings", FIX)
    expected = _pair(model.visual.image_size)
    pixels = encoder.preprocess(Image.new("RGB", (97, 61)))
    if tuple(pixels.shape[-2:]) != expected:
        raise ClipLineError(f"scorer {encoder.label}: its transform makes {tuple(pixels.shape[-2:])} images, its "
                            f"image tower takes {expected}", FIX)


def load_scorer(spec: ScorerSpec, gpu: bool = False) -> Encoder:
    encoder = load_encoder(spec.ref, gpu=gpu)
    check_scorer(encoder)
    return encoder


@torch.inference_mode()
def clip_scores(encoder: Encoder, images: list[Image.Image], captions: list[str | None],
                batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(image embeddings (n, d), cosine of each image with its caption, NaN where there is no caption)."""
    image_vectors = embed_images(encoder, images, batch_size)
    scores = np.full(len(images), np.nan, np.float32)
    with_text = [i for i, text in enumerate(captions) if text]
    if with_text:
        text_vectors = embed_texts(encoder, [captions[i] for i in with_text])
        scores[with_text] = np.sum(image_vectors[with_text] * text_vectors, axis=1)
    return image_vectors, scores
