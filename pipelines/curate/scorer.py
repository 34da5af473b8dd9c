"""The CLIP scorer: a checkpoint loaded with evaluation's `load_encoder`, checked before any shard is read.

Weights trained for another image size or context length than the config
that builds them (an open_clip model name with the wrong weights file), a
tokenizer that yields ids its text tower has no embedding for, or a transform
that makes images of another size than the image tower takes would fail (or
silently mis-score) deep inside a Ray task; `check_weights` (from the
safetensors header) and `check_scorer` (on the loaded model) find them first.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open

from clipline.pipelines import storage
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.eval.checkpoints import CheckpointRef, resolve_checkpoint
from clipline.pipelines.eval.features import Encoder, embed_images, embed_texts, load_encoder
from clipline.pipelines.models.registry import model_config, resolve_name
from clipline.pipelines.train import checkpoint as ckpt

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


def _weights_and_config(ref: CheckpointRef) -> tuple[str, dict] | None:
    """The safetensors file and the model config a checkpoint would be built from (None: not a local file)."""
    if ref.kind == "folder":
        config = json.loads(storage.read_text(storage.join(ref.uri, ckpt.CONFIG)))["model_cfg"]
        return storage.join(ref.uri, ckpt.WEIGHTS), config
    if ref.pretrained and ref.pretrained.endswith(".safetensors") and storage.exists(ref.pretrained):
        return ref.pretrained, model_config(resolve_name(ref.uri))
    return None


def _weight_shapes(uri: str, names: tuple[str, ...]) -> dict[str, list[int]]:
    local = storage.filesystem(uri)[1] if storage.is_local(uri) else None
    if local is None:
        return {}  # remote weights: load_encoder's own check applies
    with safe_open(local, "pt") as f:
        return {name: f.get_slice(name).get_shape() for name in names if name in f.keys()}  # noqa: SIM118


def check_weights(ref: CheckpointRef) -> None:
    """Refuse weights trained for another image size or tokenizer than the config that would build them,
    from the safetensors header alone (no tensor is read)."""
    found = _weights_and_config(ref)
    if found is None:
        return
    uri, config = found
    vision, text = config.get("vision_cfg", {}), config.get("text_cfg", {})
    shapes = _weight_shapes(uri, ("visual.positional_embedding", "positional_embedding", "token_embedding.weight"))
    if "visual.positional_embedding" in shapes and "patch_size" in vision:
        grid = _pair(vision["image_size"])
        patches = (grid[0] // vision["patch_size"]) * (grid[1] // vision["patch_size"]) + 1
        if shapes["visual.positional_embedding"][0] != patches:
            raise ClipLineError(f"scorer {ref.label}: its weights have {shapes['visual.positional_embedding'][0]} "
                                f"image positions, its config's image size {vision['image_size']} with "
                                f"{vision['patch_size']} px patches makes {patches}", FIX)
    for name, key, what in (("positional_embedding", "context_length", "token positions"),
                            ("token_embedding.weight", "vocab_size", "token embeddings")):
        if name in shapes and key in text and shapes[name][0] != text[key]:
            raise ClipLineError(f"scorer {ref.label}: its weights have {shapes[name][0]} {what}, its tokenizer's "
                                f"config says {key} {text[key]}", FIX)


def load_scorer(spec: ScorerSpec, gpu: bool = False) -> Encoder:
    check_weights(spec.ref)
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
