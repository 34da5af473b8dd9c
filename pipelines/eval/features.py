"""Embed images and texts with a checkpoint's towers: batched, L2-normalized, float32 numpy arrays.

Evaluation and dataset distances both call `load_encoder` + `embed_images`, so a
point in a distance's embedding space is exactly the feature an evaluation
scores. Images go through the checkpoint's own eval transform (open_clip's
`preprocess_val`), as clip_benchmark does.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.eval.checkpoints import LOCAL_DIR, CheckpointRef, resolve_checkpoint
from clipline.pipelines.models.registry import BuiltModel, build_model
from clipline.pipelines.train import checkpoint as ckpt

log = logging.getLogger(__name__)

ImageLike = Image.Image | bytes


class UnreadableImage(ValueError):
    """Bytes that Pillow cannot decode; callers skip and count them."""


@dataclass(frozen=True)
class Encoder:
    """A loaded checkpoint in eval mode, with the transform and tokenizer it was trained with."""

    label: str
    model: torch.nn.Module
    preprocess: Callable[[Image.Image], torch.Tensor]
    tokenizer: Callable[[list[str]], torch.Tensor]
    embed_dim: int
    device: torch.device


def _load_folder(ref: CheckpointRef) -> BuiltModel:
    folder = ckpt.local_copy(ref.uri)  # open_clip's local-dir: needs a local path
    try:
        return build_model(LOCAL_DIR + folder, augment=False, weights=folder)
    finally:
        ckpt.remove_local_copy(ref.uri, folder)


def _load_open_clip(ref: CheckpointRef) -> BuiltModel:
    return build_model(ref.uri, augment=False, pretrained=ref.pretrained)


def _not_clip(ref: CheckpointRef) -> BuiltModel:
    raise ClipLineError(f"checkpoint {ref.label} is a captioner without CLIP towers",
                        "evaluate it with --task captioning only")


LOADERS: dict[str, Callable[[CheckpointRef], BuiltModel]] = {"folder": _load_folder, "open_clip": _load_open_clip,
                                                             "captioner": _not_clip}


def _device(gpu: bool) -> torch.device:
    if gpu and not torch.cuda.is_available():
        raise ClipLineError("--gpu given but torch sees no CUDA device", "drop --gpu or run where a GPU is visible")
    return torch.device("cuda" if gpu else "cpu")


def load_encoder(checkpoint: str | CheckpointRef, pretrained: str | None = None, gpu: bool = False) -> Encoder:
    """Load a checkpoint (any CKPT form, see checkpoints.py); a broken one is a ClipLineError naming it."""
    ref = checkpoint if isinstance(checkpoint, CheckpointRef) else resolve_checkpoint(checkpoint, pretrained)
    device = _device(gpu)
    try:
        built = LOADERS[ref.kind](ref)
    except ClipLineError:
        raise
    except Exception as e:  # open_clip/safetensors/torch raise many types for a broken file
        first_line = str(e).splitlines()[0] if str(e) else ""
        raise ClipLineError(f"checkpoint {ref.label} does not load: {type(e).__name__}: {first_line}",
                            "check that it is a complete open_clip checkpoint of a known model") from e
    model = built.model.to(device).eval()
    return Encoder(ref.label, model, built.preprocess_val, built.tokenizer, int(built.model_cfg["embed_dim"]), device)


def decode_image(data: bytes) -> Image.Image:
    """An RGB image from encoded bytes, or UnreadableImage (Pillow raises several exception types)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise UnreadableImage(f"{type(e).__name__}: {e}") from e


def _as_image(item: ImageLike) -> Image.Image:
    return decode_image(item) if isinstance(item, bytes) else item.convert("RGB")


def _batches(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


@torch.inference_mode()
def embed_images(encoder: Encoder, images: Iterable[ImageLike], batch_size: int = 64) -> np.ndarray:
    """(n, d) float32 unit vectors of a stream of PIL images or image bytes, `batch_size` per forward pass.

    Undecodable bytes raise UnreadableImage: the caller decides whether to skip
    them (decode first with `decode_image`) so rows stay aligned with its inputs.
    """
    chunks = []
    for batch in _batches(images, batch_size):
        pixels = torch.stack([encoder.preprocess(_as_image(item)) for item in batch]).to(encoder.device)
        chunks.append(F.normalize(encoder.model.encode_image(pixels), dim=-1).float().cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, encoder.embed_dim), np.float32)


@torch.inference_mode()
def embed_texts(encoder: Encoder, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """(n, d) float32 unit vectors of texts, through the checkpoint's tokenizer and text tower.

    Each distinct text is embedded once: captions made from class labels repeat
    thousands of times, and equal texts must get bit-equal vectors anyway (ties
    in retrieval are broken by position, as clip_benchmark's are).
    """
    distinct = list(dict.fromkeys(texts))
    chunks = []
    for batch in _batches(distinct, batch_size):
        tokens = encoder.tokenizer(batch).to(encoder.device)
        chunks.append(F.normalize(encoder.model.encode_text(tokens), dim=-1).float().cpu().numpy())
    if not chunks:
        return np.zeros((0, encoder.embed_dim), np.float32)
    row = {text: i for i, text in enumerate(distinct)}
    return np.concatenate(chunks)[[row[text] for text in texts]]


@contextlib.contextmanager
def torch_threads(num_threads: int) -> Iterator[None]:
    """Run a block with `num_threads` intra-op threads: tasks sharing a machine each get their share of the
    cores instead of all of them (oversubscribed BLAS threads run several times slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, num_threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)
