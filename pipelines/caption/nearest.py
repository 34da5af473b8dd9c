"""The nearest-neighbour baseline captioner: the caption of the most similar training image in CLIP image space.

It writes no new text, so it is the floor a real captioner (CoCa, ClipCap)
must beat on CIDEr. `build_caption_bank` embeds the training shards' images
with a CLIP checkpoint and keeps each image's first caption; the result is a
small checkpoint-like folder:

    DIR/nearest-captioner.json   marker + the CLIP checkpoint it needs (by location) and what it was built from
    DIR/features.npy             (n, d) float32 unit image features of the training images
    DIR/captions.json            the n captions, row for row

The CLIP checkpoint is referenced, not copied: loading the captioner loads it
from where it was when the bank was built.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from clipline.pipelines import storage
from clipline.pipelines.caption.captioner import CaptionerFormat, register
from clipline.pipelines.config.caption import GenerateConfig
from clipline.pipelines.errors import ClipLineError

log = logging.getLogger(__name__)

KIND = "nearest"
MARKER = "nearest-captioner.json"
FEATURES = "features.npy"
CAPTIONS = "captions.json"
FORMAT = "clipline-nearest-captioner/1"


@dataclass
class NearestCaptioner:
    """A `Captioner`: every image gets the caption of its nearest training image (cosine similarity)."""

    device: torch.device
    preprocess: Callable[[Image.Image], torch.Tensor]
    model: torch.nn.Module
    bank: torch.Tensor  # (n, d) unit features on `device`
    captions: tuple[str, ...]

    @torch.inference_mode()
    def generate(self, images: torch.Tensor, options: GenerateConfig) -> list[str]:
        """Decoding options do not apply: the answer is a lookup, the same for every method and seed."""
        features = F.normalize(self.model.encode_image(images.to(self.device)).float(), dim=-1)
        nearest = (features @ self.bank.T).argmax(dim=1).tolist()
        return [self.captions[i] for i in nearest]


def _marker(folder: str) -> dict:
    try:
        marker = json.loads(storage.read_text(storage.join(folder, MARKER)))
    except (OSError, ValueError, ClipLineError) as e:
        raise ClipLineError(f"{folder}: unreadable {MARKER} ({e})",
                            "rebuild it with `clipline caption-baseline`") from e
    if marker.get("format") != FORMAT:
        raise ClipLineError(f"{folder}: {MARKER} is format {marker.get('format')!r}, not {FORMAT}",
                            "rebuild it with this version's `clipline caption-baseline`")
    return marker


def matches(folder: str) -> bool:
    try:
        return storage.exists(storage.join(folder, MARKER))
    except ClipLineError:
        return False


def load(folder: str, device: torch.device) -> NearestCaptioner:
    """The baseline in `folder`, with the CLIP checkpoint its marker names."""
    from clipline.pipelines.eval.features import load_encoder  # the eval package imports this one's registry

    marker = _marker(folder)
    features = np.load(io.BytesIO(storage.read_bytes(storage.join(folder, FEATURES))))
    captions = tuple(json.loads(storage.read_text(storage.join(folder, CAPTIONS))))
    if features.ndim != 2 or len(features) != len(captions) or not captions:
        raise ClipLineError(f"{folder}: {features.shape} features for {len(captions)} captions",
                            "rebuild it with `clipline caption-baseline`")
    encoder = load_encoder(marker["clip"], gpu=device.type == "cuda")
    if encoder.embed_dim != features.shape[1]:
        raise ClipLineError(f"{folder}: features of width {features.shape[1]}, but {marker['clip']} embeds to "
                            f"{encoder.embed_dim}", "rebuild the bank with the CLIP checkpoint it should use")
    bank = torch.from_numpy(features).to(encoder.device)
    return NearestCaptioner(encoder.device, encoder.preprocess, encoder.model, bank, captions)


def build_caption_bank(clip: str, data: str, out: str, batch_size: int = 64, gpu: bool = False) -> dict:
    """Embed the images of the shards `data` with `clip`, keep each one's first caption; write the folder `out`.

    Returns the marker written. Every input is checked (the checkpoint loads, every sample has a caption)
    before any image is embedded."""
    from clipline.pipelines.eval.checkpoints import resolve_checkpoint
    from clipline.pipelines.eval.context import embed_dataset
    from clipline.pipelines.eval.datasets import DatasetOptions, load_dataset
    from clipline.pipelines.eval.features import load_encoder

    ref = resolve_checkpoint(clip)
    if ref.kind != "folder":
        raise ClipLineError(f"--clip {clip} is an open_clip model name; the caption bank needs a checkpoint folder",
                            "give a clipline checkpoint, a run folder or a local-dir: folder")
    encoder = load_encoder(ref, gpu=gpu)
    dataset = load_dataset(data, DatasetOptions(tasks=("retrieval",)))  # retrieval: every sample has a caption
    storage.check_writable(out)
    images = embed_dataset(encoder, dataset, batch_size)
    captions = [dataset.captions[i][0] for i in images.indices]
    buffer = io.BytesIO()
    np.save(buffer, images.features.astype(np.float32))
    storage.write_bytes(storage.join(out, FEATURES), buffer.getvalue())
    storage.write_text(storage.join(out, CAPTIONS), json.dumps(captions))
    marker = {"format": FORMAT, "kind": KIND, "clip": storage.absolute(ref.uri), "data": data, "images": len(captions),
              "skipped": images.num_skipped}
    storage.write_text(storage.join(out, MARKER), json.dumps(marker, indent=1))  # last: a complete folder
    log.info("caption bank of %d training images written to %s", len(captions), out)
    return marker


register(KIND, CaptionerFormat(matches, load))
