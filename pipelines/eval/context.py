"""One (checkpoint, dataset) pair's features, each computed at most once and shared by every task and strategy.

Image features are the expensive part of an evaluation: zero-shot (every
strategy), retrieval and the linear probe all read `images`, so asking for
several tasks costs one pass over the images, not one per task.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.eval.checkpoints import CheckpointRef
from clipline.pipelines.eval.datasets import EvalDataset
from clipline.pipelines.eval.features import (
    Encoder,
    UnreadableImage,
    decode_image,
    embed_images,
    embed_texts,
    load_encoder,
)
from clipline.pipelines.eval.prompts import class_prompts
from clipline.pipelines.eval.sources import read_images

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageSet:
    """Features of a split's readable images: row i is sample `indices[i]` of the dataset."""

    features: np.ndarray
    indices: np.ndarray
    num_skipped: int


@dataclass
class _Decoded:
    """Decodes a stream of image bytes, recording which samples were kept and how many were skipped."""

    kept: list[int] = field(default_factory=list)
    skipped: int = 0

    def images(self, dataset: EvalDataset) -> Iterator:
        for index, data in read_images(dataset.sources, dataset.fetch):
            try:
                if data is None:
                    raise UnreadableImage("could not be read")
                image = decode_image(data)
            except UnreadableImage as e:
                self.skipped += 1
                log.warning("skipping sample %s of %s: %s", dataset.keys[index], dataset.name, e)
                continue
            self.kept.append(index)
            yield image


def embed_dataset(encoder: Encoder, dataset: EvalDataset, batch_size: int) -> ImageSet:
    """Embed every readable image of a split; unreadable ones are skipped and counted."""
    started = time.monotonic()
    decoded = _Decoded()
    features = embed_images(encoder, decoded.images(dataset), batch_size)
    if not decoded.kept:
        raise ClipLineError(f"none of the {len(dataset)} images of {dataset.name} could be read",
                            "check the image files (see the warnings above)")
    log.info("embedded %d images of %s with %s in %.1f s (%d skipped)", len(decoded.kept), dataset.name,
             encoder.label, time.monotonic() - started, decoded.skipped)
    return ImageSet(features, np.array(decoded.kept, dtype=np.int64), decoded.skipped)


class PairContext:
    """Lazily loaded models and lazily computed, cached features of one checkpoint on one dataset.

    The checkpoint is loaded as what the tasks ask for, once each: its CLIP towers (`encoder`) for zero-shot,
    retrieval and linear probes, a captioner (`captioner`) for captioning."""

    def __init__(self, checkpoint: CheckpointRef, dataset: EvalDataset, batch_size: int, gpu: bool = False):
        self.checkpoint = checkpoint
        self.dataset = dataset
        self.batch_size = batch_size
        self.gpu = gpu

    @cached_property
    def encoder(self) -> Encoder:
        return load_encoder(self.checkpoint, gpu=self.gpu)

    @cached_property
    def captioner(self):
        from clipline.pipelines.eval.captioning import load_captioner_ref

        return load_captioner_ref(self.checkpoint, gpu=self.gpu)

    @cached_property
    def images(self) -> ImageSet:
        return embed_dataset(self.encoder, self.dataset, self.batch_size)

    @cached_property
    def train_images(self) -> ImageSet | None:
        """The layout's own training split, if it has one (linear probes)."""
        train = self.dataset.train
        return embed_dataset(self.encoder, train, self.batch_size) if train is not None else None

    @cached_property
    def prompt_features(self) -> np.ndarray:
        """(templates, classes, d): every template filled with every class name, embedded once for all strategies."""
        classnames, templates = self.dataset.classnames, self.dataset.templates
        features = embed_texts(self.encoder, class_prompts(classnames, templates), self.batch_size)
        return features.reshape(len(templates), len(classnames), -1)

    @cached_property
    def caption_features(self) -> tuple[np.ndarray, np.ndarray]:
        """(text features, index of each text's image among `images` rows), captions in image order."""
        captions = [self.dataset.captions[i] for i in self.images.indices]
        texts = [text for image_captions in captions for text in image_captions]
        owners = np.repeat(np.arange(len(captions)), [len(c) for c in captions])
        return embed_texts(self.encoder, texts, self.batch_size), owners
